#!/usr/bin/env bash
# cli_basic.sh: the command line as a user meets it: help, info, select, score
# and eval on a small folder with every kind of awkward file, and clear errors
# (non-zero exit, a message naming the file and the problem) for bad input.
# Usage (CTest): cli_basic.sh FEATURENORM SOURCE_DIR SHARED_DATA
set -u
fn=$1 src=$2
weights=$src/tests/fixtures/models/resnet20_cifar/model.safetensors
images=$src/tests/fixtures/images
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE NEEDLE -- command...: exit status and a message on stderr/stdout
expect() {
    local want=$1 needle=$2
    shift 3
    local out code
    out=$("$@" 2>&1)
    code=$?
    if [ "$want" = nonzero ]; then
        [ $code -ne 0 ] || fail "$* exited 0, expected an error"
        [ $code -lt 128 ] || fail "$* crashed (exit $code)"
    elif [ $code -ne "$want" ]; then
        fail "$* exited $code, expected $want: $out"
    fi
    case $out in *"$needle"*) ;; *) fail "$* did not say '$needle': $out" ;; esac
}

common=(--arch resnet20_cifar --weights "$weights" --backend cpu --threads 2)

expect 0 "usage: featurenorm COMMAND" -- "$fn" --help
expect 2 "unknown command 'frobnicate'" -- "$fn" frobnicate
for cmd in info select score eval bench; do
    expect 0 "usage: featurenorm $cmd" -- "$fn" $cmd --help
done
expect 0 "wrn28_10" -- "$fn" info
expect 0 "layer3.2         64 x 8 x 8" -- "$fn" info --arch resnet20_cifar
expect 0 "features.17" -- "$fn" info --arch mobilenet_v2
expect 0 "block3.3         640 x 8 x 8" -- "$fn" info --arch wrn28_10
expect 2 "unknown option '--bogus'" -- "$fn" info --bogus
expect 2 "--batch 0: expected an integer from 1" -- "$fn" info "${common[@]}" --batch 0
expect 2 "--backend gpu: expected one of auto cpu cuda" -- "$fn" info --arch resnet20_cifar --backend gpu
expect 1 "unknown architecture 'resnet21'" -- "$fn" info --arch resnet21
expect 1 "missing tensor 'features.0.weight'" -- "$fn" info --arch vgg16 --weights "$weights"
expect 1 "the CPU backend computes in fp32 or bf16" -- "$fn" info "${common[@]}" --precision fp16
expect nonzero "no.safetensors" -- "$fn" info --arch resnet20_cifar --weights "$tmp/no.safetensors"
head -c 1000 "$weights" > "$tmp/cut.safetensors"
expect 1 "cut.safetensors" -- "$fn" info --arch resnet20_cifar --weights "$tmp/cut.safetensors"

# a folder with good images of several kinds and sizes, and broken ones
mkdir -p "$tmp/data/sub" "$tmp/empty"
cp "$images"/rand_37x23.png "$images"/gray_40x24.jpg "$images"/cmyk_40x24.jpg "$images"/rgb16_20x15.png \
   "$images"/one_1x1.png "$images"/palette_33x17.png "$images"/progressive_48x32.jpg "$tmp/data/"
cp "$images"/synth_449x300.png "$tmp/data/sub/"
head -c 300 "$images/rgb_48x32.jpg" > "$tmp/data/truncated.jpg"
: > "$tmp/data/zero.jpg"
echo "not a picture" > "$tmp/data/text.png"

expect 1 "no images found" -- "$fn" score "${common[@]}" --data "$tmp/empty" --out "$tmp/x.csv"
expect 1 "text.png: not a readable image" -- "$fn" score "${common[@]}" --data "$tmp/data" --out "$tmp/strict.csv" --strict --quiet
[ ! -e "$tmp/strict.csv" ] || fail "a failed run left $tmp/strict.csv behind"
expect 0 "skipping unreadable image: $tmp/data/truncated.jpg: truncated JPEG" -- \
    "$fn" score "${common[@]}" --data "$tmp/data" --out "$tmp/scores.csv" --npy "$tmp/norms.npy"
