#!/usr/bin/env python3
"""CPU throughput of featurenorm next to PyTorch doing the same work, in one run.

For each network it prints images/s of
  forward  uint8 images -> normalise -> forward -> FeatureNorm of every block + scores
           (featurenorm bench, vs PyTorch eval/no_grad with forward hooks)
  score    a JPEG folder end to end: decode, resize, forward, norms, scores
           (featurenorm score, vs a PyTorch DataLoader + PIL + torchvision transforms)
  select   the same with a Jigsaw copy of every image in the batch
           (featurenorm select, vs the same PyTorch pipeline doing 2 forwards per image)
and the ratio featurenorm / PyTorch (> 1: featurenorm is faster). Both sides use
the same number of threads (compute and decode) and the same batch size.

Needs Debian's python3-torch, python3-torchvision and python3-pil:
    /usr/bin/python3 scripts/bench_cpu.py [--threads N] [--quick]
ResNet-20 uses the real weights from ../shared/data when present (random ones
otherwise); ResNet-50 random ones. Figures vary from run to run on a shared
machine: compare the ratio, which comes from the same run.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixtures  # noqa: E402  (safetensors writer)
import reference_models as rm  # noqa: E402

ROOT = os.path.dirname(HERE)
DATA = os.environ.get("FN_DATA", os.path.join(ROOT, "..", "shared", "data"))


def run(cmd):
    """Runs a featurenorm command; returns (seconds, stdout)."""
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, out.stdout


def torch_model(arch, weights):
    model, blocks = rm.build(arch)
    if weights and weights.endswith(".th"):
        rm.load_akamaster_checkpoint(model, weights)
    model.eval()
    norms = []
    for _, m in blocks:
        m.register_forward_hook(lambda _m, _i, out: norms.append(rm.feature_norm(out)))
    return model, norms


def scores(logits):
    """What featurenorm computes from the logits: pred, MSP, MaxLogit, Energy."""
    return (logits.argmax(1), logits.softmax(1).amax(1), logits.amax(1),
            torch.logsumexp(logits, 1))


def torch_forward_rate(model, norms, size, batch, iters):
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    mean = torch.tensor(rm.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(rm.IMAGENET_STD).view(1, 3, 1, 1)
    model = model.to(memory_format=torch.channels_last)  # PyTorch's faster CPU layout
    with torch.no_grad():
        def step():
            x = (images.permute(0, 3, 1, 2).float() / 255 - mean) / std
            x = x.contiguous(memory_format=torch.channels_last)
            scores(model(x))
            torch.stack(norms, 1)
            norms.clear()
        step()
        t = time.perf_counter()
        for _ in range(iters):
            step()
        return batch * iters / (time.perf_counter() - t)


class Folder(torch.utils.data.Dataset):
    def __init__(self, files, transform):
        self.files, self.transform = files, transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with Image.open(self.files[i]) as im:
            return self.transform(im.convert("RGB"))


def jigsaw(x, gen):
    """The Jigsaw copy of a batch of [0,1] images (3x3 tiles, zero border)."""
    n, _, s, _ = x.shape
    t = s // 3
    out = torch.zeros_like(x)
    for i in range(n):
        perm = torch.randperm(9, generator=gen)
        for src, dst in enumerate(perm.tolist()):
            sy, sx, dy, dx = src // 3 * t, src % 3 * t, dst // 3 * t, dst % 3 * t
            out[i, :, dy:dy + t, dx:dx + t] = x[i, :, sy:sy + t, sx:sx + t]
    return out


def torch_pipeline_rate(model, norms, files, size, preset, batch, threads, with_jigsaw):
    import torchvision.transforms as T
    resize = [T.Resize((size, size))] if preset == "cifar" else [T.Resize(size * 256 // 224), T.CenterCrop(size)]
    loader = torch.utils.data.DataLoader(
        Folder(files, T.Compose(resize + [T.ToTensor()])), batch_size=batch,
        num_workers=threads, persistent_workers=False)
    mean = torch.tensor(rm.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(rm.IMAGENET_STD).view(1, 3, 1, 1)
    gen = torch.Generator().manual_seed(0)
    model = model.to(memory_format=torch.channels_last)
    t = time.perf_counter()
    with torch.no_grad():
        for x in loader:
            if with_jigsaw:
                x = torch.cat([x, jigsaw(x, gen)])
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            scores(model(x))
            torch.stack(norms, 1)
            norms.clear()
    return len(files) / (time.perf_counter() - t)


def image_files(folder, limit):
    files = []
    for dirpath, _, names in os.walk(folder):
        files += [os.path.join(dirpath, n) for n in names if n.lower().endswith((".jpg", ".jpeg", ".png"))]
    files.sort()
    return files[:limit]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--featurenorm", default=os.path.join(ROOT, "build", "featurenorm"))
    ap.add_argument("--quick", action="store_true", help="fewer images and iterations")
    args = ap.parse_args()
    if not os.access(args.featurenorm, os.X_OK):
        sys.exit(f"bench_cpu.py: {args.featurenorm} not found: build first (scripts/run_tests.sh)")
    torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp(prefix="fn-bench-")
    q = args.quick
    th20 = os.path.join(DATA, "weights", "cifar10", "resnet20-12fca82f.th")
    cases = [  # arch, size, preset, batch, forward iters, images folder, image count
        ("resnet20_cifar", 32, "cifar", 256, 2 if q else 8,
         os.path.join(DATA, "cifar10-jpeg", "test"), 1000 if q else 5000),
        ("resnet50", 224, "imagenet", 16, 1 if q else 3,
         os.path.join(DATA, "imagenet-sample"), 32 if q else 128),
    ]
    rows = []
    for arch, size, preset, batch, iters, folder, count in cases:
        weights = th20 if arch == "resnet20_cifar" and os.path.exists(th20) else None
        model, norms = torch_model(arch, weights)
        st = os.path.join(tmp, arch + ".safetensors")
        make_fixtures.write_safetensors(st, model.state_dict())
        common = ["--arch", arch, "--weights", st, "--backend", "cpu", "--threads", str(args.threads),
                  "--batch", str(batch)]
        _, out = run([args.featurenorm, "bench", *common, "--iters", str(iters), "--warmup", "1"])
        ours = float(out.split(": ")[-1].split(" images/s")[0])
        theirs = torch_forward_rate(model, norms, size, batch, iters)
        rows.append((arch, size, "forward", batch, ours, theirs))
        files = image_files(folder, count) if os.path.isdir(folder) else []
        if not files:
            print(f"(no images at {folder}: {arch} score/select skipped)")
            continue
        listing = os.path.join(tmp, arch + ".txt")
        with open(listing, "w") as f:
            f.write("\n".join(files) + "\n")
        data = ["--data", listing, "--preset", preset, "--quiet"]
        t, _ = run([args.featurenorm, "score", *common, *data, "--out", os.path.join(tmp, "s.csv")])
        theirs = torch_pipeline_rate(model, norms, files, size, preset, batch, args.threads, False)
        rows.append((arch, size, "score", batch, len(files) / t, theirs))
        # select's --batch counts forward rows: batch/2 images and their Jigsaw copies
        t, _ = run([args.featurenorm, "select", *common, *data, "--out", os.path.join(tmp, "sel.json")])
        theirs = torch_pipeline_rate(model, norms, files, size, preset, batch // 2, args.threads, True)
        rows.append((arch, size, "select", batch, len(files) / t, theirs))
    print(f"\nCPU: {os.cpu_count()} cores, {args.threads} threads each side; torch {torch.__version__}\n")
    print("| network | input | task | batch | featurenorm img/s | PyTorch img/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for arch, size, task, batch, ours, theirs in rows:
        print(f"| {arch} | {size}x{size} | {task} | {batch} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
