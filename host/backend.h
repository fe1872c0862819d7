/* backend.h: what a compute backend implements. The CPU backend (host/cpu/) is
 * the reference; the CUDA backend (cuda/) must agree with it. Both execute the
 * same net description and write the same outputs. */
#ifndef FN_BACKEND_H
#define FN_BACKEND_H

#include <stdint.h>

#include "featurenorm.h"
#include "net.h"

typedef struct backend_config {
    int max_batch;
    int threads;
    fn_precision precision;
} backend_config;

typedef struct backend backend;
struct backend {
    const char *name;     /* "cpu" or "cuda" */
    char device[128];     /* shown by `featurenorm info` */
    /* Exactly one of x (n x 3 x S x S normalised float) and x_u8 (n x S x S x 3
     * RGB bytes, normalised by the backend with the net's mean/std) is set. */
    fn_status (*forward)(backend *self, int n, const float *x, const uint8_t *x_u8,
                         fn_outputs *out);
    void (*destroy)(backend *self);
};

fn_status cpu_backend_create(const net *net, const backend_config *cfg, backend **out);

/* Defined by cuda/backend_cuda.c when built with CUDA, else by host/cuda_stub.c. */
fn_status cuda_backend_create(const net *net, const backend_config *cfg, backend **out);
/* 1 when a CUDA device can be used; else 0 and why (no device, driver too old...). */
int cuda_backend_usable(char *why, size_t why_len);

#endif
