/* onnx_convert.h: the state of one ONNX graph -> net conversion (onnx_net.h),
 * shared by the files of its four jobs:
 *
 *   onnx_units.c   grouping nodes into units: a conv with the BatchNormalization,
 *                  residual Add and activation it absorbs
 *   onnx_ops.c     building each unit's ops through the net builder
 *   onnx_blocks.c  choosing the blocks (auto or named) and tapping them
 *   onnx_net.c     driving: folding constants, building units in order, the checks */
#ifndef FN_ONNX_CONVERT_H
#define FN_ONNX_CONVERT_H

#include <string.h>

#include "net.h"
#include "onnx_graph.h"

#define MAX_MEMBERS 6

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

static inline const ox_value *val(const converter *c, int v) { return &c->g->values[v]; }
static inline const ox_const *cst(const converter *c, int v) { return v >= 0 ? c->g->values[v].data : NULL; }
static inline int is_op(const ox_node *n, const char *op) { return strcmp(n->op, op) == 0; }
static inline int tensor_of(const converter *c, int v) { return v >= 0 ? c->tid[v] : -1; }

/* onnx_units.c */
int cv_const_scalar(const converter *c, int v, double *out);
/* The net activation node n computes, or -1. */
int cv_activation_of(const converter *c, const ox_node *n);
/* Unit n: node n and the nodes it absorbs. */
void cv_plan_unit(converter *c, int n);

/* onnx_blocks.c */
/* Auto blocks: the output of every residual unit, else the maps entering each downsampling and the head. */
void cv_choose_auto_blocks(converter *c);
/* Named blocks: tensor names, or node names (their first output). */
fn_status cv_mark_named_blocks(converter *c, const char *list);
/* Taps every kept value the net computes, in forward order; with `all`, every feature map. */
fn_status cv_tap_blocks(converter *c, int all);

/* onnx_ops.c */
fn_status cv_refuse(const converter *c, const ox_node *n, const char *why);
/* Names the op and lists the supported ones. */
fn_status cv_unsupported(const converter *c, const ox_node *n);
/* The net ops of unit u (or the constant or alias it defines). */
fn_status cv_build_unit(converter *c, unit *u);

#endif
