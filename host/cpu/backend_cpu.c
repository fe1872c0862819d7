/* backend_cpu.c: the reference backend, plain C with OpenBLAS and OpenMP.
 *
 * Activations are stored channel-major across the batch, C x N x H x W, so
 * that a convolution of the whole batch is ONE GEMM: weights (Cout x K) times
 * the im2col matrix (K x N*OH*OW) lands directly in the output's layout, and a
 * 1x1 stride-1 convolution needs no im2col at all. The im2col matrix is built
 * a slab of output rows at a time, so its buffer stays small whatever the batch.
 * Bias, residual add and activation are applied to each slab right after its
 * GEMM, while it is still in cache. Every other op is a short loop. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "conv_direct.h"
#include "error.h"

#define COL_BUDGET (1u << 17) /* floats in a thread's im2col slab (512 KiB: fits L2) */

/* Two slots: the decode threads fill one while the other is computed. */
#define CPU_SLOTS 2

typedef struct cpu_slot {
    uint8_t *input;                    /* max_batch x S x S x 3 */
    float *norms, *logits, *features, *react_logits;
    int n, react;
} cpu_slot;

typedef struct cpu_backend {
    backend base;
    cpu_slot slot[CPU_SLOTS];
    const net *net;
    int max_batch, threads;
    float *arena;    /* net->arena_elems x max_batch */
    float *work;     /* im2col slabs, flattened linear inputs, clipped features */
    size_t work_elems;
    size_t col_stride; /* floats of one thread's im2col slab */
    float **packed;    /* per op: weights re-laid for the direct kernel, or NULL */
    float *padded;     /* zero-padded input of a direct convolution */
    float input_table[3][256]; /* uint8 -> normalised input, per channel */
    double *sums;    /* C x N per-channel norms of a tapped tensor */
} cpu_backend;

static float *tensor_at(cpu_backend *cb, int t, int n)
{
    return cb->arena + cb->net->tensors[t].offset * (size_t)n;
}

/* ---- convolution ----------------------------------------------------------- */

/* im2col for output rows [q0, q1) of the batch (row q = image q/OH, row q%OH),
 * channels [c0, c0 + cin) of x: col is (cin*k*k) x ((q1-q0)*OW). Each output
 * row splits into a zero left margin, a run read from the input and a zero
 * right margin, so the copy loop itself has no branches. */
static void im2col(const float *restrict x, float *restrict col, const net_tensor *in,
                   const net_op *op, int n, int c0, int cin, int oh_count, int ow_count, int q0,
                   int q1)
{
    const int k = op->k, s = op->stride, p = op->pad, H = in->h, W = in->w;
    const size_t cols = (size_t)(q1 - q0) * (size_t)ow_count;
    for (int kw = 0; kw < k; kw++) {
        /* valid outputs: 0 <= ow*s - p + kw < W */
        int lo = p - kw > 0 ? (p - kw + s - 1) / s : 0;
        int hi = (W - 1 + p - kw) / s + 1;
        if (W - 1 + p - kw < 0)
            hi = 0;
        if (hi > ow_count)
            hi = ow_count;
        if (lo > hi)
            lo = hi;
        for (int c = 0; c < cin; c++)
            for (int kh = 0; kh < k; kh++) {
                float *dst = col + (size_t)((c * k + kh) * k + kw) * cols;
                const float *plane = x + (size_t)(c0 + c) * (size_t)n * H * W;
                for (int q = q0; q < q1; q++, dst += ow_count) {
                    int img = q / oh_count, ih = (q % oh_count) * s - p + kh;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, sizeof(float) * (size_t)ow_count);
                        continue;
                    }
                    const float *src = plane + ((size_t)img * H + ih) * W - p + kw;
                    for (int ow = 0; ow < lo; ow++)
                        dst[ow] = 0.0f;
                    if (s == 1)
                        memcpy(dst + lo, src + lo, sizeof(float) * (size_t)(hi - lo));
                    else
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow] = src[ow * s];
                    for (int ow = hi; ow < ow_count; ow++)
                        dst[ow] = 0.0f;
                }
            }
    }
}

/* y[co][j] = act(y[co][j] + b[co] (+ res[co][j])) over columns [j0, j1) of
 * rows of stride ld. One loop per case so that each one vectorises. */
