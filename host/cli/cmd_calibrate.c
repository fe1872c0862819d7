/* cmd_calibrate.c: `featurenorm calibrate`: score ID validation images, take the
 * threshold of one detector that keeps a chosen share of them (TPR), and store
 * it in the selection, so that `score --selection` writes an `ood` column. */
#include <stdio.h>

#include "cli.h"

static const cli_flag flags[] = {
    CLI_MODEL_FLAGS,
    CLI_DATA_FLAGS,
    {"selection", "FILE", "selection from `featurenorm select` (the threshold is stored there)", 0},
    {"out", "FILE", "write the calibrated selection here instead of over --selection", 0},
    {"score", "NAME", "the detector (default fn_selected; featurenorm info --scores)", 0},
    {"tpr", "T", "share of ID images kept (default 0.95)", 0},
};

int cmd_calibrate(int argc, char **argv)
{
    cli_args a;
    int r = cli_parse(&a, flags, sizeof flags / sizeof flags[0], argc, argv,
                      "usage: featurenorm calibrate --arch A --weights W --data ID_VAL --selection S.json\n"
                      "                             [--score fn_selected] [--tpr 0.95] [--out S2.json]\n\n"
                      "The threshold is the largest score keeping a share TPR of the ID validation\n"
                      "images; images scoring below it are flagged OOD (score's `ood` column).");
    if (r)
        return r > 0 ? 0 : 2;
    fn_run_options ro;
    double tpr = 0.95;
    if (cli_run_options(&a, &ro) || cli_float(&a, "tpr", &tpr))
        return 2;
    const char *path = cli_get(&a, "selection"), *score = cli_get(&a, "score");
    const char *out = cli_has(&a, "out") ? cli_get(&a, "out") : path;
    if (!path) {
        fprintf(stderr, "featurenorm: --selection is required\n");
        return 2;
    }
    if (!(tpr > 0 && tpr <= 1)) {
        fprintf(stderr, "featurenorm: --tpr %g: must be in (0, 1]\n", tpr);
        return 2;
    }
    fn_model *m = NULL;
    fn_dataset *d = NULL;
    fn_selection *sel = NULL;
    fn_scores *sc = NULL;
    fn_status s = FN_OK;
    int rc = cli_load_model(&a, 0, &m);
    if (rc || (rc = cli_open_dataset(&a, &d)))
        goto done;
    if ((s = fn_output_check(out)) == FN_OK && (s = fn_selection_read_json(path, m, &sel)) == FN_OK) {
        ro.block = sel->selected, ro.react_clip = sel->react_clip;
        s = fn_score_dataset(m, d, &ro, &sc);
    }
    if (s == FN_OK && (s = fn_selection_calibrate(sel, sc, score ? score : "fn_selected", tpr)) == FN_OK &&
        ro.rank == 0)
        s = fn_selection_write_json(sel, m, NULL, out);
    if ((rc = s == FN_OK ? 0 : cli_error(s)) == 0 && ro.rank == 0)
        printf("%s: threshold %.9g keeps %.2f%% of %zu ID images; wrote %s\n", sel->ood_score,
               sel->ood_threshold, 100 * tpr, sel->ood_images, out);
done:
    fn_scores_free(sc);
    fn_selection_free(sel);
    fn_dataset_free(d);
    fn_model_free(m);
    return rc;
}
