// MLPerf Tiny energy mode on the nRF51 (firmware/common/mlperf_dut.h): the timestamp pin the
// board profile names (serial.timestamp_pin, here TG_TIMESTAMP_PIN), a push-pull output that
// idles high, as the reference submissions' DigitalOut does.
#include "mlperf_dut.h"

#define REG(addr) (*(volatile uint32_t*)(addr))
#define GPIO_BASE 0x50000000u
#define GPIO_OUTSET REG(GPIO_BASE + 0x508)
#define GPIO_OUTCLR REG(GPIO_BASE + 0x50C)
#define GPIO_PIN_CNF(pin) REG(GPIO_BASE + 0x700 + 4u * (pin))
#define PIN_CNF_OUTPUT 1u  // DIR output, input buffer connected, no pull, standard drive

void board_timestamp_pin_init(void) {
  GPIO_OUTSET = 1u << TG_TIMESTAMP_PIN;
  GPIO_PIN_CNF(TG_TIMESTAMP_PIN) = PIN_CNF_OUTPUT;
}

void board_timestamp_pin_write(int level) {
  if (level) {
    GPIO_OUTSET = 1u << TG_TIMESTAMP_PIN;
  } else {
    GPIO_OUTCLR = 1u << TG_TIMESTAMP_PIN;
  }
}
