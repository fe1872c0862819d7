/* progress.c: a progress line, redrawn in place on a terminal, else a line
 * every 10 seconds so that logs stay short. */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_start(progress *p, const char *label, size_t total, int quiet)
{
    p->label = label;
    p->total = total;
    p->start = p->last = progress_now();
    p->quiet = quiet;
    p->tty = isatty(fileno(stderr));
}

void progress_update(progress *p, size_t done)
{
    double now = progress_now();
    if (p->quiet || now - p->last < (p->tty ? 0.5 : 10.0))
        return;
    p->last = now;
    double rate = done / (now - p->start);
    double eta = rate > 0 ? (p->total - done) / rate : 0;
    fprintf(stderr, "%s%s: %zu/%zu images, %.0f img/s, ETA %d:%02d%s", p->tty ? "\r" : "", p->label,
            done, p->total, rate, (int)eta / 60, (int)eta % 60, p->tty ? "   " : "\n");
    fflush(stderr);
}

void progress_finish(progress *p, size_t done, size_t skipped)
{
    if (p->quiet)
        return;
    double t = progress_now() - p->start;
    fprintf(stderr, "%s%s: %zu images in %.1f s (%.0f img/s)", p->tty ? "\r" : "", p->label, done, t,
            t > 0 ? done / t : 0.0);
    if (skipped)
        fprintf(stderr, ", %zu unreadable skipped", skipped);
    fprintf(stderr, "%s\n", p->tty ? "          " : "");
}
