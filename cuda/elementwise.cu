/* elementwise.cu: the small ops around cuDNN's convolutions and cuBLAS's GEMMs.
 *
 *   bias_act        conv epilogue when cuDNN cannot fuse it: act(y + b[c] (+ res))
 *   affine          pre-activation BatchNorm: act(x * scale[c] + shift[c])
 *   maxpool         k x k window, stride, padding that never wins
 *   avgpool         adaptive average pool with PyTorch's (possibly overlapping) bins
 *   shortcut_a      option-A shortcut: stride-2 subsample, zero-padded channels
 *   scale_channels  squeeze-excitation: x * s[n, c]
 *   linear_epilogue act(acc + b) after a GEMM, in the tensor's dtype (+ float copy)
 *   clip            min(x, clip) for ReAct
 *   to_f32_rows     a tensor as float rows in PyTorch's flatten order
 *
 * Each works on NCHW or NHWC tensors of float, half or bfloat16 and computes
 * in float32. One thread per output element in a grid-stride loop; indices
 * are 32-bit because the backend keeps every tensor below 2^31 elements
 * (cuDNN needs that too) and 64-bit division is slow on the GPU. The CPU twins
 * are the same-named functions in host/cpu/backend_cpu.c; activations follow
 * its activate() expression for expression. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <limits.h>
#include <math.h>

#include "kernels.h"

#define THREADS 256

static __device__ __forceinline__ float ld(const float *p, size_t i) { return p[i]; }
static __device__ __forceinline__ float ld(const __half *p, size_t i) { return __half2float(p[i]); }
static __device__ __forceinline__ float ld(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }
static __device__ __forceinline__ void st(float *p, size_t i, float v) { p[i] = v; }
static __device__ __forceinline__ void st(__half *p, size_t i, float v) { p[i] = __float2half_rn(v); }
static __device__ __forceinline__ void st(__nv_bfloat16 *p, size_t i, float v) { p[i] = __float2bfloat16_rn(v); }

static __device__ __forceinline__ float activate(float v, int act)
{
    switch (act) {
    case FN_ACT_RELU: return v > 0 ? v : 0;
    case FN_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case FN_ACT_HARDSWISH: return v <= -3 ? 0 : v >= 3 ? v : v * (v + 3) / 6;
    case FN_ACT_HARDSIGMOID: return v <= -3 ? 0 : v >= 3 ? 1 : v / 6 + 0.5f;
    default: return v;
    }
}

#define GRID_STRIDE(i, total)                                                         \
    for (unsigned i = blockIdx.x * THREADS + threadIdx.x; i < (total); i += gridDim.x * THREADS)

static unsigned grid_for(size_t work)
{
    size_t blocks = (work + THREADS - 1) / THREADS;
    return (unsigned)(blocks < 65536 ? (blocks ? blocks : 1) : 65536);
}

/* Runs the launch statement with T the C++ type of `dtype`. */
#define DISPATCH(dtype, ...)                                                          \
    switch (dtype) {                                                                  \
    case FN_DT_F32: { typedef float T; __VA_ARGS__; break; }                          \
    case FN_DT_F16: { typedef __half T; __VA_ARGS__; break; }                         \
    case FN_DT_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; break; }                 \
    default: return cudaErrorInvalidValue;                                            \
    }

static bool too_big(size_t elems) { return elems == 0 || elems > (size_t)INT_MAX; }

static size_t elems_of(fn_shape s) { return (size_t)s.n * s.c * s.h * s.w; }

/* Channel of flat element i. */
static __device__ __forceinline__ unsigned channel(unsigned i, unsigned C, unsigned HW, int nhwc)
{
    return nhwc ? i % C : (i / HW) % C;
}

/* ---- per-channel affine family ---------------------------------------------- */

