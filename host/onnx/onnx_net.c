/* onnx_net.c: an ox_graph -> a net, through the same builder the named
 * architectures use, so that both backends and every command run it unchanged.
 *
 * Nodes are grouped into units before anything is built: a Conv absorbs the
 * BatchNormalization after it, then a residual Add, then an activation (Relu,
 * Clip(0,6), HardSwish, HardSigmoid, Sigmoid, LeakyRelu, or the gates x*sigmoid(x)
 * and x*hardsigmoid(x)), each only while the tensor in between has a single
 * reader and is not a block; a lone BatchNormalization or Add takes its
 * activation the same way.
 * Units are then built in the graph's order, except that a unit waits for its
 * inputs (a residual's projection may come after the conv it is added to).
 * Shape arithmetic is folded to constants (onnx_fold.c). Anything else is
 * refused by name, op type and the supported list: never run wrongly. */
#include "onnx_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "onnx_fold.h"
#include "onnx_graph.h"

#define DEFAULT_INPUT 224
#define MAX_MEMBERS 6
#define WINDOW_MAX 4096

static const char supported[] =
    "Conv, BatchNormalization, Relu, Clip (0..6), LeakyRelu, Sigmoid, HardSigmoid, HardSwish, "
    "Mul (channel scale, x*sigmoid(x)), Add, Concat, MaxPool, AveragePool, GlobalAveragePool, "
    "Flatten, Reshape/Squeeze (to the classifier's vector), Gemm, MatMul, Identity, Dropout, "
    "Slice+Pad (option-A shortcut), and shape arithmetic on constants";

const char *onnx_supported_ops(void) { return supported; }

typedef struct unit {
    int absorbed;             /* part of another node's unit */
    int members[MAX_MEMBERS]; /* nodes, head first */
    int n_members;
    int bn, add, bias_add;    /* absorbed nodes, -1 when none */
    int res;                  /* value added by the absorbed Add */
    net_act act;
    float alpha;              /* ACT_LEAKY's slope */
    int out;                  /* the value this unit defines */
    int done;
} unit;

typedef struct converter {
    ox_graph *g;
    net_builder nb;
    unit *units;
    int *tid;                 /* value -> net tensor id, -1 */
    char *vector;             /* value is flattened (N x K), only the classifier reads it */
    int *subsample;           /* value is x[:, :, ::2, ::2] of this tensor id (option-A), -1 */
    int *sub_axes;            /* bit 2: H subsampled, bit 3: W subsampled */
    char *keep;               /* value must exist in the net: a block */
} converter;

static const ox_value *val(const converter *c, int v) { return &c->g->values[v]; }
static const ox_const *cst(const converter *c, int v) { return v >= 0 ? c->g->values[v].data : NULL; }
static int is_op(const ox_node *n, const char *op) { return strcmp(n->op, op) == 0; }

static fn_status refuse(const converter *c, const ox_node *n, const char *why)
{
    return fn_fail(FN_ERR_FORMAT, "%s: node '%s' (%s): %s", c->g->path, n->name, n->op, why);
}

static fn_status unsupported(const converter *c, const ox_node *n)
{
    return fn_fail(FN_ERR_FORMAT, "%s: node '%s' is op %s, which featurenorm does not support "
                   "(supported: %s)", c->g->path, n->name, n->op, supported);
}

/* The single node reading value v, or -1 (none, several, or a graph output). */
static int only_reader(const converter *c, int v)
{
    if (v < 0 || val(c, v)->consumers != 1 || v == c->g->output || c->keep[v])
        return -1;
    for (int n = 0; n < c->g->n_nodes; n++)
        for (int k = 0; k < c->g->nodes[n].n_in; k++)
            if (c->g->nodes[n].in[k] == v)
                return c->units[n].absorbed ? -1 : n;
    return -1;
}

/* ---- activations ------------------------------------------------------------ */

static int const_scalar(const converter *c, int v, double *out)
{
    const ox_const *k = cst(c, v);
    if (!k || k->count != 1)
        return 0;
    *out = k->is_int ? (double)k->i[0] : k->f[0];
    return 1;
}

