/* net.h: a network as a flat list of ops over per-image tensors, with block taps.
 *
 * Model builders (host/models/) turn an architecture name plus safetensors
 * weights into this description; both backends execute the same list. BatchNorm
 * is folded into the convolutions at build time, so no backend ever sees it.
 * A block tap marks an op whose output's FeatureNorm is a column of the N x B
 * norm matrix: taps belong to the network, not to a backend.
 */
#ifndef FN_NET_H
#define FN_NET_H

#include <math.h>
#include <stddef.h>

#include "featurenorm.h"
#include "safetensors.h"

/* Activations, applied after bias (and residual). ACT_LEAKY's slope is op->alpha. */
typedef enum net_act {
    ACT_NONE, ACT_RELU, ACT_RELU6, ACT_HARDSWISH, ACT_HARDSIGMOID, ACT_SIGMOID, ACT_SILU, ACT_LEAKY
} net_act;
/* One past the last (a macro, so that switches need no case for it): an
 * activation added last moves it; net.c's name table asserts the count. */
#define ACT_COUNT (ACT_LEAKY + 1)

typedef enum net_op_kind {
    OP_CONV,       /* out = act(conv(in, w) + b [+ res]), grouped when groups > 1 */
    OP_AFFINE,     /* out = act(in * w[c] + b[c]): a BatchNorm that no conv absorbs */
    OP_MAXPOOL,    /* k x k window, stride, pad (padding never wins the max) */
    OP_AVGPOOL,    /* adaptive average pool to out's h x w (global when 1 x 1) */
    OP_AVGPOOL_K,  /* k x k window, stride, pad; count_include_pad as ONNX/PyTorch say */
    OP_SHORTCUT_A, /* out[c] = in[c - (out.c - in.c)/2, ::2, ::2], zero elsewhere */
    OP_SCALE,      /* out = in * res: res is c x 1 x 1 (squeeze-excitation) or in's shape */
    OP_ADD,        /* out = act(in + res), same shapes: an add no conv absorbs */
    OP_ACT,        /* out = act(in) */
    OP_CONCAT,     /* out = in, then cat[0..n_cat) along channels (same h x w) */
    OP_LINEAR      /* out = act(w * flatten(in) + b); out is K x 1 x 1 */
} net_op_kind;
#define OP_COUNT (OP_LINEAR + 1) /* as ACT_COUNT */

/* "conv", "relu", ... for messages and test filters; "?" out of range. */
const char *net_op_kind_name(net_op_kind k);
const char *net_act_name(net_act a);

#define NET_NAME 128 /* op and block names: ONNX tensor names can be long */

typedef struct net_tensor {
    int c, h, w;
    size_t offset;  /* in the activation arena, in elements per image (x batch n) */
} net_tensor;

typedef struct net_op {
    net_op_kind kind;
    int in, res, out;            /* tensor ids; res is -1 when unused */
    int k, stride, pad, groups;
    net_act act;
    float alpha;                 /* ACT_LEAKY's negative slope */
    int count_include_pad;       /* OP_AVGPOOL_K: padding counts in the divisor */
    int *cat, n_cat;             /* OP_CONCAT: the tensors after `in`, in order */
    float *w, *b;                /* CONV: cout x cin/groups x k x k; LINEAR: out x in */
    int tap;                     /* >= 0: out's FeatureNorm is this block's column */
    char name[NET_NAME];         /* the weights' prefix, for messages */
} net_op;

typedef struct net_block {
    char name[NET_NAME];         /* "layer3.0", or an ONNX tensor name */
    int op;                      /* the op whose output is tapped */
} net_block;

typedef struct net {
    char arch[32];
    int input_size;
    int input;                   /* tensor id of the normalised input, 3 x S x S */
    int logits;                  /* tensor id, K x 1 x 1 */
    int features;                /* tensor id of the last linear op's input */
    int last_linear;             /* op index of that last linear op */
    int num_classes, feature_dim;
    float mean[3], std[3];
    fn_preset preset;            /* the architecture's default preprocessing */
    int has_weights;

    net_tensor *tensors;
    int n_tensors, cap_tensors;
    net_op *ops;
    int n_ops, cap_ops;
    net_block *blocks;
    int n_blocks, cap_blocks;
    size_t arena_elems;          /* elements per image of the whole arena */
} net;

void net_free(net *n);
size_t net_tensor_elems(const net *n, int t);  /* c * h * w */
/* Give every tensor an arena offset; tensors whose lifetimes do not overlap
 * share memory. The input, features and logits live for the whole pass. */
