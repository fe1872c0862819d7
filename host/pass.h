/* pass.h: one pass over a dataset (or a shard of it), shared by score and
 * select: decode threads fill the backend's slots, batches are submitted and
 * collected in order with several in flight, and each collected batch goes to
 * a callback. Select asks for per_image = 2: every batch holds its n images
 * followed by their n Jigsaw copies. */
#ifndef FN_PASS_H
#define FN_PASS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "checkpoint.h"
#include "featurenorm.h"

/* The options of a pass, checked and resolved once (fn_run_options). */
typedef struct pass_settings {
    int batch;        /* dataset images per forward */
    fn_preset preset; /* resolved from AUTO */
    int threads;      /* decode threads */
} pass_settings;

fn_status pass_settings_resolve(fn_model *m, const fn_dataset *d, const fn_run_options *o,
                                int per_image, pass_settings *ps);

typedef struct pass_rows {
    int n;                 /* dataset images in this batch */
    const size_t *index;   /* their items, increasing */
    backend_result r;      /* r.n = per_image * n rows */
} pass_rows;

typedef struct pass_spec {
    int per_image;         /* 1: score; 2: select (Jigsaw copies follow) */
    uint64_t seed;         /* Jigsaw */
    float react_clip;      /* > 0: react_logits too */
    size_t first, count;   /* items [first, first + count) of the dataset */
    const char *label;     /* progress and checkpoints: "score", "select" */
    fn_status (*on_batch)(void *ctx, const pass_rows *rows);
    /* The state so far as bytes, and back (checkpoints; both may be NULL). */
    void (*save)(void *ctx, bytes *b);
    fn_status (*load)(void *ctx, bytes *b);
    void *ctx;
} pass_spec;

/* Where a pass's time went, for --profile. */
typedef struct pass_stats {
    size_t images, skipped;
    double wall;        /* the whole pass */
    double decode;      /* decode threads, summed over threads */
    double wait_decode; /* the loop waiting for a decoded batch */
    double submit;      /* in submit: the whole forward on the CPU; enqueueing on a GPU */
    double wait_device; /* in collect: waiting for the device's results */
    double host;        /* Jigsaw copies, scores, accumulation, writing (the callback) */
} pass_stats;

fn_status pass_run(fn_model *m, const fn_dataset *d, const fn_run_options *o,
                   const pass_settings *ps, const pass_spec *spec, pass_stats *stats);
/* One line on stderr: where the time went, and which stage limits the run. */
void pass_print_profile(const char *label, const pass_stats *s, int decode_threads);

#endif
