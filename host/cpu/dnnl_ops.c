/* dnnl_ops.c: a net's ops as oneDNN primitives for one batch size (a plan).
 *
 * Convolutions choose their own activation and weight layouts (format `any`):
 * on AVX2 that is nChw8c, on AVX-512 nChw16c, so consecutive convolutions
 * hand blocked tensors to each other with no reorder. Other primitives
 * (pooling, binary, eltwise, concat) take the layout they are given. A reorder
 * is inserted only where a reader wants another layout than its producer made.
 * Bias, the residual (sum post-op into a destination that already holds it,
 * in place when the residual dies there) and the activation are fused into the
 * convolution, so a ResNet block is three primitives and nothing else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "layout.h"
#include "plan.h"

#define DN(call, what)                                 \
    do {                                               \
        dnnl_status_t dn_s_ = (call);                  \
        if (dn_s_ != dnnl_success)                     \
            return cpu_dnnl_fail(dn_s_, what, name);       \
    } while (0)

/* ---- plan bookkeeping -------------------------------------------------- */

static void *grow(void *items, int *cap, int need, size_t size)
{
    if (need <= *cap)
        return items;
    int c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *p = realloc(items, (size_t)c * size);
    if (p)
        *cap = c;
    return p;
}

static fn_status new_tensor(plan *p, const dnnl_memory_desc_t *md, int def, int *id)
{
    ptensor *t = grow(p->t, &p->cap_t, p->n_t + 1, sizeof *t);
    if (!t)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory planning the CPU backend");
    p->t = t;
    memset(&t[p->n_t], 0, sizeof *t);
    t[p->n_t].md = *md;
    t[p->n_t].def = t[p->n_t].last = def;
    t[p->n_t].alias = -1;
    *id = p->n_t++;
    return FN_OK;
}

static step *new_step(plan *p, step_kind kind, const net_op *op, const char *what)
{
    step *s = grow(p->steps, &p->cap_steps, p->n_steps + 1, sizeof *s);
    if (!s)
        return NULL;
    p->steps = s;
    s = &s[p->n_steps++];
    memset(s, 0, sizeof *s);
    s->kind = kind, s->op = op, s->what = what, s->in = s->out = -1;
    return s;
}

static void arg_tensor(step *s, int arg, int t) { s->args[s->n_args++] = (step_arg){arg, t, NULL}; }
static void arg_mem(step *s, int arg, dnnl_memory_t m) { s->args[s->n_args++] = (step_arg){arg, -1, m}; }

static void touch(plan *p, int t, int i)
{
    if (p->t[t].last < i)
        p->t[t].last = i;
}

static int md_set(const dnnl_memory_desc_t *md) { return md->ndims > 0; }

static void md_plain(dnnl_memory_desc_t *md, int n, int c, int h, int w, dnnl_data_type_t dt)
{
    dnnl_dims_t d = {n, c, h, w};
    dnnl_memory_desc_init_by_tag(md, 4, d, dt, dnnl_abcd);
}

/* A step running the primitive of pd, with a view of the shared scratchpad. */
static fn_status add_prim(plan *p, const net_op *op, const char *what, const_dnnl_primitive_desc_t pd,
                          step **out)
{
    const char *name = op->name[0] ? op->name : what;
    step *s = new_step(p, STEP_DNNL, op, what);
    if (!s)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory planning the CPU backend");
    DN(dnnl_primitive_create(&s->prim, pd), what);
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = sp ? dnnl_memory_desc_get_size(sp) : 0;
    if (bytes) {
        dnnl_memory_t *m = grow(p->scratch_mems, &p->cap_scratch, p->n_scratch + 1, sizeof *m);
        if (!m)
            return fn_fail(FN_ERR_NO_MEMORY, "out of host memory planning the CPU backend");
        p->scratch_mems = m;
        dnnl_engine_t engine;
        DN(dnnl_primitive_desc_query(pd, dnnl_query_engine, 0, &engine), "scratchpad");
        DN(dnnl_memory_create(&m[p->n_scratch], sp, engine, DNNL_MEMORY_NONE), "scratchpad");
        arg_mem(s, DNNL_ARG_SCRATCHPAD, m[p->n_scratch++]);
        if (bytes > p->scratch_bytes)
            p->scratch_bytes = bytes;
    }
    *out = s;
    return FN_OK;
}

/* The common tail of every primitive: the attributes go, the descriptor's
 * creation is checked, the primitive becomes a step, the descriptor goes. */
