// tg_lut.h: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED whose weights are stored as b-bit
// indices (b = 1..7) into small int8 tables, one per tensor or one per output channel (a
// clustered model: each weight tensor, or each channel, holds few distinct values). Each
// kernel decodes the weights into a stack buffer and runs tinygen's dense dot products over
// them, so the sums, and the outputs, are the dense kernels' to the bit.
#ifndef TG_LUT_H_
#define TG_LUT_H_

#include <stdint.h>

#include "tg_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // element i's index is bits [i * bits, (i + 1) * bits) of the stream, least significant first
  // (tg_lut_fully_connected_4: two bytes per four weights, see there)
  const uint8_t* indices;
  const int8_t* table;       // `entries` values per table
  int32_t bits, entries;
  int32_t count;             // weights in the tensor
  int32_t per_channel;       // 0: one table; 1: one per output channel
  int32_t channel_elems;     // per channel, channel-major layouts (OHWI, FULLY_CONNECTED): weights per channel
  int32_t channels_minor;    // per channel, DEPTHWISE_CONV_2D's 1HWO: the channels, innermost (else 0)
} tg_lut_weights;

// Weights [first, first + n) of the tensor, as int8, into dst.
void tg_lut_decode(const tg_lut_weights* w, int32_t first, int32_t n, int8_t* dst);

typedef struct {
  tg_conv_params conv;       // conv.filter is NULL: the kernel points it at the decoded weights
                             // (tg_lut_pointwise reads only conv.folded_bias; conv.bias is NULL)
  tg_lut_weights w;
} tg_conv_lut_params;

typedef struct {
  tg_fully_connected_params fc;   // fc.filter NULL; fc.folded_bias set (symmetric weights)
  tg_lut_weights w;
} tg_fully_connected_lut_params;

// The whole filter decoded onto the stack (w.count bytes), then the dense kernel of that name.
void tg_lut_conv2d(const tg_conv_lut_params* p, const int8_t* in, int8_t* out);
void tg_lut_conv2d_1x1(const tg_conv_lut_params* p, const int8_t* in, int8_t* out);
void tg_lut_depthwise_conv2d(const tg_conv_lut_params* p, const int8_t* in, int8_t* out);
// A pointwise convolution too large to decode whole: two filters at a time (2 * in_c bytes of
// stack), each pair run over every pixel, two pixels per pass, as tg_conv2d_1x1 does.
void tg_lut_pointwise(const tg_conv_lut_params* p, const int8_t* in, int8_t* out);
// FULLY_CONNECTED, four rows at a time decoded TG_LUT_FC_CHUNK columns at a time.
void tg_lut_fully_connected(const tg_fully_connected_lut_params* p, const int8_t* in, int8_t* out);
// FULLY_CONNECTED with one table of 16 (4-bit indices), in_depth a multiple of 4: each four
// weights are two bytes, (i, i+2) and (i+1, i+3) as low and high nibble, so that with the DSP
// a byte looks up a pair of 16-bit weights (a 256-word table on the stack, built per call) that
// SMLAD multiplies with SXTB16's pairs of inputs: nothing is decoded into a buffer. Each four
// rows are interleaved by blocks of four columns (the rows' two bytes in turn), run four rows
// per pass (on a Cortex-M with DSP, written out in assembly); the last out_depth % 4 rows follow
// one after another.
void tg_lut_fully_connected_4(const tg_fully_connected_lut_params* p, const int8_t* in, int8_t* out);

#ifdef __cplusplus
}
#endif

#endif  // TG_LUT_H_
