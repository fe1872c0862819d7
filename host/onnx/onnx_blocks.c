/* onnx_blocks.c: which feature maps of an ONNX graph are blocks (auto or
 * named), and tapping them once the net is built. */
#include <stdlib.h>

#include "error.h"
#include "onnx_convert.h"

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

static int is_activation(const converter *c, const ox_node *n) { return cv_activation_of(c, n) >= 0; }

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
void cv_choose_auto_blocks(converter *c)
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
fn_status cv_mark_named_blocks(converter *c, const char *list)
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
/* Taps every kept value (auto or named) that the net computes, in forward order;
 * with `all`, every feature map the net keeps. */
fn_status cv_tap_blocks(converter *c, int all)
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