static void epilogue(float *y, const float *res, const float *b, int cout, size_t ld, size_t j0,
                     size_t j1, net_act act, float alpha)
{
    for (int co = 0; co < cout; co++) {
        float *restrict row = y + (size_t)co * ld;
        const float *restrict r = res ? res + (size_t)co * ld : NULL;
        const float bias = b[co];
        if (act == ACT_RELU && r) {
            for (size_t j = j0; j < j1; j++) {
                float v = row[j] + bias + r[j];
                row[j] = v > 0.0f ? v : 0.0f;
            }
        } else if (act == ACT_RELU) {
            for (size_t j = j0; j < j1; j++) {
                float v = row[j] + bias;
                row[j] = v > 0.0f ? v : 0.0f;
            }
        } else if (act == ACT_NONE && r) {
            for (size_t j = j0; j < j1; j++)
                row[j] += bias + r[j];
        } else {
            for (size_t j = j0; j < j1; j++)
                row[j] = net_activate(row[j] + bias + (r ? r[j] : 0.0f), act, alpha);
        }
    }
}

static void conv_depthwise(cpu_backend *cb, const net_op *op, int n)
{
    const net *nt = cb->net;
    const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
    const float *x = tensor_at(cb, op->in, n), *res = op->res >= 0 ? tensor_at(cb, op->res, n) : NULL;
    float *y = tensor_at(cb, op->out, n);
    const int k = op->k, s = op->stride, p = op->pad, H = in->h, W = in->w, OH = out->h, OW = out->w;
    const int mult = out->c / in->c;
#pragma omp parallel for num_threads(cb->threads) schedule(static) collapse(2)
    for (int co = 0; co < out->c; co++)
        for (int img = 0; img < n; img++) {
            const float *plane = x + ((size_t)(co / mult) * n + img) * H * W;
            const float *w = op->w + (size_t)co * k * k;
            size_t base = ((size_t)co * n + img) * OH * OW;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    float acc = op->b[co];
                    for (int kh = 0; kh < k; kh++) {
                        int ih = oh * s - p + kh;
                        if (ih < 0 || ih >= H)
                            continue;
                        for (int kw = 0; kw < k; kw++) {
                            int iw = ow * s - p + kw;
                            if (iw >= 0 && iw < W)
                                acc += plane[ih * W + iw] * w[kh * k + kw];
                        }
                    }
                    size_t o = base + (size_t)oh * OW + ow;
                    y[o] = net_activate(acc + (res ? res[o] : 0.0f), op->act, op->alpha);
                }
        }
}

/* Stride-1 k x k: pad the input once, then each thread computes slabs of
 * output rows straight from it (conv_direct.c). */
static void conv_direct(cpu_backend *cb, const net_op *op, const float *packed, int n)
{
    const net *nt = cb->net;
    const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
    const float *x = tensor_at(cb, op->in, n), *res = op->res >= 0 ? tensor_at(cb, op->res, n) : NULL;
    float *y = tensor_at(cb, op->out, n);
    const int planes = in->c * n, rows = n * out->h;
    const int per = (planes + cb->threads * 4 - 1) / (cb->threads * 4);
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int p0 = 0; p0 < planes; p0 += per)
        direct_pad_input(x, cb->padded, op, in, out, n, p0, p0 + per < planes ? p0 + per : planes);
    const int slab = (rows + 15) / 16; /* a fixed split: results never depend on threads */
#pragma omp parallel for num_threads(cb->threads) schedule(dynamic)
    for (int q0 = 0; q0 < rows; q0 += slab)
        direct_conv_rows(cb->padded, packed, op, in->c, out->c, in, out, n, res, y, q0,
                         q0 + slab < rows ? q0 + slab : rows);
}

/* Each thread owns slabs of output rows and runs im2col, a single-threaded
 * GEMM and the epilogue on them while they are in its cache. Threads never
 * wait on each other inside a layer, and OpenBLAS never spins threads of its
 * own against ours. */
