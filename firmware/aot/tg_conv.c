// tg_conv.c: CONV_2D and DEPTHWISE_CONV_2D, as TFLite's reference ConvPerChannel and
// DepthwiseConvPerChannel compute them: the int32 sum of filter * (input + in_offset)
// over the taps inside the image, plus the bias, requantized per output channel.
//
// Where the whole window lies inside the image, the input offset's share of that sum is a
// constant per channel, folded into the bias on the host (p->folded_bias). A window that
// overhangs the border is copied to the stack with the outside taps set to the input's zero
// point, which adds nothing, so the folded bias holds there too; only windows too large for
// the stack buffer take the reference's per-tap path.
#include <string.h>

#include "tg_add.h"
#include "tg_dot.h"
#include "tg_fixedpoint.h"
#include "tg_kernels.h"
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#include <arm_acle.h>  // __ssat
#endif

// The output stage, its constants copied out of the parameter block once per pixel: every
// int8 store may alias the block, so reading p-> fields after one costs a reload.
typedef struct {
  const int32_t* multiplier;
  const int32_t* shift;
  int32_t out_offset, act_min, act_max;
  const int32_t* rounding;  // the one-multiply stage's constants (tg_conv_params.rounding), or NULL
  int32_t full_range;       // act_min, act_max = -128, 127: the clamp is a saturation to int8
} output_stage;

static inline output_stage output_stage_of(const tg_conv_params* p) {
  output_stage o = {p->multiplier, p->shift,  p->out_offset, p->act_min,
                    p->act_max,    p->rounding, p->act_min == -128 && p->act_max == 127};
  return o;
}

// The one-multiply stage (tg_fixedpoint.h's tg_requant_rounded), where the host proved it exact.
static inline int32_t requant_rounded(const output_stage* o, int32_t acc, int32_t channel) {
  return tg_requant_rounded(acc, o->multiplier[channel], o->rounding[channel]);
}

// Stack for a copied window: a border window (k_h * k_w * in_c bytes), two gathered windows
// of a short-row convolution, or the zero point for a depthwise border window's outside taps.
#ifndef TG_CONV_SCRATCH_BYTES
#define TG_CONV_SCRATCH_BYTES 576
#endif
#if defined(__GNUC__)
#define TG_NOINLINE __attribute__((noinline))
#else
#define TG_NOINLINE
#endif
// tg_conv2d_add's run of output pixels (tinygen/aot/plan.py's CONV_ADD_BYTES).
#define TG_CONV_ADD_BYTES 512

// The 64-bit path, for the layers the host could not prove the one-multiply stage for (rare:
// a multiplier above one half, or huge sums): out of line, so every loop carries the short one.
static TG_NOINLINE int32_t requant_two_step(const output_stage* o, int32_t acc, int32_t channel) {
  return tg_requant(acc, o->multiplier[channel], o->shift[channel]) + o->out_offset;
}

