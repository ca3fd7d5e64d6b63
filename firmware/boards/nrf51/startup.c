// Startup for the BBC micro:bit's nRF51822 (Cortex-M0): vector table at 0x0, reset handler.
// The micro:bit's DAPLink programs the whole flash, so no bootloader sits in front of it.
#include <stdint.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
extern void __libc_init_array(void);
extern int main(void);
void board_exit(int code) __attribute__((noreturn));

void Reset_Handler(void) __attribute__((noreturn));
static void Default_Handler(void) { board_exit(3); }
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));

// ARMv6-M: 16 system exceptions, then the nRF51's 32 peripheral interrupts (none enabled).
__attribute__((section(".isr_vector"), used))
static void (*const vectors[16 + 32])(void) = {
    (void (*)(void))(&__StackTop),
    Reset_Handler,
    Default_Handler,    // NMI
    HardFault_Handler,
    0, 0, 0, 0, 0, 0, 0,
    Default_Handler,    // SVCall
    0, 0,
    Default_Handler,    // PendSV
    Default_Handler,    // SysTick: the nRF51 has none
    [16 ... 16 + 31] = Default_Handler,
};

void Reset_Handler(void) {
  uint32_t* src = &__etext;
  for (uint32_t* dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;

  __libc_init_array();  // C++ static constructors
  board_exit(main());
}
