#!/usr/bin/env python3
"""Write the reference fixtures the C engine's tests compare against.

    /usr/bin/python3 scripts/make_fixtures.py            # tests/fixtures/models/<case>/
    /usr/bin/python3 scripts/make_fixtures.py --shared   # also tests/fixtures/real/<arch>/

Per synthetic case (random weights, small widths so the files stay small):
model.safetensors (the float32 state_dict), input_u8.npy (N,S,S,3 RGB),
input.npy (N,3,S,S float32, normalised), and float64 oracle outputs computed
with the model cast to float64: norms.npy (N,B FeatureNorm per block),
logits.npy, features.npy (input of the last Linear) and react_logits.npy (the
last Linear on features clipped at meta's react_clip), plus meta.json.

meta.json's "torch_bf16" is PyTorch's own bf16 error on the case (autocast and
the model cast to bf16), row-scaled as the C tests measure it, against the
float64 oracle: test_bf16 bounds featurenorm's bf16 error by it. --bf16-only
measures it again on the fixtures as they are (weights and inputs read back, no
tensor rewritten) and updates only that field.

--shared runs the real akamaster ResNet-20/56 checkpoints of ../shared/data on
its 100 lossless CIFAR-10 PNGs and writes only outputs, never weights or images.
"""

import argparse
import copy
import glob
import hashlib
import json
import os
import platform
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REACT_PERCENTILE = 60
MAX_FILE_BYTES = 1_500_000

# (case, arch, builder options, num_classes, input size). Widths are chosen so
# every file stays under 1.5 MB; class counts vary so nothing can assume 10.
CASES = [
    ("resnet20_cifar", "resnet20_cifar", {}, 10, 32),
    ("resnet32_cifar", "resnet32_cifar", {"width": 8}, 10, 32),
    ("resnet44_cifar", "resnet44_cifar", {"width": 8}, 10, 32),
    ("resnet56_cifar", "resnet56_cifar", {"width": 8}, 10, 32),
    ("resnet18", "resnet18", {"width": 4}, 12, 64),
    ("resnet34", "resnet34", {"width": 4}, 16, 64),
    ("resnet50", "resnet50", {"width": 4}, 20, 64),
    ("resnet18_cifar", "resnet18_cifar", {"width": 4}, 10, 32),
    ("resnet18_cifar_pad2", "resnet18_cifar", {"width": 4, "stem_padding": 2}, 10, 32),
    # Widen 0.5 (widths 16 -> 8 -> 16 -> 32) keeps a projection shortcut in
    # block1.0 as in the real WRN-28-10 (16 -> 160); widen 1 would drop it
    # and weigh 1.49 MB.
    ("wrn28_10", "wrn28_10", {"widen_factor": 0.5}, 10, 32),
    ("vgg11_cifar", "vgg11_cifar", {"width": 4}, 10, 32),
    ("vgg16", "vgg16", {"width": 4, "hidden": 16}, 10, 64),
    ("vgg16_bn", "vgg16_bn", {"width": 4, "hidden": 16}, 14, 64),
    ("mobilenet_v2", "mobilenet_v2", {"width_mult": 0.25}, 12, 64),
    ("mobilenet_v3_large", "mobilenet_v3_large", {"width_mult": 0.25}, 16, 64),
]

REAL_ARCHS = ("resnet20_cifar", "resnet56_cifar")


# ---------------------------------------------------------------------------
# File formats.
# ---------------------------------------------------------------------------

def write_safetensors(path, state_dict):
    """safetensors: u64 LE header size, JSON header padded with spaces to a
    multiple of 8, then the raw little-endian tensors sorted by name."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu()
        if t.dtype == torch.int64:
            dtype, array = "I64", t.numpy().astype("<i8")
        elif t.dtype == torch.float32:
            dtype, array = "F32", t.numpy().astype("<f4")
        else:
            raise TypeError(f"{name}: unexpected dtype {t.dtype}")
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """Inverse of write_safetensors, used to check what was written."""
    dtypes = {"F32": "<f4", "I64": "<i8"}
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = data[8 + size:]
    header.pop("__metadata__")
    tensors = {}
    for name, h in header.items():
        begin, end = h["data_offsets"]
        tensors[name] = np.frombuffer(body[begin:end], dtype=dtypes[h["dtype"]]).reshape(h["shape"])
    return tensors


def write_npy(path, array, dtype):
    """NumPy format 1.0, C order, little-endian."""
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(array, dtype=dtype), version=(1, 0))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------
# Synthetic inputs and random weights.
# ---------------------------------------------------------------------------

def synthetic_images(rng, n, size):
    """uint8 (n, size, size, 3): gradients, low-frequency waves, flat shapes
    and pixel noise, so feature maps look more like photos than white noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(n):
        img = np.empty((size, size, 3))
        for c in range(3):
            gx, gy = rng.normal(0, 0.4, size=2)
            img[..., c] = rng.uniform(0.3, 0.7) + gx * (xx - 0.5) + gy * (yy - 0.5)
            for _ in range(3):
                fx, fy = rng.uniform(-4, 4, size=2)
                img[..., c] += rng.uniform(0.03, 0.15) * np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 2 * np.pi))
        for _ in range(2):  # a rectangle and a disc with sharp edges
            colour = rng.uniform(0, 1, size=3)
            cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
            if rng.random() < 0.5:
                mask = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r * rng.uniform(0.4, 1.0))
            else:
                mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
            img[mask] = 0.4 * img[mask] + 0.6 * colour
        img += rng.normal(0, 0.04, img.shape)
        images.append(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))  # clipping saturates a few pixels
    return np.stack(images)