static inline int8_t requantize(const output_stage* o, int32_t acc, int32_t channel) {
  acc = o->rounding ? requant_rounded(o, acc, channel) : requant_two_step(o, acc, channel);
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT && !defined(TG_NO_ASM)
  if (o->full_range) return (int8_t)__ssat(acc, 8);  // one SSAT for two compares
#endif
  return (int8_t)tg_clamp32(acc, o->act_min, o->act_max);
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


#if !TG_DSP
// Channels [oc, oc + 4) of one pixel, four filters (filter_size bytes apart, from f0) over one
// window of `rows` rows of n bytes, row_step apart. Without DSP (Cortex-M0/M0+; the host's plain
// C) this tile replaces the 2x2 one: on Thumb-1 four sums, five pointers and an index fit the
// registers (tg_dot4_s8), a 2x2 tile's do not and go through the high registers.
static inline void conv_four(const output_stage* o, const int8_t* f0, int32_t filter_size, const int32_t* bias,
                             int32_t oc, const int8_t* w, int32_t rows, int32_t n, int32_t row_step, int8_t* out) {
  int32_t acc[4] = {bias[oc], bias[oc + 1], bias[oc + 2], bias[oc + 3]};
  for (int32_t r = 0; r < rows; r++) tg_dot4_s8(f0 + r * n, filter_size, w + r * row_step, n, acc);
  out[oc] = requantize(o, acc[0], oc);
  out[oc + 1] = requantize(o, acc[1], oc + 1);
  out[oc + 2] = requantize(o, acc[2], oc + 2);
  out[oc + 3] = requantize(o, acc[3], oc + 3);
}
#endif

// Every channel of one output pixel from a window whose rows are each k_w * in_c
// consecutive bytes, row_step apart (no groups, no horizontal dilation): folded bias plus
// dot products, two filters at a time.
static void conv_window(const tg_conv_params* p, const output_stage* stage, const int8_t* window, int32_t row_step,
                        int8_t* out) {
  const output_stage os = *stage, *const o = &os;  // a local: the int8 stores may alias *stage
  const int32_t filter_size = p->k_h * p->k_w * p->in_c;
  // rows that follow each other in memory (a gathered window) are one long dot product
  const int32_t rows = row_step == p->k_w * p->in_c ? 1 : p->k_h;
  const int32_t n = filter_size / rows;
  int32_t oc = 0;
#if !TG_DSP
  for (; oc + 4 <= p->out_c; oc += 4) conv_four(o, p->filter + oc * filter_size, filter_size, p->folded_bias, oc, window, rows, n, row_step, out);
#else  // two filters at a time (without DSP the last three at most go one at a time, below: less flash)
  for (; oc + 2 <= p->out_c; oc += 2) {
    const int8_t* f0 = p->filter + oc * filter_size;
    int32_t acc0 = p->folded_bias[oc], acc1 = p->folded_bias[oc + 1];
    for (int32_t r = 0; r < rows; r++) {
      tg_dot2_s8(f0 + r * n, f0 + filter_size + r * n, window + r * row_step, n, &acc0, &acc1);
    }
    out[oc] = requantize(o, acc0, oc);
    out[oc + 1] = requantize(o, acc1, oc + 1);
  }
#endif
  for (; oc < p->out_c; oc++) {
    const int8_t* f = p->filter + oc * filter_size;
    int32_t acc = p->folded_bias[oc];
    for (int32_t r = 0; r < rows; r++) acc += tg_dot_s8(f + r * n, window + r * row_step, n);
    out[oc] = requantize(o, acc, oc);
  }
}

// Short filter rows (few input channels, e.g. an image's first layer) make short dot
// products, each paying its loop's set-up and tail: worth gathering the window's rows into
// one run first, once per pixel for all the filters (CMSIS-NN's im2col, one window at a time).
static inline int gather_pays(const tg_conv_params* p, int32_t windows) {
  const int32_t row = p->k_w * p->in_c;
  return p->k_h > 1 && row < 128 && windows * p->k_h * row <= TG_CONV_SCRATCH_BYTES;
}

static void gather(const int8_t* window, int32_t rows, int32_t row_bytes, int32_t row_step, int8_t* dst) {
  for (int32_t r = 0; r < rows; r++) memcpy(dst + r * row_bytes, window + r * row_step, (size_t)row_bytes);
}

// The taps [lo, hi) of a window starting at `origin` that fall inside [0, size) (no dilation).
static inline void clip(int32_t origin, int32_t k, int32_t size, int32_t* lo, int32_t* hi) {
  *lo = origin < 0 ? -origin : 0;
  *hi = origin + k > size ? size - origin : k;
}

static inline int32_t sum_s8(const int8_t* a, int32_t n) {
  int32_t s = 0;
  for (int32_t i = 0; i < n; i++) s += a[i];
  return s;
}

// Copy a window that overhangs the border into `window`, its rows one after another, the taps
// outside the image set to the input's zero point: each adds filter * (zero_point + in_offset)
// = 0 to the sum, so the folded bias applies as inside. No groups, no horizontal dilation.
static void copy_window(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* window) {
  const int32_t in_c = p->in_c, row_bytes = p->k_w * in_c;
  const int8_t zero_point = (int8_t)-p->in_offset;
  // each row in at most three runs (zero point, pixels, zero point), not a copy per tap: with
  // one input channel a tap is one byte
  int32_t kx0, kx1;
  clip(x0, p->k_w, p->in_w, &kx0, &kx1);
  if (kx1 < kx0) kx1 = kx0;
  for (int32_t ky = 0; ky < p->k_h; ky++) {
    const int32_t y = y0 + ky * p->dilation_h;
    int8_t* row = window + ky * row_bytes;
    if (y < 0 || y >= p->in_h || kx0 == kx1) {
      memset(row, zero_point, (size_t)row_bytes);
      continue;
    }
    memset(row, zero_point, (size_t)(kx0 * in_c));
    memcpy(row + kx0 * in_c, in + (y * p->in_w + x0 + kx0) * in_c, (size_t)((kx1 - kx0) * in_c));
    memset(row + kx1 * in_c, zero_point, (size_t)((p->k_w - kx1) * in_c));
  }
}

static inline int copies_window(const tg_conv_params* p, int32_t windows) {
  return p->in_c == p->filter_c && p->dilation_w == 1 && windows * p->k_h * p->k_w * p->in_c <= TG_CONV_SCRATCH_BYTES;
}

// One output pixel, every channel, window over the border: the reference's sum over the taps
// inside the image, as dot(filter, input) + in_offset * sum(filter) over each clipped row.
static void conv_border_pixel(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* out) {
  const output_stage o = output_stage_of(p);
  const int32_t row_bytes = p->k_w * p->in_c;
  if (copies_window(p, 1)) {
    int8_t window[TG_CONV_SCRATCH_BYTES];
    copy_window(p, in, y0, x0, window);
    conv_window(p, &o, window, row_bytes, out);
    return;
  }
  // The folded bias plus the taps outside the image times the zero point (what a copied window
  // would hold there): the reference's bias plus sum(filter * (input + in_offset)) inside, with
  // no bias array in flash.
  const int32_t zero_point = -p->in_offset;
  if (p->in_c == p->filter_c && p->dilation_h == 1 && p->dilation_w == 1) {
    int32_t ky0, ky1, kx0, kx1;
    clip(y0, p->k_h, p->in_h, &ky0, &ky1);
    clip(x0, p->k_w, p->in_w, &kx0, &kx1);
    const int32_t filter_row = p->k_w * p->in_c, n = (kx1 - kx0) * p->in_c;
    for (int32_t oc = 0; oc < p->out_c; oc++) {
      const int8_t* filter = p->filter + oc * p->k_h * filter_row;
      int32_t acc = p->folded_bias[oc];
      for (int32_t ky = 0; ky < p->k_h; ky++) {
        const int8_t* f = filter + ky * filter_row;
        if (ky < ky0 || ky >= ky1) {
          acc += zero_point * sum_s8(f, filter_row);
          continue;
        }
        acc += tg_dot_s8(f + kx0 * p->in_c, in + ((y0 + ky) * p->in_w + x0 + kx0) * p->in_c, n) +
               zero_point * (sum_s8(f, kx0 * p->in_c) + sum_s8(f + kx1 * p->in_c, (p->k_w - kx1) * p->in_c));
      }
      out[oc] = requantize(&o, acc, oc);
    }
    return;
  }
  const int32_t filters_per_group = p->out_c / (p->in_c / p->filter_c);
  const int32_t filter_row = p->k_w * p->filter_c;
  for (int32_t oc = 0; oc < p->out_c; oc++) {
    const int32_t channel0 = (oc / filters_per_group) * p->filter_c;
    const int8_t* filter = p->filter + oc * p->k_h * filter_row;
    int32_t acc = p->folded_bias[oc];
    for (int32_t ky = 0; ky < p->k_h; ky++) {
      const int32_t y = y0 + ky * p->dilation_h;
      for (int32_t kx = 0; kx < p->k_w; kx++) {
        const int32_t x = x0 + kx * p->dilation_w;
        const int8_t* taps = filter + ky * filter_row + kx * p->filter_c;
        if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
          acc += zero_point * sum_s8(taps, p->filter_c);
          continue;
        }
        const int8_t* pixel = in + (y * p->in_w + x) * p->in_c + channel0;
        for (int32_t ic = 0; ic < p->filter_c; ic++) acc += taps[ic] * pixel[ic];
      }
    }
    out[oc] = requantize(&o, acc, oc);
  }
}

