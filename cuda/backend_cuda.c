/* backend_cuda.c: the CUDA backend: the net's op list on one GPU with cuDNN,
 * cuBLAS and the kernels in cuda/'s .cu files.
 *
 * Layouts: FP32 and TF32 keep activations NCHW float; FP16 and BF16 keep them
 * NHWC (what tensor-core convolutions want) in half or bfloat16, with float
 * accumulation everywhere and FeatureNorms always summed in float32.
 *
 * One forward pass, with no allocation and no host synchronisation inside:
 *   copy stream:    input H2D (uint8 through pinned staging, or float)
 *   compute stream: waits for the copy's event; normalise/convert the input;
 *                   every op in order (convolutions through cuDNN, fused with
 *                   bias, residual and ReLU where cuDNN allows, else followed
 *                   by our epilogue kernel; linears through cuBLAS + epilogue);
 *                   after each tapped op, its FeatureNorms into column `tap`
 *                   of the device N x B matrix; then the logit scores, ReAct,
 *                   and D2H copies of only what fn_outputs asks for;
 *   host:           waits on one event, copies pinned -> caller's arrays.
 *
 * Everything is sized and allocated once at create: the activation arena
 * (net->arena_elems x max_batch elements; tensors share memory as
 * net_plan_memory planned), weights converted to the storage type and layout,
 * one cuDNN workspace (the largest any layer's chosen algorithm needs), a
 * cuBLAS workspace, small output/scratch buffers and pinned staging. Each
 * convolution's algorithm is chosen once, at max_batch, by timing cuDNN's
 * candidates (cudnnFindConvolutionForwardAlgorithmEx) within a bounded
 * workspace, or by its heuristics with FN_CUDA_CONV_ALGO=heuristic. A smaller
 * batch keeps that choice when it fits the workspace, else asks the
 * heuristics once per batch size change.
 *
 * Environment (debugging): FN_CUDA_VERBOSE=1 prints each layer's algorithm
 * and fusion; FN_CUDA_NO_FUSE=1 turns cuDNN's fused epilogue off;
 * FN_CUDA_WORKSPACE_MB caps the convolution workspace (default 1024). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "error.h"
#include "kernels.h"
#include "norms.h"

#define ALIGN 256                       /* bytes: every buffer and parameter */
#define CUBLAS_WS_BYTES ((size_t)32 << 20) /* cuBLAS's advice for Hopper */
#define MARGIN_BYTES ((size_t)256 << 20) /* cuDNN/cuBLAS internals, fragmentation */
#define COPY_CHUNK ((size_t)2 << 20)    /* input staging: threads copy chunks while earlier ones fly */
#define MIB (1024.0 * 1024.0)

/* The kernels take net_act by value. */
_Static_assert((int)FN_ACT_NONE == (int)ACT_NONE && (int)FN_ACT_RELU == (int)ACT_RELU &&
                   (int)FN_ACT_RELU6 == (int)ACT_RELU6 && (int)FN_ACT_HARDSWISH == (int)ACT_HARDSWISH &&
                   (int)FN_ACT_HARDSIGMOID == (int)ACT_HARDSIGMOID,
               "kernels.h's activations must follow net.h's net_act");

/* What one op needs beyond the net's description. */
typedef struct op_plan {
    /* OP_CONV */
    cudnnFilterDescriptor_t wdesc;
    cudnnConvolutionDescriptor_t cdesc;
    cudnnTensorDescriptor_t bdesc;       /* 1 x C x 1 x 1 bias, for the fused call */
    cudnnConvolutionFwdAlgo_t algo_max;  /* chosen once, at max_batch */
    cudnnMathType_t math_max;
    size_t ws_max;
    cudnnConvolutionFwdAlgo_t algo;      /* in use at the current batch */
    cudnnMathType_t math;
    int fuse;                            /* cudnnConvolutionBiasActivationForward */
    int fuse_refused;                    /* cuDNN said no once: stay unfused */
    /* parameters on the device (offsets into the parameter block until upload) */
    size_t w_at, b_at, bt_at, scale_at;
    void *w;       /* CONV: KCRS (NCHW) or KRSC (NHWC); LINEAR: K x D, D in the tensor's order */
    float *b;      /* float bias (AFFINE: shift) */
    void *b_typed; /* CONV: bias in the storage type, for the fused call */
    float *scale;  /* AFFINE */
} op_plan;

/* Offsets of the per-forward outputs (device and pinned host alike) and of
 * the device-only scratch after them, for a given batch. */
typedef struct misc_layout {
    size_t norms, logits, react, features, pred, msp, maxlogit, energy, react_energy;
    size_t out_bytes; /* the part mirrored in pinned memory */
    size_t lin_acc, norm_scratch, clip;
    size_t bytes;
} misc_layout;

typedef struct cuda_backend {
    backend base;
    const net *net;
    int max_batch, cur_n, device, threads;
    int verbose, no_fuse, heuristic;
    fn_precision precision;
    fn_dtype dtype;
    fn_layout layout;
    size_t esize;
    cudnnDataType_t cudnn_type;
    cudaDataType_t blas_type;
    float table[3][256];

    cudaStream_t compute, copy;
    cudaEvent_t input_ready, done;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    cudnnActivationDescriptor_t relu, identity;
    cudnnTensorDescriptor_t *tdesc; /* one per net tensor, at batch cur_n */
    op_plan *ops;

    /* device memory */
    char *arena, *params, *misc;
    uint8_t *u8_dev;
    float *in_f32; /* FP16/BF16: the float API's input before conversion */
    void *workspace, *cublas_ws;
    size_t ws_bytes, params_bytes;
    misc_layout ml;
    /* pinned host memory */
    uint8_t *u8_host;
    char *out_host;

    /* for the out-of-memory message */
    size_t free_at_create, total_mem;
    char gpu_name[96];
} cuda_backend;

/* ---- small helpers --------------------------------------------------------- */

static size_t take(size_t *top, size_t bytes)
{
    size_t at = (*top + ALIGN - 1) / ALIGN * ALIGN;
    *top = at + bytes;
    return at;
}

static void *tensor_ptr(const cuda_backend *cb, int t)
{
    return cb->arena + cb->net->tensors[t].offset * (size_t)cb->max_batch * cb->esize;
}

static fn_shape shape_of(const cuda_backend *cb, int t, int n)
{
    const net_tensor *x = &cb->net->tensors[t];
    fn_shape s = {n, x->c, x->h, x->w, cb->dtype, cb->layout};
    return s;
}

static int env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* ---- usability ------------------------------------------------------------- */

