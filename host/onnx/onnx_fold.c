/* onnx_fold.c: evaluating the small constant subgraphs exporters leave behind.
 *
 * PyTorch writes x.view(x.size(0), -1) as Shape -> Gather -> Unsqueeze -> Concat
 * -> Reshape, and F.pad's pads as ConstantOfShape -> Concat -> Reshape -> Slice
 * -> Transpose -> Cast. Those nodes compute on constants (and on the shapes of
 * activations, where the batch dimension is OX_BATCH), so they are evaluated
 * here once at load and never reach the net. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "onnx_fold.h"

#define FOLD_MAX_ELEMS ((size_t)1 << 20)

static ox_const *new_const(int is_int, int ndim, const int64_t *dims)
{
    ox_const *c = fn_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->is_int = is_int;
    c->ndim = ndim;
    c->count = 1;
    for (int d = 0; d < ndim; d++) { /* shape arithmetic is small; a corrupt file may not be */
        if (dims[d] < 0 || (dims[d] > 0 && c->count > FOLD_MAX_ELEMS / (size_t)dims[d])) {
            ox_const_free(c);
            return NULL;
        }
        c->dims[d] = dims[d];
        c->count *= (size_t)dims[d];
    }
    if ((is_int ? !(c->i = fn_calloc(c->count + 1, sizeof(int64_t))) : !(c->f = fn_calloc(c->count + 1, sizeof(float))))) {
        ox_const_free(c);
        return NULL;
    }
    return c;
}

static double get(const ox_const *c, size_t k) { return c->is_int ? (double)c->i[k] : c->f[k]; }

static void put(ox_const *c, size_t k, double v)
{
    if (c->is_int)
        c->i[k] = (int64_t)v;
    else
        c->f[k] = (float)v;
}

