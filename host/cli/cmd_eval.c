/* cmd_eval.c: `featurenorm eval`: FPR95 / AUROC (and AUPR) of score columns,
 * ID test set against each OOD set, in the paper's table layout: one row per
 * score, one column per OOD set plus the average, cells "FPR95/AUROC" in %. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const cli_flag flags[] = {
    {"id", "ID.csv", "scores of the ID test set (from featurenorm score)", 0},
    {"ood", "NAME=OOD.csv", "scores of an OOD set", 1},
    {"score", "COL", "score column to evaluate (default: msp, maxlogit, energy, react_energy, "
                     "the last block's fn.*, fn_selected, those present)", 1},
    {"json", "FILE", "also write every metric as JSON ('-' for stdout)", 0},
    {"csv", "FILE", "also write every metric as CSV rows", 0},
    {"markdown", "FILE", "write the table here instead of stdout", 0},
};

#define MAX_COLS 64

typedef struct column {
    char name[96];
    float *id;
    size_t n_id;
    fn_metrics *m; /* per OOD set */
    fn_metrics avg;
} column;

/* The header row of a score CSV: our writer never quotes column names. */
static int read_header(const char *path, char names[][96], int max)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "featurenorm: %s: cannot open\n", path);
        return -1;
    }
    char line[1 << 16];
    int n = 0;
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        for (char *tok = strtok(line, ","); tok && n < max; tok = strtok(NULL, ","))
            snprintf(names[n++], 96, "%s", tok);
    }
    fclose(f);
    return n;
}

