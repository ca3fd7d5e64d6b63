// Startup for the Raspberry Pi Pico's RP2040 (Cortex-M0+). The boot ROM copies the first 256
// bytes of flash (boot2, built from the pico-sdk by port/rp2040.mk) into SRAM, checks their
// CRC32 and runs them; boot2 sets up the QSPI flash for execute-in-place, points VTOR at
// 0x10000100, loads SP from the vector table there and jumps to its reset entry: this table.
#include <stdint.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
extern void __libc_init_array(void);
extern int main(void);
void board_exit(int code) __attribute__((noreturn));

void Reset_Handler(void) __attribute__((noreturn));
static void Default_Handler(void) {
  for (;;) {
    __asm volatile("wfi");
  }
}
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));
// What the SDK puts in the RAM vector table's unclaimed slots (its crt0 defines it).
void __unhandled_user_irq(void) __attribute__((alias("Default_Handler")));

// ARMv6-M: 16 system exceptions, then the RP2040's 26 interrupts (and 6 unused slots, which the
// SDK's RAM copy of this table also has). The SDK's irq_set_exclusive_handler writes handlers
// into that RAM copy (runtime_init_install_ram_vector_table copies from __vectors to
// __vectors_end), so the IRQ entries here only catch an interrupt enabled before that.
__attribute__((section(".vectors"), used))
void (*const __vectors[16 + 32])(void) = {
    (void (*)(void))(&__StackTop),
    Reset_Handler,
    Default_Handler,    // NMI
    HardFault_Handler,
    0, 0, 0, 0, 0, 0, 0,
    Default_Handler,    // SVCall
    0, 0,
    Default_Handler,    // PendSV
    SysTick_Handler,    // board.c extends the 24-bit SysTick count with it
    [16 ... 16 + 31] = Default_Handler,
};

// Core 1 waits in the boot ROM until multicore_launch_core1 wakes it, so only core 0 is here.
void Reset_Handler(void) {
  uint32_t* src = &__etext;
  for (uint32_t* dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;

  // Runs .preinit_array first: the pico-sdk registers its runtime set-up there (peripheral
  // resets, clocks at SYS_CLK_HZ, the RAM vector table, spin locks, mutexes, the alarm pool),
  // as its own crt0 does through runtime_init(); then C++ static constructors.
  __libc_init_array();
  board_exit(main());
}
