/* progress.h: images/s and ETA on stderr for long runs. */
#ifndef FN_PROGRESS_H
#define FN_PROGRESS_H

#include <stddef.h>

typedef struct progress {
    const char *label;
    size_t total;
    double start, last;
    int quiet, tty;
} progress;

double progress_now(void); /* monotonic seconds */
void progress_start(progress *p, const char *label, size_t total, int quiet);
void progress_update(progress *p, size_t done);
/* The final line: count, time and rate. */
void progress_finish(progress *p, size_t done, size_t skipped);

#endif