// One output pixel whose window is inside the image: folded bias plus plain dot products.
static void conv_inside_pixel(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* out) {
  const output_stage o = output_stage_of(p);
  const int32_t groups = p->in_c / p->filter_c;
  const int32_t filter_row = p->k_w * p->filter_c;
  const int32_t filter_size = p->k_h * filter_row;
  const int8_t* window = in + (y0 * p->in_w + x0) * p->in_c;
  const int32_t row_step = p->dilation_h * p->in_w * p->in_c;
  if (groups == 1 && p->dilation_w == 1) {
    if (gather_pays(p, 1)) {
      int8_t gathered[TG_CONV_SCRATCH_BYTES];
      gather(window, p->k_h, filter_row, row_step, gathered);
      conv_window(p, &o, gathered, filter_row, out);
    } else {
      conv_window(p, &o, window, row_step, out);
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
    out[oc] = requantize(&o, acc, oc);
  }
}

static void conv_pair(const tg_conv_params* p, const output_stage* o, const int8_t* w0, const int8_t* w1,
                      int32_t rows, int32_t n, int32_t row_step, int8_t* out);

// Two horizontally adjacent output pixels, both windows inside the image, no groups and no
// horizontal dilation: two filters by two windows per pass, so every load serves twice.
static void conv_inside_pixel_pair(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* out) {
  const output_stage o = output_stage_of(p);
  const int32_t filter_row = p->k_w * p->filter_c;
  const int32_t filter_size = p->k_h * filter_row;
  const int8_t* w0 = in + (y0 * p->in_w + x0) * p->in_c;
  const int8_t* w1 = w0 + p->stride_w * p->in_c;
  int32_t row_step = p->dilation_h * p->in_w * p->in_c;
  int32_t rows = p->k_h, n = filter_row;
  int8_t gathered[TG_CONV_SCRATCH_BYTES];
  if (gather_pays(p, 2)) {
    gather(w0, p->k_h, filter_row, row_step, gathered);
    gather(w1, p->k_h, filter_row, row_step, gathered + filter_size);
    w0 = gathered;
    w1 = gathered + filter_size;
    rows = 1;
    n = row_step = filter_size;
  }
  conv_pair(p, &o, w0, w1, rows, n, row_step, out);
}

// Two horizontally adjacent output pixels whose windows overhang the border (an image's first
// layer with a tall filter has many): both copied with the zero point outside, then the pair
// kernel, as inside.
static void conv_border_pixel_pair(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* out) {
  const output_stage o = output_stage_of(p);
  const int32_t filter_size = p->k_h * p->k_w * p->filter_c;
  int8_t windows[TG_CONV_SCRATCH_BYTES];
  copy_window(p, in, y0, x0, windows);
  copy_window(p, in, y0, x0 + p->stride_w, windows + filter_size);
  conv_pair(p, &o, windows, windows + filter_size, 1, filter_size, filter_size, out);
}

// Two pixels' windows, w0 and w1, `rows` rows of n bytes each, row_step apart: every channel of
// both, two filters by two windows per pass.
static void conv_pair(const tg_conv_params* p, const output_stage* o, const int8_t* w0, const int8_t* w1,
                      int32_t rows, int32_t n, int32_t row_step, int8_t* out) {
  // locals, not p-> or o->: every int8 store may alias them, and a reload per output adds up
  const output_stage os = *o;
  const int32_t filter_size = p->k_h * p->k_w * p->filter_c, out_c = p->out_c;
  const int8_t* const filter = p->filter;
  const int32_t* const bias = p->folded_bias;
  const int same_step = rows == 1 && w1 == w0 + filter_size;   // gathered or copied windows
  int8_t* out1 = out + out_c;
  int32_t oc = 0;
#if !TG_DSP
  for (; oc + 4 <= out_c; oc += 4) {
    conv_four(&os, filter + oc * filter_size, filter_size, bias, oc, w0, rows, n, row_step, out);
    conv_four(&os, filter + oc * filter_size, filter_size, bias, oc, w1, rows, n, row_step, out1);
  }
#else  // two filters at a time (without DSP the last three at most go one at a time, below: less flash)
  for (; oc + 2 <= out_c; oc += 2) {
    const int8_t* f0 = filter + oc * filter_size;
    int32_t acc[4] = {bias[oc], bias[oc], bias[oc + 1], bias[oc + 1]};
    if (same_step) {
      tg_dot2x2_step_s8(f0, w0, filter_size, n, acc);
    } else {
      for (int32_t r = 0; r < rows; r++) {
        tg_dot2x2_s8(f0 + r * n, f0 + filter_size + r * n, w0 + r * row_step, w1 + r * row_step, n, acc);
      }
    }
    out[oc] = requantize(&os, acc[0], oc);
    out1[oc] = requantize(&os, acc[1], oc);
    out[oc + 1] = requantize(&os, acc[2], oc + 1);
    out1[oc + 1] = requantize(&os, acc[3], oc + 1);
  }
#endif
  for (; oc < out_c; oc++) {
    const int8_t* f = filter + oc * filter_size;
    int32_t acc0 = bias[oc], acc1 = bias[oc];
    for (int32_t r = 0; r < rows; r++) tg_dot2_s8(w0 + r * row_step, w1 + r * row_step, f + r * n, n, &acc0, &acc1);
    out[oc] = requantize(&os, acc0, oc);
    out1[oc] = requantize(&os, acc1, oc);
  }
}

// Output rows and columns whose windows lie wholly inside the input.
typedef struct {
  int32_t y_lo, y_hi, x_lo, x_hi;
} inside_box;

static inside_box inside_of(const tg_conv_params* p) {
  inside_box b;
  interior(p->out_h, p->in_h, p->k_h, p->stride_h, p->dilation_h, p->pad_h, &b.y_lo, &b.y_hi);
  interior(p->out_w, p->in_w, p->k_w, p->stride_w, p->dilation_w, p->pad_w, &b.x_lo, &b.x_hi);
  return b;
}

// Output pixels [ox0, ox1) of row oy, into out (pixel ox0's channels first): left to right,
// or right to left (backwards); two at a time where both windows are inside the image. Not
// inlined into its callers, so that the pixel functions each have one call site and are.
static TG_NOINLINE void conv_span(const tg_conv_params* p, const inside_box* b, const int8_t* in, int32_t oy,
                                  int32_t ox0, int32_t ox1, int8_t* out, int backwards) {
  const int pairs = p->in_c == p->filter_c && p->dilation_w == 1;
  const int border_pairs = copies_window(p, 2);
  const int32_t y0 = oy * p->stride_h - p->pad_h;
  const int row_inside = oy >= b->y_lo && oy < b->y_hi;
  if (!backwards) {
    for (int32_t ox = ox0; ox < ox1; ox++, out += p->out_c) {
      const int32_t x0 = ox * p->stride_w - p->pad_w;
      if (pairs && row_inside && ox >= b->x_lo && ox + 1 < b->x_hi && ox + 1 < ox1) {
        conv_inside_pixel_pair(p, in, y0, x0, out);
        ox++;
        out += p->out_c;
      } else if (row_inside && ox >= b->x_lo && ox < b->x_hi) {
        conv_inside_pixel(p, in, y0, x0, out);
      } else if (border_pairs && ox + 1 < ox1 && !(row_inside && ox + 1 >= b->x_lo && ox + 1 < b->x_hi)) {
        conv_border_pixel_pair(p, in, y0, x0, out);
        ox++;
        out += p->out_c;
      } else {
        conv_border_pixel(p, in, y0, x0, out);
      }
    }
    return;
  }
  out += (ox1 - ox0) * p->out_c;
  for (int32_t ox = ox1 - 1; ox >= ox0; ox--) {
    out -= p->out_c;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    if (pairs && row_inside && ox - 1 >= b->x_lo && ox < b->x_hi && ox - 1 >= ox0) {
      out -= p->out_c;
      conv_inside_pixel_pair(p, in, y0, x0 - p->stride_w, out);
      ox--;
    } else if (row_inside && ox >= b->x_lo && ox < b->x_hi) {
      conv_inside_pixel(p, in, y0, x0, out);
    } else if (border_pairs && ox - 1 >= ox0 && !(row_inside && ox - 1 >= b->x_lo && ox - 1 < b->x_hi)) {
      out -= p->out_c;
      conv_border_pixel_pair(p, in, y0, x0 - p->stride_w, out);
      ox--;
    } else {
      conv_border_pixel(p, in, y0, x0, out);
    }
  }
}

void tg_conv2d(const tg_conv_params* p, const int8_t* in, int8_t* out) {
  const inside_box b = inside_of(p);
  const int32_t row = p->out_w * p->out_c;
  for (int32_t oy = 0; oy < p->out_h; oy++, out += row) conv_span(p, &b, in, oy, 0, p->out_w, out, 0);
}

// The same pixels, last first (bottom row first, right to left): the output may then start
// above its input and widen over it (the planner's streamed form, backwards).
void tg_conv2d_backwards(const tg_conv_params* p, const int8_t* in, int8_t* out) {
  const inside_box b = inside_of(p);
  const int32_t row = p->out_w * p->out_c;
  for (int32_t oy = p->out_h - 1; oy >= 0; oy--) conv_span(p, &b, in, oy, 0, p->out_w, out + oy * row, 1);
}

// CONV_2D then the ADD of its output and a skip tensor, the sum written over the skip: the
// convolution's pixels go a run at a time into a stack buffer, each run added to the skip's
// pixels at once (the ADD element-wise, by the same tables as tg_add). The skip is `in1` of
// the ADD's parameters, the convolution's output `in2` (the host swaps them if need be: the
// two rescaled inputs are summed as integers, in either order).
void tg_conv2d_add(const tg_conv_params* p, const tg_binary_params* add, const int8_t* in, int8_t* skip) {
  int8_t run[TG_CONV_ADD_BYTES];
  const tg_binary_params q = *add;
  int32_t x[256], y[256];
  for (int32_t v = -128; v < 128; v++) {
    x[v + 128] = tg_add_rescaled_in1(&q, v);
    y[v + 128] = tg_add_rescaled_in2(&q, v);
  }
  const inside_box b = inside_of(p);
  const int32_t pixels = TG_CONV_ADD_BYTES / p->out_c;
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    for (int32_t ox = 0; ox < p->out_w; ox += pixels) {
      const int32_t n = p->out_w - ox < pixels ? p->out_w - ox : pixels;
      conv_span(p, &b, in, oy, ox, ox + n, run, 0);
      for (int32_t i = 0; i < n * p->out_c; i++) skip[i] = tg_add_sum_out(&q, x[skip[i] + 128] + y[run[i] + 128]);
      skip += n * p->out_c;
    }
  }
}

