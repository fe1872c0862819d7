/* scores.h: every OOD score, computed on the host from what a backend returns
 * (FeatureNorm of every block, logits, penultimate features, ReAct logits).
 * The table in scores.c is the one list: score, the CSV/.npy writers, eval and
 * scripts/reproduce (through `featurenorm info --scores`) all read it, so a new
 * score is one row and one function. */
#ifndef FN_SCORES_H
#define FN_SCORES_H

#include <stddef.h>

#include "featurenorm.h"

/* What a score needs beyond the logits. */
enum {
    SCORE_NEEDS_BLOCK = 1,    /* the selected block's FeatureNorm */
    SCORE_NEEDS_REACT = 2,    /* logits of the ReAct-clipped features */
    SCORE_NEEDS_FEATURES = 4, /* penultimate features and the last layer's bias */
    SCORE_NEEDS_FIT = 8,      /* statistics of the ID training features (fit.h) */
};

struct fit_model;

/* The detectors' hyperparameters (fn_run_options / fn_outputs gen_*). */
typedef struct score_options {
    float gen_gamma;
    int gen_m;
} score_options;

typedef struct score_input {
    int n, num_blocks, num_classes;
    const float *norms;        /* n x num_blocks */
    const float *logits;       /* n x num_classes */
    const float *react_logits; /* n x num_classes, or NULL */
    int block;                 /* the selected block, or -1 */
    int feature_dim;
    const float *features;     /* n x feature_dim, or NULL */
    const float *bias;         /* num_classes: the last linear layer's, or NULL when its
                                  output is not plain W f + b */
    float react_clip;          /* what react_logits were clipped at */
    const float *weight;       /* num_classes x feature_dim, with bias */
    const struct fit_model *fit; /* or NULL */
    score_options opt;
    /* "With the selected norm": the logits of f' = FN_selected * f / ||f||,
     * filled by scores_derive (NULL until then). */
    const float *logits_fn, *react_logits_fn;
} score_input;

/* Which logits a logit score reads. */
typedef enum score_logits { LOGITS_PLAIN, LOGITS_REACT, LOGITS_FN, LOGITS_REACT_FN } score_logits;

typedef struct score_def {
    const char *name;  /* CSV column */
    const char *title; /* row label in the paper's tables */
    unsigned needs;
    /* A logit score: row(logits of one image) on the logits named by `logits`... */
    score_logits logits;
    double (*row)(const float *l, int K, const score_options *o);
    /* ...or any other score: out gets n values. */
    void (*fn)(const score_input *in, float *out);
} score_def;

int scores_count(void);
const score_def *scores_at(int i);
/* 1 when in has what score i needs. */
int scores_available(int i, const score_input *in);
/* Score i of in's n rows into out; scores_derive first when it needs the
 * selected norm's logits. */
void scores_compute(int i, const score_input *in, float *out);
/* Floats of scratch scores_derive needs for in's rows (0: none of the
 * "selected norm" scores is available). */
size_t scores_scratch(const score_input *in);
/* Fills in->logits_fn (and react_logits_fn) in scratch. */
void scores_derive(score_input *in, float *scratch);
/* The options with 0 (a zeroed struct) read as the defaults. */
score_options scores_resolve_options(score_options o);
/* The hyperparameters in range (0: the default), or an error naming the one that is not. */
fn_status scores_check_options(score_options o);
/* argmax of each row of logits (the first on ties). */
void scores_pred(const score_input *in, int *pred);

#endif
