/* score.c: score a dataset (decode -> forward -> FeatureNorm of every block,
 * then every score of the table from those and the logits), and write the
 * rows as CSV or .npy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "dist.h"
#include "fit.h"
#include "error.h"
#include "model.h"
#include "npy.h"
#include "outfile.h"
#include "pass.h"
#include "scores.h"
#include "threshold.h"

void fn_scores_free(fn_scores *s)
{
    if (!s)
        return;
    free(s->index), free(s->label), free(s->pred), free(s->norms);
    free(s->score_id), free(s->scores), free(s->ood);
    free(s);
}

const float *fn_scores_column(const fn_scores *s, const char *name)
{
    for (int j = 0; s && name && j < s->num_scores; j++)
        if (strcmp(fn_score_name(s->score_id[j]), name) == 0)
            return s->scores + (size_t)j * s->n;
    return NULL;
}

typedef struct score_run {
    fn_scores *s;
    const fn_dataset *d;
    const fn_model *m;
    const fn_run_options *o;
    size_t cap;         /* rows allocated: score column j starts at scores + j * cap */
    float *scratch;     /* the "selected norm" logits of a batch, or NULL */
    fit_model *fit;     /* from o->fit_path, or NULL */
} score_run;

/* The detectors' statistics from a fit file, for this model. */
static fn_status load_fit(const fn_model *m, const char *path, fit_model **out)
{
    const net_op *head = &m->net.ops[m->net.last_linear];
    if (head->act != ACT_NONE || !head->w)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: the detectors need a last layer W f + b", path);
    fit_stats *f;
    FN_TRY(fit_read(path, m->net.num_classes, m->net.feature_dim, &f));
    fn_status s = fit_model_make(f, head->w, path, out);
    fit_free(f);
    return s;
}

/* The table's scores this run can compute, in table order, and the room for
 * a batch of the "selected norm" logits. */
static fn_status alloc_scores(score_run *run, size_t cap, int batch)
{
    fn_scores *s = run->s;
    float dummy = 0;
    backend_result probe = {batch, &dummy, &dummy, &dummy, run->o->react_clip > 0 ? &dummy : NULL};
    if (run->o->fit_path)
        FN_TRY(load_fit(run->m, run->o->fit_path, &run->fit));
    score_input can = model_score_input(run->m, &probe, s->selected_block, run->o->react_clip,
                                        (score_options){run->o->gen_gamma, run->o->gen_m}, run->fit);
    const size_t need = scores_scratch(&can);
    if (need && !(run->scratch = malloc(sizeof(float) * need)))
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory for the scores of a batch");
    s->score_id = malloc(sizeof *s->score_id * (size_t)scores_count());
    for (int i = 0; s->score_id && i < scores_count(); i++)
        if (scores_available(i, &can))
            s->score_id[s->num_scores++] = i;
    s->index = malloc(sizeof *s->index * cap);
    s->label = malloc(sizeof *s->label * cap);
    s->pred = malloc(sizeof *s->pred * cap);
    s->norms = malloc(sizeof *s->norms * cap * (size_t)s->num_blocks);
    s->scores = malloc(sizeof *s->scores * cap * (size_t)(s->num_scores ? s->num_scores : 1));
    if (!s->score_id || !s->index || !s->label || !s->pred || !s->norms || !s->scores)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory for %zu rows of scores", cap);
    return FN_OK;
}

static fn_status score_batch(void *ctx, const pass_rows *rows)
{
    score_run *run = ctx;
    fn_scores *s = run->s;
    const backend_result *r = &rows->r;
    const size_t at = s->n;
    memcpy(s->norms + at * s->num_blocks, r->norms, sizeof(float) * (size_t)r->n * s->num_blocks);
    score_input in = model_score_input(run->m, r, s->selected_block, run->o->react_clip,
                                       (score_options){run->o->gen_gamma, run->o->gen_m}, run->fit);
    scores_pred(&in, s->pred + at);
    if (run->scratch)
        scores_derive(&in, run->scratch);
    for (int j = 0; j < s->num_scores; j++)
        scores_compute(s->score_id[j], &in, s->scores + (size_t)j * run->cap + at);
    for (int i = 0; i < rows->n; i++) {
        s->index[at + i] = rows->index[i];
        s->label[at + i] = run->d->items[rows->index[i]].label;
    }
    s->n += (size_t)rows->n;
    return FN_OK;
}

