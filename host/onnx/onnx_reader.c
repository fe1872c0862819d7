/* onnx_reader.c: a .onnx file -> ox_graph, validated.
 *
 * The protobuf is decoded by the reader protoc-c generates from Debian's
 * onnx.proto at build time. Everything a later stage relies on is checked here:
 * tensor sizes against their shapes (inline raw_data/float_data and external
 * data files alike), every node input defined, one producer per value, no
 * cycles (nodes are re-sorted topologically), one float image input. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "float16.h"
#include "onnx.pb-c.h"
#include "onnx_graph.h"
#include "whole_file.h"

#define MAX_ELEMS ((size_t)1 << 31) /* a tensor larger than this is refused (8 GiB of float) */

typedef struct reader {
    const char *path;
    ox_graph *g;
    fn_status status;
} reader;

static fn_status bad(reader *r, fn_status s, const char *fmt, ...) FN_PRINTF(3, 4);

static fn_status bad(reader *r, fn_status s, const char *fmt, ...)
{
    if (r->status != FN_OK)
        return r->status;
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return r->status = fn_fail(s, "%s: %s", r->path, msg);
}

/* ---- tensors ---------------------------------------------------------------- */

/* Element size in bytes of the data types we read, 0 for the others. */
static size_t elem_size(int type)
{
    switch (type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return 1;
    default: return 0;
    }
}

static int is_int_type(int type)
{
    return type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 || type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
           type == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL || type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 ||
           type == ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
}

