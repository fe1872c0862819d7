/* cuda_nets.h: what the CUDA tests that run whole nets share: deterministic
 * random weights for a net built without any (shapes only), running a net on
 * a backend directly (backend.h), and the comparisons.
 *
 * Weights: He-normal-like (uniform, variance 2 / fan_in) so that ReLU nets
 * keep their activations' scale layer after layer; a conv that adds a
 * residual gets a quarter of that variance, so that residual sums grow slowly
 * (ResNet-50's 16 blocks stay well inside FP16's range). Biases small.
 *
 * Comparisons:
 *   per element  |got - want| <= rtol * |want| + floor * rms(want's row)
 *                (norms: floor 0, each block's norm against itself)
 *   normwise     ||got - want|| / ||want|| over a whole output
 * The CPU backend (FP32) is the reference throughout. */
#ifndef FN_TEST_CUDA_NETS_H
#define FN_TEST_CUDA_NETS_H

#include <stdint.h>

#include "backend.h"
#include "net.h"
#include "test.h"

static uint64_t nets_rng = 0x9e3779b97f4a7c15ull;

static inline float nets_uniform(void) /* [-1, 1) */
{
    nets_rng = nets_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(nets_rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* Fills every parameter of a net built without weights. */
static inline void nets_fill_weights(net *nt, uint64_t seed)
{
    nets_rng = seed * 2654435761u + 1;
    for (int i = 0; i < nt->n_ops; i++) {
        net_op *op = &nt->ops[i];
        const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
        size_t nw = 0, nb = (size_t)out->c, fan_in = 1;
        if (op->kind == OP_CONV)
            fan_in = (size_t)(in->c / op->groups) * op->k * op->k, nw = (size_t)out->c * fan_in;
        else if (op->kind == OP_LINEAR)
            fan_in = net_tensor_elems(nt, op->in), nw = (size_t)out->c * fan_in;
        else if (op->kind == OP_AFFINE)
            nw = (size_t)in->c;
        else
            continue;
        free(op->w), free(op->b);
        op->w = malloc(sizeof(float) * nw);
        op->b = malloc(sizeof(float) * nb);
        REQUIRE(op->w && op->b);
        /* uniform on [-a, a] has variance a^2 / 3 */
        double var = op->kind == OP_AFFINE ? 1.0 : 2.0 / (double)fan_in;
        if (op->res >= 0)
            var /= 4;
        const float a = (float)sqrt(3 * var);
        for (size_t j = 0; j < nw; j++)
            op->w[j] = op->kind == OP_AFFINE ? 0.5f + 0.5f * (nets_uniform() + 1) : a * nets_uniform();
        for (size_t j = 0; j < nb; j++)
            op->b[j] = 0.1f * nets_uniform();
    }
    nt->has_weights = 1;
}

/* What one backend returned for a batch, copied out. */
typedef struct nets_out {
    int n, B, K, D;
    float *norms, *logits, *features, *react;
} nets_out;

static inline void nets_out_free(nets_out *o)
{
    free(o->norms), free(o->logits), free(o->features), free(o->react);
    memset(o, 0, sizeof *o);
}

static inline float *nets_copy(const float *src, size_t count)
{
    float *d = malloc(sizeof(float) * (count + 1));
    REQUIRE(d);
    if (src)
        memcpy(d, src, sizeof(float) * count);
    else
        memset(d, 0, sizeof(float) * count);
    return d;
}

/* One submit + collect on slot 0 of an existing backend. */
static inline fn_status nets_run(backend *be, const net *nt, int n, const float *x, const uint8_t *u8, float clip,
                                 nets_out *o)
{
    if (u8)
        memcpy(be->input(be, 0), u8, (size_t)n * nt->input_size * nt->input_size * 3);
    backend_request rq = {n, u8 ? NULL : x, clip};
    backend_result r;
    fn_status s = be->submit(be, 0, &rq);
    if (s != FN_OK)
        return s;
    if ((s = be->collect(be, 0, &r)) != FN_OK)
        return s;
    o->n = n, o->B = nt->n_blocks, o->K = nt->num_classes, o->D = nt->feature_dim;
    o->norms = nets_copy(r.norms, (size_t)n * o->B);
    o->logits = nets_copy(r.logits, (size_t)n * o->K);
    o->features = nets_copy(r.features, (size_t)n * o->D);
    o->react = nets_copy(r.react_logits, (size_t)n * o->K);
    return FN_OK;
}

/* Creates a backend for nt (CPU when cuda is 0), runs one batch, destroys it. */
static inline fn_status nets_forward(const net *nt, int cuda, fn_precision p, int max_batch, int n, const float *x,
                                     const uint8_t *u8, float clip, nets_out *o)
{
    backend_config cfg = {max_batch, 0, p, 0};
    backend *be = NULL;
    fn_status s = cuda ? cuda_backend_create(nt, &cfg, &be) : cpu_backend_create(nt, &cfg, &be);
    if (s != FN_OK)
        return s;
    s = nets_run(be, nt, n, x, u8, clip, o);
    be->destroy(be);
    return s;
}

/* Per element: the worst |got - want| / (rtol |want| + floor rms(row)) (pass: <= 1). */
static inline double nets_elementwise(const char *label, const char *what, const float *got, const float *want,
                                      int rows, int cols, double rtol, double floor)
{
    double worst = 0, worst_rel = 0;
    int bad_r = -1, bad_c = -1;
    for (int r = 0; r < rows; r++) {
        const float *w = want + (size_t)r * cols, *g = got + (size_t)r * cols;
        double ss = 0;
        for (int c = 0; c < cols; c++)
            ss += (double)w[c] * w[c];
        const double atol = floor * sqrt(ss / cols) + 1e-30;
        for (int c = 0; c < cols; c++) {
            double err = fabs((double)g[c] - w[c]), ratio = err / (rtol * fabs(w[c]) + atol);
            if (!(ratio <= worst)) { /* NaN lands here too */
                worst = isnan(ratio) ? INFINITY : ratio, bad_r = r, bad_c = c;
                worst_rel = err / (fabs(w[c]) + 1e-30);
            }
        }
    }
    if (!(worst <= 1)) {
        fprintf(stderr, "%s: %s[%d][%d] = %.9g, want %.9g (rel. error %.2e; %.1fx the tolerance %.0e + %.0e rms)\n",
                label, what, bad_r, bad_c, got[(size_t)bad_r * cols + bad_c], want[(size_t)bad_r * cols + bad_c],
                worst_rel, worst, rtol, floor);
        test_failures++;
    }
    return worst;
}

/* ||got - want|| / ||want|| over count values; fails above tol. */
static inline double nets_normwise(const char *label, const char *what, const float *got, const float *want,
                                   size_t count, double tol)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)got[i] - want[i];
        num += d * d, den += (double)want[i] * want[i];
    }
    double rel = sqrt(num) / (sqrt(den) + 1e-30);
    if (!(rel <= tol)) {
        fprintf(stderr, "%s: %s: normwise rel. error %.2e > %.0e\n", label, what, rel, tol);
        test_failures++;
    }
    return rel;
}

