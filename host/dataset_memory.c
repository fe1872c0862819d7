/* dataset_memory.c: a dataset of RGB images already in memory (NumPy arrays
 * from python/featurenorm), so select and score run on them through the same
 * pass, preset and Jigsaw as on files. The pixels stay the caller's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "error.h"

fn_status fn_dataset_from_images(const uint8_t *images, size_t n, int height, int width,
                                 const int *labels, fn_dataset **out)
{
    if (out)
        *out = NULL;
    if (!images || !out || n == 0)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_dataset_from_images: %s",
                       n == 0 ? "no images" : "images and out are required");
    if (height < 1 || width < 1 || (long long)height * width > IMAGE_MAX_PIXELS)
        return fn_fail(FN_ERR_SHAPE, "fn_dataset_from_images: %d x %d images (1 to %lld pixels each)",
                       height, width, (long long)IMAGE_MAX_PIXELS);
    fn_dataset *d = fn_calloc(1, sizeof *d);
    if (!d || !(d->items = fn_calloc(n, sizeof *d->items)) || !(d->source = fn_strdup("array"))) {
        fn_dataset_free(d);
        return FN_ERR_NO_MEMORY;
    }
    for (d->n = 0; d->n < n; d->n++) {
        char name[32];
        snprintf(name, sizeof name, "array#%zu", d->n);
        d->items[d->n] = (ds_item){.name = fn_strdup(name), .label = labels ? labels[d->n] : -1,
                                   .file = -1};
        if (!d->items[d->n].name) {
            fn_dataset_free(d);
            return FN_ERR_NO_MEMORY;
        }
    }
    d->cap = n, d->pixels = images, d->height = height, d->width = width;
    *out = d;
    return FN_OK;
}

fn_status dataset_read_memory(const fn_dataset *d, size_t i, image_rgb *out)
{
    size_t bytes = (size_t)d->height * d->width * 3;
    if (!(out->px = fn_malloc(bytes)))
        return FN_ERR_NO_MEMORY;
    memcpy(out->px, d->pixels + i * bytes, bytes);
    out->w = d->width, out->h = d->height;
    return FN_OK;
}