rows=$(($(wc -l < "$tmp/scores.csv") - 1))
[ "$rows" -eq 8 ] || fail "scores.csv has $rows rows, expected 8 readable images"
head -1 "$tmp/scores.csv" | grep -q '^path,pred,fn.layer1.0,.*,fn.layer3.2,msp,maxlogit,energy,entropy,gen,gradnorm$' ||
    fail "unexpected CSV header: $(head -1 "$tmp/scores.csv")"
ls "$tmp"/*.tmp.* > /dev/null 2>&1 && fail "temporary files left behind"

expect 0 "<- selected" -- "$fn" select "${common[@]}" --data "$tmp/data" --out "$tmp/selection.json" --quiet
expect 0 "scored 8 images" -- "$fn" score "${common[@]}" --data "$tmp/data" --out "$tmp/id.csv" \
    --selection "$tmp/selection.json"
head -1 "$tmp/id.csv" | grep -q 'fn_selected,msp,maxlogit,energy,react_energy,entropy,gen,gradnorm,msp_fn,.*,gradnorm_fn$' ||
    fail "score --selection did not add fn_selected, react_energy and the _fn rows"
expect 0 "" -- "$fn" score "${common[@]}" --data "$tmp/data/sub" --out "$tmp/ood.csv" \
    --block layer2.1 --quiet
expect 1 "--block layer9.9: no such block" -- "$fn" score "${common[@]}" --data "$tmp/data" --out "$tmp/o.csv" --block layer9.9
expect 0 "| FeatureNorm (selected block) |" -- "$fn" eval --id "$tmp/id.csv" --ood "Sub=$tmp/id.csv"
expect 0 "| MSP |" -- "$fn" eval --id "$tmp/id.csv" --ood "A=$tmp/id.csv" --ood "B=$tmp/id.csv" --json "$tmp/m.json"
grep -q '"auroc": 0.5' "$tmp/m.json" || fail "identical ID and OOD scores should give AUROC 0.5"
expect 1 'no column "react_energy"' -- "$fn" eval --id "$tmp/id.csv" --ood "X=$tmp/ood.csv" --score react_energy
expect 2 "expected NAME=FILE" -- "$fn" eval --id "$tmp/id.csv" --ood "$tmp/ood.csv"
# every block by pattern, in one call; names with quotes escaped in JSON
expect 0 "| FeatureNorm (layer1.0) |" -- "$fn" eval --id "$tmp/id.csv" --ood "X=$tmp/ood.csv" --score 'fn.*'
expect 0 "| FeatureNorm (layer3.2) |" -- "$fn" eval --id "$tmp/id.csv" --ood 'say "hi",x='"$tmp/ood.csv" \
    --score 'fn.*' --json "$tmp/q.json" --csv "$tmp/q.csv"
grep -q '"say \\"hi\\",x": ' "$tmp/q.json" || fail "a set name with quotes was not escaped in JSON"
grep -q '^fn.layer1.0,"say ""hi"",x",' "$tmp/q.csv" || fail "a set name with a comma was not quoted in CSV"
awk -F, 'NR == 2 { $5 = "oops" } { print }' OFS=, "$tmp/ood.csv" > "$tmp/bad.csv"
expect 1 'bad.csv:2: column "fn.layer1.2" (field 5): "oops" is not a number' -- \
    "$fn" eval --id "$tmp/id.csv" --ood "X=$tmp/bad.csv" --score 'fn.*'
expect 1 "made for resnet20_cifar, but the model is resnet32_cifar" -- "$fn" score --arch resnet32_cifar \
    --weights "$src/tests/fixtures/models/resnet32_cifar/model.safetensors" --data "$tmp/data" \
    --out "$tmp/o.csv" --selection "$tmp/selection.json"
expect 0 "images/s" -- "$fn" bench "${common[@]}" --batch 8 --iters 2 --warmup 1

if [ $failures -ne 0 ]; then
    echo "cli_basic: $failures failure(s)"
    exit 1
fi
echo "cli_basic: ok"