/* Little-endian bytes of `type` -> c's float or int64 array. */
static void convert_bytes(ox_const *c, int type, const uint8_t *p)
{
    for (size_t k = 0; k < c->count; k++) {
        switch (type) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: memcpy(&c->f[k], p + 4 * k, 4); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: { double d; memcpy(&d, p + 8 * k, 8); c->f[k] = (float)d; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: { uint16_t h; memcpy(&h, p + 2 * k, 2); c->f[k] = half_to_float(h); break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: { uint16_t h; memcpy(&h, p + 2 * k, 2); c->f[k] = bf16_to_float(h); break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: memcpy(&c->i[k], p + 8 * k, 8); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: { int32_t v; memcpy(&v, p + 4 * k, 4); c->i[k] = v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: c->i[k] = (int8_t)p[k]; break;
        default: c->i[k] = p[k]; break; /* BOOL, UINT8 */
        }
    }
}

/* Reads [offset, offset + bytes) of the external file `location` beside the model. */
static uint8_t *read_external(reader *r, const char *tname, const char *location, long long offset,
                              long long length, size_t bytes)
{
    if (!location || !*location || location[0] == '/' || strstr(location, ".."))
        return bad(r, FN_ERR_FORMAT, "tensor '%s': external data location '%s' must be a relative path "
                   "inside the model's folder", tname, location ? location : ""), NULL;
    if (length >= 0 && (size_t)length != bytes)
        return bad(r, FN_ERR_FORMAT, "tensor '%s': external data length %lld, but its shape needs %zu bytes",
                   tname, length, bytes), NULL;
    char file[4096];
    const char *slash = strrchr(r->path, '/');
    int dir = slash ? (int)(slash - r->path) + 1 : 0;
    snprintf(file, sizeof file, "%.*s%s", dir, r->path, location);
    FILE *f = fopen(file, "rb");
    if (!f)
        return bad(r, FN_ERR_IO, "tensor '%s': cannot open external data %s: %s", tname, file,
                   strerror(errno)), NULL;
    struct stat st;
    uint8_t *p = NULL;
    if (fstat(fileno(f), &st) != 0 || offset < 0 || (unsigned long long)offset > (unsigned long long)st.st_size ||
        bytes > (unsigned long long)st.st_size - (unsigned long long)offset)
        bad(r, FN_ERR_FORMAT, "tensor '%s': external data %s holds %lld bytes, too few for %zu bytes at offset %lld",
            tname, file, (long long)st.st_size, bytes, offset);
    else if (!(p = fn_malloc(bytes)))
        r->status = FN_ERR_NO_MEMORY;
    else if (fseeko(f, (off_t)offset, SEEK_SET) != 0 || fread(p, 1, bytes, f) != bytes) {
        bad(r, FN_ERR_IO, "tensor '%s': cannot read external data %s", tname, file);
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

static int alloc_data(reader *r, ox_const *c)
{
    if (c->is_int ? !(c->i = fn_malloc(sizeof(int64_t) * c->count)) : !(c->f = fn_malloc(sizeof(float) * c->count))) {
        r->status = FN_ERR_NO_MEMORY;
        return 0;
    }
    return 1;
}

/* A TensorProto -> a new ox_const (NULL after recording an error). */
static ox_const *read_tensor(reader *r, const Onnx__TensorProto *t, const char *what)
{
    const char *tname = t->name && *t->name ? t->name : what;
    int type = t->has_data_type ? t->data_type : 0;
    size_t esize = elem_size(type);
    if (!esize)
        return bad(r, FN_ERR_FORMAT, "tensor '%s' has data type %d; only float (32, 16, 64 bit, bfloat16) "
                   "and integer tensors are read", tname, type), NULL;
    if (t->n_dims > OX_MAX_DIMS)
        return bad(r, FN_ERR_FORMAT, "tensor '%s' has %zu dimensions", tname, t->n_dims), NULL;
    ox_const *c = fn_calloc(1, sizeof *c);
    if (!c)
        return r->status = FN_ERR_NO_MEMORY, NULL;
    c->ndim = (int)t->n_dims;
    c->count = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || (t->dims[d] > 0 && c->count > MAX_ELEMS / (size_t)t->dims[d])) {
            bad(r, FN_ERR_FORMAT, "tensor '%s' has an invalid shape (dimension %zu is %lld)", tname, d,
                (long long)t->dims[d]);
            return free(c), NULL;
        }
        c->dims[d] = t->dims[d];
        c->count *= (size_t)t->dims[d];
    }
    c->is_int = is_int_type(type);
    size_t bytes = c->count * esize;
    /* sizes are checked before anything is allocated: a corrupt shape must not cost memory */
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        const char *location = NULL;
        long long offset = 0, length = -1;
        for (size_t k = 0; k < t->n_external_data; k++) {
            const char *key = t->external_data[k]->key, *v = t->external_data[k]->value;
            if (!key || !v)
                continue;
            if (strcmp(key, "location") == 0)
                location = v;
            else if (strcmp(key, "offset") == 0)
                offset = strtoll(v, NULL, 10);
            else if (strcmp(key, "length") == 0)
                length = strtoll(v, NULL, 10);
        }
        uint8_t *p = read_external(r, tname, location, offset, length, bytes);
        if (!p || !alloc_data(r, c)) {
            free(p);
            return ox_const_free(c), NULL;
        }
        convert_bytes(c, type, p);
        free(p);
        return c;
    }
    size_t given = t->has_raw_data ? t->raw_data.len / esize
                   : type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? t->n_float_data
                   : type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? t->n_double_data
                   : type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? t->n_int64_data : t->n_int32_data;
    if (given != c->count || (t->has_raw_data && t->raw_data.len % esize)) {
        bad(r, FN_ERR_FORMAT, "tensor '%s' has %zu values, its shape needs %zu", tname,
            t->has_raw_data ? t->raw_data.len / esize : given, c->count);
        return ox_const_free(c), NULL;
    }
    if (!alloc_data(r, c))
        return ox_const_free(c), NULL;
    if (t->has_raw_data)
        convert_bytes(c, type, t->raw_data.data);
    else
        for (size_t k = 0; k < c->count; k++) {
            switch (type) {
            case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: c->f[k] = t->float_data[k]; break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: c->f[k] = (float)t->double_data[k]; break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: c->i[k] = t->int64_data[k]; break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: c->f[k] = half_to_float((uint16_t)t->int32_data[k]); break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: c->f[k] = bf16_to_float((uint16_t)t->int32_data[k]); break;
            default: c->i[k] = t->int32_data[k]; break;
            }
        }
    return c;
}

/* ---- values and nodes ---------------------------------------------------- */

static int find_value(const ox_graph *g, const char *name)
{
    for (int v = 0; v < g->n_values; v++)
        if (strcmp(g->values[v].name, name) == 0)
            return v;
    return -1;
}

static int add_value(reader *r, const char *name, int producer)
{
    ox_graph *g = r->g;
    if (!name || !*name)
        return bad(r, FN_ERR_FORMAT, "a node output or initializer has no name"), -1;
    if (find_value(g, name) >= 0)
        return bad(r, FN_ERR_FORMAT, "value '%s' is defined twice", name), -1;
    ox_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    if (!(v->name = fn_strdup(name)))
        return r->status = FN_ERR_NO_MEMORY, -1;
    v->producer = producer;
    return g->n_values++;
}

static int copy_attr(reader *r, ox_attr *a, const Onnx__AttributeProto *p)
{
    a->name = fn_strdup(p->name ? p->name : "");
    if (!a->name)
        return r->status = FN_ERR_NO_MEMORY, 0;
    switch (p->has_type ? p->type : 0) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: a->type = OX_ATTR_INT, a->i = p->i; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: a->type = OX_ATTR_FLOAT, a->f = p->f; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->type = OX_ATTR_INTS, a->n = p->n_ints;
        if (!(a->ints = fn_malloc(sizeof(int64_t) * (p->n_ints + 1))))
            return r->status = FN_ERR_NO_MEMORY, 0;
        if (p->n_ints)
            memcpy(a->ints, p->ints, sizeof(int64_t) * p->n_ints);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->type = OX_ATTR_FLOATS, a->n = p->n_floats;
        if (!(a->floats = fn_malloc(sizeof(float) * (p->n_floats + 1))))
            return r->status = FN_ERR_NO_MEMORY, 0;
        if (p->n_floats)
            memcpy(a->floats, p->floats, sizeof(float) * p->n_floats);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->type = OX_ATTR_STRING;
        if (!(a->s = fn_calloc(1, p->s.len + 1)))
            return r->status = FN_ERR_NO_MEMORY, 0;
        if (p->s.len)
            memcpy(a->s, p->s.data, p->s.len);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
        a->type = OX_ATTR_TENSOR;
        if (!p->t)
            return bad(r, FN_ERR_FORMAT, "attribute '%s' has no tensor", a->name), 0;
        if (!(a->t = read_tensor(r, p->t, a->name)))
            return 0;
        break;
    default: a->type = OX_ATTR_OTHER; break;
    }
    return 1;
}

/* A Constant node's value, as the constant data of its output. */
static ox_const *constant_value(reader *r, const ox_node *n)
{
    for (int k = 0; k < n->n_attrs; k++) {
        ox_attr *a = &n->attrs[k];
        ox_const *c = NULL;
        if (a->type == OX_ATTR_TENSOR) {
            c = a->t;
            a->t = NULL;
            return c;
        }
        if (strncmp(a->name, "value_", 6) != 0 || !(c = fn_calloc(1, sizeof *c)))
            continue;
        int scalar = a->type == OX_ATTR_INT || a->type == OX_ATTR_FLOAT;
        c->ndim = scalar ? 0 : 1;
        c->count = scalar ? 1 : a->n;
        c->dims[0] = (int64_t)c->count;
        c->is_int = a->type == OX_ATTR_INT || a->type == OX_ATTR_INTS;
        if (c->is_int ? !(c->i = fn_malloc(sizeof(int64_t) * (c->count + 1))) : !(c->f = fn_malloc(sizeof(float) * (c->count + 1)))) {
            ox_const_free(c);
            return r->status = FN_ERR_NO_MEMORY, NULL;
        }
        for (size_t i = 0; i < c->count; i++) {
            if (c->is_int)
                c->i[i] = scalar ? a->i : a->ints[i];
            else
                c->f[i] = scalar ? a->f : a->floats[i];
        }
        return c;
    }
    return bad(r, FN_ERR_FORMAT, "Constant node '%s' has no value this reader understands", n->name), NULL;
}

/* ---- the graph ------------------------------------------------------------- */

/* Kahn's algorithm, keeping the file's order among ready nodes. */
static void sort_nodes(reader *r)
{
    ox_graph *g = r->g;
    int N = g->n_nodes;
    int *missing = fn_calloc((size_t)N + 1, sizeof(int)), *order = fn_calloc((size_t)N + 1, sizeof(int));
    char *done = fn_calloc((size_t)N + 1, 1);
    ox_node *sorted = fn_calloc((size_t)N + 1, sizeof(ox_node));
    if (!missing || !order || !done || !sorted) {
        r->status = FN_ERR_NO_MEMORY;
        goto out;
    }
    for (int n = 0; n < N; n++)
        for (int k = 0; k < g->nodes[n].n_in; k++) {
            int v = g->nodes[n].in[k];
            missing[n] += v >= 0 && g->values[v].producer >= 0;
        }
    int count = 0;
    for (int progress = 1; progress && count < N;) {
        progress = 0;
        for (int n = 0; n < N; n++) {
            if (done[n] || missing[n])
                continue;
            done[n] = 1, progress = 1;
            order[count++] = n;
            for (int o = 0; o < g->nodes[n].n_out; o++) /* outputs become available */
                for (int m = 0; m < N; m++)
                    for (int k = 0; k < g->nodes[m].n_in; k++)
                        missing[m] -= g->nodes[m].in[k] == g->nodes[n].out[o];
        }
    }
    if (count < N) {
        int n = 0;
        while (done[n])
            n++;
        bad(r, FN_ERR_FORMAT, "the graph has a cycle through node '%s' (%s)", g->nodes[n].name, g->nodes[n].op);
        goto out;
    }
    int *new_index = missing; /* reused: old index -> new */
    for (int i = 0; i < N; i++)
        sorted[i] = g->nodes[order[i]], new_index[order[i]] = i;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].producer >= 0)
            g->values[v].producer = new_index[g->values[v].producer];
    free(g->nodes);
    g->nodes = sorted;
    sorted = NULL;
