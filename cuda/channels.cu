/* channels.cu: ops that move values between channels or layouts.
 *
 *   shortcut_a   option-A shortcut: stride-2 subsample, zero-padded channels
 *   concat       channel concat; in NHWC a strided copy per part
 *   to_f32_rows  a tensor as float rows in PyTorch's flatten order (for the host)
 *
 * Reference: cpu_shortcut_a() in host/cpu/plain_ops.c, oneDNN concat, and the
 * features reorder to plain rows (host/cpu/dnnl_ops.c); tests/test_cuda_ops.c cases
 * shortcut, concat, and every case's features. */
#include "common.cuh"

template <typename T>
static __global__ void __launch_bounds__(THREADS)
shortcut_a(const T *__restrict__ x, T *__restrict__ y, unsigned total, unsigned Cin, int H, int W, unsigned Cout,
           int OH, int OW, int nhwc)
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

/* Part x (n x Cp x HW) into channels [c0, c0 + Cp) of y (n x C x HW): a copy,
 * no rounding. */
template <typename T>
static __global__ void __launch_bounds__(THREADS)
concat_part(const T *__restrict__ x, T *__restrict__ y, unsigned total, unsigned Cp, unsigned C, unsigned c0,
            unsigned HW, int nhwc)
{
    GRID_STRIDE(i, total) {
        size_t to;
        if (nhwc) {
            unsigned c = i % Cp, q = i / Cp; /* q = img * HW + p */
            to = (size_t)q * C + c0 + c;
        } else {
            unsigned p = i % HW, c = i / HW % Cp, img = i / HW / Cp;
            to = ((size_t)img * C + c0 + c) * HW + p;
        }
        y[to] = x[i];
    }
}

template <typename T>
static __global__ void __launch_bounds__(THREADS)
to_f32_rows(const T *__restrict__ x, float *__restrict__ out, unsigned total, unsigned C, unsigned HW, int nhwc)
{
    const unsigned D = C * HW;
    GRID_STRIDE(i, total) {
        unsigned img = i / D, d = i % D; /* d = c * HW + p */
        size_t from = nhwc ? (size_t)img * D + (d % HW) * C + d / HW : i;
        out[i] = ld(x, from);
    }
}

extern "C" cudaError_t cu_shortcut_a(const void *x, void *y, cu_shape s, int cout, int oh, int ow,
                                     cudaStream_t stream)
{
    const size_t total = (size_t)s.n * cout * oh * ow;
    if (too_big(total) || too_big(elems_of(s)) || cout < s.c || 2 * (oh - 1) >= s.h || 2 * (ow - 1) >= s.w)
        return cudaErrorInvalidValue;
    const int nhwc = s.layout == CU_NHWC;
    DISPATCH(s.dtype, shortcut_a<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, (T *)y, (unsigned)total, s.c, s.h, s.w, cout, oh, ow, nhwc));
    return cudaGetLastError();
}

extern "C" cudaError_t cu_concat(const void *const *parts, const int *channels, int n_parts, void *y, cu_shape out,
                                 cudaStream_t stream)
{
    if (too_big(elems_of(out)) || n_parts < 1)
        return cudaErrorInvalidValue;
    int c0 = 0;
    for (int j = 0; j < n_parts; j++)
        c0 += channels[j];
    if (c0 != out.c)
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(out.h * out.w);
    const int nhwc = out.layout == CU_NHWC;
    c0 = 0;
    for (int j = 0; j < n_parts; c0 += channels[j++]) {
        const size_t total = (size_t)out.n * channels[j] * hw;
        if (total == 0)
            continue;
        DISPATCH(out.dtype, concat_part<T><<<grid_for(total), THREADS, 0, stream>>>(
                                (const T *)parts[j], (T *)y, (unsigned)total, channels[j], out.c, c0, hw, nhwc));
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess)
            return e;
    }
    return cudaSuccess;
}

extern "C" cudaError_t cu_to_f32_rows(const void *x, cu_shape s, float *out, cudaStream_t stream)
{
    const size_t total = elems_of(s);
    if (too_big(total))
        return cudaErrorInvalidValue;
    const unsigned hw = (unsigned)(s.h * s.w);
    const int nhwc = s.layout == CU_NHWC && hw > 1;
    DISPATCH(s.dtype, to_f32_rows<T><<<grid_for(total), THREADS, 0, stream>>>(
                          (const T *)x, out, (unsigned)total, s.c, hw, nhwc));
    return cudaGetLastError();
}
