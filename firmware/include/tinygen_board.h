// tinygen_board.h: what every board port provides to tinygen's firmware.
// One implementation per board family, in firmware/boards/<family>/.
#ifndef TINYGEN_BOARD_H_
#define TINYGEN_BOARD_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Clocks, the UART and the cycle counter, ready for use.
void board_init(void);

// Blocking write of n bytes to the console UART.
void board_serial_write(const char* data, size_t n);

// Blocking read of one byte from the console UART; -1 if the port failed.
int board_serial_read(void);

// A free-running cycle count (DWT_CYCCNT, or SysTick extended in software).
uint32_t board_cycles(void);

// Core clock in Hz, for converting cycles to microseconds.
uint32_t board_clock_hz(void);

// Microseconds since board_init(), from the cycle counter.
uint64_t board_micros(void);

// Stop: in an emulator, exit with `code`; on hardware, wait for a reset.
void board_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif  // TINYGEN_BOARD_H_
