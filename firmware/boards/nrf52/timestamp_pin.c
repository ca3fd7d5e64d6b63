// MLPerf Tiny energy mode on the nRF52840 (firmware/common/mlperf_dut.h): the timestamp pin the
// board profile names (serial.timestamp_pin, nrfx's numbering: P0.n = n, P1.n = 32 + n), a
// push-pull output that idles high, as the references' DigitalOut.
#include "mlperf_dut.h"
#include "nrfx.h"

#if TG_TIMESTAMP_PIN > 47
#error "TG_TIMESTAMP_PIN is past P1.15, the nRF52840's last GPIO"
#endif
#define TS_PORT (TG_TIMESTAMP_PIN < 32u ? NRF_P0 : NRF_P1)
#define TS_BIT (TG_TIMESTAMP_PIN % 32u)

void board_timestamp_pin_init(void) {
  TS_PORT->OUTSET = 1u << TS_BIT;  // high before it drives
  TS_PORT->PIN_CNF[TS_BIT] = (GPIO_PIN_CNF_DIR_Output << GPIO_PIN_CNF_DIR_Pos) |
                             (GPIO_PIN_CNF_INPUT_Disconnect << GPIO_PIN_CNF_INPUT_Pos) |
                             (GPIO_PIN_CNF_PULL_Disabled << GPIO_PIN_CNF_PULL_Pos) |
                             (GPIO_PIN_CNF_DRIVE_S0S1 << GPIO_PIN_CNF_DRIVE_Pos);
}

void board_timestamp_pin_write(int level) {
  if (level) {
    TS_PORT->OUTSET = 1u << TS_BIT;
  } else {
    TS_PORT->OUTCLR = 1u << TS_BIT;
  }
}
