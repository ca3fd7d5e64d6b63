// mlperf_dut.c: see mlperf_dut.h. Formatting is done here, without printf, so that the
// image needs neither newlib's formatted I/O nor float printing.
#include "mlperf_dut.h"

#include <string.h>

#include "tinygen_board.h"

#define CMD_SIZE 80u

static const mlperf_model_t* g_model;
static uint8_t* g_buf;
static size_t g_buf_cap, g_buf_size, g_buf_pos;

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

static void put_u32(uint32_t v) { put_u64(v); }

// %0.3f without printf: sign, integer part, three decimals, rounded half away from zero.
static void put_f3(float f) {
  if (f < 0) {
    put("-");
    f = -f;
  }
  uint32_t milli = (uint32_t)(f * 1000.0f + 0.5f);
  put_u32(milli / 1000u);
  char d[4] = {'.', (char)('0' + milli / 100u % 10u), (char)('0' + milli / 10u % 10u), (char)('0' + milli % 10u)};
  board_serial_write(d, 4);
}

static void lap(void) {
  put("m-lap-us-");
  put_u64(board_micros());
  put("\r\n");
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_int(const char* s, int* out) {
  int v = 0;
  if (!s || !*s) return 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return 0;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return 1;
}

static void results(void) {
  float r[64];
  size_t n = g_model->results(r, 64);
  put("m-results-[");
  for (size_t i = 0; i < n; i++) {
    if (i) put(",");
    put_f3(r[i]);
  }
  put("]\r\n");
}

static void db(char* arg, char* rest) {
  if (!arg) {
    put("e-[Command 'db' requires a subcommand]\r\n");
  } else if (strcmp(arg, "load") == 0) {
    int n;
    if (!parse_int(rest, &n) || n <= 0) {
      put("e-[Command 'db load' must be >0 bytes]\r\n");
    } else if ((size_t)n > g_buf_cap) {
      put("e-[Supplied buffer size exceeds maximum of ");
      put_u32((uint32_t)g_buf_cap);
      put("]\r\n");
    } else {
      g_buf_size = (size_t)n;
      g_buf_pos = 0;
      put("m-[Expecting ");
      put_u32((uint32_t)n);
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
  } else {
    size_t len = strlen(arg);
    if (len & 1u) {
      put("e-[Insufficent number of hex digits]\r\n");
      return;
    }
    for (size_t i = 0; i < len && g_buf_pos < g_buf_size; i += 2) {
      int hi = hexval(arg[i]), lo = hexval(arg[i + 1]);
      if (hi < 0 || lo < 0) {
        put("e-[Invalid hex digit]\r\n");
        return;
      }
      g_buf[g_buf_pos++] = (uint8_t)(hi << 4 | lo);
    }
    if (g_buf_pos == g_buf_size) put("m-load-done\r\n");
  }
}

static void infer(char* n_arg, char* w_arg) {
  int n = 1, w = 10;
  if (n_arg && (!parse_int(n_arg, &n) || n <= 0)) {
    put("e-[Inference iterations must be >0]\r\n");
    return;
  }
  if (w_arg && !parse_int(w_arg, &w)) {
    put("e-[Inference warmup must be >=0]\r\n");
    return;
  }
  g_model->load(g_buf, g_buf_pos);
  put("m-warmup-start-");
  put_u32((uint32_t)w);
  put("\r\n");
  for (int i = 0; i < w; i++) g_model->infer();
  put("m-warmup-done\r\nm-infer-start-");
  put_u32((uint32_t)n);
  put("\r\n");
  lap();
  int failed = 0;
  for (int i = 0; i < n; i++) failed |= g_model->infer();
  lap();
  put(failed ? "e-[Inference failed]\r\n" : "m-infer-done\r\n");
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
    lap();
  } else if (strcmp(argv[0], "db") == 0) {
    db(argv[1], argv[2]);
  } else if (strcmp(argv[0], "infer") == 0) {
    infer(argv[1], argv[2]);
  } else if (strcmp(argv[0], "results") == 0) {
    results();
  } else {
    put("e-[Unknown command: ");
    put(argv[0]);
    put("]\r\n");
  }
  put("m-ready\r\n");
}

void mlperf_dut_run(const mlperf_model_t* model, uint8_t* buffer, size_t buffer_size) {
  g_model = model;
  g_buf = buffer;
  g_buf_cap = buffer_size;
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
