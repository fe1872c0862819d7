/* onnx_ops.c: each unit of an ONNX graph as net ops (onnx_net.c drives), one
 * builder per op type in a table; anything else is refused by name. */
#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "onnx_convert.h"
#include "onnx_fold.h"
#include "onnx_net.h"

#define WINDOW_MAX 4096

static const char supported[] =
    "Conv, BatchNormalization, Relu, Clip (0..6), LeakyRelu, Sigmoid, HardSigmoid, HardSwish, "
    "Mul (channel scale, x*sigmoid(x)), Add, Concat, MaxPool, AveragePool, GlobalAveragePool, "
    "Flatten, Reshape/Squeeze (to the classifier's vector), Gemm, MatMul, Identity, Dropout, "
    "Slice+Pad (option-A shortcut), and shape arithmetic on constants";

const char *onnx_supported_ops(void) { return supported; }

fn_status cv_refuse(const converter *c, const ox_node *n, const char *why)
{
    return fn_fail(FN_ERR_FORMAT, "%s: node '%s' (%s): %s", c->g->path, n->name, n->op, why);
}

fn_status cv_unsupported(const converter *c, const ox_node *n)
{
    return fn_fail(FN_ERR_FORMAT, "%s: node '%s' is op %s, which featurenorm does not support "
                   "(supported: %s)", c->g->path, n->name, n->op, supported);
}

static int int_attrs(const ox_node *n, const char *name, int64_t *out, int max)
{
    const ox_attr *a = ox_find_attr(n, name);
    if (!a || a->type != OX_ATTR_INTS)
        return 0;
    int count = (int)(a->n < (size_t)max ? a->n : (size_t)max);
    for (int k = 0; k < count; k++)
        out[k] = a->ints[k];
    return count;
}

/* Square window, equal strides, no dilation, symmetric padding: (k, stride, pad) or an error. */
static fn_status window(const converter *c, const ox_node *n, int in_h, int in_w, int64_t k_default,
                        int *k, int *stride, int *pad)
{
    int64_t ks[4] = {k_default, k_default}, st[4] = {1, 1}, pd[4] = {0, 0, 0, 0}, dl[4] = {1, 1};
    int nk = int_attrs(n, "kernel_shape", ks, 4);
    int_attrs(n, "strides", st, 4);
    int_attrs(n, "dilations", dl, 4);
    int np = int_attrs(n, "pads", pd, 4);
    if ((nk && nk != 2) || ks[0] != ks[1] || ks[0] < 1)
        return cv_refuse(c, n, "only square 2-D windows are supported");
    if (st[0] != st[1] || st[0] < 1)
        return cv_refuse(c, n, "only equal strides along H and W are supported");
    if (dl[0] != 1 || dl[1] != 1)
        return cv_refuse(c, n, "dilation other than 1 is not supported");
    const ox_attr *ap = ox_find_attr(n, "auto_pad");
    const char *mode = ap && ap->type == OX_ATTR_STRING ? ap->s : "NOTSET";
    if (ks[0] > WINDOW_MAX || st[0] > WINDOW_MAX || pd[0] < 0 || pd[0] > WINDOW_MAX)
        return cv_refuse(c, n, "window, stride or padding out of range");
    *k = (int)ks[0], *stride = (int)st[0];
    if (!strcmp(mode, "VALID")) {
        *pad = 0;
    } else if (!strcmp(mode, "SAME_UPPER") || !strcmp(mode, "SAME_LOWER")) {
        int total_h = ((in_h + *stride - 1) / *stride - 1) * *stride + *k - in_h;
        int total_w = ((in_w + *stride - 1) / *stride - 1) * *stride + *k - in_w;
        total_h = total_h < 0 ? 0 : total_h, total_w = total_w < 0 ? 0 : total_w;
        if (total_h % 2 || total_h != total_w)
            return cv_refuse(c, n, "auto_pad SAME needs asymmetric padding here, which is not supported");
        *pad = total_h / 2;
    } else if (!strcmp(mode, "NOTSET")) {
        if (np && (np != 4 || pd[0] != pd[1] || pd[0] != pd[2] || pd[0] != pd[3]))
            return cv_refuse(c, n, "only equal padding on all four sides is supported");
        *pad = (int)pd[0];
    } else {
        return cv_refuse(c, n, "unknown auto_pad mode");
    }
    if (ox_attr_int(n, "ceil_mode", 0)) { /* fine when it changes nothing */
        int rem_h = (in_h + 2 * *pad - *k) % *stride, rem_w = (in_w + 2 * *pad - *k) % *stride;
        if (rem_h || rem_w)
            return cv_refuse(c, n, "ceil_mode=1 changes the output size here, which is not supported");
    }
    return FN_OK;
}

