// hello.c: the mps2-an386 board port without TFLM: prints the model's size and a cycle
// count over the UART, then exits through semihosting with a known code.
#include <stdio.h>

#include "model_data.h"
#include "tinygen_board.h"

int main(void) {
  board_init();
  uint32_t start = board_cycles();
  unsigned sum = 0;
  for (size_t i = 0; i < g_model_len; i++) sum += g_model[i];
  uint32_t cycles = board_cycles() - start;
  printf("model %u bytes, checksum %u, %lu cycles at %lu Hz\n", (unsigned)g_model_len, sum,
         (unsigned long)cycles, (unsigned long)board_clock_hz());
  return 7;
}
