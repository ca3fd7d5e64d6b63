// tg_kernels.h: tinygen's int8 kernels for ahead-of-time compiled models, in C99.
//
// Every kernel computes what TFLite's reference kernel of the same name computes, bit for
// bit (tensorflow/lite/kernels/internal/reference/integer_ops/). What TFLite's kernels
// work out at run time (quantized multipliers, padding, activation ranges) tinygen works
// out on the host: each call gets a const parameter block that lives in flash.
//
// Activations are NHWC with a batch of 1. Offsets follow TFLite's convention:
// in_offset = -input_zero_point, out_offset = output_zero_point.
#ifndef TG_KERNELS_H_
#define TG_KERNELS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// CONV_2D (filters OHWI, I = in_c / groups) and DEPTHWISE_CONV_2D (filters 1HWO).
typedef struct {
  int32_t in_h, in_w, in_c;
  int32_t out_h, out_w, out_c;
  int32_t k_h, k_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
  int32_t depth_multiplier;  // depthwise only
  int32_t filter_c;          // conv only: input channels per group
  int32_t in_offset, out_offset, act_min, act_max;
  const int8_t* filter;
  const int32_t* bias;       // unused by the kernels (folded_bias holds it): NULL from tinygen
  const int32_t* multiplier; // per output channel
  const int32_t* shift;
  // bias + in_offset * (sum of the channel's filter taps), worked out on the host: where the
  // whole window is inside the image, acc = folded_bias + sum(filter * input) is the same
  // integer as the reference's sum(filter * (input + in_offset)) + bias, for less work.
  const int32_t* folded_bias;
  // Where the host proved it exact for every channel (right shifts e = -shift >= 1, |acc| < 2^30
  // from the weights, the folded bias and int8 inputs): (2^(e-1) + out_offset * 2^e) * 256 + e per
  // channel, the output stage rounds with one 32-bit multiply, and shift is NULL; NULL otherwise:
  // TFLite's 64-bit two-step path.
  const int32_t* rounding;
} tg_conv_params;

void tg_conv2d(const tg_conv_params* p, const int8_t* in, int8_t* out);
void tg_conv2d_1x1(const tg_conv_params* p, const int8_t* in, int8_t* out);  // 1x1, stride 1, no padding, no groups
void tg_depthwise_conv2d(const tg_conv_params* p, const int8_t* in, int8_t* out);
// The same, last output pixel first: the output may overlap its input from above.
void tg_conv2d_backwards(const tg_conv_params* p, const int8_t* in, int8_t* out);
void tg_depthwise_conv2d_backwards(const tg_conv_params* p, const int8_t* in, int8_t* out);
void tg_conv2d_1x1_backwards(const tg_conv_params* p, const int8_t* in, int8_t* out);

// FULLY_CONNECTED: out[b][o] = sum_i (w[o][i] + filter_offset) * (in[b][i] + in_offset) + bias[o], requantized.
typedef struct {
  int32_t batches, in_depth, out_depth;
  int32_t in_offset, filter_offset, out_offset, act_min, act_max;
  int32_t per_channel;       // 0: multiplier[0] and shift[0] for every output
  int32_t single_rounding;   // 1: requantize with one rounding, as TFLite 2.21's kernel does (TFLM: two)
  const int8_t* filter;
  const int32_t* bias;
  const int32_t* multiplier;
  const int32_t* shift;
  const int32_t* folded_bias;  // as in tg_conv_params; NULL when filter_offset is not 0
} tg_fully_connected_params;

void tg_fully_connected(const tg_fully_connected_params* p, const int8_t* in, int8_t* out);

// AVERAGE_POOL_2D and MAX_POOL_2D.
typedef struct {
  int32_t in_h, in_w, channels, out_h, out_w;
  int32_t k_h, k_w, stride_h, stride_w, pad_h, pad_w;
  int32_t act_min, act_max;
} tg_pool_params;

void tg_average_pool2d(const tg_pool_params* p, const int8_t* in, int8_t* out);
void tg_max_pool2d(const tg_pool_params* p, const int8_t* in, int8_t* out);

// MEAN over any of 4 axes (dims padded to 4 on the left); the multiplier already
// folds in 1/count, as TFLite's reference kernel does before its loop.
typedef struct {
  int32_t dims[4];
  uint8_t reduce[4];
  int32_t count;             // elements averaged into each output
  int32_t in_zero_point, out_zero_point, multiplier, shift;
} tg_mean_params;

void tg_mean(const tg_mean_params* p, const int8_t* in, int8_t* out);