/* Per-channel y = x * scale + shift of BatchNormalization node n over ch channels. */
static fn_status bn_params(const converter *c, const ox_node *n, int ch, double *scale, double *shift)
{
    const ox_const *p[4];
    for (int k = 0; k < 4; k++) {
        p[k] = n->n_in > k + 1 ? cst(c, n->in[k + 1]) : NULL;
        if (!p[k] || p[k]->is_int || p[k]->count != (size_t)ch)
            return fn_fail(FN_ERR_SHAPE, "%s: node '%s' (BatchNormalization): parameter %d must be a constant "
                           "of %d values", c->g->path, n->name, k + 1, ch);
    }
    if (ox_attr_int(n, "training_mode", 0))
        return cv_refuse(c, n, "training_mode BatchNormalization; export the model in eval mode");
    double eps = ox_attr_float(n, "epsilon", 1e-5f);
    for (int i = 0; i < ch; i++) {
        if (p[3]->f[i] < 0)
            return cv_refuse(c, n, "negative running variance");
        scale[i] = p[0]->f[i] / sqrt((double)p[3]->f[i] + eps);
        shift[i] = p[1]->f[i] - p[2]->f[i] * scale[i];
    }
    return FN_OK;
}

/* The slope of a fused LeakyRelu, on the op just built. */
static void set_alpha(converter *c, const unit *u)
{
    net *n = c->nb.net;
    if (nb_ok(&c->nb) && n->n_ops > 0 && u->act == ACT_LEAKY)
        n->ops[n->n_ops - 1].alpha = u->alpha;
}

static fn_status build_conv(converter *c, unit *u, const ox_node *n, int x)
{
    const ox_const *w = n->n_in > 1 ? cst(c, n->in[1]) : NULL, *b = n->n_in > 2 ? cst(c, n->in[2]) : NULL;
    if (x < 0 || c->vector[n->in[0]])
        return cv_refuse(c, n, "its input is not a feature map");
    if (!w || w->is_int || w->ndim != 4)
        return cv_refuse(c, n, "the weight must be a constant 4-D float tensor");
    const net_tensor *xt = &c->nb.net->tensors[x];
    int cout = (int)w->dims[0], groups = (int)ox_attr_int(n, "group", 1), k, stride, pad;
    if (groups < 1 || xt->c % groups || w->dims[1] * groups != xt->c || w->dims[2] != w->dims[3])
        return fn_fail(FN_ERR_SHAPE, "%s: node '%s' (Conv): weight %lld x %lld x %lld x %lld does not fit %d input "
                       "channels in %d groups", c->g->path, n->name, (long long)w->dims[0], (long long)w->dims[1],
                       (long long)w->dims[2], (long long)w->dims[3], xt->c, groups);
    if (b && (b->is_int || b->count != (size_t)cout))
        return fn_fail(FN_ERR_SHAPE, "%s: node '%s' (Conv): bias of %zu values for %d channels", c->g->path,
                       n->name, b->count, cout);
    FN_TRY(window(c, n, xt->h, xt->w, w->dims[2], &k, &stride, &pad));
    if (k != w->dims[2])
        return cv_refuse(c, n, "kernel_shape disagrees with the weight");
    float *wf = fn_malloc(sizeof(float) * w->count), *bf = fn_calloc((size_t)cout, sizeof(float));
    double *scale = fn_malloc(sizeof(double) * 2 * (size_t)cout);
    fn_status s = wf && bf && scale ? FN_OK : FN_ERR_NO_MEMORY;
    if (s == FN_OK) {
        memcpy(wf, w->f, sizeof(float) * w->count);
        if (b)
            memcpy(bf, b->f, sizeof(float) * (size_t)cout);
    }
    if (s == FN_OK && u->bn >= 0 && (s = bn_params(c, &c->g->nodes[u->bn], cout, scale, scale + cout)) == FN_OK) {
        size_t per = w->count / (size_t)cout; /* fold: w' = w * s, b' = b * s + shift */
        for (int o = 0; o < cout; o++) {
            for (size_t i = 0; i < per; i++)
                wf[(size_t)o * per + i] = (float)(wf[(size_t)o * per + i] * scale[o]);
            bf[o] = (float)(bf[o] * scale[o] + scale[cout + o]);
        }
    }
    int res = u->res >= 0 ? tensor_of(c, u->res) : -1;
    if (s == FN_OK && u->res >= 0 && (res < 0 || c->vector[u->res]))
        s = cv_refuse(c, &c->g->nodes[u->add], "the residual is not a feature map");
    if (s == FN_OK)
        c->tid[u->out] = nb_conv_from(&c->nb, x, n->name, wf, bf, cout, k, stride, pad, groups, u->act, res);
    set_alpha(c, u);
    free(wf), free(bf), free(scale);
    return s;
}

