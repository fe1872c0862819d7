/* main.c: the featurenorm command line. Each command lives in its own file
 * (cmd_*.c) and uses nothing but the public API. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"info", cmd_info, "list architectures, or a network's blocks and output shapes"},
    {"select", cmd_select, "pick the block by NormRatio on ID images and their Jigsaw copies"},
    {"score", cmd_score, "FeatureNorm of every block and the logit scores of every image"},
    {"calibrate", cmd_calibrate, "store a detector's threshold at a TPR of ID validation images"},
    {"eval", cmd_eval, "FPR95 / AUROC / AUPR tables from ID and OOD score files"},
    {"bench", cmd_bench, "time the forward pass (images/s) on synthetic images"},
};

static void usage(FILE *f)
{
    fprintf(f, "featurenorm %s: out-of-distribution detection with block-selected FeatureNorm\n\n"
               "usage: featurenorm COMMAND [options]   (featurenorm COMMAND --help for each)\n\n",
            fn_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nA typical run: select on ID training images, score ID test and OOD sets, eval.\n");
}

/* A table printed to a full disk or a closed pipe is a failure, not exit 0. */
static int finish_stdout(int rc)
{
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
        fprintf(stderr, "featurenorm: writing standard output failed: %s\n",
                errno ? strerror(errno) : "I/O error");
        return rc ? rc : 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("featurenorm %s (MPI %s)\n", fn_version(), fn_mpi_built() ? "built in" : "not built");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            /* under mpirun/srun: join the job (each rank runs this same command) */
            fn_status s = fn_mpi_init(&argc, &argv, &cli_mpi);
            if (s != FN_OK)
                return cli_error(s);
            int rc = finish_stdout(commands[i].run(argc - 1, argv + 1));
            if (rc && cli_mpi.ranks > 1)
                fn_mpi_abort(rc); /* a failed rank ends the job rather than leave it waiting */
            fn_mpi_finalize();
            return rc;
        }
    fprintf(stderr, "featurenorm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
