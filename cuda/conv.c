/* conv.c: one convolution through cuDNN, fused or not. Both the forward pass
 * (forward.c) and the algorithm timings (algos.c) run it. */
#include "backend_cuda.h"
#include "error.h"

/* Conv op i at batch n, through cuDNN's fused call when `fused`. A fused call
 * cuDNN refuses before running anything returns FN_ERR_UNAVAILABLE. */
fn_status cu_run_conv(cuda_backend *cb, int i, int n, int fused)
{
    const net_op *op = &cb->net->ops[i];
    op_plan *p = &cb->ops[i];
    const void *x = cu_tensor_ptr(cb, op->in);
    void *y = cu_tensor_ptr(cb, op->out);
    const void *res = op->res >= 0 ? cu_tensor_ptr(cb, op->res) : NULL;
    cudnnTensorDescriptor_t xd = cb->tdesc[op->in], yd = cb->tdesc[op->out];
    const float one = 1.0f, zero = 0.0f, alpha2 = res ? 1.0f : 0.0f;
    if (fused) {
        /* y = act(conv(x) + alpha2 * z + bias); z = y with alpha2 = 0 when
         * there is no residual (z needs y's descriptor either way). */
        cudnnStatus_t s = cudnnConvolutionBiasActivationForward(
            cb->cudnn, &one, xd, x, p->wdesc, p->w, p->cdesc, p->algo, cb->workspace, cb->ws_bytes, &alpha2, yd,
            res ? res : y, p->bdesc, p->b_typed, op->act == ACT_RELU ? cb->relu : cb->identity, yd, y);
        if (s == CUDNN_STATUS_SUCCESS)
            return FN_OK;
        if (cu_cudnn_refused(s))
            return fn_fail(FN_ERR_UNAVAILABLE, "cudnnConvolutionBiasActivationForward refused: %s",
                           cudnnGetErrorString(s));
        return cu_cudnn_error(s, "cudnnConvolutionBiasActivationForward", __FILE__, __LINE__);
    }
    CK_CUDNN(cudnnConvolutionForward(cb->cudnn, &one, xd, x, p->wdesc, p->w, p->cdesc, p->algo, cb->workspace,
                                     cb->ws_bytes, &zero, yd, y));
    CK_CUDA(cu_bias_act(y, res, p->b, cu_shape_of(cb, op->out, n), op->act, op->alpha, cb->compute));
    return FN_OK;
}
