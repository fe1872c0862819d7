/* fit.c: the detectors' training statistics: gathered, reduced, written and
 * read back (safetensors, F64), and turned into what scoring needs. */
#include "fit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "error.h"
#include "outfile.h"
#include "safetensors.h"

void fit_free(fit_stats *f)
{
    if (!f)
        return;
    free(f->feature_sum), free(f->class_count), free(f->class_sum), free(f->outer);
    free(f);
}

fn_status fit_create(int K, int D, fit_stats **out)
{
    *out = NULL;
    if ((size_t)D * D * 8 > FIT_MAX_BYTES)
        return fn_fail(FN_ERR_NO_MEMORY, "the detectors' covariance of %d features takes %zu MiB, "
                       "over the cap of %zu MiB (FIT_MAX_BYTES)", D, (size_t)D * D * 8 >> 20,
                       FIT_MAX_BYTES >> 20);
    fit_stats *f = fn_calloc(1, sizeof *f);
    if (!f)
        return FN_ERR_NO_MEMORY;
    f->K = K, f->D = D;
    f->feature_sum = calloc((size_t)D, sizeof(double));
    f->class_count = calloc((size_t)K, sizeof(double));
    f->class_sum = calloc((size_t)K * D, sizeof(double));
    f->outer = calloc((size_t)D * D, sizeof(double));
    if (!f->feature_sum || !f->class_count || !f->class_sum || !f->outer) {
        fit_free(f);
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory for the detectors' statistics");
    }
    *out = f;
    return FN_OK;
}

void fit_add(fit_stats *f, const float *features, const int *label, int n)
{
    const int D = f->D;
    for (int i = 0; i < n; i++) {
        const float *x = features + (size_t)i * D;
        double *cs = f->class_sum + (size_t)label[i] * D;
        f->count += 1, f->class_count[label[i]] += 1;
        for (int a = 0; a < D; a++) {
            const double xa = x[a];
            f->feature_sum[a] += xa, cs[a] += xa;
            double *row = f->outer + (size_t)a * D;
            for (int b = 0; b <= a; b++) /* the lower half; fit_reduce/write mirror it */
                row[b] += xa * x[b];
        }
    }
}

static size_t fit_doubles(const fit_stats *f) { return 1 + f->D + f->K + (size_t)f->K * f->D + (size_t)f->D * f->D; }

/* Every array in one order, for the checkpoint and the reduction. */
static void each(fit_stats *f, void (*fn)(void *ctx, double *v, size_t n), void *ctx)
{
    fn(ctx, &f->count, 1);
    fn(ctx, f->feature_sum, (size_t)f->D);
    fn(ctx, f->class_count, (size_t)f->K);
    fn(ctx, f->class_sum, (size_t)f->K * f->D);
    fn(ctx, f->outer, (size_t)f->D * f->D);
}

typedef struct io_ctx { bytes *b; int load; } io_ctx;
static void io_one(void *ctx, double *v, size_t n)
{
    io_ctx *c = ctx;
    bytes_io(c->b, v, sizeof(double) * n, c->load);
}

void fit_state(fit_stats *f, bytes *b, int load)
{
    io_ctx c = {b, load};
    each(f, io_one, &c);
}

typedef struct pack_ctx { double *at; int unpack; } pack_ctx;
static void pack_one(void *ctx, double *v, size_t n)
{
    pack_ctx *c = ctx;
    if (c->unpack)
        memcpy(v, c->at, sizeof(double) * n);
    else
        memcpy(c->at, v, sizeof(double) * n);
    c->at += n;
}

fn_status fit_reduce(fit_stats *f, int ranks)
{
    if (ranks <= 1)
        return FN_OK;
    const size_t n = fit_doubles(f);
    if (n > 0x7fffffff)
        return fn_fail(FN_ERR_INVALID_ARG, "the detectors' statistics are too large to reduce");
    double *v = malloc(sizeof(double) * n);
    if (!v)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory reducing the detectors' statistics");
    pack_ctx c = {v, 0};
    each(f, pack_one, &c);
    fn_status s = dist_sum(v, (int)n, ranks);
    c = (pack_ctx){v, 1};
    if (s == FN_OK)
        each(f, pack_one, &c);
    free(v);
    return s;
}

/* ---- the file ------------------------------------------------------------ */

typedef struct fit_tensor {
    const char *name;
    int ndim;
    int64_t shape[2];
} fit_tensor;

/* The tensors in file order; "version" first. */
static int fit_tensors(int K, int D, fit_tensor t[6])
{
    t[0] = (fit_tensor){"version", 1, {1, 0}};
    t[1] = (fit_tensor){"count", 1, {1, 0}};
    t[2] = (fit_tensor){"feature_sum", 1, {D, 0}};
    t[3] = (fit_tensor){"class_count", 1, {K, 0}};
    t[4] = (fit_tensor){"class_sum", 2, {K, D}};
    t[5] = (fit_tensor){"outer", 2, {D, D}};
    return 6;
}