static void conv(cpu_backend *cb, const net_op *op, int n)
{
    const net *nt = cb->net;
    const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
    const float *packed = cb->packed[op - nt->ops];
    if (packed) {
        conv_direct(cb, op, packed, n);
        return;
    }
    if (op->groups > 1 && op->groups == in->c) {
        conv_depthwise(cb, op, n);
        return;
    }
    const float *x = tensor_at(cb, op->in, n), *res = op->res >= 0 ? tensor_at(cb, op->res, n) : NULL;
    float *y = tensor_at(cb, op->out, n);
    const int G = op->groups, cin = in->c / G, cout = out->c / G, OW = out->w;
    const int K = cin * op->k * op->k;
    const size_t ld = (size_t)n * out->h * OW; /* row stride of y */
    const size_t in_plane = (size_t)n * in->h * in->w;
    const int pointwise = op->k == 1 && op->stride == 1 && op->pad == 0;
    const int rows = n * out->h;
    int slab = (int)(cb->col_stride / ((size_t)K * OW));
    int fair = (rows + cb->threads * 2 - 1) / (cb->threads * 2); /* >= 2 slabs per thread */
    slab = slab < 1 ? 1 : slab > fair ? fair : slab;
    const int slabs = (rows + slab - 1) / slab;
#pragma omp parallel for num_threads(cb->threads) schedule(dynamic) collapse(2)
    for (int g = 0; g < G; g++)
        for (int t = 0; t < slabs; t++) {
            const int q0 = t * slab, q1 = q0 + slab < rows ? q0 + slab : rows;
            const size_t j0 = (size_t)q0 * OW, cols = (size_t)(q1 - q0) * OW;
            const float *wg = op->w + (size_t)g * cout * K;
            float *yg = y + (size_t)g * cout * ld;
            const float *b; /* the K x cols matrix: x itself for a 1x1 conv */
            int ldb;
            if (pointwise) {
                b = x + (size_t)g * cin * in_plane + j0;
                ldb = (int)ld;
            } else {
                float *col = cb->work + (size_t)omp_get_thread_num() * cb->col_stride;
                im2col(x, col, in, op, n, g * cin, cin, out->h, OW, q0, q1);
                b = col;
                ldb = (int)cols;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, (int)cols, K, 1.0f, wg, K,
                        b, ldb, 0.0f, yg + j0, (int)ld);
            epilogue(yg, res ? res + (size_t)g * cout * ld : NULL, op->b + g * cout, cout, ld, j0,
                     j0 + cols, op->act, op->alpha);
        }
}

/* ---- other ops ------------------------------------------------------------- */

static void affine(cpu_backend *cb, const net_op *op, int n)
{
    const net_tensor *t = &cb->net->tensors[op->in];
    const float *x = tensor_at(cb, op->in, n);
    float *y = tensor_at(cb, op->out, n);
    const size_t plane = (size_t)n * t->h * t->w;
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int c = 0; c < t->c; c++)
        for (size_t i = 0; i < plane; i++)
            y[c * plane + i] = net_activate(x[c * plane + i] * op->w[c] + op->b[c], op->act, op->alpha);
}

static void maxpool(cpu_backend *cb, const net_op *op, int n)
{
    const net_tensor *in = &cb->net->tensors[op->in], *out = &cb->net->tensors[op->out];
    const float *x = tensor_at(cb, op->in, n);
    float *y = tensor_at(cb, op->out, n);
    const int planes = in->c * n;
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * in->h * in->w;
        float *yp = y + (size_t)pl * out->h * out->w;
        for (int oh = 0; oh < out->h; oh++)
            for (int ow = 0; ow < out->w; ow++) {
                float m = -INFINITY;
                for (int kh = 0; kh < op->k; kh++) {
                    int ih = oh * op->stride - op->pad + kh;
                    if (ih < 0 || ih >= in->h)
                        continue;
                    for (int kw = 0; kw < op->k; kw++) {
                        int iw = ow * op->stride - op->pad + kw;
                        if (iw >= 0 && iw < in->w && xp[ih * in->w + iw] > m)
                            m = xp[ih * in->w + iw];
                    }
                }
                yp[oh * out->w + ow] = m;
            }
    }
}

