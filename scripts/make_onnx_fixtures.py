#!/usr/bin/python3
"""make_onnx_fixtures.py: small ONNX models and their PyTorch references, for tests/test_onnx.c.

    /usr/bin/python3 scripts/make_onnx_fixtures.py [--data ../shared/data]

Needs Debian's python3-torch, python3-torchvision and python3-onnx. Writes one folder per
case under tests/fixtures/onnx/ (all small: reduced widths, 32-64 px, 2 images):

  resnet18/            torchvision ResNet-18 at width 4, the weights of
                       tests/fixtures/models/resnet18; the test compares it with --arch resnet18
  resnet20_real/       the shared CIFAR ResNet-20 (akamaster weights), BatchNorm kept, every
                       weight EXTERNAL in resnet20_cifar.safetensors (which the test makes with
                       convert_weights.py): no real weights are committed. Only with --data.
  regnet_x_400mf/ mobilenet_v3/ efficientnet_b0/ densenet121/
                       torchvision layouts at reduced width, random weights (BatchNorm
                       statistics calibrated as make_fixtures.py does), with input.npy, and
                       PyTorch forward-hook references norms.npy, logits.npy, features.npy
                       (float64) of the blocks --blocks auto chooses; mobilenet_v3 stores its
                       weights as float_data instead of raw_data
  misc/                Clip, a standalone Add + LeakyRelu, HardSwish, a padded k x k average
                       pool, an elementwise product, Concat, MatMul + Add (opset 17), with
                       references of two blocks named on --blocks
  tiny/                a VGG-like net (no residual adds) with its weights in weights.bin
  bad_op/ bad_size/ bad_cycle/   a Tanh, a tensor whose shape and data disagree, a cycle
  bad_reshape/         a Reshape of constants from 6 elements into 4 (the fold's error path)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import zlib

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper
from torchvision.models import densenet, efficientnet, regnet
import torchvision.models as tvm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402
import reference_models as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET = 13
SIZE = 32
IMAGES = 2


def export(model, path, size, keep_bn=False):
    """torch.onnx.export with a symbolic batch; keep_bn leaves BatchNorm nodes (and the
    state_dict's names) in the graph instead of folding them into the convolutions."""
    model.eval()
    kwargs = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) if keep_bn else {}
    torch.onnx.export(model, torch.zeros(1, 3, size, size), path, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, **kwargs)
    onnx.checker.check_model(onnx.load(path))


def inputs(case, size):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    return mf.synthetic_images(rng, IMAGES, size), mf.synthetic_images(rng, 8, size)


def write_refs(folder, model, blocks, x32, extra=None):
    logits, features, norms, shapes = mf.oracle(model, blocks, x32)
    mf.write_npy(os.path.join(folder, "input.npy"), x32, "<f4")
    mf.write_npy(os.path.join(folder, "norms.npy"), norms, "<f8")
    mf.write_npy(os.path.join(folder, "logits.npy"), logits, "<f8")
    mf.write_npy(os.path.join(folder, "features.npy"), features, "<f8")
    meta = {"input_size": int(x32.shape[2]), "mean": list(ref.IMAGENET_MEAN), "std": list(ref.IMAGENET_STD),
            "blocks": [name for name, _ in blocks], "block_shapes": shapes, "torch": torch.__version__}
    meta.update(extra or {})
    mf.write_json(os.path.join(folder, "meta.json"), meta)
    print(f"{os.path.basename(folder):16s} blocks {len(blocks):2d}  norms {norms.min():8.4g} .. {norms.max():8.4g}")


def pytorch_case(root, case, model, blocks, size=SIZE, float_data=False):
    """Random weights, export, then the float64 references of the same blocks."""
    torch.manual_seed(zlib.crc32(case.encode()))
    images, calib = inputs(case, size)
    mf.randomise_(model.eval(), torch.from_numpy(ref.normalize_u8(calib)),
                  torch.Generator().manual_seed(zlib.crc32(case.encode())))
    folder = os.path.join(root, case)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    export(model, path, size)
    if float_data:  # the other way ONNX stores floats
        m = onnx.load(path)
        for t in m.graph.initializer:
            if t.data_type == onnx.TensorProto.FLOAT:
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
                a = numpy_helper.to_array(t).ravel()
                t.ClearField("raw_data")
                t.float_data.extend(a.tolist())
        onnx.save(m, path)
    write_refs(folder, model, blocks, ref.normalize_u8(images))


def residual_modules(model, kind):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kind) and getattr(m, "use_res_connect", True)]


