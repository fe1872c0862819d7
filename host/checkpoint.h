/* checkpoint.h: the progress of a dataset pass, saved so that a killed run
 * can continue where it stopped and still give the uninterrupted result.
 *
 * A checkpoint holds what the run is (hashes of the model file, the data
 * listing and the options that change results), the next dataset item to
 * read, the skipped count, and the pass's own state as bytes (score: the rows
 * so far; select: the sums and the ReAct reservoir). */
#ifndef FN_CHECKPOINT_H
#define FN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "featurenorm.h"

/* A growable byte buffer: the pass states are written and read through it. */
typedef struct bytes {
    uint8_t *p;
    size_t len, cap, at; /* at: the read position */
    int bad;             /* out of memory, or a read past the end */
} bytes;

void bytes_put(bytes *b, const void *v, size_t len);
void bytes_get(bytes *b, void *v, size_t len);
/* One description of a state for both directions: put when !load, else get. */
static inline void bytes_io(bytes *b, void *v, size_t len, int load)
{
    if (load)
        bytes_get(b, v, len);
    else
        bytes_put(b, v, len);
}
void bytes_free(bytes *b);

/* What a checkpoint belongs to. */
typedef struct ckpt_key {
    uint64_t model, data, options;
} ckpt_key;

/* 1 when a checkpoint file is at path. */
int ckpt_exists(const char *path);
fn_status ckpt_save(const char *path, const char *kind, const ckpt_key *k, size_t next,
                    size_t skipped, const bytes *state);
/* Refuses a checkpoint of another kind or run, saying what differs. */
fn_status ckpt_load(const char *path, const char *kind, const ckpt_key *k, size_t *next,
                    size_t *skipped, bytes *state);

#endif
