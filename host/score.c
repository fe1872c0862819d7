/* score.c: score a dataset (decode -> forward -> FeatureNorm of every block and
 * the logit scores), and write the rows as CSV or .npy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "error.h"
#include "model.h"
#include "npy.h"
#include "outfile.h"
#include "pipeline.h"
#include "progress.h"
#include "run.h"

void fn_scores_free(fn_scores *s)
{
    if (!s)
        return;
    free(s->index), free(s->label), free(s->pred), free(s->norms);
    free(s->msp), free(s->maxlogit), free(s->energy), free(s->react_energy), free(s->fn_selected);
    free(s);
}

static fn_status alloc_scores(fn_scores *s, size_t cap, int react, int selected)
{
    s->index = malloc(sizeof *s->index * cap);
    s->label = malloc(sizeof *s->label * cap);
    s->pred = malloc(sizeof *s->pred * cap);
    s->norms = malloc(sizeof *s->norms * cap * (size_t)s->num_blocks);
    s->msp = malloc(sizeof(float) * cap);
    s->maxlogit = malloc(sizeof(float) * cap);
    s->energy = malloc(sizeof(float) * cap);
    s->react_energy = react ? malloc(sizeof(float) * cap) : NULL;
    s->fn_selected = selected ? malloc(sizeof(float) * cap) : NULL;
    if (!s->index || !s->label || !s->pred || !s->norms || !s->msp || !s->maxlogit || !s->energy ||
        (react && !s->react_energy) || (selected && !s->fn_selected))
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory for %zu rows of scores", cap);
    return FN_OK;
}

fn_status fn_score_dataset(fn_model *m, fn_dataset *d, const fn_run_options *o, fn_scores **out)
{
    if (!out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_score_dataset: out is NULL");
    *out = NULL;
    run_settings rs;
    FN_TRY(run_setup(m, d, o, 1, &rs));
    if (o->block >= m->net.n_blocks)
        return fn_fail(FN_ERR_INVALID_ARG, "block %d: the model has %d blocks", o->block, m->net.n_blocks);
    if (o->react_clip < 0 || !isfinite(o->react_clip))
        return fn_fail(FN_ERR_INVALID_ARG, "react_clip must be positive and finite");
    fn_scores *s = fn_calloc(1, sizeof *s);
    if (!s)
        return FN_ERR_NO_MEMORY;
    s->num_blocks = m->net.n_blocks;
    s->num_classes = m->net.num_classes;
    s->selected_block = o->block;
    pipeline *p = NULL;
    fn_status st = alloc_scores(s, d->n, o->react_clip > 0, o->block >= 0);
    if (st == FN_OK)
        st = pipeline_create(d, rs.preset, m->net.input_size, rs.batch, rs.threads, o->strict,
                             !o->verbose, &p);
    progress pr;
    progress_start(&pr, "score", d->n, !o->verbose);
    while (st == FN_OK) {
        pipeline_batch b;
        if ((st = pipeline_next(p, &b)) != FN_OK || b.n == 0)
            break;
        size_t r = s->n; /* outputs land straight in the result rows */
        fn_outputs fo = {
            .norms = s->norms + r * (size_t)s->num_blocks, .pred = s->pred + r, .msp = s->msp + r,
            .maxlogit = s->maxlogit + r, .energy = s->energy + r,
            .react_energy = s->react_energy ? s->react_energy + r : NULL, .react_clip = o->react_clip};
        if ((st = fn_model_forward_u8(m, b.n, b.images, &fo)) != FN_OK)
            break;
        for (int i = 0; i < b.n; i++) {
            s->index[r + i] = b.index[i];
            s->label[r + i] = d->items[b.index[i]].label;
            if (s->fn_selected)
                s->fn_selected[r + i] = s->norms[(r + i) * (size_t)s->num_blocks + o->block];
        }
        s->n += (size_t)b.n;
        progress_update(&pr, s->n + pipeline_skipped(p));
    }
    if (p) {
        s->skipped = pipeline_skipped(p);
        pipeline_free(p);
    }
    if (st == FN_OK && s->n == 0)
        st = fn_fail(FN_ERR_EMPTY, "%s: none of the %zu images could be read", d->source, d->n);
    if (st != FN_OK) {
        fn_scores_free(s);
        return st;
    }
    progress_finish(&pr, s->n, s->skipped);
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

fn_status fn_scores_write_csv(const fn_scores *s, const fn_model *m, const fn_dataset *d,
                              const char *path)
{
    if (!s || !m || !d)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_scores_write_csv: NULL argument");
    int labels = 0;
    for (size_t i = 0; i < s->n && !labels; i++)
        labels = s->label[i] >= 0;
    outfile o;
    FN_TRY(outfile_open(&o, path));
    FILE *f = o.f;
    fputs(labels ? "path,label,pred" : "path,pred", f);
    for (int b = 0; b < s->num_blocks; b++)
        fprintf(f, ",fn.%s", fn_model_block_name(m, b));
    if (s->fn_selected)
        fputs(",fn_selected", f);
    fputs(",msp,maxlogit,energy", f);
    fputs(s->react_energy ? ",react_energy\n" : "\n", f);
    for (size_t i = 0; i < s->n; i++) {
        csv_field(f, d->items[s->index[i]].name);
        if (labels)
            fprintf(f, ",%d", s->label[i]);
        fprintf(f, ",%d", s->pred[i]);
        for (int b = 0; b < s->num_blocks; b++)
            fprintf(f, ",%.9g", s->norms[i * (size_t)s->num_blocks + b]);
        if (s->fn_selected)
            fprintf(f, ",%.9g", s->fn_selected[i]);
        fprintf(f, ",%.9g,%.9g,%.9g", s->msp[i], s->maxlogit[i], s->energy[i]);
        if (s->react_energy)
            fprintf(f, ",%.9g", s->react_energy[i]);
        fputc('\n', f);
    }
    return outfile_commit(&o);
}

fn_status fn_scores_write_npy(const fn_scores *s, const char *path)
{
    if (!s)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_scores_write_npy: NULL scores");
    return npy_write_f32(path, s->norms, s->n, (size_t)s->num_blocks);
}
