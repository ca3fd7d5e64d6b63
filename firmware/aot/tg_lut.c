// tg_lut.c: convolutions and fully connected layers over look-up-table weights (tg_lut.h).
// The weights are decoded into a stack buffer and the dense kernels' dot products run over
// them: integer sums of the same products, so the same outputs as the dense kernels, and as
// TFLite's reference kernels on the clustered int8 model.
#include <string.h>

#include "tg_dot.h"
#include "tg_fixedpoint.h"
#include "tg_kernels.h"
#include "tg_lut.h"

// Columns of a fully connected layer decoded at a time, for four rows (4 * this many bytes of stack).
#ifndef TG_LUT_FC_CHUNK
#define TG_LUT_FC_CHUNK 256
#endif

void tg_lut_decode(const tg_lut_weights* w, int32_t first, int32_t n, int8_t* dst) {
  const uint32_t bits = (uint32_t)w->bits, mask = (1u << bits) - 1u;
  const uint32_t pos = (uint32_t)first * bits;
  const uint8_t* src = w->indices + (pos >> 3);
  // bits ≤ 7: one byte tops the buffer up to at least one index, and is only read when an
  // index still needs it, so nothing past the stream is read
  uint32_t buf = (uint32_t)*src++ >> (pos & 7u);
  uint32_t have = 8u - (pos & 7u);
  const int8_t* table = w->table;
  if (!w->per_channel) {
    for (int32_t i = 0; i < n; i++) {
      if (have < bits) {
        buf |= (uint32_t)*src++ << have;
        have += 8u;
      }
      dst[i] = table[buf & mask];
      buf >>= bits;
      have -= bits;
    }
    return;
  }
  if (w->channels_minor) {
    // 1HWO: the channel steps with every weight
    int32_t c = first % w->channels_minor;
    const int32_t channels = w->channels_minor, entries = w->entries;
    table += c * entries;
    for (int32_t i = 0; i < n; i++) {
      if (have < bits) {
        buf |= (uint32_t)*src++ << have;
        have += 8u;
      }
      dst[i] = table[buf & mask];
      buf >>= bits;
      have -= bits;
      if (++c == channels) {
        c = 0;
        table = w->table;
      } else {
        table += entries;
      }
    }
    return;
  }
  // OHWI and FULLY_CONNECTED: channel_elems weights per channel, one channel after another
  const int32_t per = w->channel_elems;
  int32_t k = first % per;
  table += (first / per) * w->entries;
  for (int32_t i = 0; i < n; i++) {
    if (have < bits) {
      buf |= (uint32_t)*src++ << have;
      have += 8u;
    }
    dst[i] = table[buf & mask];
    buf >>= bits;
    have -= bits;
    if (++k == per) {
      k = 0;
      table += w->entries;
    }
  }
}

static inline int8_t conv_out(const tg_conv_params* p, int32_t acc, int32_t c) {
  // the one-multiply stage where the host proved it (p->shift is NULL then), else TFLite's two steps
  acc = p->rounding ? tg_requant_rounded(acc, p->multiplier[c], p->rounding[c])
                    : tg_requant(acc, p->multiplier[c], p->shift[c]) + p->out_offset;
  return (int8_t)tg_clamp32(acc, p->act_min, p->act_max);
}

#if defined(__GNUC__)
#define TG_LUT_NOINLINE __attribute__((noinline))
#else
#define TG_LUT_NOINLINE
#endif

