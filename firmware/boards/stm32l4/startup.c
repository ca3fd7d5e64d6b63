// Startup for the STM32L4R5ZI (NUCLEO-L4R5ZI, Cortex-M4F): vector table at 0x08000000, reset handler.
// The peripheral vectors are counted from the device header (STM32CubeL4's stm32l4r5xx.h), whose
// last interrupt is DMAMUX1_OVR_IRQn; none is enabled by tinygen's firmware.
#include <stdint.h>

#include "stm32l4xx.h"

#define IRQ_COUNT (DMAMUX1_OVR_IRQn + 1)

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
extern void __libc_init_array(void);
extern int main(void);
void board_exit(int code) __attribute__((noreturn));

void Reset_Handler(void) __attribute__((noreturn));
static void Default_Handler(void) { board_exit(3); }
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

__attribute__((section(".isr_vector"), used))
static void (*const vectors[16 + IRQ_COUNT])(void) = {
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
    [16 ... 16 + IRQ_COUNT - 1] = Default_Handler,
};

void Reset_Handler(void) {
  // Booted from flash, the core reads the table through the alias at 0; VTOR names it plainly.
  SCB->VTOR = (uint32_t)vectors;
  // Full access to CP10/CP11 (the FPU) before any float instruction runs.
  SCB->CPACR |= (0xFu << 20);
  __DSB();
  __ISB();

  uint32_t* src = &__etext;
  for (uint32_t* dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;

  __libc_init_array();  // C++ static constructors
  board_exit(main());
}
