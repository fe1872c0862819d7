/* forward.c: slots and streams, and the ops of one batch.
 *
 * Three streams and, per slot, its own pinned input, device input, device
 * outputs and pinned outputs, so that nothing one slot touches is touched by
 * another's work in flight:
 *
 *   h2d stream:     waits for the slot's last copy-back (its buffers are free),
 *                   uint8 input pinned -> device, records input_ready
 *   compute stream: waits for input_ready; normalise into the net's input
 *                   tensor; every op in order (cuDNN convolutions, fused with
 *                   bias + ReLU where that was chosen, else our epilogue;
 *                   linears through cuBLAS + epilogue); FeatureNorms after each
 *                   tapped op into the slot's norms; features as float rows;
 *                   ReAct; records computed
 *   d2h stream:     waits for computed, outputs device -> pinned, records done
 *   collect:        waits on done (blocking sync: no spinning core)
 *
 * The activation arena, workspace and scratch are shared: only the compute
 * stream uses them, in submission order. So while slot k computes, slot k+1's
 * input is on its way in and slot k-1's outputs on their way out.
 *
 * Errors: a call that fails while a batch is enqueued names the op it was
 * for (index, kind, name, shapes). Kernels fail asynchronously, so a fault
 * found by collect can only name the batch, unless FN_CUDA_SYNC=1: then every
 * op is followed by a stream synchronisation and the first failing op is
 * named (slow; for debugging). */
#include <stdio.h>
#include <string.h>

#include "backend_cuda.h"
#include "error.h"

/* The failure of op i of a batch of n: its message, prefixed with the op. */
static fn_status op_failed(const cuda_backend *cb, int i, int n, fn_status st)
{
    char why[1536];
    snprintf(why, sizeof why, "%s", fn_last_error());
    const net *nt = cb->net;
    const net_op *op = &nt->ops[i];
    const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
    return fn_fail(st, "%s (%s): op %d (%s '%s', %d x %d x %d -> %d x %d x %d, batch %d) failed: %s", nt->arch,
                   fn_precision_name(cb->precision), i, net_op_kind_name(op->kind), op->name, in->c, in->h, in->w, out->c,
                   out->h, out->w, n, why);
}

/* ---- the ops ------------------------------------------------------------------- */

static fn_status conv(cuda_backend *cb, int i, int n)
{
    op_plan *p = &cb->ops[i];
    if (p->fuse) {
        fn_status st = cu_run_conv(cb, i, n, 1);
        if (st != FN_ERR_UNAVAILABLE)
            return st;
        if (cb->verbose) /* refused before anything ran: two steps from now on */
            fprintf(stderr, "featurenorm cuda: %s: %s; unfused from now on\n", cb->net->ops[i].name, fn_last_error());
        p->fuse = p->fuse_wanted = 0;
    }
    return cu_run_conv(cb, i, n, 0);
}

/* acc = x W^T (cuBLAS, float accumulation), then act(acc + b) into y (the
 * storage type; may be NULL) and y_f32 (may be NULL). x: n rows of D. */
static fn_status linear(cuda_backend *cb, int i, const void *x, int n, void *y, float *y_f32)
{
    const net *nt = cb->net;
    const net_op *op = &nt->ops[i];
    const op_plan *p = &cb->ops[i];
    const int K = nt->tensors[op->out].c, D = (int)net_tensor_elems(nt, op->in);
    const float one = 1.0f, zero = 0.0f;
    const cublasComputeType_t compute =
        cb->precision == FN_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    /* cuBLAS is column-major: W (K x D row-major) is a D x K matrix, x (n rows
     * of D) is D x n, and acc = W^T x is K x n, i.e. n rows of K logits. */
    CK_CUBLAS(cublasGemmEx(cb->cublas, CUBLAS_OP_T, CUBLAS_OP_N, K, n, D, &one, p->w, cb->blas_type, D, x,
                           cb->blas_type, D, &zero, cb->lin_acc, CUDA_R_32F, K, compute, CUBLAS_GEMM_DEFAULT));
    CK_CUDA(cu_linear_epilogue(cb->lin_acc, p->b, n, K, op->act, op->alpha, y, cb->dtype, y_f32, cb->compute));
    return FN_OK;
}

