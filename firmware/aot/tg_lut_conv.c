// tg_lut_conv.c: a convolution whose look-up-table filter (tg_lut.h) is small enough to decode
// whole onto the stack, then run by the dense kernel of the same name (tg_conv.c). Apart from
// tg_lut.c so that a model without such a layer does not link the dense kernels for it.
#include "tg_kernels.h"
#include "tg_lut.h"

void tg_lut_conv2d(const tg_conv_lut_params* p, const int8_t* in, int8_t* out) {
  int8_t filter[p->w.count];
  tg_conv_params q = p->conv;
  tg_lut_decode(&p->w, 0, p->w.count, filter);
  q.filter = filter;
  tg_conv2d(&q, in, out);
}

void tg_lut_conv2d_1x1(const tg_conv_lut_params* p, const int8_t* in, int8_t* out) {
  int8_t filter[p->w.count];
  tg_conv_params q = p->conv;
  tg_lut_decode(&p->w, 0, p->w.count, filter);
  q.filter = filter;
  tg_conv2d_1x1(&q, in, out);
}

void tg_lut_depthwise_conv2d(const tg_conv_lut_params* p, const int8_t* in, int8_t* out) {
  int8_t filter[p->w.count];
  tg_conv_params q = p->conv;
  tg_lut_decode(&p->w, 0, p->w.count, filter);
  q.filter = filter;
  tg_depthwise_conv2d(&q, in, out);
}
