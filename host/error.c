/* error.c: status and precision names, the thread-local last-error message,
 * checked allocations. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[2048];

const char *fn_last_error(void) { return last_error; }

void fn_clear_error(void) { last_error[0] = '\0'; }

fn_status fn_fail(fn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *fn_status_name(fn_status s)
{
    switch (s) {
    case FN_OK: return "FN_OK";
    case FN_ERR_INVALID_ARG: return "FN_ERR_INVALID_ARG";
    case FN_ERR_IO: return "FN_ERR_IO";
    case FN_ERR_FORMAT: return "FN_ERR_FORMAT";
    case FN_ERR_SHAPE: return "FN_ERR_SHAPE";
    case FN_ERR_NOT_FOUND: return "FN_ERR_NOT_FOUND";
    case FN_ERR_NO_MEMORY: return "FN_ERR_NO_MEMORY";
    case FN_ERR_DEVICE_MEMORY: return "FN_ERR_DEVICE_MEMORY";
    case FN_ERR_DEVICE: return "FN_ERR_DEVICE";
    case FN_ERR_UNAVAILABLE: return "FN_ERR_UNAVAILABLE";
    case FN_ERR_EMPTY: return "FN_ERR_EMPTY";
    case FN_ERR_CANCELLED: return "FN_ERR_CANCELLED";
    }
    return "FN_ERR_UNKNOWN";
}

const char *fn_precision_name(fn_precision p)
{
    static const char *const names[] = {[FN_PRECISION_FP32] = "fp32", [FN_PRECISION_TF32] = "tf32",
                                        [FN_PRECISION_FP16] = "fp16", [FN_PRECISION_BF16] = "bf16"};
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "?";
}

const char *fn_version(void) { return FN_VERSION; }

void *fn_malloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        fn_fail(FN_ERR_NO_MEMORY, "out of host memory (asked for %zu bytes)", bytes);
    return p;
}

void *fn_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        fn_fail(FN_ERR_NO_MEMORY, "out of host memory (asked for %zu x %zu bytes)", count, size);
    return p;
}

char *fn_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = fn_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}