/* Tolerances per precision. FP32: per element (rtol 1e-4, floor 1e-5 of the
 * row's rms; norms 1e-4 each). Others: normwise, the rounding of their
 * storage type compounded over the layers (TF32 10-bit, FP16 11-bit, BF16
 * 8-bit significands). */
static const double nets_fp32_rtol = 1e-4, nets_fp32_floor = 1e-5;
static const double nets_normwise_tol[] = {1e-5, 5e-3, 1e-2, 5e-2};

/* got against want (the CPU's) at precision p; returns the worst measure
 * (FP32: the ratio to the tolerance; others: the normwise error). */
static inline double nets_compare(const char *label, fn_precision p, const nets_out *g, const nets_out *w, int react)
{
    double worst = 0;
    if (p == FN_PRECISION_FP32) {
        worst = fmax(worst, nets_elementwise(label, "norms", g->norms, w->norms, g->n, g->B, nets_fp32_rtol, 0));
        worst = fmax(worst, nets_elementwise(label, "logits", g->logits, w->logits, g->n, g->K, nets_fp32_rtol,
                                             nets_fp32_floor));
        worst = fmax(worst, nets_elementwise(label, "features", g->features, w->features, g->n, g->D,
                                             nets_fp32_rtol, nets_fp32_floor));
        if (react)
            worst = fmax(worst, nets_elementwise(label, "react", g->react, w->react, g->n, g->K, nets_fp32_rtol,
                                                 nets_fp32_floor));
        return worst;
    }
    const double tol = nets_normwise_tol[p];
    /* each block's norms as a column: blocks differ in scale */
    for (int b = 0; b < g->B; b++) {
        double num = 0, den = 0;
        for (int i = 0; i < g->n; i++) {
            double d = (double)g->norms[(size_t)i * g->B + b] - w->norms[(size_t)i * g->B + b];
            num += d * d, den += (double)w->norms[(size_t)i * g->B + b] * w->norms[(size_t)i * g->B + b];
        }
        double rel = sqrt(num) / (sqrt(den) + 1e-30);
        if (!(rel <= tol)) {
            fprintf(stderr, "%s: norms of block %d: normwise rel. error %.2e > %.0e\n", label, b, rel, tol);
            test_failures++;
        }
        worst = fmax(worst, rel);
    }
    worst = fmax(worst, nets_normwise(label, "logits", g->logits, w->logits, (size_t)g->n * g->K, tol));
    worst = fmax(worst, nets_normwise(label, "features", g->features, w->features, (size_t)g->n * g->D, tol));
    if (react)
        worst = fmax(worst, nets_normwise(label, "react", g->react, w->react, (size_t)g->n * g->K, tol));
    return worst;
}

#endif
