// tg_conv.c: CONV_2D and DEPTHWISE_CONV_2D, as TFLite's reference ConvPerChannel and
// DepthwiseConvPerChannel compute them: the int32 sum of filter * (input + in_offset)
// over the taps inside the image, plus the bias, requantized per output channel.
//
// Where the whole window lies inside the image, the input offset's share of that sum is a
// constant per channel, folded into the bias on the host (p->folded_bias); only windows
// that overhang the border take the reference's per-tap path.
#include "tg_dot.h"
#include "tg_fixedpoint.h"
#include "tg_kernels.h"

static inline int8_t requantize(const tg_conv_params* p, int32_t acc, int32_t channel) {
  acc = tg_mbqm(acc, p->multiplier[channel], p->shift[channel]) + p->out_offset;
  return (int8_t)tg_clamp32(acc, p->act_min, p->act_max);
}

// Output rows/columns [lo, hi) whose windows lie wholly inside the input.
static void interior(int32_t out, int32_t in, int32_t k, int32_t stride, int32_t dilation, int32_t pad,
                     int32_t* lo, int32_t* hi) {
  const int32_t span = (k - 1) * dilation + 1;
  *lo = (pad + stride - 1) / stride;
  *hi = in - span + pad >= 0 ? (in - span + pad) / stride + 1 : 0;
  if (*hi > out) *hi = out;
  if (*lo > *hi) *lo = *hi;
}


// One output pixel, every channel, by the reference's per-tap path (windows over the border).
static void conv_border_pixel(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* out) {
  const int32_t filters_per_group = p->out_c / (p->in_c / p->filter_c);
  const int32_t filter_row = p->k_w * p->filter_c;
  for (int32_t oc = 0; oc < p->out_c; oc++) {
    const int32_t channel0 = (oc / filters_per_group) * p->filter_c;
    const int8_t* filter = p->filter + oc * p->k_h * filter_row;
    int32_t acc = p->bias ? p->bias[oc] : 0;
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
    out[oc] = requantize(p, acc, oc);
  }
}

// One output pixel whose window is inside the image: folded bias plus plain dot products.
static void conv_inside_pixel(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* out) {
  const int32_t groups = p->in_c / p->filter_c;
  const int32_t filter_row = p->k_w * p->filter_c;
  const int32_t filter_size = p->k_h * filter_row;
  const int8_t* window = in + (y0 * p->in_w + x0) * p->in_c;
  const int32_t row_step = p->dilation_h * p->in_w * p->in_c;
  if (groups == 1 && p->dilation_w == 1) {
    // each window row is k_w * in_c consecutive bytes, as is each filter row: two filters at a time
    int32_t oc = 0;
    for (; oc + 2 <= p->out_c; oc += 2) {
      const int8_t* f0 = p->filter + oc * filter_size;
      int32_t acc0 = p->folded_bias[oc], acc1 = p->folded_bias[oc + 1];
      for (int32_t ky = 0; ky < p->k_h; ky++) {
        tg_dot2_s8(f0 + ky * filter_row, f0 + filter_size + ky * filter_row, window + ky * row_step, filter_row,
                   &acc0, &acc1);
      }
      out[oc] = requantize(p, acc0, oc);
      out[oc + 1] = requantize(p, acc1, oc + 1);
    }
    for (; oc < p->out_c; oc++) {
      const int8_t* f = p->filter + oc * filter_size;
      int32_t acc = p->folded_bias[oc];
      for (int32_t ky = 0; ky < p->k_h; ky++) acc += tg_dot_s8(f + ky * filter_row, window + ky * row_step, filter_row);
      out[oc] = requantize(p, acc, oc);
    }
    return;
  }
  const int32_t filters_per_group = p->out_c / groups;
  for (int32_t oc = 0; oc < p->out_c; oc++) {
    const int8_t* f = p->filter + oc * filter_size;
    const int8_t* group_window = window + (oc / filters_per_group) * p->filter_c;
    int32_t acc = p->folded_bias[oc];
    for (int32_t ky = 0; ky < p->k_h; ky++) {
      for (int32_t kx = 0; kx < p->k_w; kx++) {
        acc += tg_dot_s8(f + ky * filter_row + kx * p->filter_c,
                         group_window + ky * row_step + kx * p->dilation_w * p->in_c, p->filter_c);
      }
    }
    out[oc] = requantize(p, acc, oc);
  }
}

void tg_conv2d(const tg_conv_params* p, const int8_t* in, int8_t* out) {
  int32_t y_lo, y_hi, x_lo, x_hi;
  interior(p->out_h, p->in_h, p->k_h, p->stride_h, p->dilation_h, p->pad_h, &y_lo, &y_hi);
  interior(p->out_w, p->in_w, p->k_w, p->stride_w, p->dilation_w, p->pad_w, &x_lo, &x_hi);
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    for (int32_t ox = 0; ox < p->out_w; ox++, out += p->out_c) {
      const int32_t x0 = ox * p->stride_w - p->pad_w;
      if (oy >= y_lo && oy < y_hi && ox >= x_lo && ox < x_hi) {
        conv_inside_pixel(p, in, y0, x0, out);
      } else {
        conv_border_pixel(p, in, y0, x0, out);
      }
    }
  }
}

void tg_depthwise_conv2d(const tg_conv_params* p, const int8_t* in, int8_t* out) {
  int32_t y_lo, y_hi, x_lo, x_hi;
  interior(p->out_h, p->in_h, p->k_h, p->stride_h, p->dilation_h, p->pad_h, &y_lo, &y_hi);
  interior(p->out_w, p->in_w, p->k_w, p->stride_w, p->dilation_w, p->pad_w, &x_lo, &x_hi);
  const int32_t tap_step_x = p->dilation_w * p->in_c, tap_step_y = p->dilation_h * p->in_w * p->in_c;
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      const int32_t x0 = ox * p->stride_w - p->pad_w;
      const int inside = oy >= y_lo && oy < y_hi && ox >= x_lo && ox < x_hi;
      for (int32_t ic = 0; ic < p->in_c; ic++) {
        for (int32_t m = 0; m < p->depth_multiplier; m++) {
          const int32_t oc = ic * p->depth_multiplier + m;
          int32_t acc;
          if (inside) {
            acc = p->folded_bias[oc];
            const int8_t* window = in + (y0 * p->in_w + x0) * p->in_c + ic;
            const int8_t* taps = p->filter + oc;
            for (int32_t ky = 0; ky < p->k_h; ky++, window += tap_step_y) {
              const int8_t* x = window;
              for (int32_t kx = 0; kx < p->k_w; kx++, x += tap_step_x, taps += p->out_c) acc += *taps * *x;
            }
          } else {
            acc = p->bias ? p->bias[oc] : 0;
            for (int32_t ky = 0; ky < p->k_h; ky++) {
              const int32_t y = y0 + ky * p->dilation_h;
              if (y < 0 || y >= p->in_h) continue;
              for (int32_t kx = 0; kx < p->k_w; kx++) {
                const int32_t x = x0 + kx * p->dilation_w;
                if (x < 0 || x >= p->in_w) continue;
                acc += p->filter[(ky * p->k_w + kx) * p->out_c + oc] * (in[(y * p->in_w + x) * p->in_c + ic] + p->in_offset);
              }
            }
          }
          *out++ = requantize(p, acc, oc);
        }
      }
    }
  }
}