/* PyTorch's adaptive pooling bins: [floor(i*H/O), ceil((i+1)*H/O)). */
static void avgpool(cpu_backend *cb, const net_op *op, int n)
{
    const net_tensor *in = &cb->net->tensors[op->in], *out = &cb->net->tensors[op->out];
    const float *x = tensor_at(cb, op->in, n);
    float *y = tensor_at(cb, op->out, n);
    const int planes = in->c * n;
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * in->h * in->w;
        float *yp = y + (size_t)pl * out->h * out->w;
        for (int oh = 0; oh < out->h; oh++) {
            int h0 = oh * in->h / out->h, h1 = ((oh + 1) * in->h + out->h - 1) / out->h;
            for (int ow = 0; ow < out->w; ow++) {
                int w0 = ow * in->w / out->w, w1 = ((ow + 1) * in->w + out->w - 1) / out->w;
                double sum = 0;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        sum += xp[ih * in->w + iw];
                yp[oh * out->w + ow] = (float)(sum / ((h1 - h0) * (w1 - w0)));
            }
        }
    }
}

static void shortcut_a(cpu_backend *cb, const net_op *op, int n)
{
    const net_tensor *in = &cb->net->tensors[op->in], *out = &cb->net->tensors[op->out];
    const float *x = tensor_at(cb, op->in, n);
    float *y = tensor_at(cb, op->out, n);
    const int pad = (out->c - in->c) / 2;
    const size_t plane = (size_t)n * out->h * out->w;
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int c = 0; c < out->c; c++) {
        float *yc = y + (size_t)c * plane;
        int ci = c - pad;
        if (ci < 0 || ci >= in->c) {
            memset(yc, 0, sizeof(float) * plane);
            continue;
        }
        for (int img = 0; img < n; img++)
            for (int h = 0; h < out->h; h++)
                for (int w = 0; w < out->w; w++)
                    yc[((size_t)img * out->h + h) * out->w + w] =
                        x[(((size_t)ci * n + img) * in->h + 2 * h) * in->w + 2 * w];
    }
}

static void scale_channels(cpu_backend *cb, const net_op *op, int n)
{
    const net_tensor *t = &cb->net->tensors[op->in], *st = &cb->net->tensors[op->res];
    const float *x = tensor_at(cb, op->in, n), *s = tensor_at(cb, op->res, n);
    float *y = tensor_at(cb, op->out, n);
    const size_t hw = (size_t)t->h * t->w;
    const int broadcast = st->h * st->w == 1; /* c x 1 x 1: squeeze-excitation */
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int cn = 0; cn < t->c * n; cn++)
        for (size_t i = 0; i < hw; i++)
            y[cn * hw + i] = x[cn * hw + i] * (broadcast ? s[cn] : s[cn * hw + i]);
}

/* OP_ADD and OP_ACT: one elementwise loop over the whole tensor. */
static void elementwise(cpu_backend *cb, const net_op *op, int n)
{
    const float *x = tensor_at(cb, op->in, n);
    const float *r = op->res >= 0 ? tensor_at(cb, op->res, n) : NULL;
    float *y = tensor_at(cb, op->out, n);
    const long count = (long)(net_tensor_elems(cb->net, op->in) * (size_t)n);
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (long i = 0; i < count; i++)
        y[i] = net_activate(x[i] + (r ? r[i] : 0.0f), op->act, op->alpha);
}

/* Channel-major storage makes a channel concat a sequence of block copies. */
static void concat(cpu_backend *cb, const net_op *op, int n)
{
    float *y = tensor_at(cb, op->out, n);
    for (int j = -1; j < op->n_cat; j++) {
        int t = j < 0 ? op->in : op->cat[j];
        size_t count = net_tensor_elems(cb->net, t) * (size_t)n;
        memcpy(y, tensor_at(cb, t, n), sizeof(float) * count);
        y += count;
    }
}

/* k x k average pool; the divisor counts padding only with count_include_pad. */
static void avgpool_k(cpu_backend *cb, const net_op *op, int n)
{
    const net_tensor *in = &cb->net->tensors[op->in], *out = &cb->net->tensors[op->out];
    const float *x = tensor_at(cb, op->in, n);
    float *y = tensor_at(cb, op->out, n);
    const int planes = in->c * n;
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * in->h * in->w;
        float *yp = y + (size_t)pl * out->h * out->w;
        for (int oh = 0; oh < out->h; oh++)
            for (int ow = 0; ow < out->w; ow++) {
                float sum = 0;
                int h0 = oh * op->stride - op->pad, w0 = ow * op->stride - op->pad, count = 0;
                for (int ih = h0; ih < h0 + op->k; ih++)
                    for (int iw = w0; iw < w0 + op->k; iw++)
                        if (ih >= 0 && ih < in->h && iw >= 0 && iw < in->w)
                            sum += xp[ih * in->w + iw], count++;
                yp[oh * out->w + ow] = sum / (float)(op->count_include_pad ? op->k * op->k : count);
            }
    }
}