/* Gemm (alpha A B' + beta C) or MatMul (+ constant bias): the linear layer. */
static fn_status build_linear(converter *c, unit *u, const ox_node *n, int x)
{
    const ox_const *w = n->n_in > 1 ? cst(c, n->in[1]) : NULL, *b = NULL;
    if (x < 0 || !c->vector[n->in[0]]) /* MatMul on a feature map would act on its last axis */
        return cv_refuse(c, n, "its input must be the flattened vector of each image (Flatten/Reshape first)");
    if (!w || w->is_int || w->ndim != 2)
        return cv_refuse(c, n, "the weight must be a constant 2-D float tensor");
    int gemm = is_op(n, "Gemm"), trans_b = gemm && ox_attr_int(n, "transB", 0);
    if (gemm && ox_attr_int(n, "transA", 0))
        return cv_refuse(c, n, "transA=1 is not supported");
    double alpha = gemm ? ox_attr_float(n, "alpha", 1.0f) : 1.0, beta = gemm ? ox_attr_float(n, "beta", 1.0f) : 1.0;
    int out = (int)(trans_b ? w->dims[0] : w->dims[1]), fan_in = (int)(trans_b ? w->dims[1] : w->dims[0]);
    if ((size_t)fan_in != net_tensor_elems(c->nb.net, x))
        return fn_fail(FN_ERR_SHAPE, "%s: node '%s' (%s): weight for %d inputs, but the input has %zu values",
                       c->g->path, n->name, n->op, fan_in, net_tensor_elems(c->nb.net, x));
    if (gemm && n->n_in > 2)
        b = cst(c, n->in[2]);
    if (u->bias_add >= 0) {
        const ox_node *a = &c->g->nodes[u->bias_add];
        b = cst(c, a->in[0]) ? cst(c, a->in[0]) : cst(c, a->in[1]);
    }
    if ((gemm && n->n_in > 2 && n->in[2] >= 0 && !b) || (b && (b->is_int || (b->count != (size_t)out && b->count != 1))))
        return cv_refuse(c, n, "the bias must be a constant of one value per output");
    float *wf = fn_malloc(sizeof(float) * w->count), *bf = fn_calloc((size_t)out, sizeof(float));
    if (!wf || !bf) {
        free(wf), free(bf);
        return FN_ERR_NO_MEMORY;
    }
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < fan_in; i++)
            wf[(size_t)o * fan_in + i] = (float)(alpha * w->f[trans_b ? (size_t)o * fan_in + i : (size_t)i * out + o]);
        bf[o] = b ? (float)(beta * b->f[b->count == 1 ? 0 : o]) : 0.0f;
    }
    c->tid[u->out] = nb_linear_from(&c->nb, x, n->name, wf, bf, out, u->act);
    c->vector[u->out] = 1;
    free(wf), free(bf);
    return FN_OK;
}

