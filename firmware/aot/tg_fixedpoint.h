// tg_fixedpoint.h: the integer arithmetic of TFLite's int8 reference kernels, in C99.
//
// Each function is a transcription of its namesake in TFLite
// (tensorflow/lite/kernels/internal/common.h, double-rounding build, the default) or in
// gemmlowp's fixedpoint.h, so tinygen's kernels round exactly as TFLite's do. The
// gemmlowp functions are templates over the number of integer bits; here that number is
// an argument, and a "Q<n>" value is an int32 with n integer bits and 31 - n fraction bits.
#ifndef TG_FIXEDPOINT_H_
#define TG_FIXEDPOINT_H_

#include <stdint.h>

#define TG_INT32_MIN ((int32_t)0x80000000)
#define TG_INT32_MAX ((int32_t)0x7FFFFFFF)

static inline int32_t tg_min32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t tg_max32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t tg_clamp32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

// gemmlowp's wrapping add and subtract: int32 overflow wraps, as on every target TFLite runs on.
static inline int32_t tg_wadd(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t tg_wsub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

// round(a * b / 2^31), saturating the one overflowing case (ARM's VQRDMULH). gemmlowp adds
// a sign-dependent nudge and truncates; adding 2^30 and shifting (flooring) is the same
// integer for every product, and cheaper.
static inline int32_t tg_srdhm(int32_t a, int32_t b) {
  if (a == b && a == TG_INT32_MIN) return TG_INT32_MAX;
  return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

// x / 2^exponent, rounded to nearest with ties away from zero.
static inline int32_t tg_rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((1u << exponent) - 1u);  // exponent <= 31
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// x * multiplier * 2^shift, multiplier a Q0 in [0.5, 1): TFLite's MultiplyByQuantizedMultiplier.
static inline int32_t tg_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return tg_rdbpot(tg_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

// tg_mbqm for a kernel's output stage, where the multiplier is never negative: SRDHM's one
// saturating case (both operands INT32_MIN) cannot arise, and a right shift needs no left one.
static inline int32_t tg_requant(int32_t x, int32_t multiplier, int32_t shift) {
  if (shift > 0) return tg_mbqm(x, multiplier, shift);
  return tg_rdbpot((int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31), -shift);
}

// round(a * b / 2^32), halves up: SMMULR.
static inline int32_t tg_smmulr(int32_t a, int32_t b) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TG_NO_ASM)
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
#else
  return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

// (a * m + 2^30) >> 31 for |a| < 2^30 (or m = 0) and 0 <= m < 2^31, in 32-bit multiplies: a core
// without a 32x32 -> 64 multiply (Thumb-1: Cortex-M0/M0+) would call libgcc's __aeabi_lmul, ~45
// instructions; this takes ~20. With a = ah 2^15 + al, m = mh 2^16 + ml (al < 2^15, ml < 2^16,
// |ah|, mh <= 2^15): a m / 2^31 = ah mh + (ah ml 2^15 + al mh 2^16 + al ml) / 2^31, whose floor
// (plus the half) is summed from 16-bit halves so that no partial sum leaves 32 bits.
// TG_MUL32 selects it elsewhere (tests on the host).
#if defined(__thumb__) && !defined(__thumb2__) && !defined(TG_MUL32)
#define TG_MUL32 1
#endif
static inline int32_t tg_mulhi31(int32_t a, int32_t m) {
  const int32_t ah = a >> 15;
  const uint32_t al = (uint32_t)a & 0x7FFFu;
  const uint32_t mh = (uint32_t)m >> 16, ml = (uint32_t)m & 0xFFFFu;
  const int32_t t = ah * (int32_t)ml;                             // in (-2^31, 2^31)
  const uint32_t low = 2u * al * mh + ((al * ml) >> 15) + 0x8000u;  // < 2^31: (al m + 2^30) / 2^15
  return ah * (int32_t)mh + (t >> 16) + (int32_t)((((uint32_t)t & 0xFFFFu) + low) >> 16);
}

// TFLite's two roundings plus the output offset in 32-bit steps, exact where the host proved
// |acc| < 2^30 and e >= 1 for the layer (tinygen/aot/lower.py, fast_rounding): SMMULR(2 acc, m)
// = (acc m + 2^30) >> 31 is SaturatingRoundingDoublingHighMul(acc, m); then y / 2^e rounded half
// away from zero is (y - [y < 0] + 2^(e-1)) >> e, and adding out_offset * 2^e before the shift
// adds out_offset after. The channel's word w holds that constant times 256 plus e: add w >> 8,
// shift by w's low byte (what ASR by a register reads: one instruction each).
static inline int32_t tg_requant_rounded(int32_t acc, int32_t multiplier, int32_t w) {
#if defined(TG_MUL32) && !(defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TG_NO_ASM))
  int32_t y = tg_mulhi31(acc, multiplier);  // the same integer as the SMMULR below
#else
  int32_t y = tg_smmulr((int32_t)((uint32_t)acc << 1), multiplier);  // wraps only where m is 0
#endif
  y += y >> 31;
  y += w >> 8;
#if defined(__thumb2__) && !defined(TG_NO_ASM)
  __asm__("asr %0, %0, %1" : "+r"(y) : "r"(w));
  return y;
#else
  return y >> (w & 0xFF);
#endif
}

// x * multiplier * 2^shift with one rounding (TFLite's TFLITE_SINGLE_ROUNDING variant,
// which TFLite 2.21 uses for FULLY_CONNECTED): round(x * multiplier / 2^(31 - shift)).
static inline int32_t tg_mbqm_single(int32_t x, int32_t multiplier, int32_t shift) {
  const int total_shift = 31 - shift;
  return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << (total_shift - 1))) >> total_shift);
}

