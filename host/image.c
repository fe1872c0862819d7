/* image.c: image files to 8-bit RGB (JPEG through libjpeg-turbo, the rest
 * through stb_image: image_jpeg.c, image_stb.c) and the resize/crop of
 * torchvision's PIL eval transforms, bit-exact with Pillow 9.x
 * Image.resize(BILINEAR) on RGB images.
 *
 * Everything here is reentrant: no globals are written (stb keeps its failure
 * reason in a thread-local, libjpeg its state in the decompress object). */
#include "image.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image_codecs.h"
#include "whole_file.h"

/* The coefficient arithmetic must round exactly as Pillow's does: no fused
 * multiply-add. GCC contracts only in GNU modes (we build -std=c11); clang
 * contracts within a statement unless told not to. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Pillow's fixed point for 8-bit images: 8 bits of pixel, 2 spare bits for
 * filters with negative lobes, the rest fraction. */
#define PRECISION_BITS (32 - 8 - 2)

static const char *display_name(const char *name) { return name ? name : "(memory)"; }

/* ---- truncated JPEG check ---------------------------------------------- */

/* Decoders take a JPEG cut short without complaint (missing entropy data
 * reads as zeros, a grey or smeared lower part; libjpeg only warns), where PIL raises "image file
 * is truncated". Rule: walk the marker segments from SOI, skipping each
 * segment by its length (so an EXIF thumbnail's own EOI inside APP1 does not
 * count) and each scan's entropy-coded data (where FF is only followed by 00
 * stuffing or an RSTn marker); the file is complete when the walk reaches an
 * EOI marker (FF D9). Whatever follows the EOI (padding, camera trailers) is
 * ignored. A segment running past the end, or the data ending before EOI, is a
 * truncated file. Stray bytes between segments are skipped as libjpeg does. */
static int jpeg_is_complete(const uint8_t *b, size_t n)
{
    size_t i = 2; /* after SOI */
    while (i < n) {
        if (b[i] != 0xFF) { /* garbage between segments: look for the next marker */
            i++;
            continue;
        }
        while (i < n && b[i] == 0xFF) /* fill bytes */
            i++;
        if (i >= n)
            return 0;
        uint8_t m = b[i++];
        if (m == 0xD9)
            return 1;
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7))
            continue; /* no length field */
        if (n - i < 2)
            return 0;
        size_t len = ((size_t)b[i] << 8) | b[i + 1];
        if (len < 2 || n - i < len)
            return 0;
        i += len;
        if (m == 0xDA) { /* SOS: skip the entropy-coded data up to the next real marker */
            while (i + 1 < n) {
                if (b[i] == 0xFF && b[i + 1] != 0x00 && !(b[i + 1] >= 0xD0 && b[i + 1] <= 0xD7)
                    && b[i + 1] != 0xFF)
                    break;
                i++;
            }
            if (i + 1 >= n)
                return 0;
        }
    }
    return 0;
}

/* ---- decoding ------------------------------------------------------------ */

void image_free(image_rgb *im)
{
    if (!im)
        return;
    free(im->px);
    im->px = NULL;
    im->w = im->h = 0;
}

fn_status image_decode(const uint8_t *buf, size_t len, const char *name, image_rgb *out)
{
    name = display_name(name);
    if (!out)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: image_decode: no output", name);
    out->px = NULL;
    out->w = out->h = 0;
    if (len == 0)
        return fn_fail(FN_ERR_FORMAT, "%s: empty file", name);
    if (!buf)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: image_decode: no data", name);
    /* The format comes from the bytes, as PIL and stb pick it. */
    if (len >= 2 && buf[0] == 0xFF && buf[1] == 0xD8) {
        if (!jpeg_is_complete(buf, len))
            return fn_fail(FN_ERR_FORMAT,
                           "%s: truncated JPEG (no end-of-image marker after the image data)", name);
        return image_decode_jpeg(buf, len, name, out);
    }
    return image_decode_stb(buf, len, name, out);
}