static fn_status add_pd(plan *p, const net_op *op, const char *what, dnnl_status_t created,
                        dnnl_primitive_desc_t pd, dnnl_primitive_attr_t attr, step **out)
{
    const char *name = op->name[0] ? op->name : what;
    dnnl_primitive_attr_destroy(attr);
    DN(created, what);
    fn_status f = add_prim(p, op, what, pd, out);
    dnnl_primitive_desc_destroy(pd);
    return f;
}

/* The destination layout a step's primitive chose. */
static const dnnl_memory_desc_t *step_dst(const step *s)
{
    const_dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_get_primitive_desc(s->prim, &pd);
    return dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
}

static fn_status make_attr(dnnl_primitive_attr_t *attr, int sum, net_act act, float alpha,
                           const char *name)
{
    DN(dnnl_primitive_attr_create(attr), "attributes");
    DN(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user), "attributes");
    if (!sum && act == ACT_NONE)
        return FN_OK;
    dnnl_post_ops_t po;
    DN(dnnl_post_ops_create(&po), "post-ops");
    dnnl_status_t s = dnnl_success;
    if (sum)
        s = dnnl_post_ops_append_sum(po, 1.0f);
    switch (act) {
    case ACT_NONE: break;
    case ACT_RELU: s = s ? s : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0, 0); break;
    case ACT_LEAKY: s = s ? s : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, alpha, 0); break;
    case ACT_RELU6: s = s ? s : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0, 6); break;
    case ACT_HARDSWISH: s = s ? s : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_hardswish, 0, 0); break;
    case ACT_HARDSIGMOID: /* oneDNN 2.6 has no hardsigmoid: clip(x / 6 + 1/2, 0, 1) */
        s = s ? s : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, 1.0f / 6, 0.5f);
        s = s ? s : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0, 1);
        break;
    case ACT_SIGMOID: s = s ? s : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_logistic, 0, 0); break;
    case ACT_SILU: s = s ? s : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_swish, 1, 0); break;
    }
    if (s == dnnl_success)
        s = dnnl_primitive_attr_set_post_ops(*attr, po);
    dnnl_post_ops_destroy(po);
    DN(s, "post-ops");
    return FN_OK;
}

/* A reorder step from tensor `from` to tensor `to` (layout or type change, or a copy). */
static fn_status add_reorder(cpu_ctx *ctx, plan *p, const net_op *op, int from, int to)
{
    const char *name = op->name[0] ? op->name : "reorder";
    dnnl_primitive_attr_t attr;
    FN_TRY(make_attr(&attr, 0, ACT_NONE, 0, name));
    dnnl_primitive_desc_t pd;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, &p->t[from].md, ctx->engine,
                                                         &p->t[to].md, ctx->engine, attr);
    step *st;
    FN_TRY(add_pd(p, op, "reorder", s, pd, attr, &st));
    arg_tensor(st, DNNL_ARG_SRC, from);
    arg_tensor(st, DNNL_ARG_DST, to);
    return FN_OK;
}

/* Tensor t as op i reads it in layout `want`: t itself, or a temporary that a
 * reorder fills. The input takes the first reader's layout when the input
 * loop can write it. */
static fn_status as_layout(cpu_ctx *ctx, plan *p, int i, int t, const dnnl_memory_desc_t *want, int *got)
{
    layout l;
    if (!md_set(&p->t[t].md)) {
        if (layout_of(want, &l)) {
            p->t[t].md = *want;
            *got = t;
            touch(p, t, i);
            return FN_OK;
        }
        const net_tensor *nt = &ctx->net->tensors[t];
        md_plain(&p->t[t].md, p->n, nt->c, nt->h, nt->w, ctx->dt);
    }
    touch(p, t, i);
    if (dnnl_memory_desc_equal(&p->t[t].md, want)) {
        *got = t;
        return FN_OK;
    }
    FN_TRY(new_tensor(p, want, i, got));
    return add_reorder(ctx, p, &ctx->net->ops[i], t, *got);
}