template <typename T>
static __global__ void __launch_bounds__(THREADS)
bias_act(T *y, const T *__restrict__ res, const float *__restrict__ bias, unsigned total,
         unsigned C, unsigned HW, int nhwc, int act)
{
    GRID_STRIDE(i, total) {
        float v = ld(y, i) + bias[channel(i, C, HW, nhwc)];
        if (res)
            v += ld(res, i);
        st(y, i, activate(v, act));
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
affine(const T *__restrict__ x, T *__restrict__ y, const float *__restrict__ scale,
       const float *__restrict__ shift, unsigned total, unsigned C, unsigned HW, int nhwc, int act)
{
    GRID_STRIDE(i, total) {
        unsigned c = channel(i, C, HW, nhwc);
        st(y, i, activate(ld(x, i) * scale[c] + shift[c], act));
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
scale_channels(const T *__restrict__ x, const T *__restrict__ sc, T *__restrict__ y,
               unsigned total, unsigned C, unsigned HW, int nhwc)
{
    GRID_STRIDE(i, total) {
        /* sc is n x C: NCHW plane i / HW is exactly n * C + c */
        unsigned k = nhwc ? i / (HW * C) * C + i % C : i / HW;
        st(y, i, ld(x, i) * ld(sc, k));
    }
}

extern "C" cudaError_t fn_launch_bias_act(void *y, const void *res, const float *bias, fn_shape s,
                                          int act, cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total))
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(s.h * s.w), nhwc = s.layout == FN_NHWC;
    DISPATCH(s.dtype, bias_act<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (T *)y, (const T *)res, bias, (unsigned)total, s.c, hw, nhwc, act));
    return cudaGetLastError();
}

extern "C" cudaError_t fn_launch_affine(const void *x, void *y, const float *scale,
                                        const float *shift, fn_shape s, int act, cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total))
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(s.h * s.w), nhwc = s.layout == FN_NHWC;
    DISPATCH(s.dtype, affine<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, scale, shift, (unsigned)total, s.c, hw, nhwc, act));
    return cudaGetLastError();
}

extern "C" cudaError_t fn_launch_scale_channels(const void *x, const void *sc, void *y, fn_shape s,
                                                cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total))
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(s.h * s.w), nhwc = s.layout == FN_NHWC;
    DISPATCH(s.dtype, scale_channels<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (const T *)sc, (T *)y, (unsigned)total, s.c, hw, nhwc));
    return cudaGetLastError();
}

/* ---- spatial ops: one thread per output element ----------------------------- */

/* Output element i of an n x C x OH x OW tensor -> (img, c, oh, ow). */
struct pos {
    unsigned img, c, oh, ow;
};

static __device__ __forceinline__ pos decompose(unsigned i, unsigned C, unsigned OH, unsigned OW,
                                                int nhwc)
{
    pos p;
    if (nhwc) {
        p.c = i % C;
        i /= C;
        p.ow = i % OW;
        i /= OW;
        p.oh = i % OH;
        p.img = i / OH;
    } else {
        p.ow = i % OW;
        i /= OW;
        p.oh = i % OH;
        i /= OH;
        p.c = i % C;
        p.img = i / C;
    }
    return p;
}

