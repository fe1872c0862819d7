/* hash.c: content hashes: of model files (a checkpoint names its model by
 * one), of data listings and options (the run key), of checkpoint states. */
#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* FNV-1a over 64-bit words, mixed: fast enough for a weights file (GB/s),
 * and any change of content, order or length changes it. */
uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (!h)
        h = 0xcbf29ce484222325ull;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; len; p++, len--)
        h = (h ^ *p) * 0x100000001b3ull;
    return h ^ (h >> 32);
}

fn_status hash_file(const char *path, uint64_t *h)
{
    *h = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fn_fail(FN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    static const size_t chunk = 1 << 20;
    uint8_t *buf = malloc(chunk);
    uint64_t acc = 0;
    size_t got, total = 0;
    while (buf && (got = fread(buf, 1, chunk, f)) > 0)
        acc = hash_bytes(acc, buf, got), total += got;
    int bad = !buf || ferror(f);
    fclose(f);
    free(buf);
    if (bad)
        return fn_fail(FN_ERR_IO, "%s: cannot read", path);
    *h = hash_bytes(acc, &total, sizeof total);
    return FN_OK;
}
