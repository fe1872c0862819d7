/* eval.c: the paper's evaluation from score files: FPR95, AUROC and AUPR of
 * each score column, the ID test set against each OOD set and their average.
 * Parse (every needed column of a file in one pass), compute (metrics.c),
 * write (Markdown, JSON, CSV: committed together). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "outfile.h"

void fn_eval_free(fn_eval_result *e)
{
    if (!e)
        return;
    for (int j = 0; e->scores && j < e->num_scores; j++)
        free(e->scores[j]), free(e->titles[j]);
    for (int k = 0; e->sets && k < e->num_sets; k++)
        free(e->sets[k]);
    free(e->scores), free(e->titles), free(e->sets), free(e->metrics), free(e->id_path);
    free(e);
}

static int column_of(const fn_columns *c, const char *name)
{
    for (int j = 0; j < c->count; j++)
        if (strcmp(c->names[j], name) == 0)
            return j;
    return -1;
}

/* The paper's rows when no --score is given: the logit scores of the table,
 * the last block's FeatureNorm, the selected block's. */
static int default_scores(const fn_columns *id, const char **out)
{
    int n = 0, last_block = -1;
    for (int i = 0; i < fn_score_count(); i++)
        if (strcmp(fn_score_name(i), "fn_selected") != 0 && column_of(id, fn_score_name(i)) >= 0)
            out[n++] = fn_score_name(i);
    for (int j = 0; j < id->count; j++)
        if (strncmp(id->names[j], "fn.", 3) == 0)
            last_block = j;
    if (last_block >= 0)
        out[n++] = id->names[last_block];
    if (column_of(id, "fn_selected") >= 0)
        out[n++] = "fn_selected";
    return n;
}

static char *title_of(const char *column)
{
    char buf[256];
    int i = fn_score_find(column);
    if (i >= 0)
        snprintf(buf, sizeof buf, "%s", fn_score_title(i));
    else if (strncmp(column, "fn.", 3) == 0)
        snprintf(buf, sizeof buf, "FeatureNorm (%s)", column + 3);
    else
        snprintf(buf, sizeof buf, "%s", column);
    return fn_strdup(buf);
}

/* ID accuracy from the label and pred columns; NaN without labels. */
static double accuracy(const fn_columns *id)
{
    int l = column_of(id, "label"), p = column_of(id, "pred");
    size_t hit = 0, known = 0;
    for (size_t i = 0; l >= 0 && p >= 0 && i < id->rows; i++)
        if (id->values[l][i] >= 0)
            known++, hit += id->values[l][i] == id->values[p][i];
    return known ? (double)hit / known : NAN;
}

/* Reads the ID file: the score columns asked for (or the defaults), label, pred. */
static fn_status read_id(const char *path, const char *const *scores, int n_scores,
                         fn_columns **out)
{
    const int S = fn_score_count();
    const char **pats = malloc(sizeof *pats * (size_t)(n_scores + 2 * S + 3));
    char(*optional)[64] = malloc(sizeof *optional * (size_t)S);
    if (!pats || !optional) {
        free(pats), free(optional);
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
    }
    int n = 0;
    for (int j = 0; j < n_scores; j++)
        pats[n++] = scores[j];
    for (int i = 0; n_scores == 0 && i < S; i++) { /* the defaults: whatever of them is there */
        snprintf(optional[i], sizeof optional[i], "?%s", fn_score_name(i));
        pats[n++] = optional[i];
    }
    if (n_scores == 0)
        pats[n++] = "?fn.*";
    pats[n++] = "?label", pats[n++] = "?pred";
    fn_status s = fn_csv_read_columns(path, pats, n, out);
    free(pats), free(optional);
    return s;
}

fn_status fn_eval_files(const char *id_csv, int n_sets, const char *const *set_names,
                        const char *const *set_csvs, const char *const *scores, int n_scores,
                        fn_eval_result **out)
{
    return fn_eval_files_as(FN_EVAL_PAPER, id_csv, n_sets, set_names, set_csvs, scores, n_scores, out);
}