int cuda_backend_usable(char *why, size_t why_len)
{
    int count = 0, drv = 0, rt = 0;
    /* Neither call needs a device; both just read versions (0: no driver). */
    if (cudaDriverGetVersion(&drv) != cudaSuccess)
        drv = 0;
    if (cudaRuntimeGetVersion(&rt) != cudaSuccess)
        rt = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (drv == 0)
            snprintf(why, why_len, "no CUDA device (cudaGetDeviceCount: %s; no NVIDIA driver is loaded)",
                     cudaGetErrorString(e));
        else if (e == cudaErrorInsufficientDriver || drv < rt)
            snprintf(why, why_len, "CUDA driver too old: it supports CUDA %d.%d, this build needs %d.%d "
                     "(cudaGetDeviceCount: %s)", drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10,
                     cudaGetErrorString(e));
        else
            snprintf(why, why_len, "no CUDA device (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        return 0;
    }
    if (count <= 0) {
        snprintf(why, why_len, "no CUDA device (cudaGetDeviceCount found none)");
        return 0;
    }
    /* Within one major version the runtime runs on an older driver (minor
     * version compatibility); across majors it does not. */
    if (drv / 1000 < rt / 1000) {
        snprintf(why, why_len, "CUDA driver too old: it supports CUDA %d.%d, this build needs %d.x",
                 drv / 1000, drv % 1000 / 10, rt / 1000);
        return 0;
    }
    int dev = 0;
    struct cudaDeviceProp prop;
    if ((e = cudaGetDevice(&dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(why, why_len, "cannot query CUDA device %d: %s", dev, cudaGetErrorString(e));
        return 0;
    }
    if (prop.major < 8) { /* the build targets sm_80 and newer (bf16, cp.async era) */
        snprintf(why, why_len, "%s has compute capability %d.%d; this build needs 8.0 or newer",
                 prop.name, prop.major, prop.minor);
        return 0;
    }
    /* libcudnn is linked at load time, so it is loadable if we are running;
     * it must still be the major version we were built against. */
    size_t dnn = cudnnGetVersion();
    if (dnn / 10000 != CUDNN_MAJOR) {
        snprintf(why, why_len, "cuDNN %zu.%zu is loaded but this build needs cuDNN %d", dnn / 10000,
                 dnn % 10000 / 100, CUDNN_MAJOR);
        return 0;
    }
    /* cuDNN 9 loads its convolution and ops sub-libraries on first use: load
     * them now, so that a missing libcudnn_cnn/ops says so here. */
    cudnnStatus_t s = cudnnOpsVersionCheck();
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnCnnVersionCheck();
    if (s != CUDNN_STATUS_SUCCESS) {
        snprintf(why, why_len, "cuDNN's ops/cnn sub-libraries are not usable: %s", cudnnGetErrorString(s));
        return 0;
    }
    snprintf(why, why_len, "%s", prop.name);
    return 1;
}

/* ---- memory sizing ------------------------------------------------------------ */

static size_t norm_scratch_floats(const cuda_backend *cb, int b)
{
    const net *nt = cb->net;
    size_t most = 0;
    for (int i = 0; i < nt->n_blocks; i++) {
        size_t f = fn_norms_scratch_floats(shape_of(cb, nt->ops[nt->blocks[i].op].out, b));
        if (f > most)
            most = f;
    }
    return most;
}

static misc_layout plan_misc(const cuda_backend *cb, int b)
{
    const net *nt = cb->net;
    const size_t B = (size_t)b, K = (size_t)nt->num_classes, D = (size_t)nt->feature_dim;
    size_t widest_linear = 0;
    for (int i = 0; i < nt->n_ops; i++)
        if (nt->ops[i].kind == OP_LINEAR && (size_t)nt->tensors[nt->ops[i].out].c > widest_linear)
            widest_linear = (size_t)nt->tensors[nt->ops[i].out].c;
    misc_layout m;
    size_t top = 0;
    m.norms = take(&top, B * (size_t)nt->n_blocks * 4);
    m.logits = take(&top, B * K * 4);
    m.react = take(&top, B * K * 4);
    m.features = take(&top, B * D * 4);
    m.pred = take(&top, B * sizeof(int));
    m.msp = take(&top, B * 4);
    m.maxlogit = take(&top, B * 4);
    m.energy = take(&top, B * 4);
    m.react_energy = take(&top, B * 4);
    m.out_bytes = top;
    m.lin_acc = take(&top, B * widest_linear * 4);
    m.norm_scratch = take(&top, norm_scratch_floats(cb, b) * 4);
    m.clip = take(&top, B * D * cb->esize);
    m.bytes = take(&top, 0);
    return m;
}

/* Device bytes that grow with the batch: arena, outputs and scratch, input staging. */
static size_t batch_bytes(const cuda_backend *cb, int b)
{
    const net *nt = cb->net;
    const size_t S = (size_t)nt->input_size, in = (size_t)b * 3 * S * S;
    size_t top = 0;
    take(&top, cb->net->arena_elems * (size_t)b * cb->esize);
    take(&top, plan_misc(cb, b).bytes);
    take(&top, in);                                /* uint8 input */
    if (cb->dtype != FN_DT_F32)
        take(&top, in * sizeof(float));            /* float input before conversion */
    return take(&top, 0);
}

static size_t fixed_bytes(const cuda_backend *cb)
{
    return cb->params_bytes + CUBLAS_WS_BYTES + MARGIN_BYTES;
}

/* The largest batch whose buffers fit in what was free at create. */
static int largest_batch(const cuda_backend *cb)
{
    int lo = 0, hi = cb->max_batch;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (fixed_bytes(cb) + batch_bytes(cb, mid) <= cb->free_at_create)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static fn_status out_of_memory(const cuda_backend *cb, const char *what, size_t bytes)
{
    const size_t need = fixed_bytes(cb) + batch_bytes(cb, cb->max_batch);
    const double per_image = (double)(batch_bytes(cb, cb->max_batch) - batch_bytes(cb, 0)) / cb->max_batch;
    const int fit = largest_batch(cb);
    char failed[160] = "", advice[96];
    if (what)
        snprintf(failed, sizeof failed, "allocating %s (%.1f MiB) failed; ", what, bytes / MIB);
    if (fit > 0)
        snprintf(advice, sizeof advice, "the largest batch that fits is about %d", fit);
    else
        snprintf(advice, sizeof advice, "not even a batch of 1 fits");
    return fn_fail(FN_ERR_DEVICE_MEMORY,
                   "%s: %s%s at batch %d needs about %.0f MiB of GPU memory (%.3f MiB per image, "
                   "%.0f MiB for weights and fixed buffers) but %s had %.0f MiB free of %.0f MiB; "
                   "%s (lower the batch / max_batch)",
                   cb->net->arch, failed, fn_precision_name(cb->precision), cb->max_batch, need / MIB,
                   per_image / MIB, fixed_bytes(cb) / MIB, cb->gpu_name, cb->free_at_create / MIB,
                   cb->total_mem / MIB, advice);
}

static fn_status dev_alloc(const cuda_backend *cb, void **p, size_t bytes, const char *what)
{
    *p = NULL;
    if (bytes == 0)
        return FN_OK;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess)
        return FN_OK;
    *p = NULL;
    (void)cudaGetLastError();
    if (e == cudaErrorMemoryAllocation)
        return out_of_memory(cb, what, bytes);
    return fn_cuda_error(e, "cudaMalloc", __FILE__, __LINE__);
}

static fn_status host_alloc(const cuda_backend *cb, void **p, size_t bytes, const char *what)
{
    *p = NULL;
    if (bytes == 0)
        return FN_OK;
    cudaError_t e = cudaHostAlloc(p, bytes, cudaHostAllocDefault);
    if (e == cudaSuccess)
        return FN_OK;
    *p = NULL;
    (void)cudaGetLastError();
    if (e == cudaErrorMemoryAllocation)
        return fn_fail(FN_ERR_NO_MEMORY, "%s: cannot pin %.1f MiB of host memory for %s at batch %d; "
                       "lower the batch / max_batch", cb->net->arch, bytes / MIB, what, cb->max_batch);
    return fn_cuda_error(e, "cudaHostAlloc", __FILE__, __LINE__);
}

/* ---- checks on the net ------------------------------------------------------ */

static fn_status check_net(const cuda_backend *cb)
{
    const net *nt = cb->net;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        if ((op->kind == OP_CONV || op->kind == OP_LINEAR || op->kind == OP_AFFINE) && (!op->w || !op->b))
            return fn_fail(FN_ERR_INVALID_ARG, "%s: layer %s has no weights", nt->arch, op->name);
        if ((unsigned)op->kind > OP_LINEAR || (unsigned)op->act > ACT_HARDSIGMOID)
            return fn_fail(FN_ERR_INVALID_ARG, "%s: layer %s: op %d / activation %d unknown to the "
                           "CUDA backend", nt->arch, op->name, (int)op->kind, (int)op->act);
    }
    return FN_OK;
}

/* cuDNN's legacy tensors and our kernels index with 32-bit integers. */
static fn_status check_int32(const cuda_backend *cb)
{
    const net *nt = cb->net;
    size_t most = 0;
    int worst = 0;
    for (int t = 0; t < nt->n_tensors; t++)
        if (net_tensor_elems(nt, t) > most)
            most = net_tensor_elems(nt, t), worst = t;
    if ((size_t)nt->feature_dim > most)
        most = (size_t)nt->feature_dim;
    if (most * (size_t)cb->max_batch <= 2147483647u)
        return FN_OK;
    const net_tensor *x = &nt->tensors[worst];
    return fn_fail(FN_ERR_SHAPE, "%s: at batch %d a %d x %d x %d tensor holds %zu elements, more than "
                   "the 2^31 - 1 that cuDNN indexes; use a batch of at most %zu", nt->arch,
                   cb->max_batch, x->c, x->h, x->w, most * (size_t)cb->max_batch, 2147483647u / most);
}

/* ---- parameters --------------------------------------------------------------- */

/* Lays out every parameter in one block; returns its size. */
static size_t plan_params(cuda_backend *cb)
{
    const net *nt = cb->net;
    size_t top = 0;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        op_plan *p = &cb->ops[i];
        const size_t cin = (size_t)nt->tensors[op->in].c, cout = (size_t)nt->tensors[op->out].c;
        if (op->kind == OP_CONV) {
            p->w_at = take(&top, cout * (cin / op->groups) * op->k * op->k * cb->esize);
            p->b_at = take(&top, cout * 4);
            p->bt_at = cb->dtype == FN_DT_F32 ? p->b_at : take(&top, cout * cb->esize);
        } else if (op->kind == OP_AFFINE) {
            p->scale_at = take(&top, cin * 4);
            p->b_at = take(&top, cin * 4);
        } else if (op->kind == OP_LINEAR) {
            p->w_at = take(&top, cout * net_tensor_elems(nt, op->in) * cb->esize);
            p->b_at = take(&top, cout * 4);
        }
    }
    return take(&top, 0);
}