def make_resnet18(root):
    """The weights of tests/fixtures/models/resnet18 (width 4, 12 classes, 64 px) as ONNX."""
    src = os.path.join(ROOT, "tests", "fixtures", "models", "resnet18")
    meta = json.load(open(os.path.join(src, "meta.json")))
    model, _ = ref.build("resnet18", num_classes=meta["num_classes"], **meta.get("options", {}))
    state = {k: torch.from_numpy(np.array(v)) for k, v in mf.read_safetensors(os.path.join(src, "model.safetensors")).items()}
    model.load_state_dict(state, strict=True)
    folder = os.path.join(root, "resnet18")
    os.makedirs(folder, exist_ok=True)
    export(model, os.path.join(folder, "model.onnx"), meta["input_size"])
    mf.write_json(os.path.join(folder, "meta.json"), {"arch": "resnet18", "named": "models/resnet18",
                                                      "input_size": meta["input_size"]})
    print("resnet18         from", src)


def make_resnet20_real(root, data):
    """ResNet-20 with BatchNorm kept and every weight external, at its offset in the
    safetensors that convert_weights.py makes from the akamaster checkpoint."""
    th = os.path.join(data, "weights", "cifar10", "resnet20-12fca82f.th")
    if not os.path.exists(th):
        print("resnet20_real    skipped:", th, "not found")
        return
    folder = os.path.join(root, "resnet20_real")
    os.makedirs(folder, exist_ok=True)
    st = os.path.join(folder, "resnet20_cifar.safetensors")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert_weights.py"), th, st],
                   check=True, stdout=subprocess.DEVNULL)
    raw = open(st, "rb").read()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    model, _ = ref.build("resnet20_cifar")
    ref.load_akamaster_checkpoint(model, th)
    path = os.path.join(folder, "model.onnx")
    export(model, path, 32, keep_bn=True)
    m = onnx.load(path)
    for t in m.graph.initializer:
        if t.name not in header:
            continue  # exporter constants stay inline
        h = header[t.name]
        begin, end = h["data_offsets"]
        if h["dtype"] != "F32" or list(t.dims) != h["shape"]:
            raise SystemExit(f"{t.name}: {h} does not match the graph's {list(t.dims)}")
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", "resnet20_cifar.safetensors"), ("offset", str(8 + header_len + begin)),
                     ("length", str(end - begin))):
            e = t.external_data.add()
            e.key, e.value = k, v
    onnx.save(m, path)
    onnx.checker.check_model(path)  # external data resolves
    os.remove(st)
    mf.write_json(os.path.join(folder, "meta.json"), {"arch": "resnet20_cifar", "weights": os.path.basename(th),
                                                      "safetensors_bytes": len(raw), "input_size": 32})
    print("resnet20_real    external data in resnet20_cifar.safetensors,", len(raw), "bytes")


