// tinygen_camera.h: what a board port with a camera provides (firmware/boards/<family>/camera.c).
#ifndef TINYGEN_CAMERA_H_
#define TINYGEN_CAMERA_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Power the sensor up, configure it and calibrate its exposure; 0 on success.
int board_camera_init(uint8_t* frame, size_t frame_bytes);

// One 8-bit monochrome frame of board_camera_width() x board_camera_height() into `frame`; 0 on success.
int board_camera_capture(uint8_t* frame, size_t frame_bytes);

uint16_t board_camera_width(void);
uint16_t board_camera_height(void);

#ifdef __cplusplus
}
#endif

#endif  // TINYGEN_CAMERA_H_
