#!/usr/bin/env bash
# fetch_assets.sh: download the public data sets and pretrained weights of the paper's
# experiments and lay them out as scripts/experiments/*.json expect them under $FN_DATA.
#
#   scripts/fetch_assets.sh [--dest DIR] [--only NAME[,NAME...]]... [--list]
#
# --dest DIR   where to put everything (default: $FN_DATA, else ./data)
# --only NAME  fetch only these assets (repeatable; see --list); default: all of them
# --list       print the assets, their sources and where they go, then exit
#
# Each asset is downloaded with curl (10 s connect timeout, a stall and a total time
# limit), checked against its checksum where one is published (MD5 or SHA-256; the
# torchvision and akamaster weight names carry the first hex digits of their SHA-256),
# unpacked, and marked done: a second run skips it. Weights are converted to
# .safetensors beside the original with scripts/convert_weights.py. Nothing here runs
# during the tests.
#
# ImageNet itself cannot be downloaded without an account: put the validation set in
# $FN_DATA/imagenet/val/<wnid>/*.JPEG and the training set in
# $FN_DATA/imagenet/train/<wnid>/*.JPEG (the sorted wnids are torchvision's class order).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
MAX_TIME=14400    # seconds for one file (Places365's test set is 4.4 GB)
PLACES_SUBSET=10000

# name | where under DEST | kind | checksum | URL | what
# kind: archive (tar, unpacked into the folder), svhn (.mat converted to CIFAR binary),
# places (10,000 images sampled from the tar), weights (file kept, plus .safetensors).
# checksum: md5:HEX, sha256:HEX, name (the file name's -HEX. is a SHA-256 prefix), or -.
ASSETS=$(cat <<'EOF'
cifar10|cifar-10-batches-bin|archive|sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd|https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz|CIFAR-10 train (data_batch_*.bin) and test (test_batch.bin), binary
svhn|svhn|svhn|md5:eb5a983be6a315427106f1b164d9cef3|http://ufldl.stanford.edu/housenumbers/test_32x32.mat|SVHN test, 26,032 images, as CIFAR binary svhn/test_32x32.bin
textures|dtd|archive|md5:fff73e5086ae6bdbea199a49dfb8a4c1|https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz|Describable Textures, 5,640 images in dtd/images/<class>/
lsun_crop|LSUN|archive|-|https://www.dropbox.com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz?dl=1|LSUN crop, 10,000 images (ODIN's mirror)
lsun_resize|LSUN_resize|archive|-|https://www.dropbox.com/s/moqh2wh8696c3yl/LSUN_resize.tar.gz?dl=1|LSUN resize, 10,000 images (ODIN's mirror)
isun|iSUN|archive|-|https://www.dropbox.com/s/ssz7qxfqae0cca5/iSUN.tar.gz?dl=1|iSUN, 8,925 images (ODIN's mirror)
places365|places365|places|md5:f532f6ad7b582262a2ec8009075e186b|http://data.csail.mit.edu/places/places365/test_256.tar|Places365 test: 10,000 of 328,500 (seed 0), list places365/test_10k.txt
inaturalist|iNaturalist|archive|-|http://pages.cs.wisc.edu/~huangrui/imagenet_ood_dataset/iNaturalist.tar.gz|iNaturalist OOD subset for ImageNet, 10,000 images (MOS)
sun|SUN|archive|-|http://pages.cs.wisc.edu/~huangrui/imagenet_ood_dataset/SUN.tar.gz|SUN OOD subset for ImageNet, 10,000 images (MOS)
places|Places|archive|-|http://pages.cs.wisc.edu/~huangrui/imagenet_ood_dataset/Places.tar.gz|Places OOD subset for ImageNet, 10,000 images (MOS)
resnet20|weights/cifar10|weights|sha256:12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8|https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet20-12fca82f.th|CIFAR-10 ResNet-20 (akamaster)
resnet32|weights/cifar10|weights|sha256:d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850|https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet32-d509ac18.th|CIFAR-10 ResNet-32 (akamaster)
resnet44|weights/cifar10|weights|sha256:014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4|https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet44-014dd654.th|CIFAR-10 ResNet-44 (akamaster)
resnet56|weights/cifar10|weights|sha256:4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367|https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet56-4bfd9763.th|CIFAR-10 ResNet-56 (akamaster)
resnet50|weights/imagenet|weights|name|https://download.pytorch.org/models/resnet50-0676ba61.pth|torchvision ResNet-50 (IMAGENET1K_V1)
vgg16|weights/imagenet|weights|name|https://download.pytorch.org/models/vgg16-397923af.pth|torchvision VGG-16 (IMAGENET1K_V1)
mobilenet_v3_large|weights/imagenet|weights|name|https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth|torchvision MobileNetV3-Large (IMAGENET1K_V1)
EOF
)