/* Tensor t in a layout the plain loops read (layout.h). */
static fn_status readable(cpu_ctx *ctx, plan *p, int i, int t, int *got)
{
    layout l;
    const net_tensor *nt = &ctx->net->tensors[t];
    if (!md_set(&p->t[t].md))
        md_plain(&p->t[t].md, p->n, nt->c, nt->h, nt->w, ctx->dt);
    if (layout_of(&p->t[t].md, &l)) {
        touch(p, t, i);
        *got = t;
        return FN_OK;
    }
    dnnl_memory_desc_t plain;
    md_plain(&plain, p->n, nt->c, nt->h, nt->w, p->t[t].md.data_type);
    return as_layout(ctx, p, i, t, &plain, got);
}

/* A 4-D md like `like` (same channel blocking) for another shape. */
static void md_like(dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like, int n, int c, int h, int w)
{
    layout l;
    dnnl_dims_t d = {n, c, h, w};
    dnnl_format_tag_t tag = dnnl_abcd;
    if (like->ndims == 4 && layout_of(like, &l))
        tag = l.block == 16 ? dnnl_aBcd16b : l.block == 8 ? dnnl_aBcd8b : l.sc == 1 ? dnnl_acdb : dnnl_abcd;
    dnnl_memory_desc_init_by_tag(md, 4, d, like->data_type, tag);
}

static fn_status set_out(plan *p, int t, const dnnl_memory_desc_t *md, int i)
{
    p->t[t].md = *md;
    p->t[t].def = i;
    if (p->t[t].last < i)
        p->t[t].last = i;
    return FN_OK;
}

/* Weights (and bias) of op i in the layout `want`: the ctx's copy when an
 * earlier plan made the same one, else reordered from the net's floats. */
static fn_status weights_for(cpu_ctx *ctx, plan *p, int i, const dnnl_memory_desc_t *user,
                             const dnnl_memory_desc_t *want, dnnl_memory_t *slot, dnnl_memory_t *out)
{
    const net_op *op = &ctx->net->ops[i];
    const char *name = op->name;
    dnnl_memory_t local = NULL, *target = slot;
    if (*slot) {
        const dnnl_memory_desc_t *have;
        DN(dnnl_memory_get_memory_desc(*slot, &have), "weights");
        if (dnnl_memory_desc_equal(have, want)) {
            *out = *slot;
            return FN_OK;
        }
        target = &local; /* another layout at this batch size: this plan keeps its own */
        dnnl_memory_t *o = grow(p->owned, &p->cap_owned, p->n_owned + 1, sizeof *o);
        if (!o)
            return fn_fail(FN_ERR_NO_MEMORY, "out of host memory planning the CPU backend");
        p->owned = o;
    }
    dnnl_memory_t src, dst;
    DN(dnnl_memory_create(&src, user, ctx->engine, op->w), "weights");
    dnnl_status_t s = dnnl_memory_create(&dst, want, ctx->engine, DNNL_MEMORY_ALLOCATE);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    if (s == dnnl_success)
        s = dnnl_reorder_primitive_desc_create(&pd, user, ctx->engine, want, ctx->engine, NULL);
    if (s == dnnl_success)
        s = dnnl_primitive_create(&r, pd);
    if (s == dnnl_success) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
        s = dnnl_primitive_execute(r, ctx->stream, 2, a);
    }
    if (s == dnnl_success)
        s = dnnl_stream_wait(ctx->stream);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(src);
    if (s != dnnl_success) {
        dnnl_memory_destroy(dst);
        return cpu_dnnl_fail(s, "weights reorder", name);
    }
    *target = *out = dst;
    if (target == &local)
        p->owned[p->n_owned++] = dst;
    return FN_OK;
}

static fn_status bias_for(cpu_ctx *ctx, int i, int count, dnnl_memory_t *out)
{
    const net_op *op = &ctx->net->ops[i];
    const char *name = op->name;
    if (!ctx->bias[i]) {
        dnnl_memory_desc_t md;
        dnnl_dims_t d = {count};
        DN(dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_f32, dnnl_a), "bias");
        DN(dnnl_memory_create(&ctx->bias[i], &md, ctx->engine, op->b), "bias");
    }
    *out = ctx->bias[i];
    return FN_OK;
}

/* ---- ops --------------------------------------------------------------- */