static int has(char names[][96], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

static const char *display(const char *col, char *buf, size_t len)
{
    if (fn_score_find(col) >= 0)
        return fn_score_title(fn_score_find(col));
    if (strncmp(col, "fn.", 3) == 0) {
        snprintf(buf, len, "FeatureNorm (%s)", col + 3);
        return buf;
    }
    return col;
}

static int default_columns(const char *id_path, char cols[][96])
{
    char names[512][96];
    int n = read_header(id_path, names, 512), k = 0;
    if (n < 0)
        return -1;
    /* the paper's order: logit scores, the last block, the selected block */
    for (int i = 0; i < fn_score_count(); i++)
        if (strcmp(fn_score_name(i), "fn_selected") && has(names, n, fn_score_name(i)))
            snprintf(cols[k++], 96, "%s", fn_score_name(i));
    for (int i = n - 1; i >= 0; i--)
        if (strncmp(names[i], "fn.", 3) == 0) { /* the last block */
            snprintf(cols[k++], 96, "%s", names[i]);
            break;
        }
    if (has(names, n, "fn_selected"))
        snprintf(cols[k++], 96, "fn_selected");
    return k;
}

/* ID accuracy from the label and pred columns, or NAN without labels. */
static double accuracy(const char *path)
{
    char names[512][96];
    int n = read_header(path, names, 512);
    if (n < 0 || !has(names, n, "label") || !has(names, n, "pred"))
        return NAN;
    float *label = NULL, *pred = NULL;
    size_t nl = 0, np = 0, hit = 0, known = 0;
    if (fn_csv_read_column(path, "label", &label, &nl) == FN_OK &&
        fn_csv_read_column(path, "pred", &pred, &np) == FN_OK && nl == np)
        for (size_t i = 0; i < nl; i++)
            if (label[i] >= 0)
                known++, hit += label[i] == pred[i];
    free(label), free(pred);
    return known ? (double)hit / known : NAN;
}

static void write_table(FILE *f, column *cols, int n_cols, char ood_names[][64], int n_ood, int aupr)
{
    fprintf(f, "| %s |", aupr ? "AUPR-In / AUPR-Out (%)" : "FPR95 / AUROC (%)");
    for (int o = 0; o < n_ood; o++)
        fprintf(f, " %s |", ood_names[o]);
    fprintf(f, " Average |\n|---|");
    for (int o = 0; o <= n_ood; o++)
        fprintf(f, "---|");
    fputc('\n', f);
    for (int c = 0; c < n_cols; c++) {
        char buf[128];
        fprintf(f, "| %s |", display(cols[c].name, buf, sizeof buf));
        for (int o = 0; o <= n_ood; o++) {
            const fn_metrics *m = o < n_ood ? &cols[c].m[o] : &cols[c].avg;
            if (aupr)
                fprintf(f, " %.2f/%.2f |", 100 * m->aupr_in, 100 * m->aupr_out);
            else
                fprintf(f, " %.2f/%.2f |", 100 * m->fpr95, 100 * m->auroc);
        }
        fputc('\n', f);
    }
}

static void json_metrics(FILE *f, const fn_metrics *m)
{
    fprintf(f, "{\"fpr95\": %.9g, \"auroc\": %.9g, \"aupr_in\": %.9g, \"aupr_out\": %.9g, \"n_ood\": %zu}",
            m->fpr95, m->auroc, m->aupr_in, m->aupr_out, m->n_ood);
}

int cmd_eval(int argc, char **argv)
{
    cli_args a;
    int r = cli_parse(&a, flags, sizeof flags / sizeof flags[0], argc, argv,
                      "usage: featurenorm eval --id ID.csv --ood NAME=OOD.csv [--ood ...] [--score COL ...]\n\n"
                      "ID is the positive class; higher scores mean ID. FPR95 is the OOD fraction\n"
                      "accepted at the first threshold keeping 95% of ID; AUROC counts ties half.");
    if (r)
        return r > 0 ? 0 : 2;
    const char *id_path = cli_get(&a, "id");
    int n_ood = cli_count(&a, "ood");
    if (!id_path || n_ood == 0) {
        fprintf(stderr, "featurenorm: --id and at least one --ood NAME=FILE are required\n");
        return 2;
    }
    char ood_names[CLI_MAX_REPEAT][64];
    const char *ood_paths[CLI_MAX_REPEAT];
    for (int o = 0; o < n_ood; o++) {
        const char *v = cli_get_at(&a, "ood", o), *eq = strchr(v, '=');
        if (!eq || eq == v || !eq[1] || eq - v >= 64) {
            fprintf(stderr, "featurenorm: --ood %s: expected NAME=FILE\n", v);
            return 2;
        }
        snprintf(ood_names[o], sizeof ood_names[o], "%.*s", (int)(eq - v), v);
        ood_paths[o] = eq + 1;
    }
    char names[MAX_COLS][96];
    int n_cols = cli_count(&a, "score");
    for (int c = 0; c < n_cols && c < MAX_COLS; c++)
        snprintf(names[c], 96, "%s", cli_get_at(&a, "score", c));
    if (n_cols == 0 && (n_cols = default_columns(id_path, names)) <= 0) {
        if (n_cols == 0)
            fprintf(stderr, "featurenorm: %s has no score columns\n", id_path);
        return 1;
    }
    column cols[MAX_COLS];
    memset(cols, 0, sizeof cols);
    int rc = 1;
    for (int c = 0; c < n_cols; c++) {
        snprintf(cols[c].name, sizeof cols[c].name, "%s", names[c]);
        cols[c].m = calloc((size_t)n_ood, sizeof(fn_metrics));
        fn_status s = fn_csv_read_column(id_path, names[c], &cols[c].id, &cols[c].n_id);
        if (s != FN_OK || !cols[c].m) {
            cli_error(s);
            goto done;
        }
        for (int o = 0; o < n_ood; o++) {
            float *ood = NULL;
            size_t n = 0;
            s = fn_csv_read_column(ood_paths[o], names[c], &ood, &n);
            if (s == FN_OK)
                s = fn_metrics_compute(cols[c].id, cols[c].n_id, ood, n, &cols[c].m[o]);
            free(ood);
            if (s != FN_OK) {
                fprintf(stderr, "featurenorm: %s vs %s, column %s: %s\n", id_path, ood_names[o],
                        names[c], fn_last_error());
                goto done;
            }
            cols[c].avg.fpr95 += cols[c].m[o].fpr95 / n_ood;
            cols[c].avg.auroc += cols[c].m[o].auroc / n_ood;
            cols[c].avg.aupr_in += cols[c].m[o].aupr_in / n_ood;
            cols[c].avg.aupr_out += cols[c].m[o].aupr_out / n_ood;
            cols[c].avg.n_ood += cols[c].m[o].n_ood;
        }
    }
    double acc = accuracy(id_path);
    const char *md = cli_get(&a, "markdown");
    FILE *f = md ? fopen(md, "w") : stdout;
    if (!f) {
        fprintf(stderr, "featurenorm: %s: cannot write\n", md);
        goto done;
    }
    write_table(f, cols, n_cols, ood_names, n_ood, 0);
    fputc('\n', f);
    write_table(f, cols, n_cols, ood_names, n_ood, 1);
    fprintf(f, "\nID: %s, %zu images", id_path, cols[0].n_id);
    if (!isnan(acc))
        fprintf(f, ", accuracy %.2f%%", 100 * acc);
    fputc('\n', f);
    if (md)
        fclose(f);
    const char *jp = cli_get(&a, "json"), *cp = cli_get(&a, "csv");
    if (jp) {
        FILE *j = strcmp(jp, "-") == 0 ? stdout : fopen(jp, "w");
        if (!j) {
            fprintf(stderr, "featurenorm: %s: cannot write\n", jp);
            goto done;
        }
        fprintf(j, "{\"id\": \"%s\", \"n_id\": %zu, \"id_accuracy\": ", id_path, cols[0].n_id);
        if (isnan(acc))
            fputs("null", j);
        else
            fprintf(j, "%.9g", acc);
        fputs(", \"scores\": [", j);
        for (int c = 0; c < n_cols; c++) {
            fprintf(j, "%s\n  {\"column\": \"%s\", \"results\": {", c ? "," : "", cols[c].name);
            for (int o = 0; o < n_ood; o++) {
                fprintf(j, "%s\"%s\": ", o ? ", " : "", ood_names[o]);
                json_metrics(j, &cols[c].m[o]);
            }
            fputs("}, \"average\": ", j);
            json_metrics(j, &cols[c].avg);
            fputc('}', j);
        }
        fputs("\n]}\n", j);
        if (j != stdout)
            fclose(j);
    }
    if (cp) {
        FILE *c = fopen(cp, "w");
        if (!c) {
            fprintf(stderr, "featurenorm: %s: cannot write\n", cp);
            goto done;
        }
        fputs("score,ood,fpr95,auroc,aupr_in,aupr_out,n_id,n_ood\n", c);
        for (int k = 0; k < n_cols; k++)
            for (int o = 0; o <= n_ood; o++) {
                const fn_metrics *m = o < n_ood ? &cols[k].m[o] : &cols[k].avg;
                fprintf(c, "%s,%s,%.9g,%.9g,%.9g,%.9g,%zu,%zu\n", cols[k].name,
                        o < n_ood ? ood_names[o] : "average", m->fpr95, m->auroc, m->aupr_in,
                        m->aupr_out, cols[k].n_id, m->n_ood);
            }
        fclose(c);
    }
    rc = 0;
done:
    for (int c = 0; c < n_cols; c++)
        free(cols[c].id), free(cols[c].m);
    return rc;
}
