#!/usr/bin/env bash
# gpu_check.sh: the whole GPU check in one command, for a machine with an
# NVIDIA H100/H200, CUDA 13, cuDNN 9 (system or PyTorch's wheel) and a CUDA
# build of PyTorch, and no network. Run it as   OUT=$OUT scripts/gpu_check.sh
#
# Steps, by value, each with its planned seconds (a step may also use what the
# steps before it left unused; all of it within FN_GPU_CHECK_BUDGET, 480 s):
#   machine 10       nvidia-smi, nvcc, cores
#   dependencies 15  cuDNN (system or wheel), the carried oneDNN/stb/libjpeg/pkgconf
#   configure 30     CUDA on, sm_90 only, Release
#   build 145
#   fp16 80          full-size ResNet-50 FP16 numbers against PyTorch on the card
#                    (one batch of 64, score's size, default algorithm search), then
#                    its throughput next to PyTorch
#   precisions 80    the same for fp32, tf32, bf16 (and ResNet-20 fp16 throughput)
#   cuda-tests 80    the CUDA ctests, most informative first: parity, models, ops, norms
#   score 40         `featurenorm score --profile` from 512 JPEGs, fp16
# Results go to $OUT as they are made, three files in all: gpu_check.log, and
# gpu_check.json with its table gpu_check.md (bench_gpu.py rewrites both whole
# after every measurement), so a run cut off anywhere returns what it measured.
# Weights and JPEGs stay in build-gpu/work. A failed step is reported and the
# next one still runs. Exit status 0 when every step passed.
#
#   scripts/gpu_check.sh --fetch-debs
#       on a machine WITH apt and network: puts the build's Debian dependencies
#       (oneDNN, stb, libjpeg-turbo, pkgconf) in carry/debs/ (~25 MB) for a GPU
#       machine that lacks them; the check unpacks them privately, never into /.
#   scripts/gpu_check.sh --rehearse
#       the whole check on a machine WITHOUT a GPU, inside a bare Debian root
#       (debootstrap --variant=minbase, kept in build-rehearse/root) that holds
#       what the GPU image holds (compiler, CMake, python3 with torch/numpy/PIL)
#       and no -dev package; the CUDA toolkit is bound in read-only, the working
#       tree (tracked files + carry/) copied in, no network (unshare -n). The
#       device steps take their skip paths and the numbers run against the CPU
#       backend. Prints each step's planned and actual time and the files that
#       would come back from $OUT.
#
# What travels with the working tree (carry/ is git-ignored: name it in the
# device tool's `carry`): carry/debs/ and, optionally, carry/shared-data/ with
# ../shared/data's weights/cifar10/resnet20-12fca82f.th (1 MB: trained ResNet-20
# for test_cuda_parity and the throughput row; without it they use random weights).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEBS_DIR=$ROOT/carry/debs
DEB_PACKAGES="libdnnl2 libdnnl-dev ocl-icd-libopencl1 libstb0 libstb-dev libjpeg62-turbo libjpeg62-turbo-dev
              pkgconf-bin libpkgconf3"

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
if [ "${1:-}" = "--rehearse" ]; then
    exec bash "$ROOT/scripts/gpu_rehearse.sh"
fi

BUILD=$ROOT/build-gpu
WORK=$BUILD/work
SHARED=$ROOT/../shared/data
[ -d "$ROOT/carry/shared-data" ] && SHARED=$ROOT/carry/shared-data
LOGDIR=${OUT:-$BUILD}
DEVICE=cuda
[ "${FN_REHEARSAL:-0}" = 1 ] && DEVICE=cpu # no card: the CPU backend stands in
mkdir -p "$BUILD" "$WORK" "$LOGDIR"
LOG=$LOGDIR/gpu_check.log
RESULTS=$LOGDIR/gpu_check.json
rm -f "$RESULTS" "${RESULTS%.json}.md"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1
START=$(date +%s)
BUDGET=${FN_GPU_CHECK_BUDGET:-480} # seconds for everything: a leased command gets 600
FAILED="" TIMES="" PLANNED=0 STEP="" STEP_AT=0
now() { echo $(( $(date +%s) - START )); }
# step NAME PLAN: ends the step before (its time into TIMES) and starts NAME,
# which may run until the plans so far add up, and never past the budget.
step() {
    end_step
    STEP=$1 STEP_AT=$(now) PLANNED=$(( PLANNED + $2 ))
    TIMES="$TIMES$(printf '%-14s planned %4d s' "$1" "$2")"
    echo; echo "==== $1 (planned $2 s, may run to $PLANNED s) [at $STEP_AT s]"
}
end_step() {
    [ -n "$STEP" ] && TIMES="$TIMES$(printf ', took %4d s' $(( $(now) - STEP_AT )))"$'\n'
    STEP=""
}
# left: seconds this step may still use (at least 10).
left() {
    local t=$(( PLANNED - $(now) )) b=$(( BUDGET - $(now) ))
    [ "$b" -lt "$t" ] && t=$b
    echo $(( t > 10 ? t : 10 ))
}
fail() { echo "!!!! FAILED: $*"; FAILED="$FAILED $1"; }
finish() {
    end_step
    echo; echo "==== steps (planned and actual seconds; budget $BUDGET s, used $(now) s)"
    printf '%s' "$TIMES"
    echo "files in $LOGDIR: $(cd "$LOGDIR" && ls | tr '\n' ' ')"
    if [ -n "$FAILED" ]; then echo "FAILED steps:$FAILED"; else echo "all steps passed; log in $LOG"; fi
    sleep 1 # let tee write the last lines
    [ -z "$FAILED" ]
}