/* Convolution, or (groups == channels, 1x1) a BatchNorm no conv absorbed. */
static fn_status conv(cpu_ctx *ctx, plan *p, int i, const int *last_use)
{
    const net *nt = ctx->net;
    const net_op *op = &nt->ops[i];
    const char *name = op->name;
    const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
    const int affine = op->kind == OP_AFFINE;
    const int k = affine ? 1 : op->k, s = affine ? 1 : op->stride, pad = affine ? 0 : op->pad;
    const int G = affine ? in->c : op->groups;
    dnnl_memory_desc_t src, wt, user_w, bias, dst;
    dnnl_dims_t sd = {p->n, in->c, in->h, in->w}, dd = {p->n, out->c, out->h, out->w};
    dnnl_dims_t wd = {G, out->c / G, in->c / G, k, k}, wd4 = {out->c, in->c, k, k}, bd = {out->c};
    dnnl_dims_t strides = {s, s}, pl = {pad, pad};
    dnnl_dims_t pr = {(out->h - 1) * s + k - in->h - pad, (out->w - 1) * s + k - in->w - pad};
    DN(dnnl_memory_desc_init_by_tag(&src, 4, sd, ctx->dt, dnnl_format_tag_any), "convolution");
    DN(dnnl_memory_desc_init_by_tag(&dst, 4, dd, ctx->dt, dnnl_format_tag_any), "convolution");
    DN(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_a), "convolution");
    if (G > 1) {
        DN(dnnl_memory_desc_init_by_tag(&wt, 5, wd, ctx->dt, dnnl_format_tag_any), "convolution");
        DN(dnnl_memory_desc_init_by_tag(&user_w, 5, wd, dnnl_f32, dnnl_goihw), "convolution");
    } else {
        DN(dnnl_memory_desc_init_by_tag(&wt, 4, wd4, ctx->dt, dnnl_format_tag_any), "convolution");
        DN(dnnl_memory_desc_init_by_tag(&user_w, 4, wd4, dnnl_f32, dnnl_oihw), "convolution");
    }
    dnnl_convolution_desc_t cd;
    DN(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src,
                                          &wt, &bias, &dst, strides, pl, pr),
       "convolution");
    dnnl_primitive_attr_t attr;
    FN_TRY(make_attr(&attr, op->res >= 0, op->act, op->alpha, name));
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, ctx->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    DN(st, "convolution");
    fn_status f;
    int x;
    dnnl_memory_t w, b;
    step *stp;
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if ((f = as_layout(ctx, p, i, op->in, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), &x)) ||
        (f = weights_for(ctx, p, i, &user_w, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                         &ctx->weights[i], &w)) ||
        (f = bias_for(ctx, i, out->c, &b)))
        goto done;
    set_out(p, op->out, dst_md, i);
    if (op->res >= 0) { /* the sum post-op adds what dst holds: the residual */
        int r = op->res;
        touch(p, r, i);
        if (last_use[r] == i && r != op->in && r != nt->input && r != nt->features &&
            dnnl_memory_desc_equal(&p->t[r].md, dst_md))
            p->t[op->out].alias = r;
        else if ((f = add_reorder(ctx, p, op, r, op->out)))
            goto done;
    }
    if ((f = add_prim(p, op, "convolution", pd, &stp)))
        goto done;
    arg_tensor(stp, DNNL_ARG_SRC, x);
    arg_mem(stp, DNNL_ARG_WEIGHTS, w);
    arg_mem(stp, DNNL_ARG_BIAS, b);
    arg_tensor(stp, DNNL_ARG_DST, op->out);
done:
    dnnl_primitive_desc_destroy(pd);
    return f;
}

static fn_status pool(cpu_ctx *ctx, plan *p, int i, dnnl_alg_kind_t alg, int kh, int kw, int sh,
                      int sw, int pad)
{
    const net *nt = ctx->net;
    const net_op *op = &nt->ops[i];
    const char *name = op->name;
    const net_tensor *in = &nt->tensors[op->in], *out = &nt->tensors[op->out];
    int x;
    FN_TRY(readable(ctx, p, i, op->in, &x));
    dnnl_memory_desc_t dst;
    dnnl_dims_t dd = {p->n, out->c, out->h, out->w}, strides = {sh, sw}, kernel = {kh, kw};
    dnnl_dims_t pl = {pad, pad}, pr = {(out->h - 1) * sh + kh - in->h - pad, (out->w - 1) * sw + kw - in->w - pad};
    DN(dnnl_memory_desc_init_by_tag(&dst, 4, dd, ctx->dt, dnnl_format_tag_any), "pooling");
    dnnl_pooling_desc_t desc;
    DN(dnnl_pooling_forward_desc_init(&desc, dnnl_forward_inference, alg, &p->t[x].md, &dst, strides,
                                      kernel, pl, pr),
       "pooling");
    dnnl_primitive_attr_t attr;
    FN_TRY(make_attr(&attr, 0, ACT_NONE, 0, name));
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, ctx->engine, NULL);
    step *stp;
    FN_TRY(add_pd(p, op, "pooling", st, pd, attr, &stp));
    set_out(p, op->out, step_dst(stp), i);
    arg_tensor(stp, DNNL_ARG_SRC, x);
    arg_tensor(stp, DNNL_ARG_DST, op->out);
    return FN_OK;
}

