// harness_demo.c: tinygen's real board port and line writer, without TFLM: a fixed
// workload timed with board_cycles(), reported as TG1 lines, so `tinygen monitor` can be
// tested end to end against firmware in QEMU wherever arm-none-eabi-gcc and QEMU exist.
#include <stdint.h>

#include "harness.h"
#include "tinygen_board.h"

static volatile uint32_t sink;

int main(void) {
  board_init();
  tg_begin("boot");
  tg_str("board", "mps2-an386");
  tg_str("model", "harness-demo");
  tg_u32("arena_used_bytes", 0);
  tg_u32("clock_hz", board_clock_hz());
  tg_str("counter", "systick");
  tg_end();
  for (uint32_t seq = 0; seq < 20; seq++) {
    uint32_t start = board_cycles();
    for (uint32_t i = 0; i < 20000u * (1u + seq % 3u); i++) sink += i;  // three sizes of work
    uint32_t cycles = board_cycles() - start;
    tg_begin("inf");
    tg_u32("seq", seq);
    tg_u32("cycles", cycles);
    tg_u32("us", (uint32_t)((uint64_t)cycles * 1000000u / board_clock_hz()));
    tg_u32("top", seq % 3u);
    tg_i32("score_milli", 1000);
    tg_end();
  }
  tg_begin("done");
  tg_u32("vectors", 20);
  tg_u32("mismatches", 0);
  tg_end();
  return 0;
}