step machine 10
if [ "$DEVICE" = cuda ]; then
    timeout 10 nvidia-smi || fail nvidia-smi
else
    echo "rehearsal: no GPU here; the device steps take their skip paths, the CPU backend stands in"
fi
nvcc --version 2>/dev/null | tail -2 || echo "nvcc not on PATH"
# the toolkit's runtime libraries (libcudart, cuBLAS) for the tests and the
# Python package, where the image's loader configuration does not name them
NVCC=$(command -v nvcc) && CUDA_LIB=$(cd "$(dirname "$NVCC")/.." && pwd)/lib64 &&
    export LD_LIBRARY_PATH="$CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "cores: $(nproc)"

step dependencies 15
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

if ! pkg-config --exists stb libjpeg 2>/dev/null || [ ! -f /usr/include/oneapi/dnnl/dnnl.h ]; then
    echo "stb or libjpeg (pkg-config) or oneDNN (libdnnl-dev) is missing here"
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
        # libjpeg-turbo: the .deb's libjpeg.pc points at /usr, and jconfig.h is in the multiarch folder
        jpeg_so=$(find "$DEPS" -name 'libjpeg.so' | head -1)
        jpeg_h=$(find "$DEPS" -name jpeglib.h | head -1)
        jconf_h=$(find "$DEPS" -name jconfig.h | head -1)
        printf 'Name: libjpeg\nDescription: carried\nVersion: 2\nLibs: -L%s -ljpeg\nCflags: -I%s -I%s\n' \
            "$(dirname "$jpeg_so")" "$(dirname "$jpeg_h")" "$(dirname "$jconf_h")" > "$DEPS/pc/libjpeg.pc"
        export PKG_CONFIG_PATH="$DEPS/pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
        export LD_LIBRARY_PATH="$(dirname "$dnnl_so"):$(dirname "$stb_so"):$(dirname "$jpeg_so"):$(dirname "${opencl:-$dnnl_so}"):$(find "$DEPS" -name 'libpkgconf.so*' -printf '%h\n' | head -1)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
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

step configure 30
CFG=(-DFEATURENORM_CUDA=ON -DCMAKE_BUILD_TYPE=Release "-DFN_SHARED_DATA=$SHARED" ${CMAKE_EXTRA[@]+"${CMAKE_EXTRA[@]}"})
timeout "$(left)" cmake -S "$ROOT" -B "$BUILD" "${CFG[@]}" -DCMAKE_CUDA_ARCHITECTURES=90 || fail configure
step build 145
timeout "$(left)" cmake --build "$BUILD" -j"$(nproc)" || fail build
[ -x "$BUILD/featurenorm" ] || { fail "no featurenorm was built"; finish; exit 1; }

# bench STEPS PRECISIONS [ARGS]: scripts/bench_gpu.py, adding to $RESULTS; it exits
# 2 when featurenorm's numbers differ from PyTorch's (the log says which, and by how much)
bench() {
    FN_CUDA_VERBOSE=1 timeout "$(left)" ${PYTHON:-python3} "$ROOT/scripts/bench_gpu.py" \
        --featurenorm "$BUILD/featurenorm" --device "$DEVICE" --steps "$1" --precisions "$2" \
        --results "$RESULTS" --work "$WORK" --shared-data "$SHARED" --timeout 60 "${@:3}"
}
if [ "$DEVICE" = cuda ]; then
    step fp16 80
    bench numbers,throughput fp16 --only resnet50 || fail fp16
    step precisions 80
    bench numbers,throughput fp32,tf32,bf16 --only resnet50 || fail precisions
    bench throughput fp16 --only resnet20_cifar || fail resnet20
else # the CPU stands in: fp32 only, small batches, the same code path and comparison
    step numbers 80
    bench numbers,throughput fp32 || fail numbers
fi

step cuda-tests 80
# one at a time, most informative first; each says SKIP and why when it cannot run
for t in test_cuda_parity test_cuda_models test_cuda_ops test_cuda_norms; do
    (cd "$BUILD" && timeout "$(left)" ctest -V -R "^$t\$") || fail "$t"
done

step score 40
bench score "" || fail score
finish
