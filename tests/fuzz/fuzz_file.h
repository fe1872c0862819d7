/* fuzz_file.h: for targets whose parser takes a path, not bytes: each input
 * is written to one private file (a fresh temp folder per process) that the
 * parser then opens. */
#ifndef FN_FUZZ_FILE_H
#define FN_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char fuzz_dir[256];

/* The path of `name` in this process's folder, holding data[0..size). */
static const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[512];
    if (!fuzz_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fn_fuzz_XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fuzz_dir))
            abort(); /* the harness itself cannot run */
    }
    snprintf(path, sizeof path, "%s/%s", fuzz_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    return path;
}

#endif
