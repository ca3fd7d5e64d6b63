// MLPerf Tiny energy mode on the STM32F7 (firmware/common/mlperf_dut.h): the timestamp pin the
// board profile names (serial.timestamp_pin = port x 16 + pin, PA0 = 0, PI3 = 131, as mbed's
// PinName numbers them), a push-pull output that idles high, as the references' DigitalOut.
#include "mlperf_dut.h"
#include "stm32f7xx.h"

#define TS_PORT (TG_TIMESTAMP_PIN / 16u)
#define TS_BIT (TG_TIMESTAMP_PIN % 16u)
#if TG_TIMESTAMP_PIN / 16 > 10
#error "TG_TIMESTAMP_PIN names a GPIO port past GPIOK, which the STM32F746 does not have"
#endif
// RM0385: GPIOA..GPIOK are 0x400 apart from 0x40020000 on AHB1.
#define TS_GPIO ((GPIO_TypeDef*)(GPIOA_BASE + 0x400u * TS_PORT))

void board_timestamp_pin_init(void) {
  RCC->AHB1ENR |= RCC_AHB1ENR_GPIOAEN << TS_PORT;
  (void)RCC->AHB1ENR;  // the port's clock is on before its registers are written
  TS_GPIO->BSRR = 1u << TS_BIT;  // high before it drives: no falling edge at configuration
  TS_GPIO->OTYPER &= ~(1u << TS_BIT);
  TS_GPIO->PUPDR &= ~(3u << (2u * TS_BIT));
  TS_GPIO->MODER = (TS_GPIO->MODER & ~(3u << (2u * TS_BIT))) | (1u << (2u * TS_BIT));  // general output
}

void board_timestamp_pin_write(int level) { TS_GPIO->BSRR = level ? 1u << TS_BIT : 1u << (TS_BIT + 16u); }
