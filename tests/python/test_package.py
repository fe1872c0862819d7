"""python/featurenorm against the CLI on the same images (bit-identical on the
CPU backend: both run the same library, so any difference is the package's
marshalling), its errors, and the README's example."""
import csv
import ctypes
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import IMAGES, SRC, WEIGHTS, run

CPU = [  # the model fixture's settings: oneDNN picks its kernels by batch, so the same batch
       "--arch", "resnet20_cifar", "--weights", WEIGHTS, "--backend", "cpu", "--threads", "2", "--batch", "8"]


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0]}


def test_abi(fn):
    lib = fn.lib
    assert lib.fn_abi_version() == fn.ABI_VERSION
    from featurenorm._lib import structs
    for name, cls in structs.items():  # the generated layouts are the library's, byte for byte
        assert ctypes.sizeof(cls) == lib.fn_struct_size(name.encode()), name
    assert set(structs) >= {"fn_model_options", "fn_outputs", "fn_run_options", "fn_scores", "fn_selection"}


def test_model_info(model):
    assert model.backend == "cpu" and model.precision == "fp32" and model.input_size == 32
    assert [b.name for b in model.blocks][-1] == "layer3.2" and model.blocks[-1].shape == (64, 8, 8)
    assert model.num_classes == 10 and model.feature_dim == 64 and model.preset == "cifar"
    assert model.device.startswith("CPU")


