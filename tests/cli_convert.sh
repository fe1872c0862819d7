#!/usr/bin/env bash
# cli_convert.sh: scripts/convert_weights.py against torch.load, bit for bit
# (scripts/test_convert_weights.py). Needs a Python with torch; skips without.
# Usage (CTest): cli_convert.sh FEATURENORM SOURCE_DIR SHARED_DATA
src=$2
for py in /usr/bin/python3 python3; do
    if command -v "$py" > /dev/null && "$py" -c 'import torch' 2> /dev/null; then
        exec "$py" "$src/scripts/test_convert_weights.py"
    fi
done
echo "SKIP: no python3 with torch (Debian: apt-get install python3-torch) to compare against"
exit 77
