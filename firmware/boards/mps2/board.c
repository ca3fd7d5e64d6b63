// Board port for QEMU's mps2-an386: CMSDK UART0 for the console, SysTick for time.
//
// QEMU's M-profile model has no DWT cycle counter, so cycles come from SysTick (24-bit,
// counting down at the 25 MHz system clock) extended to 32 bits in its interrupt. With
// `-icount shift=0` QEMU advances time by 1 ns per instruction, so these counts are
// deterministic and comparable between builds, but they are not cycles of a real chip.
#include "tinygen_board.h"

#define SYSCLK_HZ 25000000u
// 115200 unless the build says otherwise (MLPerf Tiny's energy mode runs its UART at 9600);
// QEMU ignores the divider, a real MPS2 does not.
#ifdef TG_UART_BAUD
#define BAUD ((uint32_t)(TG_UART_BAUD))
#else
#define BAUD 115200u
#endif
#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t*)(UART0_BASE + 0x00))
#define UART_STATE (*(volatile uint32_t*)(UART0_BASE + 0x04))
#define UART_CTRL (*(volatile uint32_t*)(UART0_BASE + 0x08))
#define UART_BAUDDIV (*(volatile uint32_t*)(UART0_BASE + 0x10))
#define UART_STATE_TXFULL 1u
#define UART_STATE_RXFULL 2u
#define UART_CTRL_TXEN 1u
#define UART_CTRL_RXEN 2u

#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define SYSTICK_RELOAD 0x00FFFFFFu

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

void board_init(void) {
  UART_BAUDDIV = SYSCLK_HZ / BAUD;
  UART_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN;
  SYST_RVR = SYSTICK_RELOAD;
  SYST_CVR = 0;
  SYST_CSR = 0x7;  // processor clock, interrupt on wrap, enabled
}

void board_serial_write(const char* data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    while (UART_STATE & UART_STATE_TXFULL) {
    }
    UART_DATA = (uint8_t)data[i];
  }
}

int board_serial_read(void) {
  while (!(UART_STATE & UART_STATE_RXFULL)) {
  }
  return (int)(UART_DATA & 0xFFu);
}

uint32_t board_cycles(void) {
  uint32_t wraps, value;
  do {  // re-read if the counter wrapped between the two reads
    wraps = systick_wraps;
    value = SYST_CVR;
  } while (wraps != systick_wraps);
  return wraps * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - value);
}

uint32_t board_clock_hz(void) { return SYSCLK_HZ; }

uint64_t board_micros(void) { return (uint64_t)board_cycles() * 1000000u / SYSCLK_HZ; }

// Semihosting SYS_EXIT_EXTENDED: QEMU (run with -semihosting) exits with `code`.
void board_exit(int code) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
  register uint32_t r0 __asm__("r0") = 0x20u;  // SYS_EXIT_EXTENDED
  register uint32_t r1 __asm__("r1") = (uint32_t)block;
  __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
  for (;;) {
  }
}