/* count floats into dst in the storage type. */
static void put_values(const cuda_backend *cb, void *dst, const float *src, size_t count)
{
    if (cb->dtype == FN_DT_F32)
        memcpy(dst, src, count * sizeof(float));
    else
        fn_host_round_to_half(src, dst, count, cb->dtype);
}

/* Builds the parameter block on the host (converted, and reordered for NHWC)
 * and uploads it in one copy. */
static fn_status upload_params(cuda_backend *cb)
{
    const net *nt = cb->net;
    fn_status st = FN_OK;
    char *host = fn_malloc(cb->params_bytes ? cb->params_bytes : 1);
    float *tmp = NULL;
    size_t tmp_size = 0;
    if (!host)
        return FN_ERR_NO_MEMORY;
    memset(host, 0, cb->params_bytes);
    const int nhwc = cb->layout == FN_NHWC;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        op_plan *p = &cb->ops[i];
        const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
        if (op->kind == OP_CONV) {
            const size_t cin = (size_t)(in->c / op->groups), kk = (size_t)op->k * op->k;
            const size_t count = (size_t)out->c * cin * kk;
            const float *w = op->w;
            if (nhwc) { /* KCRS -> KRSC */
                if (count > tmp_size) {
                    free(tmp);
                    if (!(tmp = fn_malloc(count * sizeof(float)))) {
                        st = FN_ERR_NO_MEMORY;
                        goto done;
                    }
                    tmp_size = count;
                }
                for (size_t o = 0; o < (size_t)out->c; o++)
                    for (size_t c = 0; c < cin; c++)
                        for (size_t r = 0; r < kk; r++)
                            tmp[(o * kk + r) * cin + c] = op->w[(o * cin + c) * kk + r];
                w = tmp;
            }
            put_values(cb, host + p->w_at, w, count);
            memcpy(host + p->b_at, op->b, (size_t)out->c * sizeof(float));
            if (p->bt_at != p->b_at)
                put_values(cb, host + p->bt_at, op->b, (size_t)out->c);
        } else if (op->kind == OP_AFFINE) {
            memcpy(host + p->scale_at, op->w, (size_t)in->c * sizeof(float));
            memcpy(host + p->b_at, op->b, (size_t)in->c * sizeof(float));
        } else if (op->kind == OP_LINEAR) {
            const size_t K = (size_t)out->c, D = net_tensor_elems(nt, op->in);
            const size_t hw = (size_t)in->h * in->w, C = (size_t)in->c;
            const float *w = op->w;
            if (nhwc && hw > 1) { /* PyTorch flattens C-major; NHWC memory is (h, w, c) */
                if (K * D > tmp_size) {
                    free(tmp);
                    if (!(tmp = fn_malloc(K * D * sizeof(float)))) {
                        st = FN_ERR_NO_MEMORY;
                        goto done;
                    }
                    tmp_size = K * D;
                }
                for (size_t k = 0; k < K; k++)
                    for (size_t c = 0; c < C; c++)
                        for (size_t q = 0; q < hw; q++)
                            tmp[k * D + q * C + c] = op->w[k * D + c * hw + q];
                w = tmp;
            }
            put_values(cb, host + p->w_at, w, K * D);
            memcpy(host + p->b_at, op->b, K * sizeof(float));
        }
    }
    /* On the compute stream, so that everything later on it sees the weights. */
    CK_CUDA_GOTO(cudaMemcpyAsync(cb->params, host, cb->params_bytes, cudaMemcpyHostToDevice, cb->compute), done);
    CK_CUDA_GOTO(cudaStreamSynchronize(cb->compute), done);
    for (int i = 0; i < nt->n_ops; i++) {
        op_plan *p = &cb->ops[i];
        switch (nt->ops[i].kind) {
        case OP_CONV:
            p->w = cb->params + p->w_at;
            p->b = (float *)(cb->params + p->b_at);
            p->b_typed = cb->params + p->bt_at;
            break;
        case OP_AFFINE:
            p->scale = (float *)(cb->params + p->scale_at);
            p->b = (float *)(cb->params + p->b_at);
            break;
        case OP_LINEAR:
            p->w = cb->params + p->w_at;
            p->b = (float *)(cb->params + p->b_at);
            break;
        default: break;
        }
    }
