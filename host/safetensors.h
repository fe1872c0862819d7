/* safetensors.h: read-only, memory-mapped safetensors files.
 *
 * The header JSON is validated whole at open: dtypes, shapes, offsets inside the
 * file, sizes that match shape x dtype, no overlapping tensors. Tensor data is
 * converted to float32 on request (F32, F16, BF16, F64). */
#ifndef FN_SAFETENSORS_H
#define FN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "featurenorm.h"

#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end;   /* byte range within the data section */
} st_tensor;

typedef struct st_file st_file;

fn_status st_open(const char *path, st_file **out);
void st_close(st_file *f);
const char *st_path(const st_file *f);
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_dtype_name(st_dtype d);
/* 1 once tensor i has been read by st_read_f32 (strict loading: every tensor
 * of a weights file must be used by the architecture). */
int st_was_read(const st_file *f, int i);
/* Copy tensor `name` into dst as float32, after checking that it exists, is a
 * float dtype and has exactly this shape. Errors name the file and the tensor. */
fn_status st_read_f32(const st_file *f, const char *name, int ndim, const int64_t *shape,
                      float *dst);

/* The same for an F64 tensor, exactly (the fit statistics). */
fn_status st_read_f64(const st_file *f, const char *name, int ndim, const int64_t *shape,
                      double *dst);

#endif
