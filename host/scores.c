/* scores.c: the score table. Logit scores are computed in double from the row
 * maximum, so exp never overflows and MSP/Energy are stable for any logits.
 *
 * "With the selected norm" (the authors' answer in their repository's issue
 * #2): keep the direction of the penultimate features f, give them the
 * selected block's FeatureNorm as magnitude, f' = FN * f / ||f||, and score the
 * logits W f' + b as usual. As the last layer is linear, W f' + b =
 * s (W f + b - b) + b with s = FN / ||f||: the rescaled logits come from the
 * logits and the bias alone, at O(classes) per image on either backend, with
 * no second matrix product (a GEMV per image would cost D x K). ReAct's row
 * takes the clipped features' direction: s = FN / ||min(f, c)||. */
#include "scores.h"

#include <math.h>
#include <string.h>

#include "error.h"
#include "fit.h"

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

static double msp_row(const float *l, int K, const score_options *o)
{
    (void)o;
    double sum;
    row_max_sum(l, K, &sum);
    return 1.0 / sum;
}

static double maxlogit_row(const float *l, int K, const score_options *o)
{
    (void)o;
    double sum;
    return row_max_sum(l, K, &sum);
}

/* -E(x; T = 1) = logsumexp. */
static double energy_row(const float *l, int K, const score_options *o)
{
    (void)o;
    double sum, m = row_max_sum(l, K, &sum);
    return m + log(sum);
}

/* -H(p) = sum p log p, with log p = l - logsumexp. */
static double entropy_row(const float *l, int K, const score_options *o)
{
    (void)o;
    double sum, m = row_max_sum(l, K, &sum), lse = m + log(sum), v = 0;
    for (int k = 0; k < K; k++) {
        double lp = l[k] - lse;
        v += exp(lp) * lp;
    }
    return v;
}

/* Sum of exp(l - m) over the classes whose logit is not `top`. */
static double sum_except(const float *l, int K, double m, double top)
{
    double s = 0;
    for (int k = 0; k < K; k++)
        if (l[k] != top)
            s += exp((double)l[k] - m);
    return s;
}

/* GEN (Liu et al., CVPR 2023): -sum over the M largest p of p^g (1 - p)^g.
 * The M largest are found value by value from the top (ties taken together),
 * O(M K) with no buffer; M is small (10 by default). 1 - p is summed from the
 * other classes: 1 - 1/sum would lose every digit when p is within 1e-12 of 1. */
static double gen_row(const float *l, int K, const score_options *o)
{
    const int M = o->gen_m < K ? o->gen_m : K;
    const double g = o->gen_gamma;
    double sum, m = row_max_sum(l, K, &sum), v = 0, prev = INFINITY;
    for (int taken = 0; taken < M;) {
        double top = -INFINITY;
        int count = 0;
        for (int k = 0; k < K; k++)
            if (l[k] < prev && l[k] >= top)
                count = l[k] > top ? 1 : count + 1, top = l[k];
        if (count == 0)
            break; /* only -inf logits remain */
        int take = count < M - taken ? count : M - taken;
        double e = exp(top - m), rest = sum_except(l, K, m, top) + (count - 1) * e;
        v += take * pow(e / sum, g) * pow(rest / sum, g);
        taken += take, prev = top;
    }
    return -v;
}

/* s = FN / ||f||: f' has the selected block's norm (0 when f = 0, so f' = 0). */
static double fn_scale(const score_input *in, int i, float clip)
{
    const float *f = in->features + (size_t)i * in->feature_dim;
    double ss = 0;
    for (int j = 0; j < in->feature_dim; j++) {
        double v = clip > 0 && f[j] > clip ? clip : f[j];
        ss += v * v;
    }
    return ss > 0 ? in->norms[(size_t)i * in->num_blocks + in->block] / sqrt(ss) : 0;
}

/* GradNorm (Huang et al., NeurIPS 2021) in closed form: the gradient of
 * KL(uniform || softmax(W f + b)) with respect to W is (p - 1/K) f^T, so its
 * L1 norm is sum_k |p_k - 1/K| * sum_j |f_j|. */
static double gradnorm_row(const float *l, const float *f, int K, int D, double scale)
{
    double sum, m = row_max_sum(l, K, &sum), gl = 0, fl = 0;
    for (int k = 0; k < K; k++)
        gl += fabs(exp(l[k] - m) / sum - 1.0 / K);
    for (int j = 0; j < D; j++)
        fl += fabs(f[j]);
    return gl * fl * scale;
}

static void gradnorm(const score_input *in, float *out)
{
    for (int i = 0; i < in->n; i++)
        out[i] = (float)gradnorm_row(in->logits + (size_t)i * in->num_classes,
                                     in->features + (size_t)i * in->feature_dim, in->num_classes,
                                     in->feature_dim, 1.0);
}