out:
    free(missing), free(order), free(done), free(sorted);
}

static void read_input(reader *r, const Onnx__GraphProto *gp)
{
    ox_graph *g = r->g;
    g->input = -1;
    for (size_t k = 0; k < gp->n_input; k++) {
        const Onnx__ValueInfoProto *in = gp->input[k];
        if (!in->name || find_value(g, in->name) >= 0)
            continue; /* old exporters list initializers as inputs too */
        if (g->input >= 0) {
            bad(r, FN_ERR_FORMAT, "the graph has two inputs ('%s', '%s'); an image classifier has one",
                g->values[g->input].name, in->name);
            return;
        }
        const Onnx__TypeProto *t = in->type;
        const Onnx__TensorShapeProto *shape =
            t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type ? t->tensor_type->shape : NULL;
        if (!shape || shape->n_dim != 4 ||
            (t->tensor_type->has_elem_type && t->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)) {
            bad(r, FN_ERR_FORMAT, "input '%s' is not a float tensor N x 3 x H x W", in->name);
            return;
        }
        for (int d = 0; d < 4; d++) {
            const Onnx__TensorShapeProto__Dimension *dim = shape->dim[d];
            g->input_dims[d] = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                                       dim->dim_value > 0 ? dim->dim_value : OX_DIM_UNKNOWN;
        }
        if (g->input_dims[1] != 3) {
            bad(r, FN_ERR_SHAPE, "input '%s' has %lld channels; featurenorm feeds RGB images (3)",
                in->name, (long long)g->input_dims[1]);
            return;
        }
        g->input = add_value(r, in->name, -1);
    }
    if (g->input < 0 && r->status == FN_OK)
        bad(r, FN_ERR_FORMAT, "the graph has no image input");
}

