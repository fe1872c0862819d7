/* algos.c: cuDNN descriptors, the algorithm of every convolution, and whether
 * its bias and activation go through cuDNN's fused call.
 *
 * Each convolution's (algorithm, math type) is chosen once at create, at
 * max_batch:
 *   Find mode (default): cudnnFindConvolutionForwardAlgorithmEx times every
 *     candidate on the real weights and random activations (backend_cuda.c)
 *     within a bounded workspace; the fastest deterministic one that keeps
 *     the precision's math wins. Timings vary, so the choice is
 *     repeatable within a process, not across processes.
 *   Heuristic mode (FN_CUDA_CONV_ALGO=heuristic): cudnnGetConvolutionForwardAlgorithm_v7,
 *     no timing: the same algorithms for the same cuDNN version, card and shapes.
 * Candidate arrays hold cudnnGetConvolutionForwardAlgorithmMaxCount entries:
 * results come per (algorithm, math type), so CUDNN_CONVOLUTION_FWD_ALGO_COUNT
 * would cut valid ones off. The workspace of the chosen pair is asked again
 * with cudnnGetConvolutionForwardWorkspaceSize (the candidates' estimate is not
 * trusted), and one workspace, the largest, is shared by every layer.
 *
 * Fusion: cudnnConvolutionBiasActivationForward takes RELU (any algorithm) or
 * IDENTITY (IMPLICIT_PRECOMP_GEMM only); every other activation is conv + our
 * epilogue kernel. In Find mode both ways are timed and the faster is kept;
 * in heuristic mode the fused call is used only with tensor-op math (with FMA
 * math it is known to be much slower). FN_CUDA_NO_FUSE=1 never fuses.
 *
 * A smaller batch keeps the choice when it fits the workspace, else asks the
 * heuristics (once per batch size change). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "error.h"

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
    const cudnnTensorFormat_t fmt = cb->layout == CU_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    for (int t = 0; t < nt->n_tensors; t++) {
        const net_tensor *x = &nt->tensors[t];
        CK_CUDNN(cudnnSetTensor4dDescriptor(cb->tdesc[t], fmt, cb->cudnn_type, n, cu_channels(cb, t), x->h, x->w));
    }
    return FN_OK;
}

fn_status cu_create_descriptors(cuda_backend *cb)
{
    const net *nt = cb->net;
    const cudnnTensorFormat_t fmt = cb->layout == CU_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
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
        const net_tensor *out = &nt->tensors[op->out];
        CK_CUDNN(cudnnCreateFilterDescriptor(&p->wdesc));
        CK_CUDNN(cudnnSetFilter4dDescriptor(p->wdesc, cb->cudnn_type, fmt, out->c, cu_channels(cb, op->in) / op->groups,
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
            return fn_fail(FN_ERR_SHAPE, "%s: layer %s: cuDNN makes %d x %d x %d, the net %d x %d x %d", nt->arch,
                           op->name, c, h, w, out->c, out->h, out->w);
    }
    return FN_OK;
}

/* The workspace (algo, math) needs at the descriptors' batch; 0 when cuDNN
 * refuses the pair (then *need is left alone). */
static int workspace_for(cuda_backend *cb, int i, cudnnConvolutionFwdAlgo_t algo, cudnnMathType_t math,
                         size_t *need)
{
    const net_op *op = &cb->net->ops[i];
    op_plan *p = &cb->ops[i];
    if (cudnnSetConvolutionMathType(p->cdesc, math) != CUDNN_STATUS_SUCCESS)
        return 0;
    return cudnnGetConvolutionForwardWorkspaceSize(cb->cudnn, cb->tdesc[op->in], p->wdesc, p->cdesc,
                                                   cb->tdesc[op->out], algo, need) == CUDNN_STATUS_SUCCESS;
}

/* Picks an algorithm for conv op i at the batch its descriptors hold: the
 * first (fastest, for Find) candidate that ran, is deterministic (scores are
 * bit-repeatable: test_cuda_models checks it), keeps the precision's math
 * and whose re-queried workspace fits `limit` bytes. */