/* GradNorm of f': the logits of f', and ||f'||_1 = s ||f||_1. */
static void gradnorm_fn(const score_input *in, float *out)
{
    for (int i = 0; i < in->n; i++)
        out[i] = (float)gradnorm_row(in->logits_fn + (size_t)i * in->num_classes,
                                     in->features + (size_t)i * in->feature_dim, in->num_classes,
                                     in->feature_dim, fn_scale(in, i, 0));
}

/* Mahalanobis (Lee et al., NeurIPS 2018) without input preprocessing, as
 * OpenOOD's MDS: max over classes of -(f - mu_k)^T P (f - mu_k) / 2, P the
 * inverse of the shared class-centred covariance, expanded as
 * f^T P f - 2 f^T (P mu_k) + mu_k^T P mu_k: D^2 + K D per image. */
static void mahalanobis(const score_input *in, float *out)
{
    const struct fit_model *m = in->fit;
    const int D = m->D, K = m->K;
    for (int i = 0; i < in->n; i++) {
        const float *f = in->features + (size_t)i * D;
        double fpf = 0, best = -INFINITY;
        for (int a = 0; a < D; a++) {
            const double *p = m->precision + (size_t)a * D;
            double v = 0;
            for (int b = 0; b < D; b++)
                v += p[b] * f[b];
            fpf += v * f[a];
        }
        for (int k = 0; k < K; k++) {
            const double *pm = m->pm + (size_t)k * D;
            double dot = 0;
            for (int a = 0; a < D; a++)
                dot += pm[a] * f[a];
            double v = -0.5 * (fpf - 2 * dot + m->mpm[k]);
            if (v > best)
                best = v;
        }
        out[i] = (float)best;
    }
}

/* fDBD (Liu & Qin, ICML 2024), as the authors' code: the sum over classes k
 * of |l_c - l_k| / ||w_c - w_k|| (c the prediction: the distance to each
 * decision boundary), over ||f - mean of the training features||. */
static void fdbd(const score_input *in, float *out)
{
    const struct fit_model *m = in->fit;
    const int D = m->D, K = m->K;
    for (int i = 0; i < in->n; i++) {
        const float *l = in->logits + (size_t)i * K, *f = in->features + (size_t)i * D;
        int c = 0;
        for (int k = 1; k < K; k++)
            if (l[k] > l[c])
                c = k;
        double sum = 0, dist = 0;
        for (int k = 0; k < K; k++)
            if (k != c && m->wdist[(size_t)c * K + k] > 0)
                sum += fabs((double)l[c] - l[k]) / m->wdist[(size_t)c * K + k];
        for (int a = 0; a < D; a++)
            dist += (f[a] - m->mean[a]) * (f[a] - m->mean[a]);
        out[i] = (float)(sum / sqrt(dist));
    }
}

#define WITH_NORM (SCORE_NEEDS_BLOCK | SCORE_NEEDS_FEATURES)
#define WITH_FIT (SCORE_NEEDS_FEATURES | SCORE_NEEDS_FIT)

/* Higher = more in-distribution for every score. Each logit score has a
 * "with the selected norm" twin, named <name>_fn, right after its own rows. */
static const score_def table[] = {
    {.name = "fn_selected", .title = "FeatureNorm (selected block)", .needs = SCORE_NEEDS_BLOCK,
     .fn = fn_selected},
    {.name = "msp", .title = "MSP", .row = msp_row},
    {.name = "maxlogit", .title = "MaxLogit", .row = maxlogit_row},
    {.name = "energy", .title = "Energy", .row = energy_row},
    {.name = "react_energy", .title = "ReAct+Energy", .needs = SCORE_NEEDS_REACT,
     .logits = LOGITS_REACT, .row = energy_row},
    {.name = "entropy", .title = "Entropy", .row = entropy_row},
    {.name = "gen", .title = "GEN", .row = gen_row},
    {.name = "gradnorm", .title = "GradNorm", .needs = SCORE_NEEDS_FEATURES, .fn = gradnorm},
    {.name = "mahalanobis", .title = "Mahalanobis", .needs = WITH_FIT, .fn = mahalanobis},
    {.name = "fdbd", .title = "fDBD", .needs = WITH_FIT, .fn = fdbd},
    {.name = "msp_fn", .title = "MSP with the selected norm", .needs = WITH_NORM,
     .logits = LOGITS_FN, .row = msp_row},
    {.name = "maxlogit_fn", .title = "MaxLogit with the selected norm", .needs = WITH_NORM,
     .logits = LOGITS_FN, .row = maxlogit_row},
    {.name = "energy_fn", .title = "Energy with the selected norm", .needs = WITH_NORM,
     .logits = LOGITS_FN, .row = energy_row},
    {.name = "react_energy_fn", .title = "ReAct+Energy with the selected norm",
     .needs = WITH_NORM | SCORE_NEEDS_REACT, .logits = LOGITS_REACT_FN, .row = energy_row},
    {.name = "entropy_fn", .title = "Entropy with the selected norm", .needs = WITH_NORM,
     .logits = LOGITS_FN, .row = entropy_row},
    {.name = "gen_fn", .title = "GEN with the selected norm", .needs = WITH_NORM,
     .logits = LOGITS_FN, .row = gen_row},
    {.name = "gradnorm_fn", .title = "GradNorm with the selected norm", .needs = WITH_NORM,
     .fn = gradnorm_fn},
};

