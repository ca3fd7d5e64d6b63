// tg_sparse.c: FULLY_CONNECTED and pointwise CONV_2D over sparse weights (tg_sparse.h). Each
// output channel's kept weights are walked once per two pixels (a fully connected layer: once
// per batch row), each multiplied with the input at its position: the products the dense
// kernels sum, less the zeros, so the same integer sums and, requantized as they are, the same
// outputs as TFLite's reference kernels on the pruned model.
#include <stddef.h>
#include <string.h>

#include "tg_fixedpoint.h"
#include "tg_kernels.h"
#include "tg_lut.h"
#include "tg_sparse.h"

// The output stage of either layer, copied out of its parameter block once per call.
typedef struct {
  const int32_t* multiplier;
  const int32_t* shift;
  const int32_t* rounding;   // conv: the one-multiply stage where the host proved it, else NULL
  int32_t out_offset, act_min, act_max, per_channel, single_rounding;
} stage;

#if defined(__GNUC__)
#define TG_SPARSE_INLINE inline __attribute__((always_inline))
#else
#define TG_SPARSE_INLINE inline
#endif

static TG_SPARSE_INLINE int8_t requant(const stage* s, int32_t acc, int32_t c) {
  if (s->rounding) {
    acc = tg_requant_rounded(acc, s->multiplier[c], s->rounding[c]);
  } else {
    const int32_t q = s->per_channel ? c : 0;
    acc = (s->single_rounding ? tg_mbqm_single(acc, s->multiplier[q], s->shift[q])
                              : tg_requant(acc, s->multiplier[q], s->shift[q])) + s->out_offset;
  }
  return (int8_t)tg_clamp32(acc, s->act_min, s->act_max);
}

static inline int32_t clz32(uint32_t bits) {
#if defined(__GNUC__)
  return __builtin_clz(bits);   // one CLZ on a Cortex-M3/M4/M7
#else
  int32_t j = 0;
  while (!(bits & 0x80000000u)) bits <<= 1, j++;
  return j;
#endif
}

// The kept weights of `bits` (bit 31 - j: position j of x) against x (and x + step when two).
#define TG_SPARSE_BITS(bits, x)                \
  while (bits) {                               \
    const int32_t j = clz32(bits);             \
    const int32_t w = *v++;                    \
    bits &= ~(0x80000000u >> j);              \
    s0 += w * x[j];                            \
    if (two) s1 += w * x[j + step];            \
  }

// One row's kept weights v against pixel x (and x + step when two): the bitmask form, a word
// of it at a time, the first position in the top bit (what CLZ finds): per 32 positions a
// little-endian word whose bit 31 - b is position b; the row's last depth % 32 positions (up to
// 3 bytes), each byte's bit 7 - b for position b. Returns the weight after the row's last.
// Called with `two` a constant: each loop is built for one case.
static inline const int8_t* walk_mask(const uint8_t* m, int32_t bytes, const int8_t* v, const int8_t* x,
                                      int32_t step, const int two, int32_t* a0, int32_t* a1) {
  int32_t s0 = *a0, s1 = *a1;
  for (; bytes >= 4; bytes -= 4, m += 4, x += 32) {
    uint32_t bits;
    memcpy(&bits, m, 4);   // one LDR where the core takes unaligned words
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    bits = __builtin_bswap32(bits);
#endif
    TG_SPARSE_BITS(bits, x)
  }
  for (; bytes > 0; bytes--, m++, x += 8) {
    uint32_t bits = (uint32_t)*m << 24;
    TG_SPARSE_BITS(bits, x)
  }
  *a0 = s0;
  *a1 = s1;
  return v;
}

