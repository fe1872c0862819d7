#!/usr/bin/python3
"""make_jpeg_fixtures.py: PIL's decode of real JPEGs, as hashes, for tests/test_image.c.

Run with Debian's Python (PIL 9.4 on the system libjpeg62-turbo, the library
featurenorm decodes JPEG with):

    /usr/bin/python3 scripts/make_jpeg_fixtures.py [--shared ../shared/data]

Writes tests/fixtures/images/jpeg_pil.txt, one line per file:

    <path under the shared data> <w> <h> <mode> <fnv1a64 of the RGB bytes>

where the RGB bytes are PIL's Image.open(path).convert("RGB"), h x w x 3, the
first step of torchvision's ImageFolder loader. The C test decodes the same
files and compares the hash: bit for bit, no tolerance. Files: every 100th
CIFAR-10 test JPEG, every 20th DTD JPEG, and from imagenet-sample every CMYK
and grayscale file plus every 25th of the rest. Only hashes are stored; the
shared data is never copied here. Deterministic (sorted paths, fixed strides).
"""
import argparse
import os

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "images", "jpeg_pil.txt")


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def jpegs(root, sub):
    out = []
    for d, _, files in os.walk(os.path.join(root, sub)):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files
                if f.lower().endswith((".jpg", ".jpeg"))]
    return sorted(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    args = p.parse_args()
    picked = jpegs(args.shared, "cifar10-jpeg/test")[::100] + jpegs(args.shared, "dtd10")[::20]
    for i, rel in enumerate(jpegs(args.shared, "imagenet-sample")):
        with Image.open(os.path.join(args.shared, rel)) as im:
            if im.mode != "RGB" or i % 25 == 0:
                picked.append(rel)
    lines = ["# Written by scripts/make_jpeg_fixtures.py: PIL %s's decode of shared JPEGs." %
             Image.__version__,
             "# <path under the shared data> <w> <h> <PIL mode> <fnv1a64 of convert('RGB') bytes>"]
    for rel in picked:
        with Image.open(os.path.join(args.shared, rel)) as im:
            mode = im.mode
            rgb = im.convert("RGB")
            lines.append("%s %d %d %s %016x" % (rel, rgb.width, rgb.height, mode,
                                                fnv1a64(rgb.tobytes())))
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d files" % (OUT, len(picked)))


if __name__ == "__main__":
    main()
