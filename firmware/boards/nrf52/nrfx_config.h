// nrfx's configuration for tinygen's nRF52840 port: nrfx's own per-chip defaults (every driver
// off). The port compiles no nrfx driver; dcd_nrf5x.c and board.c use nrfx's HAL and the MDK.
#ifndef NRFX_CONFIG_H__
#define NRFX_CONFIG_H__

#define NRFX_CONFIG_API_VER_MAJOR 4
#define NRFX_CONFIG_API_VER_MINOR 0
#define NRFX_CONFIG_API_VER_MICRO 0

// TinyUSB's dcd_nrf5x.c includes nrfx_clock.h for the CLOCK HAL, and that header refuses to
// compile with the clock driver off; the driver's source is not compiled all the same.
#define NRFX_CLOCK_ENABLED 1

#include <nrfx_templates_config.h>

#endif  // NRFX_CONFIG_H__
