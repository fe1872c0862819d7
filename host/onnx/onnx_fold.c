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

fn_status fold_node(const ox_node *n, ox_const *const *in, ox_const **out)
{
    *out = NULL;
    const ox_const *a = n->n_in > 0 ? in[0] : NULL;
    const char *op = n->op;
    if (!a)
        goto unsupported;
    int64_t dims[OX_MAX_DIMS];
    ox_const *r = NULL;
    if (!strcmp(op, "Identity") || !strcmp(op, "Cast")) {
        int to_int = a->is_int;
        if (!strcmp(op, "Cast")) {
            int64_t to = ox_attr_int(n, "to", 1);
            to_int = to == 6 || to == 7 || to == 9 || to == 2 || to == 3;
        }
        if ((r = new_const(to_int, a->ndim, a->dims)))
            for (size_t k = 0; k < a->count; k++)
                copy_elem(r, k, a, k);
    } else if (!strcmp(op, "Shape")) {
        int64_t rank = a->ndim;
        if ((r = new_const(1, 1, &rank)))
            for (int d = 0; d < a->ndim; d++)
                r->i[d] = a->dims[d];
    } else if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) {
        const ox_const *b = in[1];
        if (!b || (a->count != b->count && a->count != 1 && b->count != 1))
            goto unsupported;
        const ox_const *big = a->count >= b->count ? a : b;
        if ((r = new_const(a->is_int && b->is_int, big->ndim, big->dims)))
            for (size_t k = 0; k < r->count; k++) {
                size_t ka = a->count == 1 ? 0 : k, kb = b->count == 1 ? 0 : k;
                if (r->is_int) { /* exact in int64; Div truncates as ONNX does */
                    int64_t x = a->i[ka], y = b->i[kb];
                    if (op[0] == 'D' && y == 0)
                        goto unsupported_free;
                    r->i[k] = op[0] == 'A' ? x + y : op[0] == 'S' ? x - y : op[0] == 'M' ? x * y : x / y;
                } else {
                    double x = get(a, ka), y = get(b, kb);
                    put(r, k, op[0] == 'A' ? x + y : op[0] == 'S' ? x - y : op[0] == 'M' ? x * y : x / y);
                }
            }
    } else if (!strcmp(op, "ConstantOfShape")) {
        const ox_attr *v = ox_find_attr(n, "value");
        if (!a->is_int || a->count > OX_MAX_DIMS)
            goto unsupported;
        int is_int = v && v->t ? v->t->is_int : 0;
        if ((r = new_const(is_int, (int)a->count, a->i)))
            for (size_t k = 0; k < r->count; k++)
                put(r, k, v && v->t && v->t->count ? get(v->t, 0) : 0.0);
    } else if (!strcmp(op, "Concat")) {
        int64_t axis = ox_attr_int(n, "axis", 0);
        if (a->ndim != 1 || (axis != 0 && axis != -1))
            goto unsupported;
        int64_t total = 0;
        int is_int = 1;
        for (int k = 0; k < n->n_in; k++) {
            if (!in[k] || in[k]->ndim != 1)
                goto unsupported;
            total += in[k]->dims[0];
            is_int &= in[k]->is_int;
        }
        if ((r = new_const(is_int, 1, &total))) {
            size_t o = 0;
            for (int k = 0; k < n->n_in; k++)
                for (size_t e = 0; e < in[k]->count; e++)
                    copy_elem(r, o++, in[k], e);
        }
    } else if (!strcmp(op, "Reshape")) {
        const ox_const *s = in[1];
        if (!s || !s->is_int || s->count > OX_MAX_DIMS)
            goto unsupported;
        int64_t known = 1, infer = -1;
        for (size_t d = 0; d < s->count; d++) {
            dims[d] = s->i[d] == 0 ? (d < (size_t)a->ndim ? a->dims[d] : 0) : s->i[d];
            if (dims[d] == -1)
                infer = (int64_t)d;
            else if (dims[d] < 0)
                goto unsupported;
            else
                known *= dims[d];
        }
        if (infer >= 0)
            dims[infer] = known ? (int64_t)a->count / known : 0;
        if ((r = new_const(a->is_int, (int)s->count, dims)) && r->count != a->count) {
            size_t count = r->count; /* read before r is freed */
            ox_const_free(r);
            return fn_fail(FN_ERR_SHAPE, "Reshape node '%s' changes %zu elements into %zu", n->name, a->count,
                           count);
        }
        for (size_t k = 0; r && k < a->count; k++)
            copy_elem(r, k, a, k);
    } else if (!strcmp(op, "Transpose")) {
        int64_t perm[OX_MAX_DIMS];
        const ox_attr *p = ox_find_attr(n, "perm");
        for (int d = 0; d < a->ndim; d++)
            perm[d] = p && p->type == OX_ATTR_INTS && p->n == (size_t)a->ndim ? p->ints[d] : a->ndim - 1 - d;
        for (int d = 0; d < a->ndim; d++) {
            if (perm[d] < 0 || perm[d] >= a->ndim)
                goto unsupported;
            dims[d] = a->dims[perm[d]];
        }
        if ((r = new_const(a->is_int, a->ndim, dims)))
            for (size_t k = 0; k < r->count; k++) { /* k: index into r; find a's index */
                size_t rem = k, src = 0, stride[OX_MAX_DIMS];
                int64_t idx[OX_MAX_DIMS];
                for (int d = a->ndim - 1; d >= 0; d--)
                    idx[d] = (int64_t)(rem % (size_t)dims[d]), rem /= (size_t)dims[d];
                for (int d = a->ndim - 1, s = 1; d >= 0; d--)
                    stride[d] = (size_t)s, s *= (int)a->dims[d];
                for (int d = 0; d < a->ndim; d++)
                    src += (size_t)idx[d] * stride[perm[d]];
                copy_elem(r, k, a, src);
            }
    } else if (!strcmp(op, "Slice")) {
        int64_t start[OX_MAX_DIMS] = {0}, step[OX_MAX_DIMS];
        for (int d = 0; d < a->ndim; d++)
            step[d] = 1, dims[d] = a->dims[d];
        const ox_const *st = in[1], *en = n->n_in > 2 ? in[2] : NULL, *ax = n->n_in > 3 ? in[3] : NULL,
                       *sp = n->n_in > 4 ? in[4] : NULL;
        if (!st || !en || !st->is_int || !en->is_int || st->count != en->count)
            goto unsupported;
        for (size_t k = 0; k < st->count; k++) {
            int64_t d = ax ? ax->i[k] : (int64_t)k;
            d = d < 0 ? d + a->ndim : d;
            int64_t size = a->dims[d], s = sp ? sp->i[k] : 1, b = st->i[k], e = en->i[k];
            if (d < 0 || d >= a->ndim || s == 0)
                goto unsupported;
            b = b < 0 ? b + size : b, e = e < 0 ? e + size : e;
            b = s > 0 ? clamp64(b, 0, size) : clamp64(b, 0, size - 1);
            e = s > 0 ? clamp64(e, 0, size) : clamp64(e, -1, size - 1);
            start[d] = b, step[d] = s;
            dims[d] = s > 0 ? (e > b ? (e - b + s - 1) / s : 0) : (b > e ? (b - e - s - 1) / -s : 0);
        }
        if ((r = new_const(a->is_int, a->ndim, dims)))
            for (size_t k = 0; k < r->count; k++) {
                size_t rem = k, src = 0, s = 1;
                for (int d = a->ndim - 1; d >= 0; d--) {
                    int64_t i = (int64_t)(rem % (size_t)dims[d]);
                    rem /= (size_t)dims[d];
                    src += (size_t)(start[d] + i * step[d]) * s;
                    s *= (size_t)a->dims[d];
                }
                copy_elem(r, k, a, src);
            }
    } else if (!strcmp(op, "Gather")) {
        const ox_const *idx = in[1];
        int64_t axis = ox_attr_int(n, "axis", 0);
        if (a->ndim != 1 || axis != 0 || !idx || !idx->is_int || idx->ndim > 1)
            goto unsupported;
        if ((r = new_const(a->is_int, idx->ndim, idx->dims)))
            for (size_t k = 0; k < idx->count; k++) {
                int64_t i = idx->i[k] < 0 ? idx->i[k] + a->dims[0] : idx->i[k];
                if (i < 0 || i >= a->dims[0]) {
                    ox_const_free(r);
                    return fn_fail(FN_ERR_SHAPE, "Gather node '%s': index %lld out of range", n->name,
                                   (long long)idx->i[k]);
                }
                copy_elem(r, k, a, (size_t)i);
            }
    } else if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
        int64_t axes[OX_MAX_DIMS];
        int n_axes = axes_of(n, in, 1, axes, OX_MAX_DIMS), nd = 0;
        if (!strcmp(op, "Unsqueeze")) {
            int out_nd = a->ndim + n_axes, src = 0;
            if (out_nd > OX_MAX_DIMS)
                goto unsupported;
            for (int d = 0; d < out_nd; d++) {
                int is_new = 0;
                for (int k = 0; k < n_axes; k++)
                    is_new |= (axes[k] < 0 ? axes[k] + out_nd : axes[k]) == d;
                dims[nd++] = is_new ? 1 : a->dims[src++];
            }
        } else {
            for (int d = 0; d < a->ndim; d++) {
                int drop = n_axes == 0 && a->dims[d] == 1;
                for (int k = 0; k < n_axes; k++)
                    drop |= (axes[k] < 0 ? axes[k] + a->ndim : axes[k]) == d;
                if (!drop)
                    dims[nd++] = a->dims[d];
            }
        }
        if ((r = new_const(a->is_int, nd, dims)))
            for (size_t k = 0; k < a->count; k++)
                copy_elem(r, k, a, k);
    } else {
        goto unsupported;
    }
    if (!r)
        return fn_fail(FN_ERR_SHAPE, "node '%s' (%s) makes a constant of a negative or too large shape",
                       n->name, n->op);
    *out = r;
    return FN_OK;
unsupported_free:
    ox_const_free(r);
unsupported:
    return fn_fail(FN_ERR_FORMAT, "node '%s' (%s) computes on constants in a way featurenorm does not "
                   "evaluate", n->name, n->op);
}

int fold_supported(const char *op)
{
    static const char *const ops[] = {"Identity", "Cast", "ConstantOfShape", "Concat", "Reshape", "Transpose",
                                      "Slice", "Gather", "Unsqueeze", "Squeeze", "Shape", "Add", "Sub", "Mul", "Div"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(op, ops[k]))
            return 1;
    return 0;
}