/* A plain loop (plain_ops.c) reading op->in in whatever layout it has and
 * writing op->out in the same layout family. */
static fn_status plain_step(cpu_ctx *ctx, plan *p, int i, step_kind kind, const char *what)
{
    const net_op *op = &ctx->net->ops[i];
    const net_tensor *out = &ctx->net->tensors[op->out];
    int x;
    FN_TRY(readable(ctx, p, i, op->in, &x));
    dnnl_memory_desc_t md;
    md_like(&md, &p->t[x].md, p->n, out->c, out->h, out->w);
    set_out(p, op->out, &md, i);
    step *s = new_step(p, kind, op, what);
    if (!s)
        return FN_ERR_NO_MEMORY;
    s->in = x, s->out = op->out;
    return FN_OK;
}

static fn_status adaptive(cpu_ctx *ctx, plan *p, int i)
{
    const net_op *op = &ctx->net->ops[i];
    const net_tensor *in = &ctx->net->tensors[op->in], *out = &ctx->net->tensors[op->out];
    if (in->h % out->h == 0 && in->w % out->w == 0) /* even bins: a plain average pool */
        return pool(ctx, p, i, dnnl_pooling_avg_exclude_padding, in->h / out->h, in->w / out->w,
                    in->h / out->h, in->w / out->w, 0);
    return plain_step(ctx, p, i, STEP_ADAPTIVE, "adaptive pool");
}

static fn_status shortcut(cpu_ctx *ctx, plan *p, int i)
{
    return plain_step(ctx, p, i, STEP_SHORTCUT_A, "shortcut");
}

/* OP_ADD (act(in + res)) and OP_SCALE (in * res, res broadcast when c x 1 x 1). */
static fn_status binary(cpu_ctx *ctx, plan *p, int i)
{
    const net_op *op = &ctx->net->ops[i];
    const char *name = op->name;
    int a, b;
    FN_TRY(readable(ctx, p, i, op->in, &a));
    FN_TRY(readable(ctx, p, i, op->res, &b));
    dnnl_binary_desc_t desc;
    DN(dnnl_binary_desc_init(&desc, op->kind == OP_ADD ? dnnl_binary_add : dnnl_binary_mul, &p->t[a].md,
                             &p->t[b].md, &p->t[a].md),
       "binary");
    dnnl_primitive_attr_t attr;
    FN_TRY(make_attr(&attr, 0, op->kind == OP_ADD ? op->act : ACT_NONE, op->alpha, name));
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, ctx->engine, NULL);
    step *stp;
    FN_TRY(add_pd(p, op, "binary", st, pd, attr, &stp));
    set_out(p, op->out, &p->t[a].md, i);
    arg_tensor(stp, DNNL_ARG_SRC_0, a);
    arg_tensor(stp, DNNL_ARG_SRC_1, b);
    arg_tensor(stp, DNNL_ARG_DST, op->out);
    return FN_OK;
}

static fn_status eltwise_step(cpu_ctx *ctx, plan *p, const net_op *op, int from, int to,
                              dnnl_alg_kind_t alg, float alpha, float beta)
{
    const char *name = op->name;
    dnnl_eltwise_desc_t desc;
    DN(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, alg, &p->t[from].md, alpha, beta),
       "eltwise");
    dnnl_primitive_attr_t attr;
    FN_TRY(make_attr(&attr, 0, ACT_NONE, 0, name));
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, ctx->engine, NULL);
    step *stp;
    FN_TRY(add_pd(p, op, "eltwise", st, pd, attr, &stp));
    arg_tensor(stp, DNNL_ARG_SRC, from);
    arg_tensor(stp, DNNL_ARG_DST, to);
    return FN_OK;
}

