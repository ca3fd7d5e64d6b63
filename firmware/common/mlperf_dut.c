// mlperf_dut.c: see mlperf_dut.h. Formatting is done here, without printf, so that the
// image needs neither newlib's formatted I/O nor float printing.
#include "mlperf_dut.h"

#include <string.h>

#include "harness.h"
#include "tinygen_board.h"

#define CMD_SIZE 80u  // EE_CMD_SIZE

static const mlperf_model_t* g_model;
static uint8_t* g_buf;
static int8_t* g_staged;
static size_t g_buf_cap;
static size_t g_buf_size;  // bytes the current `db load` expects; 0: no load in progress
static size_t g_buf_pos;   // bytes of it received
static int g_loaded;       // a whole payload has arrived and no error has come since
static int g_have_results;
static float g_score;      // MLPERF_OUTPUT_MSE: the last inference's anomaly score

static void put(const char* s) { board_serial_write(s, strlen(s)); }

static void put_u64(uint64_t v) {
  char b[21];
  size_t i = sizeof(b);
  do {
    b[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v);
  board_serial_write(b + i, sizeof(b) - i);
}

// %0.3f without printf: sign, integer part, three decimals, rounded half away from zero.
static void put_f3(float f) {
  if (f != f) {
    put("nan");
    return;
  }
  if (f < 0) {
    put("-");
    f = -f;
  }
  if (f > 1e15f) {
    put("inf");
    return;
  }
  const uint64_t milli = (uint64_t)((double)f * 1000.0 + 0.5);
  put_u64(milli / 1000u);
  char d[4] = {'.', (char)('0' + milli / 100u % 10u), (char)('0' + milli / 10u % 10u), (char)('0' + milli % 10u)};
  board_serial_write(d, 4);
}

static void timestamp(void) {
#if defined(TG_MLPERF_ENERGY) && TG_MLPERF_ENERGY
  // A falling edge the energy monitor records; held low ~1 ms, as the reference's 100,000 nops.
  const uint64_t hold = board_clock_hz() / 1000u;
  const uint64_t start = tg_cycles64();
  board_timestamp_pin_write(0);
  while (tg_cycles64() - start < hold) {
  }
  board_timestamp_pin_write(1);
#else
  put("m-lap-us-");
  put_u64(tg_micros64());
  put("\r\n");
#endif
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A decimal count; 0 if `s` is not one (or would not fit an int).
static int parse_count(const char* s, long* out) {
  long v = 0;
  if (!s || !*s) return 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > 100000000L) return 0;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return 1;
}

static void forget_load(void) {
  g_buf_size = 0;
  g_buf_pos = 0;
  g_loaded = 0;
}

static float output_value(size_t i) {
  if (g_model->output_is_float) return ((const float*)g_model->output)[i];
  const int8_t q = ((const int8_t*)g_model->output)[i];
  return (float)(q - g_model->output_zero_point) * g_model->output_scale;
}

static float loaded_float(size_t i) {
  float f;
  memcpy(&f, g_buf + 4u * i, sizeof(f));  // the buffer need not be aligned for float
  return f;
}

// ad01's score, as the reference computes it (calculate_result): float arithmetic throughout.
static float mean_squared_error(void) {
  float sum = 0.0f;
  for (size_t i = 0; i < g_model->input_elements; i++) {
    const float diff = output_value(i) - loaded_float(i);
    sum += diff * diff;
  }
  return sum / (float)g_model->input_elements;
}

static void results(void) {
  if (!g_have_results) {
    put("e-[No results yet: run 'infer' first]\r\n");
    return;
  }
  put("m-results-[");
  if (g_model->output_kind == MLPERF_OUTPUT_MSE) {
    put_f3(g_score);
  } else {
    for (size_t i = 0; i < g_model->output_elements; i++) {
      if (i) put(",");
      put_f3(output_value(i));
    }
  }
  put("]\r\n");
}

// The reference's QuantizeFloatToInt8: round(x / scale) + zero_point, half away from zero, clamped.
static int8_t quantize(float x) {
  double q = (double)(x / g_model->input_scale);  // the division in float, as the reference's
  if (q != q) q = 0.0;
  q = q > 1000.0 ? 1000.0 : (q < -1000.0 ? -1000.0 : q);
  const long r = (long)(q >= 0.0 ? q + 0.5 : q - 0.5) + g_model->input_zero_point;  // the cast truncates
  return (int8_t)(r < -128 ? -128 : (r > 127 ? 127 : r));
}

// The loaded payload into the input tensor: before every inference, since the runtime's
// memory plan may reuse the input's bytes once the first layer has read them.
static void copy_input(void) {
  int8_t* dst = g_model->input;
  const size_t n = g_model->input_elements;
  switch (g_model->input_kind) {
    case MLPERF_INPUT_UINT8:
      for (size_t i = 0; i < n; i++) dst[i] = (int8_t)(g_buf[i] ^ 0x80u);  // byte - 128
      break;
    case MLPERF_INPUT_FLOAT32:
      memcpy(dst, g_staged, n);
      break;
    default:
      memcpy(dst, g_buf, n);
  }
}

static void db(char* arg, char* rest) {
  if (!arg) {
    put("e-[Command 'db' requires a subcommand]\r\n");
  } else if (strcmp(arg, "load") == 0) {
    long n;
    forget_load();  // whatever happens next, the earlier input is not the one the host means
    if (!rest) {
      put("e-[Command 'db load' requires the # of bytes]\r\n");
    } else if (!parse_count(rest, &n) || n <= 0) {
      put("e-[Command 'db load' must be >0 bytes]\r\n");
    } else if ((size_t)n > g_buf_cap) {
      put("e-[Supplied buffer size ");
      put_u64((uint64_t)n);
      put(" exceeds maximum of ");
      put_u64(g_buf_cap);
      put("]\r\n");
    } else {
      g_buf_size = (size_t)n;
      put("m-[Expecting ");
      put_u64((uint64_t)n);
      put(" bytes]\r\n");
    }
  } else if (strcmp(arg, "print") == 0) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < g_buf_pos; i++) {
      if (i % 8 == 0) put("m-buffer-");
      char two[3] = {hx[g_buf[i] >> 4], hx[g_buf[i] & 15], (char)((i + 1) % 8 == 0 || i + 1 == g_buf_pos ? '\r' : '-')};
      board_serial_write(two, 3);
      if (two[2] == '\r') put("\n");
    }
  } else if (g_buf_size == 0) {
    put("e-[No 'db load' in progress]\r\n");
  } else if (g_buf_pos == g_buf_size) {
    put("e-[All ");
    put_u64(g_buf_size);
    put(" bytes are loaded already]\r\n");
  } else {
    const size_t len = strlen(arg);
    if (len & 1u) {
      forget_load();
      put("e-[Insufficent number of hex digits]\r\n");
      return;
    }
    for (size_t i = 0; i < len; i += 2) {
      if (hexval(arg[i]) < 0 || hexval(arg[i + 1]) < 0) {
        forget_load();
        put("e-[Invalid hex digit]\r\n");
        return;
      }
    }
    // Digits beyond the N bytes are disregarded, as the reference does.
    for (size_t i = 0; i < len && g_buf_pos < g_buf_size; i += 2) {
      g_buf[g_buf_pos++] = (uint8_t)(hexval(arg[i]) << 4 | hexval(arg[i + 1]));
    }
    if (g_buf_pos == g_buf_size) {
      g_loaded = 1;
      put("m-load-done\r\n");
    }
  }
}

