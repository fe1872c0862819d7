/* npy.h: NumPy .npy output (format 1.0), so NumPy users load results directly. */
#ifndef FN_NPY_H
#define FN_NPY_H

#include <stddef.h>

#include "featurenorm.h"

/* A rows x cols float32 matrix, C order, little-endian. Written atomically. */
fn_status npy_write_f32(const char *path, const float *data, size_t rows, size_t cols);

#endif
