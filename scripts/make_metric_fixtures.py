#!/usr/bin/python3
"""make_metric_fixtures.py: reference values for fn_metrics_compute, from scikit-learn.

Regenerate (from the repository root; needs Debian's python3-numpy and
python3-sklearn, hence /usr/bin/python3 rather than a venv's python3):

    /usr/bin/python3 scripts/make_metric_fixtures.py

It writes tests/fixtures/metrics/cases.txt, read by tests/test_metrics.c:

    # comment lines
    case NAME n_id n_ood
    <n_id ID scores>
    <n_ood OOD scores>
    expect auroc fpr95 aupr_in aupr_out threshold
    openood fpr95 threshold              (OpenOOD's convention, see openood())

Scores are float32 printed with %.9g, so C's strtof reads back the very values
sklearn saw; expected values are printed with %.17g. ID is the positive class
(label 1), higher score = more ID:

    auroc     = roc_auc_score(y, s)
    fpr95     = fpr[argmax(tpr >= 0.95)] of roc_curve(y, s, drop_intermediate=False)
    threshold = thresholds[the same index]
    aupr_in   = average_precision_score(y, s)
    aupr_out  = average_precision_score(1 - y, -s)

sklearn rejects infinite scores, so for cases holding +-inf it is given an
order-preserving finite stand-in (beyond every finite score); every metric
depends only on the order, and a threshold that is a stand-in maps back to +-inf.
The random cases use a fixed seed, so the output is repeatable.
"""
import os
import sys

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "metrics", "cases.txt")


def finite_stand_in(s):
    """Replace +-inf by finite values keeping the order; return (s2, hi, lo)."""
    fin = s[np.isfinite(s)]
    top = float(fin.max()) if fin.size else 0.0
    bot = float(fin.min()) if fin.size else 0.0
    hi = top + 1.0 + abs(top)
    lo = bot - 1.0 - abs(bot)
    s2 = s.copy()
    s2[s == np.inf] = hi
    s2[s == -np.inf] = lo
    return s2, hi, lo


def reference(id_scores, ood_scores):
    s = np.concatenate([id_scores, ood_scores]).astype(np.float64)  # exact float32 values
    y = np.r_[np.ones(len(id_scores), dtype=int), np.zeros(len(ood_scores), dtype=int)]
    s2, hi, lo = finite_stand_in(s)
    auroc = roc_auc_score(y, s2)
    fpr, tpr, thr = roc_curve(y, s2, drop_intermediate=False)
    k = int(np.argmax(tpr >= 0.95))
    fpr95, threshold = float(fpr[k]), float(thr[k])
    if threshold == hi:
        threshold = np.inf
    elif threshold == lo:
        threshold = -np.inf
    aupr_in = average_precision_score(y, s2)
    aupr_out = average_precision_score(1 - y, -s2)
    return auroc, fpr95, aupr_in, aupr_out, threshold


def openood(id_scores, ood_scores):
    """OpenOOD's FPR@95 and its threshold, as its metrics.py computes them: OOD is the
    positive class, roc_curve(ood_indicator, -conf) (drop_intermediate at its default),
    fpr at the first tpr >= 0.95. The threshold of that point, on the score's scale, from
    every point (drop_intermediate=False): dropping collinear points keeps the FPR but
    may move the threshold within a segment."""
    s = np.concatenate([id_scores, ood_scores]).astype(np.float64)
    ood = np.r_[np.zeros(len(id_scores), dtype=int), np.ones(len(ood_scores), dtype=int)]
    s2, hi, lo = finite_stand_in(s)
    fpr, tpr, _ = roc_curve(ood, -s2)
    fpr95 = float(fpr[int(np.argmax(tpr >= 0.95))])
    _, tpr, thr = roc_curve(ood, -s2, drop_intermediate=False)
    threshold = -float(thr[int(np.argmax(tpr >= 0.95))])
    threshold = np.inf if threshold == hi else -np.inf if threshold == lo else threshold
    return fpr95, threshold


def line(values, fmt):
    return " ".join(fmt % float(v) for v in values)


