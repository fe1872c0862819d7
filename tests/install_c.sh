#!/usr/bin/env bash
# install_c.sh: a C host of the installed library, as README's "The C API" says:
# `cmake --install` into a temporary prefix, then README's example built with
# find_package(featurenorm) and with pkg-config, and both run on fixture images.
# Usage (CTest): install_c.sh BUILD_DIR SOURCE_DIR [sanitize]
set -eu
build=$1 src=$2 sanitize=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
flags=
[ "$sanitize" = sanitize ] && flags="-fsanitize=address,undefined"  # the library is built so

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log" || fail "cmake --install: $(cat "$tmp/install.log")"
for f in include/featurenorm.h lib/libfeaturenorm.so lib/pkgconfig/featurenorm.pc \
         lib/cmake/featurenorm/featurenormConfig.cmake; do
    [ -e "$tmp/prefix/$f" ] || fail "not installed: $f"
done

# README's C example, exactly as printed: the first ```c block of "## The C API"
mkdir -p "$tmp/app"
awk '/^## The C API/ {on = 1} on && /^```c$/ {inside = 1; next} inside && /^```$/ {exit} inside' \
    "$src/README.md" > "$tmp/app/example.c"
grep -q "fn_score_dataset" "$tmp/app/example.c" || fail "no C example in README.md"
# and its CMakeLists.txt, the ```cmake block after it
awk '/^## The C API/ {on = 1} on && /^```cmake$/ {inside = 1; next} inside && /^```$/ {exit} inside' \
    "$src/README.md" > "$tmp/app/CMakeLists.txt"
grep -q "featurenorm::featurenorm" "$tmp/app/CMakeLists.txt" || fail "no CMakeLists.txt in README.md"

cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_C_FLAGS="$flags" \
      > "$tmp/cmake.log" 2>&1 || fail "find_package(featurenorm): $(cat "$tmp/cmake.log")"
cmake --build "$tmp/app/build" > "$tmp/build.log" 2>&1 || fail "cmake build: $(cat "$tmp/build.log")"

export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
cc $flags -o "$tmp/app/example_pc" "$tmp/app/example.c" $(pkg-config --cflags --libs featurenorm) \
   -Wl,-rpath,"$(pkg-config --variable=libdir featurenorm)" || fail "build with pkg-config"

# run both where the example looks: resnet20.safetensors and images/ in the working folder
mkdir -p "$tmp/run/images"
cp "$src/tests/fixtures/models/resnet20_cifar/model.safetensors" "$tmp/run/resnet20.safetensors"
cp "$src"/tests/fixtures/images/rand_37x23.png "$src"/tests/fixtures/images/rgb_48x32.jpg "$tmp/run/images/"
cd "$tmp/run"
a=$(ASAN_OPTIONS=detect_leaks=1 "$tmp/app/build/example" 2>/dev/null) || fail "example (find_package) failed"
b=$(ASAN_OPTIONS=detect_leaks=1 "$tmp/app/example_pc" 2>/dev/null) || fail "example (pkg-config) failed"
case $a in "images/rand_37x23.png: "[0-9]*) ;; *) fail "example printed '$a'" ;; esac
[ "$a" = "$b" ] || fail "the two builds differ: '$a' vs '$b'"
echo "ok: $a"
