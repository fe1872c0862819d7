#!/usr/bin/env bash
# cli_long_run.sh: runs that survive kill -9, SIGINT and SIGTERM (--resume gives
# output byte-identical to an uninterrupted run), checkpoints that belong to
# another run refused, and outputs written whole or not at all.
# Usage (CTest): cli_long_run.sh FEATURENORM SOURCE_DIR SHARED_DATA
set -u
fn=$1 src=$2 shared=$3
weights=$src/tests/fixtures/models/resnet20_cifar/model.safetensors
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Real CIFAR JPEGs when there, else copies of a fixture image under many names.
if [ -d "$shared/cifar10-jpeg/test" ]; then
    data=$shared/cifar10-jpeg/test
    limit=(--limit 800)
else
    echo "SKIP real data: $shared/cifar10-jpeg/test is absent; using copies of a fixture image"
    data=$tmp/copies
    mkdir -p "$data"
    for i in $(seq -w 1 800); do cp "$src/tests/fixtures/images/rand_37x23.png" "$data/$i.png"; done
    limit=()
fi
run=(--arch resnet20_cifar --weights "$weights" --backend cpu --threads 2 --batch 32 --data "$data" "${limit[@]}")

# waits until FILE exists (the first checkpoint), at most 120 s
wait_for() { for _ in $(seq 1200); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# score: uninterrupted, then killed -9 after its first checkpoint and resumed
"$fn" score "${run[@]}" --quiet --out "$tmp/full.csv" --npy "$tmp/full.npy" || fail "uninterrupted score"
"$fn" score "${run[@]}" --quiet --checkpoint-every 100 --out "$tmp/part.csv" --npy "$tmp/part.npy" &
pid=$!
wait_for "$tmp/part.csv.ckpt" || fail "no checkpoint appeared"
kill -9 $pid; wait $pid 2>/dev/null
[ ! -e "$tmp/part.csv" ] || fail "a killed run left an output"
ls "$tmp" | grep -q '\.tmp$' && fail "a killed run left a temp file: $(ls "$tmp")"
out=$("$fn" score "${run[@]}" --quiet --out "$tmp/part.csv" --npy "$tmp/part.npy" 2>&1)
[ $? -eq 1 ] && [[ $out == *"--resume"* ]] || fail "an existing checkpoint was not reported: $out"
# SIGTERM while resuming: exit 143, checkpoint kept, no output
"$fn" score "${run[@]}" --quiet --checkpoint-every 100 --resume --out "$tmp/part.csv" --npy "$tmp/part.npy" &
pid=$!
sleep 1; kill -TERM $pid; wait $pid; code=$?
[ $code -eq 143 ] || [ $code -eq 0 ] || fail "SIGTERM: exit $code, expected 143"
[ $code -eq 0 ] || [ -e "$tmp/part.csv.ckpt" ] || fail "SIGTERM lost the checkpoint"
"$fn" score "${run[@]}" --quiet --resume --out "$tmp/part.csv" --npy "$tmp/part.npy" || fail "resumed score"
cmp -s "$tmp/full.csv" "$tmp/part.csv" || fail "resumed CSV differs from the uninterrupted one"
cmp -s "$tmp/full.npy" "$tmp/part.npy" || fail "resumed .npy differs from the uninterrupted one"
[ ! -e "$tmp/part.csv.ckpt" ] || fail "the checkpoint outlived a finished run"

# select: SIGINT after the first checkpoint (exit 130), resume, same selection
"$fn" select "${run[@]}" --quiet --out "$tmp/sel_full.json" > /dev/null || fail "uninterrupted select"
"$fn" select "${run[@]}" --quiet --checkpoint-every 64 --out "$tmp/sel.json" > /dev/null &
pid=$!
wait_for "$tmp/sel.json.ckpt" || fail "no select checkpoint appeared"
kill -INT $pid; wait $pid; code=$?
[ $code -eq 130 ] || fail "SIGINT: exit $code, expected 130"
out=$("$fn" select "${run[@]}" --quiet --resume --seed 7 --out "$tmp/sel.json" 2>&1)
[[ $out == *"other options"* ]] || fail "a checkpoint of another seed was accepted: $out"
"$fn" select "${run[@]}" --quiet --resume --out "$tmp/sel.json" > /dev/null || fail "resumed select"
cmp -s "$tmp/sel_full.json" "$tmp/sel.json" || fail "resumed selection differs"

# outputs: checked before the run, kept whole, mode kept, never a non-file
small=(--arch resnet20_cifar --weights "$weights" --backend cpu --data "$src/tests/fixtures/images" --quiet)
out=$("$fn" score "${small[@]}" --out "$tmp/no/such/dir/s.csv" 2>&1)
[ $? -eq 1 ] && [[ $out == *"no/such/dir"* ]] || fail "missing output folder: $out"
out=$("$fn" score "${small[@]}" --out "$tmp/s.csv" --npy "$tmp/no/such/dir/s.npy" 2>&1)
[ $? -eq 1 ] && [ ! -e "$tmp/s.csv" ] || fail "the CSV was written though the .npy could not be: $out"
mkfifo "$tmp/fifo"
out=$("$fn" score "${small[@]}" --out "$tmp/fifo" 2>&1)
[ $? -eq 1 ] && [[ $out == *"not a regular file"* ]] || fail "a FIFO target was accepted: $out"
echo old > "$tmp/mode.csv" && chmod 640 "$tmp/mode.csv"
"$fn" score "${small[@]}" --out "$tmp/mode.csv" || fail "score to an existing file"
[ "$(stat -c %a "$tmp/mode.csv")" = 640 ] || fail "target mode not kept: $(stat -c %a "$tmp/mode.csv")"
"$fn" info --scores > /dev/full 2>/dev/null && fail "info to a full stdout exited 0"
"$fn" eval --id "$tmp/mode.csv" --ood "x=$tmp/mode.csv" > /dev/full 2>/dev/null && fail "eval to a full stdout exited 0"
out=$("$fn" eval --id "$tmp/mode.csv" --ood "x=$tmp/mode.csv" --json /dev/full 2>&1)
[ $? -ne 0 ] || fail "eval --json to /dev/full exited 0: $out"

echo "cli_long_run: $failures failure(s)"
[ $failures -eq 0 ]
