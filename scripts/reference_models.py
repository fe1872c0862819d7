#!/usr/bin/env python3
"""Independent PyTorch reference for the featurenorm engine.

Every architecture the engine supports, with the state_dict names the C loader
expects and the ordered list of FeatureNorm tap points ("blocks", see
shared/SPEC.md). Each builder returns ``(model, blocks)``: ``model`` is in eval
mode and ``blocks`` is a list of ``(block_name, module)`` in forward order; the
tapped feature map is the module's forward OUTPUT.

Run with Debian's /usr/bin/python3 (torch + torchvision), not the pyenv python.
"""

import os
import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------
# CIFAR ResNets of He et al. 2016, laid out as akamaster/pytorch_resnet_cifar10.
# ---------------------------------------------------------------------------

class CifarBasicBlock(nn.Module):
    """3x3-3x3 residual block with the parameter-free "option A" shortcut."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.subsample = stride != 1 or in_planes != planes
        if self.subsample:
            # Option A subsamples by 2 and pads planes//4 zero channels on each
            # side, which only yields `planes` channels when the width doubles.
            if stride != 2 or in_planes + 2 * (planes // 4) != planes:
                raise ValueError("option-A shortcut needs stride 2 and doubled width")
        self.pad = planes // 4

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.subsample:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        else:
            shortcut = x
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage, width=16, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        in_planes = width
        for stage in range(3):
            planes = width << stage
            layers = []
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(CifarBasicBlock(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.linear = nn.Linear(in_planes, num_classes)
        # akamaster initialises every conv and linear weight with kaiming_normal_.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def _stage_blocks(model, stages):
    """(name, module) for every residual block of the named nn.Sequential stages."""
    return [(f"{s}.{i}", blk) for s in stages for i, blk in enumerate(getattr(model, s))]


def _cifar_resnet(n, width, num_classes):
    model = CifarResNet(n, width=width, num_classes=num_classes)
    return model.eval(), _stage_blocks(model, ("layer1", "layer2", "layer3"))


def resnet20_cifar(width=16, num_classes=10):
    return _cifar_resnet(3, width, num_classes)


def resnet32_cifar(width=16, num_classes=10):
    return _cifar_resnet(5, width, num_classes)


def resnet44_cifar(width=16, num_classes=10):
    return _cifar_resnet(7, width, num_classes)


def resnet56_cifar(width=16, num_classes=10):
    return _cifar_resnet(9, width, num_classes)


# ---------------------------------------------------------------------------
# torchvision ImageNet ResNets.
# ---------------------------------------------------------------------------

def _torchvision_resnet(block, layers, width, num_classes):
    model = tv_resnet.ResNet(block, layers, num_classes=num_classes)
    if width != 64:
        # Rebuild stem, stages and head at the reduced width with torchvision's
        # own _make_layer, so the block code that runs (and every parameter
        # name) is torchvision's; only the channel counts change.
        model.inplanes = width
        model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        model.bn1 = nn.BatchNorm2d(width)
        model.layer1 = model._make_layer(block, width, layers[0])
        model.layer2 = model._make_layer(block, 2 * width, layers[1], stride=2)
        model.layer3 = model._make_layer(block, 4 * width, layers[2], stride=2)
        model.layer4 = model._make_layer(block, 8 * width, layers[3], stride=2)
        model.fc = nn.Linear(8 * width * block.expansion, num_classes)
        # Same initialisation as torchvision's ResNet.__init__.
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return model.eval(), _stage_blocks(model, ("layer1", "layer2", "layer3", "layer4"))


def resnet18(width=64, num_classes=1000):
    return _torchvision_resnet(tv_resnet.BasicBlock, [2, 2, 2, 2], width, num_classes)


def resnet34(width=64, num_classes=1000):
    return _torchvision_resnet(tv_resnet.BasicBlock, [3, 4, 6, 3], width, num_classes)


def resnet50(width=64, num_classes=1000):
    return _torchvision_resnet(tv_resnet.Bottleneck, [3, 4, 6, 3], width, num_classes)


# ---------------------------------------------------------------------------
# ResNet-18 for CIFAR, laid out as kuangliu/pytorch-cifar.
# ---------------------------------------------------------------------------

class KuangliuBasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class KuangliuResNet18(nn.Module):
    def __init__(self, width=64, stem_padding=1, num_classes=10):
        super().__init__()
        # 3x3 stride-1 stem and no max-pool. The FeatureNorm authors used
        # padding 2 here, which makes layer4 5x5 instead of 4x4 at 32x32.
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=stem_padding, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        in_planes = width
        for stage in range(4):
            planes = width << stage
            first_stride = 1 if stage == 0 else 2
            blocks = [KuangliuBasicBlock(in_planes, planes, first_stride),
                      KuangliuBasicBlock(planes, planes, 1)]
            in_planes = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        # Global average pool. kuangliu wrote F.avg_pool2d(out, 4), equal to this
        # for a 4x4 layer4 but, with stem padding 2 (5x5 layer4), pooling only
        # the top-left 4x4 window; this reference pools the whole map.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet18_cifar(width=64, stem_padding=1, num_classes=10):
    model = KuangliuResNet18(width=width, stem_padding=stem_padding, num_classes=num_classes)
    return model.eval(), _stage_blocks(model, ("layer1", "layer2", "layer3", "layer4"))


# ---------------------------------------------------------------------------
# WideResNet-28, laid out as xternalz/WideResNet-pytorch (dropout 0).
# ---------------------------------------------------------------------------

class WideBasicBlock(nn.Module):
    """Pre-activation block; its output (the residual sum) is not rectified."""

    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        # A projection exists exactly when the width changes (as in xternalz,
        # where a stride-2 block always also changes width).
        if in_planes != out_planes:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
        else:
            self.convShortcut = None

    def forward(self, x):
        act = self.relu1(self.bn1(x))
        # With a projection, the shortcut takes the pre-activated input.
        shortcut = x if self.convShortcut is None else self.convShortcut(act)
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        return shortcut + out


class NetworkBlock(nn.Module):
    def __init__(self, n, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
            for i in range(n)
        ])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth=28, widen_factor=10, num_classes=10):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n+4")
        n = (depth - 4) // 6
        # widen_factor may be fractional for small test fixtures.
        widths = [16] + [int(round(c * widen_factor)) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes)
        # Initialisation as in xternalz: He-normal (fan_out) convs, unit BN,
        # zero linear bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        # xternalz uses F.avg_pool2d(out, 8): global at 32x32 input (8x8 maps).
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def wrn28_10(widen_factor=10, num_classes=10):
    model = WideResNet(28, widen_factor=widen_factor, num_classes=num_classes)
    blocks = [(f"block{g}.{i}", blk)
              for g in (1, 2, 3)
              for i, blk in enumerate(getattr(model, f"block{g}").layer)]
    return model.eval(), blocks


# ---------------------------------------------------------------------------
# VGG.
# ---------------------------------------------------------------------------

def _vgg_blocks(features):
    """Each conv's ReLU, named Caffe-style conv{stage}_{index}."""
    blocks, stage, index = [], 1, 0
    for m in features:
        if isinstance(m, nn.MaxPool2d):
            stage, index = stage + 1, 0
        elif isinstance(m, nn.ReLU):
            index += 1
            blocks.append((f"conv{stage}_{index}", m))
    return blocks


