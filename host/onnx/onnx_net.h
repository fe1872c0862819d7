/* onnx_net.h: an ONNX model file -> the same net the named architectures build. */
#ifndef FN_ONNX_NET_H
#define FN_ONNX_NET_H

#include "net.h"
#include "onnx_graph.h"

/* blocks: NULL or "auto" (residual units, else stage ends), "all" (every
 * feature map the net keeps), or comma-separated tensor or node names.
 * input_size 0: the graph's fixed H, else 224. */
fn_status onnx_build_net(const char *path, const char *blocks, int input_size, int verbose, net *out);

/* The same from a graph already read (the graph is changed: constants are folded into it). */
fn_status onnx_graph_to_net(ox_graph *g, const char *blocks, int input_size, int verbose, net *out);

/* The operators onnx_build_net accepts, for messages and documentation. */
const char *onnx_supported_ops(void);

#endif
