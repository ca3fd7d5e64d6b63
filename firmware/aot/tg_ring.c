// tg_ring.c: two convolutions in a row, the first's output never stored whole. The second
// (B, k rows high) computes one output row at a time from a window of the first's (A's) output
// rows held in a stack buffer of `rows` rows; A computes each of its rows once, into that
// window, when B first needs it. Rows B no longer needs are dropped by moving the rest to the
// front. Each call is A's or B's own kernel on a band of rows (its parameter block copied, with
// the band's height and top padding), so every value is the one the whole-tensor call computes.
//
// A's input is read a band of rows at a time, in order, and B's output written a row at a time:
// the planner may put the output over A's input, or (tg_conv_ring_add, B fused with the ADD after
// it) write the sum over the skip tensor, when every row it writes is one A has finished reading.
#include <string.h>

#include "tg_add.h"
#include "tg_kernels.h"

static void run(int32_t kind, const tg_conv_params* p, const int8_t* in, int8_t* out) {
  switch (kind) {
    case TG_RING_CONV2D_1X1: tg_conv2d_1x1(p, in, out); break;
    case TG_RING_DEPTHWISE: tg_depthwise_conv2d(p, in, out); break;
    default: tg_conv2d(p, in, out); break;
  }
}

// Output rows [r0, r1) of convolution p, reading its whole input `in`.
static void band(int32_t kind, const tg_conv_params* p, int32_t r0, int32_t r1, const int8_t* in, int8_t* out) {
  tg_conv_params q = *p;
  const int32_t top = r0 * p->stride_h - p->pad_h;   // the band's first window row
  const int32_t first = top > 0 ? top : 0;
  q.out_h = r1 - r0;
  q.in_h = p->in_h - first;
  q.pad_h = first - top;
  run(kind, &q, in + first * p->in_w * p->in_c, out);
}

// B's output row y into `out`, A's rows made in the window as needed. State: window row 0 is
// A's row *base, rows [*base, *end) are in the window.
static void ring_row(const tg_ring_params* r, const int8_t* in, int8_t* window, int32_t y, int32_t* base,
                     int32_t* end, int8_t* out) {
  const tg_conv_params* a = r->a;
  const tg_conv_params* b = r->b;
  const int32_t row = a->out_w * a->out_c;
  const int32_t top = y * b->stride_h - b->pad_h;
  const int32_t reach = (b->k_h - 1) * b->dilation_h + 1;
  const int32_t lo = top > 0 ? top : 0;
  const int32_t hi = top + reach < a->out_h ? top + reach : a->out_h;
  if (*end < lo) *end = lo;      // rows B never reads (its stride over them) are not made
  if (hi - *base > r->rows) {    // no room below: keep rows [lo, end) at the front
    const int32_t keep = *end - lo;
    if (keep) memmove(window, window + (lo - *base) * row, (size_t)(keep * row));
    *base = lo;
  }
  if (*end < hi) {
    band(r->a_kind, a, *end, hi, in, window + (*end - *base) * row);
    *end = hi;
  }
  tg_conv_params q = *b;
  q.out_h = 1;
  q.in_h = hi - lo;
  q.pad_h = lo - top;
  run(r->b_kind, &q, window + (lo - *base) * row, out);
}

void tg_conv_ring(const tg_ring_params* r, int8_t* window, const int8_t* in, int8_t* out) {
  const int32_t row = r->b->out_w * r->b->out_c;
  int32_t base = 0, end = 0;
  for (int32_t y = 0; y < r->b->out_h; y++, out += row) ring_row(r, in, window, y, &base, &end, out);
}

void tg_conv_ring_add(const tg_ring_params* r, const tg_binary_params* add, int8_t* window, int8_t* line,
                      const int8_t* in, int8_t* skip) {
  const tg_binary_params q = *add;
  int32_t x[256], y[256];
  for (int32_t v = -128; v < 128; v++) {
    x[v + 128] = tg_add_rescaled_in1(&q, v);
    y[v + 128] = tg_add_rescaled_in2(&q, v);
  }
  const int32_t row = r->b->out_w * r->b->out_c;
  int32_t base = 0, end = 0;
  for (int32_t oy = 0; oy < r->b->out_h; oy++, skip += row) {
    ring_row(r, in, window, oy, &base, &end, line);
    for (int32_t i = 0; i < row; i++) skip[i] = tg_add_sum_out(&q, x[skip[i] + 128] + y[line[i] + 128]);
  }
}
