// tg_run_host.c: runs an AOT-compiled model on the host, for `tinygen run --board host`
// and for tests. Reads inference after inference from argv[1] (each one: every input's
// bytes, in order), writes each inference's outputs, in order, to argv[2], and prints the
// wall-clock nanoseconds per inference.
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>

#include "tg_model.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

// Reads one inference's inputs straight into the arena; 0 at the end of the file.
static int read_inputs(FILE* in) {
  for (int i = 0; i < TG_MODEL_INPUT_COUNT; i++) {
    if (fread(tg_model_input(i), 1, tg_model_input_bytes[i], in) != tg_model_input_bytes[i]) return 0;
  }
  return 1;
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
  unsigned long count = 0;
  double busy = 0;
  while (read_inputs(in)) {
    const double start = now_ns();
    tg_model_invoke();
    busy += now_ns() - start;
    for (int o = 0; o < TG_MODEL_OUTPUT_COUNT; o++) {
      if (fwrite(tg_model_output(o), 1, tg_model_output_bytes[o], out) != tg_model_output_bytes[o]) {
        perror("tg_run_host");
        return 2;
      }
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
