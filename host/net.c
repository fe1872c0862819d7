/* net.c: building a network description from weights, and planning the memory
 * its activations share.
 *
 * The builder records the first error and turns every later call into a no-op,
 * so that architecture code (host/models/) reads as a plain list of layers. */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define ARENA_ALIGN 32 /* elements: offsets x any batch stay 128-byte aligned */

void net_free(net *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->n_ops; i++) {
        free(n->ops[i].w);
        free(n->ops[i].b);
        free(n->ops[i].cat);
    }
    free(n->ops);
    free(n->tensors);
    free(n->blocks);
    memset(n, 0, sizeof *n);
}

size_t net_tensor_elems(const net *n, int t)
{
    const net_tensor *x = &n->tensors[t];
    return (size_t)x->c * (size_t)x->h * (size_t)x->w;
}

void net_input_table(const net *n, float table[3][256])
{
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            table[c][v] = ((float)v / 255.0f - n->mean[c]) / n->std[c];
}

/* ---- names ---------------------------------------------------------------- */

static const char *const op_kind_names[] = {
    [OP_CONV] = "conv",           [OP_AFFINE] = "affine",         [OP_MAXPOOL] = "maxpool",
    [OP_AVGPOOL] = "avgpool",     [OP_AVGPOOL_K] = "avgpool_k",   [OP_SHORTCUT_A] = "shortcut_a",
    [OP_SCALE] = "scale",         [OP_ADD] = "add",               [OP_ACT] = "act",
    [OP_CONCAT] = "concat",       [OP_LINEAR] = "linear",
};
_Static_assert(sizeof op_kind_names / sizeof op_kind_names[0] == OP_COUNT, "a name for every op kind");

static const char *const act_names[] = {
    [ACT_NONE] = "none",          [ACT_RELU] = "relu",            [ACT_RELU6] = "relu6",
    [ACT_HARDSWISH] = "hardswish", [ACT_HARDSIGMOID] = "hardsigmoid", [ACT_SIGMOID] = "sigmoid",
    [ACT_SILU] = "silu",          [ACT_LEAKY] = "leaky",
};
_Static_assert(sizeof act_names / sizeof act_names[0] == ACT_COUNT, "a name for every activation");

const char *net_op_kind_name(net_op_kind k) { return (unsigned)k < OP_COUNT ? op_kind_names[k] : "?"; }

const char *net_act_name(net_act a) { return (unsigned)a < ACT_COUNT ? act_names[a] : "?"; }

/* ---- memory plan ---------------------------------------------------------- */

typedef struct live { size_t offset, size; int last; } live;

