#!/usr/bin/env python3
"""convert_weights.py: convert a PyTorch checkpoint into a safetensors file.

    python3 scripts/convert_weights.py [--dtype keep|f32|f16] [--list] IN [OUT.safetensors]

Uses only the Python standard library, so it runs where torch is not installed.
Inputs: torch.save's zip format, its legacy format (_use_new_zipfile_serialization=False,
e.g. the pretrained CIFAR ResNets), or a .safetensors file (to change the dtype).

Pickles are read with a restricted unpickler: find_class hands out stand-ins for an
explicit allowlist (OrderedDict, torch's tensor/parameter rebuild functions and the typed
storage classes) and refuses everything else, so a checkpoint can never run code.
Storages arrive as persistent ids and stay lazy; their bytes are read only while the
output is written, one tensor at a time.

Output follows the safetensors spec: an 8-byte little-endian header length N, N bytes of
JSON (padded with spaces to a multiple of 8) mapping each name to its dtype, shape and
[begin, end) data offsets, plus "__metadata__"; then the tensors' little-endian C-order
bytes, back to back in header order (sorted by name).
"""
import argparse
import collections
import contextlib
import functools
import io
import itertools
import json
import math
import os
import pickle
import struct
import sys
import zipfile
import zlib

PROG = "convert_weights.py"

# Keys under which a checkpoint dict may hold the state dict, tried in this order.
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "net")

# Bytes per element of each safetensors dtype this script handles.
ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "I32": 4, "I64": 8,
            "F16": 2, "BF16": 2, "F32": 4, "F64": 8}
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
DTYPE_MODES = {"keep": None, "f32": "F32", "f16": "F16"}

# The storage classes torch.save writes (as module, name) and their element dtype.
# Tensors always pickle their storage as a typed class such as torch.FloatStorage;
# torch.storage.UntypedStorage only appears for a bare storage saved as a value.
STORAGE_DTYPES = {
    ("torch", "FloatStorage"): "F32",
    ("torch", "HalfStorage"): "F16",
    ("torch", "BFloat16Storage"): "BF16",
    ("torch", "DoubleStorage"): "F64",
    ("torch", "LongStorage"): "I64",
    ("torch", "IntStorage"): "I32",
    ("torch", "ShortStorage"): "I16",
    ("torch", "CharStorage"): "I8",
    ("torch", "ByteStorage"): "U8",
    ("torch", "BoolStorage"): "BOOL",
    ("torch.storage", "UntypedStorage"): "U8",
}

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a legacy torch.save file
LEGACY_PROTOCOL = 1001

# Elements per struct call when converting floats: bounds the temporary tuples.
CAST_CHUNK = 1 << 16
# memoryview formats used to pick whole elements (of each size) out of a storage.
ELEMENT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}
STRUCT_FLOATS = {"F16": "e", "F32": "f", "F64": "d"}


class ConvertError(Exception):
    """A problem with the input, reported as one line without a traceback."""


def is_count(value):
    """True for a non-negative int (bool excluded: it is no size or index)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def numel(shape):
    return math.prod(shape)


def c_strides(shape):
    """Element strides of a C-order (row-major) array of this shape."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def byteswap(data, itemsize):
    """Reverse the bytes of every itemsize-byte element."""
    if itemsize == 1:
        return data
    out = bytearray(len(data))
    for i in range(itemsize):
        out[i::itemsize] = data[itemsize - 1 - i::itemsize]
    return bytes(out)


class StorageType:
    """Stand-in for a torch.*Storage class; only its element dtype matters here."""
    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype


class Storage:
    """Lazy stand-in for a storage: fetch() returns its numel elements as little-endian bytes."""
    __slots__ = ("dtype", "numel", "fetch")

    def __init__(self, dtype, numel, fetch):
        self.dtype, self.numel, self.fetch = dtype, numel, fetch

    def view(self, offset, size):
        """The legacy format's storage views: size elements from element offset on."""
        if not (is_count(offset) and is_count(size)) or offset + size > self.numel:
            raise ConvertError("storage view lies outside its storage")
        isz = ITEMSIZE[self.dtype]
        return Storage(self.dtype, size,
                       lambda: self.fetch()[offset * isz:(offset + size) * isz])


