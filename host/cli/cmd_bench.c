/* cmd_bench.c: `featurenorm bench`: forward-pass throughput (FeatureNorm of
 * every block + every score) on synthetic uint8 images, no decoding, with
 * batches in flight as `score` keeps them (fn_model_time). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"

static const cli_flag flags[] = {
    CLI_MODEL_FLAGS,
    {"iters", "N", "timed batches (default 10)", 0},
    {"warmup", "N", "untimed batches first (default 2)", 0},
};

/* Seconds on a clock: CLOCK_MONOTONIC, or CLOCK_PROCESS_CPUTIME_ID (every
 * thread's CPU time, which a loaded machine inflates far less than wall time). */
static double now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_bench(int argc, char **argv)
{
    cli_args a;
    int r = cli_parse(&a, flags, sizeof flags / sizeof flags[0], argc, argv,
                      "usage: featurenorm bench --arch A --weights W [--batch N] [--iters N]\n\n"
                      "Times forward passes of one full batch of random images (uint8 in,\n"
                      "normalised by the backend), with batches in flight as score keeps\n"
                      "them, and prints images/s.");
    if (r)
        return r > 0 ? 0 : 2;
    long iters = 10, warmup = 2;
    if (cli_int(&a, "iters", 1, 1000000, &iters) || cli_int(&a, "warmup", 0, 1000000, &warmup))
        return 2;
    fn_model *m;
    if ((r = cli_load_model(&a, 0, &m)))
        return r;
    fn_model_info info;
    fn_model_get_info(m, &info);
    const int n = info.max_batch;
    size_t bytes = (size_t)n * info.input_size * info.input_size * 3;
    uint8_t *images = malloc(bytes);
    int rc = 1;
    if (!images) {
        fprintf(stderr, "featurenorm: out of memory\n");
        goto done;
    }
    srand(1);
    for (size_t i = 0; i < bytes; i++)
        images[i] = (uint8_t)(rand() >> 7);
    double t = 0, c0 = 0;
    fn_status s = warmup ? fn_model_time(m, n, images, (int)warmup, &t) : FN_OK;
    c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    if (s == FN_OK)
        s = fn_model_time(m, n, images, (int)iters, &t);
    if (s != FN_OK) {
        cli_error(s);
        goto done;
    }
    double c = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("%s %dx%d %s (%s) batch %d: %.1f images/s (%.2f ms per batch, %.2f ms of CPU time)\n", info.arch,
           info.input_size, info.input_size, info.backend, info.device, n, n * iters / t,
           1e3 * t / iters, 1e3 * c / iters);
    rc = 0;
done:
    free(images);
    fn_model_free(m);
    return rc;
}