@torch.no_grad()
def randomise_(model, calib_x, gen):
    """Make every parameter and BatchNorm buffer non-trivial, keeping activations O(1).

    Default inits leave BN at the identity (weight 1, bias 0, mean 0, var 1),
    which would hide a wrong BN fold, and biases at zero. Each BN gets weight
    U(0.5, 1.5) and bias N(0, 0.1); its running statistics are the batch
    statistics of its actual input on a calibration batch (layer by layer in
    forward order, the earlier layers already final), perturbed by mean +=
    N(0, 0.1)*std and var *= U(0.5, 1.5). Calibrating keeps deep nets
    (including the pre-activation WRN, whose BN inputs are residual sums) from
    exploding or vanishing. Linear weights become N(0, 1/fan_in) so logits are
    O(1) (torchvision's VGG init, N(0, 0.01), makes them ~1e-4); conv and
    linear biases become N(0, 0.1).
    """
    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.copy_(normal(m.weight.shape, m.in_features ** -0.5))
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.copy_(normal(m.bias.shape, 0.1))

    order = []
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    handles = [bn.register_forward_pre_hook(lambda m, _inp: order.append(m)) for bn in bns]
    model(calib_x)
    for h in handles:
        h.remove()
    if len(order) != len(bns) or len(set(map(id, order))) != len(bns):
        raise RuntimeError("every BatchNorm must run exactly once per forward")

    for bn in order:
        c = bn.num_features
        bn.weight.copy_(uniform(c, 0.5, 1.5))
        bn.bias.copy_(normal(c, 0.1))
        seen = {}
        handle = bn.register_forward_pre_hook(lambda _m, inp: seen.setdefault("x", inp[0]))
        model(calib_x)
        handle.remove()
        x = seen["x"]
        mean = x.mean(dim=(0, 2, 3))
        # Floor the variance so a channel that happens to be constant on the
        # calibration batch is not amplified a thousandfold.
        var = x.var(dim=(0, 2, 3), unbiased=False).clamp(min=0.01 * float(x.var()) + 1e-6)
        bn.running_mean.copy_(mean + normal(c, 0.1) * var.sqrt())
        bn.running_var.copy_(var * uniform(c, 0.5, 1.5))
        bn.num_batches_tracked.fill_(int(torch.randint(1, 100000, (), generator=gen)))


def bn_eps(model):
    """The BatchNorm epsilon shared by all BN layers (None without BN)."""
    eps = {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    if len(eps) > 1:
        raise RuntimeError(f"mixed BatchNorm eps {eps}")
    return eps.pop() if eps else None


# ---------------------------------------------------------------------------
# Oracle outputs.
# ---------------------------------------------------------------------------

def oracle(model, blocks, x32):
    """Run the model in float64 on a float32 input; returns numpy arrays."""
    model.double()
    logits, features, outputs = ref.forward_taps(model, blocks, torch.from_numpy(x32).double())
    norms = torch.stack([ref.feature_norm(z) for z in outputs], dim=1)
    shapes = [list(z.shape[1:]) for z in outputs]
    return logits.numpy(), features.numpy(), norms.numpy(), shapes


def row_scaled_error(got, want):
    """max |got - want| / (|want| + max |want| of the row), as tests/fixture_cases.h."""
    scale = np.abs(want).max(axis=1, keepdims=True)
    return float((np.abs(got - want) / (np.abs(want) + scale + 1e-30)).max())


def cpu_name():
    """The CPU's model name and its widest bf16-relevant ISA (PyTorch's bf16
    kernels, hence its error, differ between AVX2 and AVX-512/AMX)."""
    with open("/proc/cpuinfo") as f:
        info = dict(line.split(":", 1) for line in f if ":" in line and line.split(":")[0].strip() in ("model name", "flags"))
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("flags", "").split())
    isa = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"),
                                        ("avx2", "AVX2")) if flag in flags), "no AVX2")
    return f"{info.get('model name', platform.processor())} ({isa})"


