#!/usr/bin/env python3
"""bench_gpu.py: featurenorm's CUDA backend next to PyTorch, same card, same work.

First the NUMBERS: ResNet-50 at 224 (random weights, BatchNorm calibrated)
on 32 random uint8 images through libfeaturenorm (the featurenorm package of
python/: Model.forward, every output) in fp32, tf32, fp16 and bf16, against PyTorch fp32 on the same
card (TF32 off) from the same bytes: FeatureNorm of every block, logits and
the scores msp, maxlogit and energy. Normwise relative error per output must
stay under fp32 1e-4, tf32 5e-3, fp16 1e-2, bf16 5e-2 (norms: per block);
a mismatch prints the worst error, and the script exits non-zero (after the
timings, so that one run shows both).

Then THROUGHPUT: each case runs `featurenorm bench` (uint8 images in, normalised on the device,
FeatureNorm of every block, MSP and energy back on the host) and the same work
in PyTorch eager: the uint8 batch copied in from the same kind of (pageable)
host memory, normalised, channels_last, forward
under no_grad in eval mode (autocast fp16, or fp32 with TF32 allowed in cuDNN
and cuBLAS, cudnn.benchmark on), FeatureNorm of every block through forward
hooks, softmax and logsumexp, results copied back. Prints images/s of both and
their ratio as a table, and writes bench_gpu.json into --out.

Weights: ResNet-50 gets random torchvision-initialised weights (BatchNorm
statistics calibrated on a few random batches, so activations stay in range),
written as safetensors for featurenorm; ResNet-20 uses the trained akamaster
weights from ../shared/data when they are there (converted with
scripts/convert_weights.py), else random ones. Both sides use the same weights.

    python3 scripts/bench_gpu.py --featurenorm build/featurenorm --out /tmp/bench
    python3 scripts/bench_gpu.py --featurenorm build/featurenorm --device cpu --iters 1
        (no GPU: small batches, fp32, a check that the script works)

Last, `featurenorm score --profile` end to end from JPEG files (512 random
256x256 JPEGs written with PIL), fp16, to show where a real pass spends its
time (decode, forward, host).

Needs torch and torchvision (and numpy); no network.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference_models  # noqa: E402  (same folder: the PyTorch layouts the engine loads)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET20_TH = "weights/cifar10/resnet20-12fca82f.th"

# (architecture, input size, batch, precision); CPU mode shrinks the batches.
CUDA_CASES = [
    ("resnet50", 224, 256, "fp32"),
    ("resnet50", 224, 256, "tf32"),
    ("resnet50", 224, 256, "fp16"),
    ("resnet50", 224, 256, "bf16"),
    ("resnet20_cifar", 32, 1024, "fp16"),
]
# normwise relative error allowed against PyTorch fp32 (TF32 off)
PARITY_TOL = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 1e-2, "bf16": 5e-2}
CPU_CASES = [
    ("resnet50", 224, 2, "fp32"),
    ("resnet20_cifar", 32, 16, "fp32"),
]


def log(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------------------
# safetensors, float32 only (what featurenorm reads)
# ---------------------------------------------------------------------------

def write_safetensors(path, state_dict):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu()
        if not t.is_floating_point():
            continue  # num_batches_tracked: not a parameter the engine needs
        raw = np.ascontiguousarray(t.float().numpy().astype("<f4")).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    header.pop("__metadata__", None)
    body, out = data[8 + size:], {}
    for name, h in header.items():
        if h["dtype"] != "F32":
            continue
        begin, end = h["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(body[begin:end], dtype="<f4").reshape(h["shape"]).copy())
    return out


# ---------------------------------------------------------------------------
# models and weights
# ---------------------------------------------------------------------------

def build(arch):
    if arch == "resnet50":
        return reference_models.resnet50()
    if arch == "resnet20_cifar":
        return reference_models.resnet20_cifar()
    raise ValueError(arch)


def calibrate_bn(model, size, device, batches=2, n=8):
    """Running statistics from random batches, so deep random nets stay finite."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.to(device).train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(n, 3, size, size, device=device))
    model.eval().cpu()


