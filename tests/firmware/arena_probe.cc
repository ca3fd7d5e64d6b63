// arena_probe.cc: boots on mps2-an386, allocates the model's tensors with TFLite Micro
// and prints what TFLM itself reports, for test_tflm_build.py to compare with tinygen.
#include <cstdarg>
#include <cstdio>

#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tinygen_board.h"

#ifndef ARENA_BYTES
#define ARENA_BYTES (1024 * 1024)
#endif

alignas(16) static uint8_t arena[ARENA_BYTES];

extern "C" void DebugLog(const char* format, va_list args) { vprintf(format, args); }

int main() {
  board_init();
  static tflite::MicroMutableOpResolver<16> resolver;
  resolver.AddConv2D();
  resolver.AddDepthwiseConv2D();
  resolver.AddFullyConnected();
  resolver.AddAveragePool2D();
  resolver.AddMaxPool2D();
  resolver.AddAdd();
  resolver.AddMul();
  resolver.AddReshape();
  resolver.AddSoftmax();
  resolver.AddLogistic();
  resolver.AddQuantize();
  resolver.AddDequantize();
  resolver.AddPad();
  resolver.AddMean();
  resolver.AddConcatenation();
  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, arena, sizeof(arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    printf("AllocateTensors failed\n");
    return 1;
  }
  printf("arena_used_bytes %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  return 0;
}