// Output channels oc (and oc + 1, if two) of every pixel, from their decoded filters f. Apart
// from the caller, whose variable-length buffer takes a register for the frame: the assembly
// of tg_dot2x2_step_s8 needs all the others.
static TG_LUT_NOINLINE void pointwise_channels(const tg_conv_params* q, const int8_t* f, int32_t oc, int two,
                                               const int8_t* x, int8_t* y) {
  const int32_t in_c = q->in_c, out_c = q->out_c, pixels = q->out_h * q->out_w;
  const int32_t b0 = q->folded_bias[oc];
  int32_t px = 0;
  y += oc;
  if (two) {
    const int32_t b1 = q->folded_bias[oc + 1];
    for (; px + 2 <= pixels; px += 2, x += 2 * in_c, y += 2 * out_c) {
      int32_t acc[4] = {b0, b0, b1, b1};
      tg_dot2x2_step_s8(f, x, in_c, in_c, acc);
      y[0] = conv_out(q, acc[0], oc);
      y[out_c] = conv_out(q, acc[1], oc);
      y[1] = conv_out(q, acc[2], oc + 1);
      y[out_c + 1] = conv_out(q, acc[3], oc + 1);
    }
    if (px < pixels) {
      int32_t acc0 = b0, acc1 = b1;
      tg_dot2_s8(f, f + in_c, x, in_c, &acc0, &acc1);
      y[0] = conv_out(q, acc0, oc);
      y[1] = conv_out(q, acc1, oc + 1);
    }
    return;
  }
  for (; px + 2 <= pixels; px += 2, x += 2 * in_c, y += 2 * out_c) {
    int32_t acc0 = b0, acc1 = b0;
    tg_dot2_s8(x, x + in_c, f, in_c, &acc0, &acc1);
    y[0] = conv_out(q, acc0, oc);
    y[out_c] = conv_out(q, acc1, oc);
  }
  if (px < pixels) y[0] = conv_out(q, b0 + tg_dot_s8(f, x, in_c), oc);
}

void tg_lut_pointwise(const tg_conv_lut_params* p, const int8_t* in, int8_t* out) {
  const tg_conv_params q = p->conv;   // a copy: the int8 stores may alias the parameter block
  int8_t f[2 * q.in_c];
  for (int32_t oc = 0; oc < q.out_c; oc += 2) {
    const int two = oc + 1 < q.out_c;
    tg_lut_decode(&p->w, oc * q.in_c, (two ? 2 : 1) * q.in_c, f);
    pointwise_channels(&q, f, oc, two, in, out);
  }
}

static inline int8_t fc_out(const tg_fully_connected_params* p, int32_t acc, int32_t o) {
  const int32_t q = p->per_channel ? o : 0;
  acc = (p->single_rounding ? tg_mbqm_single(acc, p->multiplier[q], p->shift[q])
                            : tg_requant(acc, p->multiplier[q], p->shift[q])) + p->out_offset;
  return (int8_t)tg_clamp32(acc, p->act_min, p->act_max);
}

void tg_lut_fully_connected(const tg_fully_connected_lut_params* p, const int8_t* in, int8_t* out) {
  const tg_fully_connected_params q = p->fc;
  const int32_t depth = q.in_depth;
  int8_t f[4 * TG_LUT_FC_CHUNK];
  for (int32_t b = 0; b < q.batches; b++, in += depth, out += q.out_depth) {
    for (int32_t o = 0; o < q.out_depth; o += 4) {
      const int32_t rows = q.out_depth - o < 4 ? q.out_depth - o : 4;
      int32_t acc[4] = {0, 0, 0, 0};
      for (int32_t r = 0; r < rows; r++) acc[r] = q.folded_bias[o + r];
      for (int32_t k = 0; k < depth; k += TG_LUT_FC_CHUNK) {
        const int32_t n = depth - k < TG_LUT_FC_CHUNK ? depth - k : TG_LUT_FC_CHUNK;
        for (int32_t r = 0; r < rows; r++) tg_lut_decode(&p->w, (o + r) * depth + k, n, f + r * n);
        if (rows == 4) {
          tg_dot4_s8(f, n, in + k, n, acc);
        } else {
          for (int32_t r = 0; r < rows; r++) acc[r] += tg_dot_s8(f + r * n, in + k, n);
        }
      }
      for (int32_t r = 0; r < rows; r++) out[o + r] = fc_out(&q, acc[r], o + r);
    }
  }
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TG_NO_ASM)
// Two rows of a block of four columns: their four index bytes already in i0..i3, the inputs in
// xa and xw (TG_FC4_X). The four bytes are loaded before their table words: a load whose
// address waits on the load just before it stalls a Cortex-M4.
#define TG_FC4_ROWS2(sa, sb)                                                                            \
  "ldr    %[i0], [%[tab], %[i0], lsl #2]\n\t"                                                       \
  "ldr    %[i1], [%[tab], %[i1], lsl #2]\n\t"                                                       \
  "ldr    %[i2], [%[tab], %[i2], lsl #2]\n\t"                                                       \
  "ldr    %[i3], [%[tab], %[i3], lsl #2]\n\t"                                                       \
  "smlad  %[" #sa "], %[i0], %[xa], %[" #sa "]\n\t"                                                 \
  "smlad  %[" #sa "], %[i1], %[xw], %[" #sa "]\n\t"                                                 \
  "smlad  %[" #sb "], %[i2], %[xa], %[" #sb "]\n\t"                                                 \
  "smlad  %[" #sb "], %[i3], %[xw], %[" #sb "]\n\t"
