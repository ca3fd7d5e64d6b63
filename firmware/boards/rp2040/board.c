// Board port for the Raspberry Pi Pico (RP2040, Cortex-M0+), on the user's pico-sdk.
//
// Clock: 133 MHz, the RP2040's rated maximum (datasheet, at the default 1.10 V core voltage)
// and the board profile's clock.hz. The SDK's runtime_init_clocks sets it before main from
// port.toml's defines: 12 MHz crystal x 133 = 1596 MHz VCO, / 6 / 2 (the SDK's own
// vcocalc.py answer for 133 MHz). The SDK's 125 MHz default would leave 6% on the table.
//
// Console: USB CDC through the SDK's stdio_usb and TinyUSB, the serial port a Pico's users
// already read (/dev/ttyACM0); board_init waits for the host to open it (DTR), so no line
// is lost before `tinygen monitor` or a terminal is there. Built with `make CONSOLE=uart`:
// UART0 on GP0 (TX) / GP1 (RX) at the board's baud rate, for a USB-serial adapter or a
// Picoprobe.
//
// Cycles: SysTick on the processor clock (24 bits, wrapping every 126 ms at 133 MHz),
// extended to 32 bits by its interrupt, as the Cortex-M0+ has no DWT cycle counter.
#include "tinygen_board.h"

#include "hardware/clocks.h"
#include "hardware/structs/systick.h"
#include "hardware/timer.h"
#include "hardware/uart.h"
#include "hardware/gpio.h"
#include "pico/stdio/driver.h"
#include "pico/stdio_usb.h"
#include "pico/time.h"

// MLPerf Tiny's energy mode (the build defines TG_UART_BAUD): the DUT is powered through the
// energy monitor and talks to the benchmark's IO manager over a UART, never USB; the console is
// UART0 (GP0 TX, GP1 RX) at that rate.
#ifdef TG_UART_BAUD
#undef TG_CONSOLE_UART
#define TG_CONSOLE_UART 1
#undef TG_CONSOLE_BAUD
#define TG_CONSOLE_BAUD TG_UART_BAUD
#endif
#ifndef TG_CONSOLE_BAUD
#define TG_CONSOLE_BAUD 115200
#endif

#define SYSTICK_RELOAD 0x00FFFFFFu
#define SYSTICK_ENABLE_TICKINT_CORE 0x7u  // ENABLE, TICKINT, CLKSOURCE = processor clock

static volatile uint32_t systick_wraps;
static uint64_t start_us;

void SysTick_Handler(void) { systick_wraps++; }

void board_init(void) {
  systick_hw->rvr = SYSTICK_RELOAD;
  systick_hw->cvr = 0;
  systick_hw->csr = SYSTICK_ENABLE_TICKINT_CORE;

#if TG_CONSOLE_UART
  uart_init(uart0, TG_CONSOLE_BAUD);
  gpio_set_function(0, GPIO_FUNC_UART);
  gpio_set_function(1, GPIO_FUNC_UART);
#else
  stdio_usb_init();
  while (!stdio_usb_connected()) {
    sleep_ms(10);
  }
#endif
  start_us = time_us_64();
}

void board_serial_write(const char* data, size_t n) {
#if TG_CONSOLE_UART
  uart_write_blocking(uart0, (const uint8_t*)data, n);
#else
  stdio_usb.out_chars(data, (int)n);
#endif
}

int board_serial_read(void) {
#if TG_CONSOLE_UART
  return (int)uart_getc(uart0);
#else
  char c;
  while (stdio_usb.in_chars(&c, 1) != 1) {
    if (!stdio_usb_connected()) return -1;  // the host closed the port
  }
  return (int)(uint8_t)c;
#endif
}

uint32_t board_cycles(void) {
  uint32_t wraps, value;
  do {
    wraps = systick_wraps;
    value = systick_hw->cvr;
  } while (wraps != systick_wraps);
  return wraps * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - value);
}

uint32_t board_clock_hz(void) { return clock_get_hz(clk_sys); }

// From the RP2040's 1 MHz timer (the watchdog tick off the 12 MHz crystal): microseconds
// without the 32-bit cycle count's 32 s wrap at 133 MHz.
uint64_t board_micros(void) { return time_us_64() - start_us; }

// No emulator runs the RP2040 (QEMU has no model of it): flush the console, then stay awake
// for USB, whose background task keeps answering the host, until the next reset.
void board_exit(int code) {
  (void)code;
#if TG_CONSOLE_UART
  uart_tx_wait_blocking(uart0);
#else
  stdio_usb.out_flush();
#endif
  for (;;) {
    __asm volatile("wfi");
  }
}