static fn_status select_algo(cuda_backend *cb, int i, int find, void *ws, size_t ws_bytes, size_t limit,
                             cudnnConvolutionFwdAlgo_t *algo, cudnnMathType_t *math, size_t *mem)
{
    const net_op *op = &cb->net->ops[i];
    op_plan *p = &cb->ops[i];
    cudnnTensorDescriptor_t xd = cb->tdesc[op->in], yd = cb->tdesc[op->out];
    int max_count = 0, got = 0;
    CK_CUDNN(cudnnGetConvolutionForwardAlgorithmMaxCount(cb->cudnn, &max_count));
    if (max_count < CUDNN_CONVOLUTION_FWD_ALGO_COUNT)
        max_count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    cudnnConvolutionFwdAlgoPerf_t *perf = fn_calloc((size_t)max_count, sizeof *perf);
    if (!perf)
        return FN_ERR_NO_MEMORY;
    for (int pass = find ? 0 : 1; pass < 2; pass++) {
        cudnnStatus_t s = cudnnSetConvolutionMathType(p->cdesc, math_request(cb->precision));
        if (s == CUDNN_STATUS_SUCCESS && pass == 0) {
            s = cudnnFindConvolutionForwardAlgorithmEx(cb->cudnn, xd, cu_tensor_ptr(cb, op->in), p->wdesc, p->w,
                                                       p->cdesc, yd, cu_tensor_ptr(cb, op->out), max_count, &got,
                                                       perf, ws, ws_bytes);
            if (s != CUDNN_STATUS_SUCCESS) { /* fall back to the heuristics */
                if (cb->verbose)
                    fprintf(stderr, "featurenorm cuda: %s: cudnnFind failed (%s); using heuristics\n", op->name,
                            cudnnGetErrorString(s));
                (void)cudaGetLastError();
                continue;
            }
        } else if (s == CUDNN_STATUS_SUCCESS) {
            s = cudnnGetConvolutionForwardAlgorithm_v7(cb->cudnn, xd, p->wdesc, p->cdesc, yd, max_count, &got, perf);
        }
        if (s != CUDNN_STATUS_SUCCESS) {
            free(perf);
            return cu_cudnn_error(s, pass == 0 ? "cudnnFindConvolutionForwardAlgorithmEx"
                                               : "cudnnGetConvolutionForwardAlgorithm_v7", __FILE__, __LINE__);
        }
        for (int j = 0; j < got; j++) {
            size_t need = 0;
            if (perf[j].status == CUDNN_STATUS_SUCCESS && perf[j].determinism == CUDNN_DETERMINISTIC &&
                math_ok(cb->precision, perf[j].mathType) && workspace_for(cb, i, perf[j].algo, perf[j].mathType, &need) && need <= limit) {
                *algo = perf[j].algo, *math = perf[j].mathType, *mem = need;
                free(perf);
                return FN_OK;
            }
        }
    }
    free(perf);
    /* Last resort: the implicit GEMMs, deterministic, with little or no workspace. */
    static const cudnnConvolutionFwdAlgo_t plain[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
    for (int j = 0; j < 2; j++) {
        size_t need = 0;
        if (workspace_for(cb, i, plain[j], math_request(cb->precision), &need) && need <= limit) {
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

/* Whether cuDNN's fused call can do conv op i with algorithm algo. */
static int fusable(const cuda_backend *cb, int i, cudnnConvolutionFwdAlgo_t algo)
{
    const net_op *op = &cb->net->ops[i];
    return op->act == ACT_RELU || (op->act == ACT_NONE && algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
}

/* Milliseconds of one conv op i, fused or not, at max_batch (median-free: the
 * best of 3 after a warm-up). A refused fused call gives a negative time. */
static fn_status time_conv(cuda_backend *cb, int i, int fused, float *ms)
{
    cudaEvent_t t0 = NULL, t1 = NULL;
    fn_status st = FN_OK;
    float best = -1;
    CK_CUDA_GOTO(cudaEventCreate(&t0), done);
    CK_CUDA_GOTO(cudaEventCreate(&t1), done);
    for (int r = 0; r < 4; r++) {
        CK_CUDA_GOTO(cudaEventRecord(t0, cb->compute), done);
        st = cu_run_conv(cb, i, cb->max_batch, fused);
        if (st != FN_OK) {
            if (fused) { /* refused (or failed): not an error, just not fusable */
                if (cb->verbose)
                    fprintf(stderr, "featurenorm cuda: %s: the fused call is not used: %s\n", cb->net->ops[i].name,
                            fn_last_error());
                (void)cudaGetLastError();
                st = FN_OK, best = -1;
                CK_CUDA_GOTO(cudaStreamSynchronize(cb->compute), done);
            }
            goto done;
        }
        CK_CUDA_GOTO(cudaEventRecord(t1, cb->compute), done);
        CK_CUDA_GOTO(cudaEventSynchronize(t1), done);
        float t = 0;
        CK_CUDA_GOTO(cudaEventElapsedTime(&t, t0, t1), done);
        if (r > 0 && (best < 0 || t < best))
            best = t;
    }
done:
    *ms = best;
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    return st;
}

/* Descriptors and algorithms for batch n (host-side calls only). */
fn_status cu_set_batch(cuda_backend *cb, int n)
{
    const net *nt = cb->net;
    cb->cur_n = -1; /* until all of it succeeded */
    FN_TRY(set_tensor_descs(cb, n));
    for (int i = 0; i < nt->n_ops; i++) {
        op_plan *p = &cb->ops[i];
        if (nt->ops[i].kind != OP_CONV)
            continue;
        p->algo = p->algo_max, p->math = p->math_max;
        size_t need = 0, mem = 0;
        if (n != cb->max_batch && (!workspace_for(cb, i, p->algo_max, p->math_max, &need) || need > cb->ws_bytes))
            FN_TRY(select_algo(cb, i, 0, NULL, 0, cb->ws_bytes, &p->algo, &p->math, &mem));
        CK_CUDNN(cudnnSetConvolutionMathType(p->cdesc, p->math));
        p->fuse = p->fuse_wanted && fusable(cb, i, p->algo);
    }
    cb->cur_n = n;
    return FN_OK;
}

static int same_conv(const cuda_backend *cb, const net_op *a, const net_op *b)
{
    const net *nt = cb->net;
    const net_tensor *ai = &nt->tensors[a->in], *bi = &nt->tensors[b->in];
    return cu_channels(cb, a->in) == cu_channels(cb, b->in) && ai->h == bi->h && ai->w == bi->w &&
           nt->tensors[a->out].c == nt->tensors[b->out].c && a->k == b->k && a->stride == b->stride && a->pad == b->pad && a->groups == b->groups &&
           a->act == b->act && (a->res >= 0) == (b->res >= 0);
}

/* Runs the first convolution once with the plainest algorithm, so that module
 * loading and first-call costs stay out of Find's timings. Only a courtesy to
 * the timings: cuDNN may refuse IMPLICIT_GEMM without workspace for some
 * shapes and types (BF16 NHWC among them), and a refusal is not an error. */
static fn_status warm_up(cuda_backend *cb)
{
    const net *nt = cb->net;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        op_plan *p = &cb->ops[i];
        if (op->kind != OP_CONV)
            continue;
        const float one = 1.0f, zero = 0.0f;
        CK_CUDNN(cudnnSetConvolutionMathType(p->cdesc, math_request(cb->precision)));
        cudnnStatus_t s = cudnnConvolutionForward(cb->cudnn, &one, cb->tdesc[op->in], cu_tensor_ptr(cb, op->in),
                                                  p->wdesc, p->w, p->cdesc, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  NULL, 0, &zero, cb->tdesc[op->out], cu_tensor_ptr(cb, op->out));
        if (cu_cudnn_refused(s)) {
            if (cb->verbose)
                fprintf(stderr, "featurenorm cuda: warm-up on %s refused (%s); Find runs without it\n", op->name,
                        cudnnGetErrorString(s));
            (void)cudaGetLastError();
            return FN_OK;
        }
        if (s != CUDNN_STATUS_SUCCESS)
            return cu_cudnn_error(s, "cudnnConvolutionForward (warm-up)", __FILE__, __LINE__);
        CK_CUDA(cudaStreamSynchronize(cb->compute));
        return FN_OK;
    }
    return FN_OK;
}

/* Chooses every convolution's algorithm and fusion at max_batch, then
 * allocates the one workspace they share. */
fn_status cu_choose_algorithms(cuda_backend *cb)
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
        FN_TRY(warm_up(cb));
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
            if (nt->ops[j].kind == OP_CONV && same_conv(cb, op, &nt->ops[j]))
                twin = j;
        if (twin >= 0) {
            const op_plan *t = &cb->ops[twin];
            p->algo_max = t->algo_max, p->math_max = t->math_max, p->ws_max = t->ws_max;
            p->fuse_wanted = t->fuse_wanted, p->ms_fused = t->ms_fused, p->ms_plain = t->ms_plain;
        } else {
            CK_GOTO(select_algo(cb, i, !cb->heuristic, search, search_bytes, limit, &p->algo_max, &p->math_max,
                                &p->ws_max), done);
            p->ms_fused = p->ms_plain = -1;
            if (!cb->no_fuse && fusable(cb, i, p->algo_max)) {
                if (cb->heuristic) {
                    p->fuse_wanted = p->math_max != CUDNN_FMA_MATH;
                } else { /* time both ways, in the search workspace */
                    void *ws = cb->workspace;
                    size_t wsb = cb->ws_bytes;
                    cb->workspace = search, cb->ws_bytes = search_bytes;
                    p->algo = p->algo_max, p->math = p->math_max;
                    cudnnStatus_t ms = cudnnSetConvolutionMathType(p->cdesc, p->math);
                    st = ms == CUDNN_STATUS_SUCCESS ? FN_OK
                                                    : cu_cudnn_error(ms, "cudnnSetConvolutionMathType", __FILE__, __LINE__);
                    if (st == FN_OK)
                        st = time_conv(cb, i, 0, &p->ms_plain);
                    if (st == FN_OK)
                        st = time_conv(cb, i, 1, &p->ms_fused);
                    cb->workspace = ws, cb->ws_bytes = wsb;
                    if (st != FN_OK)
                        goto done;
                    p->fuse_wanted = p->ms_fused >= 0 && p->ms_fused < p->ms_plain;
                }
            }
        }
        if (p->ws_max > need)
            need = p->ws_max;
        if (cb->verbose)
            fprintf(stderr, "featurenorm cuda: %-24s algo %d math %d workspace %.1f MiB fused %s (%.3f vs %.3f ms)%s\n",
                    op->name, (int)p->algo_max, (int)p->math_max, p->ws_max / MIB, p->fuse_wanted ? "yes" : "no",
                    p->ms_fused, p->ms_plain, twin >= 0 ? " (same as before)" : "");
    }
done:
    if (search)
        cudaFree(search);
    if (st != FN_OK)
        return st;
    FN_TRY(cu_dev_alloc(cb, &cb->workspace, need, "the convolution workspace"));
    cb->ws_bytes = need;
    return cu_set_batch(cb, cb->max_batch);
}
