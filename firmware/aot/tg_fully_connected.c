// tg_fully_connected.c: FULLY_CONNECTED as TFLite's reference kernel computes it, with
// one multiplier for the layer or one per output (per-channel quantization). With
// symmetric weights the input offset's share is folded into the bias on the host.
#include "tg_dot.h"
#include "tg_fixedpoint.h"
#include "tg_kernels.h"


static inline int8_t output(const tg_fully_connected_params* p, int32_t acc, int32_t o) {
  const int32_t q = p->per_channel ? o : 0;
  acc = (p->single_rounding ? tg_mbqm_single(acc, p->multiplier[q], p->shift[q])
                            : tg_requant(acc, p->multiplier[q], p->shift[q])) + p->out_offset;
  return (int8_t)tg_clamp32(acc, p->act_min, p->act_max);
}

void tg_fully_connected(const tg_fully_connected_params* p, const int8_t* in, int8_t* out) {
  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t* row = in + b * p->in_depth;
    int32_t o = 0;
    if (p->folded_bias) {
      // four outputs per pass, then two: each word of the input row is loaded and unpacked once for all
      for (; o + 4 <= p->out_depth; o += 4) {
        int32_t acc[4] = {p->folded_bias[o], p->folded_bias[o + 1], p->folded_bias[o + 2], p->folded_bias[o + 3]};
        tg_dot4_s8(p->filter + o * p->in_depth, p->in_depth, row, p->in_depth, acc);
        for (int k = 0; k < 4; k++) out[o + k] = output(p, acc[k], o + k);
      }
      for (; o + 2 <= p->out_depth; o += 2) {
        const int8_t* weights = p->filter + o * p->in_depth;
        int32_t acc0 = p->folded_bias[o], acc1 = p->folded_bias[o + 1];
        tg_dot2_s8(weights, weights + p->in_depth, row, p->in_depth, &acc0, &acc1);
        out[o] = output(p, acc0, o);
        out[o + 1] = output(p, acc1, o + 1);
      }
    }
    for (; o < p->out_depth; o++) {
      const int8_t* weights = p->filter + o * p->in_depth;
      int32_t acc;
      if (p->folded_bias) {
        acc = p->folded_bias[o] + tg_dot_s8(weights, row, p->in_depth);
      } else {
        acc = p->bias ? p->bias[o] : 0;
        for (int32_t i = 0; i < p->in_depth; i++) acc += (weights[i] + p->filter_offset) * (row[i] + p->in_offset);
      }
      out[o] = output(p, acc, o);
    }
    out += p->out_depth;
  }
}