class Tiny(nn.Module):
    """VGG-like: no residual adds, so --blocks auto takes each stage's end."""

    def __init__(self, act=nn.ReLU):
        super().__init__()
        self.conv1, self.bn1, self.act1 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), act()
        self.conv2, self.act2 = nn.Conv2d(4, 8, 3, stride=2, padding=1), act()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.conv2(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class Misc(nn.Module):
    """The operators the layouts above leave out: Clip(0,6), a standalone Add with a
    LeakyRelu, HardSwish (opset 17: its own op), a k x k average pool with padding,
    an elementwise product, Concat, and MatMul + Add as the classifier."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.conv3 = nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.Conv2d(8, 8, 1)
        self.w = nn.Parameter(torch.randn(16, 6) * 0.25)
        self.b = nn.Parameter(torch.randn(6) * 0.1)
        self.taps = {}

    def forward(self, x):
        a = F.relu6(self.bn1(self.conv1(x)))
        s = F.leaky_relu(a + F.max_pool2d(a, 3, 1, 1), 0.2)
        c = F.hardswish(self.conv2(s))
        e = F.avg_pool2d(c, 3, 1, 1, count_include_pad=False) * torch.sigmoid(self.conv3(c))
        f = torch.cat([e, s], 1)
        self.taps = {"add": s, "concat": f}
        g = F.adaptive_avg_pool2d(F.max_pool2d(f, 2), 1).flatten(1)
        self.taps["features"] = g
        return g @ self.w + self.b


def make_misc(root):
    torch.manual_seed(7)
    model = Misc().eval()
    images, calib = inputs("misc", 16)
    mf.randomise_(model, torch.from_numpy(ref.normalize_u8(calib)), torch.Generator().manual_seed(7))
    folder = os.path.join(root, "misc")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, 16, 16), path, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    g = onnx.load(path).graph
    leaky = next(n.output[0] for n in g.node if n.op_type == "LeakyRelu")
    concat = next(n.output[0] for n in g.node if n.op_type == "Concat")
    x32 = ref.normalize_u8(images)
    with torch.no_grad():
        model.double()
        logits = model(torch.from_numpy(x32).double())
    norms = torch.stack([ref.feature_norm(model.taps[k]) for k in ("add", "concat")], dim=1)
    mf.write_npy(os.path.join(folder, "input.npy"), x32, "<f4")
    mf.write_npy(os.path.join(folder, "norms.npy"), norms.numpy(), "<f8")
    mf.write_npy(os.path.join(folder, "logits.npy"), logits.numpy(), "<f8")
    mf.write_npy(os.path.join(folder, "features.npy"), model.taps["features"].numpy(), "<f8")
    mf.write_json(os.path.join(folder, "meta.json"), {
        "input_size": 16, "blocks_arg": f"{leaky},{concat}", "blocks": ["add", "concat"],
        "block_shapes": [list(model.taps[k].shape[1:]) for k in ("add", "concat")], "torch": torch.__version__})
    print(f"misc             blocks  2  norms {norms.min():8.4g} .. {norms.max():8.4g}")


def make_tiny_and_bad(root):
    torch.manual_seed(1)
    model = Tiny()
    images, calib = inputs("tiny", 16)
    mf.randomise_(model.eval(), torch.from_numpy(ref.normalize_u8(calib)), torch.Generator().manual_seed(1))
    folder = os.path.join(root, "tiny")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    export(model, path, 16)
    m = onnx.load(path)
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
                    size_threshold=0)
    write_refs(folder, model, [("act1", model.act1), ("act2", model.act2)], ref.normalize_u8(images))

    bad = {}
    torch.manual_seed(2)
    tanh = Tiny(act=nn.Tanh)
    bad["bad_op"] = tanh
    for name, net in bad.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        export(net, os.path.join(root, name, "model.onnx"), 16)
    small = Tiny().eval()
    os.makedirs(os.path.join(root, "bad_size"), exist_ok=True)
    p = os.path.join(root, "bad_size", "model.onnx")
    export(small, p, 16)
    m = onnx.load(p)
    w = next(t for t in m.graph.initializer if len(t.dims) == 4)
    w.dims[0] += 1  # the shape promises one more output channel than raw_data holds
    onnx.save(m, p)
    os.makedirs(os.path.join(root, "bad_cycle"), exist_ok=True)
    p = os.path.join(root, "bad_cycle", "model.onnx")
    export(small, p, 16)
    m = onnx.load(p)
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    relus = [n for n in m.graph.node if n.op_type == "Relu"]
    convs[0].input[0] = relus[0].output[0]  # conv1 now reads its own activation
    onnx.save(m, p)
    os.makedirs(os.path.join(root, "bad_reshape"), exist_ok=True)
    p = os.path.join(root, "bad_reshape", "model.onnx")
    export(small, p, 16)
    m = onnx.load(p)
    m.graph.initializer.extend([numpy_helper.from_array(np.arange(6, dtype=np.float32), "six"),
                                numpy_helper.from_array(np.array([4], dtype=np.int64), "four")])
    m.graph.node.insert(0, onnx.helper.make_node("Reshape", ["six", "four"], ["six_as_four"], name="bad_reshape"))
    onnx.save(m, p)  # folded at load: 6 elements cannot become 4
    print("tiny, bad_op, bad_size, bad_cycle, bad_reshape")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "onnx"))
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    args = parser.parse_args()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)

    make_resnet18(args.out)
    make_resnet20_real(args.out, args.data)

    torch.manual_seed(3)  # the conv weights keep PyTorch's random init
    params = regnet.BlockParams.from_init_params(depth=6, w_0=8, w_a=8.0, w_m=2.0, group_width=4)
    model = regnet.RegNet(params, num_classes=10, stem_width=8)
    pytorch_case(args.out, "regnet_x_400mf", model, residual_modules(model, regnet.ResBottleneckBlock))

    torch.manual_seed(4)
    # reduced widths, and a small classifier: the default 1280-wide head would dominate the file
    setting, _ = tvm.mobilenetv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.1)
    model = tvm.mobilenetv3.MobileNetV3(setting, last_channel=32, num_classes=10)
    pytorch_case(args.out, "mobilenet_v3", model, residual_modules(model, tvm.mobilenetv3.InvertedResidual),
                 float_data=True)

    torch.manual_seed(5)
    setting, _ = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.1, depth_mult=0.5)
    model = efficientnet.EfficientNet(setting, dropout=0.2, num_classes=10, last_channel=32)
    pytorch_case(args.out, "efficientnet_b0", model, residual_modules(model, efficientnet.MBConv))

    torch.manual_seed(6)
    # DenseNet has no residual adds: the blocks are the maps entering each downsampling
    # (the stem's pool, the transitions' pools) and the head (norm5; FeatureNorm applies the ReLU)
    model = densenet.DenseNet(growth_rate=4, block_config=(6, 12, 24, 16), num_init_features=8, bn_size=2,
                              num_classes=10)
    f = model.features
    blocks = [("features.relu0", f.relu0)] + [(f"features.transition{i}.conv", getattr(f, f"transition{i}").conv)
                                              for i in (1, 2, 3)] + [("features.norm5", f.norm5)]
    pytorch_case(args.out, "densenet121", model, blocks)

    make_misc(args.out)
    make_tiny_and_bad(args.out)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"total {total / 1e6:.3f} MB in {args.out}")


if __name__ == "__main__":
    main()
