/* scores.c: the score table. Logit scores are computed in double from the row
 * maximum, so exp never overflows and MSP/Energy are stable for any logits. */
#include "scores.h"

#include <math.h>
#include <string.h>

#include "featurenorm.h"

static void fn_selected(const score_input *in, float *out)
{
    for (int i = 0; i < in->n; i++)
        out[i] = in->norms[(size_t)i * in->num_blocks + in->block];
}

/* A row's maximum m and sum of exp(l - m), so logsumexp = m + log(sum). */
static double row_max_sum(const float *l, int K, double *sum)
{
    double m = l[0], s = 0;
    for (int k = 1; k < K; k++)
        if (l[k] > m)
            m = l[k];
    for (int k = 0; k < K; k++)
        s += exp((double)l[k] - m);
    *sum = s;
    return m;
}

static void msp(const score_input *in, float *out)
{
    for (int i = 0; i < in->n; i++) {
        double sum;
        row_max_sum(in->logits + (size_t)i * in->num_classes, in->num_classes, &sum);
        out[i] = (float)(1.0 / sum);
    }
}

static void maxlogit(const score_input *in, float *out)
{
    for (int i = 0; i < in->n; i++) {
        double sum;
        out[i] = (float)row_max_sum(in->logits + (size_t)i * in->num_classes, in->num_classes, &sum);
    }
}

static void energy_of(const float *logits, int n, int K, float *out)
{
    for (int i = 0; i < n; i++) {
        double sum, m = row_max_sum(logits + (size_t)i * K, K, &sum);
        out[i] = (float)(m + log(sum));
    }
}

static void energy(const score_input *in, float *out)
{
    energy_of(in->logits, in->n, in->num_classes, out);
}

static void react_energy(const score_input *in, float *out)
{
    energy_of(in->react_logits, in->n, in->num_classes, out);
}

/* Higher = more in-distribution for every score (Energy is -E(x; T=1) = logsumexp). */
static const score_def table[] = {
    {"fn_selected", "FeatureNorm (selected block)", SCORE_NEEDS_BLOCK, fn_selected},
    {"msp", "MSP", 0, msp},
    {"maxlogit", "MaxLogit", 0, maxlogit},
    {"energy", "Energy", 0, energy},
    {"react_energy", "ReAct+Energy", SCORE_NEEDS_REACT, react_energy},
};

int scores_count(void) { return (int)(sizeof table / sizeof table[0]); }

const score_def *scores_at(int i) { return i >= 0 && i < scores_count() ? &table[i] : NULL; }

int scores_available(int i, const score_input *in)
{
    unsigned needs = table[i].needs;
    return !((needs & SCORE_NEEDS_BLOCK) && !(in->block >= 0 && in->block < in->num_blocks)) &&
           !((needs & SCORE_NEEDS_REACT) && !in->react_logits);
}

void scores_pred(const score_input *in, int *pred)
{
    for (int i = 0; i < in->n; i++) {
        const float *l = in->logits + (size_t)i * in->num_classes;
        int arg = 0;
        for (int k = 1; k < in->num_classes; k++)
            if (l[k] > l[arg])
                arg = k;
        pred[i] = arg;
    }
}

/* ---- the public view of the table ------------------------------------------ */

int fn_score_count(void) { return scores_count(); }
const char *fn_score_name(int i) { return scores_at(i) ? table[i].name : NULL; }
const char *fn_score_title(int i) { return scores_at(i) ? table[i].title : NULL; }

const char *fn_score_needs(int i)
{
    if (!scores_at(i))
        return NULL;
    return table[i].needs & SCORE_NEEDS_BLOCK ? "block" : table[i].needs & SCORE_NEEDS_REACT ? "react" : "logits";
}

int fn_score_find(const char *name)
{
    for (int i = 0; name && i < scores_count(); i++)
        if (strcmp(table[i].name, name) == 0)
            return i;
    return -1;
}