/* Files are read whole; anything bigger is no image we can decode. */
#define IMAGE_MAX_FILE_BYTES (1LL << 30)

fn_status image_load(const char *path, image_rgb *out)
{
    if (!out)
        return fn_fail(FN_ERR_INVALID_ARG, "image_load: no output");
    out->px = NULL;
    out->w = out->h = 0;
    if (!path)
        return fn_fail(FN_ERR_INVALID_ARG, "image_load: no path");
    uint8_t *buf;
    size_t n;
    FN_TRY(whole_file_read(path, IMAGE_MAX_FILE_BYTES, "image files", &buf, &n));
    fn_status s = image_decode(buf, n, path, out);
    free(buf);
    return s;
}

/* ---- Pillow-exact antialiased bilinear resampling ---------------------- */

/* Fixed-point weights of one axis for the outputs [first, first + count).
 * Output j reads inputs start[j] .. start[j] + len[j] - 1 with weights
 * k[j * stride ...]. */
typedef struct axis_filter {
    int count, stride;
    int *start, *len;
    int32_t *k;
} axis_filter;

static void axis_filter_free(axis_filter *a)
{
    free(a->start);
    free(a->len);
    free(a->k);
}

static double triangle(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* The weights follow Pillow's arithmetic step by step (same double operations
 * in the same order, truncating int casts, normalisation by the double sum,
 * then round-half-away to PRECISION_BITS), since a different but equally
 * valid rounding changes output bytes by one. */