// ADD, SUB and MUL, elementwise or broadcast over 4 dims: stride 0 repeats an input along a dim.
typedef struct {
  int32_t out_dims[4];
  int32_t in1_strides[4], in2_strides[4];
  int32_t broadcast;         // 0: both inputs have the output's shape
  int32_t in1_offset, in2_offset, out_offset, act_min, act_max;
  int32_t left_shift;        // ADD and SUB only
  int32_t in1_multiplier, in1_shift, in2_multiplier, in2_shift;  // ADD and SUB only
  int32_t out_multiplier, out_shift;
} tg_binary_params;

void tg_add(const tg_binary_params* p, const int8_t* in1, const int8_t* in2, int8_t* out);
void tg_sub(const tg_binary_params* p, const int8_t* in1, const int8_t* in2, int8_t* out);
void tg_mul(const tg_binary_params* p, const int8_t* in1, const int8_t* in2, int8_t* out);

// CONV_2D and the ADD that follows it (a residual) in one pass: skip = ADD(skip, conv(in)),
// written over the skip. `add`'s in1 is the skip, in2 the convolution's output.
void tg_conv2d_add(const tg_conv_params* p, const tg_binary_params* add, const int8_t* in, int8_t* skip);

// Two convolutions in a row (firmware/aot/tg_ring.c): B computed a row at a time from a window
// of `rows` rows of A's output on the stack (`window`, rows * a->out_w * a->out_c bytes), so A's
// output is never stored whole. a_kind / b_kind: the kernel each runs as.
enum { TG_RING_CONV2D = 0, TG_RING_CONV2D_1X1 = 1, TG_RING_DEPTHWISE = 2 };
typedef struct {
  const tg_conv_params* a;
  const tg_conv_params* b;
  int32_t a_kind, b_kind, rows;
} tg_ring_params;

void tg_conv_ring(const tg_ring_params* r, int8_t* window, const int8_t* in, int8_t* out);
// The same, B then the ADD of its output (`add`'s in2) and a skip tensor (in1), written over
// the skip a row at a time through `line` (b->out_w * b->out_c bytes).
void tg_conv_ring_add(const tg_ring_params* r, const tg_binary_params* add, int8_t* window, int8_t* line,
                      const int8_t* in, int8_t* skip);

// SOFTMAX over the last dimension, int8 in, int8 out (zero point -128, scale 1/256).
typedef struct {
  int32_t rows, depth;
  int32_t input_multiplier, input_left_shift, diff_min;
} tg_softmax_params;

void tg_softmax(const tg_softmax_params* p, const int8_t* in, int8_t* out);

// LOGISTIC, int8 in, int8 out (zero point -128, scale 1/256).
typedef struct {
  int32_t size, in_zero_point, input_range_radius, input_multiplier, input_left_shift;
} tg_logistic_params;

void tg_logistic(const tg_logistic_params* p, const int8_t* in, int8_t* out);

// QUANTIZE float -> int8, QUANTIZE int8 -> int8 (requantize), DEQUANTIZE int8 -> float.
typedef struct {
  int32_t size;
  float scale;               // float -> int8: the output's scale
  double dequant_scale;      // int8 -> float: the input's scale, widened as TFLite does
  int32_t in_zero_point, out_zero_point, multiplier, shift;
} tg_quantize_params;

void tg_quantize_f32(const tg_quantize_params* p, const float* in, int8_t* out);
void tg_requantize(const tg_quantize_params* p, const int8_t* in, int8_t* out);
void tg_dequantize(const tg_quantize_params* p, const int8_t* in, float* out);

// PAD and PADV2 over 4 dims (padded to 4 on the left).
typedef struct {
  int32_t in_dims[4], before[4], after[4];
  int32_t element_bytes;
  int32_t pad_value;         // int8 tensors: the byte written into the padding
} tg_pad_params;

void tg_pad(const tg_pad_params* p, const void* in, void* out);

// CONCATENATION: inputs share scale and zero point with the output (TFLite requires it
// for int8), so concatenating is copying.
typedef struct {
  int32_t outer;             // product of the dims before the axis
  int32_t count;             // number of inputs
  const int32_t* chunk_bytes;  // per input: its dims from the axis on, times the element size
} tg_concat_params;

void tg_concatenation(const tg_concat_params* p, const void* const* ins, void* out);

#ifdef __cplusplus
}
#endif

#endif  // TG_KERNELS_H_

// The kernels over look-up-table weights (clustered models), declared apart.
#include "tg_lut.h"
// The kernels over sparse weights (unstructured-pruned models).
#include "tg_sparse.h"
