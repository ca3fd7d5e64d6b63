// Board port for the STM32F746G-DISCO (STM32F746NG, Cortex-M7), on the CMSIS device header alone
// (STM32CubeF7's Drivers/CMSIS): 216 MHz from the board's 25 MHz HSE crystal through the PLL
// (HSI16 if the crystal does not start), over-drive on, I- and D-cache on, the ST-LINK's virtual
// COM port on USART1 at 115200 8N1, and the DWT cycle counter.
#include "stm32f7xx.h"
#include "tinygen_board.h"

#define SYSCLK_HZ 216000000u
#define PCLK2_HZ (SYSCLK_HZ / 2u)  // APB2 at its 108 MHz maximum; APB1 / 4: 54 MHz
// 115200 unless the build says otherwise (MLPerf Tiny's energy mode runs its UART at 9600).
#ifdef TG_UART_BAUD
#define BAUD ((uint32_t)(TG_UART_BAUD))
#else
#define BAUD 115200u
#endif
#define USART_BRR ((PCLK2_HZ + BAUD / 2u) / BAUD)
_Static_assert(USART_BRR >= 16u && USART_BRR <= 0xFFFFu, "USART1 cannot make this baud rate from PCLK2");
// How long to wait for the crystal (RM0385: HSE start-up is a few ms; this is ~100 ms at 16 MHz).
#define HSE_TIMEOUT 400000u

// RM0385 "Entering Over-drive mode": PLL on, then over-drive, then the flash latency and the
// prescalers, then SYSCLK to the PLL. 216 MHz at 2.7-3.6 V takes 7 flash wait states.
static void clock_216mhz(void) {
  RCC->APB1ENR |= RCC_APB1ENR_PWREN;
  (void)RCC->APB1ENR;  // the PWR clock is on before its registers are written
  PWR->CR1 |= PWR_CR1_VOS_0 | PWR_CR1_VOS_1;  // scale 1 (the reset value, stated): only with the PLL off

  // The VCO takes 1-2 MHz (RM0385) and gives 100-432 MHz: 1 MHz x 432 or 2 MHz x 216 = 432 MHz,
  // / P 2 = 216 MHz; / Q 9 = 48 MHz for USB and SDMMC, whatever uses it.
  uint32_t source = RCC_PLLCFGR_PLLSRC_HSE, m = 25u, n = 432u;
  RCC->CR |= RCC_CR_HSEON;
  uint32_t wait = 0;
  while (!(RCC->CR & RCC_CR_HSERDY) && ++wait < HSE_TIMEOUT) {
  }
  if (!(RCC->CR & RCC_CR_HSERDY)) {
    RCC->CR &= ~RCC_CR_HSEON;
    source = RCC_PLLCFGR_PLLSRC_HSI, m = 8u, n = 216u;
  }
  RCC->PLLCFGR = source | (m << RCC_PLLCFGR_PLLM_Pos) | (n << RCC_PLLCFGR_PLLN_Pos) |
                 (0u << RCC_PLLCFGR_PLLP_Pos) /* P = 2 */ | (9u << RCC_PLLCFGR_PLLQ_Pos);
  RCC->CR |= RCC_CR_PLLON;

  PWR->CR1 |= PWR_CR1_ODEN;
  while (!(PWR->CSR1 & PWR_CSR1_ODRDY)) {
  }
  PWR->CR1 |= PWR_CR1_ODSWEN;
  while (!(PWR->CSR1 & PWR_CSR1_ODSWRDY)) {
  }

  FLASH->ACR = FLASH_ACR_LATENCY_7WS | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN;
  while ((FLASH->ACR & FLASH_ACR_LATENCY) != FLASH_ACR_LATENCY_7WS) {
  }
  RCC->CFGR = (RCC->CFGR & ~(RCC_CFGR_HPRE | RCC_CFGR_PPRE1 | RCC_CFGR_PPRE2)) | RCC_CFGR_PPRE1_DIV4 |
              RCC_CFGR_PPRE2_DIV2;
  while (!(RCC->CR & RCC_CR_PLLRDY)) {
  }
  RCC->CFGR = (RCC->CFGR & ~RCC_CFGR_SW) | RCC_CFGR_SW_PLL;
  while ((RCC->CFGR & RCC_CFGR_SWS) != RCC_CFGR_SWS_PLL) {
  }
}

// The DISCO's ST-LINK bridges USART1 (PA9 TX, PB7 RX, both AF7) to its USB virtual COM port.
static void console_init(void) {
  RCC->AHB1ENR |= RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN;
  RCC->APB2ENR |= RCC_APB2ENR_USART1EN;
  RCC->DCKCFGR2 &= ~RCC_DCKCFGR2_USART1SEL;  // USART1 kernel clock: PCLK2, 108 MHz
  (void)RCC->APB2ENR;

  GPIOA->AFR[1] = (GPIOA->AFR[1] & ~(0xFu << 4)) | (7u << 4);    // PA9: AF7
  GPIOA->OSPEEDR |= (1u << 18);                                  // PA9: medium speed
  GPIOA->MODER = (GPIOA->MODER & ~(3u << 18)) | (2u << 18);
  GPIOB->AFR[0] = (GPIOB->AFR[0] & ~(0xFu << 28)) | (7u << 28);  // PB7: AF7
  GPIOB->PUPDR = (GPIOB->PUPDR & ~(3u << 14)) | (1u << 14);      // PB7 pulled up: idle high unplugged
  GPIOB->MODER = (GPIOB->MODER & ~(3u << 14)) | (2u << 14);

  USART1->CR1 = 0;
  USART1->BRR = USART_BRR;  // oversampling by 16: 938, 0.05% off 115200
  USART1->CR1 = USART_CR1_TE | USART_CR1_RE | USART_CR1_UE;  // 8N1
}

void board_init(void) {
  SCB_EnableICache();
  SCB_EnableDCache();  // nothing uses DMA, so no buffer needs cleaning or an uncached region
  clock_216mhz();
  console_init();

  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
  DWT->LAR = 0xC5ACCE55u;  // the M7's DWT ignores writes until its lock access register is unlocked
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
}

void board_serial_write(const char* data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    while (!(USART1->ISR & USART_ISR_TXE)) {
    }
    USART1->TDR = (uint8_t)data[i];
  }
  while (!(USART1->ISR & USART_ISR_TC)) {  // the last byte is out before a caller stops the core
  }
}

int board_serial_read(void) {
  for (;;) {
    const uint32_t isr = USART1->ISR;
    if (isr & USART_ISR_RXNE) return (int)(USART1->RDR & 0xFFu);
    if (isr & (USART_ISR_ORE | USART_ISR_FE | USART_ISR_NE)) USART1->ICR = USART_ICR_ORECF | USART_ICR_FECF | USART_ICR_NCF;
  }
}

uint32_t board_cycles(void) { return DWT->CYCCNT; }

uint32_t board_clock_hz(void) { return SYSCLK_HZ; }

uint64_t board_micros(void) { return (uint64_t)board_cycles() * 1000000u / SYSCLK_HZ; }

// No debugger to exit to: stop here until reset (the DISCO's reset button, or pyocd).
void board_exit(int code) {
  (void)code;
  __disable_irq();
  for (;;) {
  }
}
