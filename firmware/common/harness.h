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

// CRC-8, polynomial 0x07, initial value 0: what the host checks.
uint8_t tg_crc8(uint8_t crc, const void* data, size_t n);

#ifdef __cplusplus
}
#endif

#endif  // TINYGEN_HARNESS_H_
