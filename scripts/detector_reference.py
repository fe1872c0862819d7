#!/usr/bin/env python3
"""Reference values of featurenorm's OOD scores, from independent implementations.

    python scripts/detector_reference.py fixtures [--out tests/fixtures/detect]
    python scripts/detector_reference.py real --data ../shared/data --out FILE.csv [--limit N]

The scores come from pytorch-ood (MSP, MaxLogit, Energy, ReAct), SciPy (Entropy) and
NumPy / torch autograd where pytorch-ood has no such detector (GEN: the GEN paper's
code; GradNorm: the gradient of the last layer by autograd, as Huang et al. define it,
not the closed form featurenorm uses). pytorch-ood scores are outlier scores (higher =
OOD); featurenorm's are higher = ID, so they are negated here. "With the selected
norm" rows recompute the logits W f' + b from f' = FN(block) * f / ||f|| by a matrix
product (featurenorm rescales the logits instead).

Needs pytorch-ood (PyPI) beside Debian's torch: a venv made with
`python3 -m venv --system-site-packages VENV; VENV/bin/pip install --no-deps
pytorch-ood==0.2.3 torchmetrics==1.2.1 lightning-utilities==0.10.0`.

fixtures: for every network of tests/fixtures/models, <case>.csv with one column per
score (and `block`, the block used as the selected one) from the fixture's float64
features, logits, norms and ReAct clip: tests/test_detect.c compares the table's scores
with these columns and fails on a missing one. For the detectors fitted on ID training
features (Mahalanobis from scikit-learn's EmpiricalCovariance, fDBD from its authors'
formula) a few cases also get a synthetic training set, <case>.fit_train.npy and
<case>.fit_labels.npy, that the test gathers into a fit file of its own.

real: the real CIFAR-10 ResNet-20 (weights/cifar10/resnet20-*.th) on the lossless PNGs,
its scores with block layer3.0 and ReAct clip 1.0 as a CSV keyed by file name, for
tests/cli_detect.sh (written into the build folder: nothing of the shared data is kept).
"""
import argparse
import csv
import glob
import json
import os
import sys
import zlib

import numpy as np
import torch
import scipy.special
import scipy.stats
from pytorch_ood.detector import EnergyBased, MaxLogit, MaxSoftmax, ReAct

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as ref  # noqa: E402
from make_fixtures import read_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN_GAMMA, GEN_M = 0.1, 10  # featurenorm's defaults, the GEN paper's


def gen(logits, gamma=GEN_GAMMA, m=GEN_M):
    """GEN (Liu et al., CVPR 2023), the authors' formula on the M largest probabilities,
    higher = ID. 1 - p is the sum of the other probabilities: the authors' `1 - probs`
    keeps no digits when p is within 1e-12 of 1 (a sure CIFAR prediction)."""
    p = torch.softmax(logits, dim=1).numpy()
    order = np.argsort(-p, axis=1, kind="stable")[:, :m]
    top = np.take_along_axis(p, order, axis=1)
    rest = np.array([[np.delete(row, j).sum() for j in idx] for row, idx in zip(p, order)])
    return -np.sum(top ** gamma * rest ** gamma, axis=1)


def gradnorm(features, weight, bias):
    """GradNorm (Huang et al., NeurIPS 2021): L1 norm of d KL(u || softmax) / dW, by autograd."""
    out = []
    for f in features:
        w = weight.clone().requires_grad_(True)
        logits = f @ w.T + bias
        k = logits.shape[0]
        loss = torch.sum(-torch.full_like(logits, 1.0 / k) * torch.log_softmax(logits, dim=0))
        loss.backward()
        out.append(w.grad.abs().sum().item())
    return np.array(out)


FIT_CASES = ("resnet20_cifar", "vgg11_cifar", "resnet50")  # D = 64, 32, 128


def fit_train_set(rng, n_classes, dim):
    """Synthetic ID training features (post-ReLU like) and labels, every class present."""
    n = 3 * dim + 10 * n_classes
    labels = np.r_[np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)]
    centres = rng.uniform(0.0, 2.0, (n_classes, dim))
    x = np.maximum(centres[labels] + rng.normal(0.0, 0.7, (n, dim)), 0.0) + 1e-3
    return x.astype(np.float32), labels.astype(np.int64)


