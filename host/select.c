/* select.c: block selection by NormRatio (SPEC):
 *
 *   R_n = mean over ID images x of FN(x; B_n) / FN(jigsaw(x); B_n),  s = argmax R_n
 *
 * One pass: every batch holds n ID images followed by their n Jigsaw copies,
 * so the two norms of an image come from the same forward call. The ReAct clip
 * is estimated on the way, as a percentile of the ID penultimate features
 * over a uniform reservoir sample (all of them when they fit). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "error.h"
#include "json.h"
#include "model.h"
#include "outfile.h"
#include "pipeline.h"
#include "progress.h"
#include "run.h"

#define RESERVOIR (1u << 22) /* feature values kept for the percentile (16 MiB) */

typedef struct reservoir {
    float *v;
    size_t n, seen;
    uint64_t rng;
} reservoir;

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static void reservoir_add(reservoir *r, const float *v, size_t count)
{
    for (size_t i = 0; i < count; i++, r->seen++) {
        if (r->n < RESERVOIR) {
            r->v[r->n++] = v[i];
            continue;
        }
        uint64_t j = xorshift(&r->rng) % (r->seen + 1);
        if (j < RESERVOIR)
            r->v[j] = v[i];
    }
}

static int compare_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* NumPy's default (linear) percentile. */
static float percentile(float *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, compare_float);
    double pos = q / 100.0 * (double)(n - 1);
    size_t lo = (size_t)pos, hi = lo + 1 < n ? lo + 1 : lo;
    return (float)(v[lo] + (pos - (double)lo) * (v[hi] - v[lo]));
}

void fn_selection_free(fn_selection *s)
{
    if (!s)
        return;
    for (int b = 0; s->block_names && b < s->num_blocks; b++)
        free(s->block_names[b]);
    free(s->block_names);
    free(s->norm_ratio), free(s->mean_norm_id), free(s->mean_norm_jigsaw);
    free(s->arch);
    free(s);
}

static fn_selection *new_selection(const fn_model *m)
{
    int B = m->net.n_blocks;
    fn_selection *s = fn_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->num_blocks = B;
    s->block_names = calloc((size_t)B, sizeof *s->block_names);
    s->norm_ratio = calloc((size_t)B, sizeof(double));
    s->mean_norm_id = calloc((size_t)B, sizeof(double));
    s->mean_norm_jigsaw = calloc((size_t)B, sizeof(double));
    s->arch = fn_strdup(m->net.arch);
    int ok = s->block_names && s->norm_ratio && s->mean_norm_id && s->mean_norm_jigsaw && s->arch;
    for (int b = 0; ok && b < B; b++)
        ok = (s->block_names[b] = fn_strdup(m->net.blocks[b].name)) != NULL;
    if (!ok) {
        fn_selection_free(s);
        fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
        return NULL;
    }
    return s;
}

