// tg_sparse.h: FULLY_CONNECTED and pointwise CONV_2D whose weights are mostly exact zeros (an
// unstructured-pruned model), stored without them: per output channel (a row of in_depth or
// in_c weights) the positions of the weights kept, as a bitmask or as byte steps, and the
// weights kept, as int8 or as b-bit indices into one small table (a pruned and clustered model).
// The kernels walk only the weights kept: the integer sum is the dense kernel's (a zero adds
// nothing, and the folded bias, bias - zero_point_in * sum(w), is the same), so are the outputs.
#ifndef TG_SPARSE_H_
#define TG_SPARSE_H_

#include <stdint.h>

#include "tg_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // counts NULL, a bitmask: per row (depth + 7) / 8 bytes, a bit set where the weight is kept,
  // the first position in the top bit (tg_sparse.c: walk_mask). counts set, steps: entry k's
  // byte is its position less the previous entry's in the row (the row's first: its position);
  // a gap over 255 takes entries of weight 0 and step 255.
  const uint8_t* index;
  const uint16_t* counts;    // steps: entries per row
  const int8_t* values;      // the entries' weights, row after row; NULL with a table:
  const uint8_t* indices;    // entry k's weight is table[index k], `bits` bits an index, packed as
  const int8_t* table;       // tg_lut_weights' stream (tg_lut.h), one table of `entries`
  int32_t bits, entries;
  int32_t max_row;           // the most entries a row has (with a table: the decoded row's bytes)
} tg_sparse_weights;

typedef struct {
  tg_conv_params conv;       // conv.filter NULL; reads folded_bias, multiplier, shift / rounding
  tg_sparse_weights w;
} tg_conv_sparse_params;

typedef struct {
  tg_fully_connected_params fc;   // fc.filter NULL; fc.folded_bias set (symmetric weights)
  tg_sparse_weights w;
} tg_fully_connected_sparse_params;

// A 1x1 convolution (stride 1, no padding, no groups): each output channel over every pixel,
// two pixels per walk of its entries.
void tg_sparse_conv2d_1x1(const tg_conv_sparse_params* p, const int8_t* in, int8_t* out);
void tg_sparse_fully_connected(const tg_fully_connected_sparse_params* p, const int8_t* in, int8_t* out);

#ifdef __cplusplus
}
#endif

#endif  // TG_SPARSE_H_
