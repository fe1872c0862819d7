/* backend_cuda.c: the CUDA backend's create and destroy: the net's op list on
 * one GPU with cuDNN, cuBLAS and the kernels of cuda/'s .cu files.
 *
 * Everything is sized and allocated once, here: the activation arena
 * (net->arena_elems x max_batch elements; tensors share memory as
 * net_plan_memory planned), weights converted to the storage type and layout
 * (params.c), one cuDNN workspace (the largest any layer's chosen algorithm
 * needs, algos.c), a cuBLAS workspace, scratch, and per slot its pinned and
 * device input and output buffers (forward.c). Nothing is allocated and the
 * host never waits inside a batch.
 *
 * Environment (debugging; see README):
 *   FN_CUDA_VERBOSE=1         each layer's algorithm, math, workspace and fusion
 *   FN_CUDA_NO_FUSE=1         never cuDNN's fused bias + activation
 *   FN_CUDA_CONV_ALGO=heuristic  cuDNN's heuristics instead of timing (Find)
 *   FN_CUDA_WORKSPACE_MB=N    caps the convolution workspace (default 1024)
 *   FN_CUDA_STEM_PAD=0        keep the NHWC input at 3 channels (device.c)
 *   FN_CUDA_SYNC=1            synchronise after every op and name a failing one */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "error.h"

static fn_status check_net(const cuda_backend *cb)
{
    const net *nt = cb->net;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        if ((op->kind == OP_CONV || op->kind == OP_LINEAR || op->kind == OP_AFFINE) && (!op->w || !op->b))
            return fn_fail(FN_ERR_INVALID_ARG, "%s: layer %s has no weights", nt->arch, op->name);
        if ((unsigned)op->kind >= OP_COUNT || (unsigned)op->act >= ACT_COUNT)
            return fn_fail(FN_ERR_INVALID_ARG, "%s: layer %s: op %d / activation %d unknown to the CUDA backend",
                           nt->arch, op->name, (int)op->kind, (int)op->act);
        if ((op->kind == OP_SCALE || op->kind == OP_ADD) && op->res < 0)
            return fn_fail(FN_ERR_INVALID_ARG, "%s: layer %s: a scale or add without its second tensor",
                           nt->arch, op->name);
        if (op->kind == OP_CONCAT && op->n_cat > 0 && !op->cat)
            return fn_fail(FN_ERR_INVALID_ARG, "%s: layer %s: a concat without its tensors", nt->arch, op->name);
    }
    return FN_OK;
}

static void cuda_destroy(backend *self)
{
    cuda_backend *cb = (cuda_backend *)self;
    if (!cb)
        return;
    cudaSetDevice(cb->device);
    cudaStream_t streams[] = {cb->compute, cb->h2d, cb->d2h};
    for (int i = 0; i < 3; i++)
        if (streams[i])
            cudaStreamSynchronize(streams[i]);
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
    void *dev[] = {cb->arena, cb->params, cb->in_padded, cb->in_f32, cb->lin_acc, cb->norm_scratch, cb->clip, cb->workspace,
                   cb->cublas_ws};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i])
            cudaFree(dev[i]);
    for (int s = 0; s < CUDA_SLOTS; s++) {
        cu_slot *sl = &cb->slot[s];
        if (sl->in_dev) cudaFree(sl->in_dev);
        if (sl->out_dev) cudaFree(sl->out_dev);
        if (sl->in_host) cudaFreeHost(sl->in_host);
        if (sl->out_host) cudaFreeHost(sl->out_host);
        cudaEvent_t ev[] = {sl->input_ready, sl->computed, sl->done};
        for (int e = 0; e < 3; e++)
            if (ev[e])
                cudaEventDestroy(ev[e]);
    }
    for (int i = 0; i < 3; i++)
        if (streams[i])
            cudaStreamDestroy(streams[i]);
    if (cb->in_f32_free)
        cudaEventDestroy(cb->in_f32_free);
    (void)cudaGetLastError(); /* teardown errors are not the caller's business */
    free(cb->ops);
    free(cb->tdesc);
    free(cb);
}

