// tg_shape.c: PAD and CONCATENATION, which move bytes and compute nothing.
#include <string.h>

#include "tg_kernels.h"

void tg_pad(const tg_pad_params* p, const void* in, void* out) {
  const int32_t* d = p->in_dims;
  int32_t od[4];
  for (int k = 0; k < 4; k++) od[k] = p->before[k] + d[k] + p->after[k];
  const int32_t eb = p->element_bytes;
  uint8_t* o = (uint8_t*)out;
  const uint8_t* i = (const uint8_t*)in;
  // Fill, then copy rows of the innermost dim in. The input may not overlap the output.
  if (eb == 1) {
    memset(o, (uint8_t)(int8_t)p->pad_value, (size_t)od[0] * od[1] * od[2] * od[3]);
  } else {
    memset(o, 0, (size_t)od[0] * od[1] * od[2] * od[3] * eb);
  }
  const size_t row = (size_t)d[3] * eb;
  for (int32_t a = 0; a < d[0]; a++)
    for (int32_t b = 0; b < d[1]; b++)
      for (int32_t c = 0; c < d[2]; c++) {
        const size_t at = ((((size_t)(a + p->before[0]) * od[1] + b + p->before[1]) * od[2] + c + p->before[2]) * od[3] +
                           p->before[3]) * eb;
        memcpy(o + at, i, row);
        i += row;
      }
}

void tg_concatenation(const tg_concat_params* p, const void* const* ins, void* out) {
  uint8_t* o = (uint8_t*)out;
  for (int32_t outer = 0; outer < p->outer; outer++) {
    for (int32_t k = 0; k < p->count; k++) {
      const size_t n = (size_t)p->chunk_bytes[k];
      memcpy(o, (const uint8_t*)ins[k] + (size_t)outer * n, n);
      o += n;
    }
  }
}