// Saturating x * 2^exponent (exponent > 0) or rounding x / 2^-exponent (exponent < 0).
static inline int32_t tg_srmbpot(int32_t x, int exponent) {
  if (exponent < 0) return tg_rdbpot(x, -exponent);
  if (exponent == 0) return x;
  const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1);
  if (x > threshold) return TG_INT32_MAX;
  if (x < -threshold) return TG_INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

// gemmlowp's Rescale: a Q<from_bits> to a Q<to_bits>.
static inline int32_t tg_rescale(int32_t x, int from_bits, int to_bits) { return tg_srmbpot(x, from_bits - to_bits); }

static inline int32_t tg_rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

// exp(a) for a Q0 a in [-1/4, 0): a Taylor expansion around -1/8.
static inline int32_t tg_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
  const int32_t constant_term = 1895147668;    // exp(-1/8)
  const int32_t constant_1_over_3 = 715827883;
  const int32_t x = tg_wadd(a, 1 << 28);       // a + 1/8
  const int32_t x2 = tg_srdhm(x, x);
  const int32_t x3 = tg_srdhm(x2, x);
  const int32_t x4 = tg_srdhm(x2, x2);
  const int32_t x4_over_4 = tg_srmbpot(x4, -2);
  const int32_t poly = tg_srmbpot(tg_wadd(tg_srdhm(tg_wadd(x4_over_4, x3), constant_1_over_3), x2), -1);
  return tg_wadd(constant_term, tg_srdhm(constant_term, tg_wadd(x, poly)));
}

// exp(a) as a Q0, for a Q<integer_bits> a <= 0.
static inline int32_t tg_exp_on_negative_values(int32_t a, int integer_bits) {
  static const int32_t kBarrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int fractional_bits = 31 - integer_bits;
  const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_one_quarter = tg_wsub(a & mask, one_quarter);
  int32_t result = tg_exp_on_interval_between_negative_one_quarter_and_0_excl(
      tg_rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0));
  const int32_t remainder = tg_wsub(a_mod_quarter_minus_one_quarter, a);
  // multiply in exp(-2^k) for each bit k = -2..4 of the remainder
  for (int k = -2; k <= 4; k++) {
    if (integer_bits > k && (remainder & ((int32_t)1 << (fractional_bits + k)))) {
      result = tg_srdhm(result, kBarrel[k + 2]);
    }
  }
  if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) result = 0;  // exp(< -32) = 0
  if (a == 0) result = TG_INT32_MAX;
  return result;
}

// 1 / (1 + a) for a Q0 a in [0, 1), by Newton-Raphson; the result is a Q0.
static inline int32_t tg_one_over_one_plus_x_for_x_in_0_1(int32_t a) {
  const int32_t half_denominator = tg_rounding_half_sum(a, TG_INT32_MAX);
  const int32_t constant_48_over_17 = 1515870810;     // Q2
  const int32_t constant_neg_32_over_17 = -1010580540;  // Q2
  int32_t x = tg_wadd(constant_48_over_17, tg_srdhm(half_denominator, constant_neg_32_over_17));
  for (int i = 0; i < 3; i++) {
    const int32_t half_denominator_times_x = tg_srdhm(half_denominator, x);             // Q2
    const int32_t one_minus = tg_wsub((int32_t)1 << 29, half_denominator_times_x);     // Q2
    x = tg_wadd(x, tg_rescale(tg_srdhm(x, one_minus), 4, 2));
  }
  return tg_rescale(x, 1, 0);  // x / 2, seen as a Q1, to a Q0
}

// logistic(a) as a Q0, for any Q<integer_bits> a.
static inline int32_t tg_fp_logistic(int32_t a, int integer_bits) {
  if (a == 0) return 1 << 30;  // one half
  const int32_t abs_a = a > 0 ? a : tg_wsub(0, a);
  const int32_t positive = tg_one_over_one_plus_x_for_x_in_0_1(tg_exp_on_negative_values(tg_wsub(0, abs_a), integer_bits));
  return a > 0 ? positive : tg_wsub(TG_INT32_MAX, positive);
}

// 1 / x for a Q<integer_bits> x > 0: a Q0 and the power of two it is scaled by (TFLite's GetReciprocal).
static inline int32_t tg_reciprocal(int32_t x, int integer_bits, int* num_bits_over_unit) {
  int headroom_plus_one = 0;
  while (headroom_plus_one < 32 && !((uint32_t)x & (0x80000000u >> headroom_plus_one))) headroom_plus_one++;
  *num_bits_over_unit = integer_bits - headroom_plus_one;
  const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - (1u << 31));
  return tg_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}

#endif  // TG_FIXEDPOINT_H_
