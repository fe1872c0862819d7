#!/usr/bin/env bash
# fuzz.sh: build the libFuzzer targets (tests/fuzz, the "fuzz" preset: clang-14,
# ASan + UBSan) and run each for SECONDS (default 10), starting from the seeds
# in tests/fuzz/corpus/<target>/. New inputs go to build-fuzz/corpus/<target>/,
# a crash to build-fuzz/artifacts/<target>/ and fails the script; add such an
# input to the seeds once fixed, as a regression test.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
targets=("$@")
cmake --preset fuzz > /dev/null
cmake --build build-fuzz -j "$(nproc)" > /dev/null
if [ ${#targets[@]} -eq 0 ]; then
    targets=(json safetensors csv selection image list cifar)
    [ -x build-fuzz/tests/fuzz/fuzz_onnx ] && targets+=(onnx) # built with the ONNX reader
fi
# Targets that parse files write each input to a temp file: keep those in memory.
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; } || true
status=0
for t in "${targets[@]}"; do
    mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
    log="build-fuzz/fuzz_$t.log"
    if build-fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
           -max_len=65536 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t/" \
           "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" > "$log" 2>&1; then
        echo "fuzz_$t: $(grep -h 'stat::number_of_executed_units' "$log" | awk '{print $2}') runs, no finding"
    else
        echo "fuzz_$t: FAILED (see $log; input in build-fuzz/artifacts/$t/)"
        grep -h -A12 "ERROR\|==ERROR\|runtime error\|deadly signal" "$log" | head -30 || true
        status=1
    fi
done
exit $status