/* A float tensor reinterpreted as the classifier's vector (Flatten, Reshape, Squeeze). */
static fn_status build_flatten(converter *c, unit *u, const ox_node *n, int x)
{
    (void)u;
    if (x < 0)
        return cv_refuse(c, n, "its input is not a computed tensor");
    const net_tensor *t = &c->nb.net->tensors[x];
    int64_t elems = (int64_t)net_tensor_elems(c->nb.net, x);
    int ok = 1;
    if (is_op(n, "Flatten")) {
        ok = ox_attr_int(n, "axis", 1) == 1;
    } else if (is_op(n, "Reshape")) {
        const ox_const *s = n->n_in > 1 ? cst(c, n->in[1]) : NULL;
        ok = s && s->is_int && s->count == 2 &&
             (s->i[0] == OX_BATCH || s->i[0] == 0 || s->i[0] == 1 || (s->i[0] == -1 && s->i[1] == elems)) &&
             (s->i[1] == -1 || s->i[1] == elems);
    } else { /* Squeeze: only the 1 x 1 spatial dimensions */
        ok = t->h == 1 && t->w == 1;
    }
    if (!ok)
        return cv_refuse(c, n, "only a reshape of each image to a vector (before the classifier) is supported");
    c->tid[n->out[0]] = x;
    c->vector[n->out[0]] = 1;
    return FN_OK;
}

/* Shape of an activation: [batch, c, h, w] or [batch, k]. */
static fn_status build_shape(converter *c, unit *u, const ox_node *n, int x)
{
    (void)u;
    if (x < 0)
        return cv_refuse(c, n, "its input is not a computed tensor");
    const net_tensor *t = &c->nb.net->tensors[x];
    int64_t full[4] = {OX_BATCH, t->c, t->h, t->w};
    int rank = c->vector[n->in[0]] ? 2 : 4;
    if (rank == 2)
        full[1] = (int64_t)net_tensor_elems(c->nb.net, x);
    int64_t start = ox_attr_int(n, "start", 0), end = ox_attr_int(n, "end", rank);
    start = start < 0 ? start + rank : start, end = end < 0 ? end + rank : end;
    start = start < 0 ? 0 : start > rank ? rank : start, end = end < start ? start : end > rank ? rank : end;
    ox_const *k = fn_calloc(1, sizeof *k);
    if (!k || !(k->i = fn_calloc(5, sizeof(int64_t)))) {
        free(k);
        return FN_ERR_NO_MEMORY;
    }
    k->is_int = 1, k->ndim = 1, k->count = (size_t)(end - start), k->dims[0] = end - start;
    for (int64_t d = start; d < end; d++)
        k->i[d - start] = full[d];
    c->g->values[n->out[0]].data = k;
    return FN_OK;
}

/* x[:, :, ::2, ::2] then zero channels on both sides: He et al.'s option-A shortcut. */
static fn_status build_slice_pad(converter *c, unit *u, const ox_node *n, int x)
{
    (void)u, (void)x;
    int src = n->in[0];
    if (is_op(n, "Slice")) {
        const ox_const *st = n->n_in > 1 ? cst(c, n->in[1]) : NULL, *en = n->n_in > 2 ? cst(c, n->in[2]) : NULL;
        const ox_const *ax = n->n_in > 3 ? cst(c, n->in[3]) : NULL, *sp = n->n_in > 4 ? cst(c, n->in[4]) : NULL;
        int base = c->subsample[src] >= 0 ? c->subsample[src] : tensor_of(c, src);
        int axes = c->subsample[src] >= 0 ? c->sub_axes[src] : 0;
        int ok = base >= 0 && st && en && ax && sp && st->is_int && en->is_int && ax->is_int && sp->is_int &&
                 st->count == ax->count && en->count == ax->count && sp->count == ax->count && !c->vector[src];
        for (size_t k = 0; ok && k < ax->count; k++) {
            int64_t a = ax->i[k] < 0 ? ax->i[k] + 4 : ax->i[k];
            ok = (a == 2 || a == 3) && st->i[k] == 0 && sp->i[k] == 2 && en->i[k] >= c->nb.net->tensors[base].h &&
                 !(axes & (1 << a));
            axes |= 1 << a;
        }
        if (!ok)
            return cv_refuse(c, n, "Slice is supported only as x[:, :, ::2, ::2] of an option-A shortcut");
        c->subsample[n->out[0]] = base;
        c->sub_axes[n->out[0]] = axes;
        return FN_OK;
    }
    const ox_const *p = n->n_in > 1 ? cst(c, n->in[1]) : NULL;
    const ox_attr *mode = ox_find_attr(n, "mode");
    double value = 0;
    int zero = p && p->is_int && c->subsample[src] < 0 && tensor_of(c, src) >= 0;
    for (size_t k = 0; zero && k < p->count; k++)
        zero = p->i[k] == 0;
    if (zero) { /* PyTorch pads by nothing before an average pool */
        c->tid[n->out[0]] = tensor_of(c, src);
        c->vector[n->out[0]] = c->vector[src];
        return FN_OK;
    }
    int ok = c->subsample[src] >= 0 && c->sub_axes[src] == 12 && p && p->is_int && p->count == 8 &&
             (!mode || !strcmp(mode->s ? mode->s : "", "constant")) &&
             (n->n_in < 3 || n->in[2] < 0 || (cv_const_scalar(c, n->in[2], &value) && value == 0));
    for (int k = 0; ok && k < 8; k++)
        ok = (k % 4 == 1) ? p->i[k] == p->i[1] && p->i[k] >= 0 : p->i[k] == 0;
    if (!ok)
        return cv_refuse(c, n, "Pad is supported only as the zero channels of an option-A shortcut");
    int base = c->subsample[src];
    c->tid[n->out[0]] = nb_shortcut_a(&c->nb, base, c->nb.net->tensors[base].c + 2 * (int)p->i[1]);
    return FN_OK;
}

