/* long_run.c: what score and select share for runs of hours: outputs checked
 * before any work, a checkpoint beside the first output, and SIGINT/SIGTERM
 * that stop the run after the batch in hand with the checkpoint kept. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
    signal(sig, SIG_DFL); /* a second one ends the process at once */
}

int cli_prepare_run(const cli_args *a, fn_run_options *o, const char *const *outputs, int n,
                    char *checkpoint, size_t len)
{
    const char *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!outputs[i])
            continue;
        fn_status s = o->rank == 0 ? fn_output_check(outputs[i]) : FN_OK; /* rank 0 writes */
        if (s != FN_OK)
            return cli_error(s);
        first = first ? first : outputs[i];
    }
    long every = 0;
    if (cli_int(a, "checkpoint-every", 1, 1L << 30, &every))
        return 2;
    int w = o->ranks > 1 ? snprintf(checkpoint, len, "%s.ckpt.%d-of-%d", first ? first : "", o->rank, o->ranks)
                         : snprintf(checkpoint, len, "%s.ckpt", first ? first : "");
    if (first && w > 0 && (size_t)w < len) { /* each rank keeps its own shard's */
        o->checkpoint = checkpoint;
        o->resume = cli_has(a, "resume");
        o->checkpoint_every = (int)every;
        fn_status s = fn_output_check(checkpoint);
        if (s != FN_OK)
            return cli_error(s);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o->cancel = &stop_signal;
    return 0;
}

int cli_finish_run(fn_status s, const fn_run_options *o, size_t skipped)
{
    if (skipped && o->rank == 0) /* said once, even with --quiet */
        fprintf(stderr, "featurenorm: %zu unreadable image%s skipped%s\n", skipped,
                skipped == 1 ? "" : "s", o->verbose ? " (named above)" : "");
    if (s == FN_ERR_CANCELLED) {
        if (o->rank == 0)
            fprintf(stderr, "featurenorm: %s; the same command with --resume continues it\n",
                    fn_last_error());
        return 128 + (stop_signal ? stop_signal : SIGINT);
    }
    if (s != FN_OK)
        return cli_error(s);
    if (o->checkpoint)
        remove(o->checkpoint); /* the outputs are written: nothing left to resume */
    return 0;
}
