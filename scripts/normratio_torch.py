#!/usr/bin/env python3
"""NormRatio per block computed by PyTorch, to check `featurenorm select`.

The same images (a folder, sorted by path, with --every/--limit as featurenorm
applies them), the same Jigsaw copies (featurenorm's permutation generator,
reimplemented here: image i's permutation depends only on the seed and i), the
same definition (SPEC.md): R_n = mean_i FN(x_i; B_n) / FN(jigsaw(x_i); B_n).
Images are decoded by PIL rather than stb_image, so JPEG inputs differ slightly.

    /usr/bin/python3 scripts/normratio_torch.py --arch resnet20_cifar \
        --weights ../shared/data/weights/cifar10/resnet20-12fca82f.th \
        --data ../shared/data/cifar10-jpeg/train [--selection selection.json]

With --selection (from `featurenorm select` on the same data and seed) it prints
both side by side with their relative differences.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def jigsaw_permutation(seed, index):
    """perm[t] = grid position of source tile t, as host/jigsaw.c makes it."""
    state, _ = splitmix64((seed ^ (index * 0xD1B54A32D192ED03)) & M64)
    perm = list(range(9))
    for i in range(8, 0, -1):
        state, r = splitmix64(state)
        j = ((r >> 32) * (i + 1)) >> 32
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def jigsaw(img, perm):
    """uint8 HxWx3 -> its Jigsaw copy: 3x3 tiles of floor(H/3), zero border."""
    t = img.shape[0] // 3
    out = np.zeros_like(img)
    for src, dst in enumerate(perm):
        sy, sx, dy, dx = src // 3 * t, src % 3 * t, dst // 3 * t, dst % 3 * t
        out[dy:dy + t, dx:dx + t] = img[sy:sy + t, sx:sx + t]
    return out


def list_images(folder, every, limit):
    exts = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".ppm", ".pgm", ".pnm")
    files = []
    for dirpath, dirnames, names in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files += [os.path.join(dirpath, n) for n in names
                  if not n.startswith(".") and n.lower().endswith(exts)]
    files.sort()
    files = files[::every]
    return files[:limit] if limit else files


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--weights", required=True, help=".th (akamaster) or .safetensors")
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--selection", help="featurenorm's selection.json to compare with")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, blocks = rm.build(args.arch)
    if args.weights.endswith(".safetensors"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import make_fixtures
        state = {k: torch.from_numpy(v) for k, v in make_fixtures.read_safetensors(args.weights).items()}
        model.load_state_dict(state)
    else:
        rm.load_akamaster_checkpoint(model, args.weights)
    model.eval()
    files = list_images(args.data, args.every, args.limit)
    size = 32 if args.arch.endswith("_cifar") or args.arch == "wrn28_10" else 224
    ratio = np.zeros(len(blocks))
    fn_id = np.zeros(len(blocks))
    fn_jig = np.zeros(len(blocks))
    for start in range(0, len(files), args.batch):
        chunk = files[start:start + args.batch]
        ids = []
        for f in chunk:
            with Image.open(f) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                ids.append(np.asarray(im))
        jigs = [jigsaw(img, jigsaw_permutation(args.seed, start + i)) for i, img in enumerate(ids)]
        x = torch.from_numpy(rm.normalize_u8(np.stack(ids + jigs)))
        _, _, outputs = rm.forward_taps(model, blocks, x)
        n = len(chunk)
        for b, z in enumerate(outputs):
            fn = rm.feature_norm(z.double()).numpy()
            ratio[b] += (fn[:n] / fn[n:]).sum()
            fn_id[b] += fn[:n].sum()
            fn_jig[b] += fn[n:].sum()
        print(f"\r{start + n}/{len(files)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    n = len(files)
    ratio, fn_id, fn_jig = ratio / n, fn_id / n, fn_jig / n
    theirs = None
    if args.selection:
        with open(args.selection) as f:
            theirs = {b["name"]: b for b in json.load(f)["blocks"]}
    print(f"{n} images, seed {args.seed}; PyTorch selects {blocks[int(np.argmax(ratio))][0]}")
    head = f"{'block':<12} {'NormRatio':>10} {'FN(ID)':>10} {'FN(Jigsaw)':>10}"
    print(head + (f" {'featurenorm':>12} {'rel. diff':>10}" if theirs else ""))
    for b, (name, _) in enumerate(blocks):
        line = f"{name:<12} {ratio[b]:>10.4f} {fn_id[b]:>10.4f} {fn_jig[b]:>10.4f}"
        if theirs:
            ours = theirs[name]["norm_ratio"]
            line += f" {ours:>12.4f} {abs(ours - ratio[b]) / ratio[b]:>10.2e}"
        print(line)


if __name__ == "__main__":
    main()
