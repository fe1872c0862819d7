/* common.cuh: what every kernel file shares: loads and stores by element type
 * (float math whatever the storage), the grid of a grid-stride loop, the
 * dtype dispatch of a launcher, and the activation.
 *
 * activate() is net_activate() of host/net.h formula for formula (the CPU
 * backend's one definition), so an epilogue computes exactly what the CPU
 * loop computes up to the rounding of expf. */
#ifndef FN_CUDA_COMMON_CUH
#define FN_CUDA_COMMON_CUH

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

/* net_activate() (host/net.h): keep the two identical. */
static __device__ __forceinline__ float activate(float v, int act, float alpha)
{
    switch (act) {
    case CU_ACT_NONE: return v;
    case CU_ACT_RELU: return v > 0 ? v : 0;
    case CU_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case CU_ACT_HARDSWISH: return v <= -3 ? 0 : v >= 3 ? v : v * (v + 3) / 6;
    case CU_ACT_HARDSIGMOID: return v <= -3 ? 0 : v >= 3 ? 1 : v / 6 + 0.5f;
    case CU_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case CU_ACT_SILU: return v / (1.0f + expf(-v));
    case CU_ACT_LEAKY: return v >= 0 ? v : v * alpha;
    }
    return v;
}

/* One thread per element, 32-bit indices: the backend keeps every tensor
 * below 2^31 elements (cuDNN needs that too) and 64-bit division is slow. */
#define GRID_STRIDE(i, total)                                                         \
    for (unsigned i = blockIdx.x * THREADS + threadIdx.x; i < (total); i += gridDim.x * THREADS)

static inline unsigned grid_for(size_t work)
{
    size_t blocks = (work + THREADS - 1) / THREADS;
    return (unsigned)(blocks < 65536 ? (blocks ? blocks : 1) : 65536); /* grid-stride beyond */
}

static inline bool too_big(size_t elems) { return elems == 0 || elems > (size_t)INT_MAX; }

static inline size_t elems_of(cu_shape s) { return (size_t)s.n * s.c * s.h * s.w; }

static inline bool act_known(int act) { return act >= CU_ACT_NONE && act <= CU_ACT_LEAKY; }

/* Runs the launch statement with T the C++ type of `dtype`. */
#define DISPATCH(dtype, ...)                                                          \
    switch (dtype) {                                                                  \
    case CU_F32: { typedef float T; __VA_ARGS__; break; }                             \
    case CU_F16: { typedef __half T; __VA_ARGS__; break; }                            \
    case CU_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; break; }                    \
    default: return cudaErrorInvalidValue;                                            \
    }

/* Channel of flat element i of an n x C x HW tensor. */
static __device__ __forceinline__ unsigned channel(unsigned i, unsigned C, unsigned HW, int nhwc)
{
    return nhwc ? i % C : (i / HW) % C;
}

/* Element i of an n x C x OH x OW tensor -> (img, c, oh, ow). */
struct pos {
    unsigned img, c, oh, ow;
};

static __device__ __forceinline__ pos decompose(unsigned i, unsigned C, unsigned OH, unsigned OW, int nhwc)
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
static __device__ __forceinline__ size_t offset(unsigned img, unsigned c, int h, int w, unsigned C, int H, int W,
                                                int nhwc)
{
    return nhwc ? (((size_t)img * H + h) * W + w) * C + c : (((size_t)img * C + c) * H + h) * W + w;
}

#endif