/* PyTorch flattens each image C-major: feature d = c*HW + hw. Returns x as a
 * D x N matrix, gathering into `work` only when HW > 1. */
static const float *as_matrix(cpu_backend *cb, int t, int n)
{
    const net_tensor *x = &cb->net->tensors[t];
    const float *src = tensor_at(cb, t, n);
    const size_t hw = (size_t)x->h * x->w;
    if (hw == 1)
        return src;
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int c = 0; c < x->c; c++)
        for (int img = 0; img < n; img++)
            for (size_t i = 0; i < hw; i++)
                cb->work[((size_t)c * hw + i) * n + img] = src[((size_t)c * n + img) * hw + i];
    return cb->work;
}

/* y (K x N) = act(W x + b) for x given as a D x N matrix; threads split the
 * images in chunks of a fixed size, so that an image's result does not depend
 * on the thread count (GEMM edge columns take other kernels). */
static void linear_matrix(cpu_backend *cb, const net_op *op, const float *x, float *y, int n)
{
    const int K = cb->net->tensors[op->out].c, D = (int)net_tensor_elems(cb->net, op->in);
    const int per = 16;
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int i0 = 0; i0 < n; i0 += per) {
        int cols = i0 + per < n ? per : n - i0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, cols, D, 1.0f, op->w, D, x + i0, n,
                    0.0f, y + i0, n);
        epilogue(y, NULL, op->b, K, (size_t)n, (size_t)i0, (size_t)(i0 + cols), op->act, op->alpha);
    }
}

/* FeatureNorm: mean over channels of the L2 norm of each channel after ReLU.
 * Sums of squares in float over short runs, then in double: the CUDA kernel's
 * FP32 accumulation is checked against this. */
static void feature_norms(cpu_backend *cb, int t, int n, float *norms, int block, int n_blocks)
{
    const net_tensor *x = &cb->net->tensors[t];
    const float *src = tensor_at(cb, t, n);
    const size_t hw = (size_t)x->h * x->w;
#pragma omp parallel for num_threads(cb->threads) schedule(static)
    for (int cn = 0; cn < x->c * n; cn++) {
        const float *p = src + (size_t)cn * hw;
        double ss = 0;
        for (size_t i0 = 0; i0 < hw; i0 += 256) {
            size_t i1 = i0 + 256 < hw ? i0 + 256 : hw;
            float run = 0;
            for (size_t i = i0; i < i1; i++) {
                float v = p[i] > 0.0f ? p[i] : 0.0f;
                run += v * v;
            }
            ss += run;
        }
        cb->sums[cn] = sqrt(ss);
    }
    for (int img = 0; img < n; img++) {
        double sum = 0;
        for (int c = 0; c < x->c; c++)
            sum += cb->sums[(size_t)c * n + img];
        norms[(size_t)img * n_blocks + block] = (float)(sum / x->c);
    }
}

/* ---- the pass -------------------------------------------------------------- */

static void load_input(cpu_backend *cb, int n, const float *x, const uint8_t *x_u8)
{
    const net *nt = cb->net;
    const size_t hw = (size_t)nt->input_size * nt->input_size;
    float *dst = tensor_at(cb, nt->input, n);
#pragma omp parallel for num_threads(cb->threads) schedule(static) collapse(2)
    for (int c = 0; c < 3; c++)
        for (int img = 0; img < n; img++) {
            float *d = dst + ((size_t)c * n + img) * hw;
            if (x) {
                memcpy(d, x + ((size_t)img * 3 + c) * hw, sizeof(float) * hw);
            } else {
                const uint8_t *s = x_u8 + (size_t)img * hw * 3 + c;
                for (size_t i = 0; i < hw; i++)
                    d[i] = cb->input_table[c][s[3 * i]];
            }
        }
}

