/* select.c: block selection by NormRatio (SPEC):
 *
 *   R_n = mean over ID images x of FN(x; B_n) / FN(jigsaw(x); B_n),  s = argmax R_n
 *
 * One pass: every batch holds n ID images followed by their n Jigsaw copies,
 * so the two norms of an image come from the same forward call. The ReAct clip
 * is estimated on the way, as a percentile of the ID penultimate features
 * over a uniform reservoir sample (all of them when they fit). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "dist.h"
#include "fit.h"
#include "error.h"
#include "json.h"
#include "model.h"
#include "outfile.h"
#include "pass.h"
#include "whole_file.h"

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
    free(s->arch), free(s->data), free(s->ood_score);
    fit_free((fit_stats *)s->fit);
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

typedef struct select_run {
    fn_selection *sel;
    const fn_dataset *d;
    fit_stats *fit;  /* or NULL */
    int *label;      /* a batch's labels, for fit */
    size_t *valid;   /* per block: images whose Jigsaw norm was positive */
    reservoir res;
    int B, D;
} select_run;

/* The ID half's features into the detectors' sums, by label (the prediction
 * where the data has none). */
static void fit_batch(select_run *run, const pass_rows *rows)
{
    const int K = run->fit->K;
    for (int i = 0; i < rows->n; i++) {
        int y = run->d->items[rows->index[i]].label;
        if (y < 0 || y >= K) {
            const float *l = rows->r.logits + (size_t)i * K;
            y = 0;
            for (int k = 1; k < K; k++)
                if (l[k] > l[y])
                    y = k;
        }
        run->label[i] = y;
    }
    fit_add(run->fit, rows->r.features, run->label, rows->n);
}

static fn_status select_batch(void *ctx, const pass_rows *rows)
{
    select_run *run = ctx;
    fn_selection *sel = run->sel;
    const int n = rows->n, B = run->B;
    const float *norms = rows->r.norms; /* n ID rows, then their n Jigsaw copies */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < B; k++) {
            double id = norms[(size_t)i * B + k], jig = norms[(size_t)(n + i) * B + k];
            sel->mean_norm_id[k] += id;
            sel->mean_norm_jigsaw[k] += jig;
            if (jig > 0) { /* an all-zero jigsaw map has no ratio */
                sel->norm_ratio[k] += id / jig;
                run->valid[k]++;
            }
        }
    reservoir_add(&run->res, rows->r.features, (size_t)n * run->D); /* the ID half only */
    if (run->fit)
        fit_batch(run, rows);
    sel->images += (size_t)n;
    return FN_OK;
}

/* Checkpoint state: the sums so far and the reservoir, exactly; one layout
 * for saving and loading. */
static fn_status select_state(select_run *run, bytes *b, int load)
{
    fn_selection *sel = run->sel;
    const size_t B = (size_t)run->B;
    bytes_io(b, &sel->images, sizeof sel->images, load);
    bytes_io(b, sel->norm_ratio, sizeof(double) * B, load);
    bytes_io(b, sel->mean_norm_id, sizeof(double) * B, load);
    bytes_io(b, sel->mean_norm_jigsaw, sizeof(double) * B, load);
    bytes_io(b, run->valid, sizeof(size_t) * B, load);
    bytes_io(b, &run->res.n, sizeof run->res.n, load);
    bytes_io(b, &run->res.seen, sizeof run->res.seen, load);
    bytes_io(b, &run->res.rng, sizeof run->res.rng, load);
    if (b->bad || run->res.n > RESERVOIR)
        return fn_fail(FN_ERR_FORMAT, "checkpoint: the sums do not fit this run");
    bytes_io(b, run->res.v, sizeof(float) * run->res.n, load);
    if (run->fit)
        fit_state(run->fit, b, load);
    return b->bad || (load && b->at != b->len)
               ? fn_fail(FN_ERR_FORMAT, "checkpoint: the sums do not fit this run")
               : FN_OK;
}

static void select_save(void *ctx, bytes *b) { select_state(ctx, b, 0); }
static fn_status select_load(void *ctx, bytes *b) { return select_state(ctx, b, 1); }

/* Every rank's sums, added in rank order, and the union of the reservoirs on
 * rank 0 (all of the ID features when they fit, as in one process). */