static void read_graph(reader *r, const Onnx__GraphProto *gp)
{
    ox_graph *g = r->g;
    size_t n_values = gp->n_initializer + gp->n_input + 1;
    for (size_t n = 0; n < gp->n_node; n++)
        n_values += gp->node[n]->n_output;
    if (!(g->values = fn_calloc(n_values, sizeof(ox_value))) ||
        !(g->nodes = fn_calloc(gp->n_node + 1, sizeof(ox_node)))) {
        r->status = FN_ERR_NO_MEMORY;
        return;
    }
    for (size_t k = 0; k < gp->n_initializer && r->status == FN_OK; k++) {
        int v = add_value(r, gp->initializer[k]->name, -1);
        if (v >= 0)
            g->values[v].data = read_tensor(r, gp->initializer[k], "initializer");
    }
    if (r->status == FN_OK)
        read_input(r, gp);
    /* Nodes: outputs first, so that inputs can refer to any node. */
    for (size_t k = 0; k < gp->n_node && r->status == FN_OK; k++) {
        const Onnx__NodeProto *p = gp->node[k];
        ox_node *n = &g->nodes[g->n_nodes++];
        char fallback[64];
        snprintf(fallback, sizeof fallback, "%s_%zu", p->op_type ? p->op_type : "node", k);
        n->name = fn_strdup(p->name && *p->name ? p->name : fallback);
        n->op = fn_strdup(p->op_type ? p->op_type : "");
        n->in = fn_calloc(p->n_input + 1, sizeof(int));
        n->out = fn_calloc(p->n_output + 1, sizeof(int));
        n->attrs = fn_calloc(p->n_attribute + 1, sizeof(ox_attr));
        if (!n->name || !n->op || !n->in || !n->out || !n->attrs) {
            r->status = FN_ERR_NO_MEMORY;
            return;
        }
        if (p->domain && *p->domain && strcmp(p->domain, "ai.onnx") != 0) {
            bad(r, FN_ERR_FORMAT, "node '%s' is op %s of domain '%s'; only standard ONNX operators "
                "(domain ai.onnx) are supported", n->name, n->op, p->domain);
            return;
        }
        for (size_t a = 0; a < p->n_attribute && r->status == FN_OK; a++)
            copy_attr(r, &n->attrs[n->n_attrs++], p->attribute[a]); /* counted even half-copied: freed whole */
        n->n_out = (int)p->n_output;
        for (int o = 0; o < n->n_out && r->status == FN_OK; o++)
            n->out[o] = p->output[o] && *p->output[o] ? add_value(r, p->output[o], g->n_nodes - 1) : -1;
        if (r->status == FN_OK && strcmp(n->op, "Constant") == 0) {
            /* constants are values, not nodes: later stages never see them */
            if (n->n_out != 1 || n->out[0] < 0) {
                bad(r, FN_ERR_FORMAT, "Constant node '%s' needs one output", n->name);
                return;
            }
            ox_value *v = &g->values[n->out[0]];
            v->producer = -1;
            v->data = constant_value(r, n);
            ox_node_free(n);
            memset(n, 0, sizeof *n);
            g->n_nodes--;
        }
    }
    for (int n = 0, k = 0; r->status == FN_OK && n < g->n_nodes; n++, k++) {
        while (strcmp(gp->node[k]->op_type ? gp->node[k]->op_type : "", "Constant") == 0)
            k++; /* the file's node k is our node n */
        const Onnx__NodeProto *p = gp->node[k];
        ox_node *node = &g->nodes[n];
        node->n_in = (int)p->n_input;
        for (int i = 0; i < node->n_in; i++) {
            if (!p->input[i] || !*p->input[i]) {
                node->in[i] = -1;
                continue;
            }
            if ((node->in[i] = find_value(g, p->input[i])) < 0) {
                bad(r, FN_ERR_FORMAT, "input '%s' of node '%s' (%s) is defined nowhere in the graph "
                    "(a dangling input)", p->input[i], node->name, node->op);
                return;
            }
            g->values[node->in[i]].consumers++;
        }
    }
    if (r->status != FN_OK)
        return;
    if (gp->n_output != 1 || !gp->output[0]->name || (g->output = find_value(g, gp->output[0]->name)) < 0) {
        bad(r, FN_ERR_FORMAT, gp->n_output != 1 ? "the graph has %zu outputs; a classifier has one (the logits)"
                                                : "the graph's output is defined nowhere (%zu)", gp->n_output);
        return;
    }
    g->values[g->output].consumers++;
    sort_nodes(r);
}