def test_score_matches_cli(model, exe, image_set, tmp_path):
    """forward on the array, score on the array and on the files, and the CLI's
    CSV and .npy: the same float32 bits everywhere (%.9g round-trips float32)."""
    images, folder = image_set
    run([exe, "score", *CPU, "--quiet", "--data", folder, "--block", "layer2.1", "--react-clip", "0.75",
         "--out", tmp_path / "cli.csv", "--npy", tmp_path / "cli.npy"])
    cli = read_csv(tmp_path / "cli.csv")
    cli_norms = np.load(tmp_path / "cli.npy")
    fwd = model.forward(images, block="layer2.1", react_clip=0.75)
    files = model.score(folder, block="layer2.1", react_clip=0.75, progress=False, as_frame=False,
                        csv=tmp_path / "pkg.csv")
    arrays = model.score(images, block="layer2.1", react_clip=0.75, progress=False, as_frame=False)
    assert (tmp_path / "pkg.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    np.testing.assert_array_equal(fwd["norms"], cli_norms)
    for b in model.blocks:
        col = "fn." + b.name
        want = np.array(cli[col], np.float32)
        np.testing.assert_array_equal(files[col], want, err_msg=col)
        np.testing.assert_array_equal(arrays[col], want, err_msg=col)
    for name in ("fn_selected", "msp", "maxlogit", "energy", "react_energy"):
        want = np.array(cli[name], np.float32)
        for got in (fwd[name], files[name], arrays[name]):
            np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(fwd["pred"], np.array(cli["pred"], int))
    assert list(files["path"]) == cli["path"]
    assert list(arrays["path"]) == [f"array#{i}" for i in range(len(images))]


def test_time(fn, model, image_set):
    """Model.time runs batches through the slots (fn_model_time): positive
    seconds, bytes only, and the model still forwards the same after it."""
    images, _ = image_set
    before = model.forward(images)
    assert model.time(images[:4], batches=3) > 0
    with pytest.raises(fn.Error):
        model.time(images.astype(np.float32))
    with pytest.raises(fn.Error):
        model.time(images[:4], batches=0)
    np.testing.assert_array_equal(model.forward(images)["norms"], before["norms"])


def test_float_input_matches_u8(model, image_set):
    """float32 N x 3 x S x S, normalised by the caller as the library does for bytes."""
    images, _ = image_set
    mean, std = np.float32(model.mean), np.float32(model.std)
    x = ((images.astype(np.float32) / np.float32(255) - mean) / std).transpose(0, 3, 1, 2)
    a, b = model.forward(images), model.forward(np.ascontiguousarray(x, np.float32))
    # the same arithmetic up to where the division by 255 is rounded: fp32, 20 layers
    np.testing.assert_allclose(b["norms"], a["norms"], rtol=1e-5)
    np.testing.assert_allclose(b["logits"], a["logits"], rtol=1e-4, atol=1e-5)


def test_select_matches_cli(model, exe, image_set, tmp_path):
    images, folder = image_set
    run([exe, "select", *CPU, "--quiet", "--data", folder, "--seed", "3", "--out", tmp_path / "cli.json"])
    sel = model.select(folder, seed=3, progress=False)
    sel.save(tmp_path / "pkg.json")
    assert (tmp_path / "pkg.json").read_bytes() == (tmp_path / "cli.json").read_bytes()
    on_arrays = model.select(images, seed=3, progress=False)
    np.testing.assert_array_equal(on_arrays.norm_ratio, sel.norm_ratio)
    assert on_arrays.block == sel.block and on_arrays.react_clip == sel.react_clip
    cli = json.loads((tmp_path / "cli.json").read_text())
    assert sel.index == cli["selected_index"]
    again = model.load_selection(tmp_path / "cli.json")
    assert again.block == sel.block and again.react_clip == sel.react_clip


def test_evaluate_matches_cli(fn, model, exe, image_set, tmp_path):
    images, folder = image_set
    run([exe, "score", *CPU, "--quiet", "--data", folder, "--block", "layer3.0", "--out", tmp_path / "id.csv"])
    run([exe, "score", *CPU, "--quiet", "--data", IMAGES, "--block", "layer3.0", "--out", tmp_path / "ood.csv"])
    run([exe, "eval", "--id", tmp_path / "id.csv", "--ood", f"Fixtures={tmp_path / 'ood.csv'}",
         "--json", tmp_path / "eval.json"])
    from_files = fn.evaluate(str(tmp_path / "id.csv"), {"Fixtures": str(tmp_path / "ood.csv")}, as_frame=False)
    id_cols = model.score(images, block="layer3.0", progress=False, as_frame=False)
    ood_cols = model.score(IMAGES, block="layer3.0", progress=False, as_frame=False)
    from_arrays = fn.evaluate(id_cols, {"Fixtures": ood_cols}, as_frame=False)
    text = (tmp_path / "eval.json").read_text()
    for table in (from_files, from_arrays):
        assert list(table["score"][::2]) == [
            "msp", "maxlogit", "energy", "entropy", "gen", "gradnorm", "msp_fn", "maxlogit_fn", "energy_fn",
            "entropy_fn", "gen_fn", "gradnorm_fn", "fn.layer3.2", "fn_selected"]
        for k in ("fpr95", "auroc", "aupr_in", "aupr_out"):
            np.testing.assert_array_equal(np.asarray(table[k], float), np.asarray(from_files[k], float))
    # every AUROC the CLI wrote (%.9g) is the package's
    written = {float(v) for v in re.findall(r'"auroc": ([-0-9.e+]+)', text)}
    assert {float(f"{v:.9g}") for v in from_files["auroc"]} == written
    cli_md = run([exe, "eval", "--id", tmp_path / "id.csv", "--ood", f"Fixtures={tmp_path / 'ood.csv'}"]).stdout
    assert repr(from_files) in cli_md and repr(from_arrays) in cli_md  # printed as the CLI prints it
    m = fn.metrics(id_cols["msp"], ood_cols["msp"])
    assert m["auroc"] == from_arrays["auroc"][0] and m["n_id"] == len(images)


def test_errors(fn, model, tmp_path):
    with pytest.raises(fn.Error) as e:
        fn.Model("resnet20_cifar", str(tmp_path / "missing.safetensors"), backend="cpu")
    assert e.value.status == "FN_ERR_IO" and "missing.safetensors" in e.value.message
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(open(WEIGHTS, "rb").read()[:1000])
    with pytest.raises(fn.Error) as e:
        fn.Model("resnet20_cifar", str(cut), backend="cpu")
    assert e.value.status == "FN_ERR_FORMAT" and "cut.safetensors" in str(e.value)
    with pytest.raises(fn.Error, match="unknown architecture 'resnet21'"):
        fn.Model("resnet21", WEIGHTS)
    with pytest.raises(fn.Error, match="missing tensor"):
        fn.Model("vgg16", WEIGHTS, backend="cpu")
    with pytest.raises(fn.Error, match="backend 'gpu': expected one of auto cpu cuda"):
        fn.Model("resnet20_cifar", WEIGHTS, backend="gpu")
    with pytest.raises(fn.Error, match="fp32 or bf16"):
        fn.Model("resnet20_cifar", WEIGHTS, backend="cpu", precision="fp16")
    x = np.zeros((2, 32, 32, 3), np.uint8)
    for bad in (x.astype(np.float64), x.astype(np.float32), x[:, :16], x[0], np.zeros((2, 3, 32, 32), np.uint8)):
        with pytest.raises(fn.Error) as e:
            model.forward(bad)
        assert e.value.status == "FN_ERR_SHAPE" and "uint8 N x 32 x 32 x 3" in e.value.message
    with pytest.raises(fn.Error, match="no such block"):
        model.forward(x, block="layer9.9")
    with pytest.raises(fn.Error) as e:
        model.score(str(tmp_path / "nowhere"), progress=False)
    assert "nowhere" in e.value.message
    with pytest.raises(fn.Error, match="uint8 N x H x W x 3"):
        model.score(np.zeros((2, 8, 8), np.uint8), progress=False)
    with pytest.raises(fn.Error, match="NaN"):
        fn.metrics([1.0, float("nan")], [0.5])
    with pytest.raises(fn.Error, match="column 'msp' missing"):
        fn.evaluate({"msp": [1.0]}, {"X": {"energy": [0.0]}})


def test_gil_released(model, image_set):
    """Two threads forward at once on two models: ctypes drops the GIL in each call."""
    import threading
    images, _ = image_set
    other = type(model)("resnet20_cifar", WEIGHTS, backend="cpu", threads=1, batch=8)
    out = {}
    threads = [threading.Thread(target=lambda m, k: out.__setitem__(k, m.forward(images)), args=(m, k))
               for k, m in enumerate((model, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(out[0]["norms"], out[1]["norms"])


def readme_example():
    """The README's Python example, the block after 'pip install'."""
    text = open(os.path.join(SRC, "README.md")).read()
    m = re.search(r"## Python\n.*?```python\n(.*?)```", text, re.S)
    assert m, "README.md has no ## Python section with a ```python block"
    return m.group(1)


def test_readme_example_runs(tmp_path, image_set):
    """The README's example as written, on fixtures instead of the shared data:
    the weights and data paths are replaced, nothing else."""
    code = readme_example()
    assert len(code.strip().splitlines()) == 5, code
    images, folder = image_set
    code = (code.replace("resnet20.safetensors", WEIGHTS)
                .replace("../shared/data/cifar10-jpeg/train", folder)
                .replace("../shared/data/cifar10-jpeg/test", folder)
                .replace("../shared/data/dtd10", IMAGES))
    env = dict(os.environ, PYTHONPATH=os.path.join(SRC, "python"))
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "the example printed nothing"


def test_real_data_matches_cli(fn, exe, shared_data, tmp_path):
    """JPEG test images of CIFAR-10 through the trained ResNet-20: package and CLI agree bit for bit."""
    th = os.path.join(shared_data, "weights", "cifar10", "resnet20-12fca82f.th")
    if not os.path.exists(th):
        pytest.skip(f"no {th}")
    weights = tmp_path / "resnet20.safetensors"
    run([sys.executable, os.path.join(SRC, "scripts", "convert_weights.py"), th, weights])
    data = os.path.join(shared_data, "cifar10-jpeg", "test")
    run([exe, "score", "--arch", "resnet20_cifar", "--weights", weights, "--backend", "cpu", "--quiet",
         "--data", data, "--labels", "--limit", "64", "--every", "50", "--block", "layer3.2",
         "--out", tmp_path / "cli.csv"])
    m = fn.Model("resnet20_cifar", str(weights), backend="cpu")
    cols = m.score(data, labels=True, limit=64, every=50, block="layer3.2", progress=False, as_frame=False)
    cli = read_csv(tmp_path / "cli.csv")
    assert list(cols["path"]) == cli["path"]
    np.testing.assert_array_equal(cols["label"], np.array(cli["label"], int))
    for name in ("fn.layer1.0", "fn.layer3.2", "fn_selected", "msp", "energy"):
        np.testing.assert_array_equal(cols[name], np.array(cli[name], np.float32), err_msg=name)
    assert (cols["pred"] == cols["label"]).mean() > 0.6  # the trained net: 81% on these JPEGs (README)


def test_library_not_found_is_clear(tmp_path):
    """A missing library is an ImportError naming where it looked and what to do."""
    env = dict(os.environ, FEATURENORM_LIBRARY=str(tmp_path / "libnothing.so"),
               PYTHONPATH=os.path.join(SRC, "python"))
    r = subprocess.run([sys.executable, "-c", "import featurenorm"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "libfeaturenorm not found" in r.stderr and "libnothing.so" in r.stderr


def test_ctrl_c_stops_a_pass():
    """SIGINT during score: the pass stops after its batch in hand (fn_run_options.cancel)
    and KeyboardInterrupt reaches the caller, instead of waiting for 20000 images."""
    code = f"""
import os, signal, threading, time, numpy as np, featurenorm as fn
m = fn.Model("resnet20_cifar", {WEIGHTS!r}, backend="cpu", threads=1, batch=16)
x = np.zeros((20000, 32, 32, 3), np.uint8)
threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
t = time.time()
try:
    m.score(x, progress=False)
    print("ran to the end")
except KeyboardInterrupt:
    print("stopped after %.1f s" % (time.time() - t))
"""
    env = dict(os.environ, PYTHONPATH=os.path.join(SRC, "python"))
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("stopped after"), r.stdout + r.stderr
    assert float(r.stdout.split()[2]) < 10, r.stdout


def test_onnx_model_against_pytorch(fn):
    """An ONNX file (tests/fixtures/onnx/misc: Clip, Add + LeakyRelu, HardSwish, Concat...)
    loaded through the package, float32 input, against PyTorch's outputs of the same
    network (scripts/make_onnx_fixtures.py): 1e-4 row-scaled, as tests/test_onnx.c
    (fp32 through a handful of layers, float32 accumulation orders differ)."""
    folder = os.path.join(SRC, "tests", "fixtures", "onnx", "misc")
    meta = json.load(open(os.path.join(folder, "meta.json")))
    try:
        m = fn.Model(model=os.path.join(folder, "model.onnx"), blocks=meta["blocks_arg"], backend="cpu",
                     input_size=meta["input_size"])
    except fn.Error as e:
        if e.status == "FN_ERR_UNAVAILABLE":
            pytest.skip(f"built without ONNX: {e.message}")
        raise
    assert [b.name for b in m.blocks] == meta["blocks_arg"].split(",")  # PyTorch's: meta["blocks"]
    assert [list(b.shape) for b in m.blocks] == meta["block_shapes"]
    out = m.forward(np.load(os.path.join(folder, "input.npy")))
    for k in ("norms", "logits", "features"):
        want = np.load(os.path.join(folder, f"{k}.npy"))
        scale = np.abs(want).max(axis=1, keepdims=True)
        assert (np.abs(out[k] - want) / scale).max() < 1e-4, k