// CONV_2D with a 1x1 filter, stride 1, no padding and no groups (a pointwise convolution, most
// of a MobileNet's or a DS-CNN's work): the input is a matrix of pixels by channels, so pixels go
// in pairs across image rows too (no single pixel at the end of each odd row), each pair two
// filters by two pixels per pass of the dot product, and nothing is checked per pixel.
// Backwards: the last pair first, pairs (n-2, n-1), (n-4, n-3), ..., pixel 0 alone if n is odd.
static TG_NOINLINE void conv1x1(const tg_conv_params* p, const int8_t* in, int8_t* out, int backwards) {
  const output_stage o = output_stage_of(p);
  // locals, not p->: the int8 stores may alias the parameter block
  const int32_t in_c = p->in_c, out_c = p->out_c;
  const int8_t* const filter = p->filter;
  const int32_t* const bias = p->folded_bias;
  int32_t pixels = p->out_h * p->out_w;
  const int32_t in_step = backwards ? -2 * in_c : 2 * in_c, out_step = backwards ? -2 * out_c : 2 * out_c;
  if (backwards) {
    in += (pixels - 2) * in_c;
    out += (pixels - 2) * out_c;
  }
  for (; pixels >= 2; pixels -= 2, in += in_step, out += out_step) {
    int8_t* out1 = out + out_c;
    const int8_t* f = filter;
    int32_t oc = 0;
#if !TG_DSP
    for (; oc + 4 <= out_c; oc += 4, f += 4 * in_c) {
      conv_four(&o, f, in_c, bias, oc, in, 1, in_c, in_c, out);
      conv_four(&o, f, in_c, bias, oc, in + in_c, 1, in_c, in_c, out1);
    }
#endif
#if TG_DSP
    for (; oc + 2 <= out_c; oc += 2, f += 2 * in_c) {
      int32_t acc[4] = {bias[oc], bias[oc], bias[oc + 1], bias[oc + 1]};
      tg_dot2x2_step_s8(f, in, in_c, in_c, acc);
      out[oc] = requantize(&o, acc[0], oc);
      out1[oc] = requantize(&o, acc[1], oc);
      out[oc + 1] = requantize(&o, acc[2], oc + 1);
      out1[oc + 1] = requantize(&o, acc[3], oc + 1);
    }
    if (oc < out_c) {
#else  // the last (at most three) channels one at a time: a 2x2 tile for them cost 0.9 KB of flash
    for (; oc < out_c; oc++, f += in_c) {
#endif
      int32_t acc0 = bias[oc], acc1 = bias[oc];
      tg_dot2_s8(in, in + in_c, f, in_c, &acc0, &acc1);
      out[oc] = requantize(&o, acc0, oc);
      out1[oc] = requantize(&o, acc1, oc);
    }
  }
  if (pixels && backwards) conv_window(p, &o, in + in_c, in_c, out + out_c);   // pixel 0
  else if (pixels) conv_window(p, &o, in, in_c, out);
}

void tg_conv2d_1x1(const tg_conv_params* p, const int8_t* in, int8_t* out) { conv1x1(p, in, out, 0); }

// The same pairs, last first: the output may start above its input and widen over it.
void tg_conv2d_1x1_backwards(const tg_conv_params* p, const int8_t* in, int8_t* out) { conv1x1(p, in, out, 1); }

// Channels [0, channels) of one depthwise output pixel with a 3x3 filter (depth multiplier 1),
// four at a time while four remain: each tap is one word of input and one of filter. `window` is
// the pixel's first tap, tap_x and tap_y the steps to the next tap in a row and to the next row.
static int32_t depthwise_blocks(const output_stage* stage, const int8_t* window, int32_t tap_x, int32_t tap_y,
                                const int8_t* filter, int32_t filter_step, const int32_t* folded_bias,
                                int32_t channels, int8_t* out) {
  const output_stage os = *stage, *const o = &os;  // a local: the int8 stores may alias *stage
  int32_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    int32_t acc[4] = {folded_bias[c], folded_bias[c + 1], folded_bias[c + 2], folded_bias[c + 3]};
    const int8_t* taps = filter + c;
    const int8_t* row = window + c;
    for (int32_t ky = 0; ky < 3; ky++, row += tap_y, taps += 3 * filter_step) {
      tg_mac4_s8(row, taps, acc);
      tg_mac4_s8(row + tap_x, taps + filter_step, acc);
      tg_mac4_s8(row + 2 * tap_x, taps + 2 * filter_step, acc);
    }
    out[c] = requantize(o, acc[0], c);
    out[c + 1] = requantize(o, acc[1], c + 1);
    out[c + 2] = requantize(o, acc[2], c + 2);
    out[c + 3] = requantize(o, acc[3], c + 3);
  }
  return c;
}

