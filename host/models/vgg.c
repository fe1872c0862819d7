/* vgg.c: VGG networks.
 *
 *   vgg16, vgg16_bn  torchvision's layout: features.<i> (conv, [bn], relu, pools),
 *                    adaptive average pool to 7x7, classifier.0/3/6.
 *   vgg11_cifar      the paper's CIFAR VGG-11: configuration A without BN, no
 *                    average pool, classifier 512-512-512-10 (classifier.0/3/6).
 *
 * Blocks are every conv layer's ReLU output, named as in Caffe: conv<stage>_<i>. */
#include <stdio.h>

#include "models.h"

#define POOL 0

/* The conv stack; returns the last tensor. Module indices follow torchvision's
 * make_layers: conv, [bn], relu per layer, one index per pool. */
static int vgg_features(net_builder *nb, int x, const int *cfg, int n, int batch_norm)
{
    int index = 0, stage = 1, in_stage = 0;
    for (int i = 0; i < n; i++) {
        if (cfg[i] == POOL) {
            x = nb_maxpool(nb, x, 2, 2, 0);
            index++, stage++, in_stage = 0;
            continue;
        }
        char conv[32], bn[32], block[32];
        snprintf(conv, sizeof conv, "features.%d", index);
        snprintf(bn, sizeof bn, "features.%d", index + 1);
        snprintf(block, sizeof block, "conv%d_%d", stage, ++in_stage);
        x = nb_conv(nb, x, .conv = conv, .bn = batch_norm ? bn : NULL, .cout = cfg[i], .k = 3, .pad = 1, .bias = 1,
                    .act = ACT_RELU);
        nb_tap(nb, x, block);
        index += batch_norm ? 3 : 2;
    }
    return x;
}

static int classifier(net_builder *nb, int x, int hidden, int classes)
{
    x = nb_linear(nb, x, "classifier.0", hidden, ACT_RELU);
    x = nb_linear(nb, x, "classifier.3", hidden, ACT_RELU);
    return nb_linear(nb, x, "classifier.6", classes, ACT_NONE);
}

static const int cfg_d[] = {64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL,
                            512, 512, 512, POOL, 512, 512, 512, POOL};

static int vgg16_layout(net_builder *nb, int x, int batch_norm)
{
    x = vgg_features(nb, x, cfg_d, sizeof cfg_d / sizeof cfg_d[0], batch_norm);
    x = nb_avgpool(nb, x, 7, 7);
    return classifier(nb, x, 4096, 1000);
}

int build_vgg16(net_builder *nb, int x, const arch_options *o) { return vgg16_layout(nb, x, 0); }
int build_vgg16_bn(net_builder *nb, int x, const arch_options *o) { return vgg16_layout(nb, x, 1); }

int build_vgg11_cifar(net_builder *nb, int x, const arch_options *o)
{
    static const int cfg_a[] = {64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL};
    x = vgg_features(nb, x, cfg_a, sizeof cfg_a / sizeof cfg_a[0], 0);
    return classifier(nb, x, 512, 10);
}
