/* elementwise.cu: ops that read and write the same position of same-shaped tensors.
 *
 *   add_act  act(x + res) (OP_ADD), act(x) (OP_ACT)
 *   scale    x * s, s per (image, channel) (squeeze-excitation) or per element
 *   clip     min(x, clip) for ReAct
 *   uniform  pseudo-random values in [-1, 1): what Find times its candidates on
 *
 * Reference: oneDNN binary add/mul (with an eltwise post-op) and eltwise
 * (host/cpu/dnnl_ops.c); tests/test_cuda_ops.c cases add, act, scale, and ReAct;
 * uniform has no CPU twin: test_cuda_ops' case fill checks its range and spread. */
#include "common.cuh"

template <typename T>
static __global__ void __launch_bounds__(THREADS)
add_act(const T *__restrict__ x, const T *__restrict__ r, T *__restrict__ y, unsigned total, int act, float alpha)
{
    GRID_STRIDE(i, total) {
        float v = ld(x, i) + (r ? ld(r, i) : 0.0f);
        st(y, i, activate(v, act, alpha));
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
scale(const T *__restrict__ x, const T *__restrict__ sc, T *__restrict__ y, unsigned total, unsigned C,
      unsigned HW, int nhwc, int broadcast)
{
    GRID_STRIDE(i, total) {
        /* broadcast: sc is n x C; NCHW plane i / HW is exactly n * C + c */
        unsigned k = !broadcast ? i : nhwc ? i / (HW * C) * C + i % C : i / HW;
        st(y, i, ld(x, i) * ld(sc, k));
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

/* A 32-bit mix of (i, seed) (the finaliser of MurmurHash3): enough to make
 * every element differ, so that no algorithm is timed on all-equal data. */
static __device__ __forceinline__ uint32_t mix(uint64_t i, uint32_t seed)
{
    uint32_t h = (uint32_t)i ^ (uint32_t)(i >> 32) * 0x9e3779b9u ^ seed;
    h ^= h >> 16, h *= 0x85ebca6bu, h ^= h >> 13, h *= 0xc2b2ae35u, h ^= h >> 16;
    return h;
}

template <typename T>
static __global__ void __launch_bounds__(THREADS) uniform(T *__restrict__ y, size_t count, uint32_t seed)
{
    for (size_t i = (size_t)blockIdx.x * THREADS + threadIdx.x; i < count; i += (size_t)gridDim.x * THREADS)
        st(y, i, (float)(mix(i, seed) >> 8) * (2.0f / 16777216.0f) - 1.0f); /* 24 bits: exact in float */
}

extern "C" cudaError_t cu_fill_uniform(void *y, size_t count, cu_dtype dtype, uint32_t seed, cudaStream_t stream)
{
    if (count == 0)
        return cudaErrorInvalidValue;
    DISPATCH(dtype, uniform<T><<<grid_for(count), THREADS, 0, stream>>>((T *)y, count, seed));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_add_act(const void *x, const void *res, void *y, cu_shape s, int act, float alpha,
                                  cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total) || !act_known(act))
        return cudaErrorInvalidValue;
    DISPATCH(s.dtype, add_act<T><<<grid_for(total), THREADS, 0, stream>>>((const T *)x, (const T *)res, (T *)y,
                                                                           (unsigned)total, act, alpha));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_scale(const void *x, const void *sc, void *y, cu_shape s, int broadcast,
                                cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total))
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(s.h * s.w), nhwc = s.layout == CU_NHWC;
    DISPATCH(s.dtype, scale<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (const T *)sc, (T *)y, (unsigned)total, s.c, hw, nhwc, broadcast != 0));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_clip(const void *x, void *y, size_t count, cu_dtype dtype, float c, cudaStream_t stream)
{
    if (too_big(count))
        return cudaErrorInvalidValue;
    DISPATCH(dtype, clip<T><<<grid_for(count), THREADS, 0, stream>>>((const T *)x, (T *)y, (unsigned)count, c));
    return cudaGetLastError();
}