def fit_scores(features, logits, weight, train, labels):
    """Mahalanobis (sklearn's EmpiricalCovariance of the class-centred features, as
    OpenOOD's MDS) and fDBD (the authors' code), from float64 copies."""
    from sklearn.covariance import EmpiricalCovariance

    train = train.astype(np.float64)
    k = weight.shape[0]
    means = np.stack([train[labels == c].mean(axis=0) for c in range(k)])
    cov = EmpiricalCovariance(assume_centered=False).fit(train - means[labels]).covariance_
    # featurenorm's ridge, 1e-6 of the mean variance (a dead channel must not make it singular)
    precision = np.linalg.inv(cov + 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    d = features[:, None, :] - means[None, :, :]
    maha = np.max(-0.5 * np.einsum("nka,ab,nkb->nk", d, precision, d), axis=1)
    w = weight.numpy()
    denominator = np.linalg.norm(w[:, None, :] - w[None, :, :], axis=2)
    np.fill_diagonal(denominator, 1.0)
    c = logits.argmax(axis=1)
    fdbd = (np.abs(logits - logits[np.arange(len(c)), c][:, None]) / denominator[c]).sum(axis=1) / \
        np.linalg.norm(features - train.mean(axis=0), axis=1)
    return {"mahalanobis": maha, "fdbd": fdbd}


def logit_scores(logits):
    """Every plain logit score of featurenorm's table, higher = ID."""
    return {
        "msp": -MaxSoftmax.score(logits).numpy(),
        "maxlogit": -MaxLogit.score(logits).numpy(),
        "energy": -EnergyBased.score(logits).numpy(),
        # scipy, not pytorch-ood: its Entropy clips p at 1e-7, off by 1e-3 for sure predictions
        "entropy": -scipy.stats.entropy(scipy.special.softmax(logits.numpy(), axis=1), axis=1),
        "gen": gen(logits),
    }


def all_scores(features, norms, block, weight, bias, clip):
    """features, weight, bias: float64 tensors; norms: (N, B). Column -> values."""
    head = torch.nn.Linear(weight.shape[1], weight.shape[0]).double()
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
        logits = head(features)
        fn = torch.from_numpy(norms[:, block]).double()[:, None]

        def with_norm(f):  # direction of f, the selected block's FeatureNorm as magnitude
            n = f.norm(dim=1, keepdim=True)
            return torch.where(n > 0, fn * f / n.clamp(min=1e-300), torch.zeros_like(f))

        f_norm = with_norm(features)
        logits_fn = head(f_norm)
        react = ReAct(torch.nn.Identity(), head, threshold=clip, detector=EnergyBased.score)
        clipped = features.clamp(max=clip)
    cols = {"block": np.full(len(features), block, dtype=float), "fn_selected": norms[:, block]}
    cols.update(logit_scores(logits))
    cols["react_energy"] = -react.predict(features).detach().numpy()
    cols["gradnorm"] = gradnorm(features, weight, bias)
    cols.update({k + "_fn": v for k, v in logit_scores(logits_fn).items()})
    with torch.no_grad():
        cols["react_energy_fn"] = -EnergyBased.score(head(with_norm(clipped))).numpy()
    cols["gradnorm_fn"] = gradnorm(f_norm, weight, bias)
    return cols


def write_csv(path, cols, names=None):
    keys = list(cols)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow((["path"] if names is not None else []) + keys)
        for i in range(len(cols[keys[0]])):
            w.writerow(([names[i]] if names is not None else []) + [repr(float(cols[k][i])) for k in keys])


def fixtures(out):
    os.makedirs(out, exist_ok=True)
    for case_dir in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "models", "*"))):
        meta = json.load(open(os.path.join(case_dir, "meta.json")))
        load = lambda name: np.load(os.path.join(case_dir, name)).astype(np.float64)  # noqa: E731
        features, norms = load("features.npy"), load("norms.npy")
        tensors = read_safetensors(os.path.join(case_dir, "model.safetensors"))
        fc = [k[: -len(".weight")] for k in tensors if k.endswith(".weight") and tensors[k].ndim == 2][-1]
        weight = torch.from_numpy(tensors[fc + ".weight"].astype(np.float64))
        bias = torch.from_numpy(tensors[fc + ".bias"].astype(np.float64))
        block = norms.shape[1] // 2  # a block in the middle: its norm differs from ||f||
        cols = all_scores(torch.from_numpy(features), norms, block, weight, bias, meta["react_clip"])
        name = os.path.basename(case_dir)
        if name in FIT_CASES:  # the training set the C test fits on, stored beside
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            train, labels = fit_train_set(rng, weight.shape[0], weight.shape[1])
            np.save(os.path.join(out, name + ".fit_train.npy"), train)
            np.save(os.path.join(out, name + ".fit_labels.npy"), labels)
            cols.update(fit_scores(features, load("logits.npy"), weight, train, labels))
        write_csv(os.path.join(out, name + ".csv"), cols)
        print(f"{name}: {len(features)} rows, {len(cols) - 1} scores, fc {fc}")


def real(data, out, limit):
    weights = glob.glob(os.path.join(data, "weights", "cifar10", "resnet20-*.th"))
    png = os.path.join(data, "cifar10-lossless", "png")
    if not weights or not os.path.isdir(png):
        sys.exit(f"{data}: no weights/cifar10/resnet20-*.th or cifar10-lossless/png")
    model, blocks = ref.resnet20_cifar()
    ref.load_akamaster_checkpoint(model, weights[0])
    model.double()
    images, _, names = ref.load_labelled_pngs(png)
    images, names = images[:limit], names[:limit]
    x = torch.from_numpy(ref.normalize_u8(images)).double()
    _, features, outputs = ref.forward_taps(model, blocks, x)
    norms = torch.stack([ref.feature_norm(z) for z in outputs], dim=1).numpy()
    fc = ref.last_linear(model)
    block = [b for b, _ in blocks].index("layer3.0")
    cols = all_scores(features.double(), norms, block, fc.weight.detach().double(),
                      fc.bias.detach().double(), 1.0)
    write_csv(out, cols, names)
    print(f"{out}: {len(names)} images, {len(cols) - 1} scores")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["fixtures", "real"])
    p.add_argument("--out")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--limit", type=int, default=200)
    a = p.parse_args()
    torch.set_default_dtype(torch.float64)
    if a.mode == "fixtures":
        fixtures(a.out or os.path.join(ROOT, "tests", "fixtures", "detect"))
    else:
        real(a.data, a.out or "detect_reference.csv", a.limit)


if __name__ == "__main__":
    main()