static void depthwise_taps(const output_stage* stage, const int8_t* const* tap, int32_t taps, const int8_t* filter,
                           int32_t filter_step, const int32_t* folded_bias, int32_t channels, int32_t channel0,
                           int8_t* out);

// Taps a depthwise window may have for depthwise_taps (7 x 7).
#define TG_DW_MAX_TAPS 49

// One output pixel of a depthwise convolution, window inside the image.
static void depthwise_inside_pixel(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* out) {
  const output_stage o = output_stage_of(p);
  const int32_t tap_x = p->dilation_w * p->in_c, tap_y = p->dilation_h * p->in_w * p->in_c;
  const int8_t* window = in + (y0 * p->in_w + x0) * p->in_c;
  int32_t c = 0;
  if (p->depth_multiplier == 1 && p->k_h == 3 && p->k_w == 3) {  // MobileNet's and DS-CNN's case, unrolled
    c = depthwise_blocks(&o, window, tap_x, tap_y, p->filter, p->out_c, p->folded_bias, p->in_c, out);
  } else if (p->depth_multiplier == 1 && p->k_h * p->k_w <= TG_DW_MAX_TAPS) {
    const int8_t* tap[TG_DW_MAX_TAPS];
    for (int32_t ky = 0, t = 0; ky < p->k_h; ky++) {
      for (int32_t kx = 0; kx < p->k_w; kx++, t++) tap[t] = window + ky * tap_y + kx * tap_x;
    }
    depthwise_taps(&o, tap, p->k_h * p->k_w, p->filter, p->out_c, p->folded_bias, p->in_c, 0, out);
    return;
  }
  for (int32_t ic = c; ic < p->in_c; ic++) {
    for (int32_t m = 0; m < p->depth_multiplier; m++) {
      const int32_t oc = ic * p->depth_multiplier + m;
      int32_t acc = p->folded_bias[oc];
      const int8_t* row = window + ic;
      const int8_t* taps = p->filter + oc;
      for (int32_t ky = 0; ky < p->k_h; ky++, row += tap_y) {
        const int8_t* x = row;
        for (int32_t kx = 0; kx < p->k_w; kx++, x += tap_x, taps += p->out_c) acc += *taps * *x;
      }
      out[oc] = requantize(&o, acc, oc);
    }
  }
}

