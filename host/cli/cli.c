/* cli.c: flag parsing shared by every command, and the common flags turned
 * into library options. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int find_flag(const cli_flag *flags, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return i;
    return -1;
}

void cli_print_flags(const cli_flag *flags, int n_flags)
{
    for (int i = 0; i < n_flags; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", flags[i].name, flags[i].arg ? " " : "",
                 flags[i].arg ? flags[i].arg : "");
        printf("  %-24s %s%s\n", left, flags[i].help, flags[i].repeat ? " (repeatable)" : "");
    }
    printf("  %-24s %s\n", "--help", "show this help");
}

int cli_parse(cli_args *a, const cli_flag *flags, int n_flags, int argc, char **argv,
              const char *usage)
{
    memset(a, 0, sizeof *a);
    a->flags = flags;
    a->n_flags = n_flags;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            printf("%s\n\nOptions:\n", usage);
            cli_print_flags(flags, n_flags);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "featurenorm: unexpected argument '%s' (see --help)\n", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = find_flag(flags, n_flags, name, len);
        if (k < 0) {
            fprintf(stderr, "featurenorm: unknown option '--%.*s' (see --help)\n", (int)len, name);
            return -1;
        }
        const char *value = "1";
        if (flags[k].arg) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                fprintf(stderr, "featurenorm: --%s needs a value (%s)\n", flags[k].name, flags[k].arg);
                return -1;
            }
        } else if (eq) {
            fprintf(stderr, "featurenorm: --%s takes no value\n", flags[k].name);
            return -1;
        }
        if (a->count[k] > 0 && !flags[k].repeat) {
            fprintf(stderr, "featurenorm: --%s given twice\n", flags[k].name);
            return -1;
        }
        if (a->count[k] == CLI_MAX_REPEAT) {
            fprintf(stderr, "featurenorm: --%s given more than %d times\n", flags[k].name, CLI_MAX_REPEAT);
            return -1;
        }
        a->values[k][a->count[k]++] = value;
    }
    return 0;
}

static int index_of(const cli_args *a, const char *name)
{
    return find_flag(a->flags, a->n_flags, name, strlen(name));
}

const char *cli_get(const cli_args *a, const char *name)
{
    int k = index_of(a, name);
    return k >= 0 && a->count[k] ? a->values[k][a->count[k] - 1] : NULL;
}

int cli_has(const cli_args *a, const char *name) { return cli_get(a, name) != NULL; }

int cli_count(const cli_args *a, const char *name)
{
    int k = index_of(a, name);
    return k >= 0 ? a->count[k] : 0;
}

const char *cli_get_at(const cli_args *a, const char *name, int i)
{
    int k = index_of(a, name);
    return k >= 0 && i < a->count[k] ? a->values[k][i] : NULL;
}

int cli_int(const cli_args *a, const char *name, long lo, long hi, long *out)
{
    const char *v = cli_get(a, name);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "featurenorm: --%s %s: expected an integer from %ld to %ld\n", name, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_float(const cli_args *a, const char *name, double *out)
{
    const char *v = cli_get(a, name);
    if (!v)
        return 0;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x)) {
        fprintf(stderr, "featurenorm: --%s %s: expected a number\n", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_triple(const char *flag, const char *v, float out[3])
{
    char *end;
    const char *p = v;
    for (int i = 0; i < 3; i++) {
        out[i] = strtof(p, &end);
        if (end == p || !isfinite(out[i]) || (i < 2 ? *end != ',' : *end != '\0')) {
            fprintf(stderr, "featurenorm: --%s %s: expected three numbers R,G,B\n", flag, v);
            return -1;
        }
        p = end + 1;
    }
    return 0;
}

static int choose(const char *flag, const char *v, const char *const *names, int n, int *out)
{
    for (int i = 0; v && i < n; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    if (!v)
        return 0;
    fprintf(stderr, "featurenorm: --%s %s: expected one of", flag, v);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %s", names[i]);
    fputc('\n', stderr);
    return -1;
}

int cli_model_options(const cli_args *a, fn_model_options *o)
{
    static const char *const backends[] = {"auto", "cpu", "cuda"};
    static const char *const precisions[] = {"fp32", "tf32", "fp16", "bf16"};
    fn_model_options_init(o);
    o->arch = cli_get(a, "arch");
    o->weights = cli_get(a, "weights");
    o->model = cli_get(a, "model");
    o->blocks = cli_get(a, "blocks");
    o->verbose = !cli_has(a, "quiet"); /* which backend, and why */
    o->allow_unused_weights = cli_has(a, "allow-unused-weights");
    int backend = 0, precision = 0;
    long batch = 0, threads = 0, size = 0, pad = 0;
    if (choose("backend", cli_get(a, "backend"), backends, 3, &backend) ||
        choose("precision", cli_get(a, "precision"), precisions, 4, &precision) ||
        cli_int(a, "batch", 1, 1 << 16, &batch) || cli_int(a, "threads", 1, 4096, &threads) ||
        cli_int(a, "input-size", 8, 4096, &size) || cli_int(a, "stem-padding", 1, 2, &pad))
        return -1;
    o->backend = (fn_backend)backend;
    o->precision = (fn_precision)precision;
    o->max_batch = (int)batch;
    o->threads = (int)threads;
    if (cli_mpi.ranks > 1) { /* one GPU per node-local rank; CPU ranks share the cores */
        int gpus = fn_cuda_device_count();
        o->device = gpus > 0 ? cli_mpi.local_rank % gpus : 0;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        if (!threads && cores > 0)
            o->threads = (int)(cores / cli_mpi.local_ranks > 0 ? cores / cli_mpi.local_ranks : 1);
    }
    o->input_size = (int)size;
    o->stem_padding = (int)pad;
    if (cli_has(a, "mean") != cli_has(a, "std")) {
        fprintf(stderr, "featurenorm: give --mean and --std together\n");
        return -1;
    }
    if (cli_has(a, "mean") &&
        (parse_triple("mean", cli_get(a, "mean"), o->mean) || parse_triple("std", cli_get(a, "std"), o->std)))
        return -1;
    if (o->model && (o->arch || o->weights)) {
        fprintf(stderr, "featurenorm: give --model or --arch/--weights, not both\n");
        return -1;
    }
    if (o->blocks && !o->model) {
        fprintf(stderr, "featurenorm: --blocks goes with --model (named architectures have fixed blocks)\n");
        return -1;
    }
    if (!o->arch && !o->model) {
        fprintf(stderr, "featurenorm: --arch or --model is required (featurenorm info lists the architectures)\n");
        return -1;
    }
    return 0;
}

