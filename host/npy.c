/* npy.c: writes .npy files: magic, version 1.0, a header dict padded so the
 * data starts on a 64-byte boundary, then the raw little-endian data. */
#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>


void npy_put_f32(FILE *f, const float *data, size_t rows, size_t cols)
{
    char dict[128];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                       rows, cols);
    size_t header = 10 + (size_t)len + 1, padded = (header + 63) / 64 * 64;
    uint16_t hlen = (uint16_t)(padded - 10);
    unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xFF),
                               (unsigned char)(hlen >> 8)};
    fwrite(magic, 1, sizeof magic, f);
    fputs(dict, f);
    for (size_t i = header; i < padded; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, sizeof(float), rows * cols, f);
}
