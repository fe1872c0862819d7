/* backend_cpu.c: the CPU backend: oneDNN primitives (dnnl_ops.c) run batch
 * after batch, FeatureNorm (norms.c) after every tapped op.
 *
 * create builds the plan for max_batch (every primitive, weights reordered
 * once); a batch of another size (a dataset's last one) gets a plan of its own
 * the first time it is seen, kept in a small cache, rather than padding it up
 * to max_batch: padding would cost a full batch of compute for every short
 * one, and a test's 4-image batch would run 256. Submit is synchronous: the
 * work happens there, on `threads` OpenMP threads that oneDNN and the norm
 * loops share. */
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "error.h"
#include "layout.h"
#include "plan.h"

#define CPU_SLOTS 2  /* the decode threads fill one while the other is computed */
#define PLANS 4      /* batch sizes kept compiled: max_batch and a few short ones */

typedef struct cpu_slot {
    uint8_t *input;                    /* max_batch x S x S x 3 */
    float *norms, *logits, *features, *react_logits;
    int n, react;
} cpu_slot;

typedef struct cpu_backend {
    backend base;
    cpu_slot slot[CPU_SLOTS];
    cpu_ctx ctx;
    plan plans[PLANS];
    unsigned long used[PLANS], clock;  /* least recently used is replaced */
    int max_batch;
    float input_table[3][256];
    double *sums;       /* max_batch x widest tapped tensor's channels */
    float *clipped;     /* ReAct's clipped features */
} cpu_backend;

/* AMX and avx512_bf16 are what make BF16 fast; oneDNN 2.6 keeps AMX behind
 * its max-ISA switch unless asked. Honour DNNL_MAX_CPU_ISA when set. */
static void allow_amx(void)
{
    if (!getenv("DNNL_MAX_CPU_ISA") && !getenv("ONEDNN_MAX_CPU_ISA"))
        dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx512_core_amx);
}