static fn_status act(cpu_ctx *ctx, plan *p, int i)
{
    const net_op *op = &ctx->net->ops[i];
    int x;
    FN_TRY(readable(ctx, p, i, op->in, &x));
    set_out(p, op->out, &p->t[x].md, i);
    switch (op->act) {
    case ACT_NONE: return add_reorder(ctx, p, op, x, op->out);
    case ACT_RELU: return eltwise_step(ctx, p, op, x, op->out, dnnl_eltwise_relu, 0, 0);
    case ACT_LEAKY: return eltwise_step(ctx, p, op, x, op->out, dnnl_eltwise_relu, op->alpha, 0);
    case ACT_RELU6: return eltwise_step(ctx, p, op, x, op->out, dnnl_eltwise_clip, 0, 6);
    case ACT_HARDSWISH: return eltwise_step(ctx, p, op, x, op->out, dnnl_eltwise_hardswish, 0, 0);
    case ACT_SIGMOID: return eltwise_step(ctx, p, op, x, op->out, dnnl_eltwise_logistic, 0, 0);
    case ACT_SILU: return eltwise_step(ctx, p, op, x, op->out, dnnl_eltwise_swish, 1, 0);
    case ACT_HARDSIGMOID:
        FN_TRY(eltwise_step(ctx, p, op, x, op->out, dnnl_eltwise_linear, 1.0f / 6, 0.5f));
        return eltwise_step(ctx, p, op, op->out, op->out, dnnl_eltwise_clip, 0, 1);
    }
    return FN_OK;
}

static fn_status concat(cpu_ctx *ctx, plan *p, int i)
{
    const net_op *op = &ctx->net->ops[i];
    const net_tensor *out = &ctx->net->tensors[op->out];
    const char *name = op->name;
    if (op->n_cat + 1 > STEP_ARGS - 2)
        return fn_fail(FN_ERR_UNAVAILABLE, "%s: a concat of %d tensors (the CPU backend takes %d)",
                       name, op->n_cat + 1, STEP_ARGS - 2);
    int ids[STEP_ARGS];
    dnnl_memory_desc_t mds[STEP_ARGS], dst;
    for (int j = -1; j < op->n_cat; j++) {
        FN_TRY(readable(ctx, p, i, j < 0 ? op->in : op->cat[j], &ids[j + 1]));
        mds[j + 1] = p->t[ids[j + 1]].md;
    }
    md_like(&dst, &mds[0], p->n, out->c, out->h, out->w);
    dnnl_primitive_attr_t attr;
    FN_TRY(make_attr(&attr, 0, ACT_NONE, 0, name));
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_concat_primitive_desc_create(&pd, &dst, op->n_cat + 1, 1, mds, attr, ctx->engine);
    step *stp;
    FN_TRY(add_pd(p, op, "concat", st, pd, attr, &stp));
    set_out(p, op->out, step_dst(stp), i);
    for (int j = 0; j <= op->n_cat; j++)
        arg_tensor(stp, DNNL_ARG_MULTIPLE_SRC + j, ids[j]);
    arg_tensor(stp, DNNL_ARG_DST, op->out);
    return FN_OK;
}

/* Inner product over the input in whatever layout it has: its weights are
 * given in PyTorch's flatten order (oihw) and oneDNN lays them out to match. */
static fn_status linear(cpu_ctx *ctx, plan *p, int i)
{
    const net *nt = ctx->net;
    const net_op *op = &nt->ops[i];
    const char *name = op->name;
    const net_tensor *in = &nt->tensors[op->in];
    const int K = nt->tensors[op->out].c;
    int x;
    FN_TRY(readable(ctx, p, i, op->in, &x));
    const dnnl_memory_desc_t *smd = &p->t[x].md;
    dnnl_memory_desc_t wt, user_w, bias, dst;
    dnnl_dims_t wd = {K, in->c, in->h, in->w}, dd = {p->n, K}, bd = {K};
    if (smd->ndims == 2) {
        wd[1] = in->c * in->h * in->w;
        DN(dnnl_memory_desc_init_by_tag(&wt, 2, wd, ctx->dt, dnnl_format_tag_any), "inner product");
        DN(dnnl_memory_desc_init_by_tag(&user_w, 2, wd, dnnl_f32, dnnl_ab), "inner product");
    } else {
        DN(dnnl_memory_desc_init_by_tag(&wt, 4, wd, ctx->dt, dnnl_format_tag_any), "inner product");
        DN(dnnl_memory_desc_init_by_tag(&user_w, 4, wd, dnnl_f32, dnnl_oihw), "inner product");
    }
    /* the logits are read out in float whatever the precision */
    DN(dnnl_memory_desc_init_by_tag(&dst, 2, dd, i == nt->last_linear ? dnnl_f32 : ctx->dt, dnnl_ab),
       "inner product");
    DN(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_a), "inner product");
    dnnl_inner_product_desc_t desc;
    DN(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference, smd, &wt, &bias, &dst),
       "inner product");
    dnnl_primitive_attr_t attr;
    FN_TRY(make_attr(&attr, 0, op->act, op->alpha, name));
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, ctx->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    DN(st, "inner product");
    dnnl_memory_t w, b;
    step *stp;
    fn_status f;
    if ((f = weights_for(ctx, p, i, &user_w, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                         &ctx->weights[i], &w)) ||
        (f = bias_for(ctx, i, K, &b)) || (f = add_prim(p, op, "inner product", pd, &stp)))
        goto done;
    set_out(p, op->out, &dst, i);
    arg_tensor(stp, DNNL_ARG_SRC, x);
    arg_mem(stp, DNNL_ARG_WEIGHTS, w);
    arg_mem(stp, DNNL_ARG_BIAS, b);
    arg_tensor(stp, DNNL_ARG_DST, op->out);