/* The net activation node n computes, or -1. */
static int activation_of(const converter *c, const ox_node *n)
{
    if (is_op(n, "Relu"))
        return ACT_RELU;
    if (is_op(n, "HardSwish"))
        return ACT_HARDSWISH;
    if (is_op(n, "Sigmoid"))
        return ACT_SIGMOID;
    if (is_op(n, "LeakyRelu"))
        return ACT_LEAKY;
    if (is_op(n, "HardSigmoid"))
        return fabsf(ox_attr_float(n, "alpha", 0.2f) - 1.0f / 6) < 1e-6f &&
                       fabsf(ox_attr_float(n, "beta", 0.5f) - 0.5f) < 1e-7f ? ACT_HARDSIGMOID : -1;
    if (is_op(n, "Clip")) {
        double lo = -INFINITY, hi = INFINITY;
        if (c->g->opset < 11)
            lo = ox_attr_float(n, "min", -INFINITY), hi = ox_attr_float(n, "max", INFINITY);
        if ((n->n_in > 1 && n->in[1] >= 0 && !const_scalar(c, n->in[1], &lo)) ||
            (n->n_in > 2 && n->in[2] >= 0 && !const_scalar(c, n->in[2], &hi)))
            return -1;
        if (lo == 0 && hi == 6)
            return ACT_RELU6;
        if (lo == 0 && isinf(hi) && hi > 0)
            return ACT_RELU;
    }
    return -1;
}

/* ---- planning units ---------------------------------------------------------- */

static void absorb(converter *c, unit *u, int n)
{
    u->members[u->n_members++] = n;
    c->units[n].absorbed = 1;
}

/* Absorbs an activation after u's output, or the gate x * sigmoid(x). */
static void absorb_activation(converter *c, unit *u)
{
    if (u->n_members >= MAX_MEMBERS - 1 || c->keep[u->out] || u->out == c->g->output)
        return;
    int r = only_reader(c, u->out);
    if (r >= 0) {
        int act = activation_of(c, &c->g->nodes[r]);
        if (act >= 0) {
            u->act = (net_act)act;
            u->alpha = ox_attr_float(&c->g->nodes[r], "alpha", 0.01f);
            absorb(c, u, r);
            u->out = c->g->nodes[r].out[0];
            /* PyTorch writes ReLU6 as Relu then Clip(0, 6) */
            int r2 = u->act == ACT_RELU && u->n_members < MAX_MEMBERS ? only_reader(c, u->out) : -1;
            int act2 = r2 >= 0 ? activation_of(c, &c->g->nodes[r2]) : -1;
            if (act2 == ACT_RELU || act2 == ACT_RELU6) {
                u->act = (net_act)act2;
                absorb(c, u, r2);
                u->out = c->g->nodes[r2].out[0];
            }
        }
        return;
    }
    /* x * sigmoid(x) (SiLU) and x * hardsigmoid(x) (HardSwish before opset 14) */
    if (val(c, u->out)->consumers != 2)
        return;
    int gate = -1, mul = -1, gate_act = -1;
    for (int n = 0; n < c->g->n_nodes; n++) {
        const ox_node *x = &c->g->nodes[n];
        for (int k = 0; k < x->n_in; k++)
            if (x->in[k] == u->out && !c->units[n].absorbed) {
                int a = activation_of(c, x);
                if (a == ACT_HARDSIGMOID || a == ACT_SIGMOID)
                    gate = n, gate_act = a;
                else if (is_op(x, "Mul"))
                    mul = n;
            }
    }
    if (gate < 0 || mul < 0 || only_reader(c, c->g->nodes[gate].out[0]) != mul)
        return;
    const ox_node *m = &c->g->nodes[mul];
    if (m->n_in != 2 || !((m->in[0] == u->out) ^ (m->in[1] == u->out)))
        return;
    u->act = gate_act == ACT_SIGMOID ? ACT_SILU : ACT_HARDSWISH;
    absorb(c, u, gate);
    absorb(c, u, mul);
    u->out = m->out[0];
}

