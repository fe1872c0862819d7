/* plan.h: the CPU backend's compiled form of a net for one batch size.
 *
 * A plan is the net's op list turned into steps: oneDNN primitives (created
 * once, executed every batch), a few plain loops, and a FeatureNorm after every
 * tapped op. Every tensor has the memory layout its producer chose (blocked
 * nChw8c/nChw16c where oneDNN's convolutions want it) and a place in one arena
 * shared by all plans. Plans are made per batch size actually seen (the full
 * batch at create, the last short batch of a dataset when it comes), because a
 * oneDNN primitive is fixed to its shapes; weights in a layout already made for
 * another plan are shared, not copied. */
#ifndef FN_CPU_PLAN_H
#define FN_CPU_PLAN_H

#include <oneapi/dnnl/dnnl.h>

#include "net.h"

typedef struct ptensor {
    dnnl_memory_desc_t md;    /* zeroed until its producer (or first reader) sets it */
    size_t bytes, offset;     /* in the arena */
    int def, last;            /* first and last step-op index that touch it */
    int alias;                /* >= 0: shares that tensor's bytes (residual summed in place) */
    dnnl_memory_t mem;        /* bound to arena + offset */
} ptensor;

typedef enum step_kind {
    STEP_DNNL,        /* a oneDNN primitive */
    STEP_SHORTCUT_A,  /* plain loop: option-A shortcut */
    STEP_ADAPTIVE,    /* plain loop: adaptive average pool with uneven bins */
    STEP_NORMS        /* FeatureNorm of tensor `in` into column op->tap */
} step_kind;

#define STEP_ARGS 72 /* a DenseNet concat takes every earlier map of its block (up to 49) */

typedef struct step_arg {
    int arg;             /* DNNL_ARG_* */
    int tensor;          /* >= 0: that plan tensor's memory */
    dnnl_memory_t mem;   /* else this one (weights, bias, scratchpad view) */
} step_arg;

typedef struct step {
    step_kind kind;
    const net_op *op;    /* for messages and the plain loops */
    const char *what;    /* "convolution", "reorder", ... */
    dnnl_primitive_t prim;
    int n_args;
    step_arg args[STEP_ARGS];
    int in, out;         /* plan tensors of the plain loops */
} step;

/* What plans share: the engine, the weights in each layout, the arena. */
typedef struct cpu_ctx {
    const net *net;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_data_type_t dt;      /* activations and weights: f32 or bf16 */
    int threads;
    dnnl_memory_t *weights;   /* per op: its weights in the layout the first plan chose */
    dnnl_memory_t *bias;      /* per op: f32 bias */
    dnnl_memory_t react_w;    /* last linear layer for ReAct, f32, in its ip's layout */
    unsigned char *arena;
    size_t arena_bytes;
    unsigned char *scratch;
    size_t scratch_bytes;
} cpu_ctx;

typedef struct plan {
    int n;
    ptensor *t;               /* the net's tensors, then conversion temporaries */
    int n_t, cap_t;
    step *steps;
    int n_steps, cap_steps;
    size_t arena_bytes, scratch_bytes;
    dnnl_memory_t *scratch_mems; /* one view of the shared scratchpad per primitive */
    int n_scratch, cap_scratch;
    dnnl_memory_t *owned;     /* weights in a layout only this plan uses */
    int n_owned, cap_owned;
    dnnl_primitive_t features_reorder; /* features tensor -> n x D float rows */
    dnnl_memory_t features_out;        /* its destination, pointed at the slot's buffer */
    dnnl_primitive_t react_ip;         /* n x D clipped features -> n x K logits, f32 */
    dnnl_memory_t react_src, react_dst;
    dnnl_memory_t react_w;             /* ctx's, or owned when this batch wants another layout */
    size_t react_scratch;
    dnnl_memory_t react_scratch_mem;
} plan;

/* dnnl_ops.c: primitives for every op of the net at batch n. */
fn_status plan_build(cpu_ctx *ctx, int n, plan *p);
void plan_free(plan *p);
/* arena.c: arena offsets of the plan's tensors (first fit over lifetimes). */
void plan_memory(plan *p, int n_ops);
/* Points the plan's memories at ctx's arena and scratchpad. */
fn_status plan_bind(cpu_ctx *ctx, plan *p);
/* An arena of at least `bytes` (huge pages, touched once); 0 when out of memory. */
int arena_reserve(unsigned char **buf, size_t *have, size_t bytes, int threads);
void arena_release(unsigned char *buf, size_t bytes);

/* norms.c: FeatureNorm of every image of a tensor in any layout of layout.h:
 * norms[i * stride] = mean over channels of ||relu(x[i, c])||_2. */
fn_status cpu_feature_norms(const ptensor *t, const void *data, int n, int c, int h, int w,
                        double *sums, float *norms, size_t stride, int threads);

/* plain_ops.c: the loops oneDNN has no primitive for. */
void cpu_shortcut_a(const ptensor *in, const ptensor *out, const net *nt, const net_op *op,
                unsigned char *arena, int n, int threads);
void cpu_adaptive_avgpool(const ptensor *in, const ptensor *out, const net *nt, const net_op *op,
                      unsigned char *arena, int n, int threads);
/* n images into the input tensor: float NCHW, or uint8 NHWC through the table. */
void cpu_load_input(const ptensor *t, unsigned char *arena, int n, int size, const float *x,
                const uint8_t *x_u8, const float table[3][256], int threads);

#endif