class Tensor:
    """Stand-in for a tensor: a strided view of a storage, as torch rebuilds it."""
    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage, offset, shape, stride):
        # The pickle is untrusted: check the view before anything indexes with it.
        if not isinstance(storage, Storage):
            raise ConvertError("tensor without a storage")
        shape, stride = tuple(shape), tuple(stride)
        if not (is_count(offset) and len(shape) == len(stride)
                and all(map(is_count, shape + stride))):
            raise ConvertError("tensor with an invalid size, stride or offset")
        if numel(shape) and offset + sum((n - 1) * s for n, s in zip(shape, stride)) >= storage.numel:
            raise ConvertError("tensor view lies outside its storage")
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    def c_order_bytes(self):
        """The elements in C order (little endian, own dtype), gathered through the strides."""
        isz = ITEMSIZE[self.storage.dtype]
        count = numel(self.shape)
        if count == 0:
            return b""
        data = self.storage.fetch()
        if all(n == 1 or s == c for n, s, c in zip(self.shape, self.stride, c_strides(self.shape))):
            return data[self.offset * isz:(self.offset + count) * isz]
        # Non-contiguous (a transposed weight, a slice, an expanded dim): copy row by row,
        # each row one strided memoryview slice, so no Python loop runs per element.
        elements = memoryview(data).cast(ELEMENT_FORMATS[isz])
        *outer, inner = self.shape
        *outer_strides, inner_stride = self.stride
        rows = []
        for index in itertools.product(*map(range, outer)):
            first = self.offset + sum(i * s for i, s in zip(index, outer_strides))
            if inner_stride == 0:
                rows.append(elements[first:first + 1].tobytes() * inner)
            else:
                rows.append(elements[first:first + (inner - 1) * inner_stride + 1:inner_stride]
                            .tobytes())
        return b"".join(rows)


def rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    """torch._utils._rebuild_tensor and _rebuild_tensor_v2 (requires_grad, hooks, metadata)."""
    return Tensor(storage, storage_offset, size, stride)


def rebuild_parameter(data, *_unused):
    """torch._utils._rebuild_parameter[_with_state]: a Parameter is just its tensor here."""
    return data