/* Copies element (src_index) of a to (dst_index) of out, keeping int64 exact. */
static void copy_elem(ox_const *out, size_t dst, const ox_const *a, size_t src)
{
    if (out->is_int && a->is_int)
        out->i[dst] = a->i[src];
    else
        put(out, dst, get(a, src));
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Axes from an attribute (opsets before 13) or an input (13 and later). */
static int axes_of(const ox_node *n, ox_const *const *in, int input, int64_t *axes, int max)
{
    const ox_attr *a = ox_find_attr(n, "axes");
    int count = 0;
    if (a && a->type == OX_ATTR_INTS)
        for (size_t k = 0; k < a->n && count < max; k++)
            axes[count++] = a->ints[k];
    else if (n->n_in > input && in[input] && in[input]->is_int)
        for (size_t k = 0; k < in[input]->count && count < max; k++)
            axes[count++] = in[input]->i[k];
    return count;
}

static fn_status unsupported(const ox_node *n)
{
    return fn_fail(FN_ERR_FORMAT, "node '%s' (%s) computes on constants in a way featurenorm does not "
                   "evaluate", n->name, n->op);
}

/* One rule per op: *r is the result, or left NULL when its shape is negative
 * or too large; an error status otherwise (*r then NULL too). a = in[0]. */
typedef fn_status (*fold_fn)(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r);

/* a's elements under another shape (and type); the counts must agree. */
static fn_status copy_as(const ox_node *n, const ox_const *a, int is_int, int ndim, const int64_t *dims,
                         ox_const **r)
{
    if (!(*r = new_const(is_int, ndim, dims)))
        return FN_OK;
    if ((*r)->count != a->count) {
        size_t count = (*r)->count; /* read before it is freed */
        ox_const_free(*r);
        *r = NULL;
        return fn_fail(FN_ERR_SHAPE, "%s node '%s' changes %zu elements into %zu", n->op, n->name, a->count,
                       count);
    }
    for (size_t k = 0; k < a->count; k++)
        copy_elem(*r, k, a, k);
    return FN_OK;
}

static fn_status fold_identity(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    (void)in;
    return copy_as(n, a, a->is_int, a->ndim, a->dims, r);
}

static fn_status fold_cast(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    (void)in;
    int64_t to = ox_attr_int(n, "to", 1);
    return copy_as(n, a, to == 6 || to == 7 || to == 9 || to == 2 || to == 3, a->ndim, a->dims, r);
}

static fn_status fold_shape(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    (void)n, (void)in;
    int64_t rank = a->ndim;
    if ((*r = new_const(1, 1, &rank)))
        for (int d = 0; d < a->ndim; d++)
            (*r)->i[d] = a->dims[d];
    return FN_OK;
}

/* Add, Sub, Mul, Div, with a scalar broadcast on either side. */
static fn_status fold_arith(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    const ox_const *b = in[1];
    const char op = n->op[0];
    if (!b || (a->count != b->count && a->count != 1 && b->count != 1))
        return unsupported(n);
    const ox_const *big = a->count >= b->count ? a : b;
    ox_const *c = *r = new_const(a->is_int && b->is_int, big->ndim, big->dims);
    for (size_t k = 0; c && k < c->count; k++) {
        size_t ka = a->count == 1 ? 0 : k, kb = b->count == 1 ? 0 : k;
        if (c->is_int) { /* exact in int64; Div truncates as ONNX does */
            int64_t x = a->i[ka], y = b->i[kb];
            if (op == 'D' && y == 0) {
                ox_const_free(c);
                *r = NULL;
                return unsupported(n);
            }
            c->i[k] = op == 'A' ? x + y : op == 'S' ? x - y : op == 'M' ? x * y : x / y;
        } else {
            double x = get(a, ka), y = get(b, kb);
            put(c, k, op == 'A' ? x + y : op == 'S' ? x - y : op == 'M' ? x * y : x / y);
        }
    }
    return FN_OK;
}

static fn_status fold_constant_of_shape(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    (void)in;
    const ox_attr *v = ox_find_attr(n, "value");
    if (!a->is_int || a->count > OX_MAX_DIMS)
        return unsupported(n);
    int is_int = v && v->t ? v->t->is_int : 0;
    if ((*r = new_const(is_int, (int)a->count, a->i)))
        for (size_t k = 0; k < (*r)->count; k++)
            put(*r, k, v && v->t && v->t->count ? get(v->t, 0) : 0.0);
    return FN_OK;
}

static fn_status fold_concat(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    int64_t axis = ox_attr_int(n, "axis", 0);
    if (a->ndim != 1 || (axis != 0 && axis != -1))
        return unsupported(n);
    int64_t total = 0;
    int is_int = 1;
    for (int k = 0; k < n->n_in; k++) {
        if (!in[k] || in[k]->ndim != 1)
            return unsupported(n);
        total += in[k]->dims[0];
        is_int &= in[k]->is_int;
    }
    if ((*r = new_const(is_int, 1, &total))) {
        size_t o = 0;
        for (int k = 0; k < n->n_in; k++)
            for (size_t e = 0; e < in[k]->count; e++)
                copy_elem(*r, o++, in[k], e);
    }
    return FN_OK;
}

static fn_status fold_reshape(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    const ox_const *s = in[1];
    int64_t dims[OX_MAX_DIMS];
    if (!s || !s->is_int || s->count > OX_MAX_DIMS)
        return unsupported(n);
    int64_t known = 1, infer = -1;
    for (size_t d = 0; d < s->count; d++) {
        dims[d] = s->i[d] == 0 ? (d < (size_t)a->ndim ? a->dims[d] : 0) : s->i[d];
        if (dims[d] == -1)
            infer = (int64_t)d;
        else if (dims[d] < 0)
            return unsupported(n);
        else
            known *= dims[d];
    }
    if (infer >= 0)
        dims[infer] = known ? (int64_t)a->count / known : 0;
    return copy_as(n, a, a->is_int, (int)s->count, dims, r);
}

static fn_status fold_transpose(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    (void)in;
    int64_t perm[OX_MAX_DIMS], dims[OX_MAX_DIMS];
    const ox_attr *p = ox_find_attr(n, "perm");
    for (int d = 0; d < a->ndim; d++)
        perm[d] = p && p->type == OX_ATTR_INTS && p->n == (size_t)a->ndim ? p->ints[d] : a->ndim - 1 - d;
    for (int d = 0; d < a->ndim; d++) {
        if (perm[d] < 0 || perm[d] >= a->ndim)
            return unsupported(n);
        dims[d] = a->dims[perm[d]];
    }
    if ((*r = new_const(a->is_int, a->ndim, dims)))
        for (size_t k = 0; k < (*r)->count; k++) { /* k: index into r; find a's index */
            size_t rem = k, src = 0, stride[OX_MAX_DIMS];
            int64_t idx[OX_MAX_DIMS];
            for (int d = a->ndim - 1; d >= 0; d--)
                idx[d] = (int64_t)(rem % (size_t)dims[d]), rem /= (size_t)dims[d];
            for (int d = a->ndim - 1, s = 1; d >= 0; d--)
                stride[d] = (size_t)s, s *= (int)a->dims[d];
            for (int d = 0; d < a->ndim; d++)
                src += (size_t)idx[d] * stride[perm[d]];
            copy_elem(*r, k, a, src);
        }
    return FN_OK;
}

static fn_status fold_slice(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    int64_t start[OX_MAX_DIMS] = {0}, step[OX_MAX_DIMS], dims[OX_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++)
        step[d] = 1, dims[d] = a->dims[d];
    const ox_const *st = in[1], *en = n->n_in > 2 ? in[2] : NULL, *ax = n->n_in > 3 ? in[3] : NULL,
                   *sp = n->n_in > 4 ? in[4] : NULL;
    if (!st || !en || !st->is_int || !en->is_int || st->count != en->count)
        return unsupported(n);
    for (size_t k = 0; k < st->count; k++) {
        int64_t d = ax ? ax->i[k] : (int64_t)k;
        d = d < 0 ? d + a->ndim : d;
        int64_t size = a->dims[d], s = sp ? sp->i[k] : 1, b = st->i[k], e = en->i[k];
        if (d < 0 || d >= a->ndim || s == 0)
            return unsupported(n);
        b = b < 0 ? b + size : b, e = e < 0 ? e + size : e;
        b = s > 0 ? clamp64(b, 0, size) : clamp64(b, 0, size - 1);
        e = s > 0 ? clamp64(e, 0, size) : clamp64(e, -1, size - 1);
        start[d] = b, step[d] = s;
        dims[d] = s > 0 ? (e > b ? (e - b + s - 1) / s : 0) : (b > e ? (b - e - s - 1) / -s : 0);
    }
    if ((*r = new_const(a->is_int, a->ndim, dims)))
        for (size_t k = 0; k < (*r)->count; k++) {
            size_t rem = k, src = 0, s = 1;
            for (int d = a->ndim - 1; d >= 0; d--) {
                int64_t i = (int64_t)(rem % (size_t)dims[d]);
                rem /= (size_t)dims[d];
                src += (size_t)(start[d] + i * step[d]) * s;
                s *= (size_t)a->dims[d];
            }
            copy_elem(*r, k, a, src);
        }
    return FN_OK;
}

static fn_status fold_gather(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    const ox_const *idx = in[1];
    int64_t axis = ox_attr_int(n, "axis", 0);
    if (a->ndim != 1 || axis != 0 || !idx || !idx->is_int || idx->ndim > 1)
        return unsupported(n);
    if ((*r = new_const(a->is_int, idx->ndim, idx->dims)))
        for (size_t k = 0; k < idx->count; k++) {
            int64_t i = idx->i[k] < 0 ? idx->i[k] + a->dims[0] : idx->i[k];
            if (i < 0 || i >= a->dims[0]) {
                ox_const_free(*r);
                *r = NULL;
                return fn_fail(FN_ERR_SHAPE, "Gather node '%s': index %lld out of range", n->name,
                               (long long)idx->i[k]);
            }
            copy_elem(*r, k, a, (size_t)i);
        }
    return FN_OK;
}

static fn_status fold_unsqueeze(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    int64_t axes[OX_MAX_DIMS], dims[OX_MAX_DIMS];
    int n_axes = axes_of(n, in, 1, axes, OX_MAX_DIMS), out_nd = a->ndim + n_axes, src = 0;
    if (out_nd > OX_MAX_DIMS)
        return unsupported(n);
    for (int d = 0; d < out_nd; d++) {
        int is_new = 0;
        for (int k = 0; k < n_axes; k++)
            is_new |= (axes[k] < 0 ? axes[k] + out_nd : axes[k]) == d;
        dims[d] = is_new ? 1 : a->dims[src++];
    }
    return copy_as(n, a, a->is_int, out_nd, dims, r);
}

static fn_status fold_squeeze(const ox_node *n, ox_const *const *in, const ox_const *a, ox_const **r)
{
    int64_t axes[OX_MAX_DIMS], dims[OX_MAX_DIMS];
    int n_axes = axes_of(n, in, 1, axes, OX_MAX_DIMS), nd = 0;
    for (int d = 0; d < a->ndim; d++) {
        int drop = n_axes == 0 && a->dims[d] == 1;
        for (int k = 0; k < n_axes; k++)
            drop |= (axes[k] < 0 ? axes[k] + a->ndim : axes[k]) == d;
        if (!drop)
            dims[nd++] = a->dims[d];
    }
    return copy_as(n, a, a->is_int, nd, dims, r);
}

static const struct fold_rule {
    const char *op;
    fold_fn fn;
} rules[] = {
    {"Identity", fold_identity}, {"Cast", fold_cast},           {"Shape", fold_shape},
    {"Add", fold_arith},         {"Sub", fold_arith},           {"Mul", fold_arith},
    {"Div", fold_arith},         {"ConstantOfShape", fold_constant_of_shape},
    {"Concat", fold_concat},     {"Reshape", fold_reshape},     {"Transpose", fold_transpose},
    {"Slice", fold_slice},       {"Gather", fold_gather},       {"Unsqueeze", fold_unsqueeze},
    {"Squeeze", fold_squeeze},
};

static const struct fold_rule *rule_of(const char *op)
{
    for (size_t k = 0; k < sizeof rules / sizeof rules[0]; k++)
        if (!strcmp(op, rules[k].op))
            return &rules[k];
    return NULL;
}

int fold_supported(const char *op) { return rule_of(op) != NULL; }

fn_status fold_node(const ox_node *n, ox_const *const *in, ox_const **out)
{
    *out = NULL;
    const ox_const *a = n->n_in > 0 ? in[0] : NULL;
    const struct fold_rule *rule = rule_of(n->op);
    if (!a || !rule)
        return unsupported(n);
    ox_const *r = NULL;
    FN_TRY(rule->fn(n, in, a, &r));
    if (!r)
        return fn_fail(FN_ERR_SHAPE, "node '%s' (%s) makes a constant of a negative or too large shape",
                       n->name, n->op);
    *out = r;
    return FN_OK;
}