static void infer(char* n_arg, char* w_arg) {
  long n = 1, w = 10;
  if (n_arg && (!parse_count(n_arg, &n) || n <= 0)) {
    put("e-[Inference iterations must be >0]\r\n");
    return;
  }
  if (w_arg && !parse_count(w_arg, &w)) {
    put("e-[Inference warmup must be >=0]\r\n");
    return;
  }
  const size_t payload = MLPERF_PAYLOAD_BYTES(g_model->input_elements, g_model->input_kind);
  if (!g_loaded || g_buf_pos != payload) {
    put("e-[No input loaded: ");
    put(g_model->model_version);
    put(" takes 'db load ");
    put_u64(payload);
    put("' and its bytes]\r\n");
    return;
  }
  if (g_model->input_kind == MLPERF_INPUT_FLOAT32) {
    for (size_t i = 0; i < g_model->input_elements; i++) g_staged[i] = quantize(loaded_float(i));
  }
  put("m-warmup-start-");
  put_u64((uint64_t)w);
  put("\r\n");
  int failed = 0;
  for (long i = 0; i < w; i++) {
    copy_input();
    failed |= g_model->infer();
    (void)tg_cycles64();  // keeps the 64-bit count in step however long the run
  }
  put("m-warmup-done\r\nm-infer-start-");
  put_u64((uint64_t)n);
  put("\r\n");
  timestamp();
  for (long i = 0; i < n; i++) {
    copy_input();
    failed |= g_model->infer();
    (void)tg_cycles64();
  }
  timestamp();
  if (failed) {
    g_have_results = 0;
    put("e-[Inference failed]\r\n");
    return;
  }
  put("m-infer-done\r\n");
  if (g_model->output_kind == MLPERF_OUTPUT_MSE) g_score = mean_squared_error();
  g_have_results = 1;
  results();
}