static int compare_offset(const void *a, const void *b)
{
    const live *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

fn_status net_plan_memory(net *n)
{
    int T = n->n_tensors;
    int *def = malloc(sizeof(int) * (size_t)T), *last = malloc(sizeof(int) * (size_t)T);
    live *alive = malloc(sizeof(live) * (size_t)T);
    if (!def || !last || !alive) {
        free(def), free(last), free(alive);
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory planning activations");
    }
    for (int t = 0; t < T; t++)
        def[t] = -1, last[t] = -1;
    for (int i = 0; i < n->n_ops; i++) {
        const net_op *op = &n->ops[i];
        def[op->out] = i;
        last[op->in] = i; /* ops run in order: the latest reader wins */
        if (op->res >= 0)
            last[op->res] = i;
        for (int j = 0; j < op->n_cat; j++)
            last[op->cat[j]] = i;
    }
    /* Outputs read back after the pass. */
    last[n->input] = last[n->features] = last[n->logits] = n->n_ops;

    int n_alive = 0;
    size_t top = 0;
    /* Tensor ids follow creation order, which is definition order. */
    for (int t = 0; t < T; t++) {
        int k = 0;
        for (int a = 0; a < n_alive; a++)
            if (alive[a].last >= def[t])
                alive[k++] = alive[a];
        n_alive = k;
        qsort(alive, (size_t)n_alive, sizeof *alive, compare_offset);
        size_t size = (net_tensor_elems(n, t) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
        size_t at = 0; /* first fit between live tensors */
        for (int a = 0; a < n_alive; a++) {
            if (alive[a].offset >= at + size)
                break;
            if (alive[a].offset + alive[a].size > at)
                at = alive[a].offset + alive[a].size;
        }
        n->tensors[t].offset = at;
        alive[n_alive++] = (live){at, size, last[t] < def[t] ? def[t] : last[t]};
        if (at + size > top)
            top = at + size;
    }
    n->arena_elems = top;
    free(def), free(last), free(alive);
    return FN_OK;
}

/* ---- builder -------------------------------------------------------------- */

int nb_ok(const net_builder *nb) { return nb->status == FN_OK; }

int nb_channels(const net_builder *nb, int t) { return t >= 0 ? nb->net->tensors[t].c : 0; }

int nb_width(const net_builder *nb, const char *tensor, int fallback)
{
    const st_tensor *t = nb->weights ? st_find(nb->weights, tensor) : NULL;
    return t && t->ndim >= 1 ? (int)t->shape[0] : fallback;
}

static int fail(net_builder *nb, fn_status s)
{
    if (nb->status == FN_OK)
        nb->status = s;
    return -1;
}

static int grow(net_builder *nb, void **items, int *cap, int need, size_t item)
{
    if (need <= *cap)
        return 1;
    int c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *p = realloc(*items, (size_t)c * item);
    if (!p) {
        fail(nb, fn_fail(FN_ERR_NO_MEMORY, "out of host memory building the network"));
        return 0;
    }
    *items = p;
    *cap = c;
    return 1;
}

static int add_tensor(net_builder *nb, int c, int h, int w)
{
    net *n = nb->net;
    if (c <= 0 || h <= 0 || w <= 0)
        return fail(nb, fn_fail(FN_ERR_SHAPE, "%s: a layer's output would be %d x %d x %d; "
                                "is the input size too small for this network?", n->arch, c, h, w));
    if (!grow(nb, (void **)&n->tensors, &n->cap_tensors, n->n_tensors + 1, sizeof(net_tensor)))
        return -1;
    n->tensors[n->n_tensors] = (net_tensor){c, h, w, 0};
    return n->n_tensors++;
}

/* Appends an op writing a new c x h x w tensor; returns the op or NULL. */
static net_op *add_op(net_builder *nb, net_op_kind kind, int in, int c, int h, int w,
                      const char *name)
{
    if (!nb_ok(nb) || in < 0)
        return NULL;
    int out = add_tensor(nb, c, h, w);
    net *n = nb->net;
    if (out < 0 || !grow(nb, (void **)&n->ops, &n->cap_ops, n->n_ops + 1, sizeof(net_op)))
        return NULL;
    net_op *op = &n->ops[n->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->in = in;
    op->res = -1;
    op->out = out;
    op->tap = -1;
    op->groups = 1;
    snprintf(op->name, sizeof op->name, "%s", name ? name : "");
    return op;
}

static int out_size(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

/* Reads "<prefix>.<suffix>" with the given shape into a new array. */
static float *read_param(net_builder *nb, const char *prefix, const char *suffix, int ndim,
                         const int64_t *shape)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)shape[i];
    float *p = fn_malloc(count * sizeof(float));
    if (!p) {
        fail(nb, FN_ERR_NO_MEMORY);
        return NULL;
    }
    fn_status s = st_read_f32(nb->weights, name, ndim, shape, p);
    if (s != FN_OK) {
        free(p);
        fail(nb, s);
        return NULL;
    }
    return p;
}

/* Per-channel y = x * scale + shift of an eval-mode BatchNorm "<bn>.*". */
static int read_bn(net_builder *nb, const char *bn, int c, double *scale, double *shift)
{
    int64_t shape[1] = {c};
    float *g = read_param(nb, bn, "weight", 1, shape), *b = read_param(nb, bn, "bias", 1, shape);
    float *m = read_param(nb, bn, "running_mean", 1, shape);
    float *v = read_param(nb, bn, "running_var", 1, shape);
    int ok = g && b && m && v;
    for (int i = 0; ok && i < c; i++) {
        if (v[i] < 0) {
            fail(nb, fn_fail(FN_ERR_FORMAT, "%s: tensor '%s.running_var' is negative at %d",
                             st_path(nb->weights), bn, i));
            ok = 0;
            break;
        }
        scale[i] = g[i] / sqrt((double)v[i] + nb->bn_eps);
        shift[i] = b[i] - m[i] * scale[i];
    }
    free(g), free(b), free(m), free(v);
    return ok;
}

static const net_tensor *tensor(const net_builder *nb, int t) { return &nb->net->tensors[t]; }

/* After BatchNorm folding: a finite gamma over a zero variance can still fold
 * to inf (3e38 / sqrt(1e-5)), which would make every score NaN. */
static int folded_finite(net_builder *nb, const net_op *op, size_t n_w, int n_b)
{
    for (size_t i = 0; i < n_w; i++)
        if (!isfinite(op->w[i]))
            return fail(nb, fn_fail(FN_ERR_FORMAT,
                                    "%s: layer '%s': folding its BatchNorm gives a non-finite weight "
                                    "(element %zu; gamma / sqrt(running_var + eps) overflows float32)",
                                    st_path(nb->weights), op->name, i)), 0;
    for (int i = 0; i < n_b; i++)
        if (!isfinite(op->b[i]))
            return fail(nb, fn_fail(FN_ERR_FORMAT,
                                    "%s: layer '%s': folding its BatchNorm gives a non-finite bias "
                                    "(channel %d)", st_path(nb->weights), op->name, i)), 0;
    return 1;
}

int nb_input(net_builder *nb, int size)
{
    int t = add_tensor(nb, 3, size, size);
    nb->net->input = t;
    nb->net->input_size = size;
    return t;
}

int nb_conv_with(net_builder *nb, int in, int res, nb_conv_opts o)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    const char *conv = o.conv, *bn = o.bn;
    int cout = o.cout, k = o.k, stride = o.stride ? o.stride : 1, pad = o.pad, bias = o.bias;
    int groups = o.groups == NB_DEPTHWISE ? x.c : o.groups ? o.groups : 1;
    net_act act = o.act;
    const st_tensor *wt;
    char wname[160];
    snprintf(wname, sizeof wname, "%s.weight", conv);
    if (nb->weights) {
        if (!(wt = st_find(nb->weights, wname)))
            return fail(nb, fn_fail(FN_ERR_NOT_FOUND, "%s: missing tensor '%s' (is this the right --arch?)",
                                    st_path(nb->weights), wname));
        if (wt->ndim == 4)
            cout = (int)wt->shape[0]; /* the width comes from the weights */
    }
    if (groups <= 0 || x.c % groups || cout % groups)
        return fail(nb, fn_fail(FN_ERR_SHAPE, "%s: %d groups do not divide %d -> %d channels",
                                conv, groups, x.c, cout));
    int oh = out_size(x.h, k, stride, pad), ow = out_size(x.w, k, stride, pad);
    net_op *op = add_op(nb, OP_CONV, in, cout, oh, ow, conv);
    if (!op)
        return -1;
    op->k = k, op->stride = stride, op->pad = pad, op->groups = groups, op->act = act;
    if (res >= 0) {
        const net_tensor *r = tensor(nb, res);
        if (r->c != cout || r->h != oh || r->w != ow)
            return fail(nb, fn_fail(FN_ERR_SHAPE, "%s: residual is %d x %d x %d, output %d x %d x %d",
                                    conv, r->c, r->h, r->w, cout, oh, ow));
        op->res = res;
    }
    if (!nb->weights)
        return op->out;

    int64_t wshape[4] = {cout, x.c / groups, k, k}, bshape[1] = {cout};
    size_t per_out = (size_t)(x.c / groups) * (size_t)k * (size_t)k;
    if (!(op->w = read_param(nb, conv, "weight", 4, wshape)))
        return -1;
    if (!(op->b = fn_calloc((size_t)cout, sizeof(float))))
        return fail(nb, FN_ERR_NO_MEMORY);
    if (bias) {
        float *cb = read_param(nb, conv, "bias", 1, bshape);
        if (!cb)
            return -1;
        memcpy(op->b, cb, sizeof(float) * (size_t)cout);
        free(cb);
    }
    if (bn) { /* fold: w' = w * s, b' = (b - mean) * s + beta */
        double *scale = malloc(sizeof(double) * (size_t)cout * 2);
        if (!scale)
            return fail(nb, fn_fail(FN_ERR_NO_MEMORY, "out of host memory"));
        double *shift = scale + cout;
        int ok = read_bn(nb, bn, cout, scale, shift);
        for (int o = 0; ok && o < cout; o++) {
            for (size_t i = 0; i < per_out; i++)
                op->w[(size_t)o * per_out + i] = (float)(op->w[(size_t)o * per_out + i] * scale[o]);
            op->b[o] = (float)(op->b[o] * scale[o] + shift[o]);
        }
        free(scale);
        if (!ok || !folded_finite(nb, op, (size_t)cout * per_out, cout))
            return -1;
    }
    return op->out;
}

int nb_affine_bn(net_builder *nb, int in, const char *bn, net_act act)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    net_op *op = add_op(nb, OP_AFFINE, in, x.c, x.h, x.w, bn);
    if (!op)
        return -1;
    op->act = act;
    if (!nb->weights)
        return op->out;
    double *scale = malloc(sizeof(double) * (size_t)x.c * 2);
    op->w = fn_malloc(sizeof(float) * (size_t)x.c);
    op->b = fn_malloc(sizeof(float) * (size_t)x.c);
    if (!scale || !op->w || !op->b) {
        free(scale);
        return fail(nb, FN_ERR_NO_MEMORY);
    }
    int ok = read_bn(nb, bn, x.c, scale, scale + x.c);
    for (int c = 0; ok && c < x.c; c++)
        op->w[c] = (float)scale[c], op->b[c] = (float)scale[x.c + c];
    free(scale);
    return ok && folded_finite(nb, op, (size_t)x.c, x.c) ? op->out : -1;
}

