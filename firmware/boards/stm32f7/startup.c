// Startup for the STM32F746NG (STM32F746G-DISCO, Cortex-M7): vector table at 0x08000000, reset
// handler. The peripheral vectors are counted from the device header (STM32CubeF7's
// stm32f746xx.h), whose last interrupt is SPDIF_RX_IRQn; none is enabled by tinygen's firmware.
#include <stdint.h>

#include "stm32f7xx.h"

#define IRQ_COUNT (SPDIF_RX_IRQn + 1)

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
  // Booted from flash (BOOT0 low, BOOT_ADD0 = 0x0080: 0x00200000, flash on ITCM), the core reads
  // the table there; VTOR names the one the image is linked with, on AXIM.
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
