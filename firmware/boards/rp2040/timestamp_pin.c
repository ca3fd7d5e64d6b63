// MLPerf Tiny energy mode on the RP2040 (firmware/common/mlperf_dut.h): the timestamp pin the
// board profile names (serial.timestamp_pin, the GPIO number), a push-pull SIO output that idles
// high, as the references' DigitalOut. Registers through the SDK's structs (no gpio_* calls):
// SIO's set/clear registers change the one pin in a single store.
#include "mlperf_dut.h"

#include "hardware/structs/iobank0.h"
#include "hardware/structs/padsbank0.h"
#include "hardware/structs/sio.h"

#if TG_TIMESTAMP_PIN > 29
#error "TG_TIMESTAMP_PIN is past GPIO29, the RP2040's last"
#endif
#define TS_MASK (1u << TG_TIMESTAMP_PIN)
#define FUNCSEL_SIO 5u      // RP2040 datasheet, IO_BANK0 GPIOn_CTRL.FUNCSEL: 5 = SIO
#define PAD_IE 0x40u        // PADS_BANK0 GPIOn: input enable (kept, so the pin reads back)
#define PAD_DRIVE_4MA 0x10u // the reset drive strength, stated

void board_timestamp_pin_init(void) {
  sio_hw->gpio_set = TS_MASK;  // high before it drives
  sio_hw->gpio_oe_set = TS_MASK;
  padsbank0_hw->io[TG_TIMESTAMP_PIN] = PAD_IE | PAD_DRIVE_4MA;  // output enabled (OD = 0), no pulls
  iobank0_hw->io[TG_TIMESTAMP_PIN].ctrl = FUNCSEL_SIO;
}

void board_timestamp_pin_write(int level) {
  if (level) {
    sio_hw->gpio_set = TS_MASK;
  } else {
    sio_hw->gpio_clr = TS_MASK;
  }
}
