/* onnx_graph.h: an ONNX model as a small, validated graph, independent of protobuf.
 *
 * onnx_reader.c fills it from a .onnx file (protobuf-c, generated at build time):
 * every value has exactly one producer (a node, an initializer or the image
 * input), nodes are in topological order, constants (initializers and Constant
 * nodes) hold their data as float32 or int64. onnx_net.c turns it into a net. */
#ifndef FN_ONNX_GRAPH_H
#define FN_ONNX_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "featurenorm.h"

#define OX_MAX_DIMS 8
#define OX_DIM_UNKNOWN (-1)  /* a symbolic or missing dimension */

typedef struct ox_const {
    int ndim;
    int64_t dims[OX_MAX_DIMS];
    size_t count;
    int is_int;      /* data in i (int64, also int32 and bool) or f (float32, also f16/f64) */
    float *f;
    int64_t *i;
} ox_const;

typedef struct ox_value {
    char *name;
    int producer;    /* node index; -1: an initializer/Constant, or the image input */
    int consumers;   /* how many node inputs read it (graph outputs count too) */
    ox_const *data;  /* constants only */
} ox_value;

typedef enum ox_attr_type { OX_ATTR_INT, OX_ATTR_FLOAT, OX_ATTR_INTS, OX_ATTR_FLOATS,
                            OX_ATTR_STRING, OX_ATTR_TENSOR, OX_ATTR_OTHER } ox_attr_type;

typedef struct ox_attr {
    char *name;
    ox_attr_type type;
    int64_t i;
    float f;
    int64_t *ints;
    float *floats;
    size_t n;        /* elements of ints/floats */
    char *s;
    ox_const *t;
} ox_attr;

typedef struct ox_node {
    char *name, *op;
    int *in, *out;   /* value ids; -1 for an omitted optional input ("") */
    int n_in, n_out;
    ox_attr *attrs;
    int n_attrs;
} ox_node;

typedef struct ox_graph {
    char *path;      /* for messages */
    int64_t opset;   /* of the default (ai.onnx) domain */
    ox_value *values;
    int n_values;
    ox_node *nodes;  /* topological order */
    int n_nodes;
    int input;       /* the image input's value id */
    int64_t input_dims[4]; /* N x C x H x W as declared; OX_DIM_UNKNOWN where symbolic */
    int output;      /* the (single) graph output's value id */
} ox_graph;

/* Reads and validates path. FN_ERR_UNAVAILABLE when built without ONNX support. */
fn_status onnx_read(const char *path, ox_graph **out);
/* The same from bytes in memory; external data is looked up beside `path`. */
fn_status onnx_parse(const uint8_t *bytes, size_t size, const char *path, ox_graph **out);
void onnx_graph_free(ox_graph *g);

const ox_attr *ox_find_attr(const ox_node *n, const char *name);
int64_t ox_attr_int(const ox_node *n, const char *name, int64_t fallback);
float ox_attr_float(const ox_node *n, const char *name, float fallback);
void ox_const_free(ox_const *c);
void ox_node_free(ox_node *n);

#endif
