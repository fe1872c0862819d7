#!/usr/bin/env bash
# run_main.sh: build featurenorm and run the main job: the method end to end on
# CIFAR-10 with the real ResNet-20 (block selection over the 50,000 training
# images and their Jigsaw copies, then ID = CIFAR-10 test against Tiny ImageNet
# and Textures), written to out/cifar10_resnet20_shared/ (table.md, plots, ...).
#
# Data: $FN_DATA (default ../shared/data). Without it, fetch the public sets and
# weights first: scripts/fetch_assets.sh --dest data && FN_DATA=data scripts/run_main.sh
# Extra arguments go to scripts/reproduce (e.g. --limit 2000 for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
export FN_DATA=${FN_DATA:-$(cd .. && pwd)/shared/data}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)"
if [ ! -d "$FN_DATA/cifar10-jpeg" ]; then
    echo "run_main: no data at $FN_DATA (set FN_DATA, or run scripts/fetch_assets.sh --dest data)" >&2
    exit 1
fi
# Debian's Python: the one setup_debian.sh gave matplotlib (python3 on PATH may be another)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" scripts/reproduce scripts/experiments/cifar10_resnet20_shared.json \
    --out out/cifar10_resnet20_shared "$@"