static size_t tensor_elems(const fit_tensor *t) { return (size_t)t->shape[0] * (t->ndim == 2 ? (size_t)t->shape[1] : 1); }

fn_status fit_write(const fit_stats *f, const char *path)
{
    fit_tensor t[6];
    const int n = fit_tensors(f->K, f->D, t);
    const double version = FIT_VERSION;
    const double *data[6] = {&version, &f->count, f->feature_sum, f->class_count, f->class_sum, f->outer};
    char header[1024];
    int len = snprintf(header, sizeof header, "{\"__metadata__\": {\"format\": \"featurenorm-fit\"}");
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = 8 * tensor_elems(&t[i]);
        len += t[i].ndim == 1
                   ? snprintf(header + len, sizeof header - len, ", \"%s\": {\"dtype\": \"F64\", \"shape\": [%lld], "
                              "\"data_offsets\": [%zu, %zu]}", t[i].name, (long long)t[i].shape[0], at, at + bytes)
                   : snprintf(header + len, sizeof header - len, ", \"%s\": {\"dtype\": \"F64\", \"shape\": [%lld, %lld], "
                              "\"data_offsets\": [%zu, %zu]}", t[i].name, (long long)t[i].shape[0],
                              (long long)t[i].shape[1], at, at + bytes);
        at += bytes;
    }
    len += snprintf(header + len, sizeof header - len, "}");
    while (len % 8) /* the data section starts 8-aligned */
        header[len++] = ' ';
    outfile o;
    FN_TRY(outfile_open(&o, path));
    uint64_t hlen = (uint64_t)len;
    fwrite(&hlen, 8, 1, o.f);
    fwrite(header, 1, (size_t)len, o.f);
    for (int i = 0; i < n - 1; i++)
        fwrite(data[i], 8, tensor_elems(&t[i]), o.f);
    double *row = malloc(sizeof(double) * f->D);
    if (!row) {
        outfile_abort(&o);
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory writing %s", path);
    }
    for (int a = 0; a < f->D; a++) { /* outer: fit_add's lower half, mirrored */
        for (int b = 0; b < f->D; b++)
            row[b] = f->outer[(size_t)(a >= b ? a : b) * f->D + (a >= b ? b : a)];
        fwrite(row, 8, (size_t)f->D, o.f);
    }
    free(row);
    return outfile_commit(&o);
}

fn_status fit_read(const char *path, int K, int D, fit_stats **out)
{
    *out = NULL;
    st_file *sf;
    FN_TRY(st_open(path, &sf));
    fit_stats *f = NULL;
    fit_tensor t[6];
    const int n = fit_tensors(K, D, t);
    double version = 0;
    fn_status s = st_read_f64(sf, "version", 1, t[0].shape, &version);
    if (s == FN_OK && version != FIT_VERSION)
        s = fn_fail(FN_ERR_FORMAT, "%s: fit file version %g; this featurenorm reads version %d", path,
                    version, FIT_VERSION);
    if (s == FN_OK)
        s = fit_create(K, D, &f);
    double *dst[6] = {&version, f ? &f->count : NULL, f ? f->feature_sum : NULL,
                      f ? f->class_count : NULL, f ? f->class_sum : NULL, f ? f->outer : NULL};
    for (int i = 1; s == FN_OK && i < n; i++)
        s = st_read_f64(sf, t[i].name, t[i].ndim, t[i].shape, dst[i]);
    if (s == FN_OK && sf && st_count(sf) != n)
        s = fn_fail(FN_ERR_FORMAT, "%s: %d tensors; a fit file has %d", path, st_count(sf), n);
    if (s == FN_OK && !(f->count >= 1))
        s = fn_fail(FN_ERR_FORMAT, "%s: the statistics of no images", path);
    st_close(sf);
    if (s != FN_OK) {
        fit_free(f);
        return s;
    }
    *out = f;
    return FN_OK;
}

/* ---- what scoring derives -------------------------------------------------- */

void fit_model_free(fit_model *m)
{
    if (!m)
        return;
    free(m->mean), free(m->pm), free(m->mpm), free(m->precision), free(m->wdist);
    free(m);
}

