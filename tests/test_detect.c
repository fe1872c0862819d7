/* test_detect.c: every score of the table against independent implementations.
 *
 * For each network of tests/fixtures/models/, scripts/detector_reference.py
 * computed every score (pytorch-ood's MSP, MaxLogit, Energy, Entropy, ReAct;
 * the GEN authors' formula; GradNorm by autograd; the "selected norm" rows by
 * W f' + b) in float64 from the fixture's features, logits, norms and the
 * model's last layer, into tests/fixtures/detect/<case>.csv; Mahalanobis
 * (scikit-learn) and fDBD on three cases with a synthetic training set, which
 * is gathered here by fit.c (two batches, through a fit file and back). The
 * table's functions get the same inputs in float32. A table row without a reference
 * column, or one not computed from these inputs, is a failure. */
#include <unistd.h>

#include "fit.h"
#include "fixture_cases.h"
#include "model.h"
#include "scores.h"

static int fit_cases; /* cases whose reference has the fitted detectors */

/* The case's synthetic training set gathered into a fit file, read back: NULL
 * when the case has none. */
static fit_model *fit_for(const char *name, fn_model *m)
{
    char train_path[1100], labels_path[1100], file[1100];
    snprintf(train_path, sizeof train_path, FN_FIXTURES "/detect/%s.fit_train.npy", name);
    snprintf(labels_path, sizeof labels_path, FN_FIXTURES "/detect/%s.fit_labels.npy", name);
    if (access(train_path, R_OK) != 0)
        return NULL;
    npy train, labels;
    REQUIRE(npy_load(train_path, &train) == 0 && npy_load(labels_path, &labels) == 0);
    const int n = (int)train.shape[0], D = (int)train.shape[1], K = m->net.num_classes;
    float *x = npy_floats(&train);
    int *y = malloc(sizeof(int) * n);
    REQUIRE(y && D == m->net.feature_dim);
    for (int i = 0; i < n; i++)
        y[i] = (int)labels.data[i];
    fit_stats *f, *back;
    REQUIRE_OK(fit_create(K, D, &f));
    fit_add(f, x, y, n / 2); /* two batches, as a pass would add them */
    fit_add(f, x + (size_t)(n / 2) * D, y + n / 2, n - n / 2);
    snprintf(file, sizeof file, "%s/test_detect_%s.fit", FN_BINARY_DIR, name);
    REQUIRE_OK(fit_write(f, file));
    REQUIRE_OK(fit_read(file, K, D, &back));
    fit_model *fm;
    REQUIRE_OK(fit_model_make(back, m->net.ops[m->net.last_linear].w, file, &fm));
    fit_free(f), fit_free(back), free(x), free(y), npy_free(&train), npy_free(&labels);
    unlink(file);
    fit_cases++;
    return fm;
}

/* The inputs are the float64 reference rounded to float32 (2^-24 relative);
 * each score is a sum of at most K terms in double of those, so 1e-4 relative
 * is far above their rounding; the 1e-6 absolute floor is for the scores that
 * cross zero (entropy of a sure prediction, a logit near 0). */
#define RTOL 1e-4
#define ATOL 1e-6