def _scaled_cfg(cfg, width):
    return [v if v == "M" else v * width // 64 for v in cfg]


class VGG11Cifar(nn.Module):
    """VGG-11 (cfg A, no BN) with the 512-512-10 classifier used for CIFAR."""

    def __init__(self, width=64, num_classes=10):
        super().__init__()
        layers, in_ch = [], 3
        # Same module indices as torchvision's make_layers, non-inplace ReLU.
        for v in _scaled_cfg(tv_vgg.cfgs["A"], width):
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU()]
                in_ch = v
        self.features = nn.Sequential(*layers)
        hidden = 8 * width
        self.classifier = nn.Sequential(
            nn.Linear(in_ch, hidden), nn.ReLU(), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )
        # torchvision's VGG initialisation; PyTorch's default conv init makes
        # activations vanish through eight BN-free layers.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        # 32x32 input: five max-pools leave 1x1, so the flatten is 8*width.
        return self.classifier(self.features(x).flatten(1))


def vgg11_cifar(width=64, num_classes=10):
    model = VGG11Cifar(width=width, num_classes=num_classes)
    return model.eval(), _vgg_blocks(model.features)


def _torchvision_vgg(batch_norm, width, hidden, num_classes):
    features = tv_vgg.make_layers(_scaled_cfg(tv_vgg.cfgs["D"], width), batch_norm=batch_norm)
    model = tv_vgg.VGG(features, num_classes=num_classes)
    if width != 64 or hidden != 4096:
        # Narrower head with the same module indices (0, 3, 6). The
        # AdaptiveAvgPool2d((7, 7)) stays, so the first Linear takes C*7*7.
        channels = 8 * width
        model.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )
        for m in model.classifier:
            if isinstance(m, nn.Linear):  # as torchvision's VGG.__init__
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
    return model.eval(), _vgg_blocks(model.features)


