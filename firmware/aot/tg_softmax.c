// tg_softmax.c: SOFTMAX, int8 to int8, in the fixed point of TFLite's reference kernel:
// differences from the row's maximum, scaled to Q5.26, exponentiated with gemmlowp's
// exp_on_negative_values, summed in Q12.19, and divided through a fixed-point reciprocal.
#include "tg_fixedpoint.h"
#include "tg_kernels.h"

void tg_softmax(const tg_softmax_params* p, const int8_t* in, int8_t* out) {
  enum { kScaledDiffIntegerBits = 5, kAccumulationIntegerBits = 12 };
  for (int32_t r = 0; r < p->rows; r++, in += p->depth, out += p->depth) {
    int32_t max = -128;
    for (int32_t c = 0; c < p->depth; c++) max = tg_max32(max, in[c]);

    int32_t sum_of_exps = 0;
    for (int32_t c = 0; c < p->depth; c++) {
      const int32_t diff = in[c] - max;
      if (diff >= p->diff_min) {
        const int32_t scaled = tg_mbqm(diff, p->input_multiplier, p->input_left_shift);
        const int32_t e = tg_exp_on_negative_values(scaled, kScaledDiffIntegerBits);
        sum_of_exps = tg_wadd(sum_of_exps, tg_rescale(e, 0, kAccumulationIntegerBits));
      }
    }

    int num_bits_over_unit;
    const int32_t shifted_scale = tg_reciprocal(sum_of_exps, kAccumulationIntegerBits, &num_bits_over_unit);
    const int exponent = num_bits_over_unit + 31 - 8;

    // in[c] is read before out[c] is written, and never again: this may run in place.
    for (int32_t c = 0; c < p->depth; c++) {
      const int32_t diff = in[c] - max;
      if (diff >= p->diff_min) {
        const int32_t scaled = tg_mbqm(diff, p->input_multiplier, p->input_left_shift);
        const int32_t e = tg_exp_on_negative_values(scaled, kScaledDiffIntegerBits);
        const int32_t v = tg_rdbpot(tg_srdhm(shifted_scale, e), exponent) - 128;
        out[c] = (int8_t)tg_clamp32(v, -128, 127);
      } else {
        out[c] = -128;
      }
    }
  }
}
