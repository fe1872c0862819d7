#!/usr/bin/python3
"""test_convert_weights.py: tests for scripts/convert_weights.py.

Run from anywhere with Debian's python3 (it has torch):

    /usr/bin/python3 scripts/test_convert_weights.py

Checkpoints are made with torch in a temporary folder, converted by convert_weights.py in
a subprocess, read back with the small safetensors reader below and compared bit for bit
with torch's own tensors. The converter runs under $CONVERT_PYTHON, else the python3 on
PATH (which may lack torch), with torch and numpy made unimportable, so a stray import
in it fails the test. When /work/shared/data is present the pretrained CIFAR-10 ResNets
there are converted too and compared with torch.load.

Exit status 0 when every check passes, 1 otherwise, 77 (with a SKIP line) without torch.
"""
import collections
import glob
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
import zipfile

try:
    import torch
except ImportError:
    print("SKIP: torch is not importable by", sys.executable)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERTER = os.path.join(HERE, "convert_weights.py")
PYTHON = os.environ.get("CONVERT_PYTHON") or shutil.which("python3") or sys.executable
REAL_WEIGHTS = "/work/shared/data/weights/cifar10"

# Runs the converter as __main__ with torch and numpy unimportable.
NO_TORCH_LAUNCHER = ("import runpy, sys\n"
                     "sys.modules.update(torch=None, numpy=None)\n"
                     "sys.argv = sys.argv[1:]\n"
                     "runpy.run_path(sys.argv[0], run_name='__main__')\n")

ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
             torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def convert(*args):
    """Run convert_weights.py with args; returns (exit status, stdout, stderr)."""
    proc = subprocess.run([PYTHON, "-c", NO_TORCH_LAUNCHER, CONVERTER, *args],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def read_safetensors(path):
    """name -> (dtype, shape, bytes), checking the layout this project promises."""
    with open(path, "rb") as f:
        blob = f.read()
    length = struct.unpack_from("<Q", blob)[0]
    assert length % 8 == 0, f"header length {length} is not a multiple of 8"
    header = json.loads(blob[8:8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__")
    assert metadata == {"format": "pt", "source": metadata.get("source")}, metadata
    data = blob[8 + length:]
    names = list(header)
    assert names == sorted(names), "tensors are not sorted by name"
    end, tensors = 0, {}
    for name in names:
        info = header[name]
        begin, stop = info["data_offsets"]
        assert begin == end, f"{name}: data does not follow the previous tensor's"
        tensors[name] = (info["dtype"], info["shape"], data[begin:stop])
        end = stop
    assert end == len(data), "file holds bytes beyond the last tensor"
    return tensors, metadata


def torch_bytes(t):
    """A tensor's elements in C order as raw little-endian bytes."""
    return t.detach().contiguous().view(SAME_SIZE_INT[t.element_size()]).numpy().tobytes()


def check_output(path, expected, source):
    """The safetensors file at path holds exactly the tensors expected (name -> tensor)."""
    got, metadata = read_safetensors(path)
    assert metadata["source"] == source, f"source {metadata['source']!r}, not {source!r}"
    assert sorted(got) == sorted(expected), f"names {sorted(got)} != {sorted(expected)}"
    for name, t in expected.items():
        dtype, shape, data = got[name]
        assert dtype == ST_DTYPES[t.dtype], f"{name}: dtype {dtype}, not {ST_DTYPES[t.dtype]}"
        assert shape == list(t.shape), f"{name}: shape {shape}, not {list(t.shape)}"
        assert data == torch_bytes(t), f"{name}: data differs"
    assert not os.path.exists(path + ".tmp"), "left OUT.tmp behind"


def strip_module(state):
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def convert_and_check(src, expected, *options):
    out = src + ".safetensors"
    rc, stdout, stderr = convert(*options, src, out)
    assert rc == 0 and not stderr, f"exit {rc}: {stderr.strip()}"
    check_output(out, expected, os.path.basename(src))
    return out


def expect_failure(src, message, out=None):
    """Converting src fails with exit 1 and one line 'convert_weights.py: src: message...',
    leaving no OUT.tmp and any existing OUT untouched."""
    out = out or src + ".safetensors"
    with open(out, "w") as f:
        f.write("previous contents")
    rc, _, stderr = convert(src, out)
    assert rc == 1, f"exit {rc}, stderr {stderr.strip()}"
    prefix = f"convert_weights.py: {src}: {message}"
    assert stderr.startswith(prefix) and stderr.count("\n") == 1, f"stderr {stderr!r}"
    with open(out) as f:
        assert f.read() == "previous contents", "OUT was overwritten"
    assert not os.path.exists(out + ".tmp"), "left OUT.tmp behind"


def save(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"))
    return path


class Torch2Parameter:
    """Pickles the way torch >= 2.0 writes an nn.Parameter carrying Python attributes,
    through torch._utils._rebuild_parameter_with_state (absent from torch 1.13)."""

    def __init__(self, data):
        self.data = data

    def __reduce__(self):
        return (rebuild_parameter_with_state,
                (self.data, True, collections.OrderedDict(), {"note": "kept aside"}))


def _rebuild_parameter_with_state(*args):
    raise AssertionError("only ever pickled by reference, never called")


rebuild_parameter_with_state = getattr(torch._utils, "_rebuild_parameter_with_state", None)
if rebuild_parameter_with_state is None:
    # Give the stand-in the name torch >= 2.0 pickles, so pickle can refer to it.
    _rebuild_parameter_with_state.__module__ = "torch._utils"
    torch._utils._rebuild_parameter_with_state = _rebuild_parameter_with_state
    rebuild_parameter_with_state = _rebuild_parameter_with_state


def sample_state():
    """A state dict (module.-prefixed names) covering the dtypes and view kinds."""
    g = torch.Generator().manual_seed(1234)
    shared = torch.randn(4, 6, generator=g)
    base = torch.randn(20, generator=g)
    return collections.OrderedDict([
        ("module.f32", torch.randn(4, 5, generator=g)),
        ("module.f16", torch.randn(3, 7, generator=g).half()),
        ("module.bf16", torch.randn(6, generator=g).bfloat16()),
        ("module.f64", torch.randn(2, 3, generator=g, dtype=torch.float64)),
        ("module.i64", torch.arange(-5, 5)),
        ("module.i32", torch.arange(7, dtype=torch.int32) * -3),
        ("module.i16", torch.tensor([-300, 2, 30000], dtype=torch.int16)),
        ("module.i8", torch.tensor([-128, 0, 127], dtype=torch.int8)),
        ("module.u8", torch.tensor([0, 200, 255], dtype=torch.uint8)),
        ("module.flags", torch.tensor([True, False, True])),
        ("module.transposed", torch.randn(5, 8, generator=g).t()),
        ("module.offset_view", base[5:15].view(2, 5)),
        ("module.shared_whole", shared),
        ("module.shared_slice", shared[1:3, ::2]),
        ("module.expanded", torch.randn(3, 1, generator=g).expand(3, 4)),
        ("module.scalar", torch.tensor(3.5)),
        ("module.scalar_i64", torch.tensor(7)),
        ("module.empty", torch.zeros(0, 4)),
        ("module.param", torch.nn.Parameter(torch.randn(2, 2, generator=g))),
        ("unprefixed.weight", torch.randn(3, generator=g)),
        ("module.bf16_transposed", torch.randn(3, 4, generator=g).bfloat16().t()),
    ])


def expected_of(state):
    return {k: (v.data if isinstance(v, Torch2Parameter) else v)
            for k, v in strip_module(state).items() if not isinstance(v, (int, float, str))}


def edge_state():
    """Values where narrowing has to round, overflow or keep special values like torch."""
    inf, nan = float("inf"), float("nan")
    return {
        "edge32": torch.tensor([65504., 65519., 65520., 1e6, -1e6, 6e-8, 3e-8, 2.9e-8, 1e-40,
                                inf, -inf, nan, -0.0, 1 + 2 ** -11, 1 + 3 * 2 ** -11]),
        "edge64": torch.tensor([1 + 2 ** -11 + 2 ** -40, 1e300, -1e300, 3.4028235677973366e38,
                                3.40282357e38, 1e-50, -1e-320, inf, nan, 65519.99,
                                1 / 3], dtype=torch.float64),
        "edge_bf16": torch.tensor([1e38, -3e38, 1e-38, 70000., inf, 1 / 3]).bfloat16(),
        "edge16": torch.tensor([65504., -65504., 6e-8, 1 / 3, inf]).half(),
        "ints": torch.arange(4),
    }


# ---- A test-side writer for hand-made checkpoints (big endian, legacy storage views) ----

class RawStorage:
    """A storage as the test writes it: torch storage class, key, element count, bytes."""

    def __init__(self, cls, key, numel, data, view=None):
        self.cls, self.key, self.numel, self.data, self.view = cls, key, numel, data, view


class RawTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False,
                     collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def pickled(obj, legacy):
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=2)

    def persistent_id(o):
        if not isinstance(o, RawStorage):
            return None
        pid = ("storage", o.cls, o.key, "cpu", o.numel)
        return pid + (o.view,) if legacy else pid
    pickler.persistent_id = persistent_id
    pickler.dump(obj)
    return buf.getvalue()


def write_legacy(path, obj, storages, little_endian=True):
    order = "little" if little_endian else "big"
    sys_info = {"protocol_version": 1001, "little_endian": little_endian,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        for head in (LEGACY_MAGIC, 1001, sys_info):
            pickle.dump(head, f, protocol=2)
        f.write(pickled(obj, legacy=True))
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(s.numel.to_bytes(8, order, signed=True) + s.data)
    return path


def byteswapped(t):
    """t's bytes with every element's byte order reversed (t as a big-endian machine has it)."""
    raw, size = torch_bytes(t), t.element_size()
    return b"".join(raw[i:i + size][::-1] for i in range(0, len(raw), size))


def evil_pickle(marker):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    return pickle.dumps({"state_dict": {"w": Evil()}}, protocol=2)


# ---- The tests; each raises AssertionError on failure ----

def test_formats_and_wrappers(tmp):
    state = sample_state()
    for fmt in ("zip", "legacy"):
        src = save(state, os.path.join(tmp, f"bare_{fmt}.pt"), fmt)
        convert_and_check(src, expected_of(state))
        wrapped = {"epoch": 90, "best_prec1": 91.78, "arch": "resnet20",
                   "state_dict": collections.OrderedDict(state, **{
                       "module.torch2_param": Torch2Parameter(torch.arange(3.0)),
                       "module.not_a_tensor": 5}),
                   "raw_storage": torch.ones(2, dtype=torch.float64).storage().untyped()}
        src = save(wrapped, os.path.join(tmp, f"wrapped_{fmt}.pt"), fmt)
        convert_and_check(src, expected_of(wrapped["state_dict"]))
    for key in ("model", "model_state_dict", "net"):
        src = save({key: state, "epoch": 3}, os.path.join(tmp, f"key_{key}.pt"), "zip")
        convert_and_check(src, expected_of(state))


def test_module_state_dict(tmp):
    model = torch.nn.DataParallel(torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
        torch.nn.Linear(4, 2)))
    state = model.state_dict()  # an OrderedDict with _metadata, module.-prefixed
    for fmt in ("zip", "legacy"):
        src = save({"state_dict": state}, os.path.join(tmp, f"model_{fmt}.pt"), fmt)
        convert_and_check(src, strip_module(state))


def test_dtype_option(tmp):
    state = {**expected_of(sample_state()), **edge_state()}
    src = save(state, os.path.join(tmp, "dtypes.pt"), "zip")
    kept = convert_and_check(src, state)
    for mode, dtype in (("f32", torch.float32), ("f16", torch.float16)):
        expected = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        convert_and_check(src, expected, "--dtype", mode)
        # A .safetensors input is rewritten the same way.
        out = os.path.join(tmp, f"rewritten_{mode}.safetensors")
        rc, _, stderr = convert("--dtype", mode, kept, out)
        assert rc == 0, stderr
        check_output(out, expected, os.path.basename(kept))


def test_list(tmp):
    state = sample_state()
    src = save({"state_dict": state}, os.path.join(tmp, "list.pt"), "legacy")
    rc, stdout, stderr = convert("--list", "--dtype", "f16", src)
    assert rc == 0 and not stderr, stderr
    expected = [f"{k} {'F16' if v.is_floating_point() else ST_DTYPES[v.dtype]} {list(v.shape)}"
                for k, v in sorted(expected_of(state).items())]
    assert stdout.splitlines() == expected, stdout
    assert not os.path.exists(src + ".safetensors"), "--list wrote a file"


def test_big_endian(tmp):
    f32 = torch.randn(3, 4)
    i64 = torch.tensor([1, -2, 1 << 40])
    # torch >= 2.1 zip on a big-endian machine: byteorder file says so, storages are BE.
    plain = save({"w": f32, "wt": f32.t()}, os.path.join(tmp, "le.pt"), "zip")
    src = os.path.join(tmp, "be.pt")
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(src, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if "/data/" in name:
                data = byteswapped(torch.frombuffer(bytearray(data), dtype=torch.float32))
            zout.writestr(name, data)
        zout.writestr(zin.namelist()[0].split("/")[0] + "/byteorder", "big")
    convert_and_check(src, {"w": f32, "wt": f32.t()})
    # Legacy format from a big-endian machine: sys_info says so; counts and data are BE.
    sf = RawStorage(torch.FloatStorage, "1", 12, byteswapped(f32))
    si = RawStorage(torch.LongStorage, "2", 3, byteswapped(i64))
    obj = {"w": RawTensor(sf, 0, (4, 3), (1, 4)), "i": RawTensor(si, 0, (3,), (1,))}
    src = write_legacy(os.path.join(tmp, "be_legacy.pt"), obj, [sf, si], little_endian=False)
    convert_and_check(src, {"w": f32.t(), "i": i64})


def test_legacy_storage_view(tmp):
    root = torch.arange(10, dtype=torch.float32)
    whole = RawStorage(torch.FloatStorage, "10", 10, torch_bytes(root))
    view = RawStorage(torch.FloatStorage, "10", 10, None, view=("11", 3, 5))
    obj = {"v": RawTensor(view, 1, (2, 2), (2, 1)), "r": RawTensor(whole, 0, (10,), (1,))}
    src = write_legacy(os.path.join(tmp, "view.pt"), obj, [whole])
    convert_and_check(src, {"v": root[4:8].view(2, 2), "r": root})


def test_refuses_code(tmp):
    marker = os.path.join(tmp, "pwned")
    payload = evil_pickle(marker)
    refused = f"refusing to unpickle {os.system.__module__}.system: not a tensor checkpoint"
    raw = os.path.join(tmp, "evil.pkl")
    with open(raw, "wb") as f:
        f.write(payload)
    legacy = os.path.join(tmp, "evil_legacy.pt")
    with open(legacy, "wb") as f:
        for head in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(head, f, protocol=2)
        f.write(payload)
        pickle.dump([], f, protocol=2)
    zipped = os.path.join(tmp, "evil_zip.pt")
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("evil_zip/data.pkl", payload)
        z.writestr("evil_zip/version", "3\n")
    for src in (raw, legacy, zipped):
        expect_failure(src, refused)
        assert not os.path.exists(marker), f"{src}: the payload ran"
    # A whole pickled model is refused too (it would import and run its class).
    src = save(torch.nn.Linear(2, 2), os.path.join(tmp, "module.pt"), "zip")
    expect_failure(src, "refusing to unpickle torch.nn.modules.linear.Linear")


def test_truncated_and_bad_files(tmp):
    state = {"state_dict": sample_state()}
    for fmt in ("legacy", "zip"):
        src = save(state, os.path.join(tmp, f"whole_{fmt}.pt"), fmt)
        with open(src, "rb") as f:
            blob = f.read()
        for keep in (len(blob) - 1, len(blob) // 2, 300, 30, 5):
            cut = os.path.join(tmp, f"cut{keep}_{fmt}.pt")
            with open(cut, "wb") as f:
                f.write(blob[:keep])
            expect_failure(cut, "not a readable zip file" if fmt == "zip" else "file is truncated")
    text = os.path.join(tmp, "notes.txt")
    with open(text, "w") as f:
        f.write("hello, not a checkpoint\n")
    expect_failure(text, "not a PyTorch checkpoint")
    expect_failure(os.path.join(tmp, "missing.pt"), "No such file or directory")
    expect_failure(save({"epoch": 3, "state_dict": {}}, os.path.join(tmp, "none.pt"), "zip"),
                   "no tensors found")
    empty = os.path.join(tmp, "empty.pt")
    open(empty, "wb").close()
    expect_failure(empty, "empty file")


def test_usage(tmp):
    rc, stdout, _ = convert("--help")
    assert rc == 0 and "usage: convert_weights.py" in stdout, stdout
    assert all(k in stdout for k in ("state_dict", "model_state_dict", "'net'")), stdout
    rc, _, stderr = convert(os.path.join(tmp, "x.pt"))
    assert rc == 2 and "OUT.safetensors is required" in stderr, stderr


def test_real_checkpoints(tmp):
    paths = sorted(glob.glob(os.path.join(REAL_WEIGHTS, "*.th")))
    if not paths:
        return f"skipped: no {REAL_WEIGHTS}/*.th"
    for path in paths:
        state = torch.load(path, map_location="cpu")["state_dict"]
        out = os.path.join(tmp, os.path.basename(path) + ".safetensors")
        rc, _, stderr = convert(path, out)
        assert rc == 0, f"{path}: {stderr.strip()}"
        check_output(out, strip_module(state), os.path.basename(path))
    return f"{len(paths)} files"


def main():
    print(f"converter runs under {PYTHON} (torch and numpy blocked)")
    tests = [v for k, v in globals().items() if k.startswith("test_")]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for test in tests:
            folder = os.path.join(tmp, test.__name__)
            os.mkdir(folder)
            try:
                note = test(folder)
            except Exception:
                failed += 1
                print(f"FAIL {test.__name__}\n{traceback.format_exc()}")
                continue
            print(f"ok   {test.__name__}" + (f" ({note})" if note else ""))
    print(f"{len(tests) - failed}/{len(tests)} tests passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