/* Checkpoint state: the rows so far, one layout for saving and loading. */
static fn_status score_state(score_run *run, bytes *b, int load)
{
    fn_scores *s = run->s;
    size_t n = s->n;
    bytes_io(b, &n, sizeof n, load);
    if (b->bad || n > run->cap)
        return fn_fail(FN_ERR_FORMAT, "checkpoint: %zu rows, the data has %zu images", n, run->cap);
    bytes_io(b, s->index, sizeof *s->index * n, load);
    bytes_io(b, s->label, sizeof *s->label * n, load);
    bytes_io(b, s->pred, sizeof *s->pred * n, load);
    bytes_io(b, s->norms, sizeof *s->norms * n * (size_t)s->num_blocks, load);
    for (int j = 0; j < s->num_scores; j++)
        bytes_io(b, s->scores + (size_t)j * run->cap, sizeof(float) * n, load);
    s->n = n;
    return b->bad || (load && b->at != b->len)
               ? fn_fail(FN_ERR_FORMAT, "checkpoint: rows do not fit this run")
               : FN_OK;
}

static void score_save(void *ctx, bytes *b) { score_state(ctx, b, 0); }
static fn_status score_load(void *ctx, bytes *b) { return score_state(ctx, b, 1); }

/* Every rank's rows into rank 0's arrays, in rank order = dataset order. */
static fn_status gather(score_run *run, pass_stats *stats, size_t *total, int rank, int ranks)
{
    fn_scores *s = run->s;
    const size_t n = s->n, cap = run->cap;
    fn_status st = dist_gather_rows(s->index, sizeof *s->index, n, cap, total, ranks);
    if (st == FN_OK)
        st = dist_gather_rows(s->label, sizeof *s->label, n, cap, total, ranks);
    if (st == FN_OK)
        st = dist_gather_rows(s->pred, sizeof *s->pred, n, cap, total, ranks);
    if (st == FN_OK)
        st = dist_gather_rows(s->norms, sizeof *s->norms * (size_t)s->num_blocks, n, cap, total, ranks);
    for (int j = 0; st == FN_OK && j < s->num_scores; j++)
        st = dist_gather_rows(s->scores + (size_t)j * cap, sizeof(float), n, cap, total, ranks);
    double skipped = (double)stats->skipped;
    if (st == FN_OK && (st = dist_sum(&skipped, 1, ranks)) == FN_OK)
        stats->skipped = (size_t)skipped;
    return st;
}