// the next four inputs, split into xa (columns 0, 2) and xw (1, 3)
#define TG_FC4_X                                                                                        \
  "ldr    %[xw], [%[x]], #4\n\t"                                                                    \
  "sxtb16 %[xa], %[xw]\n\t"                                                                         \
  "sxtb16 %[xw], %[xw], ror #8\n\t"
#endif

// One row of a paired 4-bit layer over `blocks` blocks of four columns, its two index bytes per
// block `stride` bytes after the last block's (2: a row stored alone; 8: four rows interleaved).
static int32_t fc4_row(const uint8_t* w, int32_t stride, const int8_t* x, int32_t blocks, const int8_t* t) {
  int32_t acc = 0;
  for (; blocks > 0; blocks--, w += stride, x += 4) {
    acc += t[w[0] & 15] * x[0] + t[w[1] & 15] * x[1] + t[w[0] >> 4] * x[2] + t[w[1] >> 4] * x[3];
  }
  return acc;
}

#if TG_DSP
// Four rows of a paired 4-bit layer, `blocks` blocks of four columns: acc[r] += row r . x.
// w holds the four rows interleaved: per block, each row's two bytes in turn (eight bytes).
// pair[] maps an index byte to its two weights as 16-bit halves. Not inlined: the assembly
// wants thirteen registers of its own.
static TG_LUT_NOINLINE void fc4_rows4(const uint8_t* w, const int8_t* x, int32_t blocks, const uint32_t* pair,
                                      int32_t acc[4]) {
  int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TG_NO_ASM)
  // 55 instructions per two blocks of 16 multiply-accumulates each; GCC makes the C below 30
  // per block, and spills when asked to unroll it (AD01 clustered: 566,480 instructions per
  // inference here, 597,400 from the C, 674,640 unrolled). An odd count enters at the second block.
  uint32_t xw, xa, i0, i1, i2, i3;
  if (blocks > 0) {
    __asm__ volatile(
        "lsrs   %[k], %[k], #1\n\t"          /* passes; the carry: one block more */
        "bcc    1f\n\t"
        "adds   %[k], %[k], #1\n\t"
        "adds   %[w], %[w], #8\n\t"           /* the second block reads 8 bytes back */
        "b      2f\n\t"
        "1:\n\t"
        TG_FC4_X
        "ldrb   %[i0], [%[w]], #16\n\t"      /* row 0's first byte, and on to the next two blocks */
        "ldrb   %[i1], [%[w], #-15]\n\t"
        "ldrb   %[i2], [%[w], #-14]\n\t"
        "ldrb   %[i3], [%[w], #-13]\n\t"
        TG_FC4_ROWS2(s0, s1)
        "ldrb   %[i0], [%[w], #-12]\n\t"
        "ldrb   %[i1], [%[w], #-11]\n\t"
        "ldrb   %[i2], [%[w], #-10]\n\t"
        "ldrb   %[i3], [%[w], #-9]\n\t"
        TG_FC4_ROWS2(s2, s3)
        "2:\n\t"
        TG_FC4_X
        "ldrb   %[i0], [%[w], #-8]\n\t"
        "ldrb   %[i1], [%[w], #-7]\n\t"
        "ldrb   %[i2], [%[w], #-6]\n\t"
        "ldrb   %[i3], [%[w], #-5]\n\t"
        TG_FC4_ROWS2(s0, s1)
        "ldrb   %[i0], [%[w], #-4]\n\t"
        "ldrb   %[i1], [%[w], #-3]\n\t"
        "ldrb   %[i2], [%[w], #-2]\n\t"
        "ldrb   %[i3], [%[w], #-1]\n\t"
        TG_FC4_ROWS2(s2, s3)
        "subs   %[k], %[k], #1\n\t"
        "bne    1b\n\t"
        : [w] "+r"(w), [x] "+r"(x), [k] "+r"(blocks), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3),
          [xw] "=&r"(xw), [xa] "=&r"(xa), [i0] "=&r"(i0), [i1] "=&r"(i1), [i2] "=&r"(i2), [i3] "=&r"(i3)
        : [tab] "r"(pair)
        : "cc", "memory");
  }
