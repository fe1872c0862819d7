/* model.c: the public model calls: options, loading (weights -> net -> backend),
 * block tables and the forward pass's argument checks. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "hash.h"
#include "model.h"
#include "models/models.h"
#include "onnx/onnx_net.h"
#include "scores.h"

void fn_model_options_init(fn_model_options *o)
{
    memset(o, 0, sizeof *o);
    o->backend = FN_BACKEND_AUTO;
    o->precision = FN_PRECISION_FP32;
}

static fn_status unknown_arch(const char *name)
{
    char list[1024] = "";
    size_t o = 0;
    for (int i = 0; i < arch_count() && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", arch_at(i)->name);
    return fn_fail(FN_ERR_NOT_FOUND, "unknown architecture '%s' (known: %s)", name, list);
}

int model_thread_limit(void)
{
    int limit = 4 * omp_get_num_procs();
    return limit < 4 ? 4 : limit > 256 ? 256 : limit;
}

/* Strict loading: every tensor of the weights must be one the architecture
 * read (BatchNorm's num_batches_tracked counters aside); extra tensors mean
 * the wrong --arch, e.g. ResNet-56 weights loaded as ResNet-20. */
static fn_status check_unused(const st_file *w, const char *arch)
{
    int unused = 0;
    char list[512] = "";
    size_t o = 0;
    for (int i = 0; i < st_count(w); i++) {
        const char *name = st_at(w, i)->name;
        size_t len = strlen(name);
        if (st_was_read(w, i) || (len >= 19 && strcmp(name + len - 19, "num_batches_tracked") == 0))
            continue;
        if (unused++ < 4 && o < sizeof list)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s'%s'", unused > 1 ? ", " : "", name);
    }
    if (!unused)
        return FN_OK;
    return fn_fail(FN_ERR_FORMAT,
                   "%s: %d tensor%s that %s does not use (%s%s): the wrong --arch? "
                   "(--allow-unused-weights / allow_unused_weights loads it anyway)",
                   st_path(w), unused, unused > 1 ? "s" : "", arch, list, unused > 4 ? ", ..." : "");
}

/* Picks the backend: CUDA when asked or when AUTO finds a usable device. */
static fn_status create_backend(fn_model *m, fn_backend want)
{
    backend_config cfg = {m->max_batch, m->threads, m->precision, m->device};
    char why[256] = "";
    if (want == FN_BACKEND_CUDA)
        return cuda_backend_create(&m->net, &cfg, &m->be);
    if (want == FN_BACKEND_AUTO) {
        if (cuda_backend_usable(why, sizeof why)) {
            fn_status s = cuda_backend_create(&m->net, &cfg, &m->be);
            if (s == FN_OK || s != FN_ERR_UNAVAILABLE)
                return s;
            snprintf(why, sizeof why, "%s", fn_last_error());
        }
        fn_precision p = cpu_backend_precision(m->precision);
        if (m->verbose)
            fprintf(stderr, "featurenorm: no usable CUDA device (%s); using the CPU backend%s%s\n", why,
                    p != m->precision ? " in " : "", p != m->precision ? fn_precision_name(p) : "");
        cfg.precision = m->precision = p;
    }
    return cpu_backend_create(&m->net, &cfg, &m->be);
}