static const char *cpu_isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static int has_bf16(dnnl_cpu_isa_t isa)
{
    return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

/* The plan for batch n, built (and the arena grown) the first time. */
static fn_status plan_for(cpu_backend *cb, int n, plan **out)
{
    int victim = 0;
    for (int i = 0; i < PLANS; i++) {
        if (cb->plans[i].n == n) {
            cb->used[i] = ++cb->clock;
            *out = &cb->plans[i];
            return FN_OK;
        }
        if (cb->used[i] < cb->used[victim])
            victim = i;
    }
    plan *p = &cb->plans[victim];
    if (p->n)
        plan_free(p);
    FN_TRY(plan_build(&cb->ctx, n, p));
    cpu_ctx *c = &cb->ctx;
    int grown = p->arena_bytes > c->arena_bytes || p->scratch_bytes > c->scratch_bytes || !c->arena;
    if (!arena_reserve(&c->arena, &c->arena_bytes, p->arena_bytes, c->threads) ||
        !arena_reserve(&c->scratch, &c->scratch_bytes, p->scratch_bytes, c->threads)) {
        plan_free(p);
        return fn_fail(FN_ERR_NO_MEMORY,
                       "out of host memory: %s at batch %d needs %.1f MiB of activations; "
                       "use a smaller batch",
                       c->net->arch, n, p->arena_bytes / 1048576.0);
    }
    for (int i = 0; i < PLANS; i++) /* a moved arena moves every plan's tensors */
        if (cb->plans[i].n && (grown || &cb->plans[i] == p))
            FN_TRY(plan_bind(c, &cb->plans[i]));
    cb->used[victim] = ++cb->clock;
    *out = p;
    return FN_OK;
}

static fn_status run_step(cpu_backend *cb, plan *p, const step *s, float *norms)
{
    cpu_ctx *c = &cb->ctx;
    const net *nt = c->net;
    switch (s->kind) {
    case STEP_DNNL: {
        dnnl_exec_arg_t args[STEP_ARGS];
        for (int a = 0; a < s->n_args; a++)
            args[a] = (dnnl_exec_arg_t){s->args[a].arg,
                                        s->args[a].tensor >= 0 ? p->t[s->args[a].tensor].mem : s->args[a].mem};
        dnnl_status_t st = dnnl_primitive_execute(s->prim, c->stream, s->n_args, args);
        if (st != dnnl_success)
            return cpu_dnnl_fail(st, s->what, s->op->name);
        return FN_OK;
    }
    case STEP_SHORTCUT_A:
        cpu_shortcut_a(&p->t[s->in], &p->t[s->out], nt, s->op, c->arena, p->n, c->threads);
        return FN_OK;
    case STEP_ADAPTIVE:
        cpu_adaptive_avgpool(&p->t[s->in], &p->t[s->out], nt, s->op, c->arena, p->n, c->threads);
        return FN_OK;
    case STEP_NORMS: {
        const net_tensor *t = &nt->tensors[s->op->out];
        fn_status f = cpu_feature_norms(&p->t[s->in], c->arena + p->t[s->in].offset, p->n, t->c, t->h,
                                    t->w, cb->sums, norms + s->op->tap, (size_t)nt->n_blocks, c->threads);
        return f ? fn_fail(f, "FeatureNorm of %s: unexpected layout", s->op->name) : FN_OK;
    }
    }
    return FN_OK;
}

static fn_status execute(dnnl_primitive_t prim, dnnl_stream_t stream, int nargs,
                         const dnnl_exec_arg_t *args, const char *what)
{
    dnnl_status_t s = dnnl_primitive_execute(prim, stream, nargs, args);
    return s == dnnl_success ? FN_OK : cpu_dnnl_fail(s, what, "the last linear layer");
}

static fn_status cpu_submit(backend *self, int slot, const backend_request *rq)
{
    cpu_backend *cb = (cpu_backend *)self;
    cpu_ctx *c = &cb->ctx;
    const net *nt = c->net;
    cpu_slot *sl = &cb->slot[slot];
    const int n = rq->n;
    plan *p;
    omp_set_num_threads(c->threads); /* oneDNN's threads are this thread's OpenMP team */
    FN_TRY(plan_for(cb, n, &p));
    cpu_load_input(&p->t[nt->input], c->arena, n, nt->input_size, rq->x, sl->input, cb->input_table,
               c->threads);
    for (int i = 0; i < p->n_steps; i++)
        FN_TRY(run_step(cb, p, &p->steps[i], sl->norms));
    const ptensor *lg = &p->t[nt->logits]; /* n x K float rows (dnnl_ops.c: linear) */
    memcpy(sl->logits, c->arena + lg->offset, sizeof(float) * (size_t)n * nt->num_classes);
    dnnl_memory_set_data_handle(p->features_out, sl->features);
    dnnl_exec_arg_t fa[2] = {{DNNL_ARG_SRC, p->t[nt->features].mem}, {DNNL_ARG_DST, p->features_out}};
    FN_TRY(execute(p->features_reorder, c->stream, 2, fa, "features reorder"));
    sl->react = rq->react_clip > 0;
    if (sl->react) { /* ReAct: clip, then the last linear layer again */
        const size_t count = (size_t)n * nt->feature_dim;
        for (size_t i = 0; i < count; i++)
            cb->clipped[i] = sl->features[i] < rq->react_clip ? sl->features[i] : rq->react_clip;
        dnnl_memory_set_data_handle(p->react_src, cb->clipped);
        dnnl_memory_set_data_handle(p->react_dst, sl->react_logits);
        dnnl_exec_arg_t ra[6] = {{DNNL_ARG_SRC, p->react_src},
                                 {DNNL_ARG_WEIGHTS, p->react_w},
                                 {DNNL_ARG_BIAS, c->bias[nt->last_linear]},
                                 {DNNL_ARG_DST, p->react_dst},
                                 {DNNL_ARG_SCRATCHPAD, p->react_scratch_mem}};
        FN_TRY(execute(p->react_ip, c->stream, p->react_scratch_mem ? 5 : 4, ra, "ReAct inner product"));
    }
    sl->n = n;
    return FN_OK;
}

static fn_status cpu_collect(backend *self, int slot, backend_result *out)
{
    const cpu_slot *sl = &((cpu_backend *)self)->slot[slot];
    *out = (backend_result){sl->n, sl->norms, sl->logits, sl->features,
                            sl->react ? sl->react_logits : NULL};
    return FN_OK;
}

static uint8_t *cpu_input(backend *self, int slot) { return ((cpu_backend *)self)->slot[slot].input; }

static void cpu_destroy(backend *self)
{
    cpu_backend *cb = (cpu_backend *)self;
    if (!cb)
        return;
    cpu_ctx *c = &cb->ctx;
    for (int i = 0; i < PLANS; i++)
        plan_free(&cb->plans[i]);
    for (int i = 0; c->weights && i < c->net->n_ops; i++) {
        dnnl_memory_destroy(c->weights[i]);
        dnnl_memory_destroy(c->bias[i]);
    }
    dnnl_memory_destroy(c->react_w);
    free(c->weights), free(c->bias);
    if (c->stream)
        dnnl_stream_destroy(c->stream);
    if (c->engine)
        dnnl_engine_destroy(c->engine);
    arena_release(c->arena, c->arena_bytes);
    arena_release(c->scratch, c->scratch_bytes);
    free(cb->sums), free(cb->clipped);
    for (int i = 0; i < CPU_SLOTS; i++) {
        cpu_slot *sl = &cb->slot[i];
        free(sl->input), free(sl->norms), free(sl->logits), free(sl->features), free(sl->react_logits);
    }
    free(cb);
}

static int alloc_slots(cpu_backend *cb, const net *nt, size_t rows)
{
    for (int i = 0; i < CPU_SLOTS; i++) {
        cpu_slot *sl = &cb->slot[i];
        sl->input = malloc(rows * nt->input_size * nt->input_size * 3);
        sl->norms = malloc(sizeof(float) * rows * nt->n_blocks);
        sl->logits = malloc(sizeof(float) * rows * nt->num_classes);
        sl->features = malloc(sizeof(float) * rows * nt->feature_dim);
        sl->react_logits = malloc(sizeof(float) * rows * nt->num_classes);
        if (!sl->input || !sl->norms || !sl->logits || !sl->features || !sl->react_logits)
            return 0;
    }
    return 1;
}

static int computes(fn_precision p) { return p == FN_PRECISION_FP32 || p == FN_PRECISION_BF16; }

fn_status cpu_backend_check_precision(fn_precision p)
{
    return computes(p) ? FN_OK
                       : fn_fail(FN_ERR_INVALID_ARG, "the CPU backend computes in fp32 or bf16 (asked for %s)",
                                 fn_precision_name(p));
}

fn_precision cpu_backend_precision(fn_precision want) { return computes(want) ? want : FN_PRECISION_FP32; }

fn_status cpu_backend_check_batch(const net *nt, int max_batch)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double total = pages > 0 && page > 0 ? (double)pages * (double)page : 8e9, limit = total / 2;
    double per_image = (double)nt->arena_elems * sizeof(float);
    if (per_image * max_batch <= limit)
        return FN_OK;
    return fn_fail(FN_ERR_INVALID_ARG,
                   "batch %d needs %.1f GB of activations (%.0f KB per image) on the CPU; the limit "
                   "is %.1f GB (half of this machine's memory), so at most batch %d",
                   max_batch, per_image * max_batch / 1e9, per_image / 1e3, limit / 1e9, (int)(limit / per_image));
}