static int argmax(const double *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

fn_status fn_select_block(fn_model *m, fn_dataset *d, const fn_run_options *o, fn_selection **out)
{
    if (!out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_select_block: out is NULL");
    *out = NULL;
    run_settings rs;
    FN_TRY(run_setup(m, d, o, 2, &rs));
    if (!(o->react_percentile > 0 && o->react_percentile <= 100))
        return fn_fail(FN_ERR_INVALID_ARG, "react_percentile must be in (0, 100]");
    const int B = m->net.n_blocks, D = m->net.feature_dim, S = m->net.input_size;
    const size_t image = (size_t)S * S * 3;
    fn_selection *sel = new_selection(m);
    if (!sel)
        return FN_ERR_NO_MEMORY;
    sel->seed = o->seed;
    sel->react_percentile = o->react_percentile;
    size_t *valid = calloc((size_t)B, sizeof *valid);
    uint8_t *pair = malloc(image * 2 * (size_t)rs.batch);
    float *norms = malloc(sizeof(float) * 2 * (size_t)rs.batch * B);
    float *features = malloc(sizeof(float) * 2 * (size_t)rs.batch * D);
    reservoir res = {malloc(sizeof(float) * RESERVOIR), 0, 0, o->seed * 2654435761u + 88172645463325252ull};
    pipeline *p = NULL;
    fn_status st = FN_OK;
    if (!valid || !pair || !norms || !features || !res.v)
        st = fn_fail(FN_ERR_NO_MEMORY, "out of host memory for batch %d", rs.batch);
    if (st == FN_OK)
        st = pipeline_create(d, rs.preset, S, rs.batch, rs.threads, o->strict, !o->verbose, &p);
    progress pr;
    progress_start(&pr, "select", d->n, !o->verbose);
    while (st == FN_OK) {
        pipeline_batch b;
        if ((st = pipeline_next(p, &b)) != FN_OK || b.n == 0)
            break;
        const int n = b.n;
        memcpy(pair, b.images, image * (size_t)n);
        for (int i = 0; i < n; i++) /* each copy's permutation depends on its item only */
            fn_jigsaw(b.images + image * (size_t)i, pair + image * (size_t)(n + i), 1, S, 3, o->seed,
                      b.index[i]);
        fn_outputs fo = {.norms = norms, .features = features};
        if ((st = fn_model_forward_u8(m, 2 * n, pair, &fo)) != FN_OK)
            break;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < B; k++) {
                double id = norms[(size_t)i * B + k], jig = norms[(size_t)(n + i) * B + k];
                sel->mean_norm_id[k] += id;
                sel->mean_norm_jigsaw[k] += jig;
                if (jig > 0) { /* an all-zero jigsaw map has no ratio */
                    sel->norm_ratio[k] += id / jig;
                    valid[k]++;
                }
            }
        reservoir_add(&res, features, (size_t)n * D); /* the ID half only */
        sel->images += (size_t)n;
        progress_update(&pr, sel->images + pipeline_skipped(p));
    }
    if (p) {
        sel->skipped = pipeline_skipped(p);
        pipeline_free(p);
    }
    if (st == FN_OK && sel->images == 0)
        st = fn_fail(FN_ERR_EMPTY, "%s: none of the %zu images could be read", d->source, d->n);
    if (st == FN_OK) {
        for (int k = 0; k < B; k++) {
            sel->norm_ratio[k] = valid[k] ? sel->norm_ratio[k] / valid[k] : 0;
            sel->mean_norm_id[k] /= sel->images;
            sel->mean_norm_jigsaw[k] /= sel->images;
        }
        sel->selected = argmax(sel->norm_ratio, B);
        sel->react_clip = percentile(res.v, res.n, o->react_percentile);
        progress_finish(&pr, sel->images, sel->skipped);
        *out = sel;
    } else {
        fn_selection_free(sel);
    }
    free(valid), free(pair), free(norms), free(features), free(res.v);
    return st;
}

/* ---- selection.json ------------------------------------------------------- */

fn_status fn_selection_write_json(const fn_selection *s, const fn_model *m, const char *data_path,
                                  const char *path)
{
    if (!s || !m)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_selection_write_json: NULL argument");
    outfile o;
    FN_TRY(outfile_open(&o, path));
    FILE *f = o.f;
    fprintf(f, "{\n  \"featurenorm\": \"%s\",\n  \"arch\": ", FN_VERSION);
    json_write_string(f, s->arch);
    fprintf(f, ",\n  \"input_size\": %d,\n  \"mean\": [%.9g, %.9g, %.9g],\n  \"std\": [%.9g, %.9g, %.9g],\n",
            m->net.input_size, m->net.mean[0], m->net.mean[1], m->net.mean[2], m->net.std[0],
            m->net.std[1], m->net.std[2]);
    fputs("  \"data\": ", f);
    json_write_string(f, data_path ? data_path : "");
    fprintf(f, ",\n  \"images\": %zu,\n  \"skipped\": %zu,\n  \"seed\": %llu,\n", s->images, s->skipped,
            (unsigned long long)s->seed);
    fputs("  \"selected\": ", f);
    json_write_string(f, s->block_names[s->selected]);
    fprintf(f, ",\n  \"selected_index\": %d,\n", s->selected);
    fprintf(f, "  \"react\": {\"percentile\": %.9g, \"clip\": %.9g},\n", s->react_percentile, s->react_clip);
    fputs("  \"blocks\": [\n", f);
    for (int b = 0; b < s->num_blocks; b++) {
        int c, h, w;
        fn_model_block_shape(m, b, &c, &h, &w);
        fputs("    {\"name\": ", f);
        json_write_string(f, s->block_names[b]);
        fprintf(f, ", \"shape\": [%d, %d, %d], \"norm_ratio\": %.9g, \"mean_norm_id\": %.9g, "
                   "\"mean_norm_jigsaw\": %.9g}%s\n",
                c, h, w, s->norm_ratio[b], s->mean_norm_id[b], s->mean_norm_jigsaw[b],
                b + 1 < s->num_blocks ? "," : "");
    }
    fputs("  ]\n}\n", f);
    return outfile_commit(&o);
}

static fn_status read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fn_fail(FN_ERR_IO, "%s: cannot open selection", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p)
                free(buf);
            buf = p;
        }
    }
    fclose(f);
    if (!buf)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory reading %s", path);
    *text = buf;
    *len = n;
    return FN_OK;
}

