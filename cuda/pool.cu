/* pool.cu: pooling, one thread per output element.
 *
 *   maxpool    k x k window, stride, padding that never wins the max
 *   avgpool    adaptive, with PyTorch's (possibly overlapping) bins
 *   avgpool_k  k x k window, stride, pad; count_include_pad as ONNX/PyTorch
 *
 * Reference: oneDNN pooling (max, avg include/exclude padding) and, for uneven
 * adaptive bins, cpu_adaptive_avgpool() in host/cpu/plain_ops.c; tests/test_cuda_ops.c
 * case pool. */
#include "common.cuh"

template <typename T>
static __global__ void __launch_bounds__(THREADS)
maxpool(const T *__restrict__ x, T *__restrict__ y, unsigned total, unsigned C, int H, int W, int OH, int OW,
        int k, int stride, int pad, int nhwc)
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
avgpool(const T *__restrict__ x, T *__restrict__ y, unsigned total, unsigned C, int H, int W, int OH, int OW,
        int nhwc)
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
avgpool_k(const T *__restrict__ x, T *__restrict__ y, unsigned total, unsigned C, int H, int W, int OH, int OW,
          int k, int stride, int pad, int include_pad, int nhwc)
{
    GRID_STRIDE(i, total) {
        pos p = decompose(i, C, OH, OW, nhwc);
        const int h0 = (int)p.oh * stride - pad, w0 = (int)p.ow * stride - pad;
        float sum = 0; /* float, in the CPU loop's order (rows, then columns) */
        int count = 0;
        for (int ih = h0; ih < h0 + k; ih++)
            for (int iw = w0; iw < w0 + k; iw++)
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                    sum += ld(x, offset(p.img, p.c, ih, iw, C, H, W, nhwc));
                    count++;
                }
        st(y, i, sum / (float)(include_pad ? k * k : count));
    }
}

extern "C" cudaError_t cu_maxpool(const void *x, void *y, cu_shape s, int oh, int ow, int k, int stride, int pad,
                                  cudaStream_t stream)
{
    const size_t total = (size_t)s.n * s.c * oh * ow;
    if (too_big(total) || too_big(elems_of(s)) || k <= 0 || stride <= 0)
        return cudaErrorInvalidValue;
    const int nhwc = s.layout == CU_NHWC;
    DISPATCH(s.dtype, maxpool<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, (unsigned)total, s.c, s.h, s.w, oh, ow, k, stride, pad, nhwc));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_avgpool(const void *x, void *y, cu_shape s, int oh, int ow, cudaStream_t stream)
{
    const size_t total = (size_t)s.n * s.c * oh * ow;
    if (too_big(total) || too_big(elems_of(s)) || oh <= 0 || ow <= 0 || (double)(oh + 1) * s.h > INT_MAX ||
        (double)(ow + 1) * s.w > INT_MAX)
        return cudaErrorInvalidValue;
    const int nhwc = s.layout == CU_NHWC;
    DISPATCH(s.dtype, avgpool<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, (unsigned)total, s.c, s.h, s.w, oh, ow, nhwc));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_avgpool_k(const void *x, void *y, cu_shape s, int oh, int ow, int k, int stride, int pad,
                                    int count_include_pad, cudaStream_t stream)
{
    const size_t total = (size_t)s.n * s.c * oh * ow;
    if (too_big(total) || too_big(elems_of(s)) || k <= 0 || stride <= 0 || pad < 0)
        return cudaErrorInvalidValue;
    const int nhwc = s.layout == CU_NHWC;
    DISPATCH(s.dtype, avgpool_k<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, (unsigned)total, s.c, s.h, s.w, oh, ow, k, stride, pad,
                          count_include_pad != 0, nhwc));
    return cudaGetLastError();
}
