#!/usr/bin/env bash
# gpu_rehearse.sh (scripts/gpu_check.sh --rehearse): the whole GPU check on a
# machine without a GPU, in a bare root like the GPU machine's image, so that a
# green rehearsal means the build and every script start there.
#   - the root: debootstrap --variant=minbase of this machine's Debian release,
#     the mirror taken from its apt configuration, plus what the GPU image holds
#     (gcc/g++/make, CMake, python3 with torch, torchvision, numpy and PIL) and no -dev
#     package; made once into build-rehearse/root (a few minutes), reused after;
#   - the CUDA toolkit bound in read-only at /usr/local/cuda (the GPU image has nvcc);
#   - the working tree as the device tool carries it: tracked and untracked
#     non-ignored files, and carry/ (made here by --fetch-debs when missing);
#   - no network (unshare -n), FN_REHEARSAL=1: the device steps skip, the
#     numbers run against the CPU backend.
# Needs root, debootstrap and network (for the root and the debs, once).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/build-rehearse
FS=$HERE/root
CUDA=$(readlink -f "${CUDA_HOME:-/usr/local/cuda}")
PACKAGES="gcc g++ make cmake python3 python3-numpy python3-torch python3-torchvision python3-pil"

mirror() { # the first Debian mirror in this machine's apt configuration
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}'; } | grep -m1 debian
}
make_root() {
    [ -f "$FS/.ready" ] && return
    local release; release=$(. /etc/os-release && echo "$VERSION_CODENAME")
    echo "making the bare root in $FS ($release, minbase, $(mirror))"
    rm -rf "$FS" && mkdir -p "$FS"
    debootstrap --variant=minbase "$release" "$FS" "$(mirror)" > "$HERE/debootstrap.log"
    cp /etc/resolv.conf "$FS/etc/resolv.conf"
    chroot "$FS" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$FS" apt-get install -y -qq --no-install-recommends $PACKAGES \
        > "$HERE/apt.log"
    chroot "$FS" apt-get clean
    touch "$FS/.ready"
}
copy_tree() { # what the device tool carries: tracked, untracked non-ignored, carry/
    rm -rf "$FS/src" "$FS/out" && mkdir -p "$FS/src" "$FS/out"
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - carry) |
        tar -C "$FS/src" -xf -
}
unmount() {
    for m in "$FS/usr/local/cuda" "$FS/proc" "$FS/dev"; do
        mountpoint -q "$m" && umount -l "$m"
    done
    return 0
}

mkdir -p "$HERE"
make_root
[ -d "$ROOT/carry/debs" ] || bash "$ROOT/scripts/gpu_check.sh" --fetch-debs
if chroot "$FS" dpkg -l | grep -q -- '-dev '; then
    echo "the bare root holds -dev packages: it would not stand for the GPU image"; exit 1
fi
copy_tree
trap unmount EXIT
mkdir -p "$FS/usr/local/cuda" "$FS/proc" "$FS/dev"
mount --bind "$CUDA" "$FS/usr/local/cuda" && mount -o remount,bind,ro "$FS/usr/local/cuda"
mount -t proc proc "$FS/proc"
mount --bind /dev "$FS/dev"
start=$(date +%s)
rc=0
unshare -n chroot "$FS" /usr/bin/env -i PATH=/usr/local/cuda/bin:/usr/bin:/bin HOME=/root \
    OUT=/out FN_REHEARSAL=1 bash /src/scripts/gpu_check.sh || rc=$?
echo
echo "rehearsal: exit $rc after $(( $(date +%s) - start )) s, no network, bare root $FS"
echo "files that would come back from \$OUT (at most 8):"
(cd "$FS/out" && find . -type f -printf '  %P (%s bytes)\n')
n=$(find "$FS/out" -type f | wc -l)
[ "$n" -le 8 ] || { echo "too many files in \$OUT: $n"; rc=1; }
rm -rf "$HERE/out" && cp -r "$FS/out" "$HERE/out"
exit $rc
