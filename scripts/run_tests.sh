#!/usr/bin/env bash
# run_tests.sh: build featurenorm (with CUDA when nvcc is found) and run every
# test, then build again with AddressSanitizer + UBSan and run the tests again,
# then with ThreadSanitizer the tests that run the decode pipeline and the CPU
# backend, then each fuzz target briefly (scripts/fuzz.sh).
# Tests that need a GPU or ../shared/data report SKIPPED when those are absent.
# FN_SKIP_SANITIZE=1, FN_SKIP_TSAN=1, FN_SKIP_FUZZ=1 leave a pass out.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
# why the skipped tests skipped (no GPU, no bf16 on this CPU, no ../shared/data)
grep -h "^SKIP" build/Testing/Temporary/LastTest.log | sort -u || true
if [ "${FN_SKIP_SANITIZE:-0}" != 1 ]; then
    cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DFEATURENORM_SANITIZE=ON \
          -DFEATURENORM_CUDA=OFF > /dev/null
    cmake --build build-sanitize -j "$jobs"
    ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-sanitize --output-on-failure -j "$jobs"
fi
if [ "${FN_SKIP_TSAN:-0}" != 1 ]; then
    cmake --preset tsan > /dev/null
    cmake --build build-tsan -j "$jobs"
    # libgomp is not built with TSan, so it cannot see OpenMP's barriers and
    # reports every parallel loop as a race with the code after it; a thread
    # limit of 1 (OMP_NUM_THREADS loses to num_threads clauses) keeps the CPU
    # backend on the calling thread while the decode threads run beside it.
    # test_real is left out: ResNet-56 on one thread under TSan exceeds its
    # 600 s limit on 2 cores; test_data and the CLI tests run the same pipeline.
    OMP_THREAD_LIMIT=1 TSAN_OPTIONS="halt_on_error=1" \
        ctest --test-dir build-tsan --output-on-failure -j "$jobs" -R "^(test_data|test_image|cli_basic|cli_hostile)$"
fi
if [ "${FN_SKIP_FUZZ:-0}" != 1 ]; then
    bash scripts/fuzz.sh "${FN_FUZZ_SECONDS:-10}"
fi
