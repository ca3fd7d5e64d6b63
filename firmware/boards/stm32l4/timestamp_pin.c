// MLPerf Tiny energy mode on the STM32L4 (firmware/common/mlperf_dut.h): the timestamp pin the
// board profile names (serial.timestamp_pin = port x 16 + pin, PA0 = 0, PF13 = 93, as mbed's
// PinName numbers them), a push-pull output that idles high, as the references' DigitalOut.
#include "mlperf_dut.h"
#include "stm32l4xx.h"

#define TS_PORT (TG_TIMESTAMP_PIN / 16u)
#define TS_BIT (TG_TIMESTAMP_PIN % 16u)
#if TG_TIMESTAMP_PIN / 16 > 8
#error "TG_TIMESTAMP_PIN names a GPIO port past GPIOI, which the STM32L4R5 does not have"
#endif
// RM0432: GPIOA..GPIOI are 0x400 apart from 0x48000000 on AHB2.
#define TS_GPIO ((GPIO_TypeDef*)(GPIOA_BASE + 0x400u * TS_PORT))

void board_timestamp_pin_init(void) {
  if (TS_PORT == 6u) PWR->CR2 |= PWR_CR2_IOSV;  // port G runs from VDDIO2, isolated until declared valid
  RCC->AHB2ENR |= RCC_AHB2ENR_GPIOAEN << TS_PORT;
  (void)RCC->AHB2ENR;  // the port's clock is on before its registers are written
  TS_GPIO->BSRR = 1u << TS_BIT;  // high before it drives: no falling edge at configuration
  TS_GPIO->OTYPER &= ~(1u << TS_BIT);
  TS_GPIO->PUPDR &= ~(3u << (2u * TS_BIT));
  TS_GPIO->MODER = (TS_GPIO->MODER & ~(3u << (2u * TS_BIT))) | (1u << (2u * TS_BIT));  // general output
}

void board_timestamp_pin_write(int level) { TS_GPIO->BSRR = level ? 1u << TS_BIT : 1u << (TS_BIT + 16u); }