done:
    free(tmp);
    free(host);
    return st;
}

/* ---- cuDNN descriptors and algorithms ---------------------------------------- */

static cudnnMathType_t math_request(fn_precision p)
{
    switch (p) {
    case FN_PRECISION_FP32: return CUDNN_FMA_MATH;      /* DEFAULT would allow TF32 on Ampere+ */
    case FN_PRECISION_TF32: return CUDNN_DEFAULT_MATH;  /* TF32 tensor cores for float data */
    default: return CUDNN_TENSOR_OP_MATH;
    }
}

static int math_ok(fn_precision p, cudnnMathType_t m)
{
    if (p == FN_PRECISION_FP32)
        return m == CUDNN_FMA_MATH;
    if (p == FN_PRECISION_TF32) /* never down-convert float data to half */
        return m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    return 1;
}

static fn_status set_tensor_descs(cuda_backend *cb, int n)
{
    const net *nt = cb->net;
    const cudnnTensorFormat_t fmt = cb->layout == FN_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    for (int t = 0; t < nt->n_tensors; t++) {
        const net_tensor *x = &nt->tensors[t];
        CK_CUDNN(cudnnSetTensor4dDescriptor(cb->tdesc[t], fmt, cb->cudnn_type, n, x->c, x->h, x->w));
    }
    return FN_OK;
}