/* Everything checkable before a file is read; *a: the architecture, unless an ONNX model. */
static fn_status check_options(const fn_model_options *o, const arch **a)
{
    *a = NULL;
    if (!o || (!o->arch && !o->model))
        return fn_fail(FN_ERR_INVALID_ARG, "fn_model_load: no architecture or model file given");
    if (o->model && (o->arch || o->weights))
        return fn_fail(FN_ERR_INVALID_ARG, "fn_model_load: give an ONNX model or an architecture with "
                       "weights, not both");
    if (!o->model && !(*a = arch_find(o->arch)))
        return unknown_arch(o->arch);
    if (o->input_size < 0 || o->input_size > 4096 || o->max_batch < 0 || o->threads < 0 || o->device < 0 ||
        (unsigned)o->precision > FN_PRECISION_BF16 || (unsigned)o->backend > FN_BACKEND_CUDA)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_model_load: an option is out of range");
    for (int c = 0; c < 3 && o->std[0] != 0; c++)
        if (!(o->std[c] > 0) || !isfinite(o->mean[c]))
            return fn_fail(FN_ERR_INVALID_ARG, "normalisation std must be positive and mean finite");
    if (o->threads > model_thread_limit())
        return fn_fail(FN_ERR_INVALID_ARG, "%d threads is over the limit of %d (4 per core, %d cores, "
                       "at most 256)", o->threads, model_thread_limit(), omp_get_num_procs());
    if (o->backend == FN_BACKEND_CPU)
        FN_TRY(cpu_backend_check_precision(o->precision));
    return FN_OK;
}

/* m->net from the ONNX file, or from architecture a and its weights; the source's hash. */
static fn_status build_net(fn_model *m, const fn_model_options *o, const arch *a)
{
    if (o->model) {
        FN_TRY(hash_file(o->model, &m->source_hash));
        FN_TRY(onnx_build_net(o->model, o->blocks, o->input_size, o->verbose, &m->net));
        if (o->verbose && o->std[0] == 0) /* ONNX files do not record it */
            fprintf(stderr, "featurenorm: %s: normalising with the ImageNet mean and std (--mean/--std "
                    "set the ones the network was trained with)\n", o->model);
        return FN_OK;
    }
    st_file *weights = NULL;
    fn_status s = FN_OK;
    if (o->weights && ((s = st_open(o->weights, &weights)) != FN_OK ||
                       (s = hash_file(o->weights, &m->source_hash)) != FN_OK)) {
        st_close(weights);
        return s;
    }
    arch_options ao = {.stem_padding = o->stem_padding};
    s = arch_build(a, weights, o->input_size, &ao, &m->net);
    if (s == FN_OK && weights && !o->allow_unused_weights)
        s = check_unused(weights, a->name);
    st_close(weights); /* every parameter is copied (and BN-folded) into the net */
    return s;
}

