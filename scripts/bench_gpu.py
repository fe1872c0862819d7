#!/usr/bin/env python3
"""bench_gpu.py: featurenorm's CUDA backend next to PyTorch, same card, same work.

Steps (--steps, in the order given to gpu_check.sh):

NUMBERS: ResNet-50 at 224 (random weights, BatchNorm calibrated) on one batch
of 64 uint8 images (score's batch size) that differ strongly from one another,
through libfeaturenorm (the featurenorm package of python/: Model.forward, the
default algorithm search), against PyTorch fp32 on the same card (TF32 off)
from the same bytes: FeatureNorm of every block, logits, msp/maxlogit/energy.
The error is the worst image's, after removing the batch mean, relative to
the images' spread (per_image_error), so a shared offset cancels and a wrong
image counts fully. Each precision's bound is its rounding floor or 3x
PyTorch's own error in that precision, whichever is larger (tolerance());
the check also proves that bound rejects two swapped images, the batch mean
and each image's neighbour (mixups()), and fails if it would not.

THROUGHPUT: each case runs `featurenorm bench` (uint8 images in, normalised on the device,
FeatureNorm of every block, MSP and energy back on the host) and the same work
in PyTorch eager: the uint8 batch copied in from the same kind of (pageable)
host memory, normalised, channels_last, forward
under no_grad in eval mode (autocast fp16, or fp32 with TF32 allowed in cuDNN
and cuBLAS, cudnn.benchmark on), FeatureNorm of every block through forward
hooks, softmax and logsumexp, results copied back; images/s of both and their ratio.

SCORE: `featurenorm score --profile` end to end from JPEG files (512 random
256x256 JPEGs written with PIL into --work), fp16, to show where a real pass
spends its time (decode, forward, host).

Results go to --results (JSON) and the Markdown table beside it, rewritten
whole after every measurement and added to by later steps, so gpu_check.sh
gets one JSON and one table however many steps ran and wherever it was cut.

Weights: ResNet-50 gets random torchvision-initialised weights (BatchNorm
statistics calibrated on a few random batches, so activations stay in range),
written as safetensors for featurenorm; ResNet-20 uses the trained akamaster
weights from ../shared/data when they are there (converted with
scripts/convert_weights.py), else random ones. Both sides use the same weights.

    python3 scripts/bench_gpu.py --featurenorm build/featurenorm --results /tmp/bench/gpu.json
    python3 scripts/bench_gpu.py --featurenorm build/featurenorm --device cpu --results /tmp/b/cpu.json
        (no GPU: one batch of 8, fp32 on the CPU backend, small throughput
        cases, 16 JPEGs: the same code path, as CI and the rehearsal run it)

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


def torch_outputs(arch, state, images, device, precision):
    """PyTorch's norms, logits and scores of the uint8 images: fp32 with TF32
    off, or the precision as PyTorch runs it (autocast fp16/bf16, TF32 on)."""
    model, blocks = build(arch)
    model.load_state_dict(state, strict=False)
    model = model.to(device).eval()
    norms = []
    hooks = [m.register_forward_hook(lambda mod, i, o: norms.append(
        torch.linalg.vector_norm(F.relu(o.float()), ord=2, dim=(2, 3)).mean(1))) for _, m in blocks]
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    with torch.no_grad(), torch.autocast(device_type=device, dtype=half or torch.bfloat16, enabled=half is not None):
        x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div(255).sub(mean).div(std)
        logits = model(x).float()
    for h in hooks:
        h.remove()
    table = torch.stack(norms, 1)
    scores = {"msp": logits.softmax(1).amax(1), "maxlogit": logits.amax(1), "energy": logits.logsumexp(1)}
    return table.cpu().numpy(), logits.cpu().numpy(), {k: v.cpu().numpy() for k, v in scores.items()}


def varied_images(n, size, rng):
    """uint8 images that differ strongly from one another (so that a mix-up of
    images shows): a smooth random pattern per image, its own brightness and
    contrast, noise on some, flat colour on one."""
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        cells = rng.normal(0, 1, (8, 8, 3))
        smooth = np.kron(cells, np.ones((size // 8 + 1, size // 8 + 1, 1)))[:size, :size]
        x = 128 + rng.uniform(-80, 80) + rng.uniform(10, 90) * smooth
        x += rng.uniform(0, 60) * rng.normal(0, 1, x.shape) * (i % 3 == 0)
        out[i] = np.clip(x, 0, 255).astype(np.uint8)
    out[-1] = rng.integers(0, 256, 3, dtype=np.uint8)  # one flat image
    return out


def per_image_error(got, want):
    """Worst image's error after removing the batch mean, relative to the RMS
    spread of the images: max_i ||(g_i - mean g) - (w_i - mean w)|| / rms_i ||w_i - mean w||.
    A shared offset (the batch mean, a common bias) cancels; what is left is
    what tells images apart, so a swapped, shifted or averaged image counts fully."""
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    g, w = g.reshape(len(g), -1), w.reshape(len(w), -1)
    cw = w - w.mean(0)
    diff = np.linalg.norm((g - g.mean(0)) - cw, axis=1)
    spread = np.sqrt(np.mean(np.sum(cw * cw, axis=1))) + 1e-30
    return float(diff.max() / spread)


def output_errors(got, want):
    """{output: per-image error}: logits, each block's norms, each score."""
    (g_norms, g_logits, g_scores), (w_norms, w_logits, w_scores) = got, want
    errs = {"logits": per_image_error(g_logits, w_logits)}
    for b in range(w_norms.shape[1]):
        errs[f"norms[block {b}]"] = per_image_error(g_norms[:, b], w_norms[:, b])
    for k, v in w_scores.items():
        errs[k] = per_image_error(g_scores[k], v) if k in g_scores else float("inf")
    return errs


