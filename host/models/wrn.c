/* wrn.c: WideResNet-28-10 (Zagoruyko & Komodakis 2016), xternalz layout.
 *
 * Pre-activation blocks: BN-ReLU-conv-BN-ReLU-conv plus the shortcut, which is
 * the block's input, or a 1x1 projection of its pre-activated input when the
 * width changes. The first BN of a block follows an addition, so it cannot be
 * folded into a convolution: it stays as an affine op. Block outputs (the
 * sums) are not rectified; FeatureNorm's own ReLU handles that.
 * Blocks: block<g>.<i>, g = 1..3, i = 0..3. */
#include <stdio.h>

#include "models.h"

int build_wrn28_10(net_builder *nb, int x, const arch_options *o)
{
    static const int widths[3] = {160, 320, 640};
    x = nb_conv(nb, x, .conv = "conv1", .cout = 16, .k = 3, .pad = 1);
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < 4; i++) {
            char p[32], bn1[48], conv1[48], bn2[48], conv2[48], proj[48], block[32];
            snprintf(p, sizeof p, "block%d.layer.%d", g + 1, i);
            snprintf(bn1, sizeof bn1, "%s.bn1", p), snprintf(conv1, sizeof conv1, "%s.conv1", p);
            snprintf(bn2, sizeof bn2, "%s.bn2", p), snprintf(conv2, sizeof conv2, "%s.conv2", p);
            snprintf(proj, sizeof proj, "%s.convShortcut", p);
            snprintf(block, sizeof block, "block%d.%d", g + 1, i);
            int stride = g > 0 && i == 0 ? 2 : 1;
            int act = nb_affine_bn(nb, x, bn1, ACT_RELU);
            int h = nb_conv(nb, act, .conv = conv1, .bn = bn2, .cout = widths[g], .k = 3, .stride = stride, .pad = 1,
                            .act = ACT_RELU);
            int out_c = nb_channels(nb, h);
            int shortcut = out_c != nb_channels(nb, x)
                               ? nb_conv(nb, act, .conv = proj, .cout = out_c, .k = 1, .stride = stride)
                               : x;
            x = nb_conv_add(nb, h, shortcut, .conv = conv2, .cout = out_c, .k = 3, .pad = 1);
            nb_tap(nb, x, block);
        }
    x = nb_affine_bn(nb, x, "bn1", ACT_RELU);
    x = nb_avgpool(nb, x, 1, 1);
    return nb_linear(nb, x, "fc", 10, ACT_NONE);
}