static void plan_unit(converter *c, int n)
{
    unit *u = &c->units[n];
    const ox_node *node = &c->g->nodes[n];
    u->members[u->n_members++] = n;
    u->bn = u->add = u->bias_add = u->res = -1;
    u->act = ACT_NONE;
    u->out = node->n_out > 0 ? node->out[0] : -1;
    if (is_op(node, "Conv")) {
        int r = only_reader(c, u->out);
        if (r >= 0 && is_op(&c->g->nodes[r], "BatchNormalization") && c->g->nodes[r].in[0] == u->out) {
            u->bn = r;
            absorb(c, u, r);
            u->out = c->g->nodes[r].out[0];
        }
        r = only_reader(c, u->out);
        const ox_node *a = r >= 0 ? &c->g->nodes[r] : NULL;
        if (a && is_op(a, "Add") && a->n_in == 2 && a->in[0] != a->in[1] && !cst(c, a->in[0]) && !cst(c, a->in[1])) {
            u->add = r;
            u->res = a->in[0] == u->out ? a->in[1] : a->in[0];
            absorb(c, u, r);
            u->out = a->out[0];
        }
        absorb_activation(c, u);
    } else if (is_op(node, "BatchNormalization") || is_op(node, "Add")) {
        absorb_activation(c, u); /* affine and add ops apply an activation too */
    } else if (is_op(node, "MatMul") || is_op(node, "Gemm")) {
        int r = only_reader(c, u->out);
        const ox_node *a = r >= 0 ? &c->g->nodes[r] : NULL;
        if (a && is_op(a, "Add") && is_op(node, "MatMul") && a->n_in == 2 && (cst(c, a->in[0]) || cst(c, a->in[1]))) {
            u->bias_add = r;
            absorb(c, u, r);
            u->out = a->out[0];
        }
        absorb_activation(c, u);
    }
}

/* ---- blocks -------------------------------------------------------------------- */

static int reader_of_op(const converter *c, int v, int (*accept)(const converter *, const ox_node *))
{
    if (val(c, v)->consumers != 1)
        return -1;
    for (int n = 0; n < c->g->n_nodes; n++)
        for (int k = 0; k < c->g->nodes[n].n_in; k++)
            if (c->g->nodes[n].in[k] == v)
                return accept(c, &c->g->nodes[n]) ? n : -1;
    return -1;
}

static int is_activation(const converter *c, const ox_node *n) { return activation_of(c, n) >= 0; }

static int64_t stride_of(const ox_node *n)
{
    const ox_attr *s = ox_find_attr(n, "strides");
    int64_t m = 1;
    for (size_t k = 0; s && s->type == OX_ATTR_INTS && k < s->n; k++)
        m = s->ints[k] > m ? s->ints[k] : m;
    return m;
}

/* Auto blocks: the output of every residual unit (an Add of two feature maps, with
 * its activation), else the feature map entering each downsampling and the head. */
static void choose_auto_blocks(converter *c)
{
    ox_graph *g = c->g;
    int residual = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        const ox_node *a = &g->nodes[n];
        if (!is_op(a, "Add") || a->n_in != 2 || cst(c, a->in[0]) || cst(c, a->in[1]) || a->in[0] == a->in[1])
            continue;
        /* both sides must be feature maps: a MatMul's bias is a constant, excluded above */
        int r = reader_of_op(c, a->out[0], is_activation);
        c->keep[r >= 0 ? g->nodes[r].out[0] : a->out[0]] = 1;
        residual++;
    }
    if (residual)
        return;
    for (int n = 0; n < g->n_nodes; n++) {
        const ox_node *x = &g->nodes[n];
        int down = (is_op(x, "Conv") || is_op(x, "MaxPool") || is_op(x, "AveragePool")) && stride_of(x) >= 2;
        int head = is_op(x, "GlobalAveragePool") || is_op(x, "Flatten") || is_op(x, "Reshape");
        int v = x->in[0];
        while (v >= 0 && val(c, v)->producer >= 0 && (is_op(&g->nodes[val(c, v)->producer], "Pad") ||
                                                     is_op(&g->nodes[val(c, v)->producer], "Identity")))
            v = g->nodes[val(c, v)->producer].in[0]; /* the map itself, not a no-op on the way */
        if ((down || head) && v >= 0 && v != g->input && !cst(c, v) && val(c, v)->producer >= 0)
            c->keep[v] = 1;
        if (head)
            break;
    }
}

