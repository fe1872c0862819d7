/* npy.h: NumPy .npy output (format 1.0), so NumPy users load results directly. */
#ifndef FN_NPY_H
#define FN_NPY_H

#include <stddef.h>
#include <stdio.h>

#include "featurenorm.h"

/* A rows x cols float32 matrix, C order, little-endian, written to f. */
void npy_put_f32(FILE *f, const float *data, size_t rows, size_t cols);

#endif
