#!/usr/bin/env bash
# setup_reference_venv.sh: the venv whose pytorch-ood computes the reference scores
# (scripts/detector_reference.py, tests/cli_detect.sh), beside Debian's torch 1.13:
#
#   scripts/setup_reference_venv.sh [VENV]     (default: .venv-reference in the repository)
#
# Needs Debian's python3-torch, python3-sklearn and python3-scipy (system site packages).
# --no-deps keeps pip from replacing Debian's torch; the versions are the last that
# import with it.
set -euo pipefail
venv=${1:-$(dirname "$0")/../.venv-reference}
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q --no-deps pytorch-ood==0.2.3 torchmetrics==1.2.1 lightning-utilities==0.10.0
"$venv/bin/python" -c "import pytorch_ood; print('pytorch-ood', pytorch_ood.__version__, 'in $venv')"
