// Startup for the Ambiq Apollo3: vector table (16 core + 32 peripheral entries, as in
// AmbiqSuite's startup_gcc.c) and the reset handler.
#include <stdint.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
extern void __libc_init_array(void);
extern int main(void);
void board_exit(int code) __attribute__((noreturn));

void Reset_Handler(void) __attribute__((noreturn));
static void Default_Handler(void) {
  for (;;) {
  }
}
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

__attribute__((section(".isr_vector"), used))
static void (*const vectors[16 + 32])(void) = {
    (void (*)(void))(&__StackTop),
    Reset_Handler,
    Default_Handler,    // NMI
    HardFault_Handler,
    Default_Handler,    // MemManage
    Default_Handler,    // BusFault
    Default_Handler,    // UsageFault
    0, 0, 0, 0,
    Default_Handler,    // SVCall
    Default_Handler,    // DebugMon
    0,
    Default_Handler,    // PendSV
    SysTick_Handler,
    // Apollo3 peripheral interrupts 0..31: none is enabled by tinygen's firmware.
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler,
};

void Reset_Handler(void) {
  // The bootloader may have left VTOR at its own table: point it at ours.
  *(volatile uint32_t*)0xE000ED08u = (uint32_t)vectors;
  // Full access to CP10/CP11 (the FPU) before any float instruction runs.
  *(volatile uint32_t*)0xE000ED88u |= (0xFu << 20);
  __asm volatile("dsb\n isb");

  uint32_t* src = &__etext;
  for (uint32_t* dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;

  __libc_init_array();
  board_exit(main());
}