static fn_status build_identity(converter *c, unit *u, const ox_node *n, int x)
{
    for (int o = 1; o < n->n_out; o++)
        if (n->out[o] >= 0 && val(c, n->out[o])->consumers)
            return cv_refuse(c, n, "its mask output is used");
    c->tid[u->out] = x;
    c->vector[u->out] = c->vector[n->in[0]];
    c->subsample[u->out] = c->subsample[n->in[0]];
    c->sub_axes[u->out] = c->sub_axes[n->in[0]];
    return FN_OK;
}

/* The builders below read a feature map x (cv_build_unit checked it). */

static fn_status build_batchnorm(converter *c, unit *u, const ox_node *n, int x)
{
    const net_tensor *t = &c->nb.net->tensors[x];
    double *sc = fn_malloc(sizeof(double) * 2 * (size_t)t->c);
    float *w = fn_malloc(sizeof(float) * 2 * (size_t)t->c);
    fn_status s = sc && w ? bn_params(c, n, t->c, sc, sc + t->c) : FN_ERR_NO_MEMORY;
    for (int i = 0; s == FN_OK && i < t->c; i++)
        w[i] = (float)sc[i], w[t->c + i] = (float)sc[t->c + i];
    if (s == FN_OK)
        c->tid[u->out] = nb_affine_from(&c->nb, x, n->name, w, w + t->c, u->act);
    set_alpha(c, u);
    free(sc), free(w);
    return s;
}

/* An activation nothing absorbed. */
static fn_status build_activation(converter *c, unit *u, const ox_node *n, int x)
{
    int act = cv_activation_of(c, n);
    if (act < 0) /* e.g. a Clip other than (0, 6) */
        return cv_unsupported(c, n);
    c->tid[u->out] = nb_act(&c->nb, x, (net_act)act, ox_attr_float(n, "alpha", 0.01f));
    return FN_OK;
}

static fn_status build_pool(converter *c, unit *u, const ox_node *n, int x)
{
    const net_tensor *t = &c->nb.net->tensors[x];
    int k, stride, pad;
    FN_TRY(window(c, n, t->h, t->w, 1, &k, &stride, &pad));
    if (n->n_out > 1 && n->out[1] >= 0)
        return cv_refuse(c, n, "the indices output is not supported");
    if (is_op(n, "MaxPool"))
        c->tid[u->out] = nb_maxpool(&c->nb, x, k, stride, pad);
    else
        c->tid[u->out] = nb_avgpool_k(&c->nb, x, k, stride, pad, (int)ox_attr_int(n, "count_include_pad", 0));
    return FN_OK;
}

static fn_status build_global_pool(converter *c, unit *u, const ox_node *n, int x)
{
    (void)n;
    c->tid[u->out] = nb_avgpool(&c->nb, x, 1, 1);
    return FN_OK;
}

