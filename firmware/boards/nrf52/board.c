// Board port for the Arduino Nano 33 BLE Sense (nRF52840, Cortex-M4F at 64 MHz), on nrfx's HAL
// (NRFX_ROOT) and TinyUSB's device stack (TINYUSB_ROOT): the console is USB CDC on the board's
// USB connector, as the Arduino core gives it, and time is the Cortex-M4 DWT cycle counter.
//
// TinyUSB is polled: tud_task() runs while the port waits for the host and inside every serial
// write and read, never during an inference, so USB costs no cycles in the figures. A host
// request that arrives mid-inference waits for the next line (well within USB's 5 s timeouts).
#include "hal/nrf_clock.h"
#include "hal/nrf_power.h"
#include "nrfx.h"
#include "tinygen_board.h"
#include "tusb.h"

#define CLOCK_HZ 64000000u

// MLPerf Tiny's energy mode (the build defines TG_UART_BAUD): the board is powered through the
// energy monitor and talks to the benchmark's IO manager over a UART, never USB. The console is
// then UART0 on the header's D1/TX (P1.03) and D0/RX (P1.10), the pins Arduino's core and mbed
// use for Serial1, and USB stays off.
#ifdef TG_UART_BAUD
#define UART_CONSOLE 1
#define UART_TX_PIN (32u + 3u)   // P1.03; PSEL takes the pin with the port in bit 5
#define UART_RX_PIN (32u + 10u)  // P1.10
#if TG_UART_BAUD == 9600
#define UART_BAUD UART_BAUDRATE_BAUDRATE_Baud9600
#elif TG_UART_BAUD == 115200
#define UART_BAUD UART_BAUDRATE_BAUDRATE_Baud115200
#else
#error "the nrf52 port's UART console takes 9600 or 115200 baud"
#endif
#else
#define UART_CONSOLE 0
#endif

// TinyUSB's nrf5x driver takes the USB power events from the application (dcd_nrf5x.c); the
// values are nrfx_power's NRFX_POWER_USB_EVT_*.
extern void tusb_hal_nrf_power_event(uint32_t event);
enum { USB_EVT_DETECTED = 0, USB_EVT_REMOVED = 1, USB_EVT_READY = 2 };

// Arduino's bootloader stays in its SAM-BA loader after a reset that leaves this in GPREGRET
// (ArduinoCore-mbed's variant.cpp for the Nano 33 BLE; RIOT's arduino-nano-33-ble does the same).
#define ARDUINO_BOOTLOADER_MAGIC 0xB0u

void USBD_IRQHandler(void) { tud_int_handler(0); }

void POWER_CLOCK_IRQHandler(void) {
  static const struct {
    nrf_power_event_t event;
    uint32_t usb;
  } events[] = {{NRF_POWER_EVENT_USBDETECTED, USB_EVT_DETECTED},
                {NRF_POWER_EVENT_USBPWRRDY, USB_EVT_READY},
                {NRF_POWER_EVENT_USBREMOVED, USB_EVT_REMOVED}};
  for (unsigned i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
    if (nrf_power_event_check(NRF_POWER, events[i].event)) {
      nrf_power_event_clear(NRF_POWER, events[i].event);
      tusb_hal_nrf_power_event(events[i].usb);
    }
  }
}

// The milliseconds TinyUSB's no-RTOS build asks for (its timeouts), from the cycle counter,
// extended past its 67 s wrap on each call.
uint32_t tusb_time_millis_api(void) {
  static uint32_t last;
  static uint64_t cycles;
  uint32_t now = DWT->CYCCNT;
  cycles += (uint32_t)(now - last);
  last = now;
  return (uint32_t)(cycles / (CLOCK_HZ / 1000u));
}

