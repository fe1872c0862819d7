/* kernels.h: the CUDA backend's own kernels, one launcher per op, callable from C.
 *
 * Each launcher enqueues its kernel(s) on `stream`, checks the launch with
 * cudaGetLastError() and returns that error (cudaSuccess when it went in);
 * bad arguments give cudaErrorInvalidValue before anything is launched.
 * Pointers are device pointers unless said otherwise. Tensors are a batch of n
 * images of c x h x w, stored NCHW (FP32) or NHWC (TF32, FP16, BF16) as
 * `layout` says, with elements of type `dtype`; all math is float32. Element
 * counts of one tensor must fit in 31 bits (the backend checks at create).
 *
 *   preprocess.cu  uint8 / float input -> the net's input tensor; host rounding
 *   epilogue.cu    bias + residual + activation after a conv or GEMM; affine
 *   pool.cu        max pool, adaptive average pool, k x k average pool
 *   elementwise.cu add (+act), activation, scale (broadcast or elementwise), clip, uniform fill
 *   channels.cu    option-A shortcut, channel concat, float rows for the host
 *   norms.cu       FeatureNorm of a tapped tensor
 *
 * The reference of each is the CPU backend's oneDNN primitive or plain loop
 * for the same op (host/cpu/dnnl_ops.c, plain_ops.c, norms.c; the input table
 * is net_input_table in host/net.c); tests/test_cuda_ops.c compares them op by op. */
#ifndef FN_CUDA_KERNELS_H
#define FN_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cu_dtype { CU_F32, CU_F16, CU_BF16 } cu_dtype;
typedef enum cu_layout { CU_NCHW, CU_NHWC } cu_layout;

/* net.h's net_act, by value (same numbering; backend_cuda.h asserts it). */
enum {
    CU_ACT_NONE, CU_ACT_RELU, CU_ACT_RELU6, CU_ACT_HARDSWISH, CU_ACT_HARDSIGMOID, CU_ACT_SIGMOID,
    CU_ACT_SILU, CU_ACT_LEAKY
};

/* Geometry of one batched tensor. */
typedef struct cu_shape {
    int n, c, h, w;
    cu_dtype dtype;
    cu_layout layout;
} cu_shape;

static inline size_t cu_dtype_size(cu_dtype t) { return t == CU_F32 ? 4 : 2; }

/* ---- preprocess.cu ------------------------------------------------------ */

/* uint8 RGB, n x S x S x 3 (HWC per image), into the network's input tensor
 * (3 x S x S; NHWC may have dst_shape.c > 3 channels, the rest set to zero)
 * using table[c][v], the exact float normalisation of byte v in channel c
 * (net_input_table): FP32 results equal the CPU's bit for bit. */
cudaError_t cu_preprocess_u8(const uint8_t *src, void *dst, cu_shape dst_shape, const float table[3][256],
                             cudaStream_t stream);

/* float NCHW (n x src_c x h x w, already normalised) into a tensor of
 * dst_shape's dtype and layout (rounded to nearest); NHWC may have more
 * channels than src_c, set to zero. */
cudaError_t cu_convert_nchw_f32(const float *src, int src_c, void *dst, cu_shape dst_shape, cudaStream_t stream);

/* Host-side rounding of floats to FP16/BF16 (round to nearest even), the same
 * conversion the device intrinsics do. dst holds count 16-bit values. */
void cu_round_to_half(const float *src, void *dst, size_t count, cu_dtype dtype);

/* ---- epilogue.cu -------------------------------------------------------- */

/* Convolution epilogue, in place: y = act(y + bias[c] (+ res)). res may be
 * NULL; it has y's shape. bias is float, c entries. alpha: ACT_LEAKY's slope. */
cudaError_t cu_bias_act(void *y, const void *res, const float *bias, cu_shape s, int act, float alpha,
                        cudaStream_t stream);

