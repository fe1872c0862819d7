#!/usr/bin/env python3
"""CPU throughput of featurenorm next to PyTorch, ONNX Runtime and OpenVINO doing the same work.

Every measurement is one fresh process (`--worker SIDE`), pinned with taskset to
the same CPUs with the same thread count as every other side; the sides run in
interleaved rounds (side order rotated each round), and each side's median and
best images/s over the rounds are printed, so that a neighbour's load burst
hits all sides alike instead of one whole side.

  forward  uint8 images -> normalise -> forward -> FeatureNorm of every block + logits
           sides: featurenorm fp32, featurenorm bf16, PyTorch fp32 channels_last
           (eval, no_grad, forward hooks computing each block's FeatureNorm),
           PyTorch bf16 (torch.autocast("cpu", bfloat16), channels_last), ONNX
           Runtime, and OpenVINO fp32 and bf16 (its inference precision hint; bf16
           only where OpenVINO reports the CPU can), the last three on the network
           exported with every block's FeatureNorm as an extra graph output, from
           PyPI into build/bench/venv when missing
  score    ResNet-20: a folder of CIFAR-10 JPEGs end to end (decode, preprocess,
           forward, norms, scores): `featurenorm score` vs a PyTorch DataLoader
           (PIL, 2 workers) with the same preprocessing and hooks
  memory   peak RSS of `featurenorm bench` for ResNet-50, load + one batch of 64 at 224
  zoo      torchvision classifiers from ONNX (--zoo, default regnet_y_400mf; random
           weights and BatchNorm statistics, opset 13): `featurenorm bench --model
           --blocks auto` vs PyTorch fp32 channels_last with hooks on the same blocks
           (each block tensor's ONNX scope names its module)

GFLOP/s count a multiply-add as 2 FLOPs over the convolutions and linear layers.
Peak = cores x FMA units per core x lanes x 2 x clock, with lanes 16 when the CPU
has AVX-512 (8 with AVX2), 2 FMA units per core, and the clock read from
/proc/cpuinfo ("cpu MHz": the base or current clock; turbo may exceed it).

    /usr/bin/python3 scripts/bench_cpu.py [--threads 2] [--rounds 5] [--quick] [--r50-batch 16]
    /usr/bin/python3 scripts/bench_cpu.py --threads 1 --cpu-time    # on a loaded machine

--cpu-time rates each side per second of its process's CPU time rather than of
wall-clock time: with one thread (no thread waiting for a descheduled one) that
is close to what the side would take alone, while a wall-clock rate shrinks
with every neighbour.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.environ.get("FN_DATA", os.path.join(ROOT, "..", "shared", "data"))
sys.path.insert(0, HERE)
MAX_SECONDS = 30  # per timed worker, after its first batch


# ---- workers: one measurement each, printed as JSON -------------------------

def torch_model(arch, weights, bf16=False):
    import torch
    import reference_models as rm
    model, blocks = rm.build(arch)
    if weights and weights.endswith(".th"):
        rm.load_akamaster_checkpoint(model, weights)
    elif weights:
        model.load_state_dict(torch.load(weights))
    model.eval()
    norms = []
    for _, m in blocks:  # norms in fp32 whatever the compute precision
        m.register_forward_hook(lambda _m, _i, out: norms.append(rm.feature_norm(out.float())))
    return model.to(memory_format=torch.channels_last), norms


def scores(logits):
    import torch
    return logits.argmax(1), logits.softmax(1).amax(1), logits.amax(1), torch.logsumexp(logits, 1)


def timed(a, step):
    """images/s over a.iters batches after the warm-up, or fewer when a side is
    so slow (bf16 emulated without AVX512-BF16) that they would pass MAX_SECONDS;
    per second of this process's CPU time with --cpu-time."""
    for _ in range(a.warmup):
        step()
    clock = time.process_time if a.cpu_time else time.perf_counter
    t, c, done = time.perf_counter(), clock(), 0
    while done < a.iters and (done == 0 or time.perf_counter() - t < MAX_SECONDS):
        step()
        done += 1
    return a.batch * done / (clock() - c)



