#!/usr/bin/env bash
# gpu_check.sh: the whole GPU check in one command, for a machine with an
# NVIDIA H100/H200, CUDA 13, cuDNN 9 and a CUDA build of PyTorch, and no network.
#
#   scripts/gpu_check.sh            nvidia-smi; configure + build with CUDA for sm_90
#                                   only; one verbose FN_CUDA_SYNC pass per precision;
#                                   ctest: the CUDA tests verbose (test_cuda_norms,
#                                   _ops, _parity, _models), then the rest;
#                                   scripts/bench_gpu.py (numbers vs PyTorch, which
#                                   fail the check on a mismatch; images/s; score from
#                                   JPEGs with --profile). About 7 minutes on an H200
#                                   with 16 cores: build ~1.5, CUDA tests ~2.5, the
#                                   rest ~0.5, bench ~2.5. One prepared command:
#                                   run it as   OUT=$OUT scripts/gpu_check.sh
#   scripts/gpu_check.sh --fetch-debs
#                                   run on a machine WITH apt and network: puts the
#                                   build's Debian/Ubuntu dependencies (oneDNN, stb,
#                                   pkgconf) in carry/debs/ for a GPU machine that
#                                   lacks them; the check unpacks them privately.
#
# What must travel with the working tree (carry/ is git-ignored, so name it in
# the device tool's `carry`): carry/debs/ (made by --fetch-debs, ~25 MB) when
# the GPU image lacks the -dev packages, and, optionally, carry/shared-data/
# with ../shared/data's weights/cifar10/resnet20-12fca82f.th (1 MB: the trained
# ResNet-20 part of test_cuda_parity and bench_gpu.py; without it those parts
# say so and use random weights). Nothing else: the fixtures are in git and
# the full-size nets get random weights.
# The log goes to $OUT/gpu_check.log when OUT is set (else build-gpu/), with
# the benchmark's bench_gpu.json beside it. Every step has a timeout; a failed
# step is reported and the next one still runs. Exit status: 0 when the build,
# the tests and the benchmark all passed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEBS_DIR=$ROOT/carry/debs
DEB_PACKAGES="libdnnl2 libdnnl-dev ocl-icd-libopencl1 libstb0 libstb-dev pkgconf-bin libpkgconf3"

if [ "${1:-}" = "--fetch-debs" ]; then
    mkdir -p "$DEBS_DIR" && cd "$DEBS_DIR" || exit 1
    for p in $DEB_PACKAGES; do
        # libdnnl3 where the release has it, else the name given
        [ "$p" = libdnnl2 ] && apt-cache show libdnnl3 > /dev/null 2>&1 && p=libdnnl3
        apt-get download "$p" || exit 1
    done
    ls -la "$DEBS_DIR"
    exit 0
fi

BUILD=$ROOT/build-gpu
SHARED=$ROOT/../shared/data
[ -d "$ROOT/carry/shared-data" ] && SHARED=$ROOT/carry/shared-data
LOGDIR=${OUT:-$BUILD}
mkdir -p "$BUILD" "$LOGDIR"
LOG=$LOGDIR/gpu_check.log
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1
START=$(date +%s)
BUDGET=${FN_GPU_CHECK_BUDGET:-480} # seconds for everything: a leased command gets 600
FAILED=""
step() { echo; echo "==== $* [$(( $(date +%s) - START )) s]"; }
# limit MAX: MAX seconds, or what is left of the budget if less (at least 10).
limit() { local left=$(( BUDGET - ($(date +%s) - START) )); [ "$left" -lt "$1" ] && echo $(( left > 10 ? left : 10 )) || echo "$1"; }
fail() { echo "!!!! FAILED: $*"; FAILED="$FAILED $1"; }

step "machine"
timeout 30 nvidia-smi || fail nvidia-smi
nvcc --version 2>/dev/null | tail -2 || echo "nvcc not on PATH"
echo "cores: $(nproc)"

# ---- dependencies: cuDNN (system or PyTorch's wheel), oneDNN, stb, pkg-config
step "dependencies"
PY=${PYTHON:-python3}
CMAKE_EXTRA=()
CUDNN_INC=""
for d in /usr/local/cuda/include /usr/include /usr/include/x86_64-linux-gnu; do
    [ -f "$d/cudnn.h" ] && CUDNN_INC=$d && break
done
if [ -z "$CUDNN_INC" ]; then
    # The nvidia-cudnn-cu13 wheel under PyTorch: headers and libraries, no libcudnn.so link.
    WHEEL=$($PY -c 'import os, nvidia.cudnn as c; print(os.path.dirname(c.__file__))' 2>/dev/null ||
            $PY -c 'import nvidia.cudnn as c; print(list(c.__path__)[0])' 2>/dev/null)
    if [ -n "$WHEEL" ] && [ -f "$WHEEL/include/cudnn.h" ]; then
        CUDNN_INC=$WHEEL/include
        LIB=$(ls "$WHEEL"/lib/libcudnn.so* 2>/dev/null | head -1)
        CMAKE_EXTRA+=("-DCUDNN_INCLUDE_DIR=$CUDNN_INC" "-DCUDNN_LIBRARY=$LIB")
        export LD_LIBRARY_PATH="$WHEEL/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
fi
echo "cuDNN headers: ${CUDNN_INC:-not found}"
grep -hE "define CUDNN_(MAJOR|MINOR|PATCHLEVEL) " "$CUDNN_INC/cudnn_version.h" 2>/dev/null | tr '\n' ' '; echo

