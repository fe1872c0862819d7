#!/usr/bin/env bash
# cli_detect.sh: `featurenorm score` on the real CIFAR-10 ResNet-20 (200 lossless PNGs)
# against scripts/detector_reference.py (pytorch-ood, SciPy, autograd on the PyTorch
# model in float64): every score of `featurenorm info --scores` must be there and agree.
#
#   bash tests/cli_detect.sh FEATURENORM SOURCE_DIR SHARED_DATA   (exit 77: skipped)
#
# The reference needs pytorch-ood: $FN_REFERENCE_PYTHON, or SOURCE_DIR/.venv-reference
# (README, "Reference tests"). Its values are written here, into the build folder.
set -u
fn=$1 src=$2 data=$3
py=${FN_REFERENCE_PYTHON:-$src/.venv-reference/bin/python}
weights=$data/weights/cifar10/resnet20-12fca82f.th png=$data/cifar10-lossless/png
[ -e "$weights" ] && [ -d "$png" ] || { echo "SKIP: $weights or $png not found"; exit 77; }
"$py" -c "import pytorch_ood" 2>/dev/null || { echo "SKIP: $py cannot import pytorch_ood"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
n=200
/usr/bin/python3 "$src/scripts/convert_weights.py" "$weights" "$tmp/r20.safetensors" > /dev/null ||
  fail "convert_weights"
ls "$png" | grep -E '^[0-9]+_label[0-9]+\.png$' | sort | head -n $n | sed "s|^|$png/|" > "$tmp/list.txt"
"$fn" score --arch resnet20_cifar --weights "$tmp/r20.safetensors" --data "$tmp/list.txt" \
  --block layer3.0 --react-clip 1.0 --out "$tmp/fn.csv" --quiet || fail "featurenorm score"
"$py" "$src/scripts/detector_reference.py" real --data "$data" --limit $n --out "$tmp/ref.csv" \
  > /dev/null || fail "detector_reference.py"
# the detectors fitted on training statistics are test_detect's (synthetic training sets)
"$fn" info --scores | awk -F'\t' '$3 !~ /fit/ { print $1 }' > "$tmp/names.txt"

/usr/bin/python3 - "$tmp" <<'PY' || exit 1
import csv, os, sys
tmp = sys.argv[1]
names = open(os.path.join(tmp, "names.txt")).read().split()
load = lambda f: {os.path.basename(r["path"]): r for r in csv.DictReader(open(os.path.join(tmp, f)))}
got, want = load("fn.csv"), load("ref.csv")
bad = [f"{c}: missing from {which}" for c in names for which, rows in (("featurenorm", got), ("reference", want))
       if c not in next(iter(rows.values()))]
assert got.keys() == want.keys(), "different images"
# featurenorm runs the network in float32 against a float64 PyTorch: logits carry
# ~1e-6 relative error through 20 layers; 1e-4 relative leaves room for that, the
# 1e-5 absolute floor for the scores that cross zero.
for c in names:
    if any(c in b for b in bad):
        continue
    worst = 0.0
    for k in want:
        g, w = float(got[k][c]), float(want[k][c])
        err = abs(g - w) / (abs(w) + 0.1)
        worst = max(worst, err)
        if abs(g - w) > 1e-4 * abs(w) + 1e-5:
            bad.append(f"{c} {k}: {g!r}, reference {w!r}")
            break
    print(f"  {c:16s} max rel. error {worst:.2e}")
print("\n".join(bad) if bad else f"{len(names)} scores agree on {len(want)} images")
sys.exit(1 if bad else 0)
PY
