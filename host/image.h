/* image.h: decode image files to RGB bytes (stb_image) and bring them to the
 * network's input size as torchvision's PIL transforms do. */
#ifndef FN_IMAGE_H
#define FN_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "featurenorm.h"

/* The one cap on image size, checked from the header before decoding: a
 * forged header cannot ask for gigabytes (64 Mpx is 192 MB of RGB; Pillow's
 * own bomb limit is 179 Mpx, far beyond any photo the models take). */
#ifndef FN_FUZZING
#define IMAGE_MAX_PIXELS (64LL << 20)
#else /* fuzz builds: 4 Mpx, so a fuzzer's legal but huge images do not time out */
#define IMAGE_MAX_PIXELS (4LL << 20)
#endif

typedef struct image_rgb {
    uint8_t *px;  /* h x w x 3, row-major */
    int w, h;
} image_rgb;

/* PNG, JPEG (baseline, progressive, grayscale, CMYK), BMP, GIF (first frame),
 * TGA, 8-bit PGM/PPM; always converted to 8-bit RGB, JPEG bit-exact with PIL. `name` is used in messages only.
 * Errors: FN_ERR_IO (unreadable file), FN_ERR_FORMAT (not an image, corrupt,
 * truncated, zero bytes, over IMAGE_MAX_PIXELS). */
fn_status image_load(const char *path, image_rgb *out);
fn_status image_decode(const uint8_t *buf, size_t len, const char *name, image_rgb *out);
void image_free(image_rgb *im);

/* Antialiased bilinear resize exactly as PIL's Image.resize(BILINEAR) for RGB
 * (triangle filter widened by the reduction factor, fixed-point coefficients,
 * horizontal pass first). Same size: a copy. */
fn_status image_resize(const image_rgb *src, int w, int h, image_rgb *dst);

/* The preset's transform into out (size x size x 3):
 *   FN_PRESET_CIFAR:    resize to size x size.
 *   FN_PRESET_IMAGENET: resize the shorter side to size*256/224 (the longer to
 *                       floor(that * long / short)), center crop size x size at
 *                       offset round((L - size) / 2), halves to even. */
fn_status image_preprocess(const image_rgb *src, fn_preset preset, int size, uint8_t *out);

#endif