/* y = act(x * scale[c] + shift[c]): a BatchNorm no convolution absorbed. */
cudaError_t cu_affine(const void *x, void *y, const float *scale, const float *shift, cu_shape s, int act,
                      float alpha, cudaStream_t stream);

/* Linear layer epilogue: acc is n x k float (row-major, one row per image);
 * y (dtype, n x k) = act(acc + bias); also into y_f32 (n x k) when not NULL.
 * y may be NULL. */
cudaError_t cu_linear_epilogue(const float *acc, const float *bias, int n, int k, int act, float alpha, void *y,
                               cu_dtype dtype, float *y_f32, cudaStream_t stream);

/* ---- pool.cu ------------------------------------------------------------ */

/* k x k max pool with stride and padding that never wins the max.
 * in: s; out: s.c x oh x ow. */
cudaError_t cu_maxpool(const void *x, void *y, cu_shape s, int oh, int ow, int k, int stride, int pad,
                       cudaStream_t stream);

/* Adaptive average pool to oh x ow with PyTorch's bins
 * [floor(i*H/O), ceil((i+1)*H/O)). */
cudaError_t cu_avgpool(const void *x, void *y, cu_shape s, int oh, int ow, cudaStream_t stream);

/* k x k average pool with stride and pad; the divisor is k*k with
 * count_include_pad, else the number of window cells inside the input. */
cudaError_t cu_avgpool_k(const void *x, void *y, cu_shape s, int oh, int ow, int k, int stride, int pad,
                         int count_include_pad, cudaStream_t stream);

/* ---- elementwise.cu ----------------------------------------------------- */

/* y = act(x + res) (OP_ADD), or act(x) when res is NULL (OP_ACT). */
cudaError_t cu_add_act(const void *x, const void *res, void *y, cu_shape s, int act, float alpha,
                       cudaStream_t stream);

/* y = x * sc: sc is n x c x 1 x 1 when broadcast (squeeze-excitation), else
 * x's shape. */
cudaError_t cu_scale(const void *x, const void *sc, void *y, cu_shape s, int broadcast, cudaStream_t stream);

/* y = min(x, clip) elementwise over count values of dtype (ReAct). */
cudaError_t cu_clip(const void *x, void *y, size_t count, cu_dtype dtype, float clip, cudaStream_t stream);

/* count values of dtype, uniform in [-1, 1) from (index, seed): the same
 * values for the same seed. Any count (not limited to 31 bits). */
cudaError_t cu_fill_uniform(void *y, size_t count, cu_dtype dtype, uint32_t seed, cudaStream_t stream);

/* ---- channels.cu -------------------------------------------------------- */

/* Option-A shortcut: y[c] = x[c - (cout - s.c)/2, ::2, ::2], zero elsewhere;
 * y is cout x oh x ow. */
cudaError_t cu_shortcut_a(const void *x, void *y, cu_shape s, int cout, int oh, int ow, cudaStream_t stream);

/* Channel concat: parts[j] (n x channels[j] x out.h x out.w, out's dtype and
 * layout) into channels [sum of the earlier channels, ...) of y (out). */
cudaError_t cu_concat(const void *const *parts, const int *channels, int n_parts, void *y, cu_shape out,
                      cudaStream_t stream);

/* A tensor as float rows, one per image, in PyTorch's flatten order
 * (c*h*w + ...): out is n x (c*h*w). */
cudaError_t cu_to_f32_rows(const void *x, cu_shape s, float *out, cudaStream_t stream);

/* ---- norms.cu ----------------------------------------------------------- */

/*   norms[i * ld + col] = (1/C) * sum_c sqrt( sum_{h,w} max(x[i,c,h,w], 0)^2 )
 * for the n images of x, read once, accumulated in float32 whatever x's
 * dtype, without atomics: the same result on every run for a given shape.
 * scratch: cu_norms_scratch_floats(s) floats. */
size_t cu_norms_scratch_floats(cu_shape s);
cudaError_t cu_feature_norms(const void *x, cu_shape s, float *scratch, float *norms, int ld, int col,
                             cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
