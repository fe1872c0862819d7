#!/usr/bin/env bash
# setup_debian.sh: install what featurenorm needs to build and test on Debian 12.
# The CUDA backend is built too when the CUDA toolkit (nvcc, cuDNN 9, cuBLAS) is
# already installed; it is not a Debian package here.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config libopenblas-dev libstb-dev python3 ca-certificates > /dev/null
echo "setup_debian: build-essential cmake pkg-config libopenblas-dev libstb-dev python3 installed"
# JPEG decoding (the libjpeg-turbo PIL uses); clang with libFuzzer for tests/fuzz
$sudo apt-get install -y -qq --no-install-recommends \
    libjpeg62-turbo-dev clang-14 libclang-rt-14-dev libomp-14-dev > /dev/null
echo "setup_debian: libjpeg62-turbo-dev clang-14 libclang-rt-14-dev libomp-14-dev installed"
