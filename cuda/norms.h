/* norms.h: FeatureNorm of a tapped tensor, on the device.
 *
 *   norms[i * ld + col] = (1/C) * sum_c sqrt( sum_{h,w} max(x[i,c,h,w], 0)^2 )
 *
 * for the n images of x, read once, accumulated in float32 whatever x's
 * dtype, without atomics: the result is the same on every run for a given
 * shape. CPU twin: feature_norms() in host/cpu/backend_cpu.c. */
#ifndef FN_CUDA_NORMS_H
#define FN_CUDA_NORMS_H

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Floats of scratch the launcher needs for a tensor of this shape. */
size_t fn_norms_scratch_floats(fn_shape s);

/* x: the tensor; scratch: fn_norms_scratch_floats(s) floats; norms: a float
 * matrix with row stride ld, of which column col of rows 0..n-1 is written. */
cudaError_t fn_launch_feature_norms(const void *x, fn_shape s, float *scratch, float *norms,
                                    int ld, int col, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
