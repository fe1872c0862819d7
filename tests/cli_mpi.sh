#!/usr/bin/env bash
# cli_mpi.sh: score and select under mpirun -n 2 and -n 3 (uneven shards) give
# what one process gives: the same CSV and .npy bytes, the same selection; a
# rank that fails stops the whole job with its message; each unreadable image
# is reported once. Skipped (exit 77) when MPI is not built or mpirun missing.
# Usage (CTest): cli_mpi.sh FEATURENORM SOURCE_DIR SHARED_DATA
set -u
fn=$1 src=$2 shared=$3
if ! "$fn" --version | grep -q "MPI built in"; then
    echo "SKIP cli_mpi: featurenorm was built without MPI (-DFEATURENORM_MPI=ON needs libopenmpi-dev)"
    exit 77
fi
if ! command -v mpirun > /dev/null; then
    echo "SKIP cli_mpi: no mpirun (apt-get install openmpi-bin)"
    exit 77
fi
weights=$src/tests/fixtures/models/resnet20_cifar/model.safetensors
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# As root (CI) Open MPI wants to be told; more ranks than cores is fine here.
# Open MPI, hwloc and their dlopened components leave allocations at exit that
# LeakSanitizer reports; the ranks run without leak checks (our code's leaks are
# checked by the one-process runs here and by every other test).
mpi() {
    local n=$1; shift
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        timeout 300 mpirun --allow-run-as-root --oversubscribe -n "$n" "$@"
}

if [ -d "$shared/cifar10-jpeg/test" ]; then
    data=(--data "$shared/cifar10-jpeg/test" --labels --limit 700)
else
    echo "SKIP real data: $shared/cifar10-jpeg/test is absent; using copies of fixture images"
    mkdir -p "$tmp/copies"
    for i in $(seq -w 1 300); do cp "$src/tests/fixtures/images/rand_37x23.png" "$tmp/copies/$i.png"; done
    data=(--data "$tmp/copies")
fi
net=(--arch resnet20_cifar --weights "$weights" --backend cpu)
model=("${net[@]}" --batch 64 --quiet)

"$fn" score "${model[@]}" "${data[@]}" --threads 2 --out "$tmp/one.csv" --npy "$tmp/one.npy" ||
    fail "one-process score"
"$fn" select "${model[@]}" "${data[@]}" --threads 2 --out "$tmp/one.json" > /dev/null ||
    fail "one-process select"
for n in 2 3; do
    mpi $n "$fn" score "${model[@]}" "${data[@]}" --out "$tmp/s$n.csv" --npy "$tmp/s$n.npy" ||
        fail "score with $n ranks"
    cmp -s "$tmp/one.csv" "$tmp/s$n.csv" || fail "score CSV with $n ranks differs from one process"
    cmp -s "$tmp/one.npy" "$tmp/s$n.npy" || fail "score .npy with $n ranks differs from one process"
    mpi $n "$fn" select "${model[@]}" "${data[@]}" --out "$tmp/sel$n.json" > /dev/null ||
        fail "select with $n ranks"
    cmp -s "$tmp/one.json" "$tmp/sel$n.json" ||
        fail "selection with $n ranks differs: $(diff "$tmp/one.json" "$tmp/sel$n.json" | head -4)"
done

# an unreadable image in the last rank's shard: reported once; --strict stops every rank
mkdir -p "$tmp/mixed"
for i in $(seq -w 1 40); do cp "$src/tests/fixtures/images/rand_37x23.png" "$tmp/mixed/a$i.png"; done
echo "not a picture" > "$tmp/mixed/z_broken.png"
out=$(mpi 2 "$fn" score "${net[@]}" --batch 8 --data "$tmp/mixed" --out "$tmp/m.csv" 2>&1)
[ "$(grep -c "z_broken.png" <<< "$out")" = 1 ] || fail "the unreadable image was not reported exactly once: $out"
[ "$(($(wc -l < "$tmp/m.csv") - 1))" = 40 ] || fail "expected 40 rows with 2 ranks: $(wc -l < "$tmp/m.csv")"
start=$(date +%s)
out=$(mpi 2 "$fn" score "${net[@]}" --quiet --batch 8 --data "$tmp/mixed" --out "$tmp/strict.csv" --strict 2>&1)
code=$?
[ $code -ne 0 ] && [ $code -ne 124 ] || fail "--strict with a broken image: exit $code"
[[ $out == *"z_broken.png"* ]] || fail "--strict did not name the broken file: $out"
[ ! -e "$tmp/strict.csv" ] || fail "--strict left an output"
[ $(($(date +%s) - start)) -lt 120 ] || fail "the failed job took too long to stop"

echo "cli_mpi: $failures failure(s)"
[ $failures -eq 0 ]