static void run_case(const char *dir, const char *name, const json *meta)
{
    char weights[1100], ref_csv[1100];
    fn_model_options o;
    case_options(dir, meta, &o, weights);
    o.backend = FN_BACKEND_CPU;
    o.max_batch = 4;
    fn_model *m;
    REQUIRE_OK(fn_model_load(&o, &m));
    npy norms, logits, features, react;
    load_npy(dir, "norms.npy", &norms);
    load_npy(dir, "logits.npy", &logits);
    load_npy(dir, "features.npy", &features);
    load_npy(dir, "react_logits.npy", &react);
    float *fnorms = npy_floats(&norms), *flogits = npy_floats(&logits);
    float *ffeat = npy_floats(&features), *freact = npy_floats(&react);
    const int n = (int)logits.shape[0];
    snprintf(ref_csv, sizeof ref_csv, "%s/../../detect/%s.csv", dir, name);
    fn_columns *want;
    const char *block_col = "block";
    REQUIRE_OK(fn_csv_read_columns(ref_csv, &block_col, 1, &want));
    backend_result r = {n, fnorms, flogits, ffeat, freact};
    fit_model *fit = fit_for(name, m);
    score_input in = model_score_input(m, &r, (int)want->values[0][0],
                                       (float)json_get(meta, "react_clip")->number,
                                       (score_options){0}, fit);
    fn_columns_free(want);
    float *scratch = malloc(sizeof(float) * (scores_scratch(&in) + 1)), *got = malloc(sizeof(float) * n);
    REQUIRE(scratch && got);
    scores_derive(&in, scratch);
    printf("%s (%d rows, block %d)\n", name, n, in.block);
    for (int i = 0; i < scores_count(); i++) {
        const char *col = scores_at(i)->name;
        if ((scores_at(i)->needs & SCORE_NEEDS_FIT) && !fit)
            continue; /* this case has no training set; fit_cases counts those that do */
        fn_columns *ref = NULL;
        fn_status s = fn_csv_read_columns(ref_csv, &col, 1, &ref);
        CHECK_MSG(s == FN_OK, "%s: no reference for score %s (%s)", name, col, fn_last_error());
        CHECK_MSG(scores_available(i, &in), "%s: score %s not computed from the fixture", name, col);
        if (s != FN_OK || !scores_available(i, &in)) {
            fn_columns_free(ref);
            continue;
        }
        scores_compute(i, &in, got);
        double worst = 0;
        for (int k = 0; k < n; k++) {
            const double w = ref->values[0][k], err = fabs(got[k] - w) / (fabs(w) + ATOL / RTOL);
            worst = fmax(worst, err);
            CHECK_MSG(test_close(got[k], w, RTOL, ATOL), "%s: %s[%d] = %.9g, reference %.9g", name, col,
                      k, got[k], w);
        }
        printf("  %-16s max rel. error %.2e\n", col, worst);
        fn_columns_free(ref);
    }
    fit_model_free(fit);
    free(scratch), free(got), free(fnorms), free(flogits), free(ffeat), free(freact);
    npy_free(&norms), npy_free(&logits), npy_free(&features), npy_free(&react);
    fn_model_free(m);
}

/* GEN's top M with ties, M above the classes, and -inf logits. */
static void gen_edges(void)
{
    score_options o = scores_resolve_options((score_options){0});
    const float tied[4] = {1, 1, 1, 0};
    float out;
    double e1 = exp(1.0), z = 3 * e1 + 1, p = e1 / z, q = 1 / z;
    double all = -(3 * pow(p, 0.1) * pow(1 - p, 0.1) + pow(q, 0.1) * pow(1 - q, 0.1));
    score_input in = {.n = 1, .num_classes = 4, .logits = tied, .opt = o};
    scores_compute(fn_score_find("gen"), &in, &out);
    CHECK_MSG(test_close(out, all, 1e-6, 0), "GEN, M > K: %.9g, want %.9g", out, all);
    in.opt.gen_m = 2;
    scores_compute(fn_score_find("gen"), &in, &out);
    CHECK_MSG(test_close(out, -2 * pow(p, 0.1) * pow(1 - p, 0.1), 1e-6, 0), "GEN, M cuts a tie: %.9g", out);
    const float neg[3] = {0, -INFINITY, -INFINITY};
    in.num_classes = 3, in.logits = neg, in.opt.gen_m = 3;
    scores_compute(fn_score_find("gen"), &in, &out);
    CHECK_MSG(out == 0, "GEN of a sure prediction is 0, got %.9g", out);
}

int main(int argc, char **argv)
{
    CHECK(for_each_case(argc > 1 ? argv[1] : NULL, run_case) > 0);
    CHECK_MSG(argc > 1 || fit_cases >= 3, "only %d cases checked the fitted detectors", fit_cases);
    gen_edges();
    return test_finish("test_detect");
}
