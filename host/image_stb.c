/* image_stb.c: PNG, BMP, GIF, TGA and 8-bit PGM/PPM to 8-bit RGB with
 * stb_image, compiled here with only those formats.
 *
 * Debian's libstb (2.27) has every format in, several of which crash on
 * crafted files (PIC, 16-bit PNM, its JPEG decoder), and stb picks the format
 * from the bytes, not the name: a PIC file called photo.png reaches the PIC
 * decoder. Building our own copy with STBI_ONLY_* leaves those decoders out,
 * and the checks below refuse, from the header, what still reaches a known
 * bad path (16-bit PNM) or would decode to far more pixels than the file
 * can hold (a 22-byte RLE TGA claiming a gigabyte). */
#include "image_codecs.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define STB_IMAGE_STATIC /* our copy's symbols stay in this file */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_TGA
#define STBI_ONLY_PNM
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS (1 << 16)
#if defined(__GNUC__)
/* stb's own code is not ours to tidy; unused-function stays off for the whole
 * file, as GCC reports it at the end of the translation unit. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* The most pixels one byte of each format can expand to; a header claiming
 * more is a decompression bomb or a lie (stb fills missing data silently).
 * PNG: deflate tops out near 1032:1, a 1-bit image packs 8 pixels a byte.
 * GIF: a 12-bit LZW code stands for at most 4096 pixels. BMP: 1 bit a pixel
 * (stb reads no RLE BMP). PNM: 1 byte a pixel. TGA, stb's last resort for
 * bytes it cannot place (any text file may pass its test): RLE packets of
 * 128 pixels in 2 bytes. */
static long long max_pixels_per_byte(const uint8_t *b, size_t n)
{
    if (n >= 4 && b[0] == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G')
        return 8256;
    if (n >= 4 && memcmp(b, "GIF8", 4) == 0)
        return 2731;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M')
        return 8;
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6'))
        return 1;
    return 64;
}

/* PNM: stb 2.27 overflows its buffer converting 16-bit samples, and its int
 * overflows on a header number of 10+ digits (found by fuzz_image), so read
 * the header ourselves first. Returns the maxval; 0 if the header does not
 * parse (stb then says why); -1 for a number of more than 7 digits. */
static long pnm_maxval(const uint8_t *b, size_t n)
{
    size_t i = 2;
    long v[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        for (;;) { /* whitespace and # comments */
            while (i < n && isspace(b[i]))
                i++;
            if (i < n && b[i] == '#') {
                while (i < n && b[i] != '\n' && b[i] != '\r')
                    i++;
                continue;
            }
            break;
        }
        if (i >= n || !isdigit(b[i]))
            return 0;
        for (int digits = 0; i < n && isdigit(b[i]); digits++) {
            if (digits == 7) /* 10 million pixels a side: far past the pixel cap */
                return -1;
            v[k] = v[k] * 10 + (b[i++] - '0');
        }
    }
    return v[2];
}

/* PNG: stb reserves each IDAT chunk's declared length before reading it, so
 * a 200-byte file declaring a 1.7 GB chunk cost that much memory (found by
 * fuzz_image). Every chunk must fit in the file; 0 if one does not, with its
 * type and length. */
static int png_chunks_fit(const uint8_t *b, size_t n, char type[5], uint32_t *claimed)
{
    size_t i = 8;
    while (n - i >= 8) {
        uint32_t len = (uint32_t)b[i] << 24 | (uint32_t)b[i + 1] << 16 | (uint32_t)b[i + 2] << 8 | b[i + 3];
        memcpy(type, b + i + 4, 4);
        type[4] = '\0';
        if ((uint64_t)len + 12 > n - i) {
            *claimed = len;
            return 0;
        }
        if (memcmp(type, "IEND", 4) == 0)
            return 1;
        i += (size_t)len + 12;
    }
    return 1; /* no IEND: stb reports the missing data itself */
}

static fn_status stb_error(const char *name, const char *what)
{
    const char *why = stbi_failure_reason();
    if (!why)
        why = "unknown reason";
    if (strcmp(why, "outofmem") == 0)
        return fn_fail(FN_ERR_NO_MEMORY, "%s: out of memory while decoding", name);
    return fn_fail(FN_ERR_FORMAT, "%s: %s (stb_image: %s)", name, what, why);
}

fn_status image_decode_stb(const uint8_t *buf, size_t len, const char *name, image_rgb *out)
{
    if (len > INT_MAX) /* stb takes an int length */
        return fn_fail(FN_ERR_FORMAT, "%s: file too large (%zu bytes)", name, len);
    if (len >= 2 && buf[0] == 'P' && (buf[1] == '5' || buf[1] == '6')) {
        long maxval = pnm_maxval(buf, len);
        if (maxval < 0)
            return fn_fail(FN_ERR_FORMAT, "%s: PGM/PPM header holds a number of more than 7 digits",
                           name);
        if (maxval > 255)
            return fn_fail(FN_ERR_FORMAT, "%s: 16-bit PGM/PPM (maxval %ld) is not supported", name,
                           maxval);
    }

    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    char type[5];
    uint32_t claimed = 0;
    if (len >= 8 && memcmp(buf, png_magic, 8) == 0 && !png_chunks_fit(buf, len, type, &claimed)) {
        for (int k = 0; k < 4; k++)
            if (!isprint((unsigned char)type[k]))
                type[k] = '?';
        return fn_fail(FN_ERR_FORMAT, "%s: truncated or corrupt PNG (chunk '%s' claims %u bytes, "
                       "more than the %zu-byte file holds)", name, type, claimed, len);
    }

    /* Header first, so a forged size is refused before any allocation. */
    int w, h, comp;
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &comp))
        return stb_error(name, "not a readable image");
    long long pixels = (long long)w * h;
    if (w <= 0 || h <= 0 || pixels > IMAGE_MAX_PIXELS)
        return fn_fail(FN_ERR_FORMAT, "%s: image too large (%d x %d pixels; the limit is %lld)", name,
                       w, h, (long long)IMAGE_MAX_PIXELS);
    if (pixels > (long long)len * max_pixels_per_byte(buf, len))
        return fn_fail(FN_ERR_FORMAT,
                       "%s: header claims %d x %d pixels, more than %zu bytes can encode "
                       "(a corrupt or malicious file)",
                       name, w, h, len);

    /* 3 channels: grey is replicated, alpha dropped (as PIL's convert("RGB")),
     * 16-bit PNG samples cut to their high byte. */
    uint8_t *px = stbi_load_from_memory(buf, (int)len, &w, &h, &comp, 3);
    if (!px)
        return stb_error(name, "cannot decode image");
    out->px = px; /* stb allocates with malloc (STBI_MALLOC's default) */
    out->w = w;
    out->h = h;
    return FN_OK;
}
