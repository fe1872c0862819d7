/* onnx_fold.h: evaluating nodes whose inputs are all constants (shape arithmetic). */
#ifndef FN_ONNX_FOLD_H
#define FN_ONNX_FOLD_H

#include "onnx_graph.h"

/* The batch dimension in shapes computed from activations (Shape nodes). */
#define OX_BATCH (-(INT64_C(1) << 40))

/* Whether fold_node evaluates op. */
int fold_supported(const char *op);
/* Evaluates n from its inputs in[] (NULL where omitted) into a new constant. */
fn_status fold_node(const ox_node *n, ox_const *const *in, ox_const **out);

#endif