def weights_for(arch, size, device, out_dir, shared_data):
    """(safetensors path, state_dict, description), both sides the same."""
    path = os.path.join(out_dir, f"{arch}_bench.safetensors")
    if arch == "resnet20_cifar" and shared_data:
        th = os.path.join(shared_data, RESNET20_TH)
        if os.path.exists(th):
            if not os.path.exists(path):
                subprocess.run([sys.executable, os.path.join(HERE, "convert_weights.py"), th, path],
                               check=True, stdout=subprocess.DEVNULL, timeout=120)
            return path, read_safetensors(path), "trained (akamaster)"
    torch.manual_seed(0)
    model, _ = build(arch)
    calibrate_bn(model, size, device)
    state = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    write_safetensors(path, state)
    return path, state, "random"


# ---------------------------------------------------------------------------
# the two sides
# ---------------------------------------------------------------------------

def run_featurenorm(exe, arch, weights, batch, precision, device, iters, warmup, timeout):
    cmd = [exe, "bench", "--arch", arch, "--weights", weights, "--batch", str(batch),
           "--iters", str(iters), "--warmup", str(warmup),
           "--backend", "cuda" if device == "cuda" else "cpu",
           "--precision", precision if device == "cuda" else "fp32"]
    log("$ " + " ".join(cmd))
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"  featurenorm: timed out after {timeout} s")
        return None
    log("  " + r.stdout.strip().replace("\n", "\n  "))
    m = re.search(r"([0-9.]+) images/s", r.stdout)
    return float(m.group(1)) if r.returncode == 0 and m else None


def run_torch(arch, size, batch, precision, device, iters, warmup, state):
    model, blocks = build(arch)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(f"{arch}: weights do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    norms = []

    def tap(module, inputs, output):
        # FeatureNorm: spatial L2 norm after ReLU, float32 accumulation, mean over channels
        norms.append(torch.linalg.vector_norm(F.relu(output), ord=2, dim=(2, 3), dtype=torch.float32).mean(1))

    for _, module in blocks:
        module.register_forward_hook(tap)
    cuda = device == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    # pageable, as the bytes featurenorm bench hands to fn_model_forward_u8
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)

    def step():
        norms.clear()
        x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255).sub_(mean).div_(std)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(device_type=device, dtype=half or torch.bfloat16,
                                             enabled=half is not None):
            logits = model(x).float()
            table = torch.stack(norms, 1)
            msp = logits.softmax(1).amax(1)
            energy = logits.logsumexp(1)
        return table.cpu(), msp.cpu(), energy.cpu()  # .cpu() waits for the GPU

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    if cuda:
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# numbers: libfeaturenorm (the featurenorm package) against PyTorch fp32 on the same card
# ---------------------------------------------------------------------------

def library(exe):
    """The featurenorm package (python/) over the libfeaturenorm.so next to exe,
    the build the CLI comes from, unless FEATURENORM_LIBRARY names another."""
    so = os.path.join(os.path.dirname(os.path.abspath(exe)), "libfeaturenorm.so")
    if not os.path.exists(so) and "FEATURENORM_LIBRARY" not in os.environ:
        raise FileNotFoundError(f"libfeaturenorm.so not found next to {exe}")
    os.environ.setdefault("FEATURENORM_LIBRARY", so)
    sys.path.insert(0, os.path.join(HERE, "..", "python"))
    import featurenorm
    return featurenorm


def featurenorm_outputs(fn, arch, weights, precision, images, device):
    """norms, logits, scores {name: values} of one forward of the uint8 images."""
    model = fn.Model(arch, weights, backend=device, precision=precision, batch=images.shape[0],
                     input_size=images.shape[1], mean=IMAGENET_MEAN, std=IMAGENET_STD)
    log(f"  {precision}: {model.device}")
    out = model.forward(images)
    return out["norms"], out["logits"], {name: out[name] for name, _, _ in fn.scores() if name in out}


