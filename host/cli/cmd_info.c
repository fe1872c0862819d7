/* cmd_info.c: `featurenorm info`: the architectures, or one network's blocks. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_flag flags[] = {
    CLI_MODEL_FLAGS,
    {"scores", NULL, "list the scores: CSV column, title, needs (logits/block/react); scripts read this", 0},
};

int cmd_info(int argc, char **argv)
{
    cli_args a;
    int r = cli_parse(&a, flags, sizeof flags / sizeof flags[0], argc, argv,
                      "usage: featurenorm info [--arch A [--weights W] | --model F.onnx [--blocks B]] | --scores\n\n"
                      "Without --arch: the architectures. With it: input, normalisation, classes,\n"
                      "backend, and every block with its output shape (C x H x W). With --model:\n"
                      "every feature map that can be a block (--blocks), '*' marking the automatic ones.");
    if (r)
        return r > 0 ? 0 : 2;
    if (cli_has(&a, "scores")) {
        for (int i = 0; i < fn_score_count(); i++)
            printf("%s\t%s\t%s\n", fn_score_name(i), fn_score_title(i), fn_score_needs(i));
        return 0;
    }
    if (!cli_has(&a, "arch") && !cli_has(&a, "model")) {
        printf("%-16s %s\n", "architecture", "description");
        for (int i = 0; i < fn_arch_count(); i++)
            printf("%-16s %s\n", fn_arch_name(i), fn_arch_description(i));
        return 0;
    }
    fn_model *m, *chosen = NULL;
    if (cli_has(&a, "model") && !cli_has(&a, "blocks")) {
        /* every candidate, marked where --blocks auto would take it */
        fn_model_options o;
        if (cli_model_options(&a, &o))
            return 2;
        o.blocks = "all";
        fn_status s = fn_model_load(&o, &m);
        if (s != FN_OK)
            return cli_error(s);
        o.blocks = "auto";
        o.verbose = 0;
        if ((s = fn_model_load(&o, &chosen)) != FN_OK)
            chosen = NULL; /* still list the candidates */
    } else if ((r = cli_load_model(&a, 1, &m))) {
        return r;
    }
    fn_model_info info;
    fn_model_get_info(m, &info);
    static const char *const presets[] = {"auto", "cifar", "imagenet"};
    printf("arch        %s\n", info.arch);
    printf("input       3 x %d x %d, preset %s, mean (%.4g, %.4g, %.4g), std (%.4g, %.4g, %.4g)\n",
           info.input_size, info.input_size, presets[info.preset], info.mean[0], info.mean[1],
           info.mean[2], info.std[0], info.std[1], info.std[2]);
    printf("classes     %d (penultimate features: %d)\n", info.num_classes, info.feature_dim);
    printf("weights     %s\n", info.has_weights ? "loaded" : "none (shapes at the default widths)");
    if (info.has_weights)
        printf("backend     %s: %s, %s, max batch %d\n", info.backend, info.device,
               fn_precision_name(info.precision), info.max_batch);
    int width = 16; /* ONNX tensor names run long */
    for (int b = 0; b < info.num_blocks; b++)
        if ((int)strlen(fn_model_block_name(m, b)) > width)
            width = (int)strlen(fn_model_block_name(m, b));
    printf("blocks      %d%s\n\n  #  %-*s %s\n", info.num_blocks,
           chosen ? " candidates (* = chosen by --blocks auto)" : "", width, "block", "output (C x H x W)");
    for (int b = 0; b < info.num_blocks; b++) {
        int c, h, w;
        const char *name = fn_model_block_name(m, b);
        fn_model_block_shape(m, b, &c, &h, &w);
        printf("%3d%s %-*s %d x %d x %d\n", b, chosen && fn_model_find_block(chosen, name) >= 0 ? "*" : " ",
               width, name, c, h, w);
    }
    fn_model_free(chosen);
    fn_model_free(m);
    return 0;
}
