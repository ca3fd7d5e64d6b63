// tg_dot.h: the int8 dot product under the convolution and fully connected kernels.
#ifndef TG_DOT_H_
#define TG_DOT_H_

#include <stdint.h>
#include <string.h>

// TG_DSP: the Cortex-M DSP instructions (SXTB16, SMLAD, SMLABB/TT). On a core with them they
// are the ACLE intrinsics; with TG_EMULATE_DSP a host build gets the same operations in plain
// C, so the tests check the DSP paths bit for bit without a board.
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TG_DSP 1
static inline uint32_t tg_sxtb16(uint32_t x) { return __sxtb16(x); }
// bytes 1 and 3 sign-extended: SXTB16 with its rotate, one instruction (GCC does not fold
// the rotate into __sxtb16 by itself)
static inline uint32_t tg_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
static inline int32_t tg_smlad(uint32_t a, uint32_t b, int32_t acc) { return (int32_t)__smlad(a, b, (uint32_t)acc); }
static inline int32_t tg_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
// acc's two 16-bit lanes plus bytes 0 and 2 (bytes 1 and 3) of x, sign-extended: SXTAB16
static inline uint32_t tg_sxtab16(uint32_t acc, uint32_t x) { return __sxtab16(acc, x); }
static inline uint32_t tg_sxtab16_ror8(uint32_t acc, uint32_t x) {
  uint32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
  return r;
}
static inline int32_t tg_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
#elif defined(TG_EMULATE_DSP)
#define TG_DSP 1
static inline uint32_t tg_sxtb16(uint32_t x) {
  return (uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xFF) | ((uint32_t)(uint16_t)(int16_t)(int8_t)(x >> 16) << 16);
}
static inline uint32_t tg_sxtb16_ror8(uint32_t x) { return tg_sxtb16((x >> 8) | (x << 24)); }
static inline int32_t tg_lo16(uint32_t x) { return (int16_t)(x & 0xFFFF); }
static inline int32_t tg_hi16(uint32_t x) { return (int16_t)(x >> 16); }
// the accumulation wraps as the instruction's does
static inline int32_t tg_smlad(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tg_lo16(a) * tg_lo16(b)) + (uint32_t)(tg_hi16(a) * tg_hi16(b)));
}
static inline int32_t tg_smlabb(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tg_lo16(a) * tg_lo16(b)));
}
static inline uint32_t tg_sxtab16(uint32_t acc, uint32_t x) {  // each 16-bit lane wraps
  const uint32_t e = tg_sxtb16(x);
  return ((acc + e) & 0xFFFFu) | ((((acc >> 16) + (e >> 16)) & 0xFFFFu) << 16);
}
static inline uint32_t tg_sxtab16_ror8(uint32_t acc, uint32_t x) { return tg_sxtab16(acc, (x >> 8) | (x << 24)); }
static inline int32_t tg_smlatt(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tg_hi16(a) * tg_hi16(b)));
}
#endif