int nb_maxpool(net_builder *nb, int in, int k, int stride, int pad)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    net_op *op = add_op(nb, OP_MAXPOOL, in, x.c, out_size(x.h, k, stride, pad),
                        out_size(x.w, k, stride, pad), "maxpool");
    if (!op)
        return -1;
    op->k = k, op->stride = stride, op->pad = pad;
    return op->out;
}

int nb_avgpool(net_builder *nb, int in, int out_h, int out_w)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    net_op *op = add_op(nb, OP_AVGPOOL, in, x.c, out_h, out_w, "avgpool");
    return op ? op->out : -1;
}

int nb_shortcut_a(net_builder *nb, int in, int cout)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    if (cout < x.c || (cout - x.c) % 2)
        return fail(nb, fn_fail(FN_ERR_SHAPE, "option-A shortcut from %d to %d channels", x.c, cout));
    net_op *op = add_op(nb, OP_SHORTCUT_A, in, cout, (x.h + 1) / 2, (x.w + 1) / 2, "shortcut");
    return op ? op->out : -1;
}

int nb_scale(net_builder *nb, int in, int scale)
{
    if (!nb_ok(nb) || in < 0 || scale < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    const net_tensor *s = tensor(nb, scale);
    if (s->c != x.c || !((s->h == 1 && s->w == 1) || (s->h == x.h && s->w == x.w)))
        return fail(nb, fn_fail(FN_ERR_SHAPE, "scale of %d x %d x %d by %d x %d x %d", x.c, x.h,
                                x.w, s->c, s->h, s->w));
    net_op *op = add_op(nb, OP_SCALE, in, x.c, x.h, x.w, "scale");
    if (!op)
        return -1;
    op->res = scale;
    return op->out;
}

int nb_avgpool_k(net_builder *nb, int in, int k, int stride, int pad, int count_include_pad)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k)
        return fail(nb, fn_fail(FN_ERR_SHAPE, "average pool k %d stride %d pad %d", k, stride, pad));
    net_op *op = add_op(nb, OP_AVGPOOL_K, in, x.c, out_size(x.h, k, stride, pad),
                        out_size(x.w, k, stride, pad), "avgpool");
    if (!op)
        return -1;
    op->k = k, op->stride = stride, op->pad = pad, op->count_include_pad = count_include_pad;
    return op->out;
}

