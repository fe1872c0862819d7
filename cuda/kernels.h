/* kernels.h: the CUDA backend's own kernels, as launchers callable from C.
 *
 * Each launcher enqueues its kernel(s) on `stream`, checks the launch with
 * cudaGetLastError() and returns that error (cudaSuccess when it went in).
 * Pointers are device pointers unless said otherwise. Tensors are a batch of n
 * images of c x h x w, stored NCHW (FP32/TF32) or NHWC (FP16/BF16) as `layout`
 * says, with elements of type `dtype`. Element counts of one tensor must fit
 * in 31 bits (the backend checks this at create; cuDNN needs it too).
 *
 * The CPU twin of each kernel is the same op in host/cpu/backend_cpu.c (or
 * host/logit_scores.c, net_input_table in host/net.c); tests/test_cuda_norms.c
 * and tests/test_cuda_parity.c compare them. */
#ifndef FN_CUDA_KERNELS_H
#define FN_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fn_dtype { FN_DT_F32, FN_DT_F16, FN_DT_BF16 } fn_dtype;
typedef enum fn_layout { FN_NCHW, FN_NHWC } fn_layout;

/* The activations of net.h's net_act, by value (same numbering). */
enum { FN_ACT_NONE, FN_ACT_RELU, FN_ACT_RELU6, FN_ACT_HARDSWISH, FN_ACT_HARDSIGMOID };

/* Geometry of one batched tensor. */
typedef struct fn_shape {
    int n, c, h, w;
    fn_dtype dtype;
    fn_layout layout;
} fn_shape;

static inline size_t fn_dtype_size(fn_dtype t) { return t == FN_DT_F32 ? 4 : 2; }

/* ---- preprocess.cu ------------------------------------------------------ */

/* uint8 RGB, n x S x S x 3 (HWC per image), into the network's input tensor
 * (3 x S x S) using table[c][v], the exact float normalisation of byte v in
 * channel c (net_input_table): FP32 results equal the CPU's bit for bit. */
cudaError_t fn_launch_preprocess_u8(const uint8_t *src, void *dst, fn_shape dst_shape,
                                    const float table[3][256], cudaStream_t stream);

/* float NCHW (n x c x h x w, already normalised) into a tensor of dst_shape's
 * dtype and layout (rounded to nearest). */
cudaError_t fn_launch_convert_nchw_f32(const float *src, void *dst, fn_shape dst_shape,
                                       cudaStream_t stream);

/* Host-side rounding of float weights to FP16/BF16 (round to nearest even),
 * the same conversion the device intrinsics do. dst holds count 16-bit values. */
void fn_host_round_to_half(const float *src, void *dst, size_t count, fn_dtype dtype);

/* ---- elementwise.cu ----------------------------------------------------- */

/* Convolution epilogue, in place: y = act(y + bias[c] (+ res)). res may be
 * NULL; it has y's shape. bias is float, c entries. */
cudaError_t fn_launch_bias_act(void *y, const void *res, const float *bias, fn_shape s, int act,
                               cudaStream_t stream);

/* y = act(x * scale[c] + shift[c]): a BatchNorm no convolution absorbed. */
cudaError_t fn_launch_affine(const void *x, void *y, const float *scale, const float *shift,
                             fn_shape s, int act, cudaStream_t stream);

/* k x k max pool with stride and zero padding that never wins the max.
 * in: s; out: s.c x oh x ow. */
cudaError_t fn_launch_maxpool(const void *x, void *y, fn_shape s, int oh, int ow, int k,
                              int stride, int pad, cudaStream_t stream);

/* Adaptive average pool to oh x ow with PyTorch's bins
 * [floor(i*H/O), ceil((i+1)*H/O)). */
cudaError_t fn_launch_avgpool(const void *x, void *y, fn_shape s, int oh, int ow,
                              cudaStream_t stream);

/* Option-A shortcut: y[c] = x[c - (cout - s.c)/2, ::2, ::2], zero elsewhere;
 * y is cout x oh x ow. */
cudaError_t fn_launch_shortcut_a(const void *x, void *y, fn_shape s, int cout, int oh, int ow,
                                 cudaStream_t stream);

/* y = x * scale where scale is the per-image c x 1 x 1 tensor `sc`
 * (squeeze-excitation). */
cudaError_t fn_launch_scale_channels(const void *x, const void *sc, void *y, fn_shape s,
                                     cudaStream_t stream);

/* Linear layer epilogue: acc is n x k float (row-major, one row per image);
 * y (dtype, n x k) = act(acc + bias); also into y_f32 (n x k) when not NULL. */
cudaError_t fn_launch_linear_epilogue(const float *acc, const float *bias, int n, int k, int act,
                                      void *y, fn_dtype dtype, float *y_f32, cudaStream_t stream);

/* y = min(x, clip) elementwise over count values of dtype (ReAct). */
cudaError_t fn_launch_clip(const void *x, void *y, size_t count, fn_dtype dtype, float clip,
                           cudaStream_t stream);

/* A tensor as float rows, one per image, in PyTorch's flatten order
 * (c*h*w + ...): out is n x (c*h*w). */
cudaError_t fn_launch_to_f32_rows(const void *x, fn_shape s, float *out, cudaStream_t stream);

/* ---- scores.cu ---------------------------------------------------------- */

/* For n rows of k float logits: pred = argmax (first on ties), maxlogit,
 * msp = max softmax probability, energy = logsumexp. Any output may be NULL. */
cudaError_t fn_launch_logit_scores(const float *logits, int n, int k, int *pred, float *msp,
                                   float *maxlogit, float *energy, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
