// harness.h: the lines tinygen firmware prints, one per event, for `tinygen monitor`.
//
// Format, version 1 (documented in firmware/README.md):
//   TG1 <kind> <key>=<value> <key>=<value> ... *<crc>\r\n
// kind is one word (boot, inf, done, err); values are decimal integers, or hex byte
// strings; <crc> is the CRC-8 (polynomial 0x07, init 0) of every byte before " *", as two
// lowercase hex digits. A line with a bad CRC is corrupt and the host drops it.
#ifndef TINYGEN_HARNESS_H_
#define TINYGEN_HARNESS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void tg_begin(const char* kind);
void tg_u32(const char* key, uint32_t value);
void tg_i32(const char* key, int32_t value);
void tg_str(const char* key, const char* value);  // value must not contain spaces
void tg_hex(const char* key, const void* bytes, size_t n);
void tg_end(void);

// The port's 32-bit cycle count extended to 64 bits, and microseconds from it: neither wraps
// within a run (board_cycles() wraps every 2^32 cycles, 89 s at 48 MHz). Each call notices
// at most one wrap since the last, so call it at least once per wrap period while timing
// (the MLPerf DUT does, after every inference); an idle gap longer than that loses whole
// wraps, which keeps the count increasing but no longer exact across the gap.
uint64_t tg_cycles64(void);
uint64_t tg_micros64(void);

// CRC-8, polynomial 0x07, initial value 0: what the host checks.
uint8_t tg_crc8(uint8_t crc, const void* data, size_t n);

#ifdef __cplusplus
}
#endif

#endif  // TINYGEN_HARNESS_H_