int nb_add(net_builder *nb, int a, int b, net_act act)
{
    if (!nb_ok(nb) || a < 0 || b < 0)
        return -1;
    net_tensor x = *tensor(nb, a);
    const net_tensor *y = tensor(nb, b);
    if (x.c != y->c || x.h != y->h || x.w != y->w)
        return fail(nb, fn_fail(FN_ERR_SHAPE, "add of %d x %d x %d and %d x %d x %d", x.c, x.h, x.w,
                                y->c, y->h, y->w));
    net_op *op = add_op(nb, OP_ADD, a, x.c, x.h, x.w, "add");
    if (!op)
        return -1;
    op->res = b, op->act = act;
    return op->out;
}

int nb_act(net_builder *nb, int in, net_act act, float alpha)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    net_op *op = add_op(nb, OP_ACT, in, x.c, x.h, x.w, "act");
    if (!op)
        return -1;
    op->act = act, op->alpha = alpha;
    return op->out;
}

int nb_concat(net_builder *nb, const int *ins, int n)
{
    if (!nb_ok(nb) || n < 1)
        return -1;
    int c = 0;
    for (int i = 0; i < n; i++) {
        if (ins[i] < 0)
            return -1;
        const net_tensor *t = tensor(nb, ins[i]);
        if (t->h != tensor(nb, ins[0])->h || t->w != tensor(nb, ins[0])->w)
            return fail(nb, fn_fail(FN_ERR_SHAPE, "concat of %d x %d and %d x %d maps",
                                    tensor(nb, ins[0])->h, tensor(nb, ins[0])->w, t->h, t->w));
        c += t->c;
    }
    int *cat = n > 1 ? fn_malloc(sizeof(int) * (size_t)(n - 1)) : NULL;
    if (n > 1 && !cat)
        return fail(nb, FN_ERR_NO_MEMORY);
    net_tensor x = *tensor(nb, ins[0]);
    net_op *op = add_op(nb, OP_CONCAT, ins[0], c, x.h, x.w, "concat");
    if (!op) {
        free(cat);
        return -1;
    }
    if (n > 1)
        memcpy(cat, ins + 1, sizeof(int) * (size_t)(n - 1));
    op->cat = cat, op->n_cat = n - 1;
    return op->out;
}

