// MLPerf Tiny energy mode on the Apollo3 (firmware/common/mlperf_dut.h): the timestamp pad the
// board profile names (serial.timestamp_pin, the pad number), a push-pull output that idles high,
// as the references' DigitalOut. The pad is configured through Ambiq's HAL (its pad registers sit
// behind a key and a critical section the HAL already handles); the level is the HAL's
// write-set/write-clear register macros, one store each.
#include "am_mcu_apollo.h"
#include "mlperf_dut.h"

#if TG_TIMESTAMP_PIN > 49
#error "TG_TIMESTAMP_PIN is past pad 49, the Apollo3's last"
#endif

void board_timestamp_pin_init(void) {
  am_hal_gpio_output_set(TG_TIMESTAMP_PIN);  // high before it drives
  am_hal_gpio_pinconfig(TG_TIMESTAMP_PIN, g_AM_HAL_GPIO_OUTPUT);  // GPIO function, push-pull, 2 mA
}

void board_timestamp_pin_write(int level) {
  if (level) {
    am_hal_gpio_output_set(TG_TIMESTAMP_PIN);
  } else {
    am_hal_gpio_output_clear(TG_TIMESTAMP_PIN);
  }
}