/* Offset of (img, c, h, w) in an n x C x H x W tensor. */
static __device__ __forceinline__ size_t offset(unsigned img, unsigned c, int h, int w, unsigned C,
                                                int H, int W, int nhwc)
{
    return nhwc ? (((size_t)img * H + h) * W + w) * C + c : (((size_t)img * C + c) * H + h) * W + w;
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
maxpool(const T *__restrict__ x, T *__restrict__ y, unsigned total, unsigned C, int H, int W,
        int OH, int OW, int k, int stride, int pad, int nhwc)
{
    GRID_STRIDE(i, total) {
        pos p = decompose(i, C, OH, OW, nhwc);
        float m = -INFINITY;
        for (int kh = 0; kh < k; kh++) {
            int ih = (int)p.oh * stride - pad + kh;
            if (ih < 0 || ih >= H)
                continue;
            for (int kw = 0; kw < k; kw++) {
                int iw = (int)p.ow * stride - pad + kw;
                if (iw >= 0 && iw < W) {
                    float v = ld(x, offset(p.img, p.c, ih, iw, C, H, W, nhwc));
                    if (v > m)
                        m = v;
                }
            }
        }
        st(y, i, m);
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
avgpool(const T *__restrict__ x, T *__restrict__ y, unsigned total, unsigned C, int H, int W,
        int OH, int OW, int nhwc)
{
    GRID_STRIDE(i, total) {
        pos p = decompose(i, C, OH, OW, nhwc);
        int h0 = (int)p.oh * H / OH, h1 = ((int)(p.oh + 1) * H + OH - 1) / OH;
        int w0 = (int)p.ow * W / OW, w1 = ((int)(p.ow + 1) * W + OW - 1) / OW;
        double sum = 0; /* as the CPU backend: an average of up to H*W terms */
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++)
                sum += ld(x, offset(p.img, p.c, ih, iw, C, H, W, nhwc));
        st(y, i, (float)(sum / ((h1 - h0) * (w1 - w0))));
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
shortcut_a(const T *__restrict__ x, T *__restrict__ y, unsigned total, unsigned Cin, int H, int W,
           unsigned Cout, int OH, int OW, int nhwc)
{
    const int pad = ((int)Cout - (int)Cin) / 2;
    GRID_STRIDE(i, total) {
        pos p = decompose(i, Cout, OH, OW, nhwc);
        int ci = (int)p.c - pad;
        float v = 0.0f;
        if (ci >= 0 && ci < (int)Cin)
            v = ld(x, offset(p.img, (unsigned)ci, 2 * p.oh, 2 * p.ow, Cin, H, W, nhwc));
        st(y, i, v);
    }
}

extern "C" cudaError_t fn_launch_maxpool(const void *x, void *y, fn_shape s, int oh, int ow, int k,
                                         int stride, int pad, cudaStream_t stream)
{
    const size_t total = (size_t)s.n * s.c * oh * ow;
    if (too_big(total) || too_big(elems_of(s)) || k <= 0 || stride <= 0)
        return cudaErrorInvalidValue;
    const int nhwc = s.layout == FN_NHWC;
    DISPATCH(s.dtype, maxpool<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, (unsigned)total, s.c, s.h, s.w, oh, ow, k, stride,
                          pad, nhwc));
    return cudaGetLastError();
}

extern "C" cudaError_t fn_launch_avgpool(const void *x, void *y, fn_shape s, int oh, int ow,
                                         cudaStream_t stream)
{
    const size_t total = (size_t)s.n * s.c * oh * ow;
    if (too_big(total) || too_big(elems_of(s)) || oh <= 0 || ow <= 0 ||
        (double)(oh + 1) * s.h > INT_MAX || (double)(ow + 1) * s.w > INT_MAX)
        return cudaErrorInvalidValue;
    const int nhwc = s.layout == FN_NHWC;
    DISPATCH(s.dtype, avgpool<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, (unsigned)total, s.c, s.h, s.w, oh, ow, nhwc));
    return cudaGetLastError();
}

extern "C" cudaError_t fn_launch_shortcut_a(const void *x, void *y, fn_shape s, int cout, int oh,
                                            int ow, cudaStream_t stream)
{
    const size_t total = (size_t)s.n * cout * oh * ow;
    if (too_big(total) || too_big(elems_of(s)) || cout < s.c || 2 * (oh - 1) >= s.h ||
        2 * (ow - 1) >= s.w)
        return cudaErrorInvalidValue;
    const int nhwc = s.layout == FN_NHWC;
    DISPATCH(s.dtype, shortcut_a<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, (unsigned)total, s.c, s.h, s.w, cout, oh, ow, nhwc));
    return cudaGetLastError();
}

/* ---- the head ------------------------------------------------------------------ */

template <typename T>
static __global__ void __launch_bounds__(THREADS)
linear_epilogue(const float *__restrict__ acc, const float *__restrict__ bias, unsigned total,
                unsigned K, int act, T *__restrict__ y, float *__restrict__ y_f32)
{
    GRID_STRIDE(i, total) {
        float v = activate(acc[i] + bias[i % K], act);
        if (y)
            st(y, i, v);
        if (y_f32)
            y_f32[i] = v;
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
clip(const T *__restrict__ x, T *__restrict__ y, unsigned total, float c)
{
    GRID_STRIDE(i, total) {
        float v = ld(x, i);
        st(y, i, v < c ? v : c); /* as the CPU: NaN becomes the clip value */
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
to_f32_rows(const T *__restrict__ x, float *__restrict__ out, unsigned total, unsigned C,
            unsigned HW, int nhwc)
{
    const unsigned D = C * HW;
    GRID_STRIDE(i, total) {
        unsigned img = i / D, d = i % D; /* d = c * HW + p */
        size_t from = nhwc ? (size_t)img * D + (d % HW) * C + d / HW : i;
        out[i] = ld(x, from);
    }
}

extern "C" cudaError_t fn_launch_linear_epilogue(const float *acc, const float *bias, int n, int k,
                                                 int act, void *y, fn_dtype dtype, float *y_f32,
                                                 cudaStream_t stream)
{
    const size_t total = (size_t)n * k;
    if (too_big(total))
        return cudaErrorInvalidValue;
    DISPATCH(dtype, linear_epilogue<T><<<grid_for(total), THREADS, 0, stream>>>(
                        acc, bias, (unsigned)total, (unsigned)k, act, (T *)y, y_f32));
    return cudaGetLastError();
}

extern "C" cudaError_t fn_launch_clip(const void *x, void *y, size_t count, fn_dtype dtype,
                                      float c, cudaStream_t stream)
{
    if (too_big(count))
        return cudaErrorInvalidValue;
    DISPATCH(dtype, clip<T><<<grid_for(count), THREADS, 0, stream>>>((const T *)x, (T *)y,
                                                                        (unsigned)count, c));
    return cudaGetLastError();
}

extern "C" cudaError_t fn_launch_to_f32_rows(const void *x, fn_shape s, float *out,
                                             cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total))
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(s.h * s.w);
    const int nhwc = s.layout == FN_NHWC && hw > 1;
    DISPATCH(s.dtype, to_f32_rows<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, out, (unsigned)total, s.c, hw, nhwc));
    return cudaGetLastError();
}
