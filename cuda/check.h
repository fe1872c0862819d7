/* check.h: CUDA runtime, cuDNN and cuBLAS status checks that never exit.
 *
 * Every call into those libraries goes through one of these macros. On failure
 * the thread's last-error message becomes "file:line: call: error (name)" and
 * the status is mapped onto the library's enum: an allocation failure of any
 * of the three is FN_ERR_DEVICE_MEMORY, anything else FN_ERR_DEVICE.
 *
 *   CK_CUDA(cudaMemsetAsync(p, 0, bytes, s));      returns the status on failure
 *   CK_CUDNN_GOTO(cudnnCreate(&h), fail);           sets `st` and jumps instead
 *
 * The _GOTO forms need a `fn_status st` in scope, for functions that must free
 * what they have built so far. */
#ifndef FN_CUDA_CHECK_H
#define FN_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "error.h"

static inline fn_status cu_cuda_error(cudaError_t e, const char *call, const char *file, int line)
{
    /* Clears the error unless it is sticky (then the context is unusable and
     * every later call says so too). */
    (void)cudaGetLastError();
    return fn_fail(e == cudaErrorMemoryAllocation ? FN_ERR_DEVICE_MEMORY : FN_ERR_DEVICE,
                   "%s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString(e), cudaGetErrorName(e));
}

static inline fn_status cu_cudnn_error(cudnnStatus_t e, const char *call, const char *file, int line)
{
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail); /* cuDNN 9: why, when it knows */
    /* cuDNN 9 split the old ALLOC_FAILED into host (its new alias) and device
     * allocation failures; either means this batch does not fit. */
    int alloc = e == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                e == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
    return fn_fail(alloc ? FN_ERR_DEVICE_MEMORY : FN_ERR_DEVICE,
                   "%s:%d: %s: %s%s%s", file, line, call, cudnnGetErrorString(e),
                   detail[0] ? ": " : "", detail);
}

/* A call cuDNN declined for these arguments (cuDNN 9 statuses are a category
 * plus a detail): a cue to do it another way, not a failure. */
static inline int cu_cudnn_refused(cudnnStatus_t e)
{
    return CUDNN_STATUS_CATEGORY(e) == CUDNN_STATUS_NOT_SUPPORTED || CUDNN_STATUS_CATEGORY(e) == CUDNN_STATUS_BAD_PARAM;
}

static inline fn_status cu_cublas_error(cublasStatus_t e, const char *call, const char *file, int line)
{
    return fn_fail(e == CUBLAS_STATUS_ALLOC_FAILED ? FN_ERR_DEVICE_MEMORY : FN_ERR_DEVICE,
                   "%s:%d: %s: %s (%s)", file, line, call, cublasGetStatusString(e),
                   cublasGetStatusName(e));
}

#define CK_CUDA(call)                                                          \
    do {                                                                       \
        cudaError_t ck_e_ = (call);                                            \
        if (ck_e_ != cudaSuccess)                                              \
            return cu_cuda_error(ck_e_, #call, __FILE__, __LINE__);            \
    } while (0)

#define CK_CUDNN(call)                                                         \
    do {                                                                       \
        cudnnStatus_t ck_e_ = (call);                                          \
        if (ck_e_ != CUDNN_STATUS_SUCCESS)                                     \
            return cu_cudnn_error(ck_e_, #call, __FILE__, __LINE__);           \
    } while (0)

#define CK_CUBLAS(call)                                                        \
    do {                                                                       \
        cublasStatus_t ck_e_ = (call);                                         \
        if (ck_e_ != CUBLAS_STATUS_SUCCESS)                                    \
            return cu_cublas_error(ck_e_, #call, __FILE__, __LINE__);          \
    } while (0)

#define CK_CUDA_GOTO(call, label)                                              \
    do {                                                                       \
        cudaError_t ck_e_ = (call);                                            \
        if (ck_e_ != cudaSuccess) {                                            \
            st = cu_cuda_error(ck_e_, #call, __FILE__, __LINE__);              \
            goto label;                                                        \
        }                                                                      \
    } while (0)

#define CK_CUDNN_GOTO(call, label)                                             \
    do {                                                                       \
        cudnnStatus_t ck_e_ = (call);                                          \
        if (ck_e_ != CUDNN_STATUS_SUCCESS) {                                   \
            st = cu_cudnn_error(ck_e_, #call, __FILE__, __LINE__);             \
            goto label;                                                        \
        }                                                                      \
    } while (0)

#define CK_CUBLAS_GOTO(call, label)                                            \
    do {                                                                       \
        cublasStatus_t ck_e_ = (call);                                         \
        if (ck_e_ != CUBLAS_STATUS_SUCCESS) {                                  \
            st = cu_cublas_error(ck_e_, #call, __FILE__, __LINE__);            \
            goto label;                                                        \
        }                                                                      \
    } while (0)

/* A fn_status-returning call inside a function with a cleanup label. */
#define CK_GOTO(call, label)                                                   \
    do {                                                                       \
        if ((st = (call)) != FN_OK)                                            \
            goto label;                                                        \
    } while (0)

#endif