// The same for the step form: n entries, steps d.
static inline void walk_steps(const uint8_t* d, int32_t n, const int8_t* v, const int8_t* x, int32_t step,
                              const int two, int32_t* a0, int32_t* a1) {
  int32_t s0 = *a0, s1 = *a1;
  int32_t k = 0;
  if (!two) {
    // four entries a pass: the loop's compare and branch once for four products
    for (; k + 4 <= n; k += 4) {
      const int8_t* x0 = x + d[k];
      const int8_t* x1 = x0 + d[k + 1];
      const int8_t* x2 = x1 + d[k + 2];
      x = x2 + d[k + 3];
      s0 += v[k] * x0[0] + v[k + 1] * x1[0] + v[k + 2] * x2[0] + v[k + 3] * x[0];
    }
  }
  for (; k < n; k++) {
    x += d[k];
    const int32_t w = v[k];
    s0 += w * x[0];
    if (two) s1 += w * x[step];
  }
  *a0 = s0;
  *a1 = s1;
}

#if defined(__GNUC__)
#define TG_SPARSE_NOINLINE __attribute__((noinline))
#else
#define TG_SPARSE_NOINLINE
#endif

// rows output channels (each depth weights) over pixels input rows of depth values. Out of
// line: both kernels share its code. (A copy per form, each with its loops alone, ran AD01
// pruned to 80% in 3% fewer instructions for 1.1 KB more code: not taken.)
static TG_SPARSE_NOINLINE void sparse_rows(const tg_sparse_weights* w, const stage* st, const int32_t* bias,
                                           int32_t rows, int32_t depth, int32_t pixels, const int8_t* in,
                                           int8_t* out) {
  // locals, not w->: the int8 stores may alias the parameter block
  const stage s = *st;
  const int32_t bytes = (depth + 7) >> 3;
  const uint16_t* const counts = w->counts;    // set: the step form
  const int8_t* values = w->values;            // NULL: LUT indices, a row decoded at a time
  const uint8_t* index = w->index;             // the row's mask, or its first step
  const tg_lut_weights lut = {w->indices, w->table, w->bits, w->entries, 0, 0, 0, 0};
  int8_t decoded[values ? 1 : w->max_row];
  int32_t first = 0;   // the row's first entry (with a table)
  for (int32_t r = 0; r < rows; r++, out++) {
    int32_t n = 0;
    if (counts) {
      n = counts[r];
    } else if (!values) {
      for (int32_t i = 0; i < bytes; i++) {
        for (uint32_t b = index[i]; b; b &= b - 1u) n++;
      }
    }
    const int8_t* v = values ? values : decoded;
    if (!values) {
      tg_lut_decode(&lut, first, n, decoded);
      first += n;
    }
    const int8_t* x = in;
    int8_t* y = out;
    const int8_t* end = v;
    int32_t px = pixels;
    for (; px >= 2; px -= 2, x += 2 * depth, y += 2 * rows) {
      int32_t a0 = bias[r], a1 = a0;
      if (counts) walk_steps(index, n, v, x, depth, 1, &a0, &a1);
      else end = walk_mask(index, bytes, v, x, depth, 1, &a0, &a1);
      y[0] = requant(&s, a0, r);
      y[rows] = requant(&s, a1, r);
    }
    if (px) {
      int32_t a0 = bias[r], a1 = 0;
      if (counts) walk_steps(index, n, v, x, depth, 0, &a0, &a1);
      else end = walk_mask(index, bytes, v, x, depth, 0, &a0, &a1);
      y[0] = requant(&s, a0, r);
    }
    if (counts) {
      index += n;
      if (values) values += n;
    } else {
      index += bytes;
      if (values) values = end;
    }
  }
}

void tg_sparse_conv2d_1x1(const tg_conv_sparse_params* p, const int8_t* in, int8_t* out) {
  const tg_conv_params* q = &p->conv;
  const stage s = {q->multiplier, q->shift, q->rounding, q->out_offset, q->act_min, q->act_max, 1, 0};
  sparse_rows(&p->w, &s, q->folded_bias, q->out_c, q->in_c, q->out_h * q->out_w, in, out);
}

void tg_sparse_fully_connected(const tg_fully_connected_sparse_params* p, const int8_t* in, int8_t* out) {
  const tg_fully_connected_params* q = &p->fc;
  const stage s = {q->multiplier, q->shift, NULL, q->out_offset, q->act_min, q->act_max, q->per_channel,
                   q->single_rounding};
  sparse_rows(&p->w, &s, q->folded_bias, q->out_depth, q->in_depth, q->batches, in, out);
}
