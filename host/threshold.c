/* threshold.c: a detector's threshold for deployment, calibrated on ID
 * validation scores at a chosen TPR, and the yes/no it gives each image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "threshold.h"

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

fn_status fn_threshold_at_tpr(const float *id, size_t n, double tpr, float *threshold)
{
    if (!id || !threshold || n == 0)
        return fn_fail(n == 0 ? FN_ERR_EMPTY : FN_ERR_INVALID_ARG,
                       "fn_threshold_at_tpr: no ID scores to calibrate on");
    if (!(tpr > 0 && tpr <= 1))
        return fn_fail(FN_ERR_INVALID_ARG, "the TPR to calibrate at must be in (0, 1]; it is %g", tpr);
    for (size_t i = 0; i < n; i++)
        if (isnan(id[i]))
            return fn_fail(FN_ERR_INVALID_ARG, "fn_threshold_at_tpr: NaN ID score at index %zu", i);
    float *v = fn_malloc(sizeof(float) * n);
    if (!v)
        return FN_ERR_NO_MEMORY;
    memcpy(v, id, sizeof(float) * n);
    qsort(v, n, sizeof *v, cmp_desc);
    /* The fewest top scores k with k / n >= tpr, the very test fn_metrics'
     * FPR95 makes (so 19 of 20 at 0.95, though 0.95 * 20 rounds above 19). */
    size_t k = (size_t)ceil(tpr * (double)n);
    while (k > 1 && (double)(k - 1) / (double)n >= tpr)
        k--;
    while (k < n && (double)k / (double)n < tpr)
        k++;
    *threshold = v[(k < 1 ? 1 : k) - 1];
    free(v);
    return FN_OK;
}

fn_status fn_selection_calibrate(fn_selection *s, const fn_scores *validation, const char *score,
                                 double tpr)
{
    if (!s || !validation || !score)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_selection_calibrate: NULL argument");
    const float *col = fn_scores_column(validation, score);
    if (!col)
        return fn_fail(FN_ERR_NOT_FOUND, "calibrate: the validation run has no %s scores%s", score,
                       fn_score_find(score) < 0 ? " (not a score: featurenorm info --scores)" : "");
    float t;
    FN_TRY(fn_threshold_at_tpr(col, validation->n, tpr, &t));
    char *name = fn_strdup(score);
    if (!name)
        return FN_ERR_NO_MEMORY;
    free(s->ood_score);
    s->ood_score = name, s->ood_tpr = tpr, s->ood_threshold = t, s->ood_images = validation->n;
    return FN_OK;
}

fn_status threshold_flag(fn_scores *s, const char *score, float threshold)
{
    const float *col = fn_scores_column(s, score);
    if (!col)
        return fn_fail(FN_ERR_NOT_FOUND, "the threshold is for %s, which this run does not compute%s",
                       score, fn_score_find(score) < 0 ? " (not a score)" : " (does it need a block?)");
    if (!(s->ood = fn_malloc(sizeof *s->ood * (s->n ? s->n : 1))))
        return FN_ERR_NO_MEMORY;
    for (size_t i = 0; i < s->n; i++)
        s->ood[i] = !(col[i] >= threshold); /* NaN: not ID */
    return FN_OK;
}
