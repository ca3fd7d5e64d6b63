// insn_loop.c: a loop of a known number of instructions, timed with the board port's counter,
// so a test can see how many instructions QEMU runs per tick under -icount, without tinygen's
// own arithmetic. Two lengths, so the cost of reading the counter cancels out.
#include <stdint.h>

#include "harness.h"
#include "tinygen_board.h"

#define SHORT_LOOP 100000u
#define LONG_LOOP 1100000u

// 2n instructions: SUBS and BNE, n times each (low register: Thumb-1 cores have SUBS on r0-r7 only)
static void spin(uint32_t n) {
  __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+l"(n) : : "cc");
}

static uint32_t timed(uint32_t n) {
  const uint32_t start = board_cycles();
  spin(n);
  return board_cycles() - start;
}

int main(void) {
  board_init();
  // mps2's SysTick reads 0 until its first reload, one tick after board_init, and a reading
  // then is 2^24 - 1 ticks off: measure from the first change of the counter on
  const uint32_t first = board_cycles();
  while (board_cycles() == first) {
  }
  const uint32_t short_ticks = timed(SHORT_LOOP);
  const uint32_t long_ticks = timed(LONG_LOOP);
  tg_begin("loop");
  tg_u32("instructions", 2u * (LONG_LOOP - SHORT_LOOP));
  tg_u32("ticks", long_ticks - short_ticks);
  tg_end();
  tg_begin("done");
  tg_u32("vectors", 0);
  tg_u32("mismatches", 0);
  tg_end();
  return 0;
}