int nb_linear(net_builder *nb, int in, const char *name, int out, net_act act)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    int fan_in = (int)net_tensor_elems(nb->net, in);
    if (nb->weights) {
        char wname[160];
        snprintf(wname, sizeof wname, "%s.weight", name);
        const st_tensor *wt = st_find(nb->weights, wname);
        if (!wt)
            return fail(nb, fn_fail(FN_ERR_NOT_FOUND, "%s: missing tensor '%s' (is this the right --arch?)",
                                    st_path(nb->weights), wname));
        if (wt->ndim == 2)
            out = (int)wt->shape[0];
    }
    net_op *op = add_op(nb, OP_LINEAR, in, out, 1, 1, name);
    if (!op)
        return -1;
    op->act = act;
    if (!nb->weights)
        return op->out;
    int64_t wshape[2] = {out, fan_in}, bshape[1] = {out};
    if (!(op->w = read_param(nb, name, "weight", 2, wshape)) ||
        !(op->b = read_param(nb, name, "bias", 1, bshape)))
        return -1;
    return op->out;
}

/* Copies count floats (zeros when src is NULL) into a new array. */
static float *copy_floats(net_builder *nb, const float *src, size_t count)
{
    float *p = fn_calloc(count, sizeof(float));
    if (!p)
        fail(nb, FN_ERR_NO_MEMORY);
    else if (src)
        memcpy(p, src, sizeof(float) * count);
    return p;
}