/* Copies a K x N matrix out as N x K rows. */
static void store_rows(const float *src, int K, int n, float *dst)
{
    for (int img = 0; img < n; img++)
        for (int k = 0; k < K; k++)
            dst[(size_t)img * K + k] = src[(size_t)k * n + img];
}

static fn_status cpu_submit(backend *self, int slot, const backend_request *rq)
{
    cpu_backend *cb = (cpu_backend *)self;
    const net *nt = cb->net;
    cpu_slot *sl = &cb->slot[slot];
    const int n = rq->n;
    openblas_set_num_threads(1); /* parallelism is ours: see conv() */
    load_input(cb, n, rq->x, sl->input);
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        switch (op->kind) {
        case OP_CONV: conv(cb, op, n); break;
        case OP_AFFINE: affine(cb, op, n); break;
        case OP_MAXPOOL: maxpool(cb, op, n); break;
        case OP_AVGPOOL: avgpool(cb, op, n); break;
        case OP_AVGPOOL_K: avgpool_k(cb, op, n); break;
        case OP_SHORTCUT_A: shortcut_a(cb, op, n); break;
        case OP_SCALE: scale_channels(cb, op, n); break;
        case OP_ADD:
        case OP_ACT: elementwise(cb, op, n); break;
        case OP_CONCAT: concat(cb, op, n); break;
        case OP_LINEAR: linear_matrix(cb, op, as_matrix(cb, op->in, n), tensor_at(cb, op->out, n), n); break;
        }
        if (op->tap >= 0)
            feature_norms(cb, op->out, n, sl->norms, op->tap, nt->n_blocks);
    }
    const float *features = as_matrix(cb, nt->features, n);
    const int K = nt->num_classes;
    store_rows(tensor_at(cb, nt->logits, n), K, n, sl->logits);
    store_rows(features, nt->feature_dim, n, sl->features);
    sl->react = rq->react_clip > 0;
    if (sl->react) { /* ReAct: clip, then the last linear layer again */
        size_t count = (size_t)nt->feature_dim * n;
        float *clipped = cb->work + (features == cb->work ? count : 0);
        for (size_t i = 0; i < count; i++)
            clipped[i] = features[i] < rq->react_clip ? features[i] : rq->react_clip;
        float *react = clipped + count;
        linear_matrix(cb, &nt->ops[nt->last_linear], clipped, react, n);
        store_rows(react, K, n, sl->react_logits);
    }
    sl->n = n;
    return FN_OK;
}

static fn_status cpu_collect(backend *self, int slot, backend_result *out)
{
    const cpu_slot *sl = &((cpu_backend *)self)->slot[slot];
    *out = (backend_result){sl->n, sl->norms, sl->logits, sl->features,
                            sl->react ? sl->react_logits : NULL};
    return FN_OK;
}

static uint8_t *cpu_input(backend *self, int slot) { return ((cpu_backend *)self)->slot[slot].input; }

static void cpu_destroy(backend *self)
{
    cpu_backend *cb = (cpu_backend *)self;
    if (!cb)
        return;
    for (int i = 0; cb->packed && i < cb->net->n_ops; i++)
        free(cb->packed[i]);
    free(cb->packed);
    free(cb->padded);
    free(cb->arena);
    free(cb->work);
    free(cb->sums);
    for (int i = 0; i < CPU_SLOTS; i++) {
        cpu_slot *sl = &cb->slot[i];
        free(sl->input), free(sl->norms), free(sl->logits), free(sl->features), free(sl->react_logits);
    }
    free(cb);
}

static int alloc_slots(cpu_backend *cb, const net *nt, size_t rows)
{
    for (int i = 0; i < CPU_SLOTS; i++) {
        cpu_slot *sl = &cb->slot[i];
        sl->input = malloc(rows * nt->input_size * nt->input_size * 3);
        sl->norms = malloc(sizeof(float) * rows * nt->n_blocks);
        sl->logits = malloc(sizeof(float) * rows * nt->num_classes);
        sl->features = malloc(sizeof(float) * rows * nt->feature_dim);
        sl->react_logits = malloc(sizeof(float) * rows * nt->num_classes);
        if (!sl->input || !sl->norms || !sl->logits || !sl->features || !sl->react_logits)
            return 0;
    }
    return 1;
}