static fn_status axis_filter_make(int in_size, int out_size, int first, int count,
                                  axis_filter *a)
{
    memset(a, 0, sizeof *a);
    /* Pillow passes the source box as floats: (float)in_size, exact up to 2^24
     * (stb's largest side). */
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale; /* widen the tent when shrinking */
    double support = 1.0 * filterscale;
    double ss = 1.0 / filterscale;
    double ksize = ceil(support) * 2 + 1; /* the most taps one output can have */
    int stride = ksize < in_size ? (int)ksize : in_size;

    a->count = count;
    a->stride = stride;
    size_t c = count > 0 ? (size_t)count : 1; /* malloc(0) may be NULL */
    a->start = malloc(c * sizeof *a->start);
    a->len = malloc(c * sizeof *a->len);
    a->k = malloc(c * (size_t)stride * sizeof *a->k);
    if (!a->start || !a->len || !a->k) {
        axis_filter_free(a);
        return fn_fail(FN_ERR_NO_MEMORY, "image resize: out of memory for %d x %d filter taps",
                       count, stride);
    }
    for (int j = 0; j < count; j++) {
        int xx = first + j;
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        int n = xmax - xmin;
        if (n > stride) /* cannot happen (n <= ksize, n <= in_size); keeps k in bounds */
            n = stride;
        double ww = 0.0;
        for (int x = 0; x < n; x++)
            ww += triangle((x + xmin - center + 0.5) * ss);
        int32_t *k = a->k + (size_t)j * stride;
        for (int x = 0; x < n; x++) {
            /* Recomputing w gives the same double as storing it; saves a buffer. */
            double w = triangle((x + xmin - center + 0.5) * ss);
            if (ww != 0.0)
                w /= ww;
            k[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
        }
        a->start[j] = xmin;
        a->len[j] = n;
    }
    return FN_OK;
}

static uint8_t clip8(int32_t v)
{
    /* The tent's weights are >= 0, so v > 0 and the shift is a plain floor;
     * the low clamp is kept for symmetry with Pillow's clip table. */
    v >>= PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Writes the window [x0, x0 + cw) x [y0, y0 + ch) of src resized to
 * out_w x out_h into dst (rows dst_stride bytes apart). Each output pixel of
 * Pillow's two-pass resize depends only on its own column's horizontal taps
 * and row's vertical taps, so computing a window gives the same bytes as
 * resizing everything and cropping, without the full-size intermediate (an
 * ImageNet crop of a panorama stays small). As Pillow: horizontal pass first
 * into an 8-bit intermediate, a pass is skipped when its size is unchanged. */
static fn_status resample_window(const image_rgb *src, int out_w, int out_h, int x0, int y0,
                                 int cw, int ch, uint8_t *dst, size_t dst_stride)
{
    int need_h = out_w != src->w, need_v = out_h != src->h;
    axis_filter fh = {0}, fv = {0};
    uint8_t *tmp = NULL;
    fn_status s = FN_OK;
    size_t src_stride = (size_t)src->w * 3;

    /* Source rows the vertical pass reads. */
    int r0 = y0, r1 = y0 + ch;
    if (need_v) {
        if ((s = axis_filter_make(src->h, out_h, y0, ch, &fv)) != FN_OK)
            return s;
        r0 = src->h;
        r1 = 0;
        for (int j = 0; j < ch; j++) {
            if (fv.len[j] == 0)
                continue;
            if (fv.start[j] < r0)
                r0 = fv.start[j];
            if (fv.start[j] + fv.len[j] > r1)
                r1 = fv.start[j] + fv.len[j];
        }
        if (r1 < r0)
            r0 = r1 = 0;
    }

    /* Horizontal pass: the intermediate holds columns [x0, x0 + cw) of rows
     * [r0, r1), or is the source itself when the width does not change. */
    const uint8_t *mid;
    size_t mid_stride;
    if (need_h) {
        if ((s = axis_filter_make(src->w, out_w, x0, cw, &fh)) != FN_OK)
            goto done;
        mid_stride = (size_t)cw * 3;
        tmp = malloc(mid_stride * (size_t)(r1 - r0) + 1);
        if (!tmp) {
            s = fn_fail(FN_ERR_NO_MEMORY, "image resize: out of memory (%d x %d intermediate)", cw,
                        r1 - r0);
            goto done;
        }
        for (int y = r0; y < r1; y++) {
            const uint8_t *row = src->px + (size_t)y * src_stride;
            uint8_t *o = tmp + (size_t)(y - r0) * mid_stride;
            for (int j = 0; j < cw; j++) {
                const int32_t *k = fh.k + (size_t)j * fh.stride;
                const uint8_t *p = row + (size_t)fh.start[j] * 3;
                int32_t a0 = 1 << (PRECISION_BITS - 1), a1 = a0, a2 = a0; /* + 0.5: round */
                for (int x = 0; x < fh.len[j]; x++, p += 3) {
                    a0 += p[0] * k[x];
                    a1 += p[1] * k[x];
                    a2 += p[2] * k[x];
                }
                o[3 * j + 0] = clip8(a0);
                o[3 * j + 1] = clip8(a1);
                o[3 * j + 2] = clip8(a2);
            }
        }
        mid = tmp;
    } else {
        mid = src->px + (size_t)r0 * src_stride + (size_t)x0 * 3;
        mid_stride = src_stride;
    }

    /* Vertical pass (mid's row 0 is source row r0). */
    for (int j = 0; j < ch; j++) {
        uint8_t *o = dst + (size_t)j * dst_stride;
        if (!need_v) {
            memcpy(o, mid + (size_t)j * mid_stride, (size_t)cw * 3);
            continue;
        }
        const int32_t *k = fv.k + (size_t)j * fv.stride;
        const uint8_t *base = mid + (size_t)(fv.start[j] - r0) * mid_stride;
        for (int i = 0; i < cw * 3; i++) {
            int32_t a = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = base + i;
            for (int y = 0; y < fv.len[j]; y++, p += mid_stride)
                a += *p * k[y];
            o[i] = clip8(a);
        }
    }

done:
    free(tmp);
    axis_filter_free(&fh);
    axis_filter_free(&fv);
    return s;
}

static int image_valid(const image_rgb *im)
{
    return im && im->px && im->w > 0 && im->h > 0;
}

/* dst gets a new buffer (free it with image_free); it must not be src. */
fn_status image_resize(const image_rgb *src, int w, int h, image_rgb *dst)
{
    if (!image_valid(src) || !dst)
        return fn_fail(FN_ERR_INVALID_ARG, "image_resize: no source image or no destination");
    if (w <= 0 || h <= 0 || (long long)w * h > IMAGE_MAX_PIXELS)
        return fn_fail(FN_ERR_INVALID_ARG, "image_resize: bad output size %d x %d", w, h);
    size_t bytes = (size_t)w * (size_t)h * 3;
    uint8_t *px = malloc(bytes);
    if (!px)
        return fn_fail(FN_ERR_NO_MEMORY, "image_resize: out of memory for %d x %d", w, h);
    fn_status s = resample_window(src, w, h, 0, 0, w, h, px, (size_t)w * 3);
    if (s != FN_OK) {
        free(px);
        return s;
    }
    dst->px = px;
    dst->w = w;
    dst->h = h;
    return FN_OK;
}

/* torchvision's CenterCrop offset of a crop of `crop` out of `len`: Python's
 * round((len - crop) / 2), halves to even. When the crop is bigger, torchvision
 * pads with zeros ((crop - len) // 2 before) and crops at 0, which is this
 * offset negated. */
static int center_offset(int len, int crop)
{
    if (crop > len)
        return -((crop - len) / 2);
    int d = len - crop, q = d / 2;
    if ((d & 1) && (q & 1)) /* exactly q + 0.5: go to the even neighbour */
        q++;
    return q;
}

fn_status image_preprocess(const image_rgb *src, fn_preset preset, int size, uint8_t *out)
{
    if (!image_valid(src) || !out)
        return fn_fail(FN_ERR_INVALID_ARG, "image_preprocess: no source image or no output");
    if (size <= 0 || size > 65536)
        return fn_fail(FN_ERR_INVALID_ARG, "image_preprocess: bad input size %d", size);
    if (preset == FN_PRESET_AUTO) /* as the models resolve it: CIFAR for 32x32 inputs */
        preset = size == 32 ? FN_PRESET_CIFAR : FN_PRESET_IMAGENET;

    if (preset == FN_PRESET_CIFAR) /* squash, no crop; same size is a copy */
        return resample_window(src, size, size, 0, 0, size, size, out, (size_t)size * 3);
    if (preset != FN_PRESET_IMAGENET)
        return fn_fail(FN_ERR_INVALID_ARG, "image_preprocess: unknown preset %d", (int)preset);

    /* Resize(s) with s = size * 256 / 224 to nearest (never a tie: 8 * size / 7
     * has no .5), the longer side int(s * long / short) as torchvision: Python's
     * float division of exact integers, then truncation. */
    long long s = ((long long)size * 256 + 112) / 224;
    int w = src->w, h = src->h;
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    double nl = (double)(s * longer) / shorter;
    if (nl > (double)INT_MAX)
        return fn_fail(FN_ERR_SHAPE, "image_preprocess: %d x %d is too elongated to resize", w, h);
    int new_long = (int)nl;
    int nw = w <= h ? (int)s : new_long, nh = w <= h ? new_long : (int)s;

    /* CenterCrop(size). With this resize rule the resized image always covers
     * the crop (s > size for size > 1, long >= short), so the zero padding
     * below is torchvision's behaviour kept for completeness, not a case that
     * occurs. Only the cropped window is resampled. */
    int left = center_offset(nw, size), top = center_offset(nh, size);
    int cx0 = left < 0 ? 0 : left, cy0 = top < 0 ? 0 : top;
    int cx1 = left + size > nw ? nw : left + size, cy1 = top + size > nh ? nh : top + size;
    if (cx0 != left || cy0 != top || cx1 != left + size || cy1 != top + size)
        memset(out, 0, (size_t)size * size * 3);
    uint8_t *o = out + ((size_t)(cy0 - top) * size + (size_t)(cx0 - left)) * 3;
    return resample_window(src, nw, nh, cx0, cy0, cx1 - cx0, cy1 - cy0, o, (size_t)size * 3);
}
