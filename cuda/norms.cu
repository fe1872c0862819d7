/* norms.cu: FeatureNorm of a tapped tensor, straight after the op that made it.
 *
 *   norm[i] = (1/C) * sum_c sqrt( sum_{h,w} max(x[i,c,h,w], 0)^2 )
 *
 * Two kernels, both deterministic (fixed reduction trees, no atomics):
 *   1. sum of squares after ReLU per (image, channel) - per (image, spatial
 *      split, channel) for NHWC - into a float scratch;
 *   2. per image: add the splits, sqrt per channel, mean over channels, into
 *      column `col` of the N x B norm matrix.
 * The feature map is read once, in float32 whatever its storage type. How the
 * work is split depends only on the tensor's C, H and W, never on the batch,
 * so an image's norm does not change with the batch it came in.
 *
 * NCHW (FP32/TF32): one warp per channel plane, lanes stride over H*W.
 * NHWC (FP16/BF16): a block covers a slab of spatial rows of one image with
 *   threads across channels (16-byte loads when C allows), then reduces the
 *   rows in shared memory.
 * Reference: cpu_feature_norms() in host/cpu/norms.c; tests/test_cuda_norms.c and
 * every case of tests/test_cuda_ops.c compare them. Declared in kernels.h. */
#include <stdint.h>

#include "common.cuh"
#define WARPS (THREADS / 32)
#define ROW_ITERS 8 /* NHWC: spatial rows each thread visits per split */

/* V consecutive elements, loaded as one aligned vector. */
template <typename T, int V>
struct alignas(sizeof(T) * V) vec_t {
    T v[V];
};

template <typename T, int V>
static __device__ __forceinline__ void add_relu_sq(const T *p, float *acc)
{
    vec_t<T, V> x = *reinterpret_cast<const vec_t<T, V> *>(p);
#pragma unroll
    for (int j = 0; j < V; j++) {
        float f = ld(x.v, j);
        f = f > 0.0f ? f : 0.0f; /* also maps NaN to 0, as the CPU's `if (v > 0)` */
        acc[j] += f * f;
    }
}

/* grid (n, ceil(C / WARPS)); warp w of block (i, g) sums channel g*WARPS + w. */
template <typename T, int V>
static __global__ void __launch_bounds__(THREADS)
nchw_sumsq(const T *__restrict__ x, int C, int HW, float *__restrict__ partial)
{
    const int img = blockIdx.x, lane = threadIdx.x & 31;
    const int c = blockIdx.y * WARPS + (threadIdx.x >> 5);
    if (c >= C) /* the whole warp leaves together; no block barrier follows */
        return;
    const T *p = x + ((size_t)img * C + c) * (size_t)HW;
    float acc[V];
#pragma unroll
    for (int j = 0; j < V; j++)
        acc[j] = 0.0f;
    const int nv = HW / V; /* the launcher picks V > 1 only when V divides HW */
#pragma unroll 4
    for (int k = lane; k < nv; k += 32)
        add_relu_sq<T, V>(p + (size_t)k * V, acc);
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < V; j++)
        s += acc[j];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0)
        partial[(size_t)img * C + c] = s;
}

/* grid (n * S); block (bx, by), bx * by = THREADS. Block b covers image b / S,
 * spatial rows [s * rows, s * rows + rows) with s = b % S; thread (tx, ty)
 * sums V channels starting at (col0 + tx) * V over rows ty, ty + by, ... */
template <typename T, int V>
static __global__ void __launch_bounds__(THREADS)
nhwc_sumsq(const T *__restrict__ x, int C, int HW, int rows, int S, float *__restrict__ partial)
{
    __shared__ float sh[THREADS * V];
    const int b = blockIdx.x, img = b / S, s = b % S;
    const int tx = threadIdx.x, ty = threadIdx.y, bx = blockDim.x, by = blockDim.y;
    const int p0 = s * rows, p1 = min(p0 + rows, HW);
    const int cv = C / V; /* V divides C */
    const T *base = x + (size_t)img * HW * (size_t)C;
    float *slot = sh + (ty * bx + tx) * V;
    for (int col0 = 0; col0 < cv; col0 += bx) { /* same trip count for every thread */
        const int col = col0 + tx;
        float acc[V];
#pragma unroll
        for (int j = 0; j < V; j++)
            acc[j] = 0.0f;
        if (col < cv)
            for (int p = p0 + ty; p < p1; p += by)
                add_relu_sq<T, V>(base + (size_t)p * C + (size_t)col * V, acc);
#pragma unroll
        for (int j = 0; j < V; j++)
            slot[j] = acc[j];
        __syncthreads();
        for (int half = by >> 1; half > 0; half >>= 1) { /* by is a power of two */
            if (ty < half)
#pragma unroll
                for (int j = 0; j < V; j++)
                    slot[j] += slot[half * bx * V + j];
            __syncthreads();
        }
        if (ty == 0 && col < cv)
#pragma unroll
            for (int j = 0; j < V; j++)
                partial[(size_t)b * C + (size_t)col * V + j] = slot[j];
        __syncthreads(); /* sh is reused by the next column block */
    }
}

