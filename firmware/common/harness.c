// harness.c: writes version-1 lines (see harness.h) straight to the board's UART.
// No printf: the formatting here is all the firmware needs, and it keeps newlib's
// formatted I/O out of the image.
#include "harness.h"

#include <string.h>

#include "tinygen_board.h"

static uint8_t line_crc;

uint8_t tg_crc8(uint8_t crc, const void* data, size_t n) {
  const uint8_t* p = (const uint8_t*)data;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int b = 0; b < 8; b++) crc = (uint8_t)((crc & 0x80u) ? (crc << 1) ^ 0x07u : crc << 1);
  }
  return crc;
}

static void emit(const char* s, size_t n) {
  line_crc = tg_crc8(line_crc, s, n);
  board_serial_write(s, n);
}

static void emit_str(const char* s) { emit(s, strlen(s)); }

static void emit_key(const char* key) {
  emit(" ", 1);
  emit_str(key);
  emit("=", 1);
}

static void emit_u32(uint32_t v) {
  char buf[11];
  size_t i = sizeof(buf);
  do {
    buf[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0);
  emit(buf + i, sizeof(buf) - i);
}

void tg_begin(const char* kind) {
  line_crc = 0;
  emit_str("TG1 ");
  emit_str(kind);
}

void tg_u32(const char* key, uint32_t value) {
  emit_key(key);
  emit_u32(value);
}

void tg_i32(const char* key, int32_t value) {
  emit_key(key);
  if (value < 0) {
    emit("-", 1);
    emit_u32((uint32_t)(-(int64_t)value));
  } else {
    emit_u32((uint32_t)value);
  }
}

void tg_str(const char* key, const char* value) {
  emit_key(key);
  emit_str(value);
}

void tg_hex(const char* key, const void* bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  const uint8_t* p = (const uint8_t*)bytes;
  emit_key(key);
  for (size_t i = 0; i < n; i++) {
    char pair[2] = {digits[p[i] >> 4], digits[p[i] & 0xFu]};
    emit(pair, 2);
  }
}

void tg_end(void) {
  static const char digits[] = "0123456789abcdef";
  char tail[6] = {' ', '*', digits[line_crc >> 4], digits[line_crc & 0xFu], '\r', '\n'};
  board_serial_write(tail, sizeof(tail));
}

static uint32_t last_cycles;
static uint32_t cycle_wraps;

uint64_t tg_cycles64(void) {
  const uint32_t now = board_cycles();
  if (now < last_cycles) cycle_wraps++;
  last_cycles = now;
  return (uint64_t)cycle_wraps << 32 | now;
}

uint64_t tg_micros64(void) {
  const uint64_t c = tg_cycles64();
  const uint32_t hz = board_clock_hz();
  // in two parts, so that c * 1000000 cannot overflow however long the board has run
  return c / hz * 1000000u + c % hz * 1000000u / hz;
}
