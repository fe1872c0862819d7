/* pipeline.h: decode and preprocess a dataset on a pool of host threads, one
 * batch ahead of the consumer, so the backend never waits on a single thread. */
#ifndef FN_PIPELINE_H
#define FN_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "featurenorm.h"

typedef struct pipeline pipeline;

typedef struct pipeline_batch {
    const uint8_t *images;  /* n x size x size x 3 RGB bytes */
    const size_t *index;    /* dataset item of each image */
    int n;                  /* 0: the dataset is exhausted */
} pipeline_batch;

fn_status pipeline_create(const fn_dataset *d, fn_preset preset, int size, int batch, int threads,
                          int strict, int quiet, pipeline **out);
/* The next batch; valid until the following call. Unreadable images are left
 * out (and reported on stderr unless quiet), or with strict end the run. */
fn_status pipeline_next(pipeline *p, pipeline_batch *out);
size_t pipeline_skipped(const pipeline *p);
void pipeline_free(pipeline *p);

#endif