if ! pkg-config --exists stb 2>/dev/null || [ ! -f /usr/include/oneapi/dnnl/dnnl.h ]; then
    echo "stb (pkg-config) or oneDNN (libdnnl-dev) is missing here"
    if ls "$DEBS_DIR"/*.deb > /dev/null 2>&1; then
        DEPS=/tmp/fn-deps
        rm -rf "$DEPS" && mkdir -p "$DEPS/pc"
        for f in "$DEBS_DIR"/*.deb; do dpkg -x "$f" "$DEPS"; done  # privately, never into /
        dnnl_so=$(find "$DEPS" -name 'libdnnl.so' | head -1)
        dnnl_h=$(find "$DEPS" -path '*oneapi/dnnl/dnnl.h' | head -1)
        opencl=$(find "$DEPS" -name 'libOpenCL.so.1*' | head -1)
        stb_h=$(find "$DEPS" -name stb_image.h | head -1)
        stb_so=$(find "$DEPS" -name 'libstb.so' | head -1)
        CMAKE_EXTRA+=("-DDNNL_INCLUDE_DIR=${dnnl_h%/oneapi/dnnl/dnnl.h}" "-DDNNL_LIBRARY=$dnnl_so")
        printf 'Name: stb\nDescription: carried\nVersion: 0\nLibs: -L%s -lstb\nCflags: -I%s\n' \
            "$(dirname "$stb_so")" "$(dirname "$stb_h")" > "$DEPS/pc/stb.pc"
        export PKG_CONFIG_PATH="$DEPS/pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
        export LD_LIBRARY_PATH="$(dirname "$dnnl_so"):$(dirname "$stb_so"):$(dirname "${opencl:-$dnnl_so}"):$(find "$DEPS" -name 'libpkgconf.so*' -printf '%h\n' | head -1)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        if ! command -v pkg-config > /dev/null; then
            PKGCONF=$(find "$DEPS" -path '*bin/pkgconf' | head -1)
            [ -n "$PKGCONF" ] && CMAKE_EXTRA+=("-DPKG_CONFIG_EXECUTABLE=$PKGCONF")
        fi
        # oneDNN: headers, library and CMake config under $DEPS/usr
        dnnl_so=$(find "$DEPS" -name 'libdnnl.so*' | head -1)
        if [ -n "$dnnl_so" ]; then
            export LD_LIBRARY_PATH="$(dirname "$dnnl_so")${opencl:+:$(dirname "$opencl")}:$LD_LIBRARY_PATH"
            export CPATH="$DEPS/usr/include${CPATH:+:$CPATH}"
            export LIBRARY_PATH="$(dirname "$dnnl_so")${LIBRARY_PATH:+:$LIBRARY_PATH}"
            CMAKE_EXTRA+=("-DCMAKE_PREFIX_PATH=$DEPS/usr")
            printf 'prefix=%s\nName: dnnl\nDescription: carried\nVersion: 0\nLibs: -L%s -ldnnl\nCflags: -I%s\n' \
                "$DEPS/usr" "$(dirname "$dnnl_so")" "$DEPS/usr/include" > "$DEPS/pc/dnnl.pc"
        fi
        echo "using the carried packages in $DEPS"
    else
        echo "no carried packages in $DEBS_DIR: on a machine with apt, run"
        echo "  scripts/gpu_check.sh --fetch-debs   and carry carry/debs along"
    fi
fi

# ---- build
step "configure (CUDA on, sm_90 only: one device pass per .cu file)"
CFG=(-DFEATURENORM_CUDA=ON -DCMAKE_BUILD_TYPE=Release "-DFN_SHARED_DATA=$SHARED" ${CMAKE_EXTRA[@]+"${CMAKE_EXTRA[@]}"})
timeout "$(limit 120)" cmake -S "$ROOT" -B "$BUILD" "${CFG[@]}" -DCMAKE_CUDA_ARCHITECTURES=90 || fail configure
step "build"
timeout "$(limit 240)" cmake --build "$BUILD" -j"$(nproc)" || fail build

# ---- tests
if [ -x "$BUILD/featurenorm" ]; then
    step "one verbose pass per precision (algorithms, math, fusion timings; FN_CUDA_SYNC names a failing op)"
    for prec in fp32 tf32 fp16 bf16; do
        FN_CUDA_VERBOSE=1 FN_CUDA_SYNC=1 CUDNN_LOGLEVEL_DBG=1 CUDNN_LOGDEST_DBG=stderr timeout "$(limit 40)" \
            "$BUILD/featurenorm" bench --arch resnet50 \
            --weights "$ROOT/tests/fixtures/models/resnet50/model.safetensors" \
            --backend cuda --precision $prec --batch 8 --iters 1 --warmup 0 || fail "verbose-$prec"
    done

    step "ctest: the CUDA tests, verbose (their SKIP line says why when they cannot run)"
    # one at a time: each uses the whole GPU and its CPU reference all cores
    (cd "$BUILD" && timeout "$(limit 240)" ctest -V -R 'test_cuda_') || fail ctest-cuda
    step "ctest: everything but the CUDA tests"
    (cd "$BUILD" && timeout "$(limit 120)" ctest -j"$(nproc)" --output-on-failure -E 'test_cuda_') || fail ctest

    # ---- throughput
    step "benchmark: featurenorm vs PyTorch"
    # exits 2 when featurenorm's numbers differ from PyTorch's (the log says which, and by how much)
    timeout "$(limit 200)" $PY "$ROOT/scripts/bench_gpu.py" --featurenorm "$BUILD/featurenorm" --out "$LOGDIR" \
        --weights-dir "$BUILD" --shared-data "$SHARED" --timeout 60 || fail bench
fi

step "done"
if [ -n "$FAILED" ]; then
    echo "FAILED steps:$FAILED"
    sleep 1 # let tee write the last lines
    exit 1
fi
echo "all steps passed; log in $LOG"
sleep 1 # let tee write the last lines