def main():
    rng = np.random.default_rng(20230418)
    f32 = np.float32
    cases = []

    def add(name, id_scores, ood_scores):
        cases.append((name, np.asarray(id_scores, dtype=f32), np.asarray(ood_scores, dtype=f32)))

    # Overlapping normals of several sizes.
    for n_id, n_ood in [(1, 1), (5, 3), (20, 20), (100, 37), (1000, 2000)]:
        add(f"normal_{n_id}_{n_ood}", rng.normal(1.0, 1.0, n_id), rng.normal(0.0, 1.0, n_ood))
    add("one_id_below_one_ood", [0.25], [0.75])
    add("negative_scores", rng.normal(-50.0, 3.0, 60), rng.normal(-52.0, 3.0, 45))
    # Heavy ties: one decimal, and integers 0..3.
    add("ties_one_decimal", np.round(rng.normal(0.3, 1.0, 300), 1),
        np.round(rng.normal(0.0, 1.0, 400), 1))
    add("ties_int_0_3", rng.integers(0, 4, 120), rng.integers(0, 4, 90))
    add("ties_int_skewed", rng.choice(4, 200, p=[0.1, 0.2, 0.3, 0.4]),
        rng.choice(4, 150, p=[0.4, 0.3, 0.2, 0.1]))
    add("all_equal", np.full(10, 0.5), np.full(7, 0.5))
    add("signed_zero_tie", [0.0, 0.0, 1.0], [-0.0, -0.0, -1.0])
    add("separated", rng.uniform(2.0, 3.0, 40), rng.uniform(0.0, 1.0, 30))
    add("reversed", rng.uniform(0.0, 1.0, 40), rng.uniform(2.0, 3.0, 30))
    # Infinite scores sort like any other (the threshold may be inf itself).
    add("id_inf", np.r_[rng.normal(1.0, 1.0, 30), [np.inf, np.inf, -np.inf]],
        rng.normal(0.0, 1.0, 25))
    add("id_mostly_inf", np.r_[np.full(19, np.inf), [-np.inf]], rng.normal(0.0, 1.0, 10))
    add("inf_both_sets", np.r_[rng.normal(0.0, 1.0, 15), [np.inf, -np.inf]],
        np.r_[rng.normal(0.0, 1.0, 12), [np.inf, -np.inf, -np.inf]])
    # TPR exactly 0.95: 19 of 20 (and 38 of 40) ID scores at or above a
    # threshold; OOD scores tied with that threshold must count in its FPR.
    id20 = np.arange(20, 0, -1, dtype=f32)  # 20..1; the 19th is 2
    add("tpr_exact_95_distinct", id20, np.r_[np.arange(0.5, 10.0, 1.0)])
    add("tpr_exact_95_tied_ood", id20, np.r_[[2.0, 2.0, 2.0], rng.uniform(-5.0, 1.5, 20)])
    id40 = np.r_[np.full(10, 5.0), np.full(28, 3.0), [1.0, 0.0]]  # 38 of 40 at >= 3
    add("tpr_exact_95_groups", id40, np.r_[[3.0, 3.0, 5.0], rng.uniform(-1.0, 4.0, 30)])
    # TPR jumps over 0.95 (6/7 -> 7/7).
    add("tpr_jumps_past_95", rng.normal(1.0, 1.0, 7), rng.normal(0.0, 1.0, 9))

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("# Generated by scripts/make_metric_fixtures.py; do not edit.\n")
        f.write(f"# sklearn {sklearn.__version__}, numpy {np.__version__}\n")
        f.write("# case NAME n_id n_ood / ID scores / OOD scores / "
                "expect auroc fpr95 aupr_in aupr_out threshold / openood fpr95 threshold\n")
        for name, a, b in cases:
            ref = reference(a, b)
            f.write(f"case {name} {len(a)} {len(b)}\n")
            f.write(line(a, "%.9g") + "\n")
            f.write(line(b, "%.9g") + "\n")
            f.write("expect " + line(ref, "%.17g") + "\n")
            f.write("openood " + line(openood(a, b), "%.17g") + "\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