int nb_conv_from(net_builder *nb, int in, const char *name, const float *w, const float *b, int cout,
                 int k, int stride, int pad, int groups, net_act act, int res)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    if (groups <= 0 || x.c % groups || cout % groups)
        return fail(nb, fn_fail(FN_ERR_SHAPE, "%s: %d groups do not divide %d -> %d channels",
                                name, groups, x.c, cout));
    int oh = out_size(x.h, k, stride, pad), ow = out_size(x.w, k, stride, pad);
    if (res >= 0) {
        const net_tensor *r = tensor(nb, res);
        if (r->c != cout || r->h != oh || r->w != ow)
            return fail(nb, fn_fail(FN_ERR_SHAPE, "%s: residual is %d x %d x %d, output %d x %d x %d",
                                    name, r->c, r->h, r->w, cout, oh, ow));
    }
    net_op *op = add_op(nb, OP_CONV, in, cout, oh, ow, name);
    if (!op)
        return -1;
    op->k = k, op->stride = stride, op->pad = pad, op->groups = groups, op->act = act, op->res = res;
    size_t count = (size_t)cout * (size_t)(x.c / groups) * (size_t)k * (size_t)k;
    if (!(op->w = copy_floats(nb, w, count)) || !(op->b = copy_floats(nb, b, (size_t)cout)))
        return -1;
    return op->out;
}

int nb_affine_from(net_builder *nb, int in, const char *name, const float *scale, const float *shift,
                   net_act act)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    net_tensor x = *tensor(nb, in);
    net_op *op = add_op(nb, OP_AFFINE, in, x.c, x.h, x.w, name);
    if (!op)
        return -1;
    op->act = act;
    if (!(op->w = copy_floats(nb, scale, (size_t)x.c)) || !(op->b = copy_floats(nb, shift, (size_t)x.c)))
        return -1;
    return op->out;
}

int nb_linear_from(net_builder *nb, int in, const char *name, const float *w, const float *b, int out,
                   net_act act)
{
    if (!nb_ok(nb) || in < 0)
        return -1;
    size_t fan_in = net_tensor_elems(nb->net, in);
    net_op *op = add_op(nb, OP_LINEAR, in, out, 1, 1, name);
    if (!op)
        return -1;
    op->act = act;
    if (!(op->w = copy_floats(nb, w, (size_t)out * fan_in)) || !(op->b = copy_floats(nb, b, (size_t)out)))
        return -1;
    return op->out;
}

void nb_tap(net_builder *nb, int t, const char *name)
{
    if (!nb_ok(nb) || t < 0)
        return;
    net *n = nb->net;
    int i = n->n_ops - 1;
    while (i >= 0 && n->ops[i].out != t)
        i--;
    if (i < 0 || n->ops[i].tap >= 0) {
        fail(nb, fn_fail(FN_ERR_INVALID_ARG, "%s: cannot tap block %s", n->arch, name));
        return;
    }
    if (!grow(nb, (void **)&n->blocks, &n->cap_blocks, n->n_blocks + 1, sizeof(net_block)))
        return;
    net_block *b = &n->blocks[n->n_blocks];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->op = i;
    n->ops[i].tap = n->n_blocks++;
}

fn_status nb_finish(net_builder *nb, int logits)
{
    if (!nb_ok(nb))
        return nb->status;
    net *n = nb->net;
    net_op *last = n->n_ops ? &n->ops[n->n_ops - 1] : NULL;
    if (!last || last->kind != OP_LINEAR || last->out != logits || n->n_blocks == 0)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: a network must end in a linear layer and tap a block",
                       n->arch);
    n->logits = logits;
    n->last_linear = n->n_ops - 1;
    n->features = last->in;
    n->num_classes = n->tensors[logits].c;
    n->feature_dim = (int)net_tensor_elems(n, n->features);
    n->has_weights = nb->weights != NULL;
    return net_plan_memory(n);
}