fn_status cpu_backend_create(const net *nt, const backend_config *cfg, backend **out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, allow_amx);
    *out = NULL;
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    FN_TRY(cpu_backend_check_precision(cfg->precision));
    FN_TRY(cpu_backend_check_batch(nt, cfg->max_batch));
    if (cfg->precision == FN_PRECISION_BF16 && !has_bf16(isa))
        return fn_fail(FN_ERR_UNAVAILABLE,
                       "bf16 on the CPU needs AVX512-BF16 or AMX; this CPU offers oneDNN %s "
                       "(use --precision fp32)",
                       cpu_isa_name(isa));
    cpu_backend *cb = fn_calloc(1, sizeof *cb);
    if (!cb)
        return FN_ERR_NO_MEMORY;
    cpu_ctx *c = &cb->ctx;
    c->net = nt;
    c->dt = cfg->precision == FN_PRECISION_BF16 ? dnnl_bf16 : dnnl_f32;
    c->threads = cfg->threads > 0 ? cfg->threads : omp_get_num_procs();
    cb->max_batch = cfg->max_batch;
    net_input_table(nt, cb->input_table);
    cb->base.name = "cpu";
    cb->base.slots = CPU_SLOTS;
    cb->base.input = cpu_input;
    cb->base.submit = cpu_submit;
    cb->base.collect = cpu_collect;
    cb->base.destroy = cpu_destroy;
    const dnnl_version_t *v = dnnl_version();
    snprintf(cb->base.device, sizeof cb->base.device, "CPU, %d threads, oneDNN %d.%d.%d (ISA %s)",
             c->threads, v->major, v->minor, v->patch, cpu_isa_name(isa));
    size_t widest = 0;
    for (int i = 0; i < nt->n_blocks; i++) {
        const net_tensor *t = &nt->tensors[nt->ops[nt->blocks[i].op].out];
        if ((size_t)t->c > widest)
            widest = (size_t)t->c;
    }
    const size_t rows = (size_t)cfg->max_batch;
    cb->sums = malloc(sizeof(double) * widest * rows);
    cb->clipped = malloc(sizeof(float) * (size_t)nt->feature_dim * rows);
    c->weights = calloc((size_t)nt->n_ops, sizeof *c->weights);
    c->bias = calloc((size_t)nt->n_ops, sizeof *c->bias);
    if (!cb->sums || !cb->clipped || !c->weights || !c->bias || !alloc_slots(cb, nt, rows)) {
        cpu_destroy(&cb->base);
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory creating the CPU backend");
    }
    dnnl_status_t s = dnnl_engine_create(&c->engine, dnnl_cpu, 0);
    if (s == dnnl_success)
        s = dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        cpu_destroy(&cb->base);
        return cpu_dnnl_fail(s, "engine", "the CPU backend");
    }
    omp_set_num_threads(c->threads);
    plan *p;
    fn_status f = plan_for(cb, cfg->max_batch, &p); /* every primitive of the full batch, now */
    if (f != FN_OK) {
        cpu_destroy(&cb->base);
        return f;
    }
    *out = &cb->base;
    return FN_OK;
}
