// tg_dot.h: the int8 dot product under the convolution and fully connected kernels.
#ifndef TG_DOT_H_
#define TG_DOT_H_

#include <stdint.h>
#include <string.h>
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#endif

// sum(a[i] * b[i]). Integer sums do not depend on their order, so the DSP path (two
// 16-bit multiply-accumulates per SMLAD, bytes unpacked with SXTB16) gives the same result.
static inline int32_t tg_dot_s8(const int8_t* a, const int8_t* b, int32_t n) {
  int32_t acc = 0, i = 0;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  for (; i + 4 <= n; i += 4) {
    uint32_t wa, wb;
    memcpy(&wa, a + i, 4);  // one unaligned LDR each
    memcpy(&wb, b + i, 4);
    acc = (int32_t)__smlad(__sxtb16(wa), __sxtb16(wb), (uint32_t)acc);  // bytes 0 and 2
    acc = (int32_t)__smlad(__sxtb16((wa >> 8) | (wa << 24)), __sxtb16((wb >> 8) | (wb << 24)), (uint32_t)acc);  // 1, 3
  }
#endif
  for (; i < n; i++) acc += a[i] * b[i];
  return acc;
}

// Two dot products against the same b (two filters over one input window): each word
// of b is loaded and unpacked once for both.
static inline void tg_dot2_s8(const int8_t* a0, const int8_t* a1, const int8_t* b, int32_t n, int32_t* acc0,
                              int32_t* acc1) {
  int32_t s0 = 0, s1 = 0, i = 0;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  for (; i + 4 <= n; i += 4) {
    uint32_t w0, w1, wb;
    memcpy(&wb, b + i, 4);
    memcpy(&w0, a0 + i, 4);
    memcpy(&w1, a1 + i, 4);
    const uint32_t b02 = __sxtb16(wb), b13 = __sxtb16((wb >> 8) | (wb << 24));
    s0 = (int32_t)__smlad(__sxtb16(w0), b02, (uint32_t)s0);
    s0 = (int32_t)__smlad(__sxtb16((w0 >> 8) | (w0 << 24)), b13, (uint32_t)s0);
    s1 = (int32_t)__smlad(__sxtb16(w1), b02, (uint32_t)s1);
    s1 = (int32_t)__smlad(__sxtb16((w1 >> 8) | (w1 << 24)), b13, (uint32_t)s1);
  }
#endif
  for (; i < n; i++) {
    s0 += a0[i] * b[i];
    s1 += a1[i] * b[i];
  }
  *acc0 += s0;
  *acc1 += s1;
}

// Two filters over two input windows: acc[0] += f0.x0, acc[1] += f0.x1, acc[2] += f1.x0,
// acc[3] += f1.x1. Each loaded and unpacked word serves two products.
static inline void tg_dot2x2_s8(const int8_t* f0, const int8_t* f1, const int8_t* x0, const int8_t* x1, int32_t n,
                                int32_t acc[4]) {
  int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0, i = 0;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  for (; i + 4 <= n; i += 4) {
    uint32_t a, b, c, d;
    memcpy(&a, f0 + i, 4);
    memcpy(&b, f1 + i, 4);
    memcpy(&c, x0 + i, 4);
    memcpy(&d, x1 + i, 4);
    const uint32_t c02 = __sxtb16(c), c13 = __sxtb16((c >> 8) | (c << 24));
    const uint32_t d02 = __sxtb16(d), d13 = __sxtb16((d >> 8) | (d << 24));
    uint32_t lo = __sxtb16(a), hi = __sxtb16((a >> 8) | (a << 24));
    s00 = (int32_t)__smlad(lo, c02, __smlad(hi, c13, (uint32_t)s00));
    s01 = (int32_t)__smlad(lo, d02, __smlad(hi, d13, (uint32_t)s01));
    lo = __sxtb16(b);
    hi = __sxtb16((b >> 8) | (b << 24));
    s10 = (int32_t)__smlad(lo, c02, __smlad(hi, c13, (uint32_t)s10));
    s11 = (int32_t)__smlad(lo, d02, __smlad(hi, d13, (uint32_t)s11));
  }
#endif
  for (; i < n; i++) {
    s00 += f0[i] * x0[i];
    s01 += f0[i] * x1[i];
    s10 += f1[i] * x0[i];
    s11 += f1[i] * x1[i];
  }
  acc[0] += s00;
  acc[1] += s01;
  acc[2] += s10;
  acc[3] += s11;
}

// acc[0..3] += a[i] * b[i] for four lanes at once: four channels of one depthwise tap
// (input and filter bytes of consecutive channels sit next to each other in memory).
static inline void tg_mac4_s8(const int8_t* a, const int8_t* b, int32_t acc[4]) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  uint32_t wa, wb;
  memcpy(&wa, a, 4);
  memcpy(&wb, b, 4);
  const uint32_t a02 = __sxtb16(wa), b02 = __sxtb16(wb);
  const uint32_t a13 = __sxtb16((wa >> 8) | (wa << 24)), b13 = __sxtb16((wb >> 8) | (wb << 24));
  acc[0] = __smlabb((int32_t)a02, (int32_t)b02, acc[0]);
  acc[2] = __smlatt((int32_t)a02, (int32_t)b02, acc[2]);
  acc[1] = __smlabb((int32_t)a13, (int32_t)b13, acc[1]);
  acc[3] = __smlatt((int32_t)a13, (int32_t)b13, acc[3]);
#else
  for (int k = 0; k < 4; k++) acc[k] += a[k] * b[k];
#endif
}

#endif  // TG_DOT_H_