/* The largest scratch any op needs, in floats; sets the im2col slab stride. */
static size_t work_size(cpu_backend *cb, int max_batch)
{
    const net *nt = cb->net;
    size_t need = 0;
    cb->col_stride = COL_BUDGET;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
        if (op->kind == OP_CONV) { /* a slab is at least one output row */
            size_t row = (size_t)(in->c / op->groups) * op->k * op->k * out->w;
            if (row > cb->col_stride)
                cb->col_stride = row;
        } else if (op->kind == OP_LINEAR && net_tensor_elems(nt, op->in) * (size_t)max_batch > need) {
            need = net_tensor_elems(nt, op->in) * (size_t)max_batch;
        }
    }
    if (cb->col_stride * (size_t)cb->threads > need)
        need = cb->col_stride * (size_t)cb->threads;
    /* ReAct: flattened features + clipped copy + logits */
    size_t react = ((size_t)nt->feature_dim * 2 + (size_t)nt->num_classes) * (size_t)max_batch;
    return need > react ? need : react;
}

fn_status cpu_backend_create(const net *nt, const backend_config *cfg, backend **out)
{
    *out = NULL;
    cpu_backend *cb = fn_calloc(1, sizeof *cb);
    if (!cb)
        return FN_ERR_NO_MEMORY;
    cb->net = nt;
    cb->max_batch = cfg->max_batch;
    net_input_table(nt, cb->input_table);
    cb->threads = cfg->threads > 0 ? cfg->threads : omp_get_num_procs();
    cb->base.name = "cpu";
    cb->base.slots = CPU_SLOTS;
    cb->base.input = cpu_input;
    cb->base.submit = cpu_submit;
    cb->base.collect = cpu_collect;
    cb->base.destroy = cpu_destroy;
    snprintf(cb->base.device, sizeof cb->base.device, "CPU, %d threads (OpenBLAS)", cb->threads);
    if (cfg->precision != FN_PRECISION_FP32) {
        cpu_destroy(&cb->base);
        return fn_fail(FN_ERR_INVALID_ARG, "the CPU backend computes in FP32 only");
    }
    size_t widest = 0;
    for (int i = 0; i < nt->n_blocks; i++) {
        const net_tensor *t = &nt->tensors[nt->ops[nt->blocks[i].op].out];
        if ((size_t)t->c > widest)
            widest = (size_t)t->c;
    }
    size_t padded = 0; /* the largest padded input of a direct convolution */
    cb->packed = calloc((size_t)nt->n_ops, sizeof *cb->packed);
    for (int i = 0; cb->packed && i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
        if (!direct_conv_eligible(op, in))
            continue;
        int hp, wp;
        direct_padded_shape(op, in, out, &hp, &wp);
        if ((size_t)in->c * hp * wp > padded)
            padded = (size_t)in->c * hp * wp;
        if (!(cb->packed[i] = direct_pack_weights(op, in->c, out->c)))
            break;
    }
    cb->padded = padded ? malloc(sizeof(float) * padded * (size_t)cfg->max_batch) : NULL;
    size_t arena = nt->arena_elems * (size_t)cfg->max_batch;
    cb->work_elems = work_size(cb, cfg->max_batch);
    cb->arena = malloc(sizeof(float) * arena);
    cb->work = malloc(sizeof(float) * cb->work_elems);
    cb->sums = malloc(sizeof(double) * widest * (size_t)cfg->max_batch);
    int packed_ok = cb->packed != NULL;
    for (int i = 0; packed_ok && i < nt->n_ops; i++)
        packed_ok = cb->packed[i] || !direct_conv_eligible(&nt->ops[i], &nt->tensors[nt->ops[i].in]);
    int slots_ok = alloc_slots(cb, nt, (size_t)cfg->max_batch);
    if (!cb->arena || !cb->work || !cb->sums || !packed_ok || (padded && !cb->padded) || !slots_ok) {
        cpu_destroy(&cb->base);
        return fn_fail(FN_ERR_NO_MEMORY,
                       "out of host memory: %s at batch %d needs %.1f MiB of activations; "
                       "use a smaller batch",
                       nt->arch, cfg->max_batch, arena * 4.0 / (1 << 20));
    }
    *out = &cb->base;
    return FN_OK;
}