static void dispatch(char* cmd) {
  char* argv[4] = {0};
  int argc = 0;
  for (char* p = cmd; *p && argc < 4;) {
    while (*p == ' ') *p++ = '\0';
    if (!*p) break;
    argv[argc++] = p;
    while (*p && *p != ' ') p++;
  }
  if (argc == 0) {
    put("e-[Unknown command: ]\r\n");
  } else if (strcmp(argv[0], "name") == 0) {
    put("m-name-dut-[tinygen]\r\n");
  } else if (strcmp(argv[0], "profile") == 0) {
    put("m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\nm-model-[");
    put(g_model->model_version);
    put("]\r\n");
  } else if (strcmp(argv[0], "timestamp") == 0) {
    timestamp();
  } else if (strcmp(argv[0], "db") == 0) {
    db(argv[1], argv[2]);
  } else if (strcmp(argv[0], "infer") == 0) {
    infer(argv[1], argc > 2 ? argv[2] : 0);
  } else if (strcmp(argv[0], "results") == 0) {
    results();
  } else {
    put("e-[Unknown command: ");
    put(argv[0]);
    put("]\r\n");
  }
  put("m-ready\r\n");
}

void mlperf_dut_run(const mlperf_model_t* model, uint8_t* buffer, size_t buffer_size, int8_t* staged) {
  g_model = model;
  g_buf = buffer;
  g_buf_cap = buffer_size;
  g_staged = staged;
  forget_load();
#if defined(TG_MLPERF_ENERGY) && TG_MLPERF_ENERGY
  board_timestamp_pin_init();
  put("m-timestamp-mode-energy\r\n");
#else
  put("m-timestamp-mode-performance\r\n");
#endif
  timestamp();  // as th_timestamp_initialize: in energy mode this leaves the pin high
  put("m-init-done\r\nm-ready\r\n");
  char cmd[CMD_SIZE + 1];
  size_t pos = 0;
  for (;;) {
    int c = board_serial_read();
    if (c < 0) continue;
    if (c == '%') {
      cmd[pos] = '\0';
      dispatch(cmd);
      pos = 0;
    } else if (c != '\r' && c != '\n') {
      cmd[pos] = (char)c;
      pos = pos >= CMD_SIZE ? CMD_SIZE : pos + 1;
    }
  }
}
