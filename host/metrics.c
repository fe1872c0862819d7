/* metrics.c: AUROC, FPR95, AUPR-In and AUPR-Out of ID against OOD scores.
 *
 * ID is the positive class and a higher score means more in-distribution. The
 * results match scikit-learn: roc_auc_score, roc_curve(drop_intermediate=False)
 * for FPR95, and average_precision_score for both AUPRs. Both score sets are
 * copied and sorted descending once; a single sweep over the distinct score
 * values, ties grouped as in sklearn's _binary_clf_curve, visits every ROC point
 * and accumulates every metric at the same time.
 */
#include "error.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Descending order; the inputs hold no NaN by the time this runs, so the
 * comparison is a total order (and -0 == +0, as numpy's np.diff sees them). */
static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static fn_status check_no_nan(const float *s, size_t n, const char *which)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(s[i]))
            return fn_fail(FN_ERR_INVALID_ARG, "fn_metrics_compute: NaN in %s scores at index %zu",
                           which, i);
    return FN_OK;
}

static float *sorted_copy(const float *s, size_t n)
{
    if (n > SIZE_MAX / sizeof(float)) {
        fn_fail(FN_ERR_NO_MEMORY, "fn_metrics_compute: %zu scores do not fit in memory", n);
        return NULL;
    }
    float *c = fn_malloc(n * sizeof(float));
    if (!c)
        return NULL;
    memcpy(c, s, n * sizeof(float));
    qsort(c, n, sizeof(float), cmp_desc);
    return c;
}

fn_status fn_metrics_compute(const float *id, size_t n_id, const float *ood, size_t n_ood,
                             fn_metrics *out)
{
    if (!out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_metrics_compute: out is NULL");
    /* Emptiness first: (NULL, 0) is an empty set, not a bad pointer. */
    if (n_id == 0)
        return fn_fail(FN_ERR_EMPTY, "fn_metrics_compute: no ID scores");
    if (n_ood == 0)
        return fn_fail(FN_ERR_EMPTY, "fn_metrics_compute: no OOD scores");
    if (!id)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_metrics_compute: ID scores pointer is NULL");
    if (!ood)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_metrics_compute: OOD scores pointer is NULL");
    FN_TRY(check_no_nan(id, n_id, "ID"));
    FN_TRY(check_no_nan(ood, n_ood, "OOD"));

    float *a = sorted_copy(id, n_id);
    if (!a)
        return FN_ERR_NO_MEMORY;
    float *b = sorted_copy(ood, n_ood);
    if (!b) {
        free(a);
        return FN_ERR_NO_MEMORY;
    }

    /* Counts are whole numbers held in doubles: exact up to 2^53, and the
     * ratios below are then the same divisions sklearn performs. */
    const double n_pos = (double)n_id, n_neg = (double)n_ood;
    double tp = 0, fp = 0;     /* ID / OOD scores >= the current threshold */
    double auc2 = 0;           /* twice the ROC area, in ID x OOD pairs */
    double ap_in = 0, ap_out = 0;
    double fpr95 = 1, thr95 = 0;
    int found95 = 0;
    size_t i = 0, j = 0;
    while (i < n_id || j < n_ood) {
        float t;
        if (i == n_id)
            t = b[j];
        else if (j == n_ood)
            t = a[i];
        else
            t = a[i] > b[j] ? a[i] : b[j];
        size_t di = 0, dj = 0;
        while (i < n_id && a[i] == t)
            i++, di++;
        while (j < n_ood && b[j] == t)
            j++, dj++;

        /* AUPR-Out ranks from the lowest score up (OOD positive, -score), so
         * its precision at this group counts everything at or below t. */
        if (dj) {
            double ood_le = n_neg - fp, id_le = n_pos - tp;
            ap_out += ((double)dj / n_neg) * (ood_le / (ood_le + id_le));
        }
        /* Trapezoid over this group's ROC segment: ties count half. Integer
         * products, so the sum stays exact. */
        auc2 += (double)dj * (2 * tp + (double)di);
        tp += (double)di;
        fp += (double)dj;
        if (di)
            ap_in += ((double)di / n_pos) * (tp / (tp + fp));
        if (!found95 && tp / n_pos >= 0.95) {
            found95 = 1;
            fpr95 = fp / n_neg;
            thr95 = (double)t;
        }
    }
    free(a);
    free(b);

    out->auroc = auc2 / (2 * n_pos * n_neg);
    out->fpr95 = fpr95; /* always found: TPR reaches 1 at the last point */
    out->aupr_in = ap_in;
    out->aupr_out = ap_out;
    out->threshold = thr95;
    out->n_id = n_id;
    out->n_ood = n_ood;
    return FN_OK;
}

/* OpenOOD's convention: OOD is the positive class, ranked by -score. Its FPR@95
 * is the fraction of ID images flagged as OOD at the first threshold that
 * catches 95 % of OOD: the ID-positive FPR95 of the negated scores with the
 * roles swapped. AUROC is the same either way; the AUPRs keep their names
 * (In: ID positive), each still average precision. */
fn_status fn_metrics_compute_as(fn_eval_convention c, const float *id, size_t n_id, const float *ood,
                                size_t n_ood, fn_metrics *out)
{
    if (c == FN_EVAL_PAPER)
        return fn_metrics_compute(id, n_id, ood, n_ood, out);
    if (c != FN_EVAL_OPENOOD)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_metrics_compute_as: unknown convention %d", (int)c);
    if (!out || (n_id && !id) || (n_ood && !ood) || n_id == 0 || n_ood == 0)
        return fn_metrics_compute(id, n_id, ood, n_ood, out); /* its messages */
    FN_TRY(check_no_nan(id, n_id, "ID"));
    FN_TRY(check_no_nan(ood, n_ood, "OOD"));
    float *neg_id = sorted_copy(id, n_id), *neg_ood = neg_id ? sorted_copy(ood, n_ood) : NULL;
    fn_status s = neg_ood ? FN_OK : FN_ERR_NO_MEMORY;
    for (size_t i = 0; s == FN_OK && i < n_id; i++)
        neg_id[i] = -neg_id[i];
    for (size_t j = 0; s == FN_OK && j < n_ood; j++)
        neg_ood[j] = -neg_ood[j];
    fn_metrics m;
    if (s == FN_OK && (s = fn_metrics_compute(neg_ood, n_ood, neg_id, n_id, &m)) == FN_OK)
        *out = (fn_metrics){.auroc = m.auroc, .fpr95 = m.fpr95, .aupr_in = m.aupr_out,
                            .aupr_out = m.aupr_in, .threshold = -m.threshold, .n_id = n_id,
                            .n_ood = n_ood};
    free(neg_id), free(neg_ood);
    return s;
}

const char *fn_eval_convention_name(fn_eval_convention c)
{
    return c == FN_EVAL_PAPER ? "paper" : c == FN_EVAL_OPENOOD ? "openood" : NULL;
}
