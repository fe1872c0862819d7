/* cmd_eval.c: `featurenorm eval`: FPR95 / AUROC (and AUPR) of score columns,
 * ID test set against each OOD set, in the paper's table layout: one row per
 * score, one column per OOD set plus the average, cells "FPR95/AUROC" in %.
 * The work is fn_eval_files and fn_eval_write; this file reads the flags. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_flag flags[] = {
    {"id", "ID.csv", "scores of the ID test set (from featurenorm score)", 0},
    {"ood", "NAME=OOD.csv", "scores of an OOD set", 1},
    {"score", "COL", "score column or pattern, e.g. 'fn.*' (default: the table's scores present, "
                     "the last block's fn.*, fn_selected)", 1},
    {"json", "FILE", "also write every metric as JSON ('-' for stdout)", 0},
    {"csv", "FILE", "also write every metric as CSV rows", 0},
    {"markdown", "FILE", "write the table here instead of stdout", 0},
    {"convention", "C", "paper (ID positive, default) | openood (OOD positive: FPR@95 as OpenOOD)", 0},
};

int cmd_eval(int argc, char **argv)
{
    cli_args a;
    int r = cli_parse(&a, flags, sizeof flags / sizeof flags[0], argc, argv,
                      "usage: featurenorm eval --id ID.csv --ood NAME=OOD.csv [--ood ...] [--score COL ...]\n\n"
                      "Higher scores mean ID. The paper's convention: ID is the positive class, FPR95\n"
                      "the OOD fraction accepted at the first threshold keeping 95% of ID. OpenOOD's\n"
                      "(--convention openood): OOD is positive, FPR@95 the ID fraction rejected at the\n"
                      "first threshold catching 95% of OOD. AUROC (ties half) is the same in both.");
    if (r)
        return r > 0 ? 0 : 2;
    const char *id = cli_get(&a, "id");
    const int n_sets = cli_count(&a, "ood"), n_scores = cli_count(&a, "score");
    if (!id || n_sets == 0) {
        fprintf(stderr, "featurenorm: --id and at least one --ood NAME=FILE are required\n");
        return 2;
    }
    char names[CLI_MAX_REPEAT][256];
    const char *set_names[CLI_MAX_REPEAT], *set_files[CLI_MAX_REPEAT], *scores[CLI_MAX_REPEAT];
    for (int k = 0; k < n_sets; k++) {
        const char *v = cli_get_at(&a, "ood", k), *eq = strchr(v, '=');
        if (!eq || eq == v || !eq[1] || eq - v >= (long)sizeof names[k]) {
            fprintf(stderr, "featurenorm: --ood %s: expected NAME=FILE\n", v);
            return 2;
        }
        snprintf(names[k], sizeof names[k], "%.*s", (int)(eq - v), v);
        set_names[k] = names[k], set_files[k] = eq + 1;
    }
    for (int j = 0; j < n_scores; j++)
        scores[j] = cli_get_at(&a, "score", j);
    const char *conv = cli_get(&a, "convention");
    fn_eval_convention c = FN_EVAL_PAPER;
    if (conv && strcmp(conv, "paper") != 0 && (c = FN_EVAL_OPENOOD, strcmp(conv, "openood") != 0)) {
        fprintf(stderr, "featurenorm: --convention %s: expected paper or openood\n", conv);
        return 2;
    }
    const char *md = cli_get(&a, "markdown");
    fn_eval_result *e = NULL;
    fn_status s = fn_eval_files_as(c, id, n_sets, set_names, set_files, scores, n_scores, &e);
    if (s == FN_OK)
        s = fn_eval_write(e, md ? md : "-", cli_get(&a, "json"), cli_get(&a, "csv"));
    fn_eval_free(e);
    return s == FN_OK ? 0 : cli_error(s);
}