die() { echo "fetch_assets: $*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

DEST=${FN_DATA:-./data}
ONLY=()
LIST=0
while [ $# -gt 0 ]; do
  case $1 in
    --dest) [ $# -ge 2 ] || die "--dest needs a folder"; DEST=$2; shift 2 ;;
    --only) [ $# -ge 2 ] || die "--only needs a name (see --list)"; IFS=, read -r -a names <<<"$2"
            ONLY+=("${names[@]}"); shift 2 ;;
    --list) LIST=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [ "$LIST" = 1 ]; then
  printf '%-19s %-27s %s\n' NAME "FOLDER (under $DEST)" WHAT
  while IFS='|' read -r name target kind sum url what; do
    printf '%-19s %-27s %s\n%-47s %s\n' "$name" "$target" "$what" "" "$url"
  done <<<"$ASSETS"
  exit 0
fi

known=$(cut -d'|' -f1 <<<"$ASSETS")
for name in "${ONLY[@]}"; do
  grep -qx -- "$name" <<<"$known" || die "unknown asset '$name' (see --list)"
done
wanted() { [ ${#ONLY[@]} -eq 0 ] || printf '%s\n' "${ONLY[@]}" | grep -qx -- "$1"; }

command -v curl >/dev/null || die "curl is not installed"
mkdir -p "$DEST/.downloads"
DEST=$(cd "$DEST" && pwd)

# download URL FILE: FILE appears only once complete. Gives up on a connection that
# takes 10 s, a transfer stalled below 1 kB/s for a minute, or MAX_TIME in all.
download() {
  local url=$1 file=$2 rc=0
  echo "  downloading $url"
  curl -fSL --connect-timeout 10 --max-time "$MAX_TIME" --speed-limit 1024 --speed-time 60 \
       --progress-bar -o "$file.part" "$url" || rc=$?
  if [ $rc -ne 0 ]; then
    rm -f "$file.part"
    die "cannot download $url (curl exit status $rc): offline, or the mirror moved?"
  fi
  mv "$file.part" "$file"
}

# verify FILE CHECKSUM
verify() {
  local file=$1 sum=$2 got want
  case $sum in
    md5:*) want=${sum#md5:}; got=$(md5sum "$file" | cut -d' ' -f1) ;;
    sha256:*) want=${sum#sha256:}; got=$(sha256sum "$file" | cut -d' ' -f1) ;;
    name) want=$(sed -n 's/.*-\([0-9a-f]\{8,\}\)\.[a-z]*$/\1/p' <<<"$(basename "$file")")
          got=$(sha256sum "$file" | cut -c1-${#want}) ;;
    -) echo "  no published checksum: not verified"; return 0 ;;
  esac
  if [ "$got" != "$want" ]; then
    rm -f "$file"
    die "$(basename "$file"): checksum mismatch (expected $want, got $got); removed it, run again"
  fi
  echo "  checksum ok (${sum%%:*})"
}

# unpack ARCHIVE TARGET: the archive's single top folder (or all it holds) becomes TARGET.
unpack() {
  local archive=$1 target=$2 stage
  stage=$(mktemp -d "$DEST/.staging.XXXXXX")
  tar -xf "$archive" -C "$stage" || { rm -rf "$stage"; die "$(basename "$archive"): cannot unpack"; }
  local top=("$stage"/*)
  rm -rf "$target"
  if [ ${#top[@]} -eq 1 ] && [ -d "${top[0]}" ]; then
    mv "${top[0]}" "$target"
    rmdir "$stage"
  else
    mv "$stage" "$target"
  fi
}

# SVHN's test_32x32.mat (MATLAB v5: X is 32 x 32 x 3 x N uint8, column-major, y is
# 1..10 with 10 for the digit 0) as CIFAR-10 binary records, which featurenorm reads.
svhn_to_cifar() {
  "$PYTHON" - "$1" "$2" <<'PY'
import struct
import sys
import zlib

NUMERIC = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 9: "d", 12: "q", 13: "Q"}


def subelements(buf):
    """(type, bytes) of the data elements inside a matrix, each padded to 8 bytes."""
    pos = 0
    while pos < len(buf):
        tag, size = struct.unpack_from("<II", buf, pos)
        if tag >> 16:  # small element: size and type share the tag's first word
            yield tag & 0xFFFF, buf[pos + 4:pos + 4 + (tag >> 16)]
            pos += 8
        else:
            yield tag, buf[pos + 8:pos + 8 + size]
            pos += 8 + size + (-size % 8)


def variables(path):
    """name -> (dims, values) of a little-endian MAT-file v5, compressed or not."""
    with open(path, "rb") as f:
        data = f.read()
    if data[126:128] != b"IM":
        sys.exit(f"{path}: not a little-endian MAT-file v5")
    found, pos = {}, 128
    while pos < len(data):
        kind, size = struct.unpack_from("<II", data, pos)
        body = data[pos + 8:pos + 8 + size]
        pos += 8 + size
        if kind == 15:  # miCOMPRESSED: one zlib-compressed element
            body = zlib.decompress(body)
            kind, size = struct.unpack_from("<II", body)
            body = body[8:8 + size]
        if kind != 14:  # only miMATRIX elements hold variables
            continue
        _, (_, dims), (_, name), (kind, raw) = list(subelements(body))[:4]
        dims = struct.unpack(f"<{len(dims) // 4}i", dims)
        code = NUMERIC[kind]
        values = raw if code == "B" else struct.unpack(f"<{len(raw) // struct.calcsize(code)}{code}", raw)
        found[name.decode()] = (dims, values)
    return found


mat = variables(sys.argv[1])
(xdims, x), (_, y) = mat["X"], mat["y"]
if xdims[:3] != (32, 32, 3) or len(y) != xdims[3]:
    sys.exit(f"{sys.argv[1]}: unexpected shapes X {xdims}, y {len(y)}")
out = bytearray()
for i in range(xdims[3]):
    out.append(int(y[i]) % 10)
    image = x[i * 3072:(i + 1) * 3072]
    for c in range(3):
        plane = image[c * 1024:(c + 1) * 1024]  # column-major: element h + 32 * w
        out += b"".join(plane[h::32] for h in range(32))
with open(sys.argv[2] + ".part", "wb") as f:
    f.write(out)
PY
  mv "$2.part" "$2"
}

# places_subset TAR FOLDER: 10,000 of the test images, drawn with seed 0, and a list file.
places_subset() {
  local tar=$1 folder=$2
  mkdir -p "$folder"
  tar -tf "$tar" | "$PYTHON" -c '
import random, sys
names = sorted(n.strip() for n in sys.stdin if n.strip().lower().endswith(".jpg"))
for n in sorted(random.Random(0).sample(names, int(sys.argv[1]))):
    print(n)' "$PLACES_SUBSET" > "$folder/members.txt"
  tar -xf "$tar" -C "$folder" -T "$folder/members.txt"
  mv "$folder/members.txt" "$folder/test_10k.txt"
}

fetched=0
while IFS='|' read -r -u 3 name target kind sum url what; do
  wanted "$name" || continue
  file=$(basename "${url%%\?*}")
  if [ "$kind" = weights ]; then
    done_marker="$DEST/$target/${file%.*}.safetensors"
  else
    done_marker="$DEST/$target/.fetched"
  fi
  if [ -e "$done_marker" ]; then
    echo "$name: already in $DEST/$target"
    continue
  fi
  echo "$name: $what"
  archive="$DEST/.downloads/$file"
  [ -e "$archive" ] || download "$url" "$archive"
  verify "$archive" "$sum"
  case $kind in
    archive) unpack "$archive" "$DEST/$target" ;;
    svhn) mkdir -p "$DEST/$target"; svhn_to_cifar "$archive" "$DEST/$target/test_32x32.bin" ;;
    places) rm -rf "${DEST:?}/$target"; places_subset "$archive" "$DEST/$target" ;;
    weights)
      mkdir -p "$DEST/$target"
      mv "$archive" "$DEST/$target/$file"
      "$PYTHON" "$HERE/convert_weights.py" "$DEST/$target/$file" "$done_marker.part"
      mv "$done_marker.part" "$done_marker" ;;
  esac
  if [ "$kind" != weights ]; then
    printf '%s\n%s\n' "$url" "$sum" > "$done_marker"
    rm -f "$archive"
  fi
  echo "  -> $DEST/$target"
  fetched=$((fetched + 1))
done 3<<<"$ASSETS"
echo "fetch_assets: $fetched fetched into $DEST"
