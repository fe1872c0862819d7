#!/usr/bin/python3
"""make_image_fixtures.py: reference outputs of PIL / torchvision for tests/test_image.c.

Run with Debian's Python (PIL 9.4, torchvision 0.14):

    /usr/bin/python3 scripts/make_image_fixtures.py [--shared ../shared/data]

Writes into tests/fixtures/images/:
  - small input images made here (PNG in every flavour stb and PIL both read
    losslessly, plus a few JPEGs),
  - expected/*.u8: raw h x w x 3 bytes, PIL's Image.resize(BILINEAR) or
    torchvision's eval transform of those inputs (and of a few PNGs from the
    shared data, which itself is never copied here),
  - manifest.txt: one check per line, parsed by the C test.

PNG and JPEG inputs must match bit for bit (same pixels in, same resize; JPEG
through libjpeg-turbo on both sides). JPEG lines keep a tolerance field, 0.
Corrupt files (empty, truncated, text named .png) are made by the C test at
run time, not stored. The output is deterministic (fixed seed).
"""
import argparse
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image
import torchvision.transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "images")
EXP = os.path.join(OUT, "expected")

rng = np.random.default_rng(20240611)
manifest = []


def save_png16(path, arr16):
    """16-bit RGB PNG written by hand (PIL cannot write 16-bit RGB)."""
    h, w, _ = arr16.shape
    raw = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def synthetic(w, h):
    """Smooth waves, sharp-edged checks and a patch of noise: exercises the
    filter everywhere while staying small as a PNG."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 110 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    g = (xx * 3 + yy * 2) % 256
    b = ((xx // 13 + yy // 9) % 2) * 190 + 30
    img = np.stack([r, g, b], axis=-1).round().clip(0, 255).astype(np.uint8)
    ph, pw = max(1, h // 5), max(1, w // 5)
    img[:ph, -pw:] = rng.integers(0, 256, (ph, pw, 3), dtype=np.uint8)
    return img


def rgb_of(path):
    """What torchvision's ImageFolder loader hands to the transforms."""
    with Image.open(path) as im:
        return im.convert("RGB")


def write_expected(name, pil_img):
    a = np.asarray(pil_img, dtype=np.uint8)
    assert a.ndim == 3 and a.shape[2] == 3, a.shape
    rel = "expected/" + name + ".u8"
    with open(os.path.join(OUT, rel), "wb") as f:
        f.write(a.tobytes())
    return rel, a.shape[1], a.shape[0]


def resize_case(src, tag, path, w, h):
    rel, _, _ = write_expected(f"{tag}_resize_{w}x{h}", rgb_of(path).resize((w, h), Image.BILINEAR))
    manifest.append(f"resize {src} {w} {h} {rel}")


def preset_case(src, tag, path, preset, size):
    if preset == "cifar":
        tf = T.Resize((size, size))
    else:
        s = (size * 256 + 112) // 224  # size * 256 / 224 to nearest (256 for 224)
        tf = T.Compose([T.Resize(s), T.CenterCrop(size)])
    rel, w, h = write_expected(f"{tag}_{preset}_{size}", tf(rgb_of(path)))
    assert (w, h) == (size, size)
    manifest.append(f"preset {src} {preset} {size} {rel}")


def jpeg_case(src, tag, path, tol):
    """PIL's decode, to compare within a tolerance (mean absolute difference)."""
    rel, w, h = write_expected(f"{tag}_decode", rgb_of(path))
    manifest.append(f"jpeg {src} {w} {h} {rel} {tol}")


