/* image_jpeg.c: JPEG files to 8-bit RGB with libjpeg-turbo, the library PIL
 * (and so torchvision) decodes with, for the same bytes as the PyTorch
 * reference pipeline: libjpeg's defaults (ISLOW DCT, fancy upsampling, block
 * smoothing) as Pillow leaves them, grey replicated as convert("RGB") does,
 * and 4-component files read as Pillow's "CMYK;I" (Adobe's inverted CMYK,
 * assumed for every CMYK JPEG) then converted with Pillow 9's cmyk2rgb.
 *
 * libjpeg reports errors through its error_exit hook, whose default ends the
 * process; ours longjmps back here instead, so a corrupt file is an
 * FN_ERR_FORMAT that names it. Data that ends early (libjpeg would pad it with zeros and carry
 * on) is an error too, as in PIL ("image file is truncated"). */
#include "image_codecs.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "error.h"

/* Beyond the output, libjpeg needs whole-image coefficient buffers for
 * progressive files (2 bytes per sample); this bounds its total. */
#define JPEG_MAX_MEMORY (1024L << 20)

typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_failure;

static void on_error(j_common_ptr c)
{
    jpeg_failure *f = (jpeg_failure *)c->err;
    c->err->format_message(c, f->message);
    longjmp(f->jump, 1);
}

/* Warnings are silent, except those that mean the entropy-coded data ran
 * out: libjpeg would fill the rest of the image with grey. */
static void on_message(j_common_ptr c, int level)
{
    if (level >= 0)
        return;
    int code = c->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER) {
        jpeg_failure *f = (jpeg_failure *)c->err;
        c->err->format_message(c, f->message);
        longjmp(f->jump, 2);
    }
    c->err->num_warnings++;
}

static void no_output(j_common_ptr c) { (void)c; }

/* Pillow's MULDIV255: a * b / 255, rounded, in integers. */
static inline uint8_t muldiv255(int a, int b)
{
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

fn_status image_decode_jpeg(const uint8_t *buf, size_t len, const char *name, image_rgb *out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_failure fail;
    /* Written after setjmp and read after a longjmp: volatile. */
    uint8_t *volatile px = NULL;
    uint8_t *volatile row = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&fail.mgr);
    fail.mgr.error_exit = on_error;
    fail.mgr.emit_message = on_message;
    fail.mgr.output_message = no_output;
    fail.message[0] = '\0';
    if (len > ULONG_MAX)
        return fn_fail(FN_ERR_FORMAT, "%s: file too large (%zu bytes)", name, len);
    int jumped = setjmp(fail.jump);
    if (jumped) {
        jpeg_destroy_decompress(&cinfo);
        free(px);
        free(row);
        if (strstr(fail.message, "Insufficient memory") || strstr(fail.message, "Backing store"))
            return fn_fail(FN_ERR_FORMAT, "%s: needs more than %ld MB to decode (libjpeg: %s)", name,
                           JPEG_MAX_MEMORY >> 20, fail.message);
        return fn_fail(FN_ERR_FORMAT, "%s: %s (libjpeg: %s)", name,
                       jumped == 2 ? "truncated JPEG (image data ends early)" : "corrupt JPEG",
                       fail.message);
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = JPEG_MAX_MEMORY;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) {
        jpeg_destroy_decompress(&cinfo);
        return fn_fail(FN_ERR_FORMAT, "%s: JPEG holds tables but no image", name);
    }
    long long w = cinfo.image_width, h = cinfo.image_height;
    if (w <= 0 || h <= 0 || w * h > IMAGE_MAX_PIXELS) {
        jpeg_destroy_decompress(&cinfo);
        return fn_fail(FN_ERR_FORMAT, "%s: image too large (%lld x %lld pixels; the limit is %lld)",
                       name, w, h, (long long)IMAGE_MAX_PIXELS);
    }
    int comps = cinfo.num_components;
    if (comps == 1)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else if (comps == 3)
        cinfo.out_color_space = JCS_RGB;
    else if (comps == 4)
        cinfo.out_color_space = JCS_CMYK;
    else {
        jpeg_destroy_decompress(&cinfo);
        return fn_fail(FN_ERR_FORMAT, "%s: JPEG with %d colour components (PIL reads 1, 3 or 4)",
                       name, comps);
    }
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)w * 3;
    px = malloc(stride * (size_t)h);
    if (comps == 4)
        row = malloc((size_t)w * 4);
    if (!px || (comps == 4 && !row)) {
        free(px);
        free(row);
        jpeg_destroy_decompress(&cinfo);
        return fn_fail(FN_ERR_NO_MEMORY, "%s: out of memory for %lld x %lld pixels", name, w, h);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = px + (size_t)cinfo.output_scanline * stride;
        JSAMPROW r = comps == 4 ? (JSAMPROW)row : (JSAMPROW)dst;
        if (jpeg_read_scanlines(&cinfo, &r, 1) != 1) { /* a memory source never suspends */
            snprintf(fail.message, sizeof fail.message, "no progress at row %u", cinfo.output_scanline);
            longjmp(fail.jump, 1);
        }
        if (comps == 1) { /* grey, replicated from the right so it can be in place */
            for (long long x = w - 1; x >= 0; x--)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = dst[x];
        } else if (comps == 4) { /* "CMYK;I" inverts; cmyk2rgb: nk - c * nk / 255 */
            for (long long x = 0; x < w; x++) {
                const uint8_t *s = row + 4 * x;
                int nk = s[3]; /* 255 - (255 - stored k) */
                for (int c = 0; c < 3; c++)
                    dst[3 * x + c] = (uint8_t)(nk - muldiv255(255 - s[c], nk));
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->px = px;
    out->w = (int)w;
    out->h = (int)h;
    return FN_OK;
}
