/* epilogue.cu: per-channel affine work around cuDNN's convolutions and cuBLAS's GEMMs.
 *
 *   bias_act         conv epilogue when cuDNN does not fuse it: act(y + b[c] (+ res))
 *   affine           a BatchNorm no conv absorbed: act(x * scale[c] + shift[c])
 *   linear_epilogue  act(acc + b) after a GEMM, in the tensor's dtype (+ a float copy)
 *
 * Reference: oneDNN's convolution (affine: a depthwise 1 x 1 one) and inner product
 * with their bias and eltwise post-ops (host/cpu/dnnl_ops.c); tests/test_cuda_ops.c
 * cases conv, affine, linear. */
#include "common.cuh"

template <typename T>
static __global__ void __launch_bounds__(THREADS)
bias_act(T *y, const T *__restrict__ res, const float *__restrict__ bias, unsigned total, unsigned C,
         unsigned HW, int nhwc, int act, float alpha)
{
    GRID_STRIDE(i, total) {
        float v = ld(y, i) + bias[channel(i, C, HW, nhwc)];
        if (res)
            v += ld(res, i);
        st(y, i, activate(v, act, alpha));
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
affine(const T *__restrict__ x, T *__restrict__ y, const float *__restrict__ scale,
       const float *__restrict__ shift, unsigned total, unsigned C, unsigned HW, int nhwc, int act, float alpha)
{
    GRID_STRIDE(i, total) {
        unsigned c = channel(i, C, HW, nhwc);
        st(y, i, activate(ld(x, i) * scale[c] + shift[c], act, alpha));
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
linear_epilogue(const float *__restrict__ acc, const float *__restrict__ bias, unsigned total, unsigned K,
                int act, float alpha, T *__restrict__ y, float *__restrict__ y_f32)
{
    GRID_STRIDE(i, total) {
        float v = activate(acc[i] + bias[i % K], act, alpha);
        if (y)
            st(y, i, v);
        if (y_f32)
            y_f32[i] = v;
    }
}

extern "C" cudaError_t cu_bias_act(void *y, const void *res, const float *bias, cu_shape s, int act, float alpha,
                                   cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total) || !act_known(act))
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(s.h * s.w), nhwc = s.layout == CU_NHWC;
    DISPATCH(s.dtype, bias_act<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (T *)y, (const T *)res, bias, (unsigned)total, s.c, hw, nhwc, act, alpha));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_affine(const void *x, void *y, const float *scale, const float *shift, cu_shape s,
                                 int act, float alpha, cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total) || !act_known(act))
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(s.h * s.w), nhwc = s.layout == CU_NHWC;
    DISPATCH(s.dtype, affine<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, scale, shift, (unsigned)total, s.c, hw, nhwc, act, alpha));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_linear_epilogue(const float *acc, const float *bias, int n, int k, int act, float alpha,
                                          void *y, cu_dtype dtype, float *y_f32, cudaStream_t stream)
{
    const size_t total = (size_t)n * k;
    if (n <= 0 || k <= 0 || too_big(total) || !act_known(act))
        return cudaErrorInvalidValue;
    DISPATCH(dtype, linear_epilogue<T><<<grid_for(total), THREADS, 0, stream>>>(
                        acc, bias, (unsigned)total, (unsigned)k, act, alpha, (T *)y, y_f32));
    return cudaGetLastError();
}
