#!/usr/bin/env bash
# cli_calibrate.sh: `featurenorm calibrate` stores a threshold in the selection that keeps
# 95 % of the ID validation images; `score --selection` then writes the `ood` column, and
# a selection with a broken threshold is refused, naming the file.
#
#   bash tests/cli_calibrate.sh FEATURENORM SOURCE_DIR SHARED_DATA   (exit 77: skipped)
set -u
fn=$1 src=$2 data=$3
weights=$data/weights/cifar10/resnet20-12fca82f.th
for need in "$weights" "$data/cifar10-jpeg/train" "$data/cifar10-jpeg/test" "$data/dtd10"; do
  [ -e "$need" ] || { echo "SKIP: $need not found (shared data absent)"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
/usr/bin/python3 "$src/scripts/convert_weights.py" "$weights" "$tmp/r20.safetensors" > /dev/null || fail convert
net=(--arch resnet20_cifar --weights "$tmp/r20.safetensors" --quiet)
"$fn" select "${net[@]}" --data "$data/cifar10-jpeg/train" --every 166 --limit 300 --out "$tmp/sel.json" \
  > /dev/null || fail select
"$fn" calibrate "${net[@]}" --data "$data/cifar10-jpeg/test" --every 50 --selection "$tmp/sel.json" \
  --score energy_fn --out "$tmp/cal.json" > "$tmp/cal.txt" || fail calibrate
grep -q '"threshold": {"score": "energy_fn"' "$tmp/cal.json" || fail "no threshold in the selection"
grep -q "keeps 95.00% of 200 ID images" "$tmp/cal.txt" || fail "calibrate said: $(cat "$tmp/cal.txt")"
# On the calibration images themselves: at most 5 % flagged (10 of 200).
"$fn" score "${net[@]}" --data "$data/cifar10-jpeg/test" --every 50 --selection "$tmp/cal.json" \
  --out "$tmp/val.csv" || fail "score val"
flagged=$(awk -F, 'NR == 1 { if ($NF != "ood") exit 1; next } { s += $NF } END { print s }' "$tmp/val.csv") ||
  fail "no ood column"
[ "$flagged" -le 10 ] || fail "$flagged of 200 calibration images flagged"
"$fn" score "${net[@]}" --data "$data/dtd10" --limit 40 --selection "$tmp/cal.json" --out "$tmp/dtd.csv" ||
  fail "score dtd"
echo "calibration images flagged: $flagged / 200; textures: $(awk -F, 'NR > 1 { s += $NF } END { print s }' "$tmp/dtd.csv") / 40"
sed 's/"score": "energy_fn"/"score": "nope"/' "$tmp/cal.json" > "$tmp/bad.json"
"$fn" score "${net[@]}" --data "$data/dtd10" --limit 4 --selection "$tmp/bad.json" --out "$tmp/x.csv" \
  2> "$tmp/err.txt" && fail "a threshold for an unknown score was accepted"
grep -q "bad.json: threshold.score" "$tmp/err.txt" || fail "message: $(cat "$tmp/err.txt")"
echo ok
