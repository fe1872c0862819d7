/* device.c: whether a CUDA device can be used, and how much of its memory a
 * model at a given batch needs: the sizing behind FN_ERR_DEVICE_MEMORY's
 * "the largest batch that fits". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "error.h"

/* ---- small helpers --------------------------------------------------------- */

size_t cu_take(size_t *top, size_t bytes)
{
    size_t at = (*top + ALIGN - 1) / ALIGN * ALIGN;
    *top = at + bytes;
    return at;
}

/* The stem's input channels on the device. NHWC tensor-core convolutions
 * want 16 bytes a pixel (8 half values, 4 floats); an RGB input has 3, so
 * it is padded with zero channels (and the stem's filters with zero
 * weights) when only convolutions of one group read it. FP32 (NCHW) and
 * FN_CUDA_STEM_PAD=0 keep 3. */
int cu_input_channels(const cuda_backend *cb)
{
    const net *nt = cb->net;
    const char *v = getenv("FN_CUDA_STEM_PAD");
    if (cb->layout != CU_NHWC || (v && !strcmp(v, "0")))
        return 3;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        int reads = op->in == nt->input || op->res == nt->input;
        for (int j = 0; j < op->n_cat && !reads; j++)
            reads = op->cat[j] == nt->input;
        if (reads && (op->kind != OP_CONV || op->in != nt->input || op->groups != 1))
            return 3;
    }
    return (int)(16 / cb->esize);
}

/* Channels of tensor t as the device holds it. */
int cu_channels(const cuda_backend *cb, int t)
{
    return t == cb->net->input ? cb->in_c : cb->net->tensors[t].c;
}

void *cu_tensor_ptr(const cuda_backend *cb, int t)
{
    if (t == cb->net->input && cb->in_padded)
        return cb->in_padded;
    return cb->arena + cb->net->tensors[t].offset * (size_t)cb->max_batch * cb->esize;
}

cu_shape cu_shape_of(const cuda_backend *cb, int t, int n)
{
    const net_tensor *x = &cb->net->tensors[t];
    cu_shape s = {n, cu_channels(cb, t), x->h, x->w, cb->dtype, cb->layout};
    return s;
}

int cu_env_flag(const char *name)
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

out_layout cu_plan_outputs(const net *nt, int b)
{
    const size_t B = (size_t)b, K = (size_t)nt->num_classes;
    out_layout o;
    size_t top = 0;
    o.norms = cu_take(&top, B * (size_t)nt->n_blocks * 4);
    o.logits = cu_take(&top, B * K * 4);
    o.features = cu_take(&top, B * (size_t)nt->feature_dim * 4);
    o.react = cu_take(&top, B * K * 4);
    o.bytes = cu_take(&top, 0);
    return o;
}

/* Device scratch the slots share: linear accumulators, norm partial sums,
 * clipped features. */
size_t cu_scratch_bytes(const cuda_backend *cb, int b, size_t *norm_floats)
{
    const net *nt = cb->net;
    size_t widest_linear = 0, most = 0, top = 0;
    for (int i = 0; i < nt->n_ops; i++)
        if (nt->ops[i].kind == OP_LINEAR && (size_t)nt->tensors[nt->ops[i].out].c > widest_linear)
            widest_linear = (size_t)nt->tensors[nt->ops[i].out].c;
    for (int i = 0; i < nt->n_blocks; i++) {
        size_t f = cu_norms_scratch_floats(cu_shape_of(cb, nt->ops[nt->blocks[i].op].out, b));
        if (f > most)
            most = f;
    }
    if (norm_floats)
        *norm_floats = most;
    cu_take(&top, (size_t)b * widest_linear * 4);
    cu_take(&top, most * 4);
    cu_take(&top, (size_t)b * nt->feature_dim * cb->esize);
    return cu_take(&top, 0);
}

/* Device bytes that grow with the batch: arena, scratch, the float input, the
 * padded input and every slot's input and outputs. */
size_t cu_batch_bytes(const cuda_backend *cb, int b)
{
    const net *nt = cb->net;
    const size_t S = (size_t)nt->input_size, in = (size_t)b * 3 * S * S;
    size_t top = 0;
    cu_take(&top, nt->arena_elems * (size_t)b * cb->esize);
    cu_take(&top, cu_scratch_bytes(cb, b, NULL));
    cu_take(&top, in * sizeof(float));
    if (cb->in_c > 3)
        cu_take(&top, (size_t)b * cb->in_c * S * S * cb->esize);
    for (int s = 0; s < CUDA_SLOTS; s++) {
        cu_take(&top, in);
        cu_take(&top, cu_plan_outputs(nt, b).bytes);
    }
    return cu_take(&top, 0);
}

size_t cu_fixed_bytes(const cuda_backend *cb) { return cb->params_bytes + CUBLAS_WS_BYTES + MARGIN_BYTES; }

/* The largest batch whose buffers fit in what was free at create. */
int cu_largest_batch(const cuda_backend *cb)
{
    int lo = 0, hi = cb->max_batch;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (cu_fixed_bytes(cb) + cu_batch_bytes(cb, mid) <= cb->free_at_create)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

fn_status cu_out_of_memory(const cuda_backend *cb, const char *what, size_t bytes)
{
    const size_t need = cu_fixed_bytes(cb) + cu_batch_bytes(cb, cb->max_batch);
    const double per_image =
        (double)(cu_batch_bytes(cb, cb->max_batch) - cu_batch_bytes(cb, 0)) / cb->max_batch;
    const int fit = cu_largest_batch(cb);
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
                   per_image / MIB, cu_fixed_bytes(cb) / MIB, cb->gpu_name, cb->free_at_create / MIB,
                   cb->total_mem / MIB, advice);
}

fn_status cu_dev_alloc(const cuda_backend *cb, void **p, size_t bytes, const char *what)
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
        return cu_out_of_memory(cb, what, bytes);
    return cu_cuda_error(e, "cudaMalloc", __FILE__, __LINE__);
}

fn_status cu_host_alloc(const cuda_backend *cb, void **p, size_t bytes, const char *what)
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
    return cu_cuda_error(e, "cudaHostAlloc", __FILE__, __LINE__);
}

/* cuDNN's legacy tensors and our kernels index with 32-bit integers. */
fn_status cu_check_int32(const cuda_backend *cb)
{
    const net *nt = cb->net;
    size_t most = 0;
    int worst = 0;
    for (int t = 0; t < nt->n_tensors; t++)
        if (net_tensor_elems(nt, t) > most)
            most = net_tensor_elems(nt, t), worst = t;
    if ((size_t)nt->feature_dim > most)
        most = (size_t)nt->feature_dim;
    if ((size_t)cb->in_c * nt->input_size * nt->input_size > most) /* the padded input */
        most = (size_t)cb->in_c * nt->input_size * nt->input_size, worst = nt->input;
    if (most * (size_t)cb->max_batch <= 2147483647u)
        return FN_OK;
    const net_tensor *x = &nt->tensors[worst];
    return fn_fail(FN_ERR_SHAPE, "%s: at batch %d a %d x %d x %d tensor holds %zu elements, more than "
                   "the 2^31 - 1 that cuDNN indexes; use a batch of at most %zu", nt->arch,
                   cb->max_batch, x->c, x->h, x->w, most * (size_t)cb->max_batch, 2147483647u / most);
}

int fn_cuda_device_count(void)
{
    char why[256];
    int count = 0;
    if (!cuda_backend_usable(why, sizeof why) || cudaGetDeviceCount(&count) != cudaSuccess)
        return 0;
    return count;
}