def worker_torch(a, bf16):
    import contextlib
    import torch
    import reference_models as rm
    torch.set_num_threads(a.threads)
    model, norms = torch_model(a.arch, a.torch_weights)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (a.batch, a.size, a.size, 3), dtype=torch.uint8, generator=g)
    mean = torch.tensor(rm.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(rm.IMAGENET_STD).view(1, 3, 1, 1)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step():
        x = ((images.permute(0, 3, 1, 2).float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
        with ctx:
            logits = model(x)
        scores(logits.float())
        torch.stack(norms, 1)
        norms.clear()
    with torch.no_grad():
        return timed(a, step)


def numpy_inputs(a):
    """For the ONNX peers: a function normalising one batch of random uint8
    images to NCHW float32, the work featurenorm's forward_u8 does inside."""
    import numpy as np
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (a.batch, a.size, a.size, 3), dtype=np.uint8)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    return lambda: np.ascontiguousarray((images.transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std)


def worker_ort(a):
    import onnxruntime as ort
    o = ort.SessionOptions()
    o.intra_op_num_threads = a.threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(a.onnx, o, providers=["CPUExecutionProvider"])
    inputs = numpy_inputs(a)

    def step():
        logits, norms = s.run(None, {"x": inputs()})
        logits.argmax(1), norms.shape
    return timed(a, step)


def worker_openvino(a, bf16):
    """OpenVINO on the same ONNX export, reshaped to the batch (static shapes, as
    featurenorm's primitives), one stream of a.threads threads."""
    import openvino as ov
    core = ov.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if bf16 and "BF16" not in caps:
        raise RuntimeError(f"OpenVINO has no bf16 on this CPU (its capabilities: {' '.join(caps)})")
    model = core.read_model(a.onnx)
    model.reshape({"x": [a.batch, 3, a.size, a.size]})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
                                                 "INFERENCE_NUM_THREADS": a.threads, "NUM_STREAMS": 1,
                                                 "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    inputs = numpy_inputs(a)

    def step():
        request.infer({"x": inputs()})
        request.get_output_tensor(0).data.argmax(1), request.get_output_tensor(1).data.shape
    return timed(a, step)


def worker_torch_score(a):
    import torch
    import torchvision.transforms as T
    from PIL import Image
    import reference_models as rm
    torch.set_num_threads(a.threads)
    model, norms = torch_model(a.arch, a.torch_weights)
    files = [l.strip() for l in open(a.listing) if l.strip()]

    class Folder(torch.utils.data.Dataset):
        tf = T.Compose([T.Resize((a.size, a.size)), T.ToTensor(),
                        T.Normalize(rm.IMAGENET_MEAN, rm.IMAGENET_STD)])

        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            with Image.open(files[i]) as im:
                return self.tf(im.convert("RGB"))
    loader = torch.utils.data.DataLoader(Folder(), batch_size=a.batch, num_workers=a.threads)
    t = time.perf_counter()
    with torch.no_grad():
        for x in loader:
            scores(model(x.contiguous(memory_format=torch.channels_last)))
            torch.stack(norms, 1)
            norms.clear()
    return len(files) / (time.perf_counter() - t)


def fn_run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1])
    return r.stdout


def worker(a):
    if a.worker == "fn_fp32" or a.worker == "fn_bf16":
        def bench(iters):
            return fn_run([a.featurenorm, "bench", "--arch", a.arch, "--weights", a.fn_weights, "--backend", "cpu",
                           "--threads", str(a.threads), "--batch", str(a.batch), "--iters", str(iters),
                           "--warmup", str(a.warmup), "--precision", a.worker[3:]])
        ms = bench(a.iters).split("(")[-1].split(" ms")  # "(W ms per batch, C ms of CPU time)"
        return a.batch * 1e3 / float(ms[1].split(", ")[-1] if a.cpu_time else ms[0])
    if a.worker == "fn_score":
        t = time.perf_counter()
        fn_run([a.featurenorm, "score", "--arch", a.arch, "--weights", a.fn_weights, "--backend", "cpu",
                "--threads", str(a.threads), "--batch", str(a.batch), "--data", a.listing, "--preset", "cifar",
                "--quiet", "--out", os.path.join(a.tmp, "scores.csv")])
        return sum(1 for l in open(a.listing) if l.strip()) / (time.perf_counter() - t)
    if a.worker == "torch_fp32":
        return worker_torch(a, False)
    if a.worker == "torch_bf16":
        return worker_torch(a, True)
    if a.worker == "ort":
        return worker_ort(a)
    if a.worker in ("ov_fp32", "ov_bf16"):
        return worker_openvino(a, a.worker == "ov_bf16")
    if a.worker == "torch_score":
        return worker_torch_score(a)
    if a.worker == "fn_zoo":
        ms = fn_run([a.featurenorm, "bench", "--model", zoo_files(a)["onnx"], "--blocks", "auto", "--backend", "cpu",
                     "--threads", str(a.threads), "--batch", str(a.batch), "--iters", str(a.iters),
                     "--warmup", str(a.warmup)]).split("(")[-1].split(" ms")
        return a.batch * 1e3 / float(ms[1].split(", ")[-1] if a.cpu_time else ms[0])
    if a.worker == "torch_zoo":
        return worker_torch_zoo(a)
    raise SystemExit(f"unknown worker {a.worker}")


# ---- preparation (in its own process too) -----------------------------------

def prepare(a):
    """Weights for featurenorm and PyTorch, the ONNX export, FLOPs per image."""
    import torch
    import make_fixtures
    import reference_models as rm
    torch.manual_seed(0)
    model, blocks = rm.build(a.arch)
    if a.th:
        rm.load_akamaster_checkpoint(model, a.th)
    model.eval()
    make_fixtures.write_safetensors(a.fn_weights, model.state_dict())
    torch.save(model.state_dict(), a.torch_weights)
    macs = [0]

    def count(m, i, o):
        if isinstance(m, torch.nn.Conv2d):
            macs[0] += o[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            macs[0] += m.in_features * m.out_features
    hooks = [m.register_forward_hook(count) for m in model.modules()]
    norms = []
    for _, b in blocks:
        hooks.append(b.register_forward_hook(lambda _m, _i, out: norms.append(rm.feature_norm(out))))

    class WithNorms(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            norms.clear()
            y = self.m(x)
            return y, torch.stack(norms, 1)
    with torch.no_grad():
        model(torch.zeros(1, 3, a.size, a.size))
    flops = 2 * macs[0]
    for h in hooks[:-len(blocks)]:
        h.remove()
    import warnings
    warnings.simplefilter("ignore")
    torch.onnx.export(WithNorms(), torch.zeros(1, 3, a.size, a.size), a.onnx, input_names=["x"],
                      output_names=["logits", "norms"], opset_version=13,
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}, "norms": {0: "n"}})
    return flops


def zoo_files(a):
    return {k: os.path.join(a.tmp, f"{a.arch}.{k}") for k in ("onnx", "pt", "blocks.json")}


def zoo_module(tensor, chw, shapes):
    """The module whose output is the ONNX tensor: its scope ("/a/b/c/Relu_output_0"
    is module a.b.c, or c when the scope holds full names); a module called twice
    ("relu_1": a block's shared ReLU, applied last) stands for its block, the parent.
    The output shape must be the block's C x H x W (shapes: first-call outputs)."""
    import re
    scope = tensor.split("/")[1:-1]
    tries = [".".join(scope), scope[-1] if scope else ""]
    if scope and re.search(r"_\d+$", scope[-1]):
        tries += [".".join(scope[:-1]), scope[-2] if len(scope) > 1 else ""]
    return next((m for m in tries if shapes.get(m) == chw), None)


def prepare_zoo(a):
    """torchvision's a.arch with random weights and BatchNorm statistics, its
    ONNX export, the modules of the blocks `--blocks auto` picks; FLOPs."""
    import torch
    import torchvision
    torch.manual_seed(0)
    model = getattr(torchvision.models, a.arch)()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()
    f = zoo_files(a)
    torch.save(model.state_dict(), f["pt"])
    x = torch.zeros(1, 3, a.size, a.size)
    import warnings
    warnings.simplefilter("ignore")
    torch.onnx.export(model, x, f["onnx"], input_names=["x"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    info = fn_run([a.featurenorm, "info", "--model", f["onnx"], "--blocks", "auto", "--backend", "cpu"])
    rows = [l.split() for l in info.splitlines()]  # with --blocks auto, info lists the chosen blocks
    blocks = [(r[1], tuple(int(v) for v in r[2::2][:3])) for r in rows if len(r) > 6 and r[0].isdigit()]
    names = dict(model.named_modules())
    shapes = {}

    def record(name):
        def hook(_m, _i, out):  # returns None: a hook's value would replace the output
            shapes.setdefault(name, tuple(out.shape[1:]) if hasattr(out, "shape") else None)
        return hook
    hooks = [m.register_forward_hook(record(n)) for n, m in names.items() if n]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    modules = [zoo_module(t, chw, shapes) for t, chw in blocks]
    missing = [t for (t, _), m in zip(blocks, modules) if m is None]
    if missing or not modules:
        raise RuntimeError(f"{a.arch}: no module for the blocks {missing or '(none chosen)'}")
    with open(f["blocks.json"], "w") as out:
        json.dump(modules, out)
    macs = [0]

    def count(m, i, o):
        if isinstance(m, torch.nn.Conv2d):
            macs[0] += o[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            macs[0] += m.in_features * m.out_features
    for m in model.modules():
        m.register_forward_hook(count)
    with torch.no_grad():
        model(x)
    return 2 * macs[0]


def worker_torch_zoo(a):
    import torch
    import torchvision
    import reference_models as rm
    torch.set_num_threads(a.threads)
    f = zoo_files(a)
    model = getattr(torchvision.models, a.arch)()
    model.load_state_dict(torch.load(f["pt"]))
    model.eval()
    names, norms = dict(model.named_modules()), []
    for m in json.load(open(f["blocks.json"])):
        names[m].register_forward_hook(lambda _m, _i, out: norms.append(rm.feature_norm(out)))
    model = model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (a.batch, a.size, a.size, 3), dtype=torch.uint8, generator=g)
    mean = torch.tensor(rm.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(rm.IMAGENET_STD).view(1, 3, 1, 1)

    def step():
        x = ((images.permute(0, 3, 1, 2).float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
        scores(model(x))
        torch.stack(norms, 1)
        norms.clear()
    with torch.no_grad():
        return timed(a, step)


# ---- the driver --------------------------------------------------------------

def cpu_peak(cores):
    flags, mhz, model = "", 0.0, "?"
    for line in open("/proc/cpuinfo"):
        k, _, v = line.partition(":")
        k = k.strip()
        if k == "flags" and not flags:
            flags = v
        elif k == "cpu MHz" and not mhz:
            mhz = float(v)
        elif k == "model name" and model == "?":
            model = v.strip()
    lanes = 16 if " avx512f" in flags else 8
    peak = cores * 2 * lanes * 2 * mhz / 1e3
    return model, lanes, mhz, peak, ("amx_bf16" in flags, "avx512_bf16" in flags)


PEERS = ("onnxruntime", "openvino")  # PyPI packages, imported under the same names


def peer_python(build):
    """A python with the PyPI peers: this one, else a venv under build/bench;
    returns it and the peers' versions."""
    check = "import " + ", ".join(PEERS) + "; print(' '.join(m.__version__ for m in (" + ", ".join(PEERS) + ")))"
    r = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    if r.returncode == 0:
        return sys.executable, [v.split("-")[0] for v in r.stdout.split()]
    venv = os.path.join(build, "bench", "venv")
    py = os.path.join(venv, "bin", "python3")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if subprocess.run([py, "-c", check], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", *PEERS, "numpy"], check=True)
    r = subprocess.run([py, "-c", check], capture_output=True, text=True, check=True)
    return py, [v.split("-")[0] for v in r.stdout.split()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpus", default=None, help="taskset CPU list (default: 0..threads-1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--featurenorm", default=os.path.join(ROOT, "build", "featurenorm"))
    ap.add_argument("--quick", action="store_true", help="fewer iterations and images")
    ap.add_argument("--force-bf16", action="store_true",
                    help="time PyTorch bf16 on ResNet-50 even where the CPU has no bf16 (slow)")
    ap.add_argument("--only", default="", help="comma list of: r20,r50,score,memory,zoo (default all but zoo)")
    ap.add_argument("--zoo", default="regnet_y_400mf", help="torchvision models for zoo (comma list)")
    ap.add_argument("--zoo-batch", type=int, default=16, help="the zoo's batch (default 16)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="images per second of CPU time (with --threads 1: robust to a loaded machine)")
    ap.add_argument("--r50-batch", type=int, default=16, help="ResNet-50's batch (default 16)")
    for k in ("worker", "arch", "fn_weights", "torch_weights", "onnx", "listing", "tmp", "th"):
        ap.add_argument("--" + k.replace("_", "-"), dest=k, default=None, help=argparse.SUPPRESS)
    for k in ("size", "batch", "iters", "warmup"):
        ap.add_argument("--" + k, type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker in ("prepare", "prepare_zoo"):
        try:
            print(json.dumps({"flops": (prepare if a.worker == "prepare" else prepare_zoo)(a)}))
        except Exception as e:
            print(json.dumps({"error": str(e)}))
        return
    if a.worker:
        try:
            print(json.dumps({"rate": worker(a)}))
        except Exception as e:  # a side that cannot run here (no bf16...) says why
            print(json.dumps({"error": str(e)}))
        return

    if not os.access(a.featurenorm, os.X_OK):
        sys.exit(f"bench_cpu.py: {a.featurenorm} not found: build first")
    build = os.path.dirname(os.path.abspath(a.featurenorm))
    tmp = os.path.join(build, "bench")
    os.makedirs(tmp, exist_ok=True)
    cpus = a.cpus or ",".join(str(i) for i in range(a.threads))
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), PYTHONWARNINGS="ignore")
    only = set(a.only.split(",")) if a.only else {"r20", "r50", "score", "memory"}
    peer_py, (ort_version, ov_version) = peer_python(build) if only & {"r20", "r50"} else (None, ("", ""))

    def spawn(py, args):
        cmd = ["taskset", "-c", cpus, py, os.path.abspath(__file__), "--threads", str(a.threads), *args,
               *(["--cpu-time"] if a.cpu_time else [])]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return {"error": (r.stderr.strip().splitlines() or ["no output"])[-1]}

    model, lanes, mhz, peak, (amx, avx512bf16) = cpu_peak(a.threads)
    print(f"CPU: {model}, {os.cpu_count()} online, {a.threads} threads per side pinned to CPUs {cpus}; "
          f"peak {peak:.0f} GFLOP/s = {a.threads} cores x 2 FMA units x {lanes} lanes x 2 x {mhz / 1e3:.2f} GHz "
          f"(cpuinfo clock); AMX {'yes' if amx else 'no'}, AVX512-BF16 {'yes' if avx512bf16 else 'no'}")
    if a.cpu_time:
        print(f"rates per second of CPU time, not of wall-clock time ({a.threads} thread(s))")
    print("load average at start: %.2f %.2f %.2f (1, 5, 15 min)" % os.getloadavg())
    th20 = os.path.join(DATA, "weights", "cifar10", "resnet20-12fca82f.th")
    q = a.quick
    cases = []
    if "r20" in only or "score" in only:
        cases.append(("resnet20_cifar", 32, 256, 3 if q else 10, th20 if os.path.exists(th20) else None))
    if "r50" in only or "memory" in only:
        cases.append(("resnet50", 224, a.r50_batch, 2 if q else 4, None))
    table = []
    for arch, size, batch, iters, th in cases:
        files = {k: os.path.join(tmp, f"{arch}.{k}") for k in ("safetensors", "pt", "onnx")}
        common = ["--arch", arch, "--size", str(size), "--fn-weights", files["safetensors"],
                  "--torch-weights", files["pt"], "--onnx", files["onnx"], "--tmp", tmp]
        prep = spawn(sys.executable, ["--worker", "prepare", *common] + (["--th", th] if th else []))
        if "error" in prep:
            sys.exit(f"bench_cpu.py: preparing {arch}: {prep['error']}")
        flops = prep["flops"]
        if (arch == "resnet20_cifar" and "r20" in only) or (arch == "resnet50" and "r50" in only):
            sides = [("featurenorm fp32", sys.executable, "fn_fp32"), ("featurenorm bf16", sys.executable, "fn_bf16"),
                     ("PyTorch fp32 channels_last", sys.executable, "torch_fp32"),
                     ("PyTorch bf16 autocast", sys.executable, "torch_bf16"),
                     (f"ONNX Runtime {ort_version} fp32", peer_py, "ort"),
                     (f"OpenVINO {ov_version} fp32", peer_py, "ov_fp32"),
                     (f"OpenVINO {ov_version} bf16", peer_py, "ov_bf16")]
            if arch == "resnet50" and not (amx or avx512bf16) and not a.force_bf16:
                # without bf16 hardware PyTorch emulates it: minutes per batch at 224, and
                # featurenorm bf16 is unavailable to compare with (ResNet-20 shows the rate)
                sides = [s for s in sides if s[2] != "torch_bf16"]
            run_args = [*common, "--batch", str(batch), "--iters", str(iters), "--warmup", "1",
                        "--featurenorm", a.featurenorm]
            rates = rounds(spawn, sides, run_args, a.rounds)
            table.append((f"{arch} @{size}, batch {batch}: forward + all norms", flops, rates))
        if arch == "resnet20_cifar" and "score" in only:
            folder = os.path.join(DATA, "cifar10-jpeg", "test")
            listing = os.path.join(tmp, "cifar10-test.txt")
            names = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                           if f.lower().endswith((".jpg", ".jpeg", ".png")))[:2000 if q else 10000]
            if names:
                with open(listing, "w") as f:
                    f.write("\n".join(names) + "\n")
                sides = [("featurenorm score fp32", sys.executable, "fn_score"),
                         ("PyTorch DataLoader fp32", sys.executable, "torch_score")]
                rates = rounds(spawn, sides, [*common, "--batch", str(batch), "--listing", listing,
                                              "--featurenorm", a.featurenorm], a.rounds)
                table.append((f"{arch}: score {len(names)} CIFAR-10 JPEGs end to end", flops, rates))
        if arch == "resnet50" and "memory" in only:
            r = subprocess.run(["/usr/bin/time", "-f", "%M", a.featurenorm, "bench", "--arch", arch, "--weights",
                                files["safetensors"], "--backend", "cpu", "--threads", str(a.threads),
                                "--batch", "64", "--iters", "1", "--warmup", "0"],
                               capture_output=True, text=True, env=env)
            kib = r.stderr.strip().splitlines()[-1] if r.returncode == 0 else "?"
            print(f"\nmemory: featurenorm bench resnet50 batch 64 @224 fp32: peak RSS "
                  f"{int(kib) / 1048576:.2f} GiB" if kib.isdigit() else f"\nmemory: failed: {r.stderr.strip()}")
    for name in (a.zoo.split(",") if "zoo" in only else []):
        common = ["--arch", name, "--size", "224", "--tmp", tmp, "--featurenorm", a.featurenorm]
        prep = spawn(sys.executable, ["--worker", "prepare_zoo", *common])
        if "error" in prep:
            print(f"zoo: {name}: {prep['error']}", file=sys.stderr)
            continue
        sides = [("featurenorm fp32 (ONNX, blocks auto)", sys.executable, "fn_zoo"),
                 ("PyTorch fp32 channels_last", sys.executable, "torch_zoo")]
        rates = rounds(spawn, sides, [*common, "--batch", str(a.zoo_batch), "--iters", "2" if q else "6",
                                      "--warmup", "2"], a.rounds)
        table.append((f"{name} @224, batch {a.zoo_batch}: forward + the auto blocks' norms", prep["flops"], rates))
    print("load average at the end: %.2f %.2f %.2f (1, 5, 15 min)" % os.getloadavg())
    for title, flops, rates in table:
        print(f"\n{title} ({flops / 1e9:.3f} GFLOP per image), {a.rounds} interleaved rounds")
        print("| side | median img/s | best img/s | median GFLOP/s | % of peak |")
        print("|---|---|---|---|---|")
        for name, rs in rates:
            if isinstance(rs, str):
                print(f"| {name} | n/a: {rs} | | | |")
                continue
            med, best = statistics.median(rs), max(rs)
            print(f"| {name} | {med:.1f} | {best:.1f} | {med * flops / 1e9:.1f} | {100 * med * flops / 1e9 / peak:.0f}% |")
        ok = {n: statistics.median(r) for n, r in rates if not isinstance(r, str)}
        first = rates[0][0]
        if first in ok:
            print("ratios of medians: " + ", ".join(f"{first} / {n} = {ok[first] / v:.2f}"
                                                     for n, v in ok.items() if n != first))
        if "featurenorm bf16" in ok:
            print("ratios of medians: " + ", ".join(f"featurenorm bf16 / {n} = {ok['featurenorm bf16'] / v:.2f}"
                                                     for n, v in ok.items() if "bf16" in n and n != "featurenorm bf16"))


def rounds(spawn, sides, args, n):
    """n rounds, each side once per round in its own process, order rotated."""
    rates = {name: [] for name, _, _ in sides}
    errors = {}
    for r in range(n):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for name, py, w in order:
            if name in errors:
                continue
            out = spawn(py, ["--worker", w, *args])
            if "error" in out:
                errors[name] = out["error"]
            else:
                rates[name].append(out["rate"])
            print(f"  round {r + 1} {name}: {out.get('rate', out.get('error'))}", file=sys.stderr, flush=True)
    return [(name, errors.get(name) or rates[name]) for name, _, _ in sides]


if __name__ == "__main__":
    main()