done:
    dnnl_primitive_desc_destroy(pd);
    return f;
}

static fn_status norms(cpu_ctx *ctx, plan *p, int i)
{
    const net_op *op = &ctx->net->ops[i];
    int x;
    FN_TRY(readable(ctx, p, i, op->out, &x));
    step *s = new_step(p, STEP_NORMS, op, "FeatureNorm");
    if (!s)
        return FN_ERR_NO_MEMORY;
    s->in = x;
    return FN_OK;
}

/* Features out as n x D float rows in PyTorch's flatten order, and the ReAct
 * inner product on clipped copies of them (in FP32 at any precision). */
static fn_status outputs(cpu_ctx *ctx, plan *p)
{
    const net *nt = ctx->net;
    const net_op *op = &nt->ops[nt->last_linear];
    const char *name = op->name;
    const net_tensor *f = &nt->tensors[nt->features];
    const int D = nt->feature_dim, K = nt->num_classes;
    dnnl_memory_desc_t plain, src2, wt, user_w, bias, dst;
    const dnnl_memory_desc_t *fmd = &p->t[nt->features].md;
    dnnl_dims_t fd = {p->n, f->c, f->h, f->w}, sd = {p->n, D}, wd = {K, D}, dd = {p->n, K}, bd = {K};
    if (fmd->ndims == 2)
        DN(dnnl_memory_desc_init_by_tag(&plain, 2, sd, dnnl_f32, dnnl_ab), "features");
    else
        DN(dnnl_memory_desc_init_by_tag(&plain, 4, fd, dnnl_f32, dnnl_abcd), "features");
    dnnl_primitive_desc_t pd;
    DN(dnnl_reorder_primitive_desc_create(&pd, fmd, ctx->engine, &plain, ctx->engine, NULL), "features");
    dnnl_status_t st = dnnl_primitive_create(&p->features_reorder, pd);
    dnnl_primitive_desc_destroy(pd);
    DN(st, "features");
    DN(dnnl_memory_create(&p->features_out, &plain, ctx->engine, DNNL_MEMORY_NONE), "features");

    DN(dnnl_memory_desc_init_by_tag(&src2, 2, sd, dnnl_f32, dnnl_ab), "ReAct");
    DN(dnnl_memory_desc_init_by_tag(&wt, 2, wd, dnnl_f32, dnnl_format_tag_any), "ReAct");
    DN(dnnl_memory_desc_init_by_tag(&user_w, 2, wd, dnnl_f32, dnnl_ab), "ReAct");
    DN(dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab), "ReAct");
    DN(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_a), "ReAct");
    dnnl_inner_product_desc_t desc;
    DN(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference, &src2, &wt, &bias, &dst), "ReAct");
    dnnl_primitive_attr_t attr;
    FN_TRY(make_attr(&attr, 0, op->act, op->alpha, name));
    st = dnnl_primitive_desc_create(&pd, &desc, attr, ctx->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    DN(st, "ReAct inner product");
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    fn_status fs = weights_for(ctx, p, nt->last_linear, &user_w,
                               dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &ctx->react_w,
                               &p->react_w);
    if (!fs && (st = dnnl_primitive_create(&p->react_ip, pd)) != dnnl_success)
        fs = cpu_dnnl_fail(st, "ReAct inner product", name);
    p->react_scratch = sp ? dnnl_memory_desc_get_size(sp) : 0;
    if (!fs && p->react_scratch &&
        (st = dnnl_memory_create(&p->react_scratch_mem, sp, ctx->engine, DNNL_MEMORY_NONE)) != dnnl_success)
        fs = cpu_dnnl_fail(st, "ReAct scratchpad", name);
    dnnl_primitive_desc_destroy(pd);
    FN_TRY(fs);
    if (p->react_scratch > p->scratch_bytes)
        p->scratch_bytes = p->react_scratch;
    DN(dnnl_memory_create(&p->react_src, &src2, ctx->engine, DNNL_MEMORY_NONE), "ReAct");
    DN(dnnl_memory_create(&p->react_dst, &dst, ctx->engine, DNNL_MEMORY_NONE), "ReAct");
    return FN_OK;
}

