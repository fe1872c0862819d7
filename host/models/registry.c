/* registry.c: architecture names -> builders, default input size,
 * preprocessing and normalisation. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "models.h"

#define IMAGENET_MEAN {0.485f, 0.456f, 0.406f}
#define IMAGENET_STD {0.229f, 0.224f, 0.225f}
/* The paper's CIFAR networks were trained on inputs normalised with 0.5/0.5. */
#define HALF {0.5f, 0.5f, 0.5f}

static const arch archs[] = {
    {"resnet20_cifar", "CIFAR ResNet-20 (He et al. 2016, option-A shortcuts; akamaster weights)",
     build_resnet20_cifar, 32, FN_PRESET_CIFAR, IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"resnet32_cifar", "CIFAR ResNet-32 (He et al. 2016, option-A shortcuts)",
     build_resnet32_cifar, 32, FN_PRESET_CIFAR, IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"resnet44_cifar", "CIFAR ResNet-44 (He et al. 2016, option-A shortcuts)",
     build_resnet44_cifar, 32, FN_PRESET_CIFAR, IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"resnet56_cifar", "CIFAR ResNet-56 (He et al. 2016, option-A shortcuts)",
     build_resnet56_cifar, 32, FN_PRESET_CIFAR, IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"resnet18_cifar", "ResNet-18 for CIFAR (3x3 stem, no max-pool, projection shortcuts)",
     build_resnet18_cifar, 32, FN_PRESET_CIFAR, HALF, HALF, 1e-5f},
    {"resnet18", "torchvision ResNet-18 (ImageNet)", build_resnet18, 224, FN_PRESET_IMAGENET,
     IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"resnet34", "torchvision ResNet-34 (ImageNet)", build_resnet34, 224, FN_PRESET_IMAGENET,
     IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"resnet50", "torchvision ResNet-50 (ImageNet, bottleneck)", build_resnet50, 224,
     FN_PRESET_IMAGENET, IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"wrn28_10", "WideResNet-28-10 for CIFAR (pre-activation blocks)", build_wrn28_10, 32,
     FN_PRESET_CIFAR, HALF, HALF, 1e-5f},
    {"vgg11_cifar", "VGG-11 for CIFAR (no BN, classifier 512-512-512-10)", build_vgg11_cifar, 32,
     FN_PRESET_CIFAR, HALF, HALF, 1e-5f},
    {"vgg16", "torchvision VGG-16 (ImageNet)", build_vgg16, 224, FN_PRESET_IMAGENET,
     IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"vgg16_bn", "torchvision VGG-16 with BatchNorm (ImageNet)", build_vgg16_bn, 224,
     FN_PRESET_IMAGENET, IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    {"mobilenet_v2", "torchvision MobileNetV2 (ImageNet)", build_mobilenet_v2, 224,
     FN_PRESET_IMAGENET, IMAGENET_MEAN, IMAGENET_STD, 1e-5f},
    /* torchvision builds MobileNetV3's BatchNorms with eps 0.001 */
    {"mobilenet_v3_large", "torchvision MobileNetV3-Large (ImageNet; hardswish, SE)",
     build_mobilenet_v3_large, 224, FN_PRESET_IMAGENET, IMAGENET_MEAN, IMAGENET_STD, 1e-3f},
};

int arch_count(void) { return (int)(sizeof archs / sizeof archs[0]); }
const arch *arch_at(int i) { return &archs[i]; }

const arch *arch_find(const char *name)
{
    for (int i = 0; i < arch_count(); i++)
        if (strcmp(archs[i].name, name) == 0)
            return &archs[i];
    return NULL;
}

int fn_arch_count(void) { return arch_count(); }
const char *fn_arch_name(int i) { return i >= 0 && i < arch_count() ? archs[i].name : NULL; }
const char *fn_arch_description(int i)
{
    return i >= 0 && i < arch_count() ? archs[i].description : NULL;
}

fn_status arch_build(const arch *a, const st_file *weights, int input_size,
                     const arch_options *o, net *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->arch, sizeof out->arch, "%s", a->name);
    memcpy(out->mean, a->mean, sizeof out->mean);
    memcpy(out->std, a->std, sizeof out->std);
    out->preset = a->preset;
    net_builder nb = {out, weights, a->bn_eps, FN_OK};
    int input = nb_input(&nb, input_size > 0 ? input_size : a->input_size);
    int logits = a->build(&nb, input, o);
    fn_status s = nb_finish(&nb, logits);
    if (s != FN_OK)
        net_free(out);
    return s;
}
