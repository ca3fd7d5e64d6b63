// tg_fully_connected.c: FULLY_CONNECTED as TFLite's reference kernel computes it, with
// one multiplier for the layer or one per output (per-channel quantization). With
// symmetric weights the input offset's share is folded into the bias on the host.
#include "tg_dot.h"
#include "tg_fixedpoint.h"
#include "tg_kernels.h"


void tg_fully_connected(const tg_fully_connected_params* p, const int8_t* in, int8_t* out) {
  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t* row = in + b * p->in_depth;
    for (int32_t o = 0; o < p->out_depth; o++) {
      const int8_t* weights = p->filter + o * p->in_depth;
      int32_t acc;
      if (p->folded_bias) {
        acc = p->folded_bias[o] + tg_dot_s8(weights, row, p->in_depth);
      } else {
        acc = p->bias ? p->bias[o] : 0;
        for (int32_t i = 0; i < p->in_depth; i++) acc += (weights[i] + p->filter_offset) * (row[i] + p->in_offset);
      }
      const int32_t q = p->per_channel ? o : 0;
      acc = (p->single_rounding ? tg_mbqm_single(acc, p->multiplier[q], p->shift[q])
                                : tg_requant(acc, p->multiplier[q], p->shift[q])) + p->out_offset;
      *out++ = (int8_t)tg_clamp32(acc, p->act_min, p->act_max);
    }
  }
}