def blocks_in(copy_of, model, blocks):
    """model's blocks as the same-named modules of copy_of (a deep copy)."""
    path = {id(m): name for name, m in model.named_modules()}
    modules = dict(copy_of.named_modules())
    return [(b, modules[path[id(m)]]) for b, m in blocks]


@torch.no_grad()
def torch_bf16_errors(model, blocks, x32, norms, logits):
    """PyTorch's bf16 error on a case: autocast (convolutions and linears in
    bf16, the rest float32) and the whole model cast to bf16; norms are taken
    in float32 from the bf16 block outputs, as featurenorm takes them."""
    def run(m, x):
        out, _, taps = ref.forward_taps(m, blocks_in(m, model, blocks), x)
        got = torch.stack([ref.feature_norm(z.float()) for z in taps], dim=1)
        return {"norms": row_scaled_error(got.numpy(), norms), "logits": row_scaled_error(out.float().numpy(), logits)}

    x = torch.from_numpy(x32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = run(copy.deepcopy(model), x)
    pure = run(copy.deepcopy(model).to(torch.bfloat16), x.to(torch.bfloat16))
    return {"autocast": autocast, "pure": pure, "cpu": cpu_name()}


def update_bf16_errors(out_root, case, arch, options, num_classes):
    """--bf16-only: the case's torch_bf16 from its files as they are."""
    folder = os.path.join(out_root, case)
    model, blocks = ref.build(arch, num_classes=num_classes, **options)
    state = {k: torch.from_numpy(v.copy()) for k, v in read_safetensors(os.path.join(folder, "model.safetensors")).items()}
    model.load_state_dict(state, strict=True)
    x32 = np.load(os.path.join(folder, "input.npy"))
    with open(os.path.join(folder, "meta.json")) as f:
        meta = json.load(f)
    meta["torch_bf16"] = torch_bf16_errors(model.eval(), blocks, x32, np.load(os.path.join(folder, "norms.npy")),
                                           np.load(os.path.join(folder, "logits.npy")))
    write_json(os.path.join(folder, "meta.json"), meta)
    print_bf16(case, meta["torch_bf16"])


def print_bf16(case, e):
    print(f"{case:22s} torch bf16 error: autocast norms {e['autocast']['norms']:.1e} logits {e['autocast']['logits']:.1e}"
          f", pure norms {e['pure']['norms']:.1e} logits {e['pure']['logits']:.1e}")


def make_case(out_root, case, arch, options, num_classes, size):
    seed = zlib.crc32(case.encode())
    torch.manual_seed(seed)
    model, blocks = ref.build(arch, num_classes=num_classes, **options)
    rng = np.random.default_rng(seed)
    n = 4 if size <= 32 else 2
    images = synthetic_images(rng, n, size)
    calib = torch.from_numpy(ref.normalize_u8(synthetic_images(rng, 8, size)))
    randomise_(model, calib, torch.Generator().manual_seed(seed))

    folder = os.path.join(out_root, case)
    os.makedirs(folder, exist_ok=True)
    weights_path = os.path.join(folder, "model.safetensors")
    state = model.state_dict()
    write_safetensors(weights_path, state)
    back = read_safetensors(weights_path)
    if set(back) != set(state) or any(not np.array_equal(back[k], state[k].numpy()) for k in state):
        raise RuntimeError(f"{case}: safetensors round trip failed")

    x32 = ref.normalize_u8(images)
    float_model = copy.deepcopy(model)
    logits, features, norms, shapes = oracle(model, blocks, x32)
    react_clip = float(np.percentile(features, REACT_PERCENTILE))
    head = ref.last_linear(model)
    with torch.no_grad():
        react_logits = F.linear(torch.from_numpy(features).clamp(max=react_clip), head.weight, head.bias).numpy()

    write_npy(os.path.join(folder, "input_u8.npy"), images, "|u1")
    write_npy(os.path.join(folder, "input.npy"), x32, "<f4")
    write_npy(os.path.join(folder, "norms.npy"), norms, "<f8")
    write_npy(os.path.join(folder, "logits.npy"), logits, "<f8")
    write_npy(os.path.join(folder, "features.npy"), features, "<f8")
    write_npy(os.path.join(folder, "react_logits.npy"), react_logits, "<f8")
    meta = {
        "arch": arch,
        "input_size": size,
        "mean": list(ref.IMAGENET_MEAN),
        "std": list(ref.IMAGENET_STD),
        "num_classes": num_classes,
        "feature_dim": int(features.shape[1]),
        "blocks": [name for name, _ in blocks],
        "block_shapes": shapes,
        "react_clip": react_clip,
        "react_percentile": REACT_PERCENTILE,
        "bn_eps": bn_eps(model),
    }
    if options:
        meta["options"] = options
    meta["torch"] = torch.__version__
    meta["torch_bf16"] = torch_bf16_errors(float_model, blocks_in(float_model, model, blocks), x32, norms, logits)
    write_json(os.path.join(folder, "meta.json"), meta)
    print_bf16(case, meta["torch_bf16"])
    print(f"{case:22s} blocks {len(blocks):2d}  norms {norms.min():9.4g} .. {norms.max():9.4g}"
          f"  |logits| <= {np.abs(logits).max():8.4g}")


def make_real(out_root, data_dir):
    png_dir = os.path.join(data_dir, "cifar10-lossless", "png")
    images, labels, names = ref.load_labelled_pngs(png_dir)
    x32 = ref.normalize_u8(images)
    for arch in REAL_ARCHS:
        depth = arch.split("_")[0]
        (path,) = glob.glob(os.path.join(data_dir, "weights", "cifar10", f"{depth}-*.th"))
        with open(path, "rb") as f:
            sha256 = hashlib.sha256(f.read()).hexdigest()
        model, blocks = ref.build(arch)
        ref.load_akamaster_checkpoint(model, path)
        logits, _, norms, shapes = oracle(model, blocks, x32)
        accuracy = float(np.mean(logits.argmax(axis=1) == labels))

        folder = os.path.join(out_root, arch)
        os.makedirs(folder, exist_ok=True)
        write_npy(os.path.join(folder, "norms.npy"), norms, "<f8")
        write_npy(os.path.join(folder, "logits.npy"), logits, "<f8")
        write_npy(os.path.join(folder, "labels.npy"), labels, "<i8")
        write_json(os.path.join(folder, "meta.json"), {
            "arch": arch,
            "weights": os.path.basename(path),
            "weights_sha256": sha256,
            "images": "cifar10-lossless/png",
            "files": names,
            "input_size": 32,
            "mean": list(ref.IMAGENET_MEAN),
            "std": list(ref.IMAGENET_STD),
            "num_classes": int(logits.shape[1]),
            "blocks": [name for name, _ in blocks],
            "block_shapes": shapes,
            "accuracy": accuracy,
            "torch": torch.__version__,
        })
        print(f"real {arch}: {os.path.basename(path)} accuracy {accuracy:.2%} on {len(names)} PNGs")


def report_sizes(root):
    total, too_big = 0, []
    for case in sorted(os.listdir(root)):
        folder = os.path.join(root, case)
        sizes = {f: os.path.getsize(os.path.join(folder, f)) for f in sorted(os.listdir(folder))}
        total += sum(sizes.values())
        too_big += [f"{case}/{f}" for f, s in sizes.items() if s > MAX_FILE_BYTES]
        print(f"  {case:22s} {sum(sizes.values()) / 1e6:6.3f} MB  (weights {sizes.get('model.safetensors', 0) / 1e6:.3f})")
    print(f"  total {total / 1e6:.3f} MB")
    if too_big:
        raise SystemExit(f"files over {MAX_FILE_BYTES} bytes: {too_big}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"), help="fixtures root")
    parser.add_argument("--bf16-only", action="store_true",
                        help="only re-measure PyTorch's bf16 error on the existing cases (meta.json's torch_bf16)")
    parser.add_argument("--shared", action="store_true", help="also write real-weight fixtures from --data")
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"), help="shared data folder")
    args = parser.parse_args()

    models_root = os.path.join(args.out, "models")
    if args.bf16_only:
        for case, arch, options, num_classes, _ in CASES:
            update_bf16_errors(models_root, case, arch, options, num_classes)
        return
    for case, arch, options, num_classes, size in CASES:
        make_case(models_root, case, arch, options, num_classes, size)
    print("sizes of", models_root)
    report_sizes(models_root)

    if args.shared:
        if os.path.isdir(args.data):
            make_real(os.path.join(args.out, "real"), args.data)
        else:
            print(f"--shared: {args.data} not found, real-weight fixtures skipped")


if __name__ == "__main__":
    main()
