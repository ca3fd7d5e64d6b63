// USB descriptors for tinygen's nRF52840 port: one CDC-ACM interface, the console.
//
// The IDs are not Arduino's (2341:805A belongs to Arduino's core): 1209:0001 is pid.codes'
// test PID, so the host's CDC-ACM driver binds to the board as to any CDC device. A product
// shipping this firmware needs a VID/PID of its own.
#include <string.h>

#include "nrf.h"
#include "tusb.h"

#define USB_VID 0x1209
#define USB_PID 0x0001

static const tusb_desc_device_t desc_device = {
    .bLength = sizeof(tusb_desc_device_t),
    .bDescriptorType = TUSB_DESC_DEVICE,
    .bcdUSB = 0x0200,
    // CDC uses an interface association descriptor: class MISC, common subclass, IAD protocol
    .bDeviceClass = TUSB_CLASS_MISC,
    .bDeviceSubClass = MISC_SUBCLASS_COMMON,
    .bDeviceProtocol = MISC_PROTOCOL_IAD,
    .bMaxPacketSize0 = CFG_TUD_ENDPOINT0_SIZE,
    .idVendor = USB_VID,
    .idProduct = USB_PID,
    .bcdDevice = 0x0100,
    .iManufacturer = 1,
    .iProduct = 2,
    .iSerialNumber = 3,
    .bNumConfigurations = 1,
};

const uint8_t* tud_descriptor_device_cb(void) { return (const uint8_t*)&desc_device; }

enum { ITF_NUM_CDC = 0, ITF_NUM_CDC_DATA, ITF_NUM_TOTAL };
#define EPNUM_CDC_NOTIF 0x81
#define EPNUM_CDC_OUT 0x02
#define EPNUM_CDC_IN 0x82
#define CONFIG_TOTAL_LEN (TUD_CONFIG_DESC_LEN + TUD_CDC_DESC_LEN)

static const uint8_t desc_configuration[] = {
    TUD_CONFIG_DESCRIPTOR(1, ITF_NUM_TOTAL, 0, CONFIG_TOTAL_LEN, 0x00, 100),
    TUD_CDC_DESCRIPTOR(ITF_NUM_CDC, 4, EPNUM_CDC_NOTIF, 8, EPNUM_CDC_OUT, EPNUM_CDC_IN, CFG_TUD_CDC_EP_BUFSIZE),
};

const uint8_t* tud_descriptor_configuration_cb(uint8_t index) {
  (void)index;
  return desc_configuration;
}

static const char* const strings[] = {"tinygen", "tinygen Nano 33 BLE Sense", NULL, "tinygen console"};
static uint16_t desc_str[33];

const uint16_t* tud_descriptor_string_cb(uint8_t index, uint16_t langid) {
  (void)langid;
  size_t n;
  if (index == 0) {
    desc_str[1] = 0x0409;  // English (US)
    n = 1;
  } else if (index == 3) {
    // The serial number: the chip's 64-bit DEVICEID in hex, so two boards are two ports.
    static const char hex[] = "0123456789ABCDEF";
    n = 16;
    for (size_t i = 0; i < n; i++) desc_str[1 + i] = hex[(NRF_FICR->DEVICEID[i / 8] >> (28 - 4 * (i % 8))) & 0xFu];
  } else if (index <= sizeof(strings) / sizeof(strings[0])) {
    const char* s = strings[index - 1];
    n = strlen(s) < 32 ? strlen(s) : 32;
    for (size_t i = 0; i < n; i++) desc_str[1 + i] = (uint8_t)s[i];
  } else {
    return NULL;
  }
  desc_str[0] = (uint16_t)((TUSB_DESC_STRING << 8) | (2 * n + 2));
  return desc_str;
}
