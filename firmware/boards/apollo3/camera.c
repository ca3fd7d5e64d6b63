// Camera port for the SparkFun Edge: the Himax HM01B0 (324x244, 8-bit monochrome) on the
// Edge's camera header, through SparkFun's HM01B0 driver (AMBIQ_ROOT/boards_sfe/common/
// third_party/hm01b0) and its QVGA RAW8 register script. Frames are read by polling the
// sensor's HSYNC/PCLK lines (hm01b0_blocking_read_oneframe); no interrupt is used.
#include "tinygen_camera.h"

#include "HM01B0.h"
#include "HM01B0_RAW8_QVGA_8bits_lsb_5fps.h"
#include "am_bsp.h"
#include "am_mcu_apollo.h"
#include "am_util.h"
#include "platform.h"

static hm01b0_cfg_t s_camera = {
    .ui16SlvAddr = HM01B0_DEFAULT_ADDRESS,
    .eIOMMode = HM01B0_IOM_MODE,
    .ui32IOMModule = HM01B0_IOM_MODULE,
    .sIOMCfg = {.eInterfaceMode = HM01B0_IOM_MODE, .ui32ClockFreq = HM01B0_I2C_CLOCK_FREQ},
    .pIOMHandle = NULL,
    .ui8PinSCL = HM01B0_PIN_SCL,
    .ui8PinSDA = HM01B0_PIN_SDA,
    .ui32CTimerModule = HM01B0_MCLK_GENERATOR_MOD,
    .ui32CTimerSegment = HM01B0_MCLK_GENERATOR_SEG,
    .ui32CTimerOutputPin = HM01B0_PIN_MCLK,
    .ui8PinD0 = HM01B0_PIN_D0,
    .ui8PinD1 = HM01B0_PIN_D1,
    .ui8PinD2 = HM01B0_PIN_D2,
    .ui8PinD3 = HM01B0_PIN_D3,
    .ui8PinD4 = HM01B0_PIN_D4,
    .ui8PinD5 = HM01B0_PIN_D5,
    .ui8PinD6 = HM01B0_PIN_D6,
    .ui8PinD7 = HM01B0_PIN_D7,
    .ui8PinVSYNC = HM01B0_PIN_VSYNC,
    .ui8PinHSYNC = HM01B0_PIN_HSYNC,
    .ui8PinPCLK = HM01B0_PIN_PCLK,
    .ui8PinTrig = HM01B0_PIN_TRIG,
    .ui8PinInt = HM01B0_PIN_INT,
    .pfnGpioIsr = NULL,
};

uint16_t board_camera_width(void) { return HM01B0_PIXEL_X_NUM; }
uint16_t board_camera_height(void) { return HM01B0_PIXEL_Y_NUM; }

int board_camera_init(uint8_t* frame, size_t frame_bytes) {
  uint16_t model_id = 0;
  hm01b0_power_up(&s_camera);
  am_util_delay_ms(1);
  hm01b0_mclk_enable(&s_camera);
  am_util_delay_ms(1);
  if (hm01b0_init_if(&s_camera) != HM01B0_ERR_OK) return 1;
  if (hm01b0_get_modelid(&s_camera, &model_id) != HM01B0_ERR_OK || model_id != 0x01B0) return 2;  // the HM01B0 answers 0x01B0
  if (hm01b0_init_system(&s_camera, (hm_script_t*)sHM01B0InitScript,
                         sizeof(sHM01B0InitScript) / sizeof(hm_script_t)) != HM01B0_ERR_OK) {
    return 3;
  }
  // Let automatic exposure settle over ten frames, as SparkFun's camera example does.
  return hm01b0_cal_ae(&s_camera, 10, frame, (uint32_t)frame_bytes) == HM01B0_ERR_OK ? 0 : 4;
}

int board_camera_capture(uint8_t* frame, size_t frame_bytes) {
  hm01b0_cmd_update(&s_camera);
  if (hm01b0_set_mode(&s_camera, HM01B0_REG_MODE_SELECT_STREAMING_NFRAMES, 1) != HM01B0_ERR_OK) return 1;
  return hm01b0_blocking_read_oneframe(&s_camera, frame, (uint32_t)frame_bytes) == HM01B0_ERR_OK ? 0 : 2;
}