fn_status onnx_parse(const uint8_t *bytes, size_t size, const char *path, ox_graph **out)
{
    *out = NULL;
    reader r = {path ? path : "(memory)", NULL, FN_OK};
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, bytes);
    if (!m)
        return bad(&r, FN_ERR_FORMAT, "not a valid ONNX model (the protobuf does not decode: a truncated "
                   "or corrupt file?)");
    if (!m->graph || m->graph->n_node == 0) {
        onnx__model_proto__free_unpacked(m, NULL);
        return bad(&r, FN_ERR_FORMAT, "not an ONNX model (no graph, or a graph without nodes; a truncated file?)");
    }
    ox_graph *g = r.g = fn_calloc(1, sizeof *g);
    if (!g || !(g->path = fn_strdup(r.path))) {
        free(g);
        onnx__model_proto__free_unpacked(m, NULL);
        return FN_ERR_NO_MEMORY;
    }
    g->opset = -1;
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const char *d = m->opset_import[k]->domain;
        if (!d || !*d || strcmp(d, "ai.onnx") == 0)
            g->opset = m->opset_import[k]->has_version ? m->opset_import[k]->version : -1;
    }
    if (g->opset < 11 || g->opset > 17)
        bad(&r, FN_ERR_FORMAT, "opset %lld is not supported; export with opset_version 11 to 17",
            (long long)g->opset);
    else
        read_graph(&r, m->graph);
    onnx__model_proto__free_unpacked(m, NULL);
    if (r.status != FN_OK) {
        onnx_graph_free(g);
        return r.status;
    }
    *out = g;
    return FN_OK;
}

fn_status onnx_read(const char *path, ox_graph **out)
{
    *out = NULL;
    uint8_t *bytes;
    size_t size;
    FN_TRY(whole_file_read(path, LLONG_MAX, "ONNX files", &bytes, &size));
    fn_status s = onnx_parse(bytes, size, path, out);
    free(bytes);
    return s;
}
