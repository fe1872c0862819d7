#!/usr/bin/env bash
# cli_reproduce.sh: scripts/reproduce end to end on a few hundred real images (ResNet-20,
# CIFAR-10 JPEGs vs Tiny ImageNet and Textures), then a re-run that must skip every step,
# a re-run with another --limit that must not, and the one-line errors.
#
#   bash tests/cli_reproduce.sh FEATURENORM SOURCE_DIR SHARED_DATA   (exit 77: skipped)
set -u
fn=$1 src=$2 data=$3

command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
for need in cifar10-jpeg/train cifar10-jpeg/test tinyimagenet-val dtd10 \
            weights/cifar10/resnet20-12fca82f.th; do
  [ -e "$data/$need" ] || { echo "SKIP: $data/$need not found (shared data absent)"; exit 77; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The shipped experiment's sets, cut down: every K-th image keeps all ten classes.
export FN_DATA=$data
cat > "$tmp/exp.json" <<'EOF'
{
  "_comment": "cli_reproduce.sh: cifar10_resnet20_shared on 300 + 200 + 2 x 200 images",
  "name": "reproduce_test",
  "network": {"arch": "resnet20_cifar", "weights": "${FN_DATA}/weights/cifar10/resnet20-12fca82f.th"},
  "select": {"path": "${FN_DATA}/cifar10-jpeg/train", "every": 166, "limit": 300},
  "id": {"name": "CIFAR-10", "path": "${FN_DATA}/cifar10-jpeg/test", "labels": true, "every": 50},
  "ood": {"TinyImageNet": {"path": "${FN_DATA}/tinyimagenet-val", "limit": 200},
          "Textures": {"path": "${FN_DATA}/dtd10", "every": 6}},
  "react_percentile": 90
}
EOF
out=$tmp/out
reproduce() { python3 "$src/scripts/reproduce" "$tmp/exp.json" --out "$out" --featurenorm "$fn" "$@"; }

reproduce > "$tmp/run1.txt" 2>&1 || { cat "$tmp/run1.txt"; fail "first run failed"; }
for f in selection.json scores/CIFAR-10.csv scores/TinyImageNet.csv scores/Textures.csv eval.json \
         table.md table.csv normratio.csv blocks.csv blocks.md summary.json log.txt selection.fit \
         eval_openood.json table_openood.md; do
  [ -s "$out/$f" ] || fail "$f missing or empty"
done

# table.md: the paper's layout, every cell FPR95/AUROC.
grep -q '^| Method | TinyImageNet | Textures | Average |$' "$out/table.md" || fail "table.md header"
for row in 'MSP' 'MaxLogit' 'Energy' 'Entropy' 'GEN' 'GradNorm' 'Mahalanobis' 'fDBD' \
           'ReAct+Energy (p90)' 'FeatureNorm (last block, layer3.2)' 'FeatureNorm (selected block, ' \
           'MSP with the selected norm' 'ReAct+Energy with the selected norm (p90)'; do
  grep -qF "| $row" "$out/table.md" || fail "table.md has no row '$row'"
done
cells='[0-9]+\.[0-9]{2}/[0-9]+\.[0-9]{2}'
# 9 baselines, FeatureNorm of 2 blocks, 7 baselines with the selected norm
[ "$(grep -cE "^\| [^|]+ \| $cells \| $cells \| $cells \|$" "$out/table.md")" = 18 ] ||
  fail "table.md: expected 18 rows of 3 FPR95/AUROC cells"
[ "$(grep -cE "^\| [^|]+ \| $cells \| $cells \| $cells \|$" "$out/table_openood.md")" = 18 ] ||
  fail "table_openood.md: expected 18 rows of 3 FPR@95/AUROC cells"
grep -q 'ReAct+Energy' "$out/table.csv" || fail "table.csv has no ReAct row"

python3 - "$out" <<'EOF' || fail "output files inconsistent"
import csv, json, os, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "normratio.csv"))))
assert len(rows) == 9, f"normratio.csv: {len(rows)} blocks, not 9"
assert [r["selected"] for r in rows].count("1") == 1
sel = json.load(open(os.path.join(out, "selection.json")))
best = max(rows, key=lambda r: float(r["norm_ratio"]))["block"]
assert best == sel["selected"], (best, sel["selected"])
blocks = list(csv.DictReader(open(os.path.join(out, "blocks.csv"))))
assert [b["block"] for b in blocks] == [r["block"] for r in rows]
for b in blocks:
    for col in ("TinyImageNet AUROC", "Textures FPR95", "Average AUROC"):
        assert 0 <= float(b[col]) <= 100, (b["block"], col, b[col])
s = json.load(open(os.path.join(out, "summary.json")))
assert s["images"] == {"select": 300, "select_skipped": 0, "id": 200,
                       "ood": {"TinyImageNet": 200, "Textures": 200}}, s["images"]
assert s["selected_block"]["name"] == sel["selected"]
assert 0.5 < s["id_accuracy"] < 1, s["id_accuracy"]
assert all(t["ran"] for t in s["timings"].values()), s["timings"]
EOF

# A second run finds every step done.
before=$(stat -c %Y.%s "$out/selection.json" "$out/scores/CIFAR-10.csv")
reproduce > "$tmp/run2.txt" 2>&1 || { cat "$tmp/run2.txt"; fail "second run failed"; }
grep -q 'running' "$tmp/run2.txt" && { cat "$tmp/run2.txt"; fail "second run redid a step"; }
for step in convert select 'score CIFAR-10' 'score TinyImageNet' 'score Textures' eval eval-blocks; do
  grep -q "^\[$step\] .*skipped" "$tmp/run2.txt" || fail "second run did not skip $step"
done
[ "$before" = "$(stat -c %Y.%s "$out/selection.json" "$out/scores/CIFAR-10.csv")" ] ||
  fail "second run rewrote outputs"
grep -q '^| Method |' "$tmp/run2.txt" || fail "second run did not print the table"

# --limit changes the commands, so select, score and eval run again (conversion does not).
reproduce --limit 150 --quiet > "$tmp/run3.txt" 2>&1 || { cat "$tmp/run3.txt"; fail "--limit run failed"; }
python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["images"]["select"] == 150 and s["images"]["id"] == 150, s["images"]
t = s["timings"]
assert not t["convert"]["ran"] and t["select"]["ran"] and t["eval"]["ran"], t
' "$out/summary.json" || fail "--limit 150 did not re-run the affected steps"

# Errors: one line and exit 1.
msg=$(FN_DATA=$tmp/none reproduce 2>&1) && fail "missing data accepted"
{ [ "$(wc -l <<<"$msg")" = 1 ] && grep -q 'select.path: .* does not exist' <<<"$msg"; } ||
  fail "missing data: '$msg'"
msg=$(python3 "$src/scripts/reproduce" "$tmp/exp.json" --out "$out" --featurenorm "$tmp/nope" 2>&1) &&
  fail "missing binary accepted"
grep -q 'featurenorm binary not found' <<<"$msg" || fail "missing binary: '$msg'"
echo '{"network": {"arch": "resnet20_cifar"}, "oops": 1}' > "$tmp/bad.json"
msg=$(python3 "$src/scripts/reproduce" "$tmp/bad.json" --out "$out" --featurenorm "$fn" 2>&1) &&
  fail "bad experiment accepted"
grep -q 'unknown key oops' <<<"$msg" || fail "bad experiment: '$msg'"

echo "PASS: reproduce ($(grep -c . "$out/log.txt") log lines)"