static fn_status reduce(select_run *run, pass_stats *stats, int rank, int ranks)
{
    fn_selection *sel = run->sel;
    const int B = run->B, n = 4 * B + 3;
    double *v = malloc(sizeof(double) * (size_t)n);
    if (!v)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
    for (int k = 0; k < B; k++) {
        v[k] = sel->norm_ratio[k], v[B + k] = sel->mean_norm_id[k];
        v[2 * B + k] = sel->mean_norm_jigsaw[k], v[3 * B + k] = (double)run->valid[k];
    }
    v[4 * B] = (double)sel->images, v[4 * B + 1] = (double)stats->skipped, v[4 * B + 2] = (double)run->res.n;
    fn_status st = dist_sum(v, n, ranks);
    if (st == FN_OK) {
        for (int k = 0; k < B; k++) {
            sel->norm_ratio[k] = v[k], sel->mean_norm_id[k] = v[B + k];
            sel->mean_norm_jigsaw[k] = v[2 * B + k], run->valid[k] = (size_t)v[3 * B + k];
        }
        sel->images = (size_t)v[4 * B], stats->skipped = (size_t)v[4 * B + 1];
    }
    size_t all = (size_t)v[4 * B + 2], total = 0;
    free(v);
    if (st == FN_OK && rank == 0 && all > RESERVOIR) { /* room for the union */
        float *bigger = realloc(run->res.v, sizeof(float) * all);
        st = bigger ? FN_OK : fn_fail(FN_ERR_NO_MEMORY, "out of host memory for %zu features", all);
        if (bigger)
            run->res.v = bigger;
    }
    st = dist_agree(st, ranks);
    if (st == FN_OK && run->fit)
        st = fit_reduce(run->fit, ranks);
    if (st == FN_OK)
        st = dist_gather_rows(run->res.v, sizeof(float), run->res.n, rank == 0 ? all : 0, &total, ranks);
    if (st == FN_OK && rank == 0)
        run->res.n = total;
    return st;
}