/* Named blocks: tensor names, or node names (their first output). */
static fn_status mark_named_blocks(converter *c, const char *list)
{
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int found = -1;
        for (int v = 0; v < c->g->n_values && found < 0; v++)
            if (strlen(val(c, v)->name) == len && strncmp(val(c, v)->name, p, len) == 0)
                found = v;
        for (int n = 0; n < c->g->n_nodes && found < 0; n++)
            if (strlen(c->g->nodes[n].name) == len && strncmp(c->g->nodes[n].name, p, len) == 0)
                found = c->g->nodes[n].out[0];
        if (found < 0 || cst(c, found) || found == c->g->input)
            return fn_fail(FN_ERR_NOT_FOUND, "%s: no feature map named '%.*s' (featurenorm info --model %s "
                           "lists them)", c->g->path, (int)len, p, c->g->path);
        c->keep[found] = 1;
        p += len + (e != NULL);
    }
    return FN_OK;
}

/* ---- building units ------------------------------------------------------------- */

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
        return refuse(c, n, "only square 2-D windows are supported");
    if (st[0] != st[1] || st[0] < 1)
        return refuse(c, n, "only equal strides along H and W are supported");
    if (dl[0] != 1 || dl[1] != 1)
        return refuse(c, n, "dilation other than 1 is not supported");
    const ox_attr *ap = ox_find_attr(n, "auto_pad");
    const char *mode = ap && ap->type == OX_ATTR_STRING ? ap->s : "NOTSET";
    if (ks[0] > WINDOW_MAX || st[0] > WINDOW_MAX || pd[0] < 0 || pd[0] > WINDOW_MAX)
        return refuse(c, n, "window, stride or padding out of range");
    *k = (int)ks[0], *stride = (int)st[0];
    if (!strcmp(mode, "VALID")) {
        *pad = 0;
    } else if (!strcmp(mode, "SAME_UPPER") || !strcmp(mode, "SAME_LOWER")) {
        int total_h = ((in_h + *stride - 1) / *stride - 1) * *stride + *k - in_h;
        int total_w = ((in_w + *stride - 1) / *stride - 1) * *stride + *k - in_w;
        total_h = total_h < 0 ? 0 : total_h, total_w = total_w < 0 ? 0 : total_w;
        if (total_h % 2 || total_h != total_w)
            return refuse(c, n, "auto_pad SAME needs asymmetric padding here, which is not supported");
        *pad = total_h / 2;
    } else if (!strcmp(mode, "NOTSET")) {
        if (np && (np != 4 || pd[0] != pd[1] || pd[0] != pd[2] || pd[0] != pd[3]))
            return refuse(c, n, "only equal padding on all four sides is supported");
        *pad = (int)pd[0];
    } else {
        return refuse(c, n, "unknown auto_pad mode");
    }
    if (ox_attr_int(n, "ceil_mode", 0)) { /* fine when it changes nothing */
        int rem_h = (in_h + 2 * *pad - *k) % *stride, rem_w = (in_w + 2 * *pad - *k) % *stride;
        if (rem_h || rem_w)
            return refuse(c, n, "ceil_mode=1 changes the output size here, which is not supported");
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
        return refuse(c, n, "training_mode BatchNormalization; export the model in eval mode");
    double eps = ox_attr_float(n, "epsilon", 1e-5f);
    for (int i = 0; i < ch; i++) {
        if (p[3]->f[i] < 0)
            return refuse(c, n, "negative running variance");
        scale[i] = p[0]->f[i] / sqrt((double)p[3]->f[i] + eps);
        shift[i] = p[1]->f[i] - p[2]->f[i] * scale[i];
    }
    return FN_OK;
}

static int tensor_of(const converter *c, int v) { return v >= 0 ? c->tid[v] : -1; }

/* The slope of a fused LeakyRelu, on the op just built. */
static void set_alpha(converter *c, const unit *u)
{
    net *n = c->nb.net;
    if (nb_ok(&c->nb) && n->n_ops > 0 && u->act == ACT_LEAKY)
        n->ops[n->n_ops - 1].alpha = u->alpha;
}

