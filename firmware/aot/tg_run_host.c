// tg_run_host.c: runs an AOT-compiled model on the host, for `tinygen run --board host`
// and for tests: reads N inputs back to back from argv[1], writes the N outputs back to
// back to argv[2], and prints the wall-clock nanoseconds per inference.
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tg_model.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s inputs.bin outputs.bin\n", argv[0]);
    return 2;
  }
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  if (!in || !out) {
    perror("tg_run_host");
    return 2;
  }
  static unsigned char input[TG_MODEL_INPUT_BYTES];
  unsigned long count = 0;
  double busy = 0;
  while (fread(input, 1, sizeof(input), in) == sizeof(input)) {
    memcpy(tg_model_input(), input, sizeof(input));
    const double start = now_ns();
    tg_model_invoke();
    busy += now_ns() - start;
    if (fwrite(tg_model_output(), 1, TG_MODEL_OUTPUT_BYTES, out) != TG_MODEL_OUTPUT_BYTES) {
      perror("tg_run_host");
      return 2;
    }
    count++;
  }
  fclose(in);
  if (fclose(out) != 0) {
    perror("tg_run_host");
    return 2;
  }
  printf("inferences=%lu ns_per_inference=%.0f\n", count, count ? busy / count : 0.0);
  return 0;
}
