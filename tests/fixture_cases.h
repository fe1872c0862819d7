/* fixture_cases.h: what the tests that compare networks share: walking the
 * PyTorch reference cases of tests/fixtures/models/, turning a case's
 * meta.json into model options, and the row-scaled comparison
 *
 *   |got - want| <= tol * (|want| + max |want| of the row)
 *
 * (a logit near zero is the difference of large terms, so its float32 error is
 * relative to the row's scale, not to itself). */
#ifndef FN_FIXTURE_CASES_H
#define FN_FIXTURE_CASES_H

#include <dirent.h>

#include "featurenorm.h"
#include "json.h"
#include "npy_read.h"
#include "test.h"

static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc(*len + 1);
    REQUIRE(t && fread(t, 1, *len, f) == *len);
    fclose(f);
    return t;
}

static inline void load_npy(const char *dir, const char *file, npy *a)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    REQUIRE(npy_load(path, a) == 0);
}

/* The array's values as float (caller frees). */
static inline float *npy_floats(const npy *a)
{
    float *f = malloc(sizeof(float) * (a->count + 1));
    REQUIRE(f);
    for (size_t i = 0; i < a->count; i++)
        f[i] = (float)a->data[i];
    return f;
}

/* A row's scale: its largest |value|. */
static inline double row_scale(const float *w, int cols)
{
    double scale = 0;
    for (int c = 0; c < cols; c++)
        scale = fmax(scale, fabs(w[c]));
    return scale;
}

/* Largest row-scaled error of got against want (rows of `cols`; got's row r is
 * want's row map[r], or r); a value above tol is reported and counted. */
static inline double compare_rows(const char *what, const char *name, const float *got, const float *want,
                           int rows, int cols, const int *map, double tol)
{
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        const float *w = want + (size_t)(map ? map[r] : r) * cols, *g = got + (size_t)r * cols;
        double scale = row_scale(w, cols);
        for (int c = 0; c < cols; c++) {
            double err = fabs((double)g[c] - w[c]) / (fabs(w[c]) + scale + 1e-30);
            if (!(err <= worst))
                worst = err;
            if (!(err <= tol)) {
                fprintf(stderr, "%s: %s[%d][%d] = %.8g, want %.8g (rel. error %.2e > %.0e)\n", name,
                        what, r, c, g[c], w[c], err, tol);
                test_failures++;
                return worst;
            }
        }
    }
    return worst;
}

/* Model options for a case: its architecture, weights, input size,
 * normalisation and constructor options; `weights` holds the path. */
static inline void case_options(const char *dir, const json *meta, fn_model_options *o, char weights[1100])
{
    fn_model_options_init(o);
    snprintf(weights, 1100, "%s/model.safetensors", dir);
    o->arch = json_get(meta, "arch")->string;
    o->weights = weights;
    o->input_size = (int)json_get(meta, "input_size")->number;
    for (int c = 0; c < 3; c++) {
        o->mean[c] = (float)json_at(json_get(meta, "mean"), (size_t)c)->number;
        o->std[c] = (float)json_at(json_get(meta, "std"), (size_t)c)->number;
    }
    const json *pad = json_get(json_get(meta, "options"), "stem_padding");
    if (pad)
        o->stem_padding = (int)pad->number;
}

static inline int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef void (*case_fn)(const char *dir, const char *name, const json *meta);

/* Runs fn on every case (or the one named `only`), in name order; a case whose
 * architecture is not built in is a failure. Returns the number run. */
static inline int for_each_case(const char *only, case_fn fn)
{
    const char *root = FN_FIXTURES "/models";
    DIR *d = opendir(root);
    REQUIRE(d);
    char *names[256];
    int count = 0, ran = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 256)
        if (e->d_name[0] != '.')
            names[count++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)count, sizeof *names, compare_names);
    for (int i = 0; i < count; i++) {
        char dir[512], path[1100];
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        snprintf(path, sizeof path, "%s/meta.json", dir);
        if (!only || strcmp(only, names[i]) == 0) {
            size_t len;
            char *text = slurp(path, &len);
            json *meta;
            REQUIRE_OK(json_parse(text, len, path, &meta));
            const char *arch = json_get(meta, "arch")->string;
            int known = 0;
            for (int a = 0; a < fn_arch_count(); a++)
                known |= strcmp(fn_arch_name(a), arch) == 0;
            CHECK_MSG(known, "%s: architecture %s is not built in", names[i], arch);
            if (known) {
                fn(dir, names[i], meta);
                ran++;
            }
            json_free(meta);
            free(text);
        }
        free(names[i]);
    }
    printf("%d fixture cases run\n", ran);
    return ran;
}

#endif
