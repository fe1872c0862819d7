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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "onnx_convert.h"
#include "onnx_fold.h"

#define DEFAULT_INPUT 224

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
                    return cv_unsupported(c, node);
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
                FN_TRY(cv_build_unit(c, u));
                if (!nb_ok(&c->nb))
                    return c->nb.status;
                if (u->out >= 0 && c->tid[u->out] < 0 && !cst(c, u->out) && c->subsample[u->out] < 0)
                    return cv_refuse(c, node, "produced nothing the network can use");
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

static fn_status convert(converter *c, const char *blocks, int input_size, int verbose)
{
    ox_graph *g = c->g;
    int all = blocks && !strcmp(blocks, "all");
    for (int n = 0; n < g->n_nodes; n++) /* every operator read here has both */
        if (g->nodes[n].n_in < 1 || g->nodes[n].in[0] < 0 || g->nodes[n].n_out < 1 || g->nodes[n].out[0] < 0)
            return cv_refuse(c, &g->nodes[n], "the node has no first input or no first output");
    if (blocks && *blocks && strcmp(blocks, "auto") && !all)
        FN_TRY(cv_mark_named_blocks(c, blocks));
    else
        cv_choose_auto_blocks(c);
    for (int n = 0; n < g->n_nodes; n++)
        if (!c->units[n].absorbed)
            cv_plan_unit(c, n);
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
    FN_TRY(cv_tap_blocks(c, all));
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