fn_status net_plan_memory(net *n);
/* uint8 input normalised exactly as torchvision's ToTensor + Normalize do it
 * in float32, (v / 255 - mean) / std, tabulated per channel and value. */
void net_input_table(const net *n, float table[3][256]);
/* The activation, one definition for every CPU loop (cuda/common.cuh mirrors it). */
static inline float net_activate(float v, net_act act, float alpha)
{
    switch (act) {
    case ACT_NONE: return v;
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case ACT_HARDSWISH: return v <= -3 ? 0 : v >= 3 ? v : v * (v + 3) / 6;
    case ACT_HARDSIGMOID: return v <= -3 ? 0 : v >= 3 ? 1 : v / 6 + 0.5f;
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case ACT_SILU: return v / (1.0f + expf(-v));
    case ACT_LEAKY: return v >= 0 ? v : v * alpha;
    }
    return v;
}

/* ---- building a net from weights (used by host/models/) ---------------- */

typedef struct net_builder {
    net *net;
    const st_file *weights;  /* NULL: shapes only, with the default widths */
    float bn_eps;            /* BatchNorm epsilon of this architecture (1e-5) */
    fn_status status;        /* the first error; later calls then do nothing */
} net_builder;

#define NB_DEPTHWISE (-1) /* nb_conv_opts.groups: one group per input channel */

/* A Conv2d's arguments, as PyTorch names them; zero is the default of each. */
typedef struct nb_conv_opts {
    const char *conv;   /* weights "<conv>.weight", and "<conv>.bias" with bias */
    const char *bn;     /* BatchNorm "<bn>.*" folded in; NULL: none */
    int cout;           /* the default width; with weights it comes from the tensor's shape */
    int k, stride, pad; /* stride 0 is 1 */
    int groups;         /* 0 is 1; NB_DEPTHWISE */
    int bias;
    net_act act;
} nb_conv_opts;

int nb_input(net_builder *nb, int size);
/* A conv layer, written as a model file reads like its PyTorch layer list:
 *   x = nb_conv(nb, x, .conv = "conv1", .bn = "bn1", .cout = 16, .k = 3, .pad = 1, .act = ACT_RELU);
 * nb_conv_add adds tensor res (-1: none) before the activation: a residual.
 * The width comes from the weights when loaded, so reduced-width variants
 * load too. Returns the output tensor id, or -1 once an error has been recorded. */
int nb_conv_with(net_builder *nb, int in, int res, nb_conv_opts o);
#define nb_conv(nb, in, ...) nb_conv_with((nb), (in), -1, (nb_conv_opts){__VA_ARGS__})
#define nb_conv_add(nb, in, res, ...) nb_conv_with((nb), (in), (res), (nb_conv_opts){__VA_ARGS__})
int nb_affine_bn(net_builder *nb, int in, const char *bn, net_act act);
int nb_maxpool(net_builder *nb, int in, int k, int stride, int pad);
int nb_avgpool(net_builder *nb, int in, int out_h, int out_w);
int nb_shortcut_a(net_builder *nb, int in, int cout);
int nb_scale(net_builder *nb, int in, int scale);
int nb_avgpool_k(net_builder *nb, int in, int k, int stride, int pad, int count_include_pad);
int nb_add(net_builder *nb, int a, int b, net_act act);
int nb_act(net_builder *nb, int in, net_act act, float alpha);
int nb_concat(net_builder *nb, const int *ins, int n);
int nb_linear(net_builder *nb, int in, const char *name, int out, net_act act);
/* The same layers from float arrays (ONNX graphs), copied; BatchNorm already
 * folded in. w: cout x cin/groups x k x k (conv), out x fan_in (linear); b may
 * be NULL (zero). */
int nb_conv_from(net_builder *nb, int in, const char *name, const float *w, const float *b, int cout,
                 int k, int stride, int pad, int groups, net_act act, int res);
int nb_affine_from(net_builder *nb, int in, const char *name, const float *scale, const float *shift,
                   net_act act);
int nb_linear_from(net_builder *nb, int in, const char *name, const float *w, const float *b, int out,
                   net_act act);
/* Tap the op that produced tensor t as the next block, named name. */
void nb_tap(net_builder *nb, int t, const char *name);
/* The network ends here: `logits` is the last linear op's output. */
fn_status nb_finish(net_builder *nb, int logits);
int nb_channels(const net_builder *nb, int t);
/* Output width of the layer whose weight tensor is `tensor`: its first
 * dimension when weights are loaded, else `fallback`. */
int nb_width(const net_builder *nb, const char *tensor, int fallback);
int nb_ok(const net_builder *nb);

#endif