# Everything find_class will hand out. OrderedDict is the real class: building one from
# pickled pairs runs no code beyond dict insertion.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
}
ALLOWED_GLOBALS.update((key, StorageType(dtype)) for key, dtype in STORAGE_DTYPES.items())


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ALLOWED_GLOBALS; storages come from storage_for(pid)."""

    def __init__(self, file, storage_for):
        super().__init__(file)
        self.storage_for = storage_for

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ConvertError(f"refusing to unpickle {module}.{name}: "
                               "not a tensor checkpoint") from None

    def persistent_load(self, pid):
        if self.storage_for is None:
            raise ConvertError("unexpected storage reference in pickle")
        return self.storage_for(pid)


def unpickle(file, storage_for=None):
    """One pickle from file through RestrictedUnpickler, with errors as ConvertError."""
    try:
        return RestrictedUnpickler(file, storage_for).load()
    except ConvertError:
        raise
    except Exception as e:  # a malformed pickle can make the unpickler raise nearly anything
        if file.read(1) == b"":  # it ran into the end of the data
            raise ConvertError("file is truncated (pickle data ends early)") from None
        raise ConvertError(f"not a PyTorch checkpoint ({type(e).__name__}: {e})") from None


class StorageTable:
    """The storages a pickle refers to, by key; read(key, storage) supplies their bytes."""

    def __init__(self, read, legacy):
        self.read, self.legacy, self.by_key = read, legacy, {}

    def storage_for(self, pid):
        """persistent_load for ('storage', type, key, location, numel[, view_metadata])."""
        fields = 6 if self.legacy else 5
        if not (isinstance(pid, tuple) and len(pid) == fields and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], str)
                and is_count(pid[4])):
            raise ConvertError(f"unsupported storage reference {pid!r:.100}")
        dtype, key, count = pid[1].dtype, pid[2], pid[4]
        storage = self.by_key.get(key)
        if storage is None:
            storage = Storage(dtype, count, None)
            storage.fetch = functools.partial(self.read, key, storage)
            self.by_key[key] = storage
        elif storage.dtype != dtype:
            raise ConvertError(f"storage {key} is used with two dtypes")
        if self.legacy and pid[5] is not None:
            view = pid[5]
            if not (isinstance(view, tuple) and len(view) == 3):
                raise ConvertError(f"unsupported storage view {view!r:.100}")
            return storage.view(view[1], view[2])
        return storage


def load_legacy(f):
    """The legacy format: magic, protocol, sys_info and main pickles, the storage keys, then
    per key an int64 element count and the raw elements."""
    if unpickle(f) != LEGACY_MAGIC:
        raise ConvertError("not a PyTorch checkpoint (wrong magic number)")
    if unpickle(f) != LEGACY_PROTOCOL:
        raise ConvertError("unsupported legacy torch.save protocol version")
    sys_info = unpickle(f)
    big = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    where = {}  # key -> file position of its elements

    def read(key, storage):
        nbytes = storage.numel * ITEMSIZE[storage.dtype]
        try:
            f.seek(where[key])
            data = f.read(nbytes)
        except OSError as e:
            raise ConvertError(f"cannot read: {e}") from None
        if len(data) != nbytes:
            raise ConvertError("file is truncated (storage data ends early)")
        return byteswap(data, ITEMSIZE[storage.dtype]) if big else data

    table = StorageTable(read, legacy=True)
    obj = unpickle(f, table.storage_for)
    keys = unpickle(f)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise ConvertError("not a PyTorch checkpoint (bad storage key list)")
    # Record where each storage's data lies, checking sizes now rather than mid-write.
    file_size = os.fstat(f.fileno()).st_size
    for key in keys:
        storage = table.by_key.get(key)
        if storage is None:  # its element size, hence its length, is unknown
            raise ConvertError(f"storage {key} is listed but never used")
        head = f.read(8)
        if len(head) != 8:
            raise ConvertError("file is truncated (storage data ends early)")
        count = int.from_bytes(head, "big" if big else "little", signed=True)
        where[key] = f.tell()
        end = where[key] + count * ITEMSIZE[storage.dtype]
        if count < storage.numel or end > file_size:
            raise ConvertError("file is truncated (storage data ends early)")
        f.seek(end)
    missing = sorted(set(table.by_key) - set(where))
    if missing:
        raise ConvertError(f"storage {missing[0]} has no data")
    return obj


def load_zip(path, stack):
    """The zip format: <folder>/data.pkl, raw storages in <folder>/data/<key>, and from
    torch 2.1 on a <folder>/byteorder file."""
    try:
        zf = stack.enter_context(zipfile.ZipFile(path))
        names = set(zf.namelist())
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ConvertError("zip file is not a PyTorch checkpoint (no <folder>/data.pkl)")
        folder = pickles[0][:-len("data.pkl")]
        byteorder = "little"
        if folder + "byteorder" in names:
            byteorder = zf.read(folder + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise ConvertError(f"unknown byteorder {byteorder!r}")
        pickled = zf.read(pickles[0])
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise ConvertError(f"not a readable zip file, truncated? ({e})") from None

    def read(key, storage):
        isz = ITEMSIZE[storage.dtype]
        try:
            data = zf.read(f"{folder}data/{key}")[:storage.numel * isz]
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise ConvertError(f"cannot read storage {key} ({e})") from None
        return byteswap(data, isz) if byteorder == "big" else data

    table = StorageTable(read, legacy=False)
    obj = unpickle(io.BytesIO(pickled), table.storage_for)
    for key, storage in sorted(table.by_key.items()):
        name = f"{folder}data/{key}"
        if name not in names:
            raise ConvertError(f"storage {name} is missing")
        if zf.getinfo(name).file_size < storage.numel * ITEMSIZE[storage.dtype]:
            raise ConvertError(f"storage {name} is shorter than its tensors")
    return obj


def load_safetensors(f):
    """A safetensors file, as a dict of name -> Tensor."""
    file_size = os.fstat(f.fileno()).st_size
    length = int.from_bytes(f.read(8), "little")
    if length > file_size - 8:
        raise ConvertError("file is truncated (safetensors header ends early)")
    try:
        header = json.loads(f.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ConvertError(f"bad safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ConvertError("bad safetensors header (not a JSON object)")
    base = 8 + length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ConvertError(f"bad safetensors header entry for {name}") from None
        if dtype not in ITEMSIZE:
            raise ConvertError(f"unsupported safetensors dtype {dtype!r} ({name})")
        if not (all(map(is_count, shape)) and is_count(begin) and is_count(end)
                and end - begin == numel(shape) * ITEMSIZE[dtype]):
            raise ConvertError(f"bad safetensors header entry for {name}")
        if base + end > file_size:
            raise ConvertError(f"file is truncated (data of {name} ends early)")

        def fetch(begin=begin, end=end):
            try:
                f.seek(base + begin)
                data = f.read(end - begin)
            except OSError as e:
                raise ConvertError(f"cannot read: {e}") from None
            if len(data) != end - begin:
                raise ConvertError("file is truncated (tensor data ends early)")
            return data
        tensors[name] = Tensor(Storage(dtype, numel(shape), fetch), 0, shape, c_strides(shape))
    return tensors


def load_checkpoint(path, stack):
    """Whatever the file holds, its formats told apart by their first bytes."""
    try:
        f = stack.enter_context(open(path, "rb"))
        head = f.read(9)
        f.seek(0)
    except OSError as e:
        raise ConvertError(e.strerror or str(e)) from None
    if not head:
        raise ConvertError("empty file")
    if head.startswith(b"PK"):
        return load_zip(path, stack)
    if head[8:9] == b"{":
        return load_safetensors(f)
    return load_legacy(f)


def state_dict_tensors(obj):
    """The tensors of the checkpoint's state dict, by name without a leading 'module.'."""
    if not isinstance(obj, dict):
        raise ConvertError(f"checkpoint holds a {type(obj).__name__}, not a dict of tensors")
    state = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj.get(k), dict)), obj)
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, Tensor):  # epoch counters, accuracies, ...
            continue
        if not isinstance(name, str):
            raise ConvertError(f"tensor name {name!r:.100} is not a string")
        # nn.DataParallel saves its wrapped model's parameters as module.<name>.
        short = name[len("module."):] if name.startswith("module.") else name
        if short in tensors or short == "__metadata__":
            raise ConvertError(f"duplicate or reserved tensor name {short!r}")
        tensors[short] = value
    if not tensors:
        raise ConvertError("no tensors found")
    return tensors


