#!/usr/bin/env bash
# cli_fit.sh: `select --fit` (the feature detectors' training statistics): a killed and
# resumed run writes the very same file; two MPI ranks agree with one process (sums in
# another order: 1e-12); `score --fit` adds the detectors; broken fit files are refused.
#
#   bash tests/cli_fit.sh FEATURENORM SOURCE_DIR SHARED_DATA
set -u
fn=$1 src=$2
weights=$src/tests/fixtures/models/resnet20_cifar/model.safetensors
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p "$tmp/data"
for i in $(seq -w 1 100); do cp "$src/tests/fixtures/images/rand_37x23.png" "$tmp/data/$i.png"; done
cp "$src"/tests/fixtures/images/*.png "$tmp/data/" 2>/dev/null
run=(--arch resnet20_cifar --weights "$weights" --backend cpu --threads 2 --batch 16 --data "$tmp/data" --quiet)

"$fn" select "${run[@]}" --out "$tmp/full.json" --fit "$tmp/full.fit" > /dev/null || fail "select --fit"
# killed after its first checkpoint, then resumed: the same bytes
"$fn" select "${run[@]}" --checkpoint-every 16 --out "$tmp/part.json" --fit "$tmp/part.fit" > /dev/null &
pid=$!
for _ in $(seq 1200); do [ -e "$tmp/part.json.ckpt" ] && break; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
"$fn" select "${run[@]}" --resume --out "$tmp/part.json" --fit "$tmp/part.fit" > /dev/null || fail "resumed select"
cmp -s "$tmp/full.fit" "$tmp/part.fit" || fail "the resumed fit file differs from the uninterrupted one"

if command -v mpirun > /dev/null; then
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout 300 mpirun --allow-run-as-root \
    --oversubscribe -n 2 "$fn" select "${run[@]}" --out "$tmp/mpi.json" --fit "$tmp/mpi.fit" > /dev/null ||
    fail "select --fit under mpirun -n 2"
  /usr/bin/python3 - "$tmp/full.fit" "$tmp/mpi.fit" <<'PY' || fail "2 ranks differ from one process"
import json, struct, sys
import numpy as np
def read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8:8 + n]); head.pop("__metadata__")
    return {k: np.frombuffer(data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f8")
            for k, v in head.items()}
a, b = read(sys.argv[1]), read(sys.argv[2])
assert a.keys() == b.keys()
for k in a:  # the same sums added in another order: a few ulps
    assert np.allclose(a[k], b[k], rtol=1e-12, atol=0), k
print("2 ranks agree with one process:", ", ".join(f"{k} {a[k].size}" for k in a))
PY
else
  echo "SKIP the MPI part: no mpirun"
fi

"$fn" score "${run[@]}" --selection "$tmp/full.json" --fit "$tmp/full.fit" --out "$tmp/s.csv" || fail "score --fit"
head -1 "$tmp/s.csv" | grep -q ",mahalanobis,fdbd," || fail "score --fit: no detector columns: $(head -1 "$tmp/s.csv")"
# a fit file of another version, and one of another model
/usr/bin/python3 - "$tmp/full.fit" "$tmp/v2.fit" <<'PY'
import struct, sys, json
data = bytearray(open(sys.argv[1], "rb").read())
(n,) = struct.unpack("<Q", data[:8])
off = json.loads(data[8:8 + n])["version"]["data_offsets"][0]
data[8 + n + off:8 + n + off + 8] = struct.pack("<d", 2.0)
open(sys.argv[2], "wb").write(data)
PY
out=$("$fn" score "${run[@]}" --fit "$tmp/v2.fit" --out "$tmp/x.csv" 2>&1) && fail "a version 2 fit file was read"
[[ $out == *"v2.fit: fit file version 2"* ]] || fail "version message: $out"
out=$("$fn" score --arch resnet56_cifar --weights "$src/tests/fixtures/models/resnet56_cifar/model.safetensors" \
  --backend cpu --data "$tmp/data" --limit 2 --quiet --fit "$tmp/full.fit" --out "$tmp/x.csv" 2>&1) &&
  fail "another model's fit file was read"
[[ $out == *"full.fit: tensor"*"shape"* ]] || fail "shape message: $out"
echo ok