fn_status fn_score_dataset(fn_model *m, fn_dataset *d, const fn_run_options *o, fn_scores **out)
{
    if (!out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_score_dataset: out is NULL");
    *out = NULL;
    pass_settings ps;
    FN_TRY(pass_settings_resolve(m, d, o, 1, &ps));
    if (o->block < -1 || o->block >= m->net.n_blocks)
        return fn_fail(FN_ERR_INVALID_ARG, "block %d: the model has %d blocks", o->block, m->net.n_blocks);
    if (o->react_clip < 0 || !isfinite(o->react_clip))
        return fn_fail(FN_ERR_INVALID_ARG, "react_clip must be positive and finite");
    FN_TRY(scores_check_options((score_options){o->gen_gamma, o->gen_m}));
    fn_scores *s = fn_calloc(1, sizeof *s);
    if (!s)
        return FN_ERR_NO_MEMORY;
    s->num_blocks = m->net.n_blocks;
    s->num_classes = m->net.num_classes;
    s->selected_block = o->block;
    score_run run = {.s = s, .d = d, .m = m, .o = o, .cap = d->n};
    fn_status st = alloc_scores(&run, d->n, ps.batch);
    const int ranks = o->ranks > 1 ? o->ranks : 1;
    pass_spec spec = {.per_image = 1, .react_clip = o->react_clip, .label = "score", .on_batch = score_batch,
                      .save = score_save, .load = score_load, .ctx = &run};
    dist_shard(d->n, ps.batch, o->rank, ranks, &spec.first, &spec.count);
    pass_stats stats = {0};
    if (st == FN_OK)
        st = pass_run(m, d, o, &ps, &spec, &stats);
    size_t total = s->n;
    if ((st = dist_agree(st, ranks)) == FN_OK && ranks > 1)
        st = gather(&run, &stats, &total, o->rank, ranks);
    if (st == FN_OK && o->rank == 0)
        s->n = total;
    if (st == FN_OK && total == 0)
        st = fn_fail(FN_ERR_EMPTY, "%s: none of the %zu images could be read", d->source, d->n);
    free(run.scratch);
    fit_model_free(run.fit);
    if (st != FN_OK) {
        fn_scores_free(s);
        return st;
    }
    s->skipped = stats.skipped;
    for (int j = 1; j < s->num_scores && s->n < run.cap; j++) /* columns of n rows, packed */
        memmove(s->scores + (size_t)j * s->n, s->scores + (size_t)j * run.cap, sizeof(float) * s->n);
    if (o->ood_score && (st = threshold_flag(s, o->ood_score, o->ood_threshold)) != FN_OK) {
        fn_scores_free(s);
        return st;
    }
    *out = s;
    return FN_OK;
}

/* A CSV field: quoted when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *v)
{
    if (!strpbrk(v, ",\"\r\n")) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (; *v; v++) {
        if (*v == '"')
            fputc('"', f);
        fputc(*v, f);
    }
    fputc('"', f);
}

static void put_csv(FILE *f, const fn_scores *s, const fn_model *m, const fn_dataset *d)
{
    int labels = 0;
    for (size_t i = 0; i < s->n && !labels; i++)
        labels = s->label[i] >= 0;
    fputs(labels ? "path,label,pred" : "path,pred", f);
    for (int b = 0; b < s->num_blocks; b++)
        fprintf(f, ",fn.%s", fn_model_block_name(m, b));
    for (int j = 0; j < s->num_scores; j++)
        fprintf(f, ",%s", fn_score_name(s->score_id[j]));
    fputs(s->ood ? ",ood\n" : "\n", f);
    for (size_t i = 0; i < s->n; i++) {
        csv_field(f, d->items[s->index[i]].name);
        if (labels)
            fprintf(f, ",%d", s->label[i]);
        fprintf(f, ",%d", s->pred[i]);
        for (int b = 0; b < s->num_blocks; b++)
            fprintf(f, ",%.9g", s->norms[i * (size_t)s->num_blocks + b]);
        for (int j = 0; j < s->num_scores; j++)
            fprintf(f, ",%.9g", s->scores[(size_t)j * s->n + i]);
        if (s->ood)
            fprintf(f, ",%d", s->ood[i]);
        fputc('\n', f);
    }
}

fn_status fn_scores_write(const fn_scores *s, const fn_model *m, const fn_dataset *d,
                          const char *csv, const char *npy)
{
    if (!s || !m || !d || (!csv && !npy))
        return fn_fail(FN_ERR_INVALID_ARG, "fn_scores_write: NULL argument");
    outfile o[2];
    int n = 0;
    fn_status st = FN_OK;
    if (csv && (st = outfile_open(&o[n], csv)) == FN_OK)
        put_csv(o[n++].f, s, m, d);
    if (st == FN_OK && npy && (st = outfile_open(&o[n], npy)) == FN_OK)
        npy_put_f32(o[n++].f, s->norms, s->n, (size_t)s->num_blocks);
    if (st != FN_OK) {
        for (int i = 0; i < n; i++)
            outfile_abort(&o[i]);
        return st;
    }
    return outfile_commit_all(o, n);
}

fn_status fn_scores_write_csv(const fn_scores *s, const fn_model *m, const fn_dataset *d,
                              const char *path)
{
    return fn_scores_write(s, m, d, path ? path : "", NULL);
}

fn_status fn_output_check(const char *path) { return outfile_check(path); }
