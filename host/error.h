/* error.h: set the thread's last-error message and return a status, in one call.
 *
 *   if (!f) return fn_fail(FN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
 */
#ifndef FN_ERROR_H
#define FN_ERROR_H

#include "featurenorm.h"

#if defined(__GNUC__)
#define FN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FN_PRINTF(a, b)
#endif

fn_status fn_fail(fn_status s, const char *fmt, ...) FN_PRINTF(2, 3);
void fn_clear_error(void);

/* Checked allocations: on failure they set FN_ERR_NO_MEMORY's message. */
void *fn_malloc(size_t bytes);
void *fn_calloc(size_t count, size_t size);
char *fn_strdup(const char *s);

#define FN_TRY(expr)                     \
    do {                                 \
        fn_status fn_try_s_ = (expr);    \
        if (fn_try_s_ != FN_OK)          \
            return fn_try_s_;            \
    } while (0)

#endif
