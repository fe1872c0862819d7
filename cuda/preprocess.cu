/* preprocess.cu: the network's input on the device.
 *
 *   uint8 RGB, n x S x S x 3  ->  normalised NCHW float, or NHWC float/half/bf16
 *   float NCHW (normalised)   ->  NHWC float/half/bf16 (the float API on TF32/FP16/BF16)
 *
 * NHWC outputs may have more than 3 channels, the extra ones zero: the stem
 * convolution's input padded to 16 bytes a pixel (backend_cuda.c).
 *
 * The byte path looks every value up in table[c][v] = (v/255 - mean[c]) /
 * std[c], computed once on the host by net_input_table exactly as the CPU
 * backend computes it, so FP32 inputs are bit-identical to the CPU's. The
 * table travels as a __grid_constant__ kernel parameter (constant memory, no
 * global state shared between models) and is copied to shared memory at block
 * start: lookups with a different byte in every lane would serialise in the
 * constant cache, while shared memory serves them in parallel.
 *
 * Also the host-side float -> FP16/BF16 rounding used for weights, so that
 * host and device round the same way (cuda_fp16.h's own host functions). */
#include <string.h>

#include "common.cuh"

struct norm_table {
    float v[3][256];
};

/* One thread per pixel: reads its 3 bytes, writes 3 values (NHWC: then
 * zeros up to the cs channels the padded stem's input has). */
template <typename T>
static __global__ void __launch_bounds__(THREADS)
preprocess_u8(const uint8_t *__restrict__ src, T *__restrict__ dst, size_t pixels, int hw,
              int nhwc, int cs, const __grid_constant__ norm_table table)
{
    __shared__ float tab[3][256];
    for (int i = threadIdx.x; i < 3 * 256; i += THREADS)
        tab[i / 256][i % 256] = table.v[i / 256][i % 256];
    __syncthreads();
    for (size_t q = (size_t)blockIdx.x * THREADS + threadIdx.x; q < pixels;
         q += (size_t)gridDim.x * THREADS) {
        const uint8_t *s = src + q * 3;
        if (nhwc) {
            for (int c = 0; c < cs; c++)
                st(dst, q * cs + c, c < 3 ? tab[c][s[c]] : 0.0f);
        } else {
            size_t img = q / hw, p = q % hw;
            for (int c = 0; c < 3; c++)
                st(dst, (img * 3 + c) * hw + p, tab[c][s[c]]);
        }
    }
}

/* One thread per pixel: gathers its sc floats from the planes (then zeros up
 * to c, NHWC only). */
template <typename T>
static __global__ void __launch_bounds__(THREADS)
convert_nchw_f32(const float *__restrict__ src, int sc, T *__restrict__ dst, size_t pixels, int c, int hw,
                 int nhwc)
{
    for (size_t q = (size_t)blockIdx.x * THREADS + threadIdx.x; q < pixels;
         q += (size_t)gridDim.x * THREADS) {
        size_t img = q / hw, p = q % hw;
        for (int k = 0; k < c; k++) {
            size_t from = (img * sc + k) * hw + p;
            st(dst, nhwc ? q * c + k : from, k < sc ? src[from] : 0.0f);
        }
    }
}

extern "C" cudaError_t cu_preprocess_u8(const uint8_t *src, void *dst, cu_shape s,
                                               const float table[3][256], cudaStream_t stream)
{
    const int nhwc = s.layout == CU_NHWC;
    if (s.c < 3 || (s.c != 3 && !nhwc) || s.n <= 0 || s.h <= 0 || s.w <= 0)
        return cudaErrorInvalidValue;
    norm_table t;
    memcpy(t.v, table, sizeof t.v);
    const size_t pixels = (size_t)s.n * s.h * s.w;
    const int hw = s.h * s.w;
    DISPATCH(s.dtype, preprocess_u8<<<grid_for(pixels), THREADS, 0, stream>>>(src, (T *)dst, pixels, hw, nhwc, s.c, t));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_convert_nchw_f32(const float *src, int src_c, void *dst, cu_shape s,
                                                  cudaStream_t stream)
{
    const int nhwc = s.layout == CU_NHWC;
    if (s.n <= 0 || src_c <= 0 || s.c < src_c || (s.c != src_c && !nhwc) || s.h <= 0 || s.w <= 0)
        return cudaErrorInvalidValue;
    const size_t pixels = (size_t)s.n * s.h * s.w;
    const int hw = s.h * s.w;
    DISPATCH(s.dtype, convert_nchw_f32<<<grid_for(pixels), THREADS, 0, stream>>>(src, src_c, (T *)dst, pixels, s.c, hw,
                                                                                 nhwc));
    return cudaGetLastError();
}

extern "C" void cu_round_to_half(const float *src, void *dst, size_t count, cu_dtype dtype)
{
    if (dtype == CU_F16) {
        __half *d = (__half *)dst;
        for (size_t i = 0; i < count; i++)
            d[i] = __float2half_rn(src[i]);
    } else if (dtype == CU_BF16) {
        __nv_bfloat16 *d = (__nv_bfloat16 *)dst;
        for (size_t i = 0; i < count; i++)
            d[i] = __float2bfloat16_rn(src[i]);
    }
}
