/* resnet.c: residual networks.
 *
 *   resnet{20,32,44,56}_cifar  He et al. 2016 sec. 4.2 (akamaster layout): 3 stages
 *                              of 16/32/64 channels, option-A shortcuts.
 *   resnet18_cifar             ResNet-18 for 32x32 inputs (kuangliu layout): 3x3
 *                              stem, no max-pool, 1x1 projection shortcuts.
 *   resnet{18,34,50}           torchvision's ImageNet ResNets.
 *
 * Blocks are the residual blocks' outputs after the final ReLU: "layer<s>.<i>".
 * Widths come from the weights when they are loaded, so reduced-width
 * variants of the same layout load too. */
#include <stdio.h>

#include "models.h"

static int cifar_resnet(net_builder *nb, int x, int blocks_per_stage)
{
    x = nb_conv(nb, x, .conv = "conv1", .bn = "bn1", .cout = 16, .k = 3, .pad = 1, .act = ACT_RELU);
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < blocks_per_stage; i++) {
            char p[32], c1[48], b1[48], c2[48], b2[48];
            snprintf(p, sizeof p, "layer%d.%d", s + 1, i);
            snprintf(c1, sizeof c1, "%s.conv1", p), snprintf(b1, sizeof b1, "%s.bn1", p);
            snprintf(c2, sizeof c2, "%s.conv2", p), snprintf(b2, sizeof b2, "%s.bn2", p);
            int stride = s > 0 && i == 0 ? 2 : 1;
            int h = nb_conv(nb, x, .conv = c1, .bn = b1, .cout = 16 << s, .k = 3, .stride = stride, .pad = 1,
                            .act = ACT_RELU);
            int planes = nb_channels(nb, h);
            int shortcut = stride != 1 || nb_channels(nb, x) != planes ? nb_shortcut_a(nb, x, planes) : x;
            x = nb_conv_add(nb, h, shortcut, .conv = c2, .bn = b2, .cout = planes, .k = 3, .pad = 1,
                            .act = ACT_RELU);
            nb_tap(nb, x, p);
        }
    x = nb_avgpool(nb, x, 1, 1);
    return nb_linear(nb, x, "linear", 10, ACT_NONE);
}

int build_resnet20_cifar(net_builder *nb, int x, const arch_options *o) { return cifar_resnet(nb, x, 3); }
int build_resnet32_cifar(net_builder *nb, int x, const arch_options *o) { return cifar_resnet(nb, x, 5); }
int build_resnet44_cifar(net_builder *nb, int x, const arch_options *o) { return cifar_resnet(nb, x, 7); }
int build_resnet56_cifar(net_builder *nb, int x, const arch_options *o) { return cifar_resnet(nb, x, 9); }

/* One basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) block with torchvision's
 * rule for the projection: present when the stride or the width changes. */
static int residual_block(net_builder *nb, int x, const char *p, const char *proj, int planes,
                          int stride, int bottleneck)
{
    char c[4][64], b[4][64], pc[64], pb[64];
    for (int k = 1; k <= 3; k++) {
        snprintf(c[k], sizeof c[k], "%s.conv%d", p, k);
        snprintf(b[k], sizeof b[k], "%s.bn%d", p, k);
    }
    snprintf(pc, sizeof pc, "%s.%s.0", p, proj);
    snprintf(pb, sizeof pb, "%s.%s.1", p, proj);
    char last_w[80];
    snprintf(last_w, sizeof last_w, "%s.weight", bottleneck ? c[3] : c[2]);
    int out_c = nb_width(nb, last_w, bottleneck ? planes * 4 : planes);
    int shortcut = x;
    if (stride != 1 || nb_channels(nb, x) != out_c)
        shortcut = nb_conv(nb, x, .conv = pc, .bn = pb, .cout = out_c, .k = 1, .stride = stride);
    int h;
    if (bottleneck) { /* torchvision puts the stride on the 3x3 conv (ResNet v1.5) */
        h = nb_conv(nb, x, .conv = c[1], .bn = b[1], .cout = planes, .k = 1, .act = ACT_RELU);
        h = nb_conv(nb, h, .conv = c[2], .bn = b[2], .cout = planes, .k = 3, .stride = stride, .pad = 1,
                    .act = ACT_RELU);
        h = nb_conv_add(nb, h, shortcut, .conv = c[3], .bn = b[3], .cout = out_c, .k = 1, .act = ACT_RELU);
    } else {
        h = nb_conv(nb, x, .conv = c[1], .bn = b[1], .cout = planes, .k = 3, .stride = stride, .pad = 1,
                    .act = ACT_RELU);
        h = nb_conv_add(nb, h, shortcut, .conv = c[2], .bn = b[2], .cout = out_c, .k = 3, .pad = 1,
                        .act = ACT_RELU);
    }
    nb_tap(nb, h, p);
    return h;
}

static int resnet_stages(net_builder *nb, int x, const int *blocks, int bottleneck,
                         const char *proj)
{
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < blocks[s]; i++) {
            char p[32];
            snprintf(p, sizeof p, "layer%d.%d", s + 1, i);
            x = residual_block(nb, x, p, proj, 64 << s, s > 0 && i == 0 ? 2 : 1, bottleneck);
        }
    return nb_avgpool(nb, x, 1, 1);
}

static int imagenet_resnet(net_builder *nb, int x, const int *blocks, int bottleneck)
{
    x = nb_conv(nb, x, .conv = "conv1", .bn = "bn1", .cout = 64, .k = 7, .stride = 2, .pad = 3, .act = ACT_RELU);
    x = nb_maxpool(nb, x, 3, 2, 1);
    x = resnet_stages(nb, x, blocks, bottleneck, "downsample");
    return nb_linear(nb, x, "fc", 1000, ACT_NONE);
}

int build_resnet18(net_builder *nb, int x, const arch_options *o)
{
    static const int blocks[4] = {2, 2, 2, 2};
    return imagenet_resnet(nb, x, blocks, 0);
}

int build_resnet34(net_builder *nb, int x, const arch_options *o)
{
    static const int blocks[4] = {3, 4, 6, 3};
    return imagenet_resnet(nb, x, blocks, 0);
}

int build_resnet50(net_builder *nb, int x, const arch_options *o)
{
    static const int blocks[4] = {3, 4, 6, 3};
    return imagenet_resnet(nb, x, blocks, 1);
}

int build_resnet18_cifar(net_builder *nb, int x, const arch_options *o)
{
    static const int blocks[4] = {2, 2, 2, 2};
    int pad = o && o->stem_padding > 0 ? o->stem_padding : 1;
    x = nb_conv(nb, x, .conv = "conv1", .bn = "bn1", .cout = 64, .k = 3, .pad = pad, .act = ACT_RELU);
    x = resnet_stages(nb, x, blocks, 0, "shortcut");
    return nb_linear(nb, x, "linear", 10, ACT_NONE);
}
