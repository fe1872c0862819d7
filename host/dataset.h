/* dataset.h: what an fn_dataset holds, and reading one item as RGB. */
#ifndef FN_DATASET_H
#define FN_DATASET_H

#include "featurenorm.h"
#include "image.h"

typedef struct ds_item {
    char *name;   /* file path, or "<bin file>#<record>" */
    int label;    /* -1: unknown */
    int file;     /* CIFAR binary file index, -1 for an image file */
    long record;
} ds_item;

typedef struct ds_file {  /* a CIFAR binary file */
    char *path;
    int fd;
    int label_bytes;      /* 1 for CIFAR-10; 2 (coarse, fine) for CIFAR-100 */
} ds_file;

struct fn_dataset {
    char *source;
    ds_item *items;
    size_t n, cap;
    ds_file *files;
    int n_files;
    const uint8_t *pixels; /* fn_dataset_from_images: n x height x width x 3, the caller's */
    int height, width;
};

/* Decodes item i into RGB (safe from many threads at once). */
fn_status dataset_read(const fn_dataset *d, size_t i, image_rgb *out);
/* The same for a dataset of images in memory (dataset_memory.c). */
fn_status dataset_read_memory(const fn_dataset *d, size_t i, image_rgb *out);

#endif
