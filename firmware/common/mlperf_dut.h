// mlperf_dut.h: the MLPerf Tiny / EEMBC EnergyRunner device-under-test protocol, as
// mlcommons/tiny's benchmark/api defines it and its reference submissions implement it, so
// the benchmark's own runner (benchmark/runner) and `tinygen monitor --mlperf` can drive
// tinygen firmware.
//
// Commands end with '%'. Each is answered with m- lines (or an e-[...] error) and m-ready:
//   name            m-name-dut-[tinygen]
//   profile         m-profile-[ULPMark for tinyML Firmware V0.0.1] m-model-[<benchmark id>]
//   timestamp       m-lap-us-<microseconds> (energy mode: a low pulse on the timestamp pin)
//   db load N       m-[Expecting N bytes]; N above the payload: e-[Supplied buffer size ...]
//   db <hex>        ... m-load-done once, when N bytes have arrived
//   db print        m-buffer-xx-xx-...
//   infer N W       m-warmup-start-W m-warmup-done m-infer-start-N m-lap-us-T0 m-lap-us-T1
//                   m-infer-done m-results-[r0,r1,...]
//   results         m-results-[...]
// A rejected `db load` or a bad hex chunk leaves no input loaded: later chunks and `infer`
// are refused until the next good `db load`.
#ifndef TINYGEN_MLPERF_DUT_H_
#define TINYGEN_MLPERF_DUT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// What the runner's bytes are and how they become the int8 input (reference th_load_tensor).
typedef enum {
  MLPERF_INPUT_INT8,     // the input tensor's bytes (kws01)
  MLPERF_INPUT_UINT8,    // pixels; int8 = byte - 128 (ic01, vww01)
  MLPERF_INPUT_FLOAT32,  // little-endian floats, quantized here with the input's scale and zero point (ad01)
} mlperf_input_kind_t;

// What m-results-[...] holds (reference th_results).
typedef enum {
  MLPERF_OUTPUT_VECTOR,  // every output value, dequantized
  MLPERF_OUTPUT_MSE,     // mean of (dequantized output - float input)^2: ad01's anomaly score
} mlperf_output_kind_t;

typedef struct {
  const char* model_version;  // the benchmark id: kws01, vww01, ic01, ad01, sww01
  int (*infer)(void);         // one inference on `input`; 0 on success
  int8_t* input;              // the model's int8 input tensor, rewritten before every inference
  size_t input_elements;
  float input_scale;
  int32_t input_zero_point;
  mlperf_input_kind_t input_kind;
  const void* output;         // int8, or float when output_is_float
  size_t output_elements;
  float output_scale;
  int32_t output_zero_point;
  int output_is_float;
  mlperf_output_kind_t output_kind;
} mlperf_model_t;

// The bytes `db` loads: the benchmark's payload (input_elements, times 4 for float32).
#define MLPERF_PAYLOAD_BYTES(elements, kind) ((elements) * ((kind) == MLPERF_INPUT_FLOAT32 ? 4u : 1u))

// Runs the command loop forever, reading bytes with board_serial_read(). `buffer` holds the
// loaded payload (buffer_size bytes); `staged` (input_elements bytes) holds the quantized
// input of a float32 benchmark and may be NULL for the others.
void mlperf_dut_run(const mlperf_model_t* model, uint8_t* buffer, size_t buffer_size, int8_t* staged);

#if defined(TG_MLPERF_ENERGY) && TG_MLPERF_ENERGY
// Energy mode (EE_CFG_ENERGY_MODE): the port drives the timestamp pin named in the board
// profile (TG_TIMESTAMP_PIN). Idle high; a timestamp is a falling edge the energy monitor
// records, as in the reference submissions.
void board_timestamp_pin_init(void);
void board_timestamp_pin_write(int level);
#endif

#ifdef __cplusplus
}
#endif

#endif  // TINYGEN_MLPERF_DUT_H_