def output_dtype(dtype, mode):
    """The dtype written for a tensor: --dtype changes floating-point tensors only."""
    return DTYPE_MODES[mode] if DTYPE_MODES[mode] and dtype in FLOAT_DTYPES else dtype


def pack_saturating(code, value):
    """Pack one float; values beyond the format's range become +-inf, as torch casts do."""
    try:
        return struct.pack("<" + code, value)
    except OverflowError:
        return struct.pack("<" + code, math.copysign(math.inf, value))


def convert_dtype(data, src, dst):
    """Little-endian elements of dtype src as dtype dst (equal, or floats to F32/F16)."""
    if src == dst:
        return data
    if src == "BF16":
        # bfloat16 is the upper half of a float32, so widening just places the bytes.
        wide = bytearray(2 * len(data))
        wide[2::4], wide[3::4] = data[0::2], data[1::2]
        return convert_dtype(bytes(wide), "F32", dst)
    if src == "F64" and dst == "F16":
        # torch narrows double to half through float; rounding twice the same way gives
        # the very bits that tensor.half() would.
        return convert_dtype(convert_dtype(data, "F64", "F32"), "F32", "F16")
    isz, src_code, dst_code = ITEMSIZE[src], STRUCT_FLOATS[src], STRUCT_FLOATS[dst]
    total = len(data) // isz
    parts = []
    for start in range(0, total, CAST_CHUNK):
        count = min(CAST_CHUNK, total - start)
        values = struct.unpack_from(f"<{count}{src_code}", data, start * isz)
        try:
            parts.append(struct.pack(f"<{count}{dst_code}", *values))
        except OverflowError:
            parts.append(b"".join(pack_saturating(dst_code, v) for v in values))
    return b"".join(parts)