/* A number of the selection, checked before any conversion (a float to
 * integer conversion out of range is undefined): absent -> fallback; present
 * -> a finite number in [lo, hi], and a whole one when `whole`. */
static fn_status number(const char *path, const json *obj, const char *key, double lo, double hi,
                        int whole, double fallback, double *out)
{
    const json *v = json_get(obj, key);
    *out = fallback;
    if (!v)
        return FN_OK;
    if (v->type != JSON_NUMBER || !isfinite(v->number) || v->number < lo || v->number > hi ||
        (whole && v->number != floor(v->number)))
        return fn_fail(FN_ERR_FORMAT, "%s: \"%s\" must be a %s from %.17g to %.17g", path, key,
                       whole ? "whole number" : "finite number", lo, hi);
    *out = v->number;
    return FN_OK;
}

fn_status fn_selection_read_json(const char *path, const fn_model *m, fn_selection **out)
{
    if (!path || !m || !out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_selection_read_json: NULL argument");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    FN_TRY(read_file(path, &text, &len));
    json *root = NULL;
    fn_status st = json_parse(text, len, path, &root);
    free(text);
    if (st != FN_OK)
        return st;
    const json *arch = json_get(root, "arch"), *blocks = json_get(root, "blocks"),
               *selected = json_get(root, "selected"), *react = json_get(root, "react");
    fn_selection *s = NULL;
    if (!arch || arch->type != JSON_STRING || !blocks || blocks->type != JSON_ARRAY || !selected ||
        selected->type != JSON_STRING) {
        st = fn_fail(FN_ERR_FORMAT, "%s: not a selection file (needs arch, blocks, selected)", path);
    } else if (strcmp(arch->string, m->net.arch) != 0) {
        st = fn_fail(FN_ERR_INVALID_ARG, "%s: made for %s, but the model is %s", path, arch->string,
                     m->net.arch);
    } else if ((int)blocks->count != m->net.n_blocks) {
        st = fn_fail(FN_ERR_SHAPE, "%s: %zu blocks, the model has %d", path, blocks->count,
                     m->net.n_blocks);
    } else if (!(s = new_selection(m))) {
        st = FN_ERR_NO_MEMORY;
    }
    int b = 0;
    for (const json *e = st == FN_OK ? blocks->child : NULL; e; e = e->next, b++) {
        const json *name = json_get(e, "name");
        if (!name || name->type != JSON_STRING || strcmp(name->string, m->net.blocks[b].name)) {
            st = fn_fail(FN_ERR_FORMAT, "%s: block %d is not the model's %s", path, b,
                         m->net.blocks[b].name);
            break;
        }
        if ((st = number(path, e, "norm_ratio", -DBL_MAX, DBL_MAX, 0, 0, &s->norm_ratio[b])) ||
            (st = number(path, e, "mean_norm_id", -DBL_MAX, DBL_MAX, 0, 0, &s->mean_norm_id[b])) ||
            (st = number(path, e, "mean_norm_jigsaw", -DBL_MAX, DBL_MAX, 0, 0,
                         &s->mean_norm_jigsaw[b])))
            break;
    }
    if (st == FN_OK && (s->selected = fn_model_find_block(m, selected->string)) < 0)
        st = fn_fail(FN_ERR_NOT_FOUND, "%s: selected block '%s' is not a block of %s", path,
                     selected->string, m->net.arch);
    /* Counts up to 2^53 (exact in a double); the seed below 2^64 (what the
     * writer prints with %llu; a JSON double rounds above 2^53). */
    double images = 0, skipped = 0, seed = 0, percentile = 0, clip = 0;
    if (st == FN_OK)
        (void)((st = number(path, root, "images", 0, 9007199254740992.0, 1, 0, &images)) ||
               (st = number(path, root, "skipped", 0, 9007199254740992.0, 1, 0, &skipped)) ||
               (st = number(path, root, "seed", 0, 18446744073709549568.0, 1, 0, &seed)) ||
               (st = number(path, react, "percentile", 0, 100, 0, 0, &percentile)) ||
               (st = number(path, react, "clip", 0, FLT_MAX, 0, 0, &clip)));
    if (st == FN_OK) {
        s->images = (size_t)images;
        s->skipped = (size_t)skipped;
        s->seed = (uint64_t)seed;
        s->react_percentile = (float)percentile;
        s->react_clip = (float)clip;
        *out = s;
    } else {
        fn_selection_free(s);
    }
    json_free(root);
    return st;
}
