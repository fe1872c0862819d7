/* backend_cuda.h: the CUDA backend's shared state, for its own files only.
 *
 *   device.c        is a device usable; memory sizing, the largest batch that fits
 *   params.c        weights on the device: layout (KCRS or KRSC) and FP16/BF16 rounding
 *   conv.c          one convolution through cuDNN, fused (bias + activation) or not
 *   algos.c         cuDNN descriptors, algorithm choice (Find or heuristics), fusion
 *   forward.c       slots and streams: input, submit, collect; the ops of one batch
 *   backend_cuda.c  create and destroy
 *
 * Layouts: FP32 keeps activations NCHW float; TF32, FP16 and BF16 keep them
 * NHWC (what tensor-core convolutions and cuDNN's fused epilogues want) in
 * float, half or bfloat16, with float accumulation everywhere and FeatureNorms
 * always summed in float32. */
#ifndef FN_CUDA_BACKEND_H
#define FN_CUDA_BACKEND_H

#include <stdint.h>

#include "backend.h"
#include "check.h"
#include "kernels.h"

#define CUDA_SLOTS 3                     /* two batches on the device, one being decoded */
#define ALIGN 256                        /* bytes: every buffer and parameter */
#define CUBLAS_WS_BYTES ((size_t)32 << 20) /* cuBLAS's advice for Hopper */
#define MARGIN_BYTES ((size_t)256 << 20) /* cuDNN/cuBLAS internals, fragmentation */
#define MIB (1024.0 * 1024.0)

/* The kernels take net_act by value. */
_Static_assert((int)CU_ACT_NONE == (int)ACT_NONE && (int)CU_ACT_RELU == (int)ACT_RELU &&
                   (int)CU_ACT_RELU6 == (int)ACT_RELU6 && (int)CU_ACT_HARDSWISH == (int)ACT_HARDSWISH &&
                   (int)CU_ACT_HARDSIGMOID == (int)ACT_HARDSIGMOID && (int)CU_ACT_SIGMOID == (int)ACT_SIGMOID &&
                   (int)CU_ACT_SILU == (int)ACT_SILU && (int)CU_ACT_LEAKY == (int)ACT_LEAKY,
               "kernels.h's activations must follow net.h's net_act");

/* What one op needs beyond the net's description. */
typedef struct op_plan {
    /* OP_CONV */
    cudnnFilterDescriptor_t wdesc;
    cudnnConvolutionDescriptor_t cdesc;
    cudnnTensorDescriptor_t bdesc;       /* 1 x C x 1 x 1 bias, for the fused call */
    cudnnConvolutionFwdAlgo_t algo_max;  /* chosen once, at max_batch */
    cudnnMathType_t math_max;
    size_t ws_max;                       /* re-queried for (algo_max, math_max) */
    cudnnConvolutionFwdAlgo_t algo;      /* in use at the current batch */
    cudnnMathType_t math;
    int fuse_wanted;                     /* decided at create: timed faster, or tensor-op math */
    int fuse;                            /* cudnnConvolutionBiasActivationForward now */
    float ms_fused, ms_plain;            /* Find mode: the two timings at max_batch */
    /* parameters on the device (offsets into the parameter block until upload) */
    size_t w_at, b_at, bt_at, scale_at;
    void *w;       /* CONV: KCRS (NCHW) or KRSC (NHWC); LINEAR: K x D, D in the tensor's order */
    float *b;      /* float bias (AFFINE: shift) */
    void *b_typed; /* CONV: bias in the storage type, for the fused call */
    float *scale;  /* AFFINE */
} op_plan;

/* Where a slot's outputs sit in its device buffer and its pinned mirror. */
typedef struct out_layout {
    size_t norms, logits, features, react, bytes;
} out_layout;

/* One batch in flight: its own input and outputs, so that the copy of one
 * slot never races the compute or the copy-back of another. */
typedef struct cu_slot {
    uint8_t *in_host;   /* pinned: the decode threads write here */
    uint8_t *in_dev;
    char *out_dev;      /* out_layout: norms, logits, features, react logits */
    char *out_host;     /* pinned mirror, handed to the caller by collect */
    cudaEvent_t input_ready; /* copy stream: in_dev holds the batch */
    cudaEvent_t computed;    /* compute stream: out_dev is complete */
    cudaEvent_t done;        /* copy-back stream: out_host is complete (blocking sync) */
    int n, react, busy;
} cu_slot;

typedef struct cuda_backend {
    backend base;
    const net *net;
    int max_batch, cur_n, device;
    int verbose, no_fuse, heuristic, sync_ops;
    fn_precision precision;
    cu_dtype dtype;
    cu_layout layout;
    size_t esize;
    int in_c;          /* channels of the net's input on the device: 3, or padded (device.c) */
    cudnnDataType_t cudnn_type;
    cudaDataType_t blas_type;
    float table[3][256];

    cudaStream_t compute, h2d, d2h;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    cudnnActivationDescriptor_t relu, identity;
    cudnnTensorDescriptor_t *tdesc; /* one per net tensor, at batch cur_n */
    op_plan *ops;
    cu_slot slot[CUDA_SLOTS];
    out_layout out;

    /* device memory shared by the slots (the compute stream alone uses it) */
    char *arena, *params;
    void *in_padded;   /* the net's input when in_c > 3 (outside the arena, planned for 3) */
    float *in_f32;     /* the float API's input, before conversion into the net's input */
    cudaEvent_t in_f32_free; /* compute stream: the last batch's conversion has read in_f32 */
    float *lin_acc;    /* a linear layer's float accumulator, n x K */
    float *norm_scratch;
    void *clip;        /* ReAct: clipped features in the storage type */
    void *workspace, *cublas_ws;
    size_t ws_bytes, params_bytes;

    /* for the out-of-memory message */
    size_t free_at_create, total_mem;
    char gpu_name[96];
} cuda_backend;

/* device.c */
size_t cu_take(size_t *top, size_t bytes);
int cu_input_channels(const cuda_backend *cb);
int cu_channels(const cuda_backend *cb, int t);
void *cu_tensor_ptr(const cuda_backend *cb, int t);
cu_shape cu_shape_of(const cuda_backend *cb, int t, int n);
int cu_env_flag(const char *name);
out_layout cu_plan_outputs(const net *nt, int b);
size_t cu_scratch_bytes(const cuda_backend *cb, int b, size_t *norm_floats);
size_t cu_batch_bytes(const cuda_backend *cb, int b);
size_t cu_fixed_bytes(const cuda_backend *cb);
int cu_largest_batch(const cuda_backend *cb);
fn_status cu_out_of_memory(const cuda_backend *cb, const char *what, size_t bytes);
fn_status cu_dev_alloc(const cuda_backend *cb, void **p, size_t bytes, const char *what);
fn_status cu_host_alloc(const cuda_backend *cb, void **p, size_t bytes, const char *what);
fn_status cu_check_int32(const cuda_backend *cb);

/* params.c */
size_t cu_plan_params(cuda_backend *cb);
fn_status cu_upload_params(cuda_backend *cb);

/* algos.c */
fn_status cu_create_descriptors(cuda_backend *cb);
fn_status cu_choose_algorithms(cuda_backend *cb);
fn_status cu_set_batch(cuda_backend *cb, int n);

/* conv.c */
fn_status cu_run_conv(cuda_backend *cb, int i, int n, int fused);

/* forward.c */
uint8_t *cu_input(backend *self, int slot);
fn_status cu_submit(backend *self, int slot, const backend_request *rq);
fn_status cu_collect(backend *self, int slot, backend_result *out);

#endif
