/* onnx_graph.c: freeing an ox_graph and reading node attributes (what both the
 * reader and the converter need, built with or without protobuf-c). */
#include <stdlib.h>
#include <string.h>

#include "onnx_graph.h"

void ox_const_free(ox_const *c)
{
    if (c) {
        free(c->f), free(c->i);
        free(c);
    }
}

void ox_node_free(ox_node *n)
{
    free(n->name), free(n->op), free(n->in), free(n->out);
    for (int k = 0; k < n->n_attrs; k++) {
        free(n->attrs[k].name), free(n->attrs[k].ints), free(n->attrs[k].floats), free(n->attrs[k].s);
        ox_const_free(n->attrs[k].t);
    }
    free(n->attrs);
}

void onnx_graph_free(ox_graph *g)
{
    if (!g)
        return;
    for (int v = 0; v < g->n_values; v++) {
        free(g->values[v].name);
        ox_const_free(g->values[v].data);
    }
    for (int n = 0; n < g->n_nodes; n++)
        ox_node_free(&g->nodes[n]);
    free(g->values), free(g->nodes), free(g->path);
    free(g);
}

const ox_attr *ox_find_attr(const ox_node *n, const char *name)
{
    for (int k = 0; k < n->n_attrs; k++)
        if (strcmp(n->attrs[k].name, name) == 0)
            return &n->attrs[k];
    return NULL;
}

int64_t ox_attr_int(const ox_node *n, const char *name, int64_t fallback)
{
    const ox_attr *a = ox_find_attr(n, name);
    return a && a->type == OX_ATTR_INT ? a->i : fallback;
}

float ox_attr_float(const ox_node *n, const char *name, float fallback)
{
    const ox_attr *a = ox_find_attr(n, name);
    return a && a->type == OX_ATTR_FLOAT ? a->f : fallback;
}
