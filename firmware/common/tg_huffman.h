// tg_huffman.h: decode a TGH1 image (a model blob canonical-Huffman-coded by
// tinygen/model/coded.py) into RAM or a flash staging buffer, for storage and
// over-the-air updates.
//
// TGH1: "TGH1", the decoded length (uint32 little-endian), 128 bytes of 4-bit code
// lengths for byte values 0..255 (low nibble first, 0 = absent, at most 15), then the
// canonical codes, most significant bit first.
#ifndef TINYGEN_HUFFMAN_H_
#define TINYGEN_HUFFMAN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The decoded length an image announces, or -1 when `image` is not a TGH1 image.
int32_t tg_huffman_size(const uint8_t* image, size_t image_len);

// Decode `image` into `out` (`out_cap` bytes). Returns the decoded length, or -1 when the
// image is malformed (bad header, invalid lengths, a code that does not exist, truncated)
// or `out` is too small. Uses about 600 bytes of stack, no heap.
int32_t tg_huffman_decode(const uint8_t* image, size_t image_len, uint8_t* out, size_t out_cap);

#ifdef __cplusplus
}
#endif

#endif  // TINYGEN_HUFFMAN_H_
