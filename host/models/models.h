/* models.h: architectures by name. Each builder lists its layers through the
 * net_builder calls of net.h, with tensor names as in the PyTorch state_dict. */
#ifndef FN_MODELS_H
#define FN_MODELS_H

#include "net.h"

typedef struct arch_options {
    int stem_padding; /* resnet18_cifar: 1 (default) or 2 (the paper authors') */
} arch_options;

/* Adds the layers after nb_input(); returns the logits tensor (or -1). */
typedef int (*arch_build_fn)(net_builder *nb, int input, const arch_options *o);

typedef struct arch {
    const char *name;
    const char *description;
    arch_build_fn build;
    int input_size;      /* default square input side */
    fn_preset preset;    /* default preprocessing */
    float mean[3], std[3];
    float bn_eps;
} arch;

int arch_count(void);
const arch *arch_at(int i);
const arch *arch_find(const char *name);

/* Builds `a` at input_size (0: the default) from weights (NULL: shapes only). */
fn_status arch_build(const arch *a, const st_file *weights, int input_size,
                     const arch_options *o, net *out);

/* builders, one file per family */
int build_resnet20_cifar(net_builder *nb, int input, const arch_options *o);
int build_resnet32_cifar(net_builder *nb, int input, const arch_options *o);
int build_resnet44_cifar(net_builder *nb, int input, const arch_options *o);
int build_resnet56_cifar(net_builder *nb, int input, const arch_options *o);
int build_resnet18_cifar(net_builder *nb, int input, const arch_options *o);
int build_resnet18(net_builder *nb, int input, const arch_options *o);
int build_resnet34(net_builder *nb, int input, const arch_options *o);
int build_resnet50(net_builder *nb, int input, const arch_options *o);
int build_wrn28_10(net_builder *nb, int input, const arch_options *o);
int build_vgg11_cifar(net_builder *nb, int input, const arch_options *o);
int build_vgg16(net_builder *nb, int input, const arch_options *o);
int build_vgg16_bn(net_builder *nb, int input, const arch_options *o);
int build_mobilenet_v2(net_builder *nb, int input, const arch_options *o);
int build_mobilenet_v3_large(net_builder *nb, int input, const arch_options *o);

#endif