fn_status fn_select_block(fn_model *m, fn_dataset *d, const fn_run_options *o, fn_selection **out)
{
    if (!out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_select_block: out is NULL");
    *out = NULL;
    pass_settings ps;
    FN_TRY(pass_settings_resolve(m, d, o, 2, &ps));
    if (!(o->react_percentile > 0 && o->react_percentile <= 100))
        return fn_fail(FN_ERR_INVALID_ARG, "react_percentile must be in (0, 100]");
    const int B = m->net.n_blocks;
    fn_selection *sel = new_selection(m);
    if (!sel)
        return FN_ERR_NO_MEMORY;
    sel->seed = o->seed;
    sel->react_percentile = o->react_percentile;
    select_run run = {.sel = sel, .d = d, .valid = calloc((size_t)B, sizeof(size_t)),
                      .res = {.v = malloc(sizeof(float) * RESERVOIR),
                              .rng = o->seed * 2654435761u + 88172645463325252ull},
                      .B = B, .D = m->net.feature_dim};
    fn_status st = FN_OK;
    if (!run.valid || !run.res.v)
        st = fn_fail(FN_ERR_NO_MEMORY, "out of host memory for the selection");
    if (st == FN_OK && o->fit && (st = fit_create(m->net.num_classes, run.D, &run.fit)) == FN_OK &&
        !(run.label = malloc(sizeof(int) * (size_t)ps.batch)))
        st = fn_fail(FN_ERR_NO_MEMORY, "out of host memory for the selection");
    const int ranks = o->ranks > 1 ? o->ranks : 1;
    pass_spec spec = {.per_image = 2, .seed = o->seed, .label = "select", .on_batch = select_batch,
                      .save = select_save, .load = select_load, .ctx = &run};
    dist_shard(d->n, ps.batch, o->rank, ranks, &spec.first, &spec.count);
    pass_stats stats = {0};
    if (st == FN_OK)
        st = pass_run(m, d, o, &ps, &spec, &stats);
    if ((st = dist_agree(st, ranks)) == FN_OK && ranks > 1)
        st = reduce(&run, &stats, o->rank, ranks);
    if (st == FN_OK && sel->images == 0)
        st = fn_fail(FN_ERR_EMPTY, "%s: none of the %zu images could be read", d->source, d->n);
    if (st == FN_OK) {
        sel->skipped = stats.skipped;
        for (int k = 0; k < B; k++) {
            sel->norm_ratio[k] = run.valid[k] ? sel->norm_ratio[k] / run.valid[k] : 0;
            sel->mean_norm_id[k] /= sel->images;
            sel->mean_norm_jigsaw[k] /= sel->images;
        }
        sel->selected = argmax(sel->norm_ratio, B);
        if (o->rank <= 0 || ranks == 1)
            sel->react_clip = percentile(run.res.v, run.res.n, o->react_percentile);
        dist_share(&sel->react_clip, sizeof sel->react_clip, ranks); /* rank 0's, everywhere */
        sel->fit = (struct fn_fit *)run.fit, run.fit = NULL;
        *out = sel;
    } else {
        fn_selection_free(sel);
    }
    free(run.valid), free(run.res.v), free(run.label);
    fit_free(run.fit);
    return st;
}

fn_status fn_fit_write(const fn_selection *s, const char *path)
{
    if (!s || !s->fit || !path)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_fit_write: no statistics (select with fit = 1) or no path");
    return fit_write((const fit_stats *)s->fit, path);
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
    json_write_string(f, data_path ? data_path : s->data ? s->data : "");
    fprintf(f, ",\n  \"images\": %zu,\n  \"skipped\": %zu,\n  \"seed\": %llu,\n", s->images, s->skipped,
            (unsigned long long)s->seed);
    fputs("  \"selected\": ", f);
    json_write_string(f, s->block_names[s->selected]);
    fprintf(f, ",\n  \"selected_index\": %d,\n", s->selected);
    fprintf(f, "  \"react\": {\"percentile\": %.9g, \"clip\": %.9g},\n", s->react_percentile, s->react_clip);
    if (s->ood_score) { /* fn_selection_calibrate's */
        fputs("  \"threshold\": {\"score\": ", f);
        json_write_string(f, s->ood_score);
        fprintf(f, ", \"tpr\": %.17g, \"value\": %.9g, \"images\": %zu},\n", s->ood_tpr,
                s->ood_threshold, s->ood_images);
    }
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

/* The data path and the deployment threshold, when the file has them. */
static fn_status read_extras(const char *path, const json *root, fn_selection *s)
{
    const json *data = json_get(root, "data"), *t = json_get(root, "threshold");
    if (data && data->type == JSON_STRING && data->string[0] && !(s->data = fn_strdup(data->string)))
        return FN_ERR_NO_MEMORY;
    if (!t)
        return FN_OK;
    const json *score = json_get(t, "score");
    if (!score || score->type != JSON_STRING || fn_score_find(score->string) < 0)
        return fn_fail(FN_ERR_FORMAT, "%s: threshold.score must name a score of `featurenorm info "
                       "--scores`", path);
    double tpr, value, images;
    FN_TRY(number(path, t, "tpr", DBL_MIN, 1, 0, -1, &tpr));
    FN_TRY(number(path, t, "value", -FLT_MAX, FLT_MAX, 0, NAN, &value));
    FN_TRY(number(path, t, "images", 1, 9007199254740992.0, 1, -1, &images));
    if (tpr < 0 || isnan(value) || images < 0)
        return fn_fail(FN_ERR_FORMAT, "%s: threshold needs tpr, value and images", path);
    if (!(s->ood_score = fn_strdup(score->string)))
        return FN_ERR_NO_MEMORY;
    s->ood_tpr = tpr, s->ood_threshold = (float)value, s->ood_images = (size_t)images;
    return FN_OK;
}

fn_status fn_selection_read_json(const char *path, const fn_model *m, fn_selection **out)
{
    if (!path || !m || !out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_selection_read_json: NULL argument");
    *out = NULL;
    uint8_t *text = NULL;
    size_t len = 0;
    FN_TRY(whole_file_read(path, LLONG_MAX, "selection files", &text, &len));
    json *root = NULL;
    fn_status st = json_parse((const char *)text, len, path, &root);
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
    if (st == FN_OK)
        st = read_extras(path, root, s);
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
