#!/usr/bin/env bash
# cli_hostile.sh: inputs that must neither crash nor exhaust the tool (issue
# #13): crafted image files in a folder, special files in a list, link loops,
# wrong weights, and flags asking for absurd threads or batch memory. Each must
# end in a clear message, with the readable images still scored.
# Usage (CTest): cli_hostile.sh FEATURENORM SOURCE_DIR SHARED_DATA
set -u
fn=$1 src=$2
weights=$src/tests/fixtures/models/resnet20_cifar/model.safetensors
corpus=$src/tests/fuzz/corpus/image
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE NEEDLE -- command...: exit status and a message on stderr/stdout
expect() {
    local want=$1 needle=$2
    shift 3
    local out code
    out=$(timeout 120 "$@" 2>&1)
    code=$?
    if [ $code -ne "$want" ]; then
        fail "$* exited $code, expected $want: $out"
    fi
    case $out in *"$needle"*) ;; *) fail "$* did not say '$needle': $out" ;; esac
}

model=(--arch resnet20_cifar --weights "$weights" --backend cpu)
common=("${model[@]}" --threads 2)

# flags: limits stated, nothing attempted
expect 1 "4096 threads is over the limit of" -- "$fn" info "${model[@]}" --threads 4096
expect 1 "on the CPU; the limit is" -- "$fn" info "${common[@]}" --batch 65536
expect 1 "needs a model max_batch (--batch) of at least 2; it is 1" -- \
    "$fn" select "${common[@]}" --batch 1 --data "$corpus/rgb.png" --out "$tmp/sel.json"
# weights of a deeper network: refused by name unless asked
deeper=$src/tests/fixtures/models/resnet32_cifar/model.safetensors
expect 1 "that resnet20_cifar does not use ('layer1.3.bn1.bias'" -- \
    "$fn" info --arch resnet20_cifar --weights "$deeper" --backend cpu
expect 0 "layer3.2" -- "$fn" info --arch resnet20_cifar --weights "$deeper" --backend cpu \
    --allow-unused-weights

# a folder of crafted images (the crash inputs of issue #13, named as images)
# plus a good one, two links back to the folder and a FIFO (not listed: only
# regular files are): one row, the rest skipped
mkdir -p "$tmp/imgs"
cp "$corpus/rgb.png" "$tmp/imgs/good.png"
cp "$corpus/issue13_pgm16.pgm" "$tmp/imgs/deep.pgm"
cp "$corpus/issue13_pic_named.png" "$tmp/imgs/photo.png"
cp "$corpus/issue13_bad_huffman.jpg" "$tmp/imgs/huff.jpg"
cp "$corpus/issue13_tga_bomb.tga" "$tmp/imgs/bomb.tga"
ln -s . "$tmp/imgs/a"
ln -s . "$tmp/imgs/b"
mkfifo "$tmp/imgs/fifo.png"
expect 0 "skipping unreadable image" -- "$fn" score "${common[@]}" --data "$tmp/imgs" \
    --out "$tmp/scores.csv"
rows=$(($(wc -l < "$tmp/scores.csv") - 1))
[ "$rows" = 1 ] || fail "crafted folder: $rows rows scored, expected 1"
out=$("$fn" score "${common[@]}" --data "$tmp/imgs" --out "$tmp/s2.csv" 2>&1)
for needle in "deep.pgm: 16-bit" "photo.png: not a readable image" "huff.jpg: corrupt JPEG" \
              "bomb.tga: header claims 8000 x 8000 pixels, more than 22 bytes" \
              "imgs/a: skipped, a folder already listed"; do
    case $out in *"$needle"*) ;; *) fail "crafted folder: no '$needle' in: $out" ;; esac
done

# a list naming special files: skipped, not read forever or waited on
printf '%s\n' /dev/zero "$tmp/imgs/fifo.png" "$tmp/imgs/good.png" > "$tmp/list.txt"
expect 0 "/dev/zero: not a regular file" -- "$fn" score "${common[@]}" --data "$tmp/list.txt" \
    --out "$tmp/list.csv"
# a selection that is a FIFO: refused at once, not waited on
expect 1 "fifo.png: not a regular file (a FIFO)" -- "$fn" score "${common[@]}" --data "$tmp/imgs/good.png" \
    --out "$tmp/fifo.csv" --selection "$tmp/imgs/fifo.png"

[ $failures -eq 0 ] && echo "cli_hostile: ok" || echo "cli_hostile: $failures failure(s)"
[ $failures -eq 0 ]