static fn_status build_mul(converter *c, unit *u, const ox_node *n, int x)
{
    if (n->n_in != 2)
        return cv_unsupported(c, n);
    const net_tensor *t = &c->nb.net->tensors[x];
    int y = tensor_of(c, n->in[1]);
    if (y >= 0 && !c->vector[n->in[1]]) {
        const net_tensor *s = &c->nb.net->tensors[y];
        int big = x, small = y; /* the channel scale may be either operand */
        if (t->h == 1 && t->w == 1 && (s->h > 1 || s->w > 1))
            big = y, small = x;
        const net_tensor *sm = &c->nb.net->tensors[small];
        const net_tensor *bg = &c->nb.net->tensors[big];
        if ((sm->h == 1 && sm->w == 1 && sm->c == bg->c) || (sm->c == bg->c && sm->h == bg->h && sm->w == bg->w)) {
            c->tid[u->out] = nb_scale(&c->nb, big, small);
            return FN_OK;
        }
    }
    return cv_refuse(c, n, "only a per-channel scale (squeeze-excitation) or a product of two feature maps "
                     "of the same shape is supported");
}

static fn_status build_add(converter *c, unit *u, const ox_node *n, int x)
{
    if (n->n_in != 2)
        return cv_unsupported(c, n);
    int y = tensor_of(c, n->in[1]);
    if (y < 0 || c->vector[n->in[1]])
        return cv_refuse(c, n, "only the sum of two feature maps is supported");
    c->tid[u->out] = nb_add(&c->nb, x, y, u->act);
    set_alpha(c, u);
    return FN_OK;
}

static fn_status build_concat(converter *c, unit *u, const ox_node *n, int x)
{
    (void)x;
    int64_t axis = ox_attr_int(n, "axis", 1);
    int ins[256];
    if ((axis != 1 && axis != -3) || n->n_in > 256)
        return cv_refuse(c, n, "only concatenation along channels is supported");
    for (int k = 0; k < n->n_in; k++)
        if ((ins[k] = tensor_of(c, n->in[k])) < 0 || c->vector[n->in[k]])
            return cv_refuse(c, n, "every input must be a feature map");
    c->tid[u->out] = nb_concat(&c->nb, ins, n->n_in);
    return FN_OK;
}

/* x: the head node's first input as a net tensor, -1 when it is none. */
typedef fn_status (*build_fn)(converter *c, unit *u, const ox_node *n, int x);

static const struct op_builder {
    const char *op;
    build_fn fn;
    int on_map; /* the first input must be a feature map */
} builders[] = {
    {"Conv", build_conv, 0},
    {"Gemm", build_linear, 0},
    {"MatMul", build_linear, 0},
    {"Identity", build_identity, 0},
    {"Dropout", build_identity, 0},
    {"Shape", build_shape, 0},
    {"Slice", build_slice_pad, 0},
    {"Pad", build_slice_pad, 0},
    {"Flatten", build_flatten, 0},
    {"Reshape", build_flatten, 0},
    {"Squeeze", build_flatten, 0},
    {"BatchNormalization", build_batchnorm, 1},
    {"Relu", build_activation, 1},
    {"Clip", build_activation, 1},
    {"LeakyRelu", build_activation, 1},
    {"Sigmoid", build_activation, 1},
    {"HardSigmoid", build_activation, 1},
    {"HardSwish", build_activation, 1},
    {"MaxPool", build_pool, 1},
    {"AveragePool", build_pool, 1},
    {"GlobalAveragePool", build_global_pool, 1},
    {"Mul", build_mul, 1},
    {"Add", build_add, 1},
    {"Concat", build_concat, 1},
};

fn_status cv_build_unit(converter *c, unit *u)
{
    const ox_node *n = &c->g->nodes[u->members[0]];
    int x = n->n_in > 0 ? tensor_of(c, n->in[0]) : -1;
    const struct op_builder *b = NULL;
    for (size_t k = 0; k < sizeof builders / sizeof builders[0] && !b; k++)
        if (is_op(n, builders[k].op))
            b = &builders[k];
    if (b && !b->on_map)
        return b->fn(c, u, n, x);
    if (x < 0 || c->vector[n->in[0]]) {
        if (x >= 0 && cv_activation_of(c, n) >= 0) /* e.g. Relu after a Gemm whose output is also read elsewhere */
            return cv_refuse(c, n, "an activation on the classifier's vector must follow its Gemm/MatMul directly");
        return x < 0 && c->subsample[n->in[0]] < 0 ? cv_unsupported(c, n)
                                                   : cv_refuse(c, n, "its input is not a feature map");
    }
    return b ? b->fn(c, u, n, x) : cv_unsupported(c, n);
}
