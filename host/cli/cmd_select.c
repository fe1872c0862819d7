/* cmd_select.c: `featurenorm select`: NormRatio of every block over ID images
 * and their Jigsaw copies; the block with the largest one is selected. */
#include <stdio.h>

#include "cli.h"

static const cli_flag flags[] = {
    CLI_MODEL_FLAGS,
    CLI_DATA_FLAGS,
    {"out", "FILE", "selection file to write (JSON)", 0},
    {"seed", "S", "Jigsaw permutation seed (default 0)", 0},
    {"react-percentile", "P", "percentile of ID penultimate features for the ReAct clip (90)", 0},
    {"fit", "FILE", "also gather the feature detectors' statistics into FILE (score --fit); "
                    "labels from --labels data, else the predictions", 0},
};

int cmd_select(int argc, char **argv)
{
    cli_args a;
    int r = cli_parse(&a, flags, sizeof flags / sizeof flags[0], argc, argv,
                      "usage: featurenorm select --arch A --weights W --data ID_TRAIN --out selection.json\n\n"
                      "Runs the ID images and their Jigsaw-shuffled copies through the network in the\n"
                      "same batches, prints NormRatio = mean FN(ID) / FN(Jigsaw) per block and marks the\n"
                      "largest: the block whose FeatureNorm `score --selection` uses.");
    if (r)
        return r > 0 ? 0 : 2;
    fn_run_options ro;
    long seed = 0;
    double pct = 90;
    if (cli_run_options(&a, &ro) || cli_int(&a, "seed", 0, __LONG_MAX__, &seed) ||
        cli_float(&a, "react-percentile", &pct))
        return 2;
    ro.seed = (uint64_t)seed;
    ro.react_percentile = (float)pct;
    const char *out = cli_get(&a, "out");
    if (!out) {
        fprintf(stderr, "featurenorm: --out is required\n");
        return 2;
    }
    fn_model *m = NULL;
    fn_dataset *d = NULL;
    fn_selection *sel = NULL;
    char checkpoint[4096];
    const char *outputs[2] = {out, cli_get(&a, "fit")};
    ro.fit = outputs[1] != NULL;
    int rc = cli_prepare_run(&a, &ro, outputs, ro.fit ? 2 : 1, checkpoint, sizeof checkpoint);
    if (rc || (rc = cli_load_model(&a, 0, &m)) || (rc = cli_open_dataset(&a, &d)))
        goto done;
    fn_status s = fn_select_block(m, d, &ro, &sel);
    if (s == FN_OK && ro.rank == 0) /* every rank has the selection; rank 0 writes it */
        s = fn_selection_write_json(sel, m, cli_get(&a, "data"), out);
    if (s == FN_OK && ro.rank == 0 && ro.fit)
        s = fn_fit_write(sel, outputs[1]);
    if ((rc = cli_finish_run(s, &ro, sel ? sel->skipped : 0)) || ro.rank != 0)
        goto done;
    printf("%-16s %-16s %10s %12s %12s\n", "block", "output", "NormRatio", "FN(ID)", "FN(Jigsaw)");
    for (int b = 0; b < sel->num_blocks; b++) {
        int c, h, w;
        char shape[48];
        fn_model_block_shape(m, b, &c, &h, &w);
        snprintf(shape, sizeof shape, "%d x %d x %d", c, h, w);
        printf("%-16s %-16s %10.4f %12.4f %12.4f%s\n", sel->block_names[b], shape, sel->norm_ratio[b],
               sel->mean_norm_id[b], sel->mean_norm_jigsaw[b], b == sel->selected ? "  <- selected" : "");
    }
    printf("\nselected %s over %zu images (seed %llu); ReAct clip (p%.0f) %.4g; wrote %s\n",
           sel->block_names[sel->selected], sel->images, (unsigned long long)sel->seed,
           sel->react_percentile, sel->react_clip, out);
done:
    fn_selection_free(sel);
    fn_dataset_free(d);
    fn_model_free(m);
    return rc;
}
