#!/usr/bin/env bash
# run.sh: the Python package's tests (pytest) against this build's library and CLI.
# Usage (CTest): run.sh LIBFEATURENORM FEATURENORM SOURCE_DIR SHARED_DATA [sanitize]
# Skips (77) without a python3 having numpy and pytest (Debian: python3-numpy python3-pytest).
set -u
lib=$1 exe=$2 src=$3 data=$4 sanitize=${5:-}
py=
for p in ${FN_PYTHON:-} /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null && "$p" -c "import numpy, pytest" 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || { echo "SKIP: no python3 with numpy and pytest (apt-get install python3-numpy python3-pytest)"; exit 77; }
export FEATURENORM_LIBRARY=$lib FEATURENORM_EXE=$exe FN_SHARED_DATA=$data PYTHONDONTWRITEBYTECODE=1
if [ "$sanitize" = sanitize ]; then
    # an ASan library in a host that is not: its runtime must be loaded first;
    # Python's own allocations at exit are not ours to report
    export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
fi
exec "$py" -m pytest -q -p no:cacheprovider "$src/tests/python" -rs