def mixups(ref):
    """The reference with the mistakes the check must reject: two images
    swapped, every image replaced by the batch mean, each by its neighbour."""
    def apply(f):
        norms, logits, scores = ref
        return f(norms), f(logits), {k: f(v) for k, v in scores.items()}
    swap = np.arange(len(ref[1]))
    swap[[0, 1]] = swap[[1, 0]]
    return {"two images swapped": apply(lambda x: x[swap]),
            "batch mean": apply(lambda x: np.broadcast_to(x.mean(0), x.shape)),
            "neighbour": apply(lambda x: np.roll(x, 1, axis=0))}


def tolerance(precision, torch_err):
    """The bound for one precision: the rounding floor (unit roundoff u of the
    precision's significand x sqrt(54 layers) x 4, rounded up: fp32 accumulation
    order only, 1e-3; TF32/FP16 u = 2^-11, 2e-2; BF16 u = 2^-8, 1e-1), or 3x
    PyTorch's own error in that precision on the same images and card where
    that is larger (its autocast/TF32 against its fp32), whichever is larger."""
    floor = {"fp32": 1e-3, "tf32": 2e-2, "fp16": 2e-2, "bf16": 1e-1}[precision]
    return max(floor, 3 * torch_err)


def check_numbers(exe, weights, device, precisions, results, n, arch="resnet50", size=224):
    """Each precision against PyTorch fp32, per image; returns the failures."""
    fn = library(exe)
    path, state, _ = weights[arch]
    images = varied_images(n, size, np.random.default_rng(0))
    ref = torch_outputs(arch, state, images, device, "fp32")
    log(f"\nnumbers: {arch} {size}, {n} varied images (batch {n}), featurenorm vs PyTorch fp32 (TF32 off), "
        "worst image's error after removing the batch mean")
    failures = []
    for precision in precisions:
        torch_err = 0.0 if precision == "fp32" else max(
            output_errors(torch_outputs(arch, state, images, device, precision), ref).values())
        tol = tolerance(precision, torch_err)
        rejected = {name: max(output_errors(bad, ref).values()) for name, bad in mixups(ref).items()}
        try:
            errs = output_errors(featurenorm_outputs(fn, arch, path, precision, images, device), ref)
        except Exception as e:  # noqa: BLE001
            errs = {"the forward pass": float("inf")}
            log(f"  {precision}: FAILED: {e}")
        worst = max(errs, key=errs.get)
        blind = [name for name, e in rejected.items() if e <= tol]
        ok = errs[worst] <= tol and not blind
        log(f"  {precision}: worst {worst} {errs[worst]:.2e} (tol {tol:.1e}; PyTorch's own {torch_err:.1e}); "
            f"logits {errs['logits'] if 'logits' in errs else float('nan'):.2e}; mix-ups score "
            + ", ".join(f"{k} {v:.2f}" for k, v in rejected.items()) + (" ok" if ok else " <-- MISMATCH"))
        if errs[worst] > tol:
            failures.append(f"{precision}: {worst} error {errs[worst]:.3e} > {tol:.1e}")
        if blind:
            failures.append(f"{precision}: the bound {tol:.1e} would pass {', '.join(blind)}")
        results["numbers"][precision] = {"worst": worst, "error": errs[worst], "tolerance": tol,
                                         "torch_error": torch_err, "mixups": rejected, "ok": ok}
        save(results)
    return failures


