// Board port for the BBC micro:bit v1 (nRF51822, Cortex-M0), on registers alone: UART0 on
// the DAPLink's virtual COM port, TIMER0 for time. Boots in QEMU's microbit machine as well.
//
// The nRF51's Cortex-M0 has neither a DWT cycle counter nor a SysTick (QEMU's model provides a
// SysTick anyway, which the chip does not have), so cycles come from TIMER0: 32 bits, no
// prescaler, counting the 16 MHz HFCLK that also clocks the CPU. Under QEMU's `-icount shift=0`
// one instruction is one nanosecond, so a tick there is 62.5 instructions: deterministic, but
// not cycles of a real chip.
#include "tinygen_board.h"

#define HFCLK_HZ 16000000u
#define REG(addr) (*(volatile uint32_t*)(addr))

#define CLOCK_BASE 0x40000000u
#define CLOCK_TASKS_HFCLKSTART REG(CLOCK_BASE + 0x000)
#define CLOCK_EVENTS_HFCLKSTARTED REG(CLOCK_BASE + 0x100)

#define UART0_BASE 0x40002000u
#define UART_TASKS_STARTRX REG(UART0_BASE + 0x000)
#define UART_TASKS_STARTTX REG(UART0_BASE + 0x008)
#define UART_EVENTS_RXDRDY REG(UART0_BASE + 0x108)
#define UART_EVENTS_TXDRDY REG(UART0_BASE + 0x11C)
#define UART_ENABLE REG(UART0_BASE + 0x500)
#define UART_PSELTXD REG(UART0_BASE + 0x50C)
#define UART_PSELRXD REG(UART0_BASE + 0x514)
#define UART_RXD REG(UART0_BASE + 0x518)
#define UART_TXD REG(UART0_BASE + 0x51C)
#define UART_BAUDRATE REG(UART0_BASE + 0x524)
#define UART_CONFIG REG(UART0_BASE + 0x56C)
#define UART_ENABLE_ENABLED 4u
#define UART_BAUDRATE_115200 0x01D7E000u
#define UART_BAUDRATE_9600 0x00275000u
// 115200 unless the build says otherwise (MLPerf Tiny's energy mode runs its UART at 9600).
#if defined(TG_UART_BAUD) && TG_UART_BAUD == 9600
#define UART_BAUDRATE_VALUE UART_BAUDRATE_9600
#else
#define UART_BAUDRATE_VALUE UART_BAUDRATE_115200
#endif

#define TIMER0_BASE 0x40008000u
#define TIMER_TASKS_START REG(TIMER0_BASE + 0x000)
#define TIMER_TASKS_CLEAR REG(TIMER0_BASE + 0x00C)
#define TIMER_TASKS_CAPTURE0 REG(TIMER0_BASE + 0x040)
#define TIMER_MODE REG(TIMER0_BASE + 0x504)
#define TIMER_BITMODE REG(TIMER0_BASE + 0x508)
#define TIMER_PRESCALER REG(TIMER0_BASE + 0x510)
#define TIMER_CC0 REG(TIMER0_BASE + 0x540)
#define TIMER_MODE_TIMER 0u
#define TIMER_BITMODE_32BIT 3u

#define GPIO_BASE 0x50000000u
#define GPIO_OUTSET REG(GPIO_BASE + 0x508)
#define GPIO_PIN_CNF(pin) REG(GPIO_BASE + 0x700 + 4u * (pin))
#define PIN_CNF_OUTPUT 1u  // DIR output, input buffer connected, no pull
#define PIN_CNF_INPUT 0u   // DIR input, input buffer connected, no pull

// The micro:bit's DAPLink chip bridges these to its USB serial port.
#define UART_TX_PIN 24u
#define UART_RX_PIN 25u

void board_init(void) {
  // The 16 MHz crystal: the internal RC oscillator is too loose for a dependable 115200 baud.
  CLOCK_EVENTS_HFCLKSTARTED = 0;
  CLOCK_TASKS_HFCLKSTART = 1;
  while (!CLOCK_EVENTS_HFCLKSTARTED) {
  }

  GPIO_OUTSET = 1u << UART_TX_PIN;  // idle high before the UART takes the pin
  GPIO_PIN_CNF(UART_TX_PIN) = PIN_CNF_OUTPUT;
  GPIO_PIN_CNF(UART_RX_PIN) = PIN_CNF_INPUT;
  UART_PSELTXD = UART_TX_PIN;
  UART_PSELRXD = UART_RX_PIN;
  UART_BAUDRATE = UART_BAUDRATE_VALUE;
  UART_CONFIG = 0;  // 8N1, no flow control
  UART_ENABLE = UART_ENABLE_ENABLED;
  UART_TASKS_STARTTX = 1;
  UART_TASKS_STARTRX = 1;

  TIMER_MODE = TIMER_MODE_TIMER;
  TIMER_BITMODE = TIMER_BITMODE_32BIT;
  TIMER_PRESCALER = 0;
  TIMER_TASKS_CLEAR = 1;
  TIMER_TASKS_START = 1;
}

void board_serial_write(const char* data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    UART_EVENTS_TXDRDY = 0;
    UART_TXD = (uint8_t)data[i];
    while (!UART_EVENTS_TXDRDY) {
    }
  }
}

int board_serial_read(void) {
  while (!UART_EVENTS_RXDRDY) {
  }
  UART_EVENTS_RXDRDY = 0;  // before reading RXD, which lets the next byte in
  return (int)(UART_RXD & 0xFFu);
}

uint32_t board_cycles(void) {
  TIMER_TASKS_CAPTURE0 = 1;
  return TIMER_CC0;
}

uint32_t board_clock_hz(void) { return HFCLK_HZ; }

uint64_t board_micros(void) { return (uint64_t)board_cycles() * 1000000u / HFCLK_HZ; }

static volatile int exiting;

// With no debugger to answer it (a micro:bit on its own), board_exit's semihosting BKPT
// escalates to HardFault: stop here until reset. Any other fault exits with 3, which on
// such a board locks the core up, and the nRF51 resets on lockup.
void HardFault_Handler(void) {
  if (exiting) {
    for (;;) {
      __asm volatile("wfi");
    }
  }
  board_exit(3);
}

// Semihosting SYS_EXIT_EXTENDED: QEMU (run with -semihosting) exits with `code`.
void board_exit(int code) {
  exiting = 1;
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
  register uint32_t r0 __asm__("r0") = 0x20u;  // SYS_EXIT_EXTENDED
  register uint32_t r1 __asm__("r1") = (uint32_t)block;
  __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
  for (;;) {
    __asm volatile("wfi");
  }
}