static fn_status create_descriptors(cuda_backend *cb)
{
    const net *nt = cb->net;
    const cudnnTensorFormat_t fmt = cb->layout == FN_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    if (!(cb->tdesc = fn_calloc((size_t)nt->n_tensors, sizeof *cb->tdesc)))
        return FN_ERR_NO_MEMORY;
    for (int t = 0; t < nt->n_tensors; t++)
        CK_CUDNN(cudnnCreateTensorDescriptor(&cb->tdesc[t]));
    CK_CUDNN(cudnnCreateActivationDescriptor(&cb->relu));
    CK_CUDNN(cudnnSetActivationDescriptor(cb->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    CK_CUDNN(cudnnCreateActivationDescriptor(&cb->identity));
    CK_CUDNN(cudnnSetActivationDescriptor(cb->identity, CUDNN_ACTIVATION_IDENTITY, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    FN_TRY(set_tensor_descs(cb, cb->max_batch));
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        op_plan *p = &cb->ops[i];
        if (op->kind != OP_CONV)
            continue;
        const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
        CK_CUDNN(cudnnCreateFilterDescriptor(&p->wdesc));
        CK_CUDNN(cudnnSetFilter4dDescriptor(p->wdesc, cb->cudnn_type, fmt, out->c, in->c / op->groups,
                                            op->k, op->k));
        CK_CUDNN(cudnnCreateConvolutionDescriptor(&p->cdesc));
        /* float accumulation for every storage type (PSEUDO_HALF/BF16 configs) */
        CK_CUDNN(cudnnSetConvolution2dDescriptor(p->cdesc, op->pad, op->pad, op->stride, op->stride, 1, 1,
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        CK_CUDNN(cudnnSetConvolutionGroupCount(p->cdesc, op->groups));
        CK_CUDNN(cudnnSetConvolutionMathType(p->cdesc, math_request(cb->precision)));
        CK_CUDNN(cudnnCreateTensorDescriptor(&p->bdesc));
        /* the data's format, as other NHWC users of the fused call do (lc0) */
        CK_CUDNN(cudnnSetTensor4dDescriptor(p->bdesc, fmt, cb->cudnn_type, 1, out->c, 1, 1));
        int n, c, h, w; /* cuDNN must agree with the net on the output's shape */
        CK_CUDNN(cudnnGetConvolution2dForwardOutputDim(p->cdesc, cb->tdesc[op->in], p->wdesc, &n, &c, &h, &w));
        if (n != cb->max_batch || c != out->c || h != out->h || w != out->w)
            return fn_fail(FN_ERR_SHAPE, "%s: layer %s: cuDNN makes %d x %d x %d, the net %d x %d x %d",
                           nt->arch, op->name, c, h, w, out->c, out->h, out->w);
    }
    return FN_OK;
}

/* Picks an algorithm for conv op i at the batch its descriptors hold: the
 * first (fastest, for Find) candidate that ran, fits `limit` bytes of
 * workspace and keeps the precision's math. */
static fn_status select_algo(cuda_backend *cb, int i, int find, void *ws, size_t ws_bytes, size_t limit,
                             cudnnConvolutionFwdAlgo_t *algo, cudnnMathType_t *math, size_t *mem)
{
    const net_op *op = &cb->net->ops[i];
    op_plan *p = &cb->ops[i];
    cudnnTensorDescriptor_t xd = cb->tdesc[op->in], yd = cb->tdesc[op->out];
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    CK_CUDNN(cudnnSetConvolutionMathType(p->cdesc, math_request(cb->precision)));
    for (int pass = find ? 0 : 1; pass < 2; pass++) {
        if (pass == 0) {
            cudnnStatus_t s = cudnnFindConvolutionForwardAlgorithmEx(
                cb->cudnn, xd, tensor_ptr(cb, op->in), p->wdesc, p->w, p->cdesc, yd,
                tensor_ptr(cb, op->out), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf, ws, ws_bytes);
            if (s != CUDNN_STATUS_SUCCESS) { /* fall back to the heuristics */
                if (cb->verbose)
                    fprintf(stderr, "featurenorm cuda: %s: cudnnFind failed (%s); using heuristics\n",
                            op->name, cudnnGetErrorString(s));
                (void)cudaGetLastError();
                continue;
            }
        } else {
            CK_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(cb->cudnn, xd, p->wdesc, p->cdesc, yd,
                                                            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
        }
        for (int j = 0; j < got; j++)
            if (perf[j].status == CUDNN_STATUS_SUCCESS && perf[j].memory <= limit &&
                math_ok(cb->precision, perf[j].mathType)) {
                *algo = perf[j].algo, *math = perf[j].mathType, *mem = perf[j].memory;
                return FN_OK;
            }
    }
    /* Last resort: the implicit GEMMs, which need little or no workspace. */
    static const cudnnConvolutionFwdAlgo_t plain[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
    for (int j = 0; j < 2; j++) {
        size_t need = 0;
        if (cudnnGetConvolutionForwardWorkspaceSize(cb->cudnn, xd, p->wdesc, p->cdesc, yd, plain[j], &need) ==
                CUDNN_STATUS_SUCCESS && need <= limit) {
            *algo = plain[j], *math = math_request(cb->precision), *mem = need;
            return FN_OK;
        }
    }
    const net_tensor *in = &cb->net->tensors[op->in], *out = &cb->net->tensors[op->out];
    return fn_fail(FN_ERR_DEVICE, "%s: cuDNN %zu has no %s algorithm for layer %s (%d -> %d channels, "
                   "%dx%d kernel, stride %d, pad %d, %d groups, %dx%d input) within %.0f MiB of workspace",
                   cb->net->arch, cudnnGetVersion(), fn_precision_name(cb->precision), op->name, in->c, out->c,
                   op->k, op->k, op->stride, op->pad, op->groups, in->h, in->w, limit / MIB);
}

static int fusable(const cuda_backend *cb, int i)
{
    const net_op *op = &cb->net->ops[i];
    const op_plan *p = &cb->ops[i];
    if (cb->no_fuse || p->fuse_refused)
        return 0;
    /* cuDNN fuses ReLU with any algorithm, identity only with this one. */
    return op->act == ACT_RELU ||
           (op->act == ACT_NONE && p->algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
}

/* Descriptors and algorithms for batch n (host-side calls only). */
static fn_status set_batch(cuda_backend *cb, int n)
{
    const net *nt = cb->net;
    cb->cur_n = -1; /* until all of it succeeded */
    FN_TRY(set_tensor_descs(cb, n));
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        op_plan *p = &cb->ops[i];
        if (op->kind != OP_CONV)
            continue;
        p->algo = p->algo_max, p->math = p->math_max;
        if (n != cb->max_batch) {
            size_t need = 0, mem = 0;
            CK_CUDNN(cudnnSetConvolutionMathType(p->cdesc, p->math_max));
            cudnnStatus_t s = cudnnGetConvolutionForwardWorkspaceSize(cb->cudnn, cb->tdesc[op->in], p->wdesc,
                                                                      p->cdesc, cb->tdesc[op->out], p->algo_max, &need);
            if (s != CUDNN_STATUS_SUCCESS || need > cb->ws_bytes)
                FN_TRY(select_algo(cb, i, 0, NULL, 0, cb->ws_bytes, &p->algo, &p->math, &mem));
        }
        CK_CUDNN(cudnnSetConvolutionMathType(p->cdesc, p->math));
        p->fuse = fusable(cb, i);
    }
    cb->cur_n = n;
    return FN_OK;
}

static int same_conv(const net *nt, const net_op *a, const net_op *b)
{
    const net_tensor *ai = &nt->tensors[a->in], *bi = &nt->tensors[b->in];
    return ai->c == bi->c && ai->h == bi->h && ai->w == bi->w && nt->tensors[a->out].c == nt->tensors[b->out].c &&
           a->k == b->k && a->stride == b->stride && a->pad == b->pad && a->groups == b->groups;
}

/* Chooses every convolution's algorithm at max_batch, then allocates the one
 * workspace they share. */
static fn_status choose_algorithms(cuda_backend *cb)
{
    const net *nt = cb->net;
    fn_status st = FN_OK;
    size_t free_b = 0, total_b = 0, limit = (size_t)1 << 30, need = 0;
    const char *mb = getenv("FN_CUDA_WORKSPACE_MB");
    if (mb && atol(mb) >= 0)
        limit = (size_t)atol(mb) << 20;
    CK_CUDA(cudaMemGetInfo(&free_b, &total_b));
    if (limit > free_b / 4)
        limit = free_b / 4;
    void *search = NULL;
    size_t search_bytes = 0;
    if (!cb->heuristic) { /* Find times candidates inside a workspace we provide */
        for (size_t b = limit; b >= ((size_t)1 << 20); b /= 2) {
            if (cudaMalloc(&search, b) == cudaSuccess) {
                search_bytes = b;
                break;
            }
            search = NULL;
            (void)cudaGetLastError();
        }
        limit = search_bytes;
    }
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        op_plan *p = &cb->ops[i];
        if (op->kind != OP_CONV)
            continue;
        int twin = -1; /* an earlier layer with the same problem: same answer */
        for (int j = 0; j < i && twin < 0; j++)
            if (nt->ops[j].kind == OP_CONV && same_conv(nt, op, &nt->ops[j]))
                twin = j;
        if (twin >= 0) {
            p->algo_max = cb->ops[twin].algo_max, p->math_max = cb->ops[twin].math_max;
            p->ws_max = cb->ops[twin].ws_max;
        } else {
            CK_GOTO(select_algo(cb, i, !cb->heuristic, search, search_bytes, limit, &p->algo_max,
                                &p->math_max, &p->ws_max), done);
        }
        if (p->ws_max > need)
            need = p->ws_max;
        if (cb->verbose)
            fprintf(stderr, "featurenorm cuda: %-24s algo %d math %d workspace %.1f MiB%s\n", op->name,
                    (int)p->algo_max, (int)p->math_max, p->ws_max / MIB, twin >= 0 ? " (same as before)" : "");
    }
done:
    if (search)
        cudaFree(search);
    if (st != FN_OK)
        return st;
    FN_TRY(dev_alloc(cb, &cb->workspace, need, "the convolution workspace"));
    cb->ws_bytes = need;
    return set_batch(cb, cb->max_batch);
}

/* ---- the pass ------------------------------------------------------------------ */

static fn_status run_conv(cuda_backend *cb, int i, int n)
{
    const net_op *op = &cb->net->ops[i];
    op_plan *p = &cb->ops[i];
    const void *x = tensor_ptr(cb, op->in);
    void *y = tensor_ptr(cb, op->out);
    const void *res = op->res >= 0 ? tensor_ptr(cb, op->res) : NULL;
    cudnnTensorDescriptor_t xd = cb->tdesc[op->in], yd = cb->tdesc[op->out];
    const float one = 1.0f, zero = 0.0f, alpha2 = res ? 1.0f : 0.0f;
    if (p->fuse) {
        /* y = act(conv(x) + alpha2 * z + bias); z = y with alpha2 = 0 when
         * there is no residual (z needs y's descriptor either way). */
        cudnnStatus_t s = cudnnConvolutionBiasActivationForward(
            cb->cudnn, &one, xd, x, p->wdesc, p->w, p->cdesc, p->algo, cb->workspace, cb->ws_bytes,
            &alpha2, yd, res ? res : y, p->bdesc, p->b_typed, op->act == ACT_RELU ? cb->relu : cb->identity,
            yd, y);
        if (s == CUDNN_STATUS_SUCCESS)
            return FN_OK;
        /* Refused before anything ran: do it in two steps from now on. */
        if (CUDNN_STATUS_CATEGORY(s) != CUDNN_STATUS_NOT_SUPPORTED && CUDNN_STATUS_CATEGORY(s) != CUDNN_STATUS_BAD_PARAM)
            return fn_cudnn_error(s, "cudnnConvolutionBiasActivationForward", __FILE__, __LINE__);
        if (cb->verbose)
            fprintf(stderr, "featurenorm cuda: %s: fused epilogue refused (%s); unfused from now on\n",
                    op->name, cudnnGetErrorString(s));
        p->fuse = 0, p->fuse_refused = 1;
    }
    CK_CUDNN(cudnnConvolutionForward(cb->cudnn, &one, xd, x, p->wdesc, p->w, p->cdesc, p->algo, cb->workspace,
                                     cb->ws_bytes, &zero, yd, y));
    CK_CUDA(fn_launch_bias_act(y, res, p->b, shape_of(cb, op->out, n), op->act, cb->compute));
    return FN_OK;
}

/* acc = x W^T (cuBLAS, float accumulation), then act(acc + b) into y (the
 * storage type; may be NULL) and y_f32 (may be NULL). x: n x D rows. */
static fn_status run_linear(cuda_backend *cb, int i, const void *x, int n, void *y, float *y_f32)
{
    const net *nt = cb->net;
    const net_op *op = &nt->ops[i];
    const op_plan *p = &cb->ops[i];
    const int K = nt->tensors[op->out].c, D = (int)net_tensor_elems(nt, op->in);
    const float one = 1.0f, zero = 0.0f;
    float *acc = (float *)(cb->misc + cb->ml.lin_acc);
    const cublasComputeType_t compute =
        cb->precision == FN_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    /* cuBLAS is column-major: W (K x D row-major) is a D x K matrix, x (n rows
     * of D) is D x n, and acc = W^T x is K x n, i.e. n rows of K logits. */
    CK_CUBLAS(cublasGemmEx(cb->cublas, CUBLAS_OP_T, CUBLAS_OP_N, K, n, D, &one, p->w, cb->blas_type, D, x,
                           cb->blas_type, D, &zero, acc, CUDA_R_32F, K, compute, CUBLAS_GEMM_DEFAULT));
    CK_CUDA(fn_launch_linear_epilogue(acc, p->b, n, K, op->act, y, cb->dtype, y_f32, cb->compute));
    return FN_OK;
}

static fn_status run_op(cuda_backend *cb, int i, int n)
{
    const net *nt = cb->net;
    const net_op *op = &nt->ops[i];
    const op_plan *p = &cb->ops[i];
    const void *x = tensor_ptr(cb, op->in);
    void *y = tensor_ptr(cb, op->out);
    const fn_shape in = shape_of(cb, op->in, n);
    const net_tensor *out = &nt->tensors[op->out];
    switch (op->kind) {
    case OP_CONV: return run_conv(cb, i, n);
    case OP_AFFINE: CK_CUDA(fn_launch_affine(x, y, p->scale, p->b, in, op->act, cb->compute)); break;
    case OP_MAXPOOL:
        CK_CUDA(fn_launch_maxpool(x, y, in, out->h, out->w, op->k, op->stride, op->pad, cb->compute));
        break;
    case OP_AVGPOOL: CK_CUDA(fn_launch_avgpool(x, y, in, out->h, out->w, cb->compute)); break;
    case OP_SHORTCUT_A:
        CK_CUDA(fn_launch_shortcut_a(x, y, in, out->c, out->h, out->w, cb->compute));
        break;
    case OP_SCALE:
        CK_CUDA(fn_launch_scale_channels(x, tensor_ptr(cb, op->res), y, in, cb->compute));
        break;
    case OP_LINEAR:
        return run_linear(cb, i, x, n, y, i == nt->last_linear ? (float *)(cb->misc + cb->ml.logits) : NULL);
    }
    return FN_OK;
}

/* The input onto the device (copy stream), then into the net's input tensor
 * in its storage type and layout (compute stream, after the copy's event). */
static fn_status load_input(cuda_backend *cb, int n, const float *x, const uint8_t *x_u8)
{
    const net *nt = cb->net;
    const size_t S = (size_t)nt->input_size, values = (size_t)n * 3 * S * S;
    void *input = tensor_ptr(cb, nt->input);
    const fn_shape shape = shape_of(cb, nt->input, n);
    if (x_u8) {
        /* Into pinned memory a group of chunks at a time (one chunk per
         * thread), each group's DMA flying while the next group is copied. */
        const long chunks = (long)((values + COPY_CHUNK - 1) / COPY_CHUNK), group = cb->threads;
        for (long g0 = 0; g0 < chunks; g0 += group) {
            const long g1 = g0 + group < chunks ? g0 + group : chunks;
#pragma omp parallel for num_threads(cb->threads) schedule(static) if (g1 - g0 > 1)
            for (long c = g0; c < g1; c++) {
                size_t off = (size_t)c * COPY_CHUNK, len = values - off < COPY_CHUNK ? values - off : COPY_CHUNK;
                memcpy(cb->u8_host + off, x_u8 + off, len);
            }
            size_t off = (size_t)g0 * COPY_CHUNK, end = (size_t)g1 * COPY_CHUNK < values ? (size_t)g1 * COPY_CHUNK : values;
            CK_CUDA(cudaMemcpyAsync(cb->u8_dev + off, cb->u8_host + off, end - off, cudaMemcpyHostToDevice, cb->copy));
        }
    } else {
        /* Pageable source: the driver stages it; only the call returns later. */
        void *dst = cb->dtype == FN_DT_F32 ? input : (void *)cb->in_f32;
        CK_CUDA(cudaMemcpyAsync(dst, x, values * sizeof(float), cudaMemcpyHostToDevice, cb->copy));
    }
    CK_CUDA(cudaEventRecord(cb->input_ready, cb->copy));
    CK_CUDA(cudaStreamWaitEvent(cb->compute, cb->input_ready, 0));
    if (x_u8)
        CK_CUDA(fn_launch_preprocess_u8(cb->u8_dev, input, shape, cb->table, cb->compute));
    else if (cb->dtype != FN_DT_F32)
        CK_CUDA(fn_launch_convert_nchw_f32(cb->in_f32, input, shape, cb->compute));
    return FN_OK;
}

/* Scores, features and ReAct on the device, then D2H of what was asked. */
static fn_status finish_outputs(cuda_backend *cb, int n, const fn_outputs *out)
{
    const net *nt = cb->net;
    const misc_layout *m = &cb->ml;
    const int K = nt->num_classes, D = nt->feature_dim;
    char *dev = cb->misc, *host = cb->out_host;
    const float *logits = (const float *)(dev + m->logits);
    if (out->pred || out->msp || out->maxlogit || out->energy)
        CK_CUDA(fn_launch_logit_scores(logits, n, K, out->pred ? (int *)(dev + m->pred) : NULL,
                                       out->msp ? (float *)(dev + m->msp) : NULL,
                                       out->maxlogit ? (float *)(dev + m->maxlogit) : NULL,
                                       out->energy ? (float *)(dev + m->energy) : NULL, cb->compute));
    const void *features = tensor_ptr(cb, nt->features);
    const net_tensor *ft = &nt->tensors[nt->features];
    if (out->features) {
        /* float NCHW rows are already in PyTorch's order: copy straight out */
        const void *src = features;
        if (cb->dtype != FN_DT_F32 || (cb->layout == FN_NHWC && ft->h * ft->w > 1)) {
            CK_CUDA(fn_launch_to_f32_rows(features, shape_of(cb, nt->features, n), (float *)(dev + m->features),
                                          cb->compute));
            src = dev + m->features;
        }
        CK_CUDA(cudaMemcpyAsync(host + m->features, src, (size_t)n * D * 4, cudaMemcpyDeviceToHost, cb->compute));
    }
    if (out->react_logits || out->react_energy) { /* clip the features, the last layer again */
        void *clipped = dev + m->clip;
        float *react = (float *)(dev + m->react);
        CK_CUDA(fn_launch_clip(features, clipped, (size_t)n * D, cb->dtype, out->react_clip, cb->compute));
        FN_TRY(run_linear(cb, nt->last_linear, clipped, n, NULL, react));
        if (out->react_energy)
            CK_CUDA(fn_launch_logit_scores(react, n, K, NULL, NULL, NULL, (float *)(dev + m->react_energy),
                                           cb->compute));
    }
    /* Only what was asked comes back. */
    struct { const void *want; size_t at, bytes; } copies[] = {
        {out->norms, m->norms, (size_t)n * nt->n_blocks * 4},
        {out->logits, m->logits, (size_t)n * K * 4},
        {out->react_logits, m->react, (size_t)n * K * 4},
        {out->pred, m->pred, (size_t)n * sizeof(int)},
        {out->msp, m->msp, (size_t)n * 4},
        {out->maxlogit, m->maxlogit, (size_t)n * 4},
        {out->energy, m->energy, (size_t)n * 4},
        {out->react_energy, m->react_energy, (size_t)n * 4},
    };
    for (size_t c = 0; c < sizeof copies / sizeof copies[0]; c++)
        if (copies[c].want)
            CK_CUDA(cudaMemcpyAsync(host + copies[c].at, dev + copies[c].at, copies[c].bytes,
                                    cudaMemcpyDeviceToHost, cb->compute));
    return FN_OK;
}

static void deliver(const cuda_backend *cb, int n, fn_outputs *out)
{
    const net *nt = cb->net;
    const misc_layout *m = &cb->ml;
    const size_t N = (size_t)n, K = (size_t)nt->num_classes;
    const char *h = cb->out_host;
    if (out->norms) memcpy(out->norms, h + m->norms, N * nt->n_blocks * 4);
    if (out->logits) memcpy(out->logits, h + m->logits, N * K * 4);
    if (out->features) memcpy(out->features, h + m->features, N * nt->feature_dim * 4);
    if (out->react_logits) memcpy(out->react_logits, h + m->react, N * K * 4);
    if (out->pred) memcpy(out->pred, h + m->pred, N * sizeof(int));
    if (out->msp) memcpy(out->msp, h + m->msp, N * 4);
    if (out->maxlogit) memcpy(out->maxlogit, h + m->maxlogit, N * 4);
    if (out->energy) memcpy(out->energy, h + m->energy, N * 4);
    if (out->react_energy) memcpy(out->react_energy, h + m->react_energy, N * 4);
}

static fn_status cuda_forward(backend *self, int n, const float *x, const uint8_t *x_u8, fn_outputs *out)
{
    cuda_backend *cb = (cuda_backend *)self;
    const net *nt = cb->net;
    fn_status st = FN_OK;
    if (n < 1 || n > cb->max_batch)
        return fn_fail(FN_ERR_SHAPE, "batch of %d images; this model takes 1 to %d", n, cb->max_batch);
    CK_CUDA(cudaSetDevice(cb->device)); /* the caller's thread may not be the creator's */
    if (n != cb->cur_n)
        CK_GOTO(set_batch(cb, n), fail);
    CK_GOTO(load_input(cb, n, x, x_u8), fail);
    float *norms = (float *)(cb->misc + cb->ml.norms);
    float *scratch = (float *)(cb->misc + cb->ml.norm_scratch);
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        CK_GOTO(run_op(cb, i, n), fail);
        if (op->tap >= 0 && out->norms)
            CK_CUDA_GOTO(fn_launch_feature_norms(tensor_ptr(cb, op->out), shape_of(cb, op->out, n), scratch,
                                                 norms, nt->n_blocks, op->tap, cb->compute), fail);
    }
    CK_GOTO(finish_outputs(cb, n, out), fail);
    CK_CUDA_GOTO(cudaEventRecord(cb->done, cb->compute), fail);
    CK_CUDA_GOTO(cudaEventSynchronize(cb->done), fail); /* blocking sync: no spinning core */
    deliver(cb, n, out);
    return FN_OK;
fail:
    /* Let whatever was queued finish before the caller reuses its buffers. */
    cudaStreamSynchronize(cb->copy);
    cudaStreamSynchronize(cb->compute);
    return st;
}

/* ---- create / destroy ------------------------------------------------------------ */

static void cuda_destroy(backend *self)
{
    cuda_backend *cb = (cuda_backend *)self;
    if (!cb)
        return;
    cudaSetDevice(cb->device);
    if (cb->compute)
        cudaStreamSynchronize(cb->compute);
    if (cb->copy)
        cudaStreamSynchronize(cb->copy);
    if (cb->ops && cb->net)
        for (int i = 0; i < cb->net->n_ops; i++) {
            op_plan *p = &cb->ops[i];
            if (p->wdesc) cudnnDestroyFilterDescriptor(p->wdesc);
            if (p->cdesc) cudnnDestroyConvolutionDescriptor(p->cdesc);
            if (p->bdesc) cudnnDestroyTensorDescriptor(p->bdesc);
        }
    if (cb->tdesc)
        for (int t = 0; t < cb->net->n_tensors; t++)
            if (cb->tdesc[t])
                cudnnDestroyTensorDescriptor(cb->tdesc[t]);
    if (cb->relu) cudnnDestroyActivationDescriptor(cb->relu);
    if (cb->identity) cudnnDestroyActivationDescriptor(cb->identity);
    if (cb->cudnn) cudnnDestroy(cb->cudnn);
    if (cb->cublas) cublasDestroy(cb->cublas);
    void *dev[] = {cb->arena, cb->params, cb->misc, cb->u8_dev, cb->in_f32, cb->workspace, cb->cublas_ws};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i])
            cudaFree(dev[i]);
    if (cb->u8_host) cudaFreeHost(cb->u8_host);
    if (cb->out_host) cudaFreeHost(cb->out_host);
    if (cb->input_ready) cudaEventDestroy(cb->input_ready);
    if (cb->done) cudaEventDestroy(cb->done);
    if (cb->compute) cudaStreamDestroy(cb->compute);
    if (cb->copy) cudaStreamDestroy(cb->copy);
    (void)cudaGetLastError(); /* teardown errors are not the caller's business */
    free(cb->ops);
    free(cb->tdesc);
    free(cb);
}

/* Every device and pinned buffer, once. */
static fn_status allocate(cuda_backend *cb)
{
    const net *nt = cb->net;
    const size_t S = (size_t)nt->input_size, in = (size_t)cb->max_batch * 3 * S * S;
    cb->ml = plan_misc(cb, cb->max_batch);
    FN_TRY(dev_alloc(cb, (void **)&cb->arena, nt->arena_elems * (size_t)cb->max_batch * cb->esize,
                     "the activation arena"));
    FN_TRY(dev_alloc(cb, (void **)&cb->params, cb->params_bytes, "the weights"));
    FN_TRY(dev_alloc(cb, (void **)&cb->misc, cb->ml.bytes, "the output and scratch buffers"));
    FN_TRY(dev_alloc(cb, (void **)&cb->u8_dev, in, "the input buffer"));
    if (cb->dtype != FN_DT_F32)
        FN_TRY(dev_alloc(cb, (void **)&cb->in_f32, in * sizeof(float), "the float input buffer"));
    FN_TRY(dev_alloc(cb, &cb->cublas_ws, CUBLAS_WS_BYTES, "the cuBLAS workspace"));
    /* after cublasSetStream, which resets the workspace to cuBLAS's own pool */
    CK_CUBLAS(cublasSetWorkspace(cb->cublas, cb->cublas_ws, CUBLAS_WS_BYTES));
    FN_TRY(host_alloc(cb, (void **)&cb->u8_host, in, "the input staging buffer"));
    FN_TRY(host_alloc(cb, (void **)&cb->out_host, cb->ml.out_bytes, "the output staging buffer"));
    /* Defined contents (Find times real kernels on these tensors). */
    CK_CUDA(cudaMemsetAsync(cb->arena, 0, nt->arena_elems * (size_t)cb->max_batch * cb->esize, cb->compute));
    CK_CUDA(cudaMemsetAsync(cb->misc, 0, cb->ml.bytes, cb->compute));
    return FN_OK;
}

fn_status cuda_backend_create(const net *nt, const backend_config *cfg, backend **out)
{
    *out = NULL;
    char why[256];
    if (!cuda_backend_usable(why, sizeof why))
        return fn_fail(FN_ERR_UNAVAILABLE, "no usable CUDA device: %s", why);
    if (cfg->max_batch < 1 || (unsigned)cfg->precision > FN_PRECISION_BF16)
        return fn_fail(FN_ERR_INVALID_ARG, "cuda: max_batch %d or precision %d out of range", cfg->max_batch,
                       (int)cfg->precision);
    cuda_backend *cb = fn_calloc(1, sizeof *cb);
    if (!cb)
        return FN_ERR_NO_MEMORY;
    fn_status st = FN_OK;
    cb->base.name = "cuda";
    cb->base.forward = cuda_forward;
    cb->base.destroy = cuda_destroy;
    cb->net = nt;
    cb->max_batch = cfg->max_batch;
    cb->threads = cfg->threads > 0 ? cfg->threads : 1;
    cb->cur_n = -1;
    cb->precision = cfg->precision;
    cb->verbose = env_flag("FN_CUDA_VERBOSE");
    cb->no_fuse = env_flag("FN_CUDA_NO_FUSE");
    cb->heuristic = getenv("FN_CUDA_CONV_ALGO") && strcmp(getenv("FN_CUDA_CONV_ALGO"), "heuristic") == 0;
    switch (cb->precision) {
    case FN_PRECISION_FP16:
        cb->dtype = FN_DT_F16, cb->cudnn_type = CUDNN_DATA_HALF, cb->blas_type = CUDA_R_16F;
        break;
    case FN_PRECISION_BF16:
        cb->dtype = FN_DT_BF16, cb->cudnn_type = CUDNN_DATA_BFLOAT16, cb->blas_type = CUDA_R_16BF;
        break;
    default:
        cb->dtype = FN_DT_F32, cb->cudnn_type = CUDNN_DATA_FLOAT, cb->blas_type = CUDA_R_32F;
        break;
    }
    cb->layout = cb->dtype == FN_DT_F32 ? FN_NCHW : FN_NHWC;
    cb->esize = fn_dtype_size(cb->dtype);
    net_input_table(nt, cb->table);
    CK_GOTO(check_net(cb), fail);
    if (!(cb->ops = fn_calloc((size_t)nt->n_ops, sizeof *cb->ops))) {
        st = FN_ERR_NO_MEMORY;
        goto fail;
    }

    CK_CUDA_GOTO(cudaGetDevice(&cb->device), fail);
    struct cudaDeviceProp prop;
    CK_CUDA_GOTO(cudaGetDeviceProperties(&prop, cb->device), fail);
    snprintf(cb->gpu_name, sizeof cb->gpu_name, "%.95s", prop.name);
    size_t dnn = cudnnGetVersion();
    snprintf(cb->base.device, sizeof cb->base.device, "%.80s, cuDNN %zu.%zu.%zu, %s %s", prop.name,
             dnn / 10000, dnn % 10000 / 100, dnn % 100, fn_precision_name(cb->precision),
             cb->layout == FN_NHWC ? "NHWC" : "NCHW");
    CK_CUDA_GOTO(cudaStreamCreateWithFlags(&cb->compute, cudaStreamNonBlocking), fail);
    CK_CUDA_GOTO(cudaStreamCreateWithFlags(&cb->copy, cudaStreamNonBlocking), fail);
    CK_CUDA_GOTO(cudaEventCreateWithFlags(&cb->input_ready, cudaEventDisableTiming), fail);
    CK_CUDA_GOTO(cudaEventCreateWithFlags(&cb->done, cudaEventDisableTiming | cudaEventBlockingSync), fail);
    CK_CUDNN_GOTO(cudnnCreate(&cb->cudnn), fail);
    CK_CUDNN_GOTO(cudnnSetStream(cb->cudnn, cb->compute), fail);
    CK_CUBLAS_GOTO(cublasCreate(&cb->cublas), fail);
    CK_CUBLAS_GOTO(cublasSetStream(cb->cublas, cb->compute), fail);
    /* FP32 means FP32: no TF32 in the GEMMs either (the compute type says so
     * too; the math mode also covers any call that goes by it). */
    CK_CUBLAS_GOTO(cublasSetMathMode(cb->cublas, cb->precision == FN_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                    : CUBLAS_DEFAULT_MATH), fail);

    /* Will it fit? Checked before any allocation, with what is free now. */
    cb->params_bytes = plan_params(cb);
    CK_CUDA_GOTO(cudaMemGetInfo(&cb->free_at_create, &cb->total_mem), fail);
    if (fixed_bytes(cb) + batch_bytes(cb, cb->max_batch) > cb->free_at_create) {
        st = out_of_memory(cb, NULL, 0);
        goto fail;
    }
    CK_GOTO(check_int32(cb), fail);
    CK_GOTO(allocate(cb), fail);
    CK_GOTO(upload_params(cb), fail);
    CK_GOTO(create_descriptors(cb), fail);
    CK_GOTO(choose_algorithms(cb), fail);
    CK_CUDA_GOTO(cudaStreamSynchronize(cb->compute), fail);
    if (cb->verbose)
        fprintf(stderr, "featurenorm cuda: %s on %s: batch %d, %.1f MiB arena, %.1f MiB weights, %.1f MiB "
                "workspace\n", nt->arch, cb->base.device, cb->max_batch,
                nt->arena_elems * (double)cb->max_batch * cb->esize / MIB, cb->params_bytes / MIB,
                cb->ws_bytes / MIB);
    *out = &cb->base;
    return FN_OK;
fail:
    cuda_destroy(&cb->base);
    return st;
}
