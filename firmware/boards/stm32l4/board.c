// Board port for the NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4F), on the CMSIS device header alone
// (STM32CubeL4's Drivers/CMSIS): 120 MHz from HSI16 through the PLL, the ST-LINK's virtual COM
// port on LPUART1 at 115200 8N1, and the DWT cycle counter.
#include "stm32l4xx.h"
#include "tinygen_board.h"

#define SYSCLK_HZ 120000000u
#define HSI16_HZ 16000000u
// 115200 unless the build says otherwise (MLPerf Tiny's energy mode runs its UART at 9600).
#ifdef TG_UART_BAUD
#define BAUD ((uint32_t)(TG_UART_BAUD))
#else
#define BAUD 115200u
#endif
#define LPUART_BRR ((256ull * HSI16_HZ + BAUD / 2u) / BAUD)
_Static_assert(LPUART_BRR >= 0x300u && LPUART_BRR <= 0xFFFFFu, "LPUART1 cannot make this baud rate from HSI16");

// PLL: HSI16 / M 2 = 8 MHz into the VCO (RM0432: 2.66-16 MHz), x N 30 = 240 MHz (64-344 MHz),
// / R 2 = 120 MHz for SYSCLK. HSI16 rather than MSI: factory-trimmed, and it needs no LSE to
// hold the UART's baud rate.
#define PLL_M 2u
#define PLL_N 30u

// RM0432, "Dynamic voltage scaling management": above 80 MHz the regulator must be in Range 1
// boost mode, and the switch to a faster SYSCLK goes through HCLK = SYSCLK / 2 for 1 us. Flash:
// 5 wait states up to 120 MHz in Range 1 boost (RM0432, table "Number of wait states").
static void clock_120mhz(void) {
  RCC->APB1ENR1 |= RCC_APB1ENR1_PWREN;
  (void)RCC->APB1ENR1;  // the PWR clock is on before its registers are written

  RCC->CFGR = (RCC->CFGR & ~RCC_CFGR_HPRE) | RCC_CFGR_HPRE_DIV2;
  PWR->CR1 = (PWR->CR1 & ~PWR_CR1_VOS) | PWR_CR1_VOS_0;  // Range 1 (the reset value, stated)
  PWR->CR5 &= ~PWR_CR5_R1MODE;                           // Range 1 boost
  while (PWR->SR2 & PWR_SR2_VOSF) {
  }
  FLASH->ACR = (FLASH->ACR & ~FLASH_ACR_LATENCY) | FLASH_ACR_LATENCY_5WS | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN |
               FLASH_ACR_DCEN;
  while ((FLASH->ACR & FLASH_ACR_LATENCY) != FLASH_ACR_LATENCY_5WS) {
  }

  RCC->CR |= RCC_CR_HSION;
  while (!(RCC->CR & RCC_CR_HSIRDY)) {
  }
  RCC->CR &= ~RCC_CR_PLLON;
  while (RCC->CR & RCC_CR_PLLRDY) {
  }
  RCC->PLLCFGR = RCC_PLLCFGR_PLLSRC_HSI | ((PLL_M - 1u) << RCC_PLLCFGR_PLLM_Pos) |
                 (PLL_N << RCC_PLLCFGR_PLLN_Pos) | (0u << RCC_PLLCFGR_PLLR_Pos) /* R = 2 */ | RCC_PLLCFGR_PLLREN;
  RCC->CR |= RCC_CR_PLLON;
  while (!(RCC->CR & RCC_CR_PLLRDY)) {
  }

  RCC->CFGR = (RCC->CFGR & ~RCC_CFGR_SW) | RCC_CFGR_SW_PLL;  // APB1 and APB2 stay at / 1: 120 MHz
  while ((RCC->CFGR & RCC_CFGR_SWS) != RCC_CFGR_SWS_PLL) {
  }
  for (volatile uint32_t i = 0; i < 120u; i++) {  // > 1 us at HCLK 60 MHz
  }
  RCC->CFGR &= ~RCC_CFGR_HPRE;  // HCLK = SYSCLK
}

// The Nucleo-144's ST-LINK bridges LPUART1 (PG7 TX, PG8 RX, AF8) to its USB virtual COM port.
// Port G is powered from VDDIO2, which stays isolated until PWR_CR2.IOSV says it is valid.
static void console_init(void) {
  PWR->CR2 |= PWR_CR2_IOSV;
  RCC->AHB2ENR |= RCC_AHB2ENR_GPIOGEN;
  RCC->APB1ENR2 |= RCC_APB1ENR2_LPUART1EN;
  // LPUART1's kernel clock: HSI16 (on for the PLL), whatever SYSCLK is
  RCC->CCIPR = (RCC->CCIPR & ~RCC_CCIPR_LPUART1SEL) | RCC_CCIPR_LPUART1SEL_1;
  (void)RCC->APB1ENR2;

  GPIOG->AFR[0] = (GPIOG->AFR[0] & ~(0xFu << 28)) | (8u << 28);  // PG7: AF8
  GPIOG->AFR[1] = (GPIOG->AFR[1] & ~0xFu) | 8u;                  // PG8: AF8
  GPIOG->PUPDR = (GPIOG->PUPDR & ~(3u << 16)) | (1u << 16);      // PG8 pulled up: idle high unplugged
  GPIOG->OSPEEDR |= (1u << 14);                                  // PG7: medium speed
  GPIOG->MODER = (GPIOG->MODER & ~((3u << 14) | (3u << 16))) | (2u << 14) | (2u << 16);

  // LPUART: baud = 256 x f / BRR (RM0432), BRR within 0x300..0xFFFFF: 35,556 at 115200, 426,667 at
  // 9600. From PCLK1's 120 MHz, 9600 baud would need 3,200,000.
  LPUART1->CR1 = 0;
  LPUART1->BRR = (uint32_t)LPUART_BRR;
  LPUART1->CR1 = USART_CR1_TE | USART_CR1_RE | USART_CR1_UE;  // 8N1, no FIFO
}

void board_init(void) {
  clock_120mhz();
  console_init();

  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
}

void board_serial_write(const char* data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    while (!(LPUART1->ISR & USART_ISR_TXE_TXFNF)) {
    }
    LPUART1->TDR = (uint8_t)data[i];
  }
  while (!(LPUART1->ISR & USART_ISR_TC)) {  // the last byte is out before a caller stops the core
  }
}

int board_serial_read(void) {
  for (;;) {
    const uint32_t isr = LPUART1->ISR;
    if (isr & USART_ISR_RXNE_RXFNE) return (int)(LPUART1->RDR & 0xFFu);
    if (isr & (USART_ISR_ORE | USART_ISR_FE | USART_ISR_NE)) LPUART1->ICR = USART_ICR_ORECF | USART_ICR_FECF | USART_ICR_NECF;
  }
}

uint32_t board_cycles(void) { return DWT->CYCCNT; }

uint32_t board_clock_hz(void) { return SYSCLK_HZ; }

uint64_t board_micros(void) { return (uint64_t)board_cycles() * 1000000u / SYSCLK_HZ; }

// No debugger to exit to: stop here until reset (the Nucleo's reset button, or pyocd).
void board_exit(int code) {
  (void)code;
  __disable_irq();
  for (;;) {
  }
}