def write_safetensors(out_path, tensors, mode, source):
    """Write out_path.tmp, then rename it over out_path, so out_path is never partial."""
    names = sorted(tensors)
    header, end = {}, 0
    for name in names:
        t = tensors[name]
        dtype = output_dtype(t.storage.dtype, mode)
        nbytes = numel(t.shape) * ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [end, end + nbytes]}
        end += nbytes
    header["__metadata__"] = {"format": "pt", "source": source}
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    tmp = out_path + ".tmp"
    try:
        with open(tmp, "wb") as out:
            out.write(struct.pack("<Q", len(blob)))
            out.write(blob)
            for name in names:
                t = tensors[name]
                out.write(convert_dtype(t.c_order_bytes(), t.storage.dtype,
                                        header[name]["dtype"]))
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return 8 + len(blob) + end


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert a PyTorch checkpoint (torch.save zip or legacy format, or a "
                    ".safetensors file) into a safetensors file, using only the Python "
                    "standard library.",
        epilog="The checkpoint may be a state dict itself or a dict holding one under "
               + ", ".join(repr(k) for k in STATE_DICT_KEYS) + " (tried in that order); "
               "its other entries (epoch, best_prec1, ...) and non-tensor values are "
               "ignored. A leading 'module.' (from nn.DataParallel) is stripped from "
               "every name. Only tensors, storages and OrderedDicts are unpickled: "
               "anything else, such as a whole pickled nn.Module, is refused, so no code "
               "from the file ever runs. Exit status: 0 on success, 1 on error.")
    parser.add_argument("input", metavar="IN", help="checkpoint to read")
    parser.add_argument("output", metavar="OUT.safetensors", nargs="?",
                        help="file to write (via OUT.safetensors.tmp, renamed when "
                             "complete); not used with --list")
    parser.add_argument("--dtype", choices=tuple(DTYPE_MODES), default="keep",
                        help="write floating-point tensors as F32 or F16; 'keep' (the "
                             "default) leaves them as they are. Integer and bool tensors "
                             "are always kept.")
    parser.add_argument("--list", action="store_true",
                        help="print the name, dtype and shape of every tensor instead of "
                             "writing OUT")
    args = parser.parse_args(argv)
    if args.output is None and not args.list:
        parser.error("OUT.safetensors is required unless --list is given")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        with contextlib.ExitStack() as stack:
            tensors = state_dict_tensors(load_checkpoint(args.input, stack))
            if args.list:
                for name in sorted(tensors):
                    t = tensors[name]
                    print(name, output_dtype(t.storage.dtype, args.dtype), list(t.shape))
                return 0
            try:
                size = write_safetensors(args.output, tensors, args.dtype,
                                         os.path.basename(args.input))
            except OSError as e:
                print(f"{PROG}: {args.output}: {e.strerror or e}", file=sys.stderr)
                return 1
    except ConvertError as e:
        print(f"{PROG}: {args.input}: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: {len(tensors)} tensors, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
