// mlperf_dut.h: the MLPerf Tiny / EEMBC EnergyRunner device-under-test protocol, as
// mlcommons/tiny's benchmark/api defines it, so the MLCommons runner (and
// `tinygen monitor --mlperf`) can drive tinygen firmware.
//
// Commands end with '%'. Each is answered with m- lines (or an e-[...] error) and m-ready:
//   name            m-name-dut-[tinygen]
//   profile         m-profile-[...] m-model-[...]
//   timestamp       m-lap-us-<microseconds>
//   db load N       m-[Expecting N bytes]
//   db <hex>        ... m-load-done when N bytes have arrived
//   db print        m-buffer-xx-xx-...
//   infer N W       m-warmup-start-W m-warmup-done m-infer-start-N m-lap-us-T0 m-lap-us-T1
//                   m-infer-done m-results-[r0,r1,...]
//   results         m-results-[...]
#ifndef TINYGEN_MLPERF_DUT_H_
#define TINYGEN_MLPERF_DUT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// What the application provides: copy the loaded bytes into the input tensor, run one
// inference, and give the output as real values.
typedef struct {
  void (*load)(const uint8_t* bytes, size_t n);
  int (*infer)(void);  // 0 on success
  size_t (*results)(float* out, size_t max);
  const char* model_version;  // e.g. "kws01"
} mlperf_model_t;

// Runs the command loop forever, reading bytes with board_serial_read().
void mlperf_dut_run(const mlperf_model_t* model, uint8_t* buffer, size_t buffer_size);

#ifdef __cplusplus
}
#endif

#endif  // TINYGEN_MLPERF_DUT_H_