// Channels [0, channels) of one depthwise output pixel (depth multiplier 1) from a pointer per
// tap to the tap's first channel: an input pixel, or a run of the input's zero point for a tap
// outside the image (each adds filter * (zero_point + in_offset) = 0, so the folded bias holds).
static void depthwise_taps(const output_stage* stage, const int8_t* const* tap, int32_t taps, const int8_t* filter,
                           int32_t filter_step, const int32_t* folded_bias, int32_t channels, int32_t channel0,
                           int8_t* out) {
  const output_stage os = *stage, *const o = &os;  // a local: the int8 stores may alias *stage
  int32_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    int32_t acc[4] = {folded_bias[c], folded_bias[c + 1], folded_bias[c + 2], folded_bias[c + 3]};
    const int8_t* f = filter + c;
    for (int32_t t = 0; t < taps; t++, f += filter_step) tg_mac4_s8(tap[t] + c, f, acc);
    out[c] = requantize(o, acc[0], channel0 + c);
    out[c + 1] = requantize(o, acc[1], channel0 + c + 1);
    out[c + 2] = requantize(o, acc[2], channel0 + c + 2);
    out[c + 3] = requantize(o, acc[3], channel0 + c + 3);
  }
  for (; c < channels; c++) {
    int32_t acc = folded_bias[c];
    const int8_t* f = filter + c;
    for (int32_t t = 0; t < taps; t++, f += filter_step) acc += *f * tap[t][c];
    out[c] = requantize(o, acc, channel0 + c);
  }
}

