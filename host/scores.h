/* scores.h: every OOD score, computed on the host from what a backend returns
 * (FeatureNorm of every block, logits, ReAct logits). The table in scores.c is
 * the one list: score, the CSV/.npy writers, eval and scripts/reproduce
 * (through `featurenorm info --scores`) all read it, so a new score is one row
 * and one function. */
#ifndef FN_SCORES_H
#define FN_SCORES_H

#include <stddef.h>

/* What a score needs beyond the logits. */
enum { SCORE_NEEDS_BLOCK = 1, SCORE_NEEDS_REACT = 2 };

typedef struct score_input {
    int n, num_blocks, num_classes;
    const float *norms;        /* n x num_blocks */
    const float *logits;       /* n x num_classes */
    const float *react_logits; /* n x num_classes, or NULL */
    int block;                 /* the selected block, or -1 */
} score_input;

typedef struct score_def {
    const char *name;  /* CSV column */
    const char *title; /* row label in the paper's tables */
    unsigned needs;
    void (*fn)(const score_input *in, float *out); /* out: n values */
} score_def;

int scores_count(void);
const score_def *scores_at(int i);
/* 1 when in has what score i needs. */
int scores_available(int i, const score_input *in);
/* argmax of each row of logits (the first on ties). */
void scores_pred(const score_input *in, int *pred);

#endif