def torch_outputs(arch, state, images, device):
    model, blocks = build(arch)
    model.load_state_dict(state, strict=False)
    model = model.to(device).eval()
    norms = []
    hooks = [m.register_forward_hook(lambda mod, i, o: norms.append(
        torch.linalg.vector_norm(F.relu(o.float()), ord=2, dim=(2, 3)).mean(1))) for _, m in blocks]
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    with torch.no_grad():
        x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div(255).sub(mean).div(std)
        logits = model(x).float()
    for h in hooks:
        h.remove()
    table = torch.stack(norms, 1)
    scores = {"msp": logits.softmax(1).amax(1), "maxlogit": logits.amax(1), "energy": logits.logsumexp(1)}
    return table.cpu().numpy(), logits.cpu().numpy(), {k: v.cpu().numpy() for k, v in scores.items()}


def normwise(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / (np.linalg.norm(want) + 1e-30))


def check_numbers(exe, weights, device, n=32, arch="resnet50", size=224):
    """Every precision against PyTorch fp32; returns the list of failures."""
    fn = library(exe)
    path, state, _ = weights[arch]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    t_norms, t_logits, t_scores = torch_outputs(arch, state, images, device)
    failures = []
    log(f"\nnumbers: {arch} {size}, {n} random images, featurenorm vs PyTorch fp32 (TF32 off), normwise error")
    for precision in (["fp32", "tf32", "fp16", "bf16"] if device == "cuda" else ["fp32"]):
        tol = PARITY_TOL[precision]
        try:
            f_norms, f_logits, f_scores = featurenorm_outputs(fn, arch, path, precision, images, device)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{precision}: {e}")
            log(f"  {precision}: FAILED: {e}")
            continue
        errs = {"logits": normwise(f_logits, t_logits)}
        for b in range(t_norms.shape[1]):
            errs[f"norms[block {b}]"] = normwise(f_norms[:, b], t_norms[:, b])
        for k, v in t_scores.items():
            if k in f_scores:
                errs[k] = normwise(f_scores[k], v)
            else:
                errs[k] = float("inf")
        worst = max(errs, key=errs.get)
        agree = float((f_logits.argmax(1) == t_logits.argmax(1)).mean())
        ok = errs[worst] <= tol
        log(f"  {precision}: worst {worst} {errs[worst]:.2e} (tol {tol:.0e}); logits {errs['logits']:.2e}; "
            f"predictions agree {agree:.0%} {'ok' if ok else '<-- MISMATCH'}")
        if not ok:
            failures.append(f"{precision}: {worst} normwise error {errs[worst]:.3e} > {tol:.0e}")
    return failures


