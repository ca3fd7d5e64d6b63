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

void tg_lut_fully_connected_4(const tg_fully_connected_lut_params* p, const int8_t* in, int8_t* out) {
  const tg_fully_connected_params q = p->fc;
  const int32_t depth = q.in_depth, row_bytes = depth / 2;
  const int8_t* const t = p->w.table;
#if TG_DSP
  // byte -> the two weights its nibbles index, as the 16-bit halves SMLAD multiplies
  uint32_t pair[256];
  for (int32_t v = 0; v < 256; v++) pair[v] = (uint32_t)(uint16_t)t[v & 15] | (uint32_t)(uint16_t)t[v >> 4] << 16;
#endif
  for (int32_t b = 0; b < q.batches; b++, in += depth, out += q.out_depth) {
    int32_t o = 0;
#if TG_DSP
    // two rows per pass: with four, GCC spills the sums and table words on every step
    for (; o + 2 <= q.out_depth; o += 2) {
      const uint8_t* w0 = p->w.indices + o * row_bytes;
      const uint8_t* w1 = w0 + row_bytes;
      int32_t s0 = q.folded_bias[o], s1 = q.folded_bias[o + 1];
      const int8_t* x = in;
      for (int32_t k = depth >> 2; k > 0; k--, w0 += 2, w1 += 2, x += 4) {
        uint32_t xw;
        memcpy(&xw, x, 4);
        const uint32_t x02 = tg_sxtb16(xw), x13 = tg_sxtb16_ror8(xw);
        s0 = tg_smlad(pair[w0[0]], x02, tg_smlad(pair[w0[1]], x13, s0));
        s1 = tg_smlad(pair[w1[0]], x02, tg_smlad(pair[w1[1]], x13, s1));
      }
      out[o] = fc_out(&q, s0, o);
      out[o + 1] = fc_out(&q, s1, o + 1);
    }
#endif
    for (; o < q.out_depth; o++) {
      const uint8_t* w = p->w.indices + o * row_bytes;
      int32_t acc = q.folded_bias[o];
      for (int32_t i = 0; i < depth; i += 4, w += 2) {
        acc += t[w[0] & 15] * in[i] + t[w[1] & 15] * in[i + 1] + t[w[0] >> 4] * in[i + 2] + t[w[1] >> 4] * in[i + 3];
      }
      out[o] = fc_out(&q, acc, o);
    }
  }
}