#else
  // the assembly's operations in C (a host build with TG_EMULATE_DSP checks them)
  for (int32_t k = 0; k < blocks; k++, w += 8, x += 4) {
    uint32_t xw;
    memcpy(&xw, x, 4);
    const uint32_t xa = tg_sxtb16(xw), xb = tg_sxtb16_ror8(xw);
    s0 = tg_smlad(pair[w[1]], xb, tg_smlad(pair[w[0]], xa, s0));
    s1 = tg_smlad(pair[w[3]], xb, tg_smlad(pair[w[2]], xa, s1));
    s2 = tg_smlad(pair[w[5]], xb, tg_smlad(pair[w[4]], xa, s2));
    s3 = tg_smlad(pair[w[7]], xb, tg_smlad(pair[w[6]], xa, s3));
  }
#endif
  acc[0] = s0;
  acc[1] = s1;
  acc[2] = s2;
  acc[3] = s3;
}
#endif

void tg_lut_fully_connected_4(const tg_fully_connected_lut_params* p, const int8_t* in, int8_t* out) {
  const tg_fully_connected_params q = p->fc;
  const int32_t depth = q.in_depth, row_bytes = depth / 2, full = q.out_depth & ~3;
  const int8_t* const t = p->w.table;
#if TG_DSP
  // byte -> the two weights its nibbles index, as the 16-bit halves SMLAD multiplies: the low
  // halves first (t[lo], zero-extended), then each row of 16 adds its high weight to them
  uint32_t pair[256];
  for (int32_t lo = 0; lo < 16; lo++) pair[lo] = (uint16_t)t[lo];
  for (int32_t hi = 15; hi >= 0; hi--) {
    const uint32_t h = (uint32_t)(int32_t)t[hi] << 16;
    for (int32_t lo = 0; lo < 16; lo++) pair[16 * hi + lo] = pair[lo] + h;
  }
#endif
  for (int32_t b = 0; b < q.batches; b++, in += depth, out += q.out_depth) {
    // with the DSP four rows per pass (stored interleaved, see fc4_rows4), then the last rows one
    // at a time; one output loop for both keeps the requantisation's code once
    for (int32_t o = 0, n = 1; o < q.out_depth; o += n) {
      int32_t acc[4];
      acc[0] = q.folded_bias[o];
#if TG_DSP
      if (o < full) {
        n = 4;
        acc[1] = q.folded_bias[o + 1];
        acc[2] = q.folded_bias[o + 2];
        acc[3] = q.folded_bias[o + 3];
        fc4_rows4(p->w.indices + o * row_bytes, in, depth >> 2, pair, acc);
      } else
#endif
      {
        // a row of an interleaved four: its two bytes at 2 * (o % 4), eight bytes from block to block
        n = 1;
        const uint8_t* w = p->w.indices + (o < full ? (o & ~3) * row_bytes + 2 * (o & 3) : o * row_bytes);
        acc[0] += fc4_row(w, o < full ? 8 : 2, in, depth >> 2, t);
      }
      for (int32_t r = 0; r < n; r++) out[o + r] = fc_out(&q, acc[r], o + r);
    }
  }
}