fn_mpi_info cli_mpi = {0, 1, 0, 1};

int cli_error(fn_status s)
{
    char who[32] = "";
    if (cli_mpi.ranks > 1)
        snprintf(who, sizeof who, "[rank %d of %d] ", cli_mpi.rank, cli_mpi.ranks);
    fprintf(stderr, "featurenorm: %s%s\n", who, *fn_last_error() ? fn_last_error() : fn_status_name(s));
    return 1;
}

int cli_load_model(const cli_args *a, int allow_no_weights, fn_model **m)
{
    fn_model_options o;
    *m = NULL;
    if (cli_model_options(a, &o))
        return 2;
    if (!o.weights && !o.model && !allow_no_weights) {
        fprintf(stderr, "featurenorm: --weights is required\n");
        return 2;
    }
    fn_status s = fn_model_load(&o, m);
    return s == FN_OK ? 0 : cli_error(s);
}

int cli_open_dataset(const cli_args *a, fn_dataset **d)
{
    const char *path = cli_get(a, "data");
    *d = NULL;
    if (!path) {
        fprintf(stderr, "featurenorm: --data is required\n");
        return 2;
    }
    fn_dataset_options o;
    fn_dataset_options_init(&o);
    long limit = 0, every = 0;
    if (cli_int(a, "limit", 1, __LONG_MAX__, &limit) || cli_int(a, "every", 1, __LONG_MAX__, &every))
        return 2;
    o.limit = (size_t)limit;
    o.every = (size_t)every;
    o.labels = cli_has(a, "labels");
    fn_status s = fn_dataset_open(path, &o, d);
    return s == FN_OK ? 0 : cli_error(s);
}

int cli_run_options(const cli_args *a, fn_run_options *o)
{
    static const char *const presets[] = {"auto", "cifar", "imagenet"};
    fn_run_options_init(o);
    int preset = 0;
    long threads = 0;
    if (choose("preset", cli_get(a, "preset"), presets, 3, &preset) ||
        cli_int(a, "decode-threads", 1, 4096, &threads))
        return -1;
    o->preset = (fn_preset)preset;
    o->decode_threads = (int)threads;
    o->strict = cli_has(a, "strict");
    o->verbose = !cli_has(a, "quiet");
    o->profile = cli_has(a, "profile");
    o->rank = cli_mpi.rank, o->ranks = cli_mpi.ranks;
    return 0;
}