// One output pixel of a depthwise convolution whose window overhangs the border. With depth
// multiplier 1: each tap outside the image points at `zeros` (the input's zero point, `slice`
// bytes of it), a slice of channels at a time. With a depth multiplier, the reference's sum,
// from the folded bias with the zero point for the taps outside.
static void depthwise_border_pixel(const tg_conv_params* p, const int8_t* in, int32_t y0, int32_t x0, int8_t* out,
                                   const int8_t* zeros, int32_t slice) {
  const output_stage o = output_stage_of(p);
  const int32_t taps = p->k_h * p->k_w;
  if (p->depth_multiplier == 1 && taps <= TG_DW_MAX_TAPS) {
    const int8_t* tap[TG_DW_MAX_TAPS];
    for (int32_t c0 = 0; c0 < p->in_c; c0 += slice) {
      const int32_t n = p->in_c - c0 < slice ? p->in_c - c0 : slice;
      for (int32_t ky = 0, t = 0; ky < p->k_h; ky++) {
        const int32_t y = y0 + ky * p->dilation_h;
        for (int32_t kx = 0; kx < p->k_w; kx++, t++) {
          const int32_t x = x0 + kx * p->dilation_w;
          tap[t] = y < 0 || y >= p->in_h || x < 0 || x >= p->in_w ? zeros : in + (y * p->in_w + x) * p->in_c + c0;
        }
      }
      depthwise_taps(&o, tap, taps, p->filter + c0, p->out_c, p->folded_bias + c0, n, c0, out + c0);
    }
    return;
  }
  for (int32_t ic = 0; ic < p->in_c; ic++) {
    for (int32_t m = 0; m < p->depth_multiplier; m++) {
      const int32_t oc = ic * p->depth_multiplier + m;
      // as conv_border_pixel: the folded bias, the zero point for the taps outside
      int32_t acc = p->folded_bias[oc];
      for (int32_t ky = 0; ky < p->k_h; ky++) {
        const int32_t y = y0 + ky * p->dilation_h;
        for (int32_t kx = 0; kx < p->k_w; kx++) {
          const int32_t x = x0 + kx * p->dilation_w;
          const int32_t v = y < 0 || y >= p->in_h || x < 0 || x >= p->in_w ? -p->in_offset
                                                                           : in[(y * p->in_w + x) * p->in_c + ic];
          acc += p->filter[(ky * p->k_w + kx) * p->out_c + oc] * v;
        }
      }
      out[oc] = requantize(&o, acc, oc);
    }
  }
}

