/* test.h: a minimal test harness. CHECK records a failure and goes on;
 * REQUIRE stops the test; SKIP exits 77, which CTest reports as skipped. */
#ifndef FN_TEST_H
#define FN_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failures++;                                                 \
        }                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                 \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            test_failures++;                                                 \
        }                                                                    \
    } while (0)

#define REQUIRE(cond)                                                        \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s (last error: %s)\n", __FILE__, \
                    __LINE__, #cond, fn_last_error());                       \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

/* A call that must succeed. */
#define REQUIRE_OK(expr)                                                     \
    do {                                                                     \
        fn_status s_ = (expr);                                               \
        if (s_ != FN_OK) {                                                   \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr, \
                    fn_status_name(s_), fn_last_error());                    \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

/* A call that must fail with status `want` and a message containing `needle`. */
#define CHECK_FAILS(expr, want, needle)                                      \
    do {                                                                     \
        fn_status s_ = (expr);                                               \
        if (s_ != (want) || !strstr(fn_last_error(), (needle))) {            \
            fprintf(stderr, "%s:%d: %s: want %s with \"%s\", got %s: \"%s\"\n", __FILE__, \
                    __LINE__, #expr, fn_status_name(want), needle, fn_status_name(s_), \
                    fn_last_error());                                        \
            test_failures++;                                                 \
        }                                                                    \
    } while (0)

#define SKIP(...)                                                            \
    do {                                                                     \
        fprintf(stderr, "SKIP: ");                                           \
        fprintf(stderr, __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                 \
        exit(77);                                                            \
    } while (0)

/* For the CUDA tests (which include backend.h): skip unless this build has the
 * CUDA backend and a usable device; else print the device. */
#ifdef FN_WITH_CUDA
#define SKIP_WITHOUT_CUDA()                                                  \
    do {                                                                     \
        char why_[256];                                                      \
        if (!cuda_backend_usable(why_, sizeof why_))                         \
            SKIP("%s", why_);                                                \
        setvbuf(stdout, NULL, _IOLBF, 0); /* lines survive a timeout kill */ \
        printf("device: %s\n", why_);                                        \
    } while (0)
#else
#define SKIP_WITHOUT_CUDA() SKIP("this build has no CUDA backend (configure with -DFEATURENORM_CUDA=ON)")
#endif

static inline int test_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* |got - want| <= atol + rtol * |want| */
static inline int test_close(double got, double want, double rtol, double atol)
{
    return fabs(got - want) <= atol + rtol * fabs(want);
}

static inline int test_finish(const char *name)
{
    if (test_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

#endif
