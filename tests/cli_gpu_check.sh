#!/usr/bin/env bash
# cli_gpu_check.sh: the path the GPU check's numbers take (scripts/bench_gpu.py:
# the Python package's Model.forward against PyTorch per image, the bound's
# mix-up rejection, `featurenorm bench` and `score --profile`, the results
# JSON and table), run on the CPU backend so that a drift shows here first.
# Needs a Python with torch; skips without, and with a sanitizer build (the
# interpreter would need the sanitizer's runtime preloaded).
# Usage (CTest): cli_gpu_check.sh FEATURENORM SOURCE_DIR SHARED_DATA
set -u
fn=$1 src=$2 shared=${3:-}
if ldd "$(dirname "$fn")/libfeaturenorm.so" 2> /dev/null | grep -q libasan; then
    echo "SKIP: sanitizer build (the Release build runs this test)"; exit 77
fi
for py in /usr/bin/python3 python3; do
    command -v "$py" > /dev/null && "$py" -c 'import torch, PIL' 2> /dev/null && break
    py=""
done
[ -n "$py" ] || { echo "SKIP: no python3 with torch and PIL (Debian: python3-torch python3-pil)"; exit 77; }
out=$(mktemp -d) && trap 'rm -rf "$out"' EXIT
"$py" "$src/scripts/bench_gpu.py" --featurenorm "$fn" --device cpu --results "$out/gpu_check.json" \
    --shared-data "$shared" --timeout 120 || exit 1
# the one JSON and the one table, whole, naming every step that ran
"$py" - "$out/gpu_check.json" <<'PY' || exit 1
import json, sys
r = json.load(open(sys.argv[1]))
assert r["numbers"]["fp32"]["ok"], r["numbers"]
assert min(r["numbers"]["fp32"]["mixups"].values()) > r["numbers"]["fp32"]["tolerance"]
assert all(t["featurenorm"] for t in r["throughput"]) and r["score_images_per_s"], r
print("gpu check path on the CPU: numbers, throughput, score and the results file ok")
PY
grep -q "^| fp32 |" "$out/gpu_check.md" || { echo "no numbers table in gpu_check.md"; exit 1; }
