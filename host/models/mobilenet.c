/* mobilenet.c: torchvision's MobileNetV2 and MobileNetV3-Large.
 *
 * Inverted residual blocks: 1x1 expansion, k x k depthwise, [squeeze-excitation],
 * 1x1 projection, with a residual add when the shape is kept. Blocks are the
 * inverted residual modules' outputs, named by module path: features.<i>.
 * Every Conv2dNormActivation at path P has its conv at "P.0" and BN at "P.1".
 * Widths come from the weights, so width_mult variants load too. */
#include <stdio.h>

#include "models.h"

/* Conv2dNormActivation: conv "<p>.0" + BN "<p>.1" + activation. */
static int conv_bn(net_builder *nb, int x, const char *p, int cout, int k, int stride, int groups,
                   net_act act)
{
    char conv[80], bn[80];
    snprintf(conv, sizeof conv, "%s.0", p);
    snprintf(bn, sizeof bn, "%s.1", p);
    return nb_conv(nb, x, .conv = conv, .bn = bn, .cout = cout, .k = k, .stride = stride, .pad = (k - 1) / 2,
                   .groups = groups, .act = act);
}

static int make_divisible(int v) /* torchvision's _make_divisible(v, 8) */
{
    int r = (v + 4) / 8 * 8;
    if (r < 8)
        r = 8;
    return r < v * 9 / 10 ? r + 8 : r;
}

int build_mobilenet_v2(net_builder *nb, int x, const arch_options *o)
{
    static const int settings[7][4] = {/* t, c, n, s */
                                       {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                       {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    x = conv_bn(nb, x, "features.0", 32, 3, 2, 1, ACT_RELU6);
    int index = 1;
    for (int s = 0; s < 7; s++)
        for (int i = 0; i < settings[s][2]; i++, index++) {
            const int t = settings[s][0], stride = i == 0 ? settings[s][3] : 1;
            char p[48], proj[64], bn[64], block[32];
            snprintf(block, sizeof block, "features.%d", index);
            int in = x, j = 0, in_c = nb_channels(nb, x);
            if (t != 1) {
                snprintf(p, sizeof p, "%s.conv.%d", block, j++);
                x = conv_bn(nb, x, p, in_c * t, 1, 1, 1, ACT_RELU6);
            }
            snprintf(p, sizeof p, "%s.conv.%d", block, j++);
            x = conv_bn(nb, x, p, nb_channels(nb, x), 3, stride, NB_DEPTHWISE, ACT_RELU6);
            snprintf(proj, sizeof proj, "%s.conv.%d", block, j);
            snprintf(bn, sizeof bn, "%s.conv.%d", block, j + 1);
            char wname[80];
            snprintf(wname, sizeof wname, "%s.weight", proj);
            int out_c = nb_width(nb, wname, settings[s][1]);
            int res = stride == 1 && in_c == out_c ? in : -1;
            x = nb_conv_add(nb, x, res, .conv = proj, .bn = bn, .cout = out_c, .k = 1);
            nb_tap(nb, x, block);
        }
    x = conv_bn(nb, x, "features.18", 1280, 1, 1, 1, ACT_RELU6);
    x = nb_avgpool(nb, x, 1, 1);
    return nb_linear(nb, x, "classifier.1", 1000, ACT_NONE);
}

int build_mobilenet_v3_large(net_builder *nb, int x, const arch_options *o)
{
    static const struct { int k, expanded, out, se, hardswish, stride; } cfg[15] = {
        {3, 16, 16, 0, 0, 1},    {3, 64, 24, 0, 0, 2},    {3, 72, 24, 0, 0, 1},
        {5, 72, 40, 1, 0, 2},    {5, 120, 40, 1, 0, 1},   {5, 120, 40, 1, 0, 1},
        {3, 240, 80, 0, 1, 2},   {3, 200, 80, 0, 1, 1},   {3, 184, 80, 0, 1, 1},
        {3, 184, 80, 0, 1, 1},   {3, 480, 112, 1, 1, 1},  {3, 672, 112, 1, 1, 1},
        {5, 672, 160, 1, 1, 2},  {5, 960, 160, 1, 1, 1},  {5, 960, 160, 1, 1, 1},
    };
    x = conv_bn(nb, x, "features.0", 16, 3, 2, 1, ACT_HARDSWISH);
    for (int b = 0; b < 15; b++) {
        const net_act act = cfg[b].hardswish ? ACT_HARDSWISH : ACT_RELU;
        char block[32], p[64], wname[96];
        snprintf(block, sizeof block, "features.%d", b + 1);
        int in = x, j = 0, in_c = nb_channels(nb, x);
        snprintf(wname, sizeof wname, "%s.block.0.0.weight", block);
        /* torchvision skips the expansion when it would keep the width */
        int expanded = nb_width(nb, wname, cfg[b].expanded);
        if (expanded != in_c) {
            snprintf(p, sizeof p, "%s.block.%d", block, j++);
            x = conv_bn(nb, x, p, expanded, 1, 1, 1, act);
        }
        snprintf(p, sizeof p, "%s.block.%d", block, j++);
        x = conv_bn(nb, x, p, nb_channels(nb, x), cfg[b].k, cfg[b].stride, NB_DEPTHWISE, act);
        if (cfg[b].se) { /* squeeze-excitation: pool, fc1 + ReLU, fc2 + hardsigmoid, scale */
            char fc1[80], fc2[80];
            snprintf(fc1, sizeof fc1, "%s.block.%d.fc1", block, j);
            snprintf(fc2, sizeof fc2, "%s.block.%d.fc2", block, j++);
            int c = nb_channels(nb, x);
            int s = nb_avgpool(nb, x, 1, 1);
            s = nb_conv(nb, s, .conv = fc1, .cout = make_divisible(c / 4), .k = 1, .bias = 1, .act = ACT_RELU);
            s = nb_conv(nb, s, .conv = fc2, .cout = c, .k = 1, .bias = 1, .act = ACT_HARDSIGMOID);
            x = nb_scale(nb, x, s);
        }
        snprintf(p, sizeof p, "%s.block.%d", block, j);
        snprintf(wname, sizeof wname, "%s.0.weight", p);
        int out_c = nb_width(nb, wname, cfg[b].out);
        char conv[80], bn[80];
        snprintf(conv, sizeof conv, "%s.0", p);
        snprintf(bn, sizeof bn, "%s.1", p);
        int res = cfg[b].stride == 1 && in_c == out_c ? in : -1;
        x = nb_conv_add(nb, x, res, .conv = conv, .bn = bn, .cout = out_c, .k = 1);
        nb_tap(nb, x, block);
    }
    x = conv_bn(nb, x, "features.16", 960, 1, 1, 1, ACT_HARDSWISH);
    x = nb_avgpool(nb, x, 1, 1);
    x = nb_linear(nb, x, "classifier.0", 1280, ACT_HARDSWISH);
    return nb_linear(nb, x, "classifier.3", 1000, ACT_NONE);
}