/* In place: a = L L^T (lower), then a = inverse(a). 0 when not positive definite. */
static int spd_inverse(double *a, int D)
{
    for (int j = 0; j < D; j++) { /* Cholesky, column by column */
        double d = a[(size_t)j * D + j];
        for (int k = 0; k < j; k++)
            d -= a[(size_t)j * D + k] * a[(size_t)j * D + k];
        if (!(d > 0))
            return 0;
        d = sqrt(d);
        a[(size_t)j * D + j] = d;
        for (int i = j + 1; i < D; i++) {
            double v = a[(size_t)i * D + j];
            for (int k = 0; k < j; k++)
                v -= a[(size_t)i * D + k] * a[(size_t)j * D + k];
            a[(size_t)i * D + j] = v / d;
        }
    }
    for (int j = 0; j < D; j++) { /* L^-1, in the lower half */
        a[(size_t)j * D + j] = 1 / a[(size_t)j * D + j];
        for (int i = j + 1; i < D; i++) {
            double v = 0;
            for (int k = j; k < i; k++)
                v -= a[(size_t)i * D + k] * a[(size_t)k * D + j];
            a[(size_t)i * D + j] = v / a[(size_t)i * D + i];
        }
    }
    for (int i = 0; i < D; i++) /* P = L^-T L^-1: P[i][j] = sum_k>=max(i,j) Linv[k][i] Linv[k][j] */
        for (int j = 0; j <= i; j++) {
            double v = 0;
            for (int k = i; k < D; k++)
                v += a[(size_t)k * D + i] * a[(size_t)k * D + j];
            a[(size_t)j * D + i] = v; /* the upper half, still free */
        }
    for (int i = 0; i < D; i++)
        for (int j = 0; j < i; j++)
            a[(size_t)i * D + j] = a[(size_t)j * D + i];
    return 1;
}

/* The shared class-centred covariance: (sum f f^T - sum_k n_k mu_k mu_k^T) / N. */
static void shared_covariance(const fit_stats *f, double *cov)
{
    const int D = f->D;
    for (int a = 0; a < D; a++)
        for (int b = 0; b <= a; b++) {
            double v = f->outer[(size_t)a * D + b];
            for (int k = 0; k < f->K; k++)
                if (f->class_count[k] > 0)
                    v -= f->class_sum[(size_t)k * D + a] * f->class_sum[(size_t)k * D + b] / f->class_count[k];
            cov[(size_t)a * D + b] = v / f->count;
        }
}

fn_status fit_model_make(const fit_stats *f, const float *weight, const char *path, fit_model **out)
{
    const int K = f->K, D = f->D;
    fit_model *m = fn_calloc(1, sizeof *m);
    if (!m)
        return FN_ERR_NO_MEMORY;
    m->K = K, m->D = D;
    m->mean = malloc(sizeof(double) * D);
    m->pm = calloc((size_t)K * D, sizeof(double));
    m->mpm = calloc((size_t)K, sizeof(double));
    m->precision = malloc(sizeof(double) * D * (size_t)D);
    m->wdist = malloc(sizeof(double) * K * (size_t)K);
    if (!m->mean || !m->pm || !m->mpm || !m->precision || !m->wdist) {
        fit_model_free(m);
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory for the detectors");
    }
    for (int a = 0; a < D; a++)
        m->mean[a] = f->feature_sum[a] / f->count;
    shared_covariance(f, m->precision);
    /* A ridge of 1e-6 of the mean variance (pytorch-ood adds 1e-6 I to its
     * scatter): a dead ReLU channel, constant 0, leaves the covariance
     * singular; this keeps it invertible and moves no other entry by more
     * than that ratio. */
    double trace = 0;
    for (int a = 0; a < D; a++)
        trace += m->precision[(size_t)a * D + a];
    for (int a = 0; a < D; a++)
        m->precision[(size_t)a * D + a] += 1e-6 * (trace > 0 ? trace / D : 1);
    if (!spd_inverse(m->precision, D)) {
        fit_model_free(m);
        return fn_fail(FN_ERR_INVALID_ARG, "%s: the shared covariance of the %.0f training images is "
                       "not positive definite for its %d features",
                       path, f->count, D);
    }
    for (int k = 0; k < K; k++) {
        if (!(f->class_count[k] > 0)) {
            m->mpm[k] = INFINITY; /* a class with no images: no mean, never the nearest */
            continue;
        }
        const double *sum = f->class_sum + (size_t)k * D;
        for (int a = 0; a < D; a++) {
            double v = 0;
            for (int b = 0; b < D; b++)
                v += m->precision[(size_t)a * D + b] * sum[b] / f->class_count[k];
            m->pm[(size_t)k * D + a] = v;
            m->mpm[k] += v * sum[a] / f->class_count[k];
        }
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            double s = 0;
            for (int a = 0; a < D; a++) {
                double d = (double)weight[(size_t)i * D + a] - weight[(size_t)j * D + a];
                s += d * d;
            }
            m->wdist[(size_t)i * K + j] = sqrt(s);
        }
    *out = m;
    return FN_OK;
}
