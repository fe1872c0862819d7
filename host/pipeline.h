/* pipeline.h: decode and preprocess a range of a dataset on a pool of host
 * threads, straight into the backend's slot buffers (pinned memory on CUDA),
 * so no batch is copied between decoding and the device. */
#ifndef FN_PIPELINE_H
#define FN_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "featurenorm.h"

typedef struct pipeline pipeline;

typedef struct pipeline_config {
    const fn_dataset *d;
    size_t first, count;       /* dataset items [first, first + count) */
    fn_preset preset;
    int size, batch, threads, strict, quiet;
    uint8_t *buffers[4];       /* one per slot, batch x size x size x 3 bytes each */
    int slots;
} pipeline_config;

typedef struct pipeline_batch {
    int slot;               /* whose buffer holds the images */
    const uint8_t *images;  /* n x size x size x 3 RGB bytes */
    const size_t *index;    /* dataset item of each image */
    int n;                  /* 0: the range is exhausted */
    size_t end;             /* the first dataset item after this batch's range */
} pipeline_batch;

fn_status pipeline_create(const pipeline_config *c, pipeline **out);
/* The next batch in dataset order, once decoded. Unreadable images are left
 * out (and reported on stderr unless quiet), or with strict end the run. The
 * slot stays the caller's until pipeline_release. */
fn_status pipeline_next(pipeline *p, pipeline_batch *out);
/* The caller is done with the slot's buffer: decode the next batch into it. */
void pipeline_release(pipeline *p, int slot);
size_t pipeline_skipped(const pipeline *p);
/* Seconds the decode threads spent decoding, summed over threads. */
double pipeline_decode_seconds(const pipeline *p);
void pipeline_free(pipeline *p);

#endif
