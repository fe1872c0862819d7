/* norms.c: FeatureNorm of a tensor in the layout it was produced in, run right
 * after the op that made it, while the tensor is still in cache.
 *
 * FeatureNorm(image) = mean over channels c of ||relu(x[c])||_2. Squares are
 * summed in float over runs of at most RUN positions, runs in double: the CUDA
 * kernel's FP32 accumulation is checked against this. One loop per layout so
 * that each reads memory in order: in nChw8c/nChw16c a position holds `block`
 * consecutive channels, which become `block` float lanes. */
#include <math.h>
#include <omp.h>

#include "layout.h"
#include "plan.h"

#define RUN 256
#define MAX_BLOCK 16

/* One image, one channel block of a blocked layout (or one channel of nchw).
 * B is a constant in each instance below, so the lane loop is one vector op. */
static inline void block_sums_b(const layout *l, const void *data, int n, int cb, int c, int h,
                                int w, double *sums, const int B)
{
    const int lanes = c - cb * B < B ? c - cb * B : B;
    double ss[MAX_BLOCK] = {0};
    float run[MAX_BLOCK] = {0};
    int count = 0;
    for (int y = 0; y < h; y++) {
        size_t at = layout_at(l, n, cb * B, y, 0);
        for (int x = 0; x < w; x++, at += l->sw) {
            if (l->bf16) {
                const uint16_t *p = (const uint16_t *)data + at;
                for (int j = 0; j < B; j++) {
                    float v = bf16_to_float(p[j]);
                    v = v > 0.0f ? v : 0.0f;
                    run[j] += v * v;
                }
            } else {
                const float *p = (const float *)data + at;
                for (int j = 0; j < B; j++) {
                    float v = p[j] > 0.0f ? p[j] : 0.0f;
                    run[j] += v * v;
                }
            }
            if (++count == RUN) {
                for (int j = 0; j < B; j++)
                    ss[j] += run[j], run[j] = 0;
                count = 0;
            }
        }
    }
    for (int j = 0; j < lanes; j++)
        sums[j] = sqrt(ss[j] + run[j]);
}

static void block_sums(const layout *l, const void *data, int n, int cb, int c, int h, int w, double *sums)
{
    switch (l->block) {
    case 16: block_sums_b(l, data, n, cb, c, h, w, sums, 16); break;
    case 8: block_sums_b(l, data, n, cb, c, h, w, sums, 8); break;
    case 1: block_sums_b(l, data, n, cb, c, h, w, sums, 1); break;
    default: block_sums_b(l, data, n, cb, c, h, w, sums, l->block); break;
    }
}

/* nhwc: a position holds all channels; one channel at a time, strided. */
static void channel_sums(const layout *l, const void *data, int n, int ch, int h, int w, double *sum)
{
    double ss = 0;
    float run = 0;
    int count = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = layout_get(l, data, layout_at(l, n, ch, y, x));
            v = v > 0.0f ? v : 0.0f;
            run += v * v;
            if (++count == RUN)
                ss += run, run = 0, count = 0;
        }
    *sum = sqrt(ss + run);
}

fn_status cpu_feature_norms(const ptensor *t, const void *data, int n, int c, int h, int w, double *sums,
                        float *norms, size_t stride, int threads)
{
    layout l;
    if (!layout_of(&t->md, &l) || l.block > MAX_BLOCK)
        return FN_ERR_UNAVAILABLE; /* dnnl_ops.c reorders such tensors first */
    if (l.block > 1 || l.sc != 1) { /* blocked, or nchw (block 1) */
        const int blocks = (c + l.block - 1) / l.block;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
        for (int i = 0; i < n; i++)
            for (int cb = 0; cb < blocks; cb++)
                block_sums(&l, data, i, cb, c, h, w, sums + (size_t)i * c + (size_t)cb * l.block);
    } else {
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
                channel_sums(&l, data, i, ch, h, w, sums + (size_t)i * c + ch);
    }
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int ch = 0; ch < c; ch++)
            s += sums[(size_t)i * c + ch];
        norms[(size_t)i * stride] = (float)(s / c);
    }
    return FN_OK;
}