def score_end_to_end(exe, weights, out_dir, timeout, device="cuda"):
    """`featurenorm score --profile` on 512 JPEGs; returns images/s or None."""
    from PIL import Image
    folder = os.path.join(out_dir, "jpegs")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    count = 512 if device == "cuda" else 16
    for i in range(count):
        p = os.path.join(folder, f"{i:04d}.jpg")
        if not os.path.exists(p):
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(p, quality=90)
    cmd = [exe, "score", "--arch", "resnet50", "--weights", weights["resnet50"][0], "--backend", device,
           "--precision", "fp16" if device == "cuda" else "fp32", "--batch", "128" if device == "cuda" else "8", "--data", folder, "--out", os.path.join(out_dir, "score.csv"),
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

def save(results):
    """Rewrite the JSON and its Markdown table whole (write, then rename), so a
    run cut off at any point leaves everything measured up to then."""
    path = results["path"]
    for name, text in ((path, json.dumps({k: v for k, v in results.items() if k != "path"}, indent=1)),
                       (os.path.splitext(path)[0] + ".md", markdown(results))):
        with open(name + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(name + ".tmp", name)


def markdown(results):
    fmt = lambda v, f: format(v, f) if v is not None else "failed"  # noqa: E731
    lines = [f"# GPU check: {results['device']}, torch {results['torch']}", "",
             "## Numbers: featurenorm vs PyTorch fp32, worst image after removing the batch mean", "",
             "| precision | worst output | error | bound | PyTorch's own | ok |", "|---|---|---|---|---|---|"]
    for prec, r in results["numbers"].items():
        lines.append(f"| {prec} | {r['worst']} | {r['error']:.2e} | {r['tolerance']:.1e} | "
                     f"{r['torch_error']:.1e} | {'yes' if r['ok'] else '**no**'} |")
    lines += ["", "## images/s (FeatureNorm of every block + MSP/energy; uint8 in, results to host)", "",
              "| model | input | batch | precision | featurenorm | PyTorch | ratio |", "|---|---|---|---|---|---|---|"]
    for r in results["throughput"]:
        lines.append(f"| {r['arch']} | {r['size']}x{r['size']} | {r['batch']} | {r['precision']} | "
                     f"{fmt(r['featurenorm'], '.1f')} | {fmt(r['pytorch'], '.1f')} | {fmt(r['ratio'], '.2f')} |")
    if results.get("score_images_per_s") is not None or "score" in results["steps_run"]:
        lines += ["", f"score end to end (random JPEGs, resnet50, fp16 batch 128 on a card): "
                      f"{fmt(results.get('score_images_per_s'), '.1f')} images/s"]
    if results["failures"]:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in results["failures"]]
    return "\n".join(lines)


def throughput(a, cases, weights, results):
    for arch, size, batch, precision in cases:
        if arch not in weights:
            weights[arch] = weights_for(arch, size, a.device, a.work, a.shared_data)
            log(f"{arch}: {weights[arch][2]} weights in {weights[arch][0]}")
        path, state, kind = weights[arch]
        log(f"\n== {arch} {size}x{size} batch {batch} {precision} ({kind} weights)")
        fn = run_featurenorm(a.featurenorm, arch, path, batch, precision, a.device, a.iters, a.warmup, a.timeout)
        try:
            pt = run_torch(arch, size, batch, precision, a.device, a.iters, a.warmup, state)
            log(f"  PyTorch: {pt:.1f} images/s")
        except Exception as e:  # report and go on: one failed case should not hide the rest
            log(f"  PyTorch failed: {type(e).__name__}: {e}")
            pt = None
        if a.device == "cuda":
            torch.cuda.empty_cache()
        results["throughput"].append({"arch": arch, "size": size, "batch": batch, "precision": precision,
                                      "weights": kind, "featurenorm": fn, "pytorch": pt,
                                      "ratio": fn / pt if fn and pt else None})
        save(results)
        ratio = results["throughput"][-1]["ratio"]
        log(f"  featurenorm/PyTorch: {ratio:.2f}" if ratio else "  featurenorm/PyTorch: failed")


def load_results(path, where):
    """The results file of earlier steps of the same check, to add to."""
    results = {"device": where, "torch": torch.__version__, "numbers": {}, "throughput": [], "failures": [],
               "steps_run": []}
    if os.path.exists(path):
        with open(path) as f:
            results.update(json.load(f))
    results["path"] = path
    return results


def arguments():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--featurenorm", required=True, help="the featurenorm executable (built with CUDA)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--steps", default="numbers,throughput,score",
                    help="comma-separated: numbers (vs PyTorch), throughput, score (from JPEGs)")
    ap.add_argument("--precisions", default=None, help="comma-separated (default fp32,tf32,fp16,bf16; cpu: fp32)")
    ap.add_argument("--only", default="", help="comma-separated architectures for throughput (default: all)")
    ap.add_argument("--images", type=int, default=None,
                    help="images in the numbers check, one batch (default 64, score's batch; cpu: 8)")
    ap.add_argument("--iters", type=int, default=None, help="timed batches (default 10 on cuda, 1 on cpu)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed batches first (default 2 / 0)")
    ap.add_argument("--results", default="bench_gpu.json",
                    help="JSON of results, added to and rewritten after every measurement, with its .md table")
    ap.add_argument("--work", default=None, help="folder for weights and JPEGs (default: beside --results)")
    ap.add_argument("--shared-data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--timeout", type=int, default=150, help="seconds per featurenorm run")
    a = ap.parse_args()
    cuda = a.device == "cuda"
    a.iters = a.iters if a.iters is not None else (10 if cuda else 1)
    a.warmup = a.warmup if a.warmup is not None else (2 if cuda else 0)
    a.images = a.images or (64 if cuda else 8)
    a.precisions = (a.precisions or ("fp32,tf32,fp16,bf16" if cuda else "fp32")).split(",")
    a.steps = a.steps.split(",")
    a.work = a.work or os.path.dirname(os.path.abspath(a.results))
    return a


