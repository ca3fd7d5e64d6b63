// tg_elementwise.c: ADD, SUB, MUL, LOGISTIC, QUANTIZE and DEQUANTIZE, as TFLite's reference
// kernels compute them. Each output element depends only on the input elements at the
// same index, so every one of these may write over its input (tinygen's planner relies on it).
#include <math.h>

#include "tg_add.h"
#include "tg_fixedpoint.h"
#include "tg_kernels.h"

// ADD and SUB: tg_add.h's arithmetic.
static inline int8_t add_one(const tg_binary_params* p, int32_t a, int32_t b) {
  return tg_add_sum_out(p, tg_add_rescaled_in1(p, a) + tg_add_rescaled_in2(p, b));
}

static inline int8_t sub_one(const tg_binary_params* p, int32_t a, int32_t b) {
  return tg_add_sum_out(p, tg_add_rescaled_in1(p, a) - tg_add_rescaled_in2(p, b));
}

static inline int8_t mul_one(const tg_binary_params* p, int32_t a, int32_t b) {
  const int32_t product = tg_requant((a + p->in1_offset) * (b + p->in2_offset), p->out_multiplier, p->out_shift);
  return (int8_t)tg_clamp32(product + p->out_offset, p->act_min, p->act_max);
}

// Walks the output in order; stride 0 along a dim repeats that input along it.
// The parameters are copied to the stack first: every int8 store may alias *p, and would
// make the compiler reload each field per element.
#define TG_BINARY_LOOP(ONE)                                                                  \
  do {                                                                                       \
    const tg_binary_params local = *p;                                                       \
    p = &local;                                                                              \
    const int32_t* d = p->out_dims;                                                          \
    if (!p->broadcast) {                                                                     \
      const int32_t n = d[0] * d[1] * d[2] * d[3];                                           \
      for (int32_t i = 0; i < n; i++) out[i] = ONE(p, in1[i], in2[i]);                       \
      break;                                                                                 \
    }                                                                                        \
    const int32_t *s1 = p->in1_strides, *s2 = p->in2_strides;                                \
    for (int32_t i0 = 0; i0 < d[0]; i0++)                                                    \
      for (int32_t i1 = 0; i1 < d[1]; i1++)                                                  \
        for (int32_t i2 = 0; i2 < d[2]; i2++)                                                \
          for (int32_t i3 = 0; i3 < d[3]; i3++)                                              \
            *out++ = ONE(p, in1[i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3]],          \
                         in2[i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3]]);            \
  } while (0)

// An input's rescaled value depends on its int8 alone: with many elements, the 2 x 256 values
// are worked out once (on the stack) and looked up, instead of two requantizations each.
// sign: +1 for ADD, -1 for SUB (both requantizations round half away from zero, so
// negating the second rescaled input is exactly subtracting it).
#define TG_ADD_TABLE_MIN_ELEMENTS 512

static int add_by_table(const tg_binary_params* p, const int8_t* in1, const int8_t* in2, int8_t* out, int32_t sign) {
  const int32_t* d = p->out_dims;
  const int32_t n = d[0] * d[1] * d[2] * d[3];
  if (p->broadcast || n < TG_ADD_TABLE_MIN_ELEMENTS) return 0;
  const tg_binary_params q = *p;
  int32_t x[256], y[256];
  for (int32_t v = -128; v < 128; v++) {
    x[v + 128] = tg_add_rescaled_in1(&q, v);
    y[v + 128] = sign * tg_add_rescaled_in2(&q, v);
  }
  for (int32_t i = 0; i < n; i++) out[i] = tg_add_sum_out(&q, x[in1[i] + 128] + y[in2[i] + 128]);
  return 1;
}

void tg_add(const tg_binary_params* p, const int8_t* in1, const int8_t* in2, int8_t* out) {
  if (!add_by_table(p, in1, in2, out, 1)) TG_BINARY_LOOP(add_one);
}

void tg_sub(const tg_binary_params* p, const int8_t* in1, const int8_t* in2, int8_t* out) {
  if (!add_by_table(p, in1, in2, out, -1)) TG_BINARY_LOOP(sub_one);
}

void tg_mul(const tg_binary_params* p, const int8_t* in1, const int8_t* in2, int8_t* out) { TG_BINARY_LOOP(mul_one); }

void tg_logistic(const tg_logistic_params* p, const int8_t* in, int8_t* out) {
  for (int32_t i = 0; i < p->size; i++) {
    const int32_t x = in[i] - p->in_zero_point;
    if (x <= -p->input_range_radius) {
      out[i] = -128;
    } else if (x >= p->input_range_radius) {
      out[i] = 127;
    } else {
      const int32_t x_q4 = tg_mbqm(x, p->input_multiplier, p->input_left_shift);
      const int32_t y_q23 = tg_rdbpot(tg_fp_logistic(x_q4, 4), 31 - 8);
      out[i] = (int8_t)tg_clamp32(y_q23 - 128, -128, 127);
    }
  }
}

void tg_quantize_f32(const tg_quantize_params* p, const float* in, int8_t* out) {
  for (int32_t i = 0; i < p->size; i++) {
    float r = roundf(in[i] / p->scale);
    r = r > 1e9f ? 1e9f : (r < -1e9f ? -1e9f : r);  // anything this far out clamps anyway
    out[i] = (int8_t)tg_clamp32((int32_t)r + p->out_zero_point, -128, 127);
  }
}

void tg_requantize(const tg_quantize_params* p, const int8_t* in, int8_t* out) {
  for (int32_t i = 0; i < p->size; i++) {
    const int32_t v = tg_mbqm(in[i] - p->in_zero_point, p->multiplier, p->shift) + p->out_zero_point;
    out[i] = (int8_t)tg_clamp32(v, -128, 127);
  }
}

// Backwards: the float output is 4 times the size of its input, and may start where the input does.
void tg_dequantize(const tg_quantize_params* p, const int8_t* in, float* out) {
  for (int32_t i = p->size - 1; i >= 0; i--) out[i] = (float)(p->dequant_scale * (double)(in[i] - p->in_zero_point));
}