/* grid (n); partial is n x S x C. */
static __global__ void __launch_bounds__(THREADS)
finalize(const float *__restrict__ partial, int C, int S, float *__restrict__ norms, int ld, int col)
{
    __shared__ float sh[THREADS];
    const int img = blockIdx.x, t = threadIdx.x;
    const float *p = partial + (size_t)img * S * C;
    float acc = 0.0f;
    for (int c = t; c < C; c += THREADS) {
        float ss = 0.0f;
        for (int s = 0; s < S; s++)
            ss += p[(size_t)s * C + c];
        acc += sqrtf(ss);
    }
    sh[t] = acc;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half >>= 1) {
        if (t < half)
            sh[t] += sh[t + half];
        __syncthreads();
    }
    if (t == 0)
        norms[(size_t)img * ld + col] = sh[0] / (float)C;
}

/* ---- launch geometry --------------------------------------------------------- */

static int next_pow2(int v)
{
    int p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/* Elements per 16-byte load for this dtype. */
static int vec_width(cu_dtype t) { return t == CU_F32 ? 4 : 8; }

typedef struct nhwc_geometry {
    int v, bx, by, rows, splits;
} nhwc_geometry;

static nhwc_geometry nhwc_plan(cu_shape s, int aligned)
{
    nhwc_geometry g;
    const int hw = s.h * s.w, vw = vec_width(s.dtype);
    g.v = aligned && s.c % vw == 0 ? vw : 1;
    int cols = s.c / g.v;
    g.bx = next_pow2(cols) < THREADS ? next_pow2(cols) : THREADS;
    g.by = THREADS / g.bx;
    g.rows = g.by * ROW_ITERS;
    g.splits = (hw + g.rows - 1) / g.rows;
    return g;
}

size_t cu_norms_scratch_floats(cu_shape s)
{
    if (s.layout == CU_NCHW)
        return (size_t)s.n * s.c;
    /* The split count depends on the vector width, which depends on the
     * pointer's alignment: size for the larger of the two plans. */
    nhwc_geometry a = nhwc_plan(s, 1), b = nhwc_plan(s, 0);
    int splits = a.splits > b.splits ? a.splits : b.splits;
    return (size_t)s.n * splits * s.c;
}

template <typename T>
static cudaError_t launch_typed(const T *x, cu_shape s, float *scratch, float *norms, int ld,
                                int col, cudaStream_t stream)
{
    const int hw = s.h * s.w;
    const int aligned = ((uintptr_t)x % 16) == 0;
    const int vw = vec_width(s.dtype);
    int splits = 1;
    if (s.layout == CU_NCHW) {
        dim3 grid(s.n, (s.c + WARPS - 1) / WARPS);
        if (aligned && hw % vw == 0)
            nchw_sumsq<T, (int)(16 / sizeof(T))><<<grid, THREADS, 0, stream>>>(x, s.c, hw, scratch);
        else
            nchw_sumsq<T, 1><<<grid, THREADS, 0, stream>>>(x, s.c, hw, scratch);
    } else {
        nhwc_geometry g = nhwc_plan(s, aligned);
        splits = g.splits;
        if ((double)s.n * g.splits > 2147483647.0)
            return cudaErrorInvalidValue;
        dim3 block(g.bx, g.by);
        unsigned blocks = (unsigned)s.n * (unsigned)g.splits;
        if (g.v > 1)
            nhwc_sumsq<T, (int)(16 / sizeof(T))><<<blocks, block, 0, stream>>>(x, s.c, hw, g.rows, g.splits, scratch);
        else
            nhwc_sumsq<T, 1><<<blocks, block, 0, stream>>>(x, s.c, hw, g.rows, g.splits, scratch);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    finalize<<<s.n, THREADS, 0, stream>>>(scratch, s.c, splits, norms, ld, col);
    return cudaGetLastError();
}

extern "C" cudaError_t cu_feature_norms(const void *x, cu_shape s, float *scratch,
                                               float *norms, int ld, int col, cudaStream_t stream)
{
    if (s.n <= 0 || s.c <= 0 || s.h <= 0 || s.w <= 0 || (double)s.c * s.h * s.w > 2147483647.0 ||
        (s.c + WARPS - 1) / WARPS > 65535)
        return cudaErrorInvalidValue; /* beyond the grid's limits */
    switch (s.dtype) {
    case CU_F32: return launch_typed((const float *)x, s, scratch, norms, ld, col, stream);
    case CU_F16: return launch_typed((const __half *)x, s, scratch, norms, ld, col, stream);
    case CU_BF16: return launch_typed((const __nv_bfloat16 *)x, s, scratch, norms, ld, col, stream);
    }
    return cudaErrorInvalidValue;
}
