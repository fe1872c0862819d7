"""Fixtures of the package tests: the library and CLI under test (from CTest's
environment: FEATURENORM_LIBRARY, FEATURENORM_EXE), the source tree, and the
optional real data ($FN_SHARED_DATA, else ../shared/data)."""
import os
import subprocess
import sys

import numpy as np
import pytest

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "python"))
WEIGHTS = os.path.join(SRC, "tests", "fixtures", "models", "resnet20_cifar", "model.safetensors")
IMAGES = os.path.join(SRC, "tests", "fixtures", "images")

import featurenorm  # noqa: E402  (after the path: the source tree's package)


@pytest.fixture(scope="session")
def fn():
    return featurenorm


@pytest.fixture(scope="session")
def exe():
    path = os.environ.get("FEATURENORM_EXE", os.path.join(SRC, "build", "featurenorm"))
    if not os.access(path, os.X_OK):
        pytest.skip(f"no featurenorm CLI at {path} (set FEATURENORM_EXE)")
    return path


@pytest.fixture(scope="session")
def shared_data():
    path = os.environ.get("FN_SHARED_DATA") or os.path.join(SRC, "..", "shared", "data")
    if not os.path.isdir(os.path.join(path, "cifar10-jpeg")):
        pytest.skip(f"no real data in {path} (../shared/data or $FN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def model(fn):
    return fn.Model("resnet20_cifar", WEIGHTS, backend="cpu", threads=2, batch=8)


def write_ppm(path, rgb):
    """A binary PPM (P6) of one H x W x 3 uint8 image: the CLI decodes it to these bytes."""
    h, w, _ = rgb.shape
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(np.ascontiguousarray(rgb, np.uint8).tobytes())


@pytest.fixture(scope="session")
def image_set(tmp_path_factory):
    """12 random 32 x 32 images as an array and as PPM files (sorted names = array order)."""
    images = np.random.default_rng(7).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    folder = tmp_path_factory.mktemp("ppm")
    for i, im in enumerate(images):
        write_ppm(folder / f"{i:03d}.ppm", im)
    return images, str(folder)


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=300, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}): {r.stderr}"
    return r