fn_status plan_build(cpu_ctx *ctx, int n, plan *p)
{
    const net *nt = ctx->net;
    memset(p, 0, sizeof *p);
    p->n = n;
    int *last_use = malloc(sizeof(int) * (size_t)nt->n_tensors);
    if (!last_use)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory planning the CPU backend");
    for (int t = 0; t < nt->n_tensors; t++)
        last_use[t] = -1;
    for (int i = 0; i < nt->n_ops; i++) {
        const net_op *op = &nt->ops[i];
        last_use[op->in] = i;
        if (op->res >= 0)
            last_use[op->res] = i;
        for (int j = 0; j < op->n_cat; j++)
            last_use[op->cat[j]] = i;
    }
    fn_status f = FN_OK;
    dnnl_memory_desc_t unset;
    memset(&unset, 0, sizeof unset);
    for (int t = 0; t < nt->n_tensors && !f; t++) {
        int id;
        f = new_tensor(p, &unset, -1, &id);
    }
    for (int i = 0; i < nt->n_ops && !f; i++) {
        const net_op *op = &nt->ops[i];
        switch (op->kind) {
        case OP_CONV:
        case OP_AFFINE: f = conv(ctx, p, i, last_use); break;
        case OP_MAXPOOL: f = pool(ctx, p, i, dnnl_pooling_max, op->k, op->k, op->stride, op->stride, op->pad); break;
        case OP_AVGPOOL_K:
            f = pool(ctx, p, i, op->count_include_pad ? dnnl_pooling_avg_include_padding
                                                      : dnnl_pooling_avg_exclude_padding,
                     op->k, op->k, op->stride, op->stride, op->pad);
            break;
        case OP_AVGPOOL: f = adaptive(ctx, p, i); break;
        case OP_SHORTCUT_A: f = shortcut(ctx, p, i); break;
        case OP_SCALE:
        case OP_ADD: f = binary(ctx, p, i); break;
        case OP_ACT: f = act(ctx, p, i); break;
        case OP_CONCAT: f = concat(ctx, p, i); break;
        case OP_LINEAR: f = linear(ctx, p, i); break;
        }
        if (!f && op->tap >= 0)
            f = norms(ctx, p, i);
    }
    free(last_use);
    if (!f) { /* read back after the pass */
        p->t[nt->features].last = p->t[nt->logits].last = nt->n_ops;
        f = outputs(ctx, p);
    }
    if (!f)
        plan_memory(p, nt->n_ops);
    if (f)
        plan_free(p);
    return f;
}

void plan_free(plan *p)
{
    for (int i = 0; i < p->n_steps; i++)
        dnnl_primitive_destroy(p->steps[i].prim);
    for (int i = 0; i < p->n_t; i++)
        dnnl_memory_destroy(p->t[i].mem);
    for (int i = 0; i < p->n_scratch; i++)
        dnnl_memory_destroy(p->scratch_mems[i]);
    dnnl_primitive_destroy(p->features_reorder);
    dnnl_memory_destroy(p->features_out);
    dnnl_primitive_destroy(p->react_ip);
    dnnl_memory_destroy(p->react_src);
    dnnl_memory_destroy(p->react_dst);
    dnnl_memory_destroy(p->react_scratch_mem);
    for (int i = 0; i < p->n_owned; i++)
        dnnl_memory_destroy(p->owned[i]);
    free(p->steps), free(p->t), free(p->scratch_mems), free(p->owned);
    memset(p, 0, sizeof *p);
}