fn_status fn_model_load(const fn_model_options *o, fn_model **out)
{
    if (!out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_model_load: out is NULL");
    *out = NULL;
    const arch *a;
    FN_TRY(check_options(o, &a));
    fn_model *m = fn_calloc(1, sizeof *m);
    if (!m)
        return FN_ERR_NO_MEMORY;
    m->precision = o->precision;
    m->threads = o->threads > 0 ? o->threads : omp_get_num_procs();
    m->verbose = o->verbose;
    m->device = o->device;
    fn_status s = build_net(m, o, a);
    if (s == FN_OK && o->std[0] != 0) {
        memcpy(m->net.mean, o->mean, sizeof m->net.mean);
        memcpy(m->net.std, o->std, sizeof m->net.std);
    }
    /* Small images: large batches keep the GEMMs and the GPU busy. */
    m->max_batch = o->max_batch > 0 ? o->max_batch : m->net.input_size <= 64 ? 256 : 64;
    if (s == FN_OK && o->backend != FN_BACKEND_CUDA)
        s = cpu_backend_check_batch(&m->net, m->max_batch);
    if (s == FN_OK && m->net.has_weights)
        s = create_backend(m, o->backend);
    if (s != FN_OK) {
        fn_model_free(m);
        return s;
    }
    *out = m;
    return FN_OK;
}

void fn_model_free(fn_model *m)
{
    if (!m)
        return;
    if (m->be)
        m->be->destroy(m->be);
    net_free(&m->net);
    free(m);
}

void fn_model_get_info(const fn_model *m, fn_model_info *out)
{
    memset(out, 0, sizeof *out);
    out->arch = m->net.arch;
    out->backend = m->be ? m->be->name : "none";
    out->device = m->be ? m->be->device : "none (no weights loaded)";
    out->precision = m->precision;
    out->has_weights = m->net.has_weights;
    out->input_size = m->net.input_size;
    out->num_blocks = m->net.n_blocks;
    out->num_classes = m->net.num_classes;
    out->feature_dim = m->net.feature_dim;
    out->max_batch = m->max_batch;
    out->preset = m->net.preset;
    memcpy(out->mean, m->net.mean, sizeof out->mean);
    memcpy(out->std, m->net.std, sizeof out->std);
}

const char *fn_model_block_name(const fn_model *m, int b)
{
    return b >= 0 && b < m->net.n_blocks ? m->net.blocks[b].name : NULL;
}

void fn_model_block_shape(const fn_model *m, int b, int *c, int *h, int *w)
{
    const net_tensor *t = b >= 0 && b < m->net.n_blocks
                              ? &m->net.tensors[m->net.ops[m->net.blocks[b].op].out]
                              : NULL;
    if (c) *c = t ? t->c : 0;
    if (h) *h = t ? t->h : 0;
    if (w) *w = t ? t->w : 0;
}

int fn_model_find_block(const fn_model *m, const char *name)
{
    for (int b = 0; name && b < m->net.n_blocks; b++)
        if (strcmp(m->net.blocks[b].name, name) == 0)
            return b;
    return -1;
}

void fn_outputs_init(fn_outputs *o)
{
    memset(o, 0, sizeof *o);
    o->block = -1;
}

score_input model_score_input(const fn_model *m, const backend_result *r, int block,
                              float react_clip, score_options opt,
                              const struct fit_model *fit)
{
    const net *nt = &m->net;
    const net_op *head = &nt->ops[nt->last_linear];
    const int plain = head->act == ACT_NONE; /* W f + b, not act(W f + b) */
    score_input in = {.n = r->n, .num_blocks = nt->n_blocks, .num_classes = nt->num_classes,
                      .norms = r->norms, .logits = r->logits, .react_logits = r->react_logits,
                      .block = block, .feature_dim = nt->feature_dim, .features = r->features,
                      .bias = plain ? head->b : NULL, .weight = plain ? head->w : NULL,
                      .react_clip = react_clip, .fit = fit, .opt = scores_resolve_options(opt)};
    return in;
}

/* Rows of a collected batch into the caller's outputs; scores from the table.
 * The buffers come first, so the outputs are written whole or not at all. */
static fn_status deliver(const fn_model *m, const backend_result *r, const fn_outputs *out)
{
    const net *nt = &m->net;
    const size_t n = (size_t)r->n;
    score_input in = model_score_input(m, r, out->block, out->react_clip, (score_options){out->gen_gamma, out->gen_m}, NULL);
    const size_t need = out->scores ? scores_scratch(&in) : 0;
    float *column = out->scores ? malloc(sizeof(float) * n) : NULL;
    float *scratch = need ? malloc(sizeof(float) * need) : NULL;
    if ((out->scores && !column) || (need && !scratch)) {
        free(column), free(scratch);
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory for the scores of %zu images", n);
    }
    if (out->norms)
        memcpy(out->norms, r->norms, sizeof(float) * n * nt->n_blocks);
    if (out->logits)
        memcpy(out->logits, r->logits, sizeof(float) * n * nt->num_classes);
    if (out->features)
        memcpy(out->features, r->features, sizeof(float) * n * nt->feature_dim);
    if (out->react_logits)
        memcpy(out->react_logits, r->react_logits, sizeof(float) * n * nt->num_classes);
    if (out->pred)
        scores_pred(&in, out->pred);
    if (need)
        scores_derive(&in, scratch);
    const int S = scores_count();
    for (int j = 0; out->scores && j < S; j++) {
        int ok = scores_available(j, &in);
        if (ok)
            scores_compute(j, &in, column);
        for (size_t i = 0; i < n; i++)
            out->scores[i * S + j] = ok ? column[i] : NAN;
    }
    free(column), free(scratch);
    return FN_OK;
}

static fn_status forward(fn_model *m, int n, const float *x, const uint8_t *x_u8, fn_outputs *out)
{
    if (!m || !out || (!x && !x_u8))
        return fn_fail(FN_ERR_INVALID_ARG, "fn_model_forward: NULL argument");
    if (!m->be)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: the model was loaded without weights", m->net.arch);
    if (n < 1 || n > m->max_batch)
        return fn_fail(FN_ERR_SHAPE, "batch of %d images; this model takes 1 to %d (max_batch)", n,
                       m->max_batch);
    const int react = out->react_clip != 0;
    if (react && !(out->react_clip > 0 && isfinite(out->react_clip)))
        return fn_fail(FN_ERR_INVALID_ARG, "react_clip must be positive and finite");
    if (out->react_logits && !react)
        return fn_fail(FN_ERR_INVALID_ARG, "react_logits need a positive react_clip");
    if (out->block < -1 || out->block >= m->net.n_blocks)
        return fn_fail(FN_ERR_INVALID_ARG, "block %d: the model has %d blocks", out->block,
                       m->net.n_blocks);
    FN_TRY(scores_check_options((score_options){out->gen_gamma, out->gen_m}));
    if (x_u8) /* the slot's buffer is where decoded batches land; copy the caller's there */
        memcpy(m->be->input(m->be, 0), x_u8, (size_t)n * m->net.input_size * m->net.input_size * 3);
    backend_request rq = {n, x, out->react_clip};
    backend_result r;
    FN_TRY(m->be->submit(m->be, 0, &rq));
    FN_TRY(m->be->collect(m->be, 0, &r));
    return deliver(m, &r, out);
}
/* As pass_run keeps them: S - 1 batches on the backend while (in a run) the
 * decode threads fill the last slot. Every slot holds the images already,
 * so nothing is copied between batches; scores are computed as score does. */
static fn_status time_batches(fn_model *m, int n, int batches, const fn_outputs *out)
{
    backend *be = m->be;
    const backend_request rq = {.n = n};
    int submitted = 0, collected = 0;
    fn_status st = FN_OK;
    while (collected < submitted || (st == FN_OK && submitted < batches)) {
        if (st == FN_OK && submitted < batches && submitted - collected < be->slots - 1) {
            st = be->submit(be, submitted++ % be->slots, &rq);
            continue;
        }
        backend_result r;
        fn_status c = be->collect(be, collected++ % be->slots, &r); /* after a failure: drain */
        if (st == FN_OK && (st = c) == FN_OK)
            st = deliver(m, &r, out);
    }
    return st;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

fn_status fn_model_time(fn_model *m, int n, const uint8_t *images, int batches, double *seconds)
{
    if (!m || !images || !seconds)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_model_time: NULL argument");
    if (!m->be)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: the model was loaded without weights", m->net.arch);
    if (n < 1 || n > m->max_batch || batches < 1)
        return fn_fail(FN_ERR_SHAPE, "%d batches of %d images; this model takes 1 to %d (max_batch)", batches, n,
                       m->max_batch);
    const size_t bytes = (size_t)n * m->net.input_size * m->net.input_size * 3;
    for (int s = 0; s < m->be->slots; s++)
        memcpy(m->be->input(m->be, s), images, bytes);
    float *norms = malloc(sizeof(float) * (size_t)n * m->net.n_blocks);
    float *scores = malloc(sizeof(float) * (size_t)n * fn_score_count());
    fn_status st = FN_ERR_NO_MEMORY;
    if (norms && scores) {
        fn_outputs out;
        fn_outputs_init(&out);
        out.norms = norms, out.scores = scores;
        const double t0 = wall_seconds();
        st = time_batches(m, n, batches, &out);
        *seconds = wall_seconds() - t0;
    } else {
        fn_fail(st, "out of host memory for the outputs of %d images", n);
    }
    free(norms), free(scores);
    return st;
}

fn_status fn_model_forward(fn_model *m, int n, const float *images, fn_outputs *out)
{
    return forward(m, n, images, NULL, out);
}

fn_status fn_model_forward_u8(fn_model *m, int n, const uint8_t *images, fn_outputs *out)
{
    return forward(m, n, NULL, images, out);
}
