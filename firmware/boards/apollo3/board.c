// Board port for the SparkFun Edge (Ambiq Apollo3 Blue), on AmbiqSuite's HAL and
// SparkFun's Edge BSP (both from AMBIQ_ROOT): 48 MHz, flash cache on, the COM UART
// (the CH340 USB-serial) at 115200 8N1, and the Cortex-M4 DWT cycle counter.
#include "am_bsp.h"
#include "am_mcu_apollo.h"
#include "tinygen_board.h"

#define CLOCK_HZ 48000000u

void board_init(void) {
  am_hal_clkgen_control(AM_HAL_CLKGEN_CONTROL_SYSCLK_MAX, 0);
  am_hal_cachectrl_config(&am_hal_cachectrl_defaults);
  am_hal_cachectrl_enable();
  am_bsp_low_power_init();
#ifdef TG_UART_BAUD
  // MLPerf Tiny's energy mode runs the UART at its own rate: the BSP's set-up with that rate
  static const am_hal_uart_config_t uart = {
      .ui32BaudRate = TG_UART_BAUD,
      .ui32DataBits = AM_HAL_UART_DATA_BITS_8,
      .ui32Parity = AM_HAL_UART_PARITY_NONE,
      .ui32StopBits = AM_HAL_UART_ONE_STOP_BIT,
      .ui32FlowControl = AM_HAL_UART_FLOW_CTRL_NONE,
      .ui32FifoLevels = (AM_HAL_UART_TX_FIFO_1_2 | AM_HAL_UART_RX_FIFO_1_2),
  };
  am_bsp_uart_printf_enable_custom(&uart);  // pins 48/49, 8N1
#else
  am_bsp_uart_printf_enable();  // the BSP's COM UART set-up: pins 48/49, 115200 8N1
#endif

  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
}

void board_serial_write(const char* data, size_t n) {
  uint32_t sent = 0;
  const am_hal_uart_transfer_t t = {
      .ui32Direction = AM_HAL_UART_WRITE,
      .pui8Data = (uint8_t*)data,
      .ui32NumBytes = (uint32_t)n,
      .ui32TimeoutMs = AM_HAL_UART_WAIT_FOREVER,
      .pui32BytesTransferred = &sent,
  };
  am_bsp_com_uart_transfer(&t);
}

int board_serial_read(void) {
  uint8_t byte;
  uint32_t got = 0;
  const am_hal_uart_transfer_t t = {
      .ui32Direction = AM_HAL_UART_READ,
      .pui8Data = &byte,
      .ui32NumBytes = 1,
      .ui32TimeoutMs = AM_HAL_UART_WAIT_FOREVER,
      .pui32BytesTransferred = &got,
  };
  if (am_bsp_com_uart_transfer(&t) != AM_HAL_STATUS_SUCCESS || got != 1) return -1;
  return byte;
}

uint32_t board_cycles(void) { return DWT->CYCCNT; }

uint32_t board_clock_hz(void) { return CLOCK_HZ; }

uint64_t board_micros(void) { return (uint64_t)board_cycles() * 1000000u / CLOCK_HZ; }

void board_exit(int code) {
  (void)code;
  for (;;) {
    am_hal_sysctrl_sleep(AM_HAL_SYSCTRL_SLEEP_DEEP);
  }
}
