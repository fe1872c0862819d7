/* onnx_units.c: grouping an ONNX graph's nodes into units before anything is
 * built (the rules are in onnx_net.c's opening comment). */
#include <math.h>

#include "error.h"
#include "onnx_convert.h"

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

int cv_const_scalar(const converter *c, int v, double *out)
{
    const ox_const *k = cst(c, v);
    if (!k || k->count != 1)
        return 0;
    *out = k->is_int ? (double)k->i[0] : k->f[0];
    return 1;
}

/* The net activation node n computes, or -1. */
int cv_activation_of(const converter *c, const ox_node *n)
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
        if ((n->n_in > 1 && n->in[1] >= 0 && !cv_const_scalar(c, n->in[1], &lo)) ||
            (n->n_in > 2 && n->in[2] >= 0 && !cv_const_scalar(c, n->in[2], &hi)))
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
        int act = cv_activation_of(c, &c->g->nodes[r]);
        if (act >= 0) {
            u->act = (net_act)act;
            u->alpha = ox_attr_float(&c->g->nodes[r], "alpha", 0.01f);
            absorb(c, u, r);
            u->out = c->g->nodes[r].out[0];
            /* PyTorch writes ReLU6 as Relu then Clip(0, 6) */
            int r2 = u->act == ACT_RELU && u->n_members < MAX_MEMBERS ? only_reader(c, u->out) : -1;
            int act2 = r2 >= 0 ? cv_activation_of(c, &c->g->nodes[r2]) : -1;
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
                int a = cv_activation_of(c, x);
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

void cv_plan_unit(converter *c, int n)
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