static fn_status build_conv(converter *c, unit *u)
{
    const ox_node *n = &c->g->nodes[u->members[0]];
    int x = tensor_of(c, n->in[0]);
    const ox_const *w = n->n_in > 1 ? cst(c, n->in[1]) : NULL, *b = n->n_in > 2 ? cst(c, n->in[2]) : NULL;
    if (x < 0 || c->vector[n->in[0]])
        return refuse(c, n, "its input is not a feature map");
    if (!w || w->is_int || w->ndim != 4)
        return refuse(c, n, "the weight must be a constant 4-D float tensor");
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
        return refuse(c, n, "kernel_shape disagrees with the weight");
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
        s = refuse(c, &c->g->nodes[u->add], "the residual is not a feature map");
    if (s == FN_OK)
        c->tid[u->out] = nb_conv_from(&c->nb, x, n->name, wf, bf, cout, k, stride, pad, groups, u->act, res);
    set_alpha(c, u);
    free(wf), free(bf), free(scale);
    return s;
}

/* Gemm (alpha A B' + beta C) or MatMul (+ constant bias): the linear layer. */
static fn_status build_linear(converter *c, unit *u)
{
    const ox_node *n = &c->g->nodes[u->members[0]];
    int x = tensor_of(c, n->in[0]);
    const ox_const *w = n->n_in > 1 ? cst(c, n->in[1]) : NULL, *b = NULL;
    if (x < 0 || !c->vector[n->in[0]]) /* MatMul on a feature map would act on its last axis */
        return refuse(c, n, "its input must be the flattened vector of each image (Flatten/Reshape first)");
    if (!w || w->is_int || w->ndim != 2)
        return refuse(c, n, "the weight must be a constant 2-D float tensor");
    int gemm = is_op(n, "Gemm"), trans_b = gemm && ox_attr_int(n, "transB", 0);
    if (gemm && ox_attr_int(n, "transA", 0))
        return refuse(c, n, "transA=1 is not supported");
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
        return refuse(c, n, "the bias must be a constant of one value per output");
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
static fn_status build_flatten(converter *c, const ox_node *n)
{
    int x = tensor_of(c, n->in[0]);
    if (x < 0)
        return refuse(c, n, "its input is not a computed tensor");
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
        return refuse(c, n, "only a reshape of each image to a vector (before the classifier) is supported");
    c->tid[n->out[0]] = x;
    c->vector[n->out[0]] = 1;
    return FN_OK;
}

/* Shape of an activation: [batch, c, h, w] or [batch, k]. */
static fn_status build_shape(converter *c, const ox_node *n)
{
    int x = tensor_of(c, n->in[0]);
    if (x < 0)
        return refuse(c, n, "its input is not a computed tensor");
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
static fn_status build_slice_pad(converter *c, const ox_node *n)
{
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
            return refuse(c, n, "Slice is supported only as x[:, :, ::2, ::2] of an option-A shortcut");
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
             (n->n_in < 3 || n->in[2] < 0 || (const_scalar(c, n->in[2], &value) && value == 0));
    for (int k = 0; ok && k < 8; k++)
        ok = (k % 4 == 1) ? p->i[k] == p->i[1] && p->i[k] >= 0 : p->i[k] == 0;
    if (!ok)
        return refuse(c, n, "Pad is supported only as the zero channels of an option-A shortcut");
    int base = c->subsample[src];
    c->tid[n->out[0]] = nb_shortcut_a(&c->nb, base, c->nb.net->tensors[base].c + 2 * (int)p->i[1]);
    return FN_OK;
}

static fn_status build_unit(converter *c, unit *u)
{
    const ox_node *n = &c->g->nodes[u->members[0]];
    int x = n->n_in > 0 ? tensor_of(c, n->in[0]) : -1;
    if (is_op(n, "Conv"))
        return build_conv(c, u);
    if (is_op(n, "Gemm") || is_op(n, "MatMul"))
        return build_linear(c, u);
    if (is_op(n, "Identity") || is_op(n, "Dropout")) {
        for (int o = 1; o < n->n_out; o++)
            if (n->out[o] >= 0 && val(c, n->out[o])->consumers)
                return refuse(c, n, "its mask output is used");
        c->tid[u->out] = x;
        c->vector[u->out] = c->vector[n->in[0]];
        c->subsample[u->out] = c->subsample[n->in[0]];
        c->sub_axes[u->out] = c->sub_axes[n->in[0]];
        return FN_OK;
    }
    if (is_op(n, "Shape"))
        return build_shape(c, n);
    if (is_op(n, "Slice") || is_op(n, "Pad"))
        return build_slice_pad(c, n);
    if (is_op(n, "Flatten") || is_op(n, "Reshape") || is_op(n, "Squeeze"))
        return build_flatten(c, n);
    if (x < 0 || c->vector[n->in[0]]) {
        if (x >= 0 && activation_of(c, n) >= 0) /* e.g. Relu after a Gemm whose output is also read elsewhere */
            return refuse(c, n, "an activation on the classifier's vector must follow its Gemm/MatMul directly");
        return x < 0 && c->subsample[n->in[0]] < 0 ? unsupported(c, n)
                                                   : refuse(c, n, "its input is not a feature map");
    }
    const net_tensor *t = &c->nb.net->tensors[x];
    if (is_op(n, "BatchNormalization")) {
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
    int act = activation_of(c, n);
    if (act >= 0) { /* an activation nothing absorbed */
        c->tid[u->out] = nb_act(&c->nb, x, (net_act)act, ox_attr_float(n, "alpha", 0.01f));
        return FN_OK;
    }
    if (is_op(n, "MaxPool") || is_op(n, "AveragePool")) {
        int k, stride, pad;
        FN_TRY(window(c, n, t->h, t->w, 1, &k, &stride, &pad));
        if (n->n_out > 1 && n->out[1] >= 0)
            return refuse(c, n, "the indices output is not supported");
        if (is_op(n, "MaxPool")) {
            c->tid[u->out] = nb_maxpool(&c->nb, x, k, stride, pad);
            return FN_OK;
        }
        c->tid[u->out] = nb_avgpool_k(&c->nb, x, k, stride, pad, (int)ox_attr_int(n, "count_include_pad", 0));
        return FN_OK;
    }
    if (is_op(n, "GlobalAveragePool")) {
        c->tid[u->out] = nb_avgpool(&c->nb, x, 1, 1);
        return FN_OK;
    }
    if (is_op(n, "Mul") && n->n_in == 2) {
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
        return refuse(c, n, "only a per-channel scale (squeeze-excitation) or a product of two feature maps "
                      "of the same shape is supported");
    }
    if (is_op(n, "Add") && n->n_in == 2) {
        int y = tensor_of(c, n->in[1]);
        if (y < 0 || c->vector[n->in[1]])
            return refuse(c, n, "only the sum of two feature maps is supported");
        c->tid[u->out] = nb_add(&c->nb, x, y, u->act);
        set_alpha(c, u);
        return FN_OK;
    }
    if (is_op(n, "Concat")) {
        int64_t axis = ox_attr_int(n, "axis", 1);
        int ins[256];
        if ((axis != 1 && axis != -3) || n->n_in > 256)
            return refuse(c, n, "only concatenation along channels is supported");
        for (int k = 0; k < n->n_in; k++)
            if ((ins[k] = tensor_of(c, n->in[k])) < 0 || c->vector[n->in[k]])
                return refuse(c, n, "every input must be a feature map");
        c->tid[u->out] = nb_concat(&c->nb, ins, n->n_in);
        return FN_OK;
    }
    return unsupported(c, n);
}

/* ---- the whole graph ------------------------------------------------------------ */

static int unit_ready(const converter *c, const unit *u)
{
    for (int m = 0; m < u->n_members; m++) {
        const ox_node *n = &c->g->nodes[u->members[m]];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k], inside = 0;
            if (v < 0 || cst(c, v) || c->tid[v] >= 0 || c->subsample[v] >= 0)
                continue;
            for (int j = 0; j < u->n_members && !inside; j++)
                for (int o = 0; o < c->g->nodes[u->members[j]].n_out; o++)
                    inside |= c->g->nodes[u->members[j]].out[o] == v;
            if (!inside)
                return 0;
        }
    }
    return 1;
}

/* Folds constant nodes, builds units in order; the first error wins. */
static fn_status build_all(converter *c)
{
    ox_graph *g = c->g;
    int remaining = 0;
    for (int n = 0; n < g->n_nodes; n++)
        remaining += !c->units[n].absorbed;
    while (remaining > 0) {
        int progress = 0;
        for (int n = 0; n < g->n_nodes; n++) {
            unit *u = &c->units[n];
            if (u->absorbed || u->done || !unit_ready(c, u))
                continue;
            const ox_node *node = &g->nodes[n];
            int all_const = node->n_in > 0;
            for (int k = 0; k < node->n_in; k++)
                all_const &= node->in[k] < 0 || cst(c, node->in[k]) != NULL;
            if (all_const && u->n_members == 1 && node->n_out >= 1 && node->out[0] >= 0) {
                if (!fold_supported(node->op))
                    return unsupported(c, node);
                ox_const *in[16] = {NULL}, *out;
                for (int k = 0; k < node->n_in && k < 16; k++)
                    in[k] = node->in[k] >= 0 ? g->values[node->in[k]].data : NULL;
                fn_status s = fold_node(node, in, &out);
                if (s != FN_OK) { /* name the file: copied, as fn_fail writes the same buffer */
                    char why[1024];
                    snprintf(why, sizeof why, "%s", fn_last_error());
                    return fn_fail(s, "%s: %s", g->path, why);
                }
                g->values[node->out[0]].data = out;
            } else {
                FN_TRY(build_unit(c, u));
                if (!nb_ok(&c->nb))
                    return c->nb.status;
                if (u->out >= 0 && c->tid[u->out] < 0 && !cst(c, u->out) && c->subsample[u->out] < 0)
                    return refuse(c, node, "produced nothing the network can use");
            }
            u->done = 1;
            remaining--;
            progress = 1;
            break; /* back to the first unit: keep the graph's order */
        }
        if (!progress)
            return fn_fail(FN_ERR_FORMAT, "%s: the graph's units depend on each other in a cycle", g->path);
    }
    return FN_OK;
}

/* Taps every kept value (auto or named) that the net computes, in forward order;
 * with `all`, every feature map the net keeps. */
static fn_status tap_blocks(converter *c, int all)
{
    net *net = c->nb.net;
    int *name_of = fn_malloc(sizeof(int) * ((size_t)net->n_tensors + 1));
    if (!name_of)
        return FN_ERR_NO_MEMORY;
    for (int t = 0; t < net->n_tensors; t++)
        name_of[t] = -1;
    for (int v = 0; v < c->g->n_values; v++) {
        int t = c->tid[v];
        if (t < 0 || c->vector[v] || t == net->input)
            continue;
        if (c->keep[v] || (all && name_of[t] < 0))
            name_of[t] = v; /* an alias (Identity) keeps the first name unless the later is a block */
    }
    fn_status s = FN_OK;
    for (int i = 0; i < net->n_ops && s == FN_OK; i++) {
        int t = net->ops[i].out, v = name_of[t];
        if (v < 0 || net->tensors[t].h * net->tensors[t].w < 1 || net->ops[i].kind == OP_LINEAR)
            continue;
        const char *name = c->g->values[v].name;
        if (strlen(name) >= sizeof net->blocks[0].name || strpbrk(name, ",\"\n\r"))
            s = fn_fail(FN_ERR_FORMAT, "%s: tensor name '%s' cannot name a block (longer than %zu characters, "
                        "or a comma, quote or newline)", c->g->path, name, sizeof net->blocks[0].name - 1);
        else
            nb_tap(&c->nb, t, name);
    }
    for (int v = 0; v < c->g->n_values && s == FN_OK; v++)
        if (c->keep[v] && !all && (c->tid[v] < 0 || c->vector[v] || name_of[c->tid[v]] != v))
            s = fn_fail(FN_ERR_NOT_FOUND, "%s: '%s' is not a feature map of the network", c->g->path,
                        c->g->values[v].name);
    free(name_of);
    return s != FN_OK ? s : c->nb.status;
}

static fn_status convert(converter *c, const char *blocks, int input_size, int verbose)
{
    ox_graph *g = c->g;
    int all = blocks && !strcmp(blocks, "all");
    for (int n = 0; n < g->n_nodes; n++) /* every operator read here has both */
        if (g->nodes[n].n_in < 1 || g->nodes[n].in[0] < 0 || g->nodes[n].n_out < 1 || g->nodes[n].out[0] < 0)
            return refuse(c, &g->nodes[n], "the node has no first input or no first output");
    if (blocks && *blocks && strcmp(blocks, "auto") && !all)
        FN_TRY(mark_named_blocks(c, blocks));
    else
        choose_auto_blocks(c);
    for (int n = 0; n < g->n_nodes; n++)
        if (!c->units[n].absorbed)
            plan_unit(c, n);
    int64_t h = g->input_dims[2], w = g->input_dims[3];
    if ((h > 0 && w > 0 && h != w) || (h > 0) != (w > 0))
        return fn_fail(FN_ERR_SHAPE, "%s: the graph's input is %lld x %lld; featurenorm feeds square images",
                       g->path, (long long)h, (long long)w);
    if (h > 0 && input_size > 0 && input_size != h)
        return fn_fail(FN_ERR_SHAPE, "%s: the graph's input is fixed at %lld x %lld, but --input-size is %d",
                       g->path, (long long)h, (long long)w, input_size);
    if (h > 4096)
        return fn_fail(FN_ERR_SHAPE, "%s: the graph's input is %lld x %lld; featurenorm takes up to 4096",
                       g->path, (long long)h, (long long)w);
    int size = input_size > 0 ? input_size : h > 0 ? (int)h : DEFAULT_INPUT;
    if (verbose && input_size <= 0 && h <= 0)
        fprintf(stderr, "featurenorm: %s: the graph's input size is symbolic; using %d x %d "
                "(--input-size sets it)\n", g->path, size, size);
    c->tid[g->input] = nb_input(&c->nb, size);
    FN_TRY(build_all(c));
    FN_TRY(tap_blocks(c, all));
    int logits = tensor_of(c, g->output);
    if (c->nb.net->n_blocks == 0)
        return fn_fail(FN_ERR_NOT_FOUND, "%s: no block to tap (give --blocks NAME,...; featurenorm info "
                       "--model lists the feature maps)", g->path);
    if (logits < 0 || !c->vector[g->output] || c->nb.net->n_ops == 0 ||
        c->nb.net->ops[c->nb.net->n_ops - 1].kind != OP_LINEAR || c->nb.net->ops[c->nb.net->n_ops - 1].out != logits)
        return fn_fail(FN_ERR_FORMAT, "%s: the graph's output '%s' must be the logits of a final Gemm/MatMul "
                       "(export the classifier without softmax)", g->path, g->values[g->output].name);
    return nb_finish(&c->nb, logits);
}

fn_status onnx_graph_to_net(ox_graph *g, const char *blocks, int input_size, int verbose, net *out)
{
    memset(out, 0, sizeof *out);
    converter c = {g, {out, NULL, 1e-5f, FN_OK}, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t V = (size_t)g->n_values + 1;
    c.units = fn_calloc((size_t)g->n_nodes + 1, sizeof(unit));
    c.tid = fn_malloc(sizeof(int) * V);
    c.subsample = fn_malloc(sizeof(int) * V);
    c.sub_axes = fn_calloc(V, sizeof(int));
    c.vector = fn_calloc(V, 1);
    c.keep = fn_calloc(V, 1);
    fn_status s = FN_ERR_NO_MEMORY;
    if (c.units && c.tid && c.subsample && c.sub_axes && c.vector && c.keep) {
        for (size_t v = 0; v < V; v++)
            c.tid[v] = c.subsample[v] = -1;
        const char *base = strrchr(g->path, '/');
        snprintf(out->arch, sizeof out->arch, "%s", base ? base + 1 : g->path);
        /* ONNX files do not say how inputs were normalised: ImageNet's unless told */
        out->mean[0] = 0.485f, out->mean[1] = 0.456f, out->mean[2] = 0.406f;
        out->std[0] = 0.229f, out->std[1] = 0.224f, out->std[2] = 0.225f;
        out->preset = FN_PRESET_AUTO;
        s = convert(&c, blocks, input_size, verbose);
        if (s == FN_OK)
            out->has_weights = 1;
    }
    free(c.units), free(c.tid), free(c.subsample), free(c.sub_axes), free(c.vector), free(c.keep);
    if (s != FN_OK)
        net_free(out);
    return s;
}

fn_status onnx_build_net(const char *path, const char *blocks, int input_size, int verbose, net *out)
{
    memset(out, 0, sizeof *out);
    ox_graph *g;
    FN_TRY(onnx_read(path, &g));
    fn_status s = onnx_graph_to_net(g, blocks, input_size, verbose, out);
    onnx_graph_free(g);
    return s;
}
