/* params.c: the net's parameters on the device, in one block uploaded once:
 * convolution weights in the storage type and the layout's filter order (KCRS
 * for NCHW, KRSC for NHWC), float biases (plus a storage-type copy for cuDNN's
 * fused call), linear weights with their columns in the activation layout's
 * flatten order; the padded stem's filters with zero weights for the zero
 * input channels (device.c, cu_input_channels). FP16/BF16 rounding happens
 * on the host, round to nearest even, exactly as the device intrinsics round. */
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "error.h"

/* Lays out every parameter in one block; returns its size. */
size_t cu_plan_params(cuda_backend *cb)
{
    const net *nt = cb->net;
    size_t top = 0;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        op_plan *p = &cb->ops[i];
        const size_t cin = (size_t)cu_channels(cb, op->in), cout = (size_t)nt->tensors[op->out].c;
        if (op->kind == OP_CONV) {
            p->w_at = cu_take(&top, cout * (cin / op->groups) * op->k * op->k * cb->esize);
            p->b_at = cu_take(&top, cout * 4);
            p->bt_at = cb->dtype == CU_F32 ? p->b_at : cu_take(&top, cout * cb->esize);
        } else if (op->kind == OP_AFFINE) {
            p->scale_at = cu_take(&top, cin * 4);
            p->b_at = cu_take(&top, cin * 4);
        } else if (op->kind == OP_LINEAR) {
            p->w_at = cu_take(&top, cout * net_tensor_elems(nt, op->in) * cb->esize);
            p->b_at = cu_take(&top, cout * 4);
        }
    }
    return cu_take(&top, 0);
}

/* count floats into dst in the storage type. */
static void put_values(const cuda_backend *cb, void *dst, const float *src, size_t count)
{
    if (cb->dtype == CU_F32)
        memcpy(dst, src, count * sizeof(float));
    else
        cu_round_to_half(src, dst, count, cb->dtype);
}

/* Builds the parameter block on the host (converted, and reordered for NHWC)
 * and uploads it in one copy. */
fn_status cu_upload_params(cuda_backend *cb)
{
    const net *nt = cb->net;
    fn_status st = FN_OK;
    char *host = fn_malloc(cb->params_bytes ? cb->params_bytes : 1);
    float *tmp = NULL;
    size_t tmp_size = 0;
    if (!host)
        return FN_ERR_NO_MEMORY;
    memset(host, 0, cb->params_bytes);
    const int nhwc = cb->layout == CU_NHWC;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        op_plan *p = &cb->ops[i];
        const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
        if (op->kind == OP_CONV) {
            /* cd >= cin: the padded stem's extra input channels get zero weights */
            const size_t cin = (size_t)(in->c / op->groups), kk = (size_t)op->k * op->k;
            const size_t cd = (size_t)(cu_channels(cb, op->in) / op->groups), count = (size_t)out->c * cd * kk;
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
                memset(tmp, 0, count * sizeof(float));
                for (size_t o = 0; o < (size_t)out->c; o++)
                    for (size_t c = 0; c < cin; c++)
                        for (size_t r = 0; r < kk; r++)
                            tmp[(o * kk + r) * cd + c] = op->w[(o * cin + c) * kk + r];
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
