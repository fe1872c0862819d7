#!/usr/bin/env bash
# setup_debian.sh: install what featurenorm needs to build and test on Debian 12.
# The CUDA backend is built too when the CUDA toolkit (nvcc, cuDNN 9, cuBLAS) is
# already installed; it is not a Debian package here.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
packages=(
    build-essential cmake pkg-config ca-certificates
    libdnnl-dev libstb-dev               # the CPU backend (oneDNN); image decoding
    libopenmpi-dev openmpi-bin           # scale-out: mpirun -n N featurenorm ...
    python3 python3-matplotlib           # scripts/reproduce and its plots (Debian's python3)
    python3-numpy python3-pytest python3-pip python3-venv   # python/featurenorm: tests, pip install .
    libprotobuf-c-dev protobuf-c-compiler libonnx-dev   # --model FILE.onnx (reader generated at build)
    libjpeg62-turbo-dev                  # JPEG: the libjpeg-turbo PIL decodes with, bit-exact
    clang-14 libclang-rt-14-dev libomp-14-dev   # tests/fuzz (libFuzzer) and the TSan pass
)
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" > /dev/null
echo "setup_debian: installed ${packages[*]}"
