// tg_add.h: ADD's (and SUB's) arithmetic, shared by tg_add and the convolution fused with
// the ADD after it (tg_conv2d_add): each input rescaled to a common scale (tg_requant is
// tg_mbqm for multipliers that are never negative, as these are), then the sum rescaled to
// the output's.
#ifndef TG_ADD_H_
#define TG_ADD_H_

#include "tg_fixedpoint.h"
#include "tg_kernels.h"

static inline int32_t tg_add_rescaled_in1(const tg_binary_params* p, int32_t a) {
  return tg_requant((a + p->in1_offset) * (1 << p->left_shift), p->in1_multiplier, p->in1_shift);
}

static inline int32_t tg_add_rescaled_in2(const tg_binary_params* p, int32_t b) {
  return tg_requant((b + p->in2_offset) * (1 << p->left_shift), p->in2_multiplier, p->in2_shift);
}

static inline int8_t tg_add_sum_out(const tg_binary_params* p, int32_t sum) {
  return (int8_t)tg_clamp32(tg_requant(sum, p->out_multiplier, p->out_shift) + p->out_offset, p->act_min, p->act_max);
}

#endif  // TG_ADD_H_
