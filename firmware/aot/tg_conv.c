// tg_conv.c: CONV_2D and DEPTHWISE_CONV_2D, as TFLite's reference ConvPerChannel and
// DepthwiseConvPerChannel compute them: the int32 sum of filter * (input + in_offset)
// over the taps inside the image, plus the bias, requantized per output channel.
#include "tg_fixedpoint.h"
#include "tg_kernels.h"

static inline int8_t requantize(const tg_conv_params* p, int32_t acc, int32_t channel) {
  if (p->bias) acc += p->bias[channel];
  acc = tg_mbqm(acc, p->multiplier[channel], p->shift[channel]) + p->out_offset;
  return (int8_t)tg_clamp32(acc, p->act_min, p->act_max);
}

void tg_conv2d(const tg_conv_params* p, const int8_t* in, int8_t* out) {
  const int32_t groups = p->in_c / p->filter_c;
  const int32_t filters_per_group = p->out_c / groups;
  const int32_t filter_row = p->k_w * p->filter_c;
  const int32_t filter_size = p->k_h * filter_row;
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      const int32_t x0 = ox * p->stride_w - p->pad_w;
      for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t channel0 = (oc / filters_per_group) * p->filter_c;
        const int8_t* filter = p->filter + oc * filter_size;
        int32_t acc = 0;
        for (int32_t ky = 0; ky < p->k_h; ky++) {
          const int32_t y = y0 + ky * p->dilation_h;
          if (y < 0 || y >= p->in_h) continue;
          for (int32_t kx = 0; kx < p->k_w; kx++) {
            const int32_t x = x0 + kx * p->dilation_w;
            if (x < 0 || x >= p->in_w) continue;
            const int8_t* pixel = in + (y * p->in_w + x) * p->in_c + channel0;
            const int8_t* taps = filter + ky * filter_row + kx * p->filter_c;
            for (int32_t ic = 0; ic < p->filter_c; ic++) acc += taps[ic] * (pixel[ic] + p->in_offset);
          }
        }
        *out++ = requantize(p, acc, oc);
      }
    }
  }
}

void tg_depthwise_conv2d(const tg_conv_params* p, const int8_t* in, int8_t* out) {
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      const int32_t x0 = ox * p->stride_w - p->pad_w;
      for (int32_t ic = 0; ic < p->in_c; ic++) {
        for (int32_t m = 0; m < p->depth_multiplier; m++) {
          const int32_t oc = ic * p->depth_multiplier + m;
          int32_t acc = 0;
          for (int32_t ky = 0; ky < p->k_h; ky++) {
            const int32_t y = y0 + ky * p->dilation_h;
            if (y < 0 || y >= p->in_h) continue;
            for (int32_t kx = 0; kx < p->k_w; kx++) {
              const int32_t x = x0 + kx * p->dilation_w;
              if (x < 0 || x >= p->in_w) continue;
              acc += p->filter[(ky * p->k_w + kx) * p->out_c + oc] * (in[(y * p->in_w + x) * p->in_c + ic] + p->in_offset);
            }
          }
          *out++ = requantize(p, acc, oc);
        }
      }
    }
  }
}
