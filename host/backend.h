/* backend.h: what a compute backend implements. The CPU backend (host/cpu/) is
 * the reference; the CUDA backend (cuda/) must agree with it. Both execute the
 * same net description and return the same tensors; every score is computed
 * from those on the host (host/scores.c), never inside a backend.
 *
 * A backend owns `slots` batch slots, each with a host input buffer the decode
 * threads write into (pinned memory on CUDA) and host output buffers. Work is
 * submitted to a slot and collected from it later, so on a GPU the copy of one
 * batch, the compute of another and the decoding of a third overlap:
 *
 *   input(s) <- decode;  submit(s, n);  ...other slots...;  collect(s) -> rows
 *
 * Slots are collected in the order they were submitted. A synchronous backend
 * (the CPU) does the work in submit and collect just hands the rows over. */
#ifndef FN_BACKEND_H
#define FN_BACKEND_H

#include <stdint.h>

#include "featurenorm.h"
#include "net.h"

#define BACKEND_MAX_SLOTS 4

typedef struct backend_config {
    int max_batch;          /* rows per submit, at most */
    int threads;
    fn_precision precision;
    int device;             /* CUDA device index */
} backend_config;

/* One submitted batch. x: n x 3 x S x S normalised floats from the caller's
 * memory, or NULL for the slot's own uint8 input buffer (n x S x S x 3 RGB,
 * normalised by the backend with the net's mean and std). */
typedef struct backend_request {
    int n;
    const float *x;
    float react_clip;       /* > 0: also the last linear layer on features clipped at it */
} backend_request;

/* A collected batch: row-major host buffers owned by the backend, valid until
 * the slot is submitted again. */
typedef struct backend_result {
    int n;
    const float *norms;        /* n x blocks: FeatureNorm of every tapped block */
    const float *logits;       /* n x classes */
    const float *features;     /* n x feature_dim: input of the last linear layer */
    const float *react_logits; /* n x classes, or NULL when react_clip was 0 */
} backend_result;

typedef struct backend backend;
struct backend {
    const char *name;       /* "cpu" or "cuda" */
    char device[160];       /* shown by `featurenorm info` */
    int slots;              /* 2 .. BACKEND_MAX_SLOTS */
    /* The slot's input buffer: max_batch x S x S x 3 bytes. */
    uint8_t *(*input)(backend *self, int slot);
    fn_status (*submit)(backend *self, int slot, const backend_request *rq);
    /* Waits for the slot's batch. A failure names the batch's failing op. */
    fn_status (*collect)(backend *self, int slot, backend_result *out);
    void (*destroy)(backend *self);
};

/* Refuses what it cannot do (a precision, a batch over its memory cap, a
 * bf16 CPU without bf16 instructions). */
fn_status cpu_backend_create(const net *net, const backend_config *cfg, backend **out);
/* The CPU computes fp32 and bf16; tf32 and fp16 are GPU precisions: FN_ERR_INVALID_ARG. */
fn_status cpu_backend_check_precision(fn_precision p);
/* What the CPU computes when `want` was asked of a GPU that is not there: want, or fp32. */
fn_precision cpu_backend_precision(fn_precision want);
/* The CPU's activations may take half of this machine's memory (a batch
 * beyond it swaps or is killed, not slow): FN_ERR_INVALID_ARG past that. */
fn_status cpu_backend_check_batch(const net *net, int max_batch);

/* Defined by cuda/ when built with CUDA, else by host/cuda_stub.c. */
fn_status cuda_backend_create(const net *net, const backend_config *cfg, backend **out);
/* 1 when a CUDA device can be used; else 0 and why (no device, driver too old...). */
int cuda_backend_usable(char *why, size_t why_len);

#endif