// sum(a[i] * b[i]). Integer sums do not depend on their order, so the DSP path (two
// 16-bit multiply-accumulates per SMLAD, bytes unpacked with SXTB16) gives the same result.
static inline int32_t tg_dot_s8(const int8_t* a, const int8_t* b, int32_t n) {
  int32_t acc = 0, i = 0;
#if TG_DSP
  for (; i + 4 <= n; i += 4) {
    uint32_t wa, wb;
    memcpy(&wa, a + i, 4);  // one unaligned LDR each
    memcpy(&wb, b + i, 4);
    acc = tg_smlad(tg_sxtb16(wa), tg_sxtb16(wb), acc);  // bytes 0 and 2
    acc = tg_smlad(tg_sxtb16_ror8(wa), tg_sxtb16_ror8(wb), acc);  // 1, 3
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
#if TG_DSP
  for (; i + 4 <= n; i += 4) {
    uint32_t w0, w1, wb;
    memcpy(&wb, b + i, 4);
    memcpy(&w0, a0 + i, 4);
    memcpy(&w1, a1 + i, 4);
    const uint32_t b02 = tg_sxtb16(wb), b13 = tg_sxtb16_ror8(wb);
    s0 = tg_smlad(tg_sxtb16(w0), b02, s0);
    s0 = tg_smlad(tg_sxtb16_ror8(w0), b13, s0);
    s1 = tg_smlad(tg_sxtb16(w1), b02, s1);
    s1 = tg_smlad(tg_sxtb16_ror8(w1), b13, s1);
  }
#endif
  for (; i < n; i++) {
    s0 += a0[i] * b[i];
    s1 += a1[i] * b[i];
  }
  *acc0 += s0;
  *acc1 += s1;
}

// Four dot products against the same b (four rows of a weight matrix times one input row).
static inline void tg_dot4_s8(const int8_t* a, int32_t a_step, const int8_t* b, int32_t n, int32_t acc[4]) {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
#if !TG_DSP && defined(__thumb__) && !defined(__thumb2__) && !defined(TG_NO_ASM)
  // Thumb-1 (Cortex-M0/M0+): only r0-r7 address memory, and LDRSB takes a register offset, so
  // five row pointers ending at the last even tap, one negative index counting up to zero, a
  // value and a product fill r0-r7; the sums live in high registers (ADD reaches them). Two taps
  // a pass: 29 instructions for 8 multiply-accumulates (GCC's own 2x2 tile takes 22 for 4).
  const int32_t even = n & ~1;
  if (even) {
    const int8_t *p0 = a + even, *p1 = p0 + a_step, *p2 = p1 + a_step, *p3 = p2 + a_step, *pb = b + even;
    int32_t k = -even, v, t;
    __asm__ volatile(
        ".syntax unified\n\t"  // GCC reads Thumb-1 inline asm as divided syntax unless told
        "1:\n\t"
        "ldrsb %[v], [%[pb], %[k]]\n\t"
        "ldrsb %[t], [%[p0], %[k]]\n\t"
        "muls  %[t], %[v], %[t]\n\t"
        "add   %[s0], %[t]\n\t"
        "ldrsb %[t], [%[p1], %[k]]\n\t"
        "muls  %[t], %[v], %[t]\n\t"
        "add   %[s1], %[t]\n\t"
        "ldrsb %[t], [%[p2], %[k]]\n\t"
        "muls  %[t], %[v], %[t]\n\t"
        "add   %[s2], %[t]\n\t"
        "ldrsb %[t], [%[p3], %[k]]\n\t"
        "muls  %[t], %[v], %[t]\n\t"
        "add   %[s3], %[t]\n\t"
        "adds  %[k], #1\n\t"
        "ldrsb %[v], [%[pb], %[k]]\n\t"
        "ldrsb %[t], [%[p0], %[k]]\n\t"
        "muls  %[t], %[v], %[t]\n\t"
        "add   %[s0], %[t]\n\t"
        "ldrsb %[t], [%[p1], %[k]]\n\t"
        "muls  %[t], %[v], %[t]\n\t"
        "add   %[s1], %[t]\n\t"
        "ldrsb %[t], [%[p2], %[k]]\n\t"
        "muls  %[t], %[v], %[t]\n\t"
        "add   %[s2], %[t]\n\t"
        "ldrsb %[t], [%[p3], %[k]]\n\t"
        "muls  %[t], %[v], %[t]\n\t"
        "add   %[s3], %[t]\n\t"
        "adds  %[k], #1\n\t"
        "bne   1b\n\t"
        : [k] "+l"(k), [v] "=&l"(v), [t] "=&l"(t), [s0] "+h"(s0), [s1] "+h"(s1), [s2] "+h"(s2), [s3] "+h"(s3)
        : [p0] "l"(p0), [p1] "l"(p1), [p2] "l"(p2), [p3] "l"(p3), [pb] "l"(pb)
        : "cc", "memory");
    i = even;
  }
#elif TG_DSP
  for (; i + 4 <= n; i += 4) {
    uint32_t wb, w;
    memcpy(&wb, b + i, 4);
    const uint32_t b02 = tg_sxtb16(wb), b13 = tg_sxtb16_ror8(wb);
    memcpy(&w, a + i, 4);
    s0 = tg_smlad(tg_sxtb16(w), b02, tg_smlad(tg_sxtb16_ror8(w), b13, s0));
    memcpy(&w, a + a_step + i, 4);
    s1 = tg_smlad(tg_sxtb16(w), b02, tg_smlad(tg_sxtb16_ror8(w), b13, s1));
    memcpy(&w, a + 2 * a_step + i, 4);
    s2 = tg_smlad(tg_sxtb16(w), b02, tg_smlad(tg_sxtb16_ror8(w), b13, s2));
    memcpy(&w, a + 3 * a_step + i, 4);
    s3 = tg_smlad(tg_sxtb16(w), b02, tg_smlad(tg_sxtb16_ror8(w), b13, s3));
  }
#endif
  for (; i < n; i++) {
    s0 += a[i] * b[i];
    s1 += a[a_step + i] * b[i];
    s2 += a[2 * a_step + i] * b[i];
    s3 += a[3 * a_step + i] * b[i];
  }
  acc[0] += s0;
  acc[1] += s1;
  acc[2] += s2;
  acc[3] += s3;
}

// Two filters over two input windows: acc[0] += f0.x0, acc[1] += f0.x1, acc[2] += f1.x0,
// acc[3] += f1.x1. Each loaded and unpacked word serves two products.
static inline void tg_dot2x2_s8(const int8_t* f0, const int8_t* f1, const int8_t* x0, const int8_t* x1, int32_t n,
                                int32_t acc[4]) {
  int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
#if TG_DSP
  // pointers stepped, not indexed, and a count down: fewer live registers, no spills
  for (int32_t k = n >> 2; k > 0; k--) {
    uint32_t a, b, c, d;
    memcpy(&c, x0, 4);
    memcpy(&d, x1, 4);
    memcpy(&a, f0, 4);
    memcpy(&b, f1, 4);
    x0 += 4;
    x1 += 4;
    f0 += 4;
    f1 += 4;
    const uint32_t c02 = tg_sxtb16(c), c13 = tg_sxtb16_ror8(c);
    const uint32_t d02 = tg_sxtb16(d), d13 = tg_sxtb16_ror8(d);
    uint32_t lo = tg_sxtb16(a), hi = tg_sxtb16_ror8(a);
    s00 = tg_smlad(lo, c02, tg_smlad(hi, c13, s00));
    s01 = tg_smlad(lo, d02, tg_smlad(hi, d13, s01));
    lo = tg_sxtb16(b);
    hi = tg_sxtb16_ror8(b);
    s10 = tg_smlad(lo, c02, tg_smlad(hi, c13, s10));
    s11 = tg_smlad(lo, d02, tg_smlad(hi, d13, s11));
  }
  n &= 3;
#endif
  for (int32_t i = 0; i < n; i++) {
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

// tg_dot2x2_s8 where the second filter and the second window are the same distance from the
// first (a pointwise convolution's next channel and next pixel, both in_c bytes on; two gathered
// or copied windows and two filters, both filter_size bytes on). On a Cortex-M with DSP the loop
// is written out: GCC's own allocation of its fourteen live values spills two of them on every
// pass (25 instructions per 16 multiply-accumulates), this takes 22. The same instructions as
// the C path, in the same order per accumulator, so the same sums.
static inline void tg_dot2x2_step_s8(const int8_t* f, const int8_t* x, int32_t step, int32_t n, int32_t acc[4]) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TG_NO_ASM)
  int32_t s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3];
  int32_t k = n >> 2;
  uint32_t a, b, d, t0, t1, t2;
  if (k) {
    __asm__ volatile(
        "1:\n\t"
        "ldr    %[b], [%[f], %[step]]\n\t"   /* second filter's word */
        "ldr    %[a], [%[f]], #4\n\t"        /* first filter's word */
        "ldr    %[d], [%[x]], #4\n\t"        /* first window's word */
        "sxtb16 %[t1], %[a]\n\t"             /* bytes 0 and 2, sign-extended */
        "sxtb16 %[a], %[a], ror #8\n\t"      /* bytes 1 and 3 */
        "sxtb16 %[t0], %[d]\n\t"
        "sxtb16 %[d], %[d], ror #8\n\t"
        "smlad  %[s00], %[t1], %[t0], %[s00]\n\t"
        "smlad  %[s00], %[a], %[d], %[s00]\n\t"
        "sxtb16 %[t2], %[b]\n\t"
        "sxtb16 %[b], %[b], ror #8\n\t"
        "smlad  %[s10], %[t2], %[t0], %[s10]\n\t"
        "smlad  %[s10], %[b], %[d], %[s10]\n\t"
        "sub    %[d], %[x], #4\n\t"
        "ldr    %[d], [%[d], %[step]]\n\t"   /* second window's word */
        "sxtb16 %[t0], %[d]\n\t"
        "sxtb16 %[d], %[d], ror #8\n\t"
        "smlad  %[s01], %[t1], %[t0], %[s01]\n\t"
        "smlad  %[s01], %[a], %[d], %[s01]\n\t"
        "smlad  %[s11], %[t2], %[t0], %[s11]\n\t"
        "smlad  %[s11], %[b], %[d], %[s11]\n\t"
        "subs   %[k], %[k], #1\n\t"
        "bne    1b\n\t"
        : [f] "+r"(f), [x] "+r"(x), [k] "+r"(k), [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10),
          [s11] "+r"(s11), [a] "=&r"(a), [b] "=&r"(b), [d] "=&r"(d), [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2)
        : [step] "r"(step)
        : "cc", "memory");
  }
  for (int32_t i = 0; i < (n & 3); i++) {
    s00 += f[i] * x[i];
    s01 += f[i] * x[step + i];
    s10 += f[step + i] * x[i];
    s11 += f[step + i] * x[step + i];
  }
  acc[0] = s00;
  acc[1] = s01;
  acc[2] = s10;
  acc[3] = s11;
#else
  tg_dot2x2_s8(f, f + step, x, x + step, n, acc);
#endif
}

// acc[0..3] += a[i] * b[i] for four lanes at once: four channels of one depthwise tap
// (input and filter bytes of consecutive channels sit next to each other in memory).
static inline void tg_mac4_s8(const int8_t* a, const int8_t* b, int32_t acc[4]) {
#if TG_DSP
  uint32_t wa, wb;
  memcpy(&wa, a, 4);
  memcpy(&wb, b, 4);
  const uint32_t a02 = tg_sxtb16(wa), b02 = tg_sxtb16(wb);
  const uint32_t a13 = tg_sxtb16_ror8(wa), b13 = tg_sxtb16_ror8(wb);
  acc[0] = tg_smlabb(a02, b02, acc[0]);
  acc[2] = tg_smlatt(a02, b02, acc[2]);
  acc[1] = tg_smlabb(a13, b13, acc[1]);
  acc[3] = tg_smlatt(a13, b13, acc[3]);
#else
  for (int k = 0; k < 4; k++) acc[k] += a[k] * b[k];
#endif
}

#endif  // TG_DOT_H_
