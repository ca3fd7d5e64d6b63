// MLPerf Tiny energy mode on the MPS2 (firmware/common/mlperf_dut.h): the timestamp pin the board
// profile names (serial.timestamp_pin = GPIO block x 16 + bit: the CMSDK AHB GPIOs at 0x40010000,
// 0x1000 apart), an output that idles high. Each level is one store through the block's masked
// byte access (CMSDK TRM: LB_MASKED at 0x400, UB_MASKED at 0x800, the mask in address bits
// [9:2]), which changes this bit alone without reading DATAOUT back. QEMU models these blocks as
// unimplemented devices: `-d unimp` logs every store, which is how the tests see the pin.
#include "mlperf_dut.h"

#if TG_TIMESTAMP_PIN > 51
#error "TG_TIMESTAMP_PIN is past EXP51, the MPS2's last GPIO"
#endif
#define REG(addr) (*(volatile uint32_t*)(addr))
#define TS_BASE (0x40010000u + 0x1000u * (TG_TIMESTAMP_PIN / 16u))
#define TS_BIT (TG_TIMESTAMP_PIN % 16u)
#define TS_MASK (1u << TS_BIT)
#define GPIO_OUTENSET REG(TS_BASE + 0x010u)
#define GPIO_ALTFUNCCLR REG(TS_BASE + 0x01Cu)
#define GPIO_MASKED \
  REG(TS_BASE + (TS_BIT < 8u ? 0x400u + (TS_MASK << 2) : 0x800u + ((TS_MASK >> 8) << 2)))

void board_timestamp_pin_init(void) {
  GPIO_MASKED = TS_MASK;  // high before it drives
  GPIO_ALTFUNCCLR = TS_MASK;
  GPIO_OUTENSET = TS_MASK;
}

void board_timestamp_pin_write(int level) { GPIO_MASKED = level ? TS_MASK : 0u; }
