/* cmd_score.c: `featurenorm score`: one CSV row per image with the FeatureNorm
 * of every block, the selected block's, and the logit baselines. */
#include <stdio.h>

#include "cli.h"

static const cli_flag flags[] = {
    CLI_MODEL_FLAGS,
    CLI_DATA_FLAGS,
    {"out", "FILE", "scores CSV to write", 0},
    {"npy", "FILE", "also write the N x blocks FeatureNorm matrix as .npy (float32)", 0},
    {"selection", "FILE", "selection from `featurenorm select`: adds fn_selected, react_energy, the "
                          "<score>_fn rows, and the ood column once calibrated", 0},
    {"block", "NAME", "add fn_selected for this block instead", 0},
    {"react-clip", "C", "add react_energy with features clipped at C", 0},
    {"fit", "FILE", "the detectors' statistics from `select --fit`: adds mahalanobis, fdbd", 0},
    {"gen-gamma", "G", "GEN's gamma (default 0.1, as the GEN paper)", 0},
    {"gen-m", "M", "GEN's M largest probabilities (default 10; at most the classes)", 0},
};

/* The detectors' hyperparameters from their flags (the papers' defaults otherwise). */
static int detector_flags(const cli_args *a, fn_run_options *o)
{
    double gamma = 0.1;
    long m = 10;
    if (cli_float(a, "gen-gamma", &gamma) || cli_int(a, "gen-m", 1, 1 << 20, &m))
        return -1;
    if (!(gamma > 0 && gamma <= 1000)) {
        fprintf(stderr, "featurenorm: --gen-gamma %g: must be in (0, 1000]\n", gamma);
        return -1;
    }
    o->gen_gamma = (float)gamma, o->gen_m = (int)m;
    return 0;
}

int cmd_score(int argc, char **argv)
{
    cli_args a;
    int r = cli_parse(&a, flags, sizeof flags / sizeof flags[0], argc, argv,
                      "usage: featurenorm score --arch A --weights W --data DIR --out scores.csv\n"
                      "                         [--selection selection.json | --block NAME]\n\n"
                      "Columns: path, [label], pred, fn.<block> for every block, then every score\n"
                      "of `featurenorm info --scores` whose needs are met (fn_selected and the\n"
                      "<score>_fn rows need a block), and `ood` (1 = flagged) when the selection\n"
                      "holds a threshold (featurenorm calibrate). Rows in sorted path order.");
    if (r)
        return r > 0 ? 0 : 2;
    fn_run_options ro;
    double clip = 0;
    if (cli_run_options(&a, &ro) || cli_float(&a, "react-clip", &clip) ||
        detector_flags(&a, &ro))
        return 2;
    const char *out = cli_get(&a, "out"), *npy = cli_get(&a, "npy");
    if (!out && !npy) {
        fprintf(stderr, "featurenorm: give --out (CSV) and/or --npy\n");
        return 2;
    }
    if (cli_has(&a, "selection") && cli_has(&a, "block")) {
        fprintf(stderr, "featurenorm: give --selection or --block, not both\n");
        return 2;
    }
    fn_model *m = NULL;
    fn_dataset *d = NULL;
    fn_selection *sel = NULL;
    fn_scores *sc = NULL;
    fn_status s;
    char checkpoint[4096];
    const char *outputs[2] = {out, npy};
    int rc = cli_prepare_run(&a, &ro, outputs, 2, checkpoint, sizeof checkpoint);
    if (rc || (rc = cli_load_model(&a, 0, &m)) || (rc = cli_open_dataset(&a, &d)))
        goto done;
    rc = 1;
    if (cli_has(&a, "selection")) {
        if ((s = fn_selection_read_json(cli_get(&a, "selection"), m, &sel)) != FN_OK) {
            cli_error(s);
            goto done;
        }
        ro.block = sel->selected;
        ro.react_clip = sel->react_clip;
        ro.ood_score = sel->ood_score; /* calibrated: an ood column */
        ro.ood_threshold = sel->ood_threshold;
    }
    if (cli_has(&a, "block") && (ro.block = fn_model_find_block(m, cli_get(&a, "block"))) < 0) {
        fprintf(stderr, "featurenorm: --block %s: no such block (featurenorm info %s %s lists them)\n",
                cli_get(&a, "block"), cli_has(&a, "model") ? "--model" : "--arch",
                cli_has(&a, "model") ? cli_get(&a, "model") : cli_get(&a, "arch"));
        goto done;
    }
    if (cli_has(&a, "react-clip"))
        ro.react_clip = (float)clip;
    ro.fit_path = cli_get(&a, "fit");
    if ((s = fn_score_dataset(m, d, &ro, &sc)) == FN_OK && ro.rank == 0) /* rank 0 has every row */
        s = fn_scores_write(sc, m, d, out, npy);
    if ((rc = cli_finish_run(s, &ro, sc ? sc->skipped : 0)))
        goto done;
    if (ro.verbose && ro.rank == 0)
        fprintf(stderr, "featurenorm: scored %zu images%s%s%s%s\n", sc->n, out ? " -> " : "",
                out ? out : "", npy ? " and " : "", npy ? npy : "");
done:
    fn_scores_free(sc);
    fn_selection_free(sel);
    fn_dataset_free(d);
    fn_model_free(m);
    return rc;
}
