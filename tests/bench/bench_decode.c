/* bench_decode.c: decode + preprocess speed of image files, single thread.
 *
 *   bench_decode cifar|imagenet SIZE FILE_OR_DIR...
 *
 * Files are read into memory first so that only decoding and the PIL-exact
 * resize are timed; prints the best of 3 passes in images per second. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "image.h"

typedef struct blob {
    char *name;
    uint8_t *data;
    size_t len;
} blob;

static blob *blobs;
static size_t n_blobs, cap_blobs;

static int is_jpeg(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static void add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(len > 0 ? (size_t)len : 1);
    if (!data || fread(data, 1, (size_t)len, f) != (size_t)len) {
        free(data);
        fclose(f);
        return;
    }
    fclose(f);
    if (n_blobs == cap_blobs) {
        cap_blobs = cap_blobs ? cap_blobs * 2 : 1024;
        blobs = realloc(blobs, cap_blobs * sizeof *blobs);
    }
    blobs[n_blobs++] = (blob){strdup(path), data, (size_t)len};
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const blob *)a)->name, ((const blob *)b)->name);
}

static void add_tree(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            add_tree(p);
        else if (is_jpeg(p))
            add_file(p);
    }
    if (d)
        closedir(d);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_decode cifar|imagenet SIZE FILE_OR_DIR...\n");
        return 2;
    }
    fn_preset preset = strcmp(argv[1], "cifar") == 0 ? FN_PRESET_CIFAR : FN_PRESET_IMAGENET;
    int size = atoi(argv[2]);
    for (int i = 3; i < argc; i++)
        add_tree(argv[i]);
    qsort(blobs, n_blobs, sizeof *blobs, compare_names);
    if (n_blobs == 0) {
        fprintf(stderr, "bench_decode: no files\n");
        return 1;
    }
    uint8_t *out = malloc((size_t)size * size * 3);
    double best = 1e30;
    size_t failed = 0;
    unsigned checksum = 0;
    for (int pass = 0; pass < 3; pass++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        failed = 0;
        for (size_t i = 0; i < n_blobs; i++) {
            image_rgb im = {0};
            if (image_decode(blobs[i].data, blobs[i].len, blobs[i].name, &im) != FN_OK ||
                image_preprocess(&im, preset, size, out) != FN_OK) {
                failed++;
            } else {
                checksum += out[i % ((size_t)size * size * 3)];
            }
            image_free(&im);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (s < best)
            best = s;
    }
    printf("%zu files (%zu failed): best of 3 %.3f s, %.0f images/s (checksum %u)\n", n_blobs,
           failed, best, (double)n_blobs / best, checksum);
    return 0;
}