// Every output pixel, first to last or (backwards) last to first. Not inlined into its two
// callers, so that the pixel functions each have one call site and are.
static TG_NOINLINE void depthwise(const tg_conv_params* p, const int8_t* in, int8_t* out, int backwards) {
  const inside_box b = inside_of(p);
  const int32_t step = backwards ? -p->out_c : p->out_c;
  // the zero point, for the border windows' taps outside the image: a slice of channels at a time
  int8_t zeros[TG_CONV_SCRATCH_BYTES];
  const int32_t slice = p->in_c < TG_CONV_SCRATCH_BYTES ? p->in_c : TG_CONV_SCRATCH_BYTES;
  memset(zeros, (int8_t)-p->in_offset, (size_t)slice);
  if (backwards) out += (p->out_h * p->out_w - 1) * p->out_c;
  for (int32_t r = 0; r < p->out_h; r++) {
    const int32_t oy = backwards ? p->out_h - 1 - r : r;
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int row_inside = oy >= b.y_lo && oy < b.y_hi;
    for (int32_t c = 0; c < p->out_w; c++, out += step) {
      const int32_t ox = backwards ? p->out_w - 1 - c : c;
      const int32_t x0 = ox * p->stride_w - p->pad_w;
      if (row_inside && ox >= b.x_lo && ox < b.x_hi) {
        depthwise_inside_pixel(p, in, y0, x0, out);
      } else {
        depthwise_border_pixel(p, in, y0, x0, out, zeros, slice);
      }
    }
  }
}

void tg_depthwise_conv2d(const tg_conv_params* p, const int8_t* in, int8_t* out) { depthwise(p, in, out, 0); }

// Last pixel first, as tg_conv2d_backwards.
void tg_depthwise_conv2d_backwards(const tg_conv_params* p, const int8_t* in, int8_t* out) { depthwise(p, in, out, 1); }
