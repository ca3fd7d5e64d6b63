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

#endif  // TG_DOT_H_