def colour_case(kind, src, path):
    """A grey or CMYK JPEG: size and PIL's channel means (the C test also
    checks R == G == B for grey)."""
    a = np.asarray(rgb_of(path), dtype=np.float64)
    means = " ".join(f"{m:.3f}" for m in a.reshape(-1, 3).mean(0))
    manifest.append(f"{kind} {src} {a.shape[1]} {a.shape[0]} {means}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.environ.get("FN_SHARED_DATA",
                                                      os.path.join(ROOT, "..", "shared", "data")))
    args = ap.parse_args()
    os.makedirs(EXP, exist_ok=True)
    for d in (OUT, EXP):  # start clean so removed cases leave nothing behind
        for f in os.listdir(d):
            if f.endswith((".png", ".jpg", ".u8")) or f == "manifest.txt":
                os.remove(os.path.join(d, f))

    # ---- inputs made here ------------------------------------------------
    made = {}

    def put(name, img, **save):
        p = os.path.join(OUT, name)
        img.save(p, **save)
        made[name] = p

    put("rand_37x23.png", Image.fromarray(rng.integers(0, 256, (23, 37, 3), dtype=np.uint8)))
    put("one_1x1.png", Image.fromarray(np.array([[[200, 30, 90]]], dtype=np.uint8)))
    save_png16(os.path.join(OUT, "rgb16_20x15.png"),
               rng.integers(0, 65536, (15, 20, 3), dtype=np.uint16))
    made["rgb16_20x15.png"] = os.path.join(OUT, "rgb16_20x15.png")
    put("gray_29x31.png", Image.fromarray(rng.integers(0, 256, (31, 29), dtype=np.uint8), "L"))
    pal = Image.fromarray(rng.integers(0, 16, (17, 33), dtype=np.uint8), "P")
    pal.putpalette(rng.integers(0, 256, 16 * 3, dtype=np.uint8).tolist())
    put("palette_33x17.png", pal)
    put("rgba_19x13.png", Image.fromarray(rng.integers(0, 256, (13, 19, 4), dtype=np.uint8), "RGBA"))
    put("synth_449x300.png", Image.fromarray(synthetic(449, 300)))
    put("synth_120x161.png", Image.fromarray(synthetic(120, 161)))
    put("thin_3x201.png", Image.fromarray(rng.integers(0, 256, (201, 3, 3), dtype=np.uint8)))
    # JPEGs: the same libjpeg-turbo decodes them on both sides: exact.
    photo = Image.fromarray(synthetic(48, 32))
    put("rgb_48x32.jpg", photo, quality=90)
    put("progressive_48x32.jpg", photo, quality=90, progressive=True)
    put("gray_40x24.jpg", Image.fromarray(synthetic(40, 24)[:, :, 0], "L"), quality=90)
    put("cmyk_40x24.jpg", Image.fromarray(synthetic(40, 24)).convert("CMYK"), quality=95)

    for name in sorted(made):
        assert Image.open(made[name]).mode in ("RGB", "L", "P", "RGBA", "CMYK"), name

    f = lambda n: ("fix:images/" + n, os.path.splitext(n)[0], made[n])  # noqa: E731
    # Identity "resizes" check the decode itself: stb's pixels == PIL's.
    for n in ("rand_37x23.png", "one_1x1.png", "rgb16_20x15.png", "gray_29x31.png",
              "palette_33x17.png", "rgba_19x13.png", "thin_3x201.png"):
        src, tag, p = f(n)
        w, h = Image.open(p).size
        resize_case(src, tag, p, w, h)
    src, tag, p = f("rand_37x23.png")
    # 37x10: vertical pass only; 15x23: horizontal pass only.
    for w, h in ((32, 32), (18, 11), (12, 7), (74, 46), (100, 9), (1, 1), (5, 40), (37, 10),
                 (15, 23)):
        resize_case(src, tag, p, w, h)
    preset_case(src, tag, p, "cifar", 32)
    preset_case(src, tag, p, "imagenet", 16)
    src, tag, p = f("one_1x1.png")
    for w, h in ((32, 32), (5, 3)):
        resize_case(src, tag, p, w, h)
    preset_case(src, tag, p, "imagenet", 32)
    for n, sizes in (("rgb16_20x15.png", ((10, 8),)), ("gray_29x31.png", ((16, 16),)),
                     ("palette_33x17.png", ((11, 11),)), ("rgba_19x13.png", ((8, 8), (40, 30)))):
        src, tag, p = f(n)
        for w, h in sizes:
            resize_case(src, tag, p, w, h)
    src, tag, p = f("synth_449x300.png")
    resize_case(src, tag, p, 100, 67)
    preset_case(src, tag, p, "imagenet", 224)  # 383 x 256, left = round(79.5) = 80
    preset_case(src, tag, p, "cifar", 32)
    src, tag, p = f("synth_120x161.png")
    preset_case(src, tag, p, "imagenet", 112)  # upscaled to 128 x 171, top = round(29.5) = 30
    preset_case(src, tag, p, "cifar", 32)
    src, tag, p = f("thin_3x201.png")
    preset_case(src, tag, p, "imagenet", 32)  # 37 x 2479: crop of a very tall image
    preset_case(src, tag, p, "cifar", 32)
    for n in ("rgb_48x32.jpg", "progressive_48x32.jpg", "gray_40x24.jpg", "cmyk_40x24.jpg"):
        src, tag, p = f(n)
        jpeg_case(src, tag, p, 0)  # libjpeg-turbo on both sides: bit-exact
    colour_case("gray", "fix:images/gray_40x24.jpg", made["gray_40x24.jpg"])
    colour_case("cmyk", "fix:images/cmyk_40x24.jpg", made["cmyk_40x24.jpg"])

    # ---- shared data: PNGs are exact; JPEGs only for grey/CMYK handling ----
    shared = os.path.abspath(args.shared)
    if os.path.isdir(shared):
        for rel in ("cifar10-lossless/png/000_label3.png", "cifar10-lossless/png/001_label8.png",
                    "samples/mnist_00_7.png"):
            p = os.path.join(shared, rel)
            if not os.path.exists(p):
                print("missing", p, file=sys.stderr)
                continue
            src, tag = "shared:" + rel, "shared__" + rel.replace("/", "__").rsplit(".", 1)[0]
            w, h = Image.open(p).size
            resize_case(src, tag, p, w, h)
            resize_case(src, tag, p, 24, 24)
            resize_case(src, tag, p, 45, 45)
            preset_case(src, tag, p, "imagenet", 64)  # 73 x 73, offset round(4.5) = 4
            preset_case(src, tag, p, "cifar", 16)
        # Grey and CMYK JPEGs in imagenet-sample: check the colour handling only.
        folder = os.path.join(shared, "imagenet-sample")
        kinds = {}
        for n in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with Image.open(os.path.join(folder, n)) as im:
                if im.mode != "RGB":
                    kinds.setdefault(im.mode, []).append(n)
        for mode, names in sorted(kinds.items()):
            print(f"imagenet-sample: {len(names)} {mode} JPEGs", file=sys.stderr)
            for n in names[:2]:
                p = os.path.join(folder, n)
                kind = {"L": "gray", "CMYK": "cmyk"}.get(mode)
                if kind:
                    colour_case(kind, f"shared:imagenet-sample/{n}", p)
        if "CMYK" not in kinds:
            print("imagenet-sample has no CMYK JPEG; the CMYK check uses cmyk_40x24.jpg",
                  file=sys.stderr)
    else:
        print(f"{shared}: not found; shared-data cases left out", file=sys.stderr)

    with open(os.path.join(OUT, "manifest.txt"), "w") as fh:
        fh.write("# Written by scripts/make_image_fixtures.py; read by tests/test_image.c.\n"
                 "# resize <src> <w> <h> <expected>      PIL Image.resize((w, h), BILINEAR), exact\n"
                 "# preset <src> cifar|imagenet <size> <expected>   torchvision eval transform, exact\n"
                 "# jpeg <src> <w> <h> <expected> <tol>   PIL's decode; mean |difference| <= tol\n"
                 "# gray|cmyk <src> <w> <h> <mean R> <mean G> <mean B>   PIL's channel means\n"
                 "# <src>: fix:<path under tests/fixtures> or shared:<path under the shared data>\n")
        fh.write("\n".join(manifest) + "\n")
    total = sum(os.path.getsize(os.path.join(dp, n)) for dp, _, ns in os.walk(OUT) for n in ns)
    print(f"{len(manifest)} cases, {total / 1024:.0f} KiB in {os.path.relpath(OUT, ROOT)}")
    assert total < 1 << 20, "fixtures must stay under 1 MB"


if __name__ == "__main__":
    main()