fn_status fn_eval_files_as(fn_eval_convention c, const char *id_csv, int n_sets,
                           const char *const *set_names, const char *const *set_csvs,
                           const char *const *scores, int n_scores, fn_eval_result **out)
{
    if (out)
        *out = NULL;
    if (!fn_eval_convention_name(c))
        return fn_fail(FN_ERR_INVALID_ARG, "fn_eval_files_as: unknown convention %d", (int)c);
    if (out)
        *out = NULL;
    if (!id_csv || n_sets < 1 || !set_names || !set_csvs || n_scores < 0 || (n_scores && !scores) || !out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_eval_files: an ID file and at least one OOD set are needed");
    fn_columns *id = NULL;
    FN_TRY(read_id(id_csv, scores, n_scores, &id));
    const char **cols = malloc(sizeof *cols * (size_t)(id->count + 1));
    fn_eval_result *e = fn_calloc(1, sizeof *e);
    fn_status s = cols && e ? FN_OK : FN_ERR_NO_MEMORY;
    int n = 0;
    if (s == FN_OK && n_scores == 0)
        n = default_scores(id, cols);
    for (int j = 0; s == FN_OK && n_scores && j < id->count; j++) /* what the patterns matched */
        if (strcmp(id->names[j], "label") && strcmp(id->names[j], "pred"))
            cols[n++] = id->names[j];
    if (s == FN_OK && n == 0)
        s = fn_fail(FN_ERR_NOT_FOUND, "%s: no score columns", id_csv);
    if (s == FN_OK) {
        e->num_scores = n, e->num_sets = n_sets, e->convention = c;
        e->scores = fn_calloc((size_t)n, sizeof *e->scores);
        e->titles = fn_calloc((size_t)n, sizeof *e->titles);
        e->sets = fn_calloc((size_t)n_sets, sizeof *e->sets);
        e->metrics = fn_calloc((size_t)n * (size_t)(n_sets + 1), sizeof *e->metrics);
        e->id_path = fn_strdup(id_csv);
        if (!e->scores || !e->titles || !e->sets || !e->metrics || !e->id_path)
            s = FN_ERR_NO_MEMORY;
    }
    for (int j = 0; s == FN_OK && j < n; j++)
        if (!(e->scores[j] = fn_strdup(cols[j])) || !(e->titles[j] = title_of(cols[j])))
            s = FN_ERR_NO_MEMORY;
    for (int k = 0; s == FN_OK && k < n_sets; k++) {
        fn_columns *ood = NULL;
        if (!(e->sets[k] = fn_strdup(set_names[k])))
            s = FN_ERR_NO_MEMORY;
        if (s == FN_OK)
            s = fn_csv_read_columns(set_csvs[k], (const char *const *)e->scores, n, &ood);
        for (int j = 0; s == FN_OK && j < n; j++) {
            fn_metrics *m = &e->metrics[(size_t)j * (n_sets + 1) + k];
            s = fn_metrics_compute_as(c, id->values[column_of(id, e->scores[j])], id->rows,
                                      ood->values[column_of(ood, e->scores[j])], ood->rows, m);
            if (s != FN_OK)
                s = fn_fail(s, "%s against %s (%s), column %s: %s", id_csv, set_csvs[k],
                            set_names[k], e->scores[j], fn_last_error());
        }
        fn_columns_free(ood);
    }
    for (int j = 0; s == FN_OK && j < n; j++) { /* the average over the OOD sets */
        fn_metrics *row = &e->metrics[(size_t)j * (n_sets + 1)], *avg = &row[n_sets];
        for (int k = 0; k < n_sets; k++) {
            avg->fpr95 += row[k].fpr95 / n_sets, avg->auroc += row[k].auroc / n_sets;
            avg->aupr_in += row[k].aupr_in / n_sets, avg->aupr_out += row[k].aupr_out / n_sets;
            avg->n_ood += row[k].n_ood;
        }
        avg->n_id = id->rows;
    }
    if (s == FN_OK) {
        e->n_id = id->rows;
        e->id_accuracy = accuracy(id);
    }
    free(cols);
    fn_columns_free(id);
    if (s != FN_OK) {
        fn_eval_free(e);
        return s;
    }
    *out = e;
    return FN_OK;
}

/* ---- writers ------------------------------------------------------------- */

static const fn_metrics *cell(const fn_eval_result *e, int score, int set)
{
    return &e->metrics[(size_t)score * (e->num_sets + 1) + set];
}

static void markdown_table(FILE *f, const fn_eval_result *e, int aupr)
{
    const int openood = e->convention == FN_EVAL_OPENOOD;
    fprintf(f, "| %s |", aupr ? "AUPR-In / AUPR-Out (%)"
                         : openood ? "FPR@95 (OOD positive, OpenOOD) / AUROC (%)"
                                   : "FPR95 (ID positive, paper) / AUROC (%)");
    for (int k = 0; k < e->num_sets; k++)
        fprintf(f, " %s |", e->sets[k]);
    fprintf(f, " Average |\n|---|");
    for (int k = 0; k <= e->num_sets; k++)
        fputs("---|", f);
    fputc('\n', f);
    for (int j = 0; j < e->num_scores; j++) {
        fprintf(f, "| %s |", e->titles[j]);
        for (int k = 0; k <= e->num_sets; k++) {
            const fn_metrics *m = cell(e, j, k);
            fprintf(f, " %.2f/%.2f |", 100 * (aupr ? m->aupr_in : m->fpr95),
                    100 * (aupr ? m->aupr_out : m->auroc));
        }
        fputc('\n', f);
    }
}

static void put_markdown(FILE *f, const fn_eval_result *e)
{
    markdown_table(f, e, 0);
    fputc('\n', f);
    markdown_table(f, e, 1);
    fprintf(f, "\nID: %s, %zu images", e->id_path, e->n_id);
    fprintf(f, "; convention: %s", e->convention == FN_EVAL_OPENOOD
                                       ? "openood (OOD positive: FPR@95 = ID rejected at 95% of OOD caught)"
                                       : "paper (ID positive: FPR95 = OOD accepted at 95% of ID kept)");
    if (!isnan(e->id_accuracy))
        fprintf(f, ", accuracy %.2f%%", 100 * e->id_accuracy);
    fputc('\n', f);
}

static void json_metrics(FILE *f, const fn_metrics *m)
{
    fprintf(f, "{\"fpr95\": %.9g, \"auroc\": %.9g, \"aupr_in\": %.9g, \"aupr_out\": %.9g, \"n_ood\": %zu}",
            m->fpr95, m->auroc, m->aupr_in, m->aupr_out, m->n_ood);
}

static void put_json(FILE *f, const fn_eval_result *e)
{
    fprintf(f, "{\"convention\": \"%s\", \"id\": ", fn_eval_convention_name(e->convention));
    json_write_string(f, e->id_path);
    fprintf(f, ", \"n_id\": %zu, \"id_accuracy\": ", e->n_id);
    if (isnan(e->id_accuracy))
        fputs("null", f);
    else
        fprintf(f, "%.9g", e->id_accuracy);
    fputs(", \"scores\": [", f);
    for (int j = 0; j < e->num_scores; j++) {
        fputs(j ? ",\n  {\"column\": " : "\n  {\"column\": ", f);
        json_write_string(f, e->scores[j]);
        fputs(", \"title\": ", f);
        json_write_string(f, e->titles[j]);
        fputs(", \"results\": {", f);
        for (int k = 0; k < e->num_sets; k++) {
            fputs(k ? ", " : "", f);
            json_write_string(f, e->sets[k]);
            fputs(": ", f);
            json_metrics(f, cell(e, j, k));
        }
        fputs("}, \"average\": ", f);
        json_metrics(f, cell(e, j, e->num_sets));
        fputc('}', f);
    }
    fputs("\n]}\n", f);
}

/* A CSV field, quoted when it must be. */
static void csv_put(FILE *f, const char *v)
{
    if (!strpbrk(v, ",\"\r\n")) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (; *v; v++)
        fputs(*v == '"' ? "\"\"" : (char[]){*v, 0}, f);
    fputc('"', f);
}

static void put_csv(FILE *f, const fn_eval_result *e)
{
    fputs("score,ood,fpr95,auroc,aupr_in,aupr_out,n_id,n_ood,convention\n", f);
    for (int j = 0; j < e->num_scores; j++)
        for (int k = 0; k <= e->num_sets; k++) {
            const fn_metrics *m = cell(e, j, k);
            csv_put(f, e->scores[j]);
            fputc(',', f);
            csv_put(f, k < e->num_sets ? e->sets[k] : "average");
            fprintf(f, ",%.9g,%.9g,%.9g,%.9g,%zu,%zu,%s\n", m->fpr95, m->auroc, m->aupr_in,
                    m->aupr_out, e->n_id, m->n_ood, fn_eval_convention_name(e->convention));
        }
}

fn_status fn_eval_write(const fn_eval_result *e, const char *markdown, const char *json,
                        const char *csv)
{
    if (!e)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_eval_write: NULL result");
    const char *paths[3] = {markdown, json, csv};
    void (*put[3])(FILE *, const fn_eval_result *) = {put_markdown, put_json, put_csv};
    outfile o[3];
    int n = 0;
    fn_status s = FN_OK;
    for (int i = 0; i < 3 && s == FN_OK; i++) {
        if (!paths[i] || strcmp(paths[i], "-") == 0)
            continue;
        if ((s = outfile_open(&o[n], paths[i])) == FN_OK)
            put[i](o[n++].f, e);
    }
    if (s != FN_OK) {
        for (int i = 0; i < n; i++)
            outfile_abort(&o[i]);
        return s;
    }
    FN_TRY(outfile_commit_all(o, n));
    for (int i = 0; i < 3; i++) /* standard output last, once the files are safe */
        if (paths[i] && strcmp(paths[i], "-") == 0)
            put[i](stdout, e);
    return FN_OK;
}