static fn_status run_op(cuda_backend *cb, int i, int n, cu_slot *sl)
{
    const net *nt = cb->net;
    const net_op *op = &nt->ops[i];
    const op_plan *p = &cb->ops[i];
    const void *x = cu_tensor_ptr(cb, op->in);
    void *y = cu_tensor_ptr(cb, op->out);
    const cu_shape in = cu_shape_of(cb, op->in, n), out = cu_shape_of(cb, op->out, n);
    const void *res = op->res >= 0 ? cu_tensor_ptr(cb, op->res) : NULL;
    switch (op->kind) {
    case OP_CONV: return conv(cb, i, n);
    case OP_AFFINE: CK_CUDA(cu_affine(x, y, p->scale, p->b, in, op->act, op->alpha, cb->compute)); break;
    case OP_MAXPOOL:
        CK_CUDA(cu_maxpool(x, y, in, out.h, out.w, op->k, op->stride, op->pad, cb->compute));
        break;
    case OP_AVGPOOL: CK_CUDA(cu_avgpool(x, y, in, out.h, out.w, cb->compute)); break;
    case OP_AVGPOOL_K:
        CK_CUDA(cu_avgpool_k(x, y, in, out.h, out.w, op->k, op->stride, op->pad, op->count_include_pad,
                             cb->compute));
        break;
    case OP_SHORTCUT_A: CK_CUDA(cu_shortcut_a(x, y, in, out.c, out.h, out.w, cb->compute)); break;
    case OP_SCALE: {
        const net_tensor *s = &nt->tensors[op->res];
        CK_CUDA(cu_scale(x, res, y, in, s->h * s->w == 1, cb->compute));
        break;
    }
    case OP_ADD:
    case OP_ACT: CK_CUDA(cu_add_act(x, res, y, in, op->act, op->alpha, cb->compute)); break;
    case OP_CONCAT: {
        const void *parts[64];
        int channels[64];
        if (op->n_cat + 1 > 64)
            return fn_fail(FN_ERR_SHAPE, "a concat of %d tensors; the CUDA backend takes at most 64", op->n_cat + 1);
        for (int j = 0; j <= op->n_cat; j++) {
            int t = j == 0 ? op->in : op->cat[j - 1];
            parts[j] = cu_tensor_ptr(cb, t);
            channels[j] = nt->tensors[t].c;
        }
        CK_CUDA(cu_concat(parts, channels, op->n_cat + 1, y, out, cb->compute));
        break;
    }
    case OP_LINEAR:
        return linear(cb, i, x, n, y, i == nt->last_linear ? (float *)(sl->out_dev + cb->out.logits) : NULL);
    }
    return FN_OK;
}

/* ---- submit and collect -------------------------------------------------------- */

uint8_t *cu_input(backend *self, int slot)
{
    cuda_backend *cb = (cuda_backend *)self;
    return slot >= 0 && slot < CUDA_SLOTS ? cb->slot[slot].in_host : NULL;
}

/* The input onto the device and into the net's input tensor, in its storage
 * type and layout. uint8: from the slot's pinned buffer on the h2d stream.
 * float: the caller's pageable memory, copied before this returns. */
static fn_status load_input(cuda_backend *cb, cu_slot *sl, int n, const float *x)
{
    const net *nt = cb->net;
    const size_t S = (size_t)nt->input_size, values = (size_t)n * 3 * S * S;
    void *input = cu_tensor_ptr(cb, nt->input);
    const cu_shape shape = cu_shape_of(cb, nt->input, n);
    if (x) {
        /* Pageable memory the caller may reuse once we return: the host waits
         * for this copy alone, on the h2d stream, not for earlier batches'
         * compute; in_f32 is free once the last conversion has read it. */
        CK_CUDA(cudaStreamWaitEvent(cb->h2d, cb->in_f32_free, 0));
        CK_CUDA(cudaMemcpyAsync(cb->in_f32, x, values * sizeof(float), cudaMemcpyHostToDevice, cb->h2d));
        CK_CUDA(cudaEventRecord(sl->input_ready, cb->h2d));
        CK_CUDA(cudaStreamWaitEvent(cb->compute, sl->input_ready, 0));
        if (cb->dtype == CU_F32 && cb->layout == CU_NCHW) /* the arena may still be in use: copy in order */
            CK_CUDA(cudaMemcpyAsync(input, cb->in_f32, values * sizeof(float), cudaMemcpyDeviceToDevice,
                                    cb->compute));
        else
            CK_CUDA(cu_convert_nchw_f32(cb->in_f32, 3, input, shape, cb->compute));
        CK_CUDA(cudaEventRecord(cb->in_f32_free, cb->compute));
        CK_CUDA(cudaEventSynchronize(sl->input_ready));
        return FN_OK;
    }
    CK_CUDA(cudaStreamWaitEvent(cb->h2d, sl->done, 0)); /* the slot's last batch has left */
    CK_CUDA(cudaMemcpyAsync(sl->in_dev, sl->in_host, values, cudaMemcpyHostToDevice, cb->h2d));
    CK_CUDA(cudaEventRecord(sl->input_ready, cb->h2d));
    CK_CUDA(cudaStreamWaitEvent(cb->compute, sl->input_ready, 0));
    CK_CUDA(cu_preprocess_u8(sl->in_dev, input, shape, cb->table, cb->compute));
    return FN_OK;
}