def vgg16(width=64, hidden=4096, num_classes=1000):
    return _torchvision_vgg(False, width, hidden, num_classes)


def vgg16_bn(width=64, hidden=4096, num_classes=1000):
    return _torchvision_vgg(True, width, hidden, num_classes)


# ---------------------------------------------------------------------------
# MobileNets (torchvision).
# ---------------------------------------------------------------------------

def _inverted_residual_blocks(model, block_type):
    return [(f"features.{i}", m) for i, m in enumerate(model.features) if isinstance(m, block_type)]


def mobilenet_v2(width_mult=1.0, num_classes=1000):
    model = tvm.mobilenet_v2(width_mult=width_mult, num_classes=num_classes)
    return model.eval(), _inverted_residual_blocks(model, tvm.mobilenetv2.InvertedResidual)


def mobilenet_v3_large(width_mult=1.0, num_classes=1000):
    model = tvm.mobilenet_v3_large(width_mult=width_mult, num_classes=num_classes)
    return model.eval(), _inverted_residual_blocks(model, tvm.mobilenetv3.InvertedResidual)


ARCHITECTURES = {
    "resnet20_cifar": resnet20_cifar,
    "resnet32_cifar": resnet32_cifar,
    "resnet44_cifar": resnet44_cifar,
    "resnet56_cifar": resnet56_cifar,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet18_cifar": resnet18_cifar,
    "wrn28_10": wrn28_10,
    "vgg11_cifar": vgg11_cifar,
    "vgg16": vgg16,
    "vgg16_bn": vgg16_bn,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
}


def build(arch, **options):
    """(model, blocks) for an architecture name of ARCHITECTURES."""
    return ARCHITECTURES[arch](**options)


# ---------------------------------------------------------------------------
# FeatureNorm and forward taps.
# ---------------------------------------------------------------------------

def feature_norm(z):
    """FeatureNorm per SPEC: ReLU, spatial L2 norm per channel, mean over channels.

    z: (N, C, H, W) -> (N,)
    """
    return z.clamp(min=0).pow(2).sum(dim=(2, 3)).sqrt().mean(dim=1)


def last_linear(model):
    """The classifier's final nn.Linear (registered last in every model here)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


@torch.no_grad()
def forward_taps(model, blocks, x):
    """One forward pass returning (logits, penultimate features, block outputs).

    Outputs are cloned in the hooks because several models rectify in place
    after a block (torchvision's ReLU(inplace=True)).
    """
    outputs = [None] * len(blocks)
    captured = {}

    def block_hook(i):
        def hook(_module, _inputs, output):
            if outputs[i] is not None:
                raise RuntimeError(f"block {blocks[i][0]} ran twice in one forward")
            outputs[i] = output.detach().clone()
        return hook

    def head_hook(_module, inputs):
        captured["features"] = inputs[0].detach().clone()

    handles = [m.register_forward_hook(block_hook(i)) for i, (_, m) in enumerate(blocks)]
    handles.append(last_linear(model).register_forward_pre_hook(head_hook))
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    missing = [name for (name, _), out in zip(blocks, outputs) if out is None]
    if missing:
        raise RuntimeError(f"blocks never ran: {missing}")
    return logits, captured["features"], outputs


# ---------------------------------------------------------------------------
# Inputs and real weights.
# ---------------------------------------------------------------------------

def normalize_u8(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 (N, H, W, 3) RGB -> float32 (N, 3, H, W), (u8/255 - mean)/std in float32."""
    x = images.astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def load_labelled_pngs(folder):
    """Sorted NNN_labelL.png files -> (uint8 (N, H, W, 3), int64 labels, file names)."""
    from PIL import Image

    names = sorted(f for f in os.listdir(folder) if re.fullmatch(r"\d+_label\d+\.png", f))
    images = np.stack([np.asarray(Image.open(os.path.join(folder, f)).convert("RGB")) for f in names])
    labels = np.array([int(re.search(r"_label(\d+)", f).group(1)) for f in names], dtype=np.int64)
    return images, labels, names


def load_akamaster_checkpoint(model, path):
    """Load an akamaster .th checkpoint (DataParallel `module.` prefixes) strictly.

    The checkpoints predate BatchNorm's num_batches_tracked; PyTorch fills it
    in for state dicts without version metadata, so strict loading holds.
    """
    state = torch.load(path, map_location="cpu")["state_dict"]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model
