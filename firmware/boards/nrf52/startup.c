// Startup for the Arduino Nano 33 BLE Sense's nRF52840 (Cortex-M4F): the vector table at
// 0x10000, where the Arduino bootloader jumps, and the reset handler. SystemInit is the MDK's
// (NRFX_ROOT/bsp/stable/mdk/system_nrf52840.c): the chip's errata workarounds and the FPU.
#include <stdint.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
extern void __libc_init_array(void);
extern void SystemInit(void);
extern int main(void);
void board_exit(int code) __attribute__((noreturn));

void Reset_Handler(void) __attribute__((noreturn));
static void Default_Handler(void) {
  for (;;) {
  }
}
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void POWER_CLOCK_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void USBD_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));

// ARMv7-M: 16 system exceptions, then the nRF52840's 48 peripheral interrupts (nrf52840.h's
// IRQn_Type): the board port enables POWER_CLOCK (0, USB power events) and USBD (39) only.
__attribute__((section(".isr_vector"), used))
static void (*const vectors[16 + 48])(void) = {
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
    Default_Handler,    // SysTick
    [16 ... 16 + 47] = Default_Handler,
    [16 + 0] = POWER_CLOCK_IRQHandler,
    [16 + 39] = USBD_IRQHandler,
};

void Reset_Handler(void) {
  // The bootloader leaves VTOR at its own table: point it at ours before any interrupt is enabled.
  *(volatile uint32_t*)0xE000ED08u = (uint32_t)vectors;
  // Full access to CP10/CP11 (the FPU) before any float instruction runs (SystemInit does it too,
  // but C code may use the FPU before it is called).
  *(volatile uint32_t*)0xE000ED88u |= (0xFu << 20);
  __asm volatile("dsb\n isb");

  uint32_t* src = &__etext;
  for (uint32_t* dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;

  SystemInit();         // after .data: it sets SystemCoreClock
  // A bootloader may jump here with interrupts masked; the USB stack needs them.
  __asm volatile("cpsie i");
  __libc_init_array();  // C++ static constructors
  board_exit(main());
}