/* Features as float rows, ReAct, then the outputs' copy back. */
static fn_status finish(cuda_backend *cb, cu_slot *sl, int n, float react_clip)
{
    const net *nt = cb->net;
    const out_layout *o = &cb->out;
    const int K = nt->num_classes, D = nt->feature_dim;
    const void *features = cu_tensor_ptr(cb, nt->features);
    CK_CUDA(cu_to_f32_rows(features, cu_shape_of(cb, nt->features, n), (float *)(sl->out_dev + o->features),
                           cb->compute));
    if (sl->react) { /* clip the features (storage type), the last layer again */
        CK_CUDA(cu_clip(features, cb->clip, (size_t)n * D, cb->dtype, react_clip, cb->compute));
        FN_TRY(linear(cb, nt->last_linear, cb->clip, n, NULL, (float *)(sl->out_dev + o->react)));
    }
    CK_CUDA(cudaEventRecord(sl->computed, cb->compute));
    CK_CUDA(cudaStreamWaitEvent(cb->d2h, sl->computed, 0));
    struct { size_t at, bytes; } copies[] = {
        {o->norms, (size_t)n * nt->n_blocks * 4},
        {o->logits, (size_t)n * K * 4},
        {o->features, (size_t)n * D * 4},
        {o->react, sl->react ? (size_t)n * K * 4 : 0},
    };
    for (size_t c = 0; c < sizeof copies / sizeof copies[0]; c++)
        if (copies[c].bytes)
            CK_CUDA(cudaMemcpyAsync(sl->out_host + copies[c].at, sl->out_dev + copies[c].at, copies[c].bytes,
                                    cudaMemcpyDeviceToHost, cb->d2h));
    CK_CUDA(cudaEventRecord(sl->done, cb->d2h));
    return FN_OK;
}

/* FN_CUDA_SYNC=1: wait for op i and name it if it failed. */
static fn_status sync_op(cuda_backend *cb, int i, int n)
{
    cudaError_t e = cudaStreamSynchronize(cb->compute);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e == cudaSuccess)
        return FN_OK;
    return op_failed(cb, i, n, cu_cuda_error(e, "cudaStreamSynchronize (FN_CUDA_SYNC)", __FILE__, __LINE__));
}

fn_status cu_submit(backend *self, int slot, const backend_request *rq)
{
    cuda_backend *cb = (cuda_backend *)self;
    const net *nt = cb->net;
    if (slot < 0 || slot >= CUDA_SLOTS)
        return fn_fail(FN_ERR_INVALID_ARG, "cuda: slot %d; the backend has %d", slot, CUDA_SLOTS);
    const int n = rq->n;
    if (n < 1 || n > cb->max_batch)
        return fn_fail(FN_ERR_SHAPE, "batch of %d images; this model takes 1 to %d", n, cb->max_batch);
    cu_slot *sl = &cb->slot[slot];
    fn_status st = FN_OK;
    CK_CUDA(cudaSetDevice(cb->device)); /* the caller's thread may not be the creator's */
    if (n != cb->cur_n)
        FN_TRY(cu_set_batch(cb, n));
    sl->busy = 1; /* from here on something may be in flight: collect waits for it */
    sl->n = n;
    sl->react = rq->react_clip > 0;
    /* The compute stream writes the slot's outputs: not before their last copy-back. */
    CK_CUDA(cudaStreamWaitEvent(cb->compute, sl->done, 0));
    FN_TRY(load_input(cb, sl, n, rq->x));
    float *norms = (float *)(sl->out_dev + cb->out.norms);
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        if ((st = run_op(cb, i, n, sl)) != FN_OK)
            return op_failed(cb, i, n, st);
        if (op->tap >= 0) {
            cudaError_t e = cu_feature_norms(cu_tensor_ptr(cb, op->out), cu_shape_of(cb, op->out, n),
                                             cb->norm_scratch, norms, nt->n_blocks, op->tap, cb->compute);
            if (e != cudaSuccess)
                return op_failed(cb, i, n, cu_cuda_error(e, "cu_feature_norms", __FILE__, __LINE__));
        }
        if (cb->sync_ops)
            FN_TRY(sync_op(cb, i, n));
    }
    return finish(cb, sl, n, rq->react_clip);
}

fn_status cu_collect(backend *self, int slot, backend_result *out)
{
    cuda_backend *cb = (cuda_backend *)self;
    memset(out, 0, sizeof *out);
    if (slot < 0 || slot >= CUDA_SLOTS || !cb->slot[slot].busy)
        return fn_fail(FN_ERR_INVALID_ARG, "cuda: nothing was submitted to slot %d", slot);
    cu_slot *sl = &cb->slot[slot];
    CK_CUDA(cudaSetDevice(cb->device));
    sl->busy = 0;
    cudaError_t e = cudaEventSynchronize(sl->done);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return fn_fail(e == cudaErrorMemoryAllocation ? FN_ERR_DEVICE_MEMORY : FN_ERR_DEVICE,
                       "%s (%s): a batch of %d images failed on the device: %s (%s); run with FN_CUDA_SYNC=1 "
                       "to name the failing op", cb->net->arch, fn_precision_name(cb->precision), sl->n,
                       cudaGetErrorString(e), cudaGetErrorName(e));
    }
    const char *h = sl->out_host;
    *out = (backend_result){sl->n, (const float *)(h + cb->out.norms), (const float *)(h + cb->out.logits),
                            (const float *)(h + cb->out.features),
                            sl->react ? (const float *)(h + cb->out.react) : NULL};
    return FN_OK;
}
