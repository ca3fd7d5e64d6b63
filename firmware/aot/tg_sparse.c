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

// The walks over 4-bit LUT weights, one pixel: entry k's weight is table[nibble k of idx] (the
// low nibble first), looked up as it is used instead of decoded into a buffer first.
static inline int32_t nibble_weight(const uint8_t* idx, const int8_t* table, uint32_t k) {
  return table[(idx[k >> 1] >> ((k & 1u) << 2)) & 15u];
}

static inline uint32_t walk_mask4(const uint8_t* m, int32_t bytes, const uint8_t* idx, const int8_t* table,
                                  uint32_t k, const int8_t* x, int32_t* acc) {
  int32_t s0 = *acc;
  for (; bytes >= 4; bytes -= 4, m += 4, x += 32) {
    uint32_t bits;
    memcpy(&bits, m, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    bits = __builtin_bswap32(bits);
#endif
    while (bits) {
      const int32_t j = clz32(bits);
      bits &= ~(0x80000000u >> j);
      s0 += nibble_weight(idx, table, k++) * x[j];
    }
  }
  for (; bytes > 0; bytes--, m++, x += 8) {
    uint32_t bits = (uint32_t)*m << 24;
    while (bits) {
      const int32_t j = clz32(bits);
      bits &= ~(0x80000000u >> j);
      s0 += nibble_weight(idx, table, k++) * x[j];
    }
  }
  *acc = s0;
  return k;
}

static inline void walk_steps4(const uint8_t* d, int32_t n, const uint8_t* idx, const int8_t* table, uint32_t k,
                               const int8_t* x, int32_t* acc) {
  int32_t s0 = *acc;
  for (int32_t e = 0; e < n; e++, k++) {
    x += d[e];
    s0 += nibble_weight(idx, table, k) * x[0];
  }
  *acc = s0;
}

// The bits set in a row's mask: a word at a time (SWAR), then the last bytes.
static int32_t ones(const uint8_t* m, int32_t bytes) {
  int32_t n = 0;
  for (; bytes >= 4; bytes -= 4, m += 4) {
    uint32_t b;
    memcpy(&b, m, 4);
    b -= (b >> 1) & 0x55555555u;
    b = (b & 0x33333333u) + ((b >> 2) & 0x33333333u);
    n += (int32_t)((((b + (b >> 4)) & 0x0F0F0F0Fu) * 0x01010101u) >> 24);
  }
  for (; bytes > 0; bytes--, m++) {
    uint32_t b = *m;
    b -= (b >> 1) & 0x55u;
    b = (b & 0x33u) + ((b >> 2) & 0x33u);
    n += (int32_t)((b + (b >> 4)) & 0x0Fu);
  }
  return n;
}

// Entries [first, first + n) of a 4-bit stream (entry k: nibble k, the low one first, as
// tg_lut_decode reads it) through one table: a byte gives two weights.
static void decode4(const uint8_t* idx, const int8_t* table, int32_t first, int32_t n, int8_t* dst) {
  const uint8_t* p = idx + (first >> 1);
  int32_t i = 0;
  if ((first & 1) && n > 0) dst[i++] = table[*p++ >> 4];
  for (; i + 2 <= n; i += 2) {
    const uint32_t b = *p++;
    dst[i] = table[b & 15u];
    dst[i + 1] = table[b >> 4];
  }
  if (i < n) dst[i] = table[*p & 15u];
}

// Entries [first, first + n) of the LUT indices as int8 weights.
static void decode_row(const tg_sparse_weights* w, int32_t first, int32_t n, int8_t* dst) {
  if (w->bits == 4) {
    decode4(w->indices, w->table, first, n, dst);
  } else {
    const tg_lut_weights lut = {w->indices, w->table, w->bits, w->entries, 0, 0, 0, 0};
    tg_lut_decode(&lut, first, n, dst);
  }
}

#if defined(__GNUC__)
#define TG_SPARSE_NOINLINE __attribute__((noinline))
#else
#define TG_SPARSE_NOINLINE
#endif

// rows output channels (each depth weights) over pixels input rows of depth values: a pointwise
// convolution's, two pixels per walk of a channel's entries.
static TG_SPARSE_NOINLINE void sparse_rows(const tg_sparse_weights* w, const stage* st, const int32_t* bias,
                                           int32_t rows, int32_t depth, int32_t pixels, const int8_t* in,
                                           int8_t* out) {
  // locals, not w->: the int8 stores may alias the parameter block
  const stage s = *st;
  const int32_t bytes = (depth + 7) >> 3;
  const uint16_t* const counts = w->counts;    // set: the step form
  const int8_t* values = w->values;            // NULL: LUT indices, a row decoded at a time
  const uint8_t* index = w->index;             // the row's mask, or its first step
  int8_t decoded[values ? 1 : w->max_row];
  int32_t first = 0;   // the row's first entry (with a table)
  for (int32_t r = 0; r < rows; r++, out++) {
    int32_t n = 0;
    if (counts) {
      n = counts[r];
    } else if (!values) {
      n = ones(index, bytes);
    }
    const int8_t* v = values ? values : decoded;
    if (!values) {
      decode_row(w, first, n, decoded);
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

// One input row (a fully connected layer's): the same walks with little else live in the loop.
// decoded: w->max_row bytes for a row of LUT weights.
static TG_SPARSE_NOINLINE void rows_one(const tg_sparse_weights* w, const stage* st, const int32_t* bias,
                                        int32_t rows, int32_t depth, const int8_t* x, int8_t* out,
                                        int8_t* decoded) {
  const stage s = *st;
  const uint8_t* index = w->index;
  const int8_t* values = w->values;
  const uint16_t* const counts = w->counts;
  int32_t first = 0;   // the row's first entry (LUT weights)
  int32_t unused = 0;
  if (!values && w->bits == 4) {
    const uint8_t* const idx = w->indices;
    const int8_t* const table = w->table;
    const int32_t bytes = (depth + 7) >> 3;
    uint32_t k = 0;
    for (int32_t r = 0; r < rows; r++) {
      int32_t acc = bias[r];
      if (counts) {
        const int32_t n = counts[r];
        walk_steps4(index, n, idx, table, k, x, &acc);
        index += n;
        k += (uint32_t)n;
      } else {
        k = walk_mask4(index, bytes, idx, table, k, x, &acc);
        index += bytes;
      }
      out[r] = requant(&s, acc, r);
    }
    return;
  }
  if (counts) {
    for (int32_t r = 0; r < rows; r++) {
      const int32_t n = counts[r];
      const int8_t* v = values ? values : decoded;
      if (!values) {
        decode_row(w, first, n, decoded);
        first += n;
      }
      int32_t acc = bias[r];
      walk_steps(index, n, v, x, 0, 0, &acc, &unused);
      index += n;
      if (values) values += n;
      out[r] = requant(&s, acc, r);
    }
    return;
  }
  const int32_t bytes = (depth + 7) >> 3;
  for (int32_t r = 0; r < rows; r++, index += bytes) {
    const int8_t* v = values ? values : decoded;
    if (!values) {
      const int32_t n = ones(index, bytes);
      decode_row(w, first, n, decoded);
      first += n;
    }
    int32_t acc = bias[r];
    const int8_t* end = walk_mask(index, bytes, v, x, 0, 0, &acc, &unused);
    if (values) values = end;
    out[r] = requant(&s, acc, r);
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
  int8_t decoded[p->w.values ? 1 : p->w.max_row];
  for (int32_t b = 0; b < q->batches; b++, in += q->in_depth, out += q->out_depth) {
    rows_one(&p->w, &s, q->folded_bias, q->out_depth, q->in_depth, in, out, decoded);
  }
}
