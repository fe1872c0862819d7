/* image_codecs.h: the two decoders behind image_decode(), for image.c only.
 *
 * Both take a complete file in memory, check the header's size against
 * IMAGE_MAX_PIXELS before allocating anything, and return 8-bit RGB in a
 * malloc'd buffer (so image_free() is plain free()). Neither ever exits or
 * aborts; failures name the file. */
#ifndef FN_IMAGE_CODECS_H
#define FN_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* JPEG through libjpeg-turbo, decoded as PIL does it (ISLOW DCT, fancy
 * upsampling; grey replicated, CMYK as PIL's "CMYK;I" + convert("RGB")). */
fn_status image_decode_jpeg(const uint8_t *buf, size_t len, const char *name, image_rgb *out);
/* PNG, BMP, GIF (first frame), TGA, PGM/PPM (8-bit) through stb_image. */
fn_status image_decode_stb(const uint8_t *buf, size_t len, const char *name, image_rgb *out);

#endif
