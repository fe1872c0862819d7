/* model.h: what an fn_model holds, for the library's own files. */
#ifndef FN_MODEL_H
#define FN_MODEL_H

#include <stdint.h>

#include "backend.h"
#include "net.h"
#include "scores.h"

struct fn_model {
    net net;
    backend *be;        /* NULL when loaded without weights */
    fn_precision precision;
    int max_batch;
    int threads;
    int verbose;
    int device;         /* CUDA device index */
    uint64_t source_hash; /* the weights file's contents: checkpoints name their model */
};

/* The most threads a model or a decode pool may use: 4 per core, at most
 * 256 (more only adds switching; 4096 on 2 cores never finished). */
int model_thread_limit(void);

/* What the score table reads from a collected batch: its rows, the last
 * layer (when the logits are W f + b), the hyperparameters and the
 * detectors' training statistics (or NULL). */
score_input model_score_input(const fn_model *m, const backend_result *r, int block,
                              float react_clip, score_options opt,
                              const struct fit_model *fit);

#endif
