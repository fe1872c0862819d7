#!/usr/bin/env python3
"""Self-checks of the PyTorch reference (scripts/reference_models.py).

    /usr/bin/python3 scripts/check_reference.py [--data ../shared/data]

One line per check; exits non-zero if any check fails. The real-weight check
is skipped, with a message, when the shared data folder is absent.
"""

import argparse
import glob
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as ref  # noqa: E402
from make_fixtures import CASES  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Blocks per architecture: SPEC's counts (ResNet-18 8, ResNet-50 16, CIFAR
# ResNet-20/56 9/27, WRN-28 12, VGG-11 8, VGG-16 13, MobileNetV2 17,
# MobileNetV3-large 15) and the ones that follow from the same rules.
EXPECTED_BLOCKS = {
    "resnet20_cifar": 9, "resnet32_cifar": 15, "resnet44_cifar": 21, "resnet56_cifar": 27,
    "resnet18": 8, "resnet34": 16, "resnet50": 16, "resnet18_cifar": 8, "wrn28_10": 12,
    "vgg11_cifar": 8, "vgg16": 13, "vgg16_bn": 13, "mobilenet_v2": 17, "mobilenet_v3_large": 15,
}
NATIVE_SIZE = {arch: 32 for arch in EXPECTED_BLOCKS}
NATIVE_SIZE.update({a: 224 for a in ("resnet18", "resnet34", "resnet50", "vgg16", "vgg16_bn",
                                      "mobilenet_v2", "mobilenet_v3_large")})

# Tap shapes SPEC states for the authors' selected blocks (full-size models).
SPEC_SHAPES = [
    ("wrn28_10", {}, "block3.3", [640, 8, 8]),
    ("vgg11_cifar", {}, "conv4_2", [512, 4, 4]),   # "the 6th conv"
    ("resnet50", {}, "layer4.2", [2048, 7, 7]),
    ("resnet18_cifar", {"stem_padding": 2}, "layer4.0", [512, 5, 5]),
    ("resnet18_cifar", {}, "layer4.0", [512, 4, 4]),
]

failures = []


def check(ok, message):
    print(f"{'ok  ' if ok else 'FAIL'} {message}")
    if not ok:
        failures.append(message)


def check_real_weights(data_dir):
    paths = glob.glob(os.path.join(data_dir, "weights", "cifar10", "resnet20-*.th"))
    png_dir = os.path.join(data_dir, "cifar10-lossless", "png")
    if not paths or not os.path.isdir(png_dir):
        print(f"skip real ResNet-20 weights: {data_dir} has no weights/cifar10/resnet20-*.th or PNGs")
        return
    model, blocks = ref.resnet20_cifar()
    try:
        ref.load_akamaster_checkpoint(model, paths[0])
    except RuntimeError as e:
        check(False, f"resnet20 {os.path.basename(paths[0])} strict load: {e}")
        return
    check(True, f"resnet20 {os.path.basename(paths[0])} loads strictly")
    images, labels, names = ref.load_labelled_pngs(png_dir)
    logits, _, _ = ref.forward_taps(model, blocks, torch.from_numpy(ref.normalize_u8(images)))
    accuracy = float(np.mean(logits.argmax(1).numpy() == labels))
    check(accuracy >= 0.90, f"resnet20 accuracy {accuracy:.2%} on {len(names)} lossless PNGs (>= 90%)")


def tap_order(model, blocks, size):
    """Names of the blocks in the order their hooks fire during one forward."""
    fired = []
    handles = [m.register_forward_hook(lambda _m, _i, _o, name=name: fired.append(name)) for name, m in blocks]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return fired


def check_full_models():
    """Block counts, tap order and fixture key sets, one full-size model at a time."""
    fixture_options = {}
    for _, arch, options, num_classes, size in CASES:
        fixture_options.setdefault(arch, []).append((options, num_classes, size))
    for arch, expected in EXPECTED_BLOCKS.items():
        model, blocks = ref.build(arch)
        names = [name for name, _ in blocks]
        check(len(blocks) == expected, f"{arch}: {len(blocks)} blocks (expected {expected}), {names[0]} .. {names[-1]}")
        full_keys = set(model.state_dict())
        del model, blocks
        for options, num_classes, size in fixture_options.get(arch, []):
            small, small_blocks = ref.build(arch, num_classes=num_classes, **options)
            keys = set(small.state_dict())
            differ = f"; differ: {sorted(keys ^ full_keys)[:4]}" if keys != full_keys else ""
            check(keys == full_keys, f"{arch} {options}: state_dict keys equal the full model's ({len(keys)} keys{differ})")
            small_names = [name for name, _ in small_blocks]
            check(small_names == names, f"{arch} {options}: same block names as the full model")
            check(tap_order(small, small_blocks, size) == small_names,
                  f"{arch} {options}: each block fires once, in list order")


def check_spec_shapes():
    for arch, options, block, shape in SPEC_SHAPES:
        model, blocks = ref.build(arch, **options)
        _, _, outputs = ref.forward_taps(model, blocks, torch.zeros(1, 3, NATIVE_SIZE[arch], NATIVE_SIZE[arch]))
        got = dict(zip([name for name, _ in blocks], (list(z.shape[1:]) for z in outputs)))[block]
        check(got == shape, f"{arch} {options} {block}: {got} at {NATIVE_SIZE[arch]}x{NATIVE_SIZE[arch]} (SPEC {shape})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"), help="shared data folder")
    args = parser.parse_args()
    check_real_weights(args.data)
    check_full_models()
    check_spec_shapes()
    print(f"{len(failures)} check(s) failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