def main():
    a = arguments()
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("bench_gpu.py: torch sees no CUDA device (use --device cpu for a dry run)")
    os.makedirs(a.work, exist_ok=True)
    where = torch.cuda.get_device_name(0) if cuda else "CPU"
    log(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version() if cuda else '-'}, device {where}")
    results = load_results(a.results, where)
    results["steps_run"] += a.steps
    weights, failures = {}, []
    if "numbers" in a.steps:
        weights["resnet50"] = weights_for("resnet50", 224, a.device, a.work, a.shared_data)
        try:
            failures = check_numbers(a.featurenorm, weights, a.device, a.precisions, results, a.images)
        except Exception as e:  # noqa: BLE001
            failures = [f"the comparison itself failed: {type(e).__name__}: {e}"]
            log("  " + failures[0])
        if cuda:
            torch.cuda.empty_cache()
    if "throughput" in a.steps:
        keep = set(a.only.split(",")) if a.only else None
        cases = [c for c in (CUDA_CASES if cuda else CPU_CASES)
                 if (keep is None or c[0] in keep) and (not cuda or c[3] in a.precisions)]
        throughput(a, cases, weights, results)
    if "score" in a.steps:
        if "resnet50" not in weights:
            weights["resnet50"] = weights_for("resnet50", 224, a.device, a.work, a.shared_data)
        results["score_images_per_s"] = score_end_to_end(a.featurenorm, weights, a.work, a.timeout,
                                                         a.device)
    results["failures"] += failures
    save(results)
    log("\n" + markdown(results))
    if failures:
        log("\n!!!! NUMBERS DIFFER FROM PYTORCH'S:")
        for f_ in failures:
            log("!!!!   " + f_)
        return 2
    rows = [r for r in results["throughput"] if r["precision"] in a.precisions] if "throughput" in a.steps else []
    return 0 if all(r["featurenorm"] and r["pytorch"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
