// tg_huffman.c: the TGH1 decoder (see tg_huffman.h). Canonical codes are decoded a bit at a
// time from the count of codes per length (as zlib's puff.c does): no table beyond the
// 256 symbols, so it stays small on a Cortex-M0.
#include "tg_huffman.h"

#define TG_MAX_BITS 15
#define TG_HEADER 136

int32_t tg_huffman_size(const uint8_t* image, size_t image_len) {
  if (image_len < TG_HEADER || image[0] != 'T' || image[1] != 'G' || image[2] != 'H' || image[3] != '1') {
    return -1;
  }
  uint32_t n = (uint32_t)image[4] | ((uint32_t)image[5] << 8) | ((uint32_t)image[6] << 16) |
               ((uint32_t)image[7] << 24);
  return n > 0x7fffffffu ? -1 : (int32_t)n;
}

int32_t tg_huffman_decode(const uint8_t* image, size_t image_len, uint8_t* out, size_t out_cap) {
  int32_t size = tg_huffman_size(image, image_len);
  if (size < 0 || (size_t)size > out_cap) return -1;
  uint16_t count[TG_MAX_BITS + 1] = {0};
  uint16_t offset[TG_MAX_BITS + 1];
  uint8_t symbol[256];
  for (int s = 0; s < 256; ++s) count[(image[8 + s / 2] >> ((s & 1) * 4)) & 15]++;
  // Reject an over-subscribed set of lengths: its codes would not be a prefix code.
  int32_t left = 1;
  for (int len = 1; len <= TG_MAX_BITS; ++len) {
    left = (left << 1) - count[len];
    if (left < 0) return -1;
  }
  offset[1] = 0;
  for (int len = 1; len < TG_MAX_BITS; ++len) offset[len + 1] = offset[len] + count[len];
  for (int s = 0; s < 256; ++s) {
    int len = (image[8 + s / 2] >> ((s & 1) * 4)) & 15;
    if (len) symbol[offset[len]++] = (uint8_t)s;
  }
  const uint8_t* in = image + TG_HEADER;
  size_t bits = (image_len - TG_HEADER) * 8, pos = 0;
  for (int32_t n = 0; n < size; ++n) {
    int32_t code = 0, first = 0, index = 0;
    for (int len = 1;; ++len) {
      if (len > TG_MAX_BITS || pos >= bits) return -1;
      code |= (in[pos >> 3] >> (7 - (pos & 7))) & 1;
      ++pos;
      int32_t c = count[len];
      if (code - first < c) {
        out[n] = symbol[index + code - first];
        break;
      }
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
  }
  return size;
}