/* Every device and pinned buffer, once. */
static fn_status allocate(cuda_backend *cb)
{
    const net *nt = cb->net;
    const size_t B = (size_t)cb->max_batch, S = (size_t)nt->input_size, in = B * 3 * S * S;
    const size_t arena = nt->arena_elems * B * cb->esize;
    size_t norm_floats = 0, widest_linear = 0;
    cu_scratch_bytes(cb, cb->max_batch, &norm_floats);
    for (int i = 0; i < nt->n_ops; i++)
        if (nt->ops[i].kind == OP_LINEAR && (size_t)nt->tensors[nt->ops[i].out].c > widest_linear)
            widest_linear = (size_t)nt->tensors[nt->ops[i].out].c;
    cb->out = cu_plan_outputs(nt, cb->max_batch);
    FN_TRY(cu_dev_alloc(cb, (void **)&cb->arena, arena, "the activation arena"));
    FN_TRY(cu_dev_alloc(cb, (void **)&cb->params, cb->params_bytes, "the weights"));
    FN_TRY(cu_dev_alloc(cb, (void **)&cb->in_f32, in * sizeof(float), "the float input buffer"));
    if (cb->in_c > 3)
        FN_TRY(cu_dev_alloc(cb, &cb->in_padded, B * cb->in_c * S * S * cb->esize, "the padded input"));
    FN_TRY(cu_dev_alloc(cb, (void **)&cb->lin_acc, B * widest_linear * 4, "the linear accumulator"));
    FN_TRY(cu_dev_alloc(cb, (void **)&cb->norm_scratch, norm_floats * 4 + 4, "the norm scratch"));
    FN_TRY(cu_dev_alloc(cb, &cb->clip, B * nt->feature_dim * cb->esize, "the ReAct buffer"));
    FN_TRY(cu_dev_alloc(cb, &cb->cublas_ws, CUBLAS_WS_BYTES, "the cuBLAS workspace"));
    /* after cublasSetStream, which resets the workspace to cuBLAS's own pool */
    CK_CUBLAS(cublasSetWorkspace(cb->cublas, cb->cublas_ws, CUBLAS_WS_BYTES));
    for (int s = 0; s < CUDA_SLOTS; s++) {
        cu_slot *sl = &cb->slot[s];
        FN_TRY(cu_dev_alloc(cb, (void **)&sl->in_dev, in, "a slot's input buffer"));
        FN_TRY(cu_dev_alloc(cb, (void **)&sl->out_dev, cb->out.bytes, "a slot's output buffer"));
        FN_TRY(cu_host_alloc(cb, (void **)&sl->in_host, in, "a slot's input buffer"));
        FN_TRY(cu_host_alloc(cb, (void **)&sl->out_host, cb->out.bytes, "a slot's output buffer"));
        CK_CUDA(cudaEventCreateWithFlags(&sl->input_ready, cudaEventDisableTiming));
        CK_CUDA(cudaEventCreateWithFlags(&sl->computed, cudaEventDisableTiming));
        CK_CUDA(cudaEventCreateWithFlags(&sl->done, cudaEventDisableTiming | cudaEventBlockingSync));
        CK_CUDA(cudaMemsetAsync(sl->out_dev, 0, cb->out.bytes, cb->compute));
    }
    /* Find times real kernels on these tensors: random values, not zeros (on
     * zeros tensor cores draw less power and run faster, which would flatter
     * some algorithms over others). */
    CK_CUDA(cu_fill_uniform(cb->arena, arena / cb->esize, cb->dtype, 0x5eed, cb->compute));
    if (cb->in_padded)
        CK_CUDA(cu_fill_uniform(cb->in_padded, B * cb->in_c * S * S, cb->dtype, 0x5eee, cb->compute));
    CK_CUDA(cudaEventCreateWithFlags(&cb->in_f32_free, cudaEventDisableTiming));
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
    cb->base.slots = CUDA_SLOTS;
    cb->base.input = cu_input;
    cb->base.submit = cu_submit;
    cb->base.collect = cu_collect;
    cb->base.destroy = cuda_destroy;
    cb->net = nt;
    cb->max_batch = cfg->max_batch;
    cb->cur_n = -1;
    cb->precision = cfg->precision;
    cb->verbose = cu_env_flag("FN_CUDA_VERBOSE");
    cb->no_fuse = cu_env_flag("FN_CUDA_NO_FUSE");
    cb->sync_ops = cu_env_flag("FN_CUDA_SYNC");
    cb->heuristic = getenv("FN_CUDA_CONV_ALGO") && strcmp(getenv("FN_CUDA_CONV_ALGO"), "heuristic") == 0;
    switch (cb->precision) {
    case FN_PRECISION_FP16: cb->dtype = CU_F16, cb->cudnn_type = CUDNN_DATA_HALF, cb->blas_type = CUDA_R_16F; break;
    case FN_PRECISION_BF16:
        cb->dtype = CU_BF16, cb->cudnn_type = CUDNN_DATA_BFLOAT16, cb->blas_type = CUDA_R_16BF;
        break;
    default: cb->dtype = CU_F32, cb->cudnn_type = CUDNN_DATA_FLOAT, cb->blas_type = CUDA_R_32F; break;
    }
    /* FP32 stays NCHW (exact float, FMA kernels); TF32 goes NHWC with the
     * half types: tensor-core kernels and the fused epilogues want NHWC. */
    cb->layout = cb->precision == FN_PRECISION_FP32 ? CU_NCHW : CU_NHWC;
    cb->esize = cu_dtype_size(cb->dtype);
    net_input_table(nt, cb->table);
    CK_GOTO(check_net(cb), fail);
    cb->in_c = cu_input_channels(cb);
    if (!(cb->ops = fn_calloc((size_t)nt->n_ops, sizeof *cb->ops))) {
        st = FN_ERR_NO_MEMORY;
        goto fail;
    }

    int count = 0;
    CK_CUDA_GOTO(cudaGetDeviceCount(&count), fail);
    if (cfg->device < 0 || cfg->device >= count) {
        st = fn_fail(FN_ERR_INVALID_ARG, "CUDA device %d asked for; this machine has %d (0 to %d)",
                     cfg->device, count, count - 1);
        goto fail;
    }
    cb->device = cfg->device;
    CK_CUDA_GOTO(cudaSetDevice(cb->device), fail);
    struct cudaDeviceProp prop;
    CK_CUDA_GOTO(cudaGetDeviceProperties(&prop, cb->device), fail);
    snprintf(cb->gpu_name, sizeof cb->gpu_name, "%.95s", prop.name);
    size_t dnn = cudnnGetVersion();
    snprintf(cb->base.device, sizeof cb->base.device, "%.80s, cuDNN %zu.%zu.%zu, %s %s%s", prop.name,
             dnn / 10000, dnn % 10000 / 100, dnn % 100, fn_precision_name(cb->precision),
             cb->layout == CU_NHWC ? "NHWC" : "NCHW", cb->heuristic ? ", heuristic algorithms" : "");
    if (cb->verbose && cb->in_c > 3)
        fprintf(stderr, "featurenorm cuda: the stem's input padded to %d channels\n", cb->in_c);
    CK_CUDA_GOTO(cudaStreamCreateWithFlags(&cb->compute, cudaStreamNonBlocking), fail);
    CK_CUDA_GOTO(cudaStreamCreateWithFlags(&cb->h2d, cudaStreamNonBlocking), fail);
    CK_CUDA_GOTO(cudaStreamCreateWithFlags(&cb->d2h, cudaStreamNonBlocking), fail);
    CK_CUDNN_GOTO(cudnnCreate(&cb->cudnn), fail);
    CK_CUDNN_GOTO(cudnnSetStream(cb->cudnn, cb->compute), fail);
    CK_CUBLAS_GOTO(cublasCreate(&cb->cublas), fail);
    CK_CUBLAS_GOTO(cublasSetStream(cb->cublas, cb->compute), fail);
    /* FP32 means FP32: no TF32 in the GEMMs either (the compute type says so
     * too; the math mode also covers any call that goes by it). */
    CK_CUBLAS_GOTO(cublasSetMathMode(cb->cublas, cb->precision == FN_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                    : CUBLAS_DEFAULT_MATH), fail);

    /* Will it fit? Checked before any allocation, with what is free now. */
    cb->params_bytes = cu_plan_params(cb);
    CK_CUDA_GOTO(cudaMemGetInfo(&cb->free_at_create, &cb->total_mem), fail);
    if (cu_fixed_bytes(cb) + cu_batch_bytes(cb, cb->max_batch) > cb->free_at_create) {
        st = cu_out_of_memory(cb, NULL, 0);
        goto fail;
    }
    CK_GOTO(cu_check_int32(cb), fail);
    CK_GOTO(allocate(cb), fail);
    CK_GOTO(cu_upload_params(cb), fail);
    CK_GOTO(cu_create_descriptors(cb), fail);
    CK_GOTO(cu_choose_algorithms(cb), fail);
    CK_CUDA_GOTO(cudaStreamSynchronize(cb->compute), fail);
    if (cb->verbose)
        fprintf(stderr, "featurenorm cuda: %s on %s: batch %d, %d slots, %.1f MiB arena, %.1f MiB weights, "
                "%.1f MiB workspace\n", nt->arch, cb->base.device, cb->max_batch, CUDA_SLOTS,
                nt->arena_elems * (double)cb->max_batch * cb->esize / MIB, cb->params_bytes / MIB,
                cb->ws_bytes / MIB);
    *out = &cb->base;
    return FN_OK;
fail:
    cuda_destroy(&cb->base);
    return st;
}