def score_end_to_end(exe, weights, out_dir, timeout):
    """`featurenorm score --profile` on 512 JPEGs; returns images/s or None."""
    from PIL import Image
    folder = os.path.join(out_dir, "jpegs")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(512):
        p = os.path.join(folder, f"{i:04d}.jpg")
        if not os.path.exists(p):
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(p, quality=90)
    cmd = [exe, "score", "--arch", "resnet50", "--weights", weights["resnet50"][0], "--backend", "cuda",
           "--precision", "fp16", "--batch", "128", "--data", folder, "--out", os.path.join(out_dir, "score.csv"),
           "--profile", "--quiet"]
    log("\n$ " + " ".join(cmd))
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"  timed out after {timeout} s")
        return None
    log("  " + r.stdout.strip().replace("\n", "\n  "))
    m = re.search(r"\(([0-9.]+) img/s\)", r.stdout)
    return float(m.group(1)) if r.returncode == 0 and m else None


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--featurenorm", required=True, help="the featurenorm executable (built with CUDA)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--iters", type=int, default=None, help="timed batches (default 20 on cuda, 1 on cpu)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed batches first (default 3 / 0)")
    ap.add_argument("--out", default=".", help="folder for bench_gpu.json")
    ap.add_argument("--weights-dir", default=None, help="folder for the generated weights (default: --out)")
    ap.add_argument("--shared-data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--only", default="", help="comma-separated architectures to run (default: all)")
    ap.add_argument("--timeout", type=int, default=150, help="seconds per featurenorm run")
    ap.add_argument("--no-numbers", action="store_true", help="skip the comparison with PyTorch's numbers")
    ap.add_argument("--no-score", action="store_true", help="skip `featurenorm score` from JPEGs")
    a = ap.parse_args()
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("bench_gpu.py: torch sees no CUDA device (use --device cpu for a dry run)")
    iters = a.iters if a.iters is not None else (10 if cuda else 1)
    warmup = a.warmup if a.warmup is not None else (2 if cuda else 0)
    os.makedirs(a.out, exist_ok=True)
    weights_dir = a.weights_dir or a.out
    os.makedirs(weights_dir, exist_ok=True)
    where = torch.cuda.get_device_name(0) if cuda else "CPU"
    log(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version() if cuda else '-'}, device {where}")

    cases = CUDA_CASES if cuda else CPU_CASES
    if a.only:
        keep = set(a.only.split(","))
        cases = [c for c in cases if c[0] in keep]
    weights, rows, failures = {}, [], []
    if not a.no_numbers:
        weights["resnet50"] = weights_for("resnet50", 224, a.device, weights_dir, a.shared_data)
        try:
            failures = check_numbers(a.featurenorm, weights, a.device)
        except Exception as e:  # noqa: BLE001
            failures = [f"the comparison itself failed: {type(e).__name__}: {e}"]
            log("  " + failures[0])
        if cuda:
            torch.cuda.empty_cache()
    for arch, size, batch, precision in cases:
        if arch not in weights:
            weights[arch] = weights_for(arch, size, a.device, weights_dir, a.shared_data)
            log(f"{arch}: {weights[arch][2]} weights in {weights[arch][0]}")
        path, state, kind = weights[arch]
        log(f"\n== {arch} {size}x{size} batch {batch} {precision} ({kind} weights)")
        fn = run_featurenorm(a.featurenorm, arch, path, batch, precision, a.device, iters, warmup, a.timeout)
        try:
            pt = run_torch(arch, size, batch, precision, a.device, iters, warmup, state)
            log(f"  PyTorch: {pt:.1f} images/s")
        except Exception as e:  # report and go on: one failed case should not hide the rest
            log(f"  PyTorch failed: {type(e).__name__}: {e}")
            pt = None
        if cuda:
            torch.cuda.empty_cache()
        rows.append({"arch": arch, "size": size, "batch": batch, "precision": precision, "weights": kind,
                     "featurenorm": fn, "pytorch": pt, "ratio": fn / pt if fn and pt else None})

    log(f"\nimages/s on {where} (FeatureNorm of every block + MSP/energy; uint8 in, results to host)")
    log(f"| {'model':<15} | {'input':>7} | {'batch':>5} | {'prec.':<5} | {'featurenorm':>11} | {'PyTorch':>9} | {'ratio':>5} |")
    log(f"|{'-' * 17}|{'-' * 9}|{'-' * 7}|{'-' * 7}|{'-' * 13}|{'-' * 11}|{'-' * 7}|")
    fmt = lambda v, f: format(v, f) if v is not None else "failed"  # noqa: E731
    for r in rows:
        log(f"| {r['arch']:<15} | {r['size']:>3}x{r['size']:<3} | {r['batch']:>5} | {r['precision']:<5} | "
            f"{fmt(r['featurenorm'], '11.1f'):>11} | {fmt(r['pytorch'], '9.1f'):>9} | {fmt(r['ratio'], '5.2f'):>5} |")
    e2e = None
    if cuda and not a.no_score:
        if "resnet50" not in weights:
            weights["resnet50"] = weights_for("resnet50", 224, a.device, weights_dir, a.shared_data)
        e2e = score_end_to_end(a.featurenorm, weights, a.out, a.timeout)
        log(f"score end to end (512 JPEGs, resnet50 fp16, batch 128): {fmt(e2e, '.1f')} images/s")
    with open(os.path.join(a.out, "bench_gpu.json"), "w") as f:
        json.dump({"device": where, "torch": torch.__version__, "iters": iters, "rows": rows,
                   "numbers_failures": failures, "score_images_per_s": e2e}, f, indent=1)
    if failures:
        log("\n!!!! NUMBERS DIFFER FROM PYTORCH'S:")
        for f_ in failures:
            log("!!!!   " + f_)
        return 2
    return 0 if all(r["featurenorm"] and r["pytorch"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