void board_init(void) {
  // The 32 MHz crystal: USB needs its accuracy (the CPU runs at 64 MHz from HFCLK either way).
  nrf_clock_event_clear(NRF_CLOCK, NRF_CLOCK_EVENT_HFCLKSTARTED);
  nrf_clock_task_trigger(NRF_CLOCK, NRF_CLOCK_TASK_HFCLKSTART);
  while (!nrf_clock_event_check(NRF_CLOCK, NRF_CLOCK_EVENT_HFCLKSTARTED)) {
  }

  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;

#if UART_CONSOLE
  // The legacy UART (no EasyDMA): a byte at a time, as the console needs. TX idles high.
  NRF_P1->OUTSET = 1u << (UART_TX_PIN - 32u);
  NRF_P1->PIN_CNF[UART_TX_PIN - 32u] = GPIO_PIN_CNF_DIR_Output << GPIO_PIN_CNF_DIR_Pos;
  NRF_UART0->PSEL.TXD = UART_TX_PIN;
  NRF_UART0->PSEL.RXD = UART_RX_PIN;
  NRF_UART0->BAUDRATE = UART_BAUD;
  NRF_UART0->CONFIG = 0;  // 8N1, no flow control
  NRF_UART0->ENABLE = UART_ENABLE_ENABLE_Enabled << UART_ENABLE_ENABLE_Pos;
  NRF_UART0->EVENTS_RXDRDY = 0;
  NRF_UART0->TASKS_STARTTX = 1;
  NRF_UART0->TASKS_STARTRX = 1;
  return;
#endif
  const tusb_rhport_init_t device = {.role = TUSB_ROLE_DEVICE, .speed = TUSB_SPEED_AUTO};
  tusb_init(0, &device);
  NVIC_SetPriority(USBD_IRQn, 2);

  // VBUS events through the POWER peripheral; USB may already be powered, which raises none.
  nrf_power_int_enable(NRF_POWER, NRF_POWER_INT_USBDETECTED_MASK | NRF_POWER_INT_USBREMOVED_MASK |
                                      NRF_POWER_INT_USBPWRRDY_MASK);
  NVIC_SetPriority(POWER_CLOCK_IRQn, 3);
  NVIC_ClearPendingIRQ(POWER_CLOCK_IRQn);
  NVIC_EnableIRQ(POWER_CLOCK_IRQn);
  uint32_t status = nrf_power_usbregstatus_get(NRF_POWER);
  if (status & NRF_POWER_USBREGSTATUS_VBUSDETECT_MASK) tusb_hal_nrf_power_event(USB_EVT_DETECTED);
  if (status & NRF_POWER_USBREGSTATUS_OUTPUTRDY_MASK) tusb_hal_nrf_power_event(USB_EVT_READY);

  // Like Arduino's `while (!Serial)`: wait for a terminal to open the port, or the boot lines
  // would go nowhere.
  while (!tud_cdc_connected()) tud_task();
}

// Arduino's upload touch: the IDE (and `stty 1200`) opens the port at 1200 baud and drops DTR;
// reset into the bootloader, as sketches built with the Arduino core do.
void tud_cdc_line_state_cb(uint8_t itf, bool dtr, bool rts) {
  (void)itf;
  (void)rts;
  cdc_line_coding_t coding;
  tud_cdc_get_line_coding(&coding);
  if (!dtr && coding.bit_rate == 1200) {
    NRF_POWER->GPREGRET = ARDUINO_BOOTLOADER_MAGIC;
    NVIC_SystemReset();
  }
}

void board_serial_write(const char* data, size_t n) {
#if UART_CONSOLE
  for (size_t i = 0; i < n; i++) {
    NRF_UART0->EVENTS_TXDRDY = 0;
    NRF_UART0->TXD = (uint8_t)data[i];
    while (!NRF_UART0->EVENTS_TXDRDY) {
    }
  }
  return;
#endif
  while (n > 0) {
    tud_task();
    if (!tud_cdc_connected()) continue;  // the terminal went away: wait for it, as at boot
    uint32_t k = tud_cdc_write(data, (uint32_t)n);
    data += k;
    n -= k;
    tud_cdc_write_flush();
  }
  tud_task();
}

int board_serial_read(void) {
#if UART_CONSOLE
  while (!NRF_UART0->EVENTS_RXDRDY) {
  }
  NRF_UART0->EVENTS_RXDRDY = 0;
  return (int)(NRF_UART0->RXD & 0xFFu);
#endif
  for (;;) {
    tud_task();
    if (tud_cdc_available()) return tud_cdc_read_char();
  }
}

uint32_t board_cycles(void) { return DWT->CYCCNT; }

uint32_t board_clock_hz(void) { return CLOCK_HZ; }

uint64_t board_micros(void) { return (uint64_t)board_cycles() * 1000000u / CLOCK_HZ; }

// Flush what is queued, then idle until reset; USB keeps being served, so the port stays open
// and the 1200-baud touch still reaches the bootloader.
void board_exit(int code) {
  (void)code;
  for (;;) {
    if (UART_CONSOLE) continue;  // every byte went out in board_serial_write
    tud_task();
    tud_cdc_write_flush();
  }
}