int scores_count(void) { return (int)(sizeof table / sizeof table[0]); }

const score_def *scores_at(int i) { return i >= 0 && i < scores_count() ? &table[i] : NULL; }

int scores_available(int i, const score_input *in)
{
    unsigned needs = table[i].needs;
    return !((needs & SCORE_NEEDS_BLOCK) && !(in->block >= 0 && in->block < in->num_blocks)) &&
           !((needs & SCORE_NEEDS_REACT) && !in->react_logits) &&
           !((needs & SCORE_NEEDS_FEATURES) && !(in->features && in->bias && in->weight)) &&
           !((needs & SCORE_NEEDS_FIT) && !in->fit);
}

void scores_compute(int i, const score_input *in, float *out)
{
    const score_def *d = &table[i];
    if (d->fn) {
        d->fn(in, out);
        return;
    }
    const float *by[] = {[LOGITS_PLAIN] = in->logits, [LOGITS_REACT] = in->react_logits,
                         [LOGITS_FN] = in->logits_fn, [LOGITS_REACT_FN] = in->react_logits_fn};
    const float *l = by[d->logits];
    for (int r = 0; r < in->n; r++)
        out[r] = (float)d->row(l + (size_t)r * in->num_classes, in->num_classes, &in->opt);
}

size_t scores_scratch(const score_input *in)
{
    score_input probe = *in;
    probe.react_logits = NULL; /* the plain rows alone */
    for (int i = 0; i < scores_count(); i++)
        if ((table[i].needs & WITH_NORM) == WITH_NORM && scores_available(i, &probe))
            return (size_t)2 * in->n * in->num_classes;
    return 0;
}

/* s (l - b) + b: the logits of s f. */
static void rescale(const float *l, const float *bias, double s, int K, float *out)
{
    for (int k = 0; k < K; k++)
        out[k] = (float)(s * ((double)l[k] - bias[k]) + bias[k]);
}

void scores_derive(score_input *in, float *scratch)
{
    const int K = in->num_classes;
    float *plain = scratch, *react = scratch + (size_t)in->n * K;
    for (int i = 0; i < in->n; i++) {
        const size_t at = (size_t)i * K;
        rescale(in->logits + at, in->bias, fn_scale(in, i, 0), K, plain + at);
        if (in->react_logits)
            rescale(in->react_logits + at, in->bias, fn_scale(in, i, in->react_clip), K, react + at);
    }
    in->logits_fn = plain;
    in->react_logits_fn = in->react_logits ? react : NULL;
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

/* 0 (a zeroed struct) reads as the papers' defaults. */
score_options scores_resolve_options(score_options o)
{
    return (score_options){.gen_gamma = o.gen_gamma != 0 ? o.gen_gamma : 0.1f,
                           .gen_m = o.gen_m != 0 ? o.gen_m : 10};
}

fn_status scores_check_options(score_options o)
{
    if (!(o.gen_gamma >= 0 && o.gen_gamma <= 1000))
        return fn_fail(FN_ERR_INVALID_ARG, "GEN's gamma must be in (0, 1000]; it is %g", o.gen_gamma);
    if (o.gen_m < 0)
        return fn_fail(FN_ERR_INVALID_ARG, "GEN's M must be at least 1; it is %d", o.gen_m);
    return FN_OK;
}

int fn_score_count(void) { return scores_count(); }
const char *fn_score_name(int i) { return scores_at(i) ? table[i].name : NULL; }
const char *fn_score_title(int i) { return scores_at(i) ? table[i].title : NULL; }

const char *fn_score_needs(int i)
{
    static const char *const needs[16] = {
        "logits",   "block",          "react",          "block+react",
        "features", "block+features", "react+features", "block+react+features",
        "fit",      "block+fit",      "react+fit",      "block+react+fit",
        "features+fit", "block+features+fit", "react+features+fit", "block+react+features+fit"};
    return scores_at(i) ? needs[table[i].needs & 15] : NULL;
}

int fn_score_find(const char *name)
{
    for (int i = 0; name && i < scores_count(); i++)
        if (strcmp(table[i].name, name) == 0)
            return i;
    return -1;
}
