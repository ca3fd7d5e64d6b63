// tg_pool.c: AVERAGE_POOL_2D, MAX_POOL_2D and MEAN, as TFLite's reference kernels compute
// them. Pools only visit the window's taps inside the image; the average divides by
// their count, rounding half away from zero.
#include <string.h>

#include "tg_dot.h"
#include "tg_fixedpoint.h"
#include "tg_kernels.h"

#if defined(__GNUC__)
__attribute__((noinline))  // one copy for the five call sites: a division and a clamp
#endif
static int8_t average(const tg_pool_params* p, int32_t acc, int32_t count) {
  acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
  return (int8_t)tg_clamp32(acc, p->act_min, p->act_max);
}

// One window over the whole input (a global average pool, the end of a DS-CNN or a MobileNet):
// each channel's sum runs down the pixels, four channels at a time in 16-bit lanes on a DSP core
// (up to 256 pixels: 256 * -128 still fits a lane), and one division per channel.
static void global_average_pool(const tg_pool_params* p, const int8_t* in, int8_t* out) {
  const int32_t n = p->in_h * p->in_w, channels = p->channels;
  int32_t c = 0;
#if TG_DSP
  if (n <= 256) {
    for (; c + 4 <= channels; c += 4) {
      uint32_t s02 = 0, s13 = 0;  // channels c, c+2 and c+1, c+3
      const int8_t* x = in + c;
      for (int32_t i = 0; i < n; i++, x += channels) {
        uint32_t w;
        memcpy(&w, x, 4);
        s02 = tg_sxtab16(s02, w);
        s13 = tg_sxtab16_ror8(s13, w);
      }
      out[c] = average(p, (int16_t)(s02 & 0xFFFFu), n);
      out[c + 1] = average(p, (int16_t)(s13 & 0xFFFFu), n);
      out[c + 2] = average(p, (int16_t)(s02 >> 16), n);
      out[c + 3] = average(p, (int16_t)(s13 >> 16), n);
    }
  }
#endif
  for (; c < channels; c++) {
    int32_t acc = 0;
    const int8_t* x = in + c;
    for (int32_t i = 0; i < n; i++, x += channels) acc += *x;
    out[c] = average(p, acc, n);
  }
}

void tg_average_pool2d(const tg_pool_params* p, const int8_t* in, int8_t* out) {
  if (p->out_h == 1 && p->out_w == 1 && p->pad_h == 0 && p->pad_w == 0 && p->k_h == p->in_h && p->k_w == p->in_w) {
    global_average_pool(p, in, out);
    return;
  }
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t ky0 = tg_max32(0, -y0), ky1 = tg_min32(p->k_h, p->in_h - y0);
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      const int32_t x0 = ox * p->stride_w - p->pad_w;
      const int32_t kx0 = tg_max32(0, -x0), kx1 = tg_min32(p->k_w, p->in_w - x0);
      const int32_t count = (ky1 - ky0) * (kx1 - kx0);
      for (int32_t c = 0; c < p->channels; c++) {
        int32_t acc = 0;
        for (int32_t ky = ky0; ky < ky1; ky++) {
          for (int32_t kx = kx0; kx < kx1; kx++) acc += in[((y0 + ky) * p->in_w + x0 + kx) * p->channels + c];
        }
        *out++ = average(p, acc, count);
      }
    }
  }
}

void tg_max_pool2d(const tg_pool_params* p, const int8_t* in, int8_t* out) {
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t ky0 = tg_max32(0, -y0), ky1 = tg_min32(p->k_h, p->in_h - y0);
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      const int32_t x0 = ox * p->stride_w - p->pad_w;
      const int32_t kx0 = tg_max32(0, -x0), kx1 = tg_min32(p->k_w, p->in_w - x0);
      for (int32_t c = 0; c < p->channels; c++) {
        int32_t m = -128;
        for (int32_t ky = ky0; ky < ky1; ky++) {
          for (int32_t kx = kx0; kx < kx1; kx++) m = tg_max32(m, in[((y0 + ky) * p->in_w + x0 + kx) * p->channels + c]);
        }
        *out++ = (int8_t)tg_clamp32(m, p->act_min, p->act_max);
      }
    }
  }
}

void tg_mean(const tg_mean_params* p, const int8_t* in, int8_t* out) {
  int32_t stride[4];
  stride[3] = 1;
  for (int d = 2; d >= 0; d--) stride[d] = stride[d + 1] * p->dims[d + 1];
  int32_t odims[4], rdims[4];
  for (int d = 0; d < 4; d++) {
    odims[d] = p->reduce[d] ? 1 : p->dims[d];
    rdims[d] = p->reduce[d] ? p->dims[d] : 1;
  }
  for (int32_t o0 = 0; o0 < odims[0]; o0++)
    for (int32_t o1 = 0; o1 < odims[1]; o1++)
      for (int32_t o2 = 0; o2 < odims[2]; o2++)
        for (int32_t o3 = 0; o3 < odims[3]; o3++) {
          int32_t sum = 0;
          for (int32_t r0 = 0; r0 < rdims[0]; r0++)
            for (int32_t r1 = 0; r1 < rdims[1]; r1++)
              for (int32_t r2 = 0; r2 < rdims[2]; r2++)
                for (int32_t r3 = 0; r3 < rdims[3]; r3++)
                  sum += in[(o0 + r0) * stride[0] + (o1 + r1) * stride[1] + (o2 + r2) * stride[2] + (o3 + r3) * stride[3]];
          const int32_t v = tg_mbqm(sum - p->in_zero_point * p->count, p->multiplier, p->shift) + p->out_zero_point;
          *out++ = (int8_t)tg_clamp32(v, -128, 127);
        }
}
