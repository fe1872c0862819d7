#!/usr/bin/env bash
# run_tests.sh: build featurenorm (with CUDA when nvcc is found) and run every
# test, then build again with AddressSanitizer + UBSan and run the tests again.
# Tests that need a GPU or ../shared/data report SKIPPED when those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
# why the skipped tests skipped (no GPU, no ../shared/data, no torch)
grep -h "^SKIP" build/Testing/Temporary/LastTest.log | sort -u || true
if [ "${FN_SKIP_SANITIZE:-0}" != 1 ]; then
    cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DFEATURENORM_SANITIZE=ON \
          -DFEATURENORM_CUDA=OFF > /dev/null
    cmake --build build-sanitize -j "$jobs"
    ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-sanitize --output-on-failure -j "$jobs"
fi
