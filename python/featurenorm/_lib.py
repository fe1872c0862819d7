"""The C library: finding it, checking its ABI, and its structs built from its own description.

No struct layout is written here. libfeaturenorm describes every public struct
(fn_struct_name, fn_struct_size, fn_struct_field: names, types, offsets), and
the ctypes structures are generated from that at import; a library of another
ABI version, or one whose description ctypes cannot reproduce byte for byte,
is refused with ImportError before any call.
"""
import ctypes
import ctypes.util
import glob
import os

ABI_VERSION = 1  # the FN_ABI_VERSION this package was written against

_HERE = os.path.dirname(os.path.abspath(__file__))


class Error(Exception):
    """A failed library call: ``status`` is the fn_status name ("FN_ERR_FORMAT", ...),
    ``message`` fn_last_error()'s text, which names the file and the problem."""

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def _candidates():
    """Where the library may be: $FEATURENORM_LIBRARY, inside the package (pip
    install), then the system's search path (cmake --install, LD_LIBRARY_PATH)."""
    if os.environ.get("FEATURENORM_LIBRARY"):
        return [os.environ["FEATURENORM_LIBRARY"]]
    bundled = sorted(glob.glob(os.path.join(_HERE, "libfeaturenorm.so*")))
    found = ctypes.util.find_library("featurenorm")
    return bundled + ([found] if found else []) + ["libfeaturenorm.so.0"]


def _open():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path}: {e}")
    raise ImportError("featurenorm: libfeaturenorm not found (pip install . from the repository "
                      "builds it into the package; or set FEATURENORM_LIBRARY to its path). Tried:\n  "
                      + "\n  ".join(tried))


lib = _open()

# ---- function prototypes (the ABI version guards them) ------------------------
c_char_pp = ctypes.POINTER(ctypes.c_char_p)
c_size_p = ctypes.POINTER(ctypes.c_size_t)
_P = ctypes.c_void_p
_PROTOS = {
    "fn_abi_version": (ctypes.c_int, []),
    "fn_struct_name": (ctypes.c_char_p, [ctypes.c_int]),
    "fn_struct_size": (ctypes.c_size_t, [ctypes.c_char_p]),
    "fn_struct_field": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, c_char_pp, c_char_pp, c_size_p,
                                       c_size_p]),
    "fn_last_error": (ctypes.c_char_p, []),
    "fn_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "fn_version": (ctypes.c_char_p, []),
    "fn_arch_count": (ctypes.c_int, []),
    "fn_arch_name": (ctypes.c_char_p, [ctypes.c_int]),
    "fn_arch_description": (ctypes.c_char_p, [ctypes.c_int]),
    "fn_precision_name": (ctypes.c_char_p, [ctypes.c_int]),
    "fn_score_count": (ctypes.c_int, []),
    "fn_score_name": (ctypes.c_char_p, [ctypes.c_int]),
    "fn_score_title": (ctypes.c_char_p, [ctypes.c_int]),
    "fn_score_needs": (ctypes.c_char_p, [ctypes.c_int]),
    "fn_model_options_init": (None, [_P]),
    "fn_model_load": (ctypes.c_int, [_P, ctypes.POINTER(_P)]),
    "fn_model_free": (None, [_P]),
    "fn_model_get_info": (None, [_P, _P]),
    "fn_model_block_name": (ctypes.c_char_p, [_P, ctypes.c_int]),
    "fn_model_block_shape": (None, [_P, ctypes.c_int] + [ctypes.POINTER(ctypes.c_int)] * 3),
    "fn_model_find_block": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "fn_outputs_init": (None, [_P]),
    "fn_model_forward": (ctypes.c_int, [_P, ctypes.c_int, _P, _P]),
    "fn_model_forward_u8": (ctypes.c_int, [_P, ctypes.c_int, _P, _P]),
    "fn_model_time": (ctypes.c_int, [_P, ctypes.c_int, _P, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]),
    "fn_dataset_options_init": (None, [_P]),
    "fn_dataset_open": (ctypes.c_int, [ctypes.c_char_p, _P, ctypes.POINTER(_P)]),
    "fn_dataset_from_images": (ctypes.c_int, [_P, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, _P,
                                              ctypes.POINTER(_P)]),
    "fn_dataset_free": (None, [_P]),
    "fn_dataset_size": (ctypes.c_size_t, [_P]),
    "fn_dataset_item_name": (ctypes.c_char_p, [_P, ctypes.c_size_t]),
    "fn_run_options_init": (None, [_P]),
    "fn_score_dataset": (ctypes.c_int, [_P, _P, _P, ctypes.POINTER(_P)]),
    "fn_scores_free": (None, [_P]),
    "fn_scores_write": (ctypes.c_int, [_P, _P, _P, ctypes.c_char_p, ctypes.c_char_p]),
    "fn_select_block": (ctypes.c_int, [_P, _P, _P, ctypes.POINTER(_P)]),
    "fn_selection_free": (None, [_P]),
    "fn_selection_write_json": (ctypes.c_int, [_P, _P, ctypes.c_char_p, ctypes.c_char_p]),
    "fn_selection_read_json": (ctypes.c_int, [ctypes.c_char_p, _P, ctypes.POINTER(_P)]),
    "fn_metrics_compute": (ctypes.c_int, [_P, ctypes.c_size_t, _P, ctypes.c_size_t, _P]),
    "fn_eval_files": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, c_char_pp, c_char_pp, c_char_pp,
                                     ctypes.c_int, ctypes.POINTER(_P)]),
    "fn_eval_free": (None, [_P]),
    "fn_cuda_device_count": (ctypes.c_int, []),
}
for _name, (_res, _args) in _PROTOS.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        raise ImportError(f"featurenorm: {lib._name} has no {_name}: too old for this package "
                          f"(ABI {ABI_VERSION})") from None
    _f.restype, _f.argtypes = _res, _args

if lib.fn_abi_version() != ABI_VERSION:
    raise ImportError(f"featurenorm: {lib._name} has ABI version {lib.fn_abi_version()}, this package "
                      f"ABI version {ABI_VERSION}: install the package and the library from the same "
                      f"source (pip install . in the repository)")


# ---- structs, from the library's description ---------------------------------
_SCALARS = {"int": ctypes.c_int, "enum": ctypes.c_int, "float": ctypes.c_float, "double": ctypes.c_double,
            "size_t": ctypes.c_size_t, "uint64_t": ctypes.c_uint64, "char*": ctypes.c_char_p,
            "void*": ctypes.c_void_p, "float[3]": ctypes.c_float * 3}


def _describe(name):
    """[(field, type, offset, size)] of one struct, as the library states them."""
    out, i = [], 0
    field, typ, off, size = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_size_t(), ctypes.c_size_t()
    while lib.fn_struct_field(name.encode(), i, field, typ, off, size):
        out.append((field.value.decode(), typ.value.decode(), off.value, size.value))
        i += 1
    return out


def _ctype(typ, structs):
    """A type name of the description as a ctypes type: scalars, then pointers to them."""
    if typ in _SCALARS:
        return _SCALARS[typ]
    if typ.endswith("*"):
        base = typ[:-1]
        target = structs.get(base) or _ctype(base, structs)
        return ctypes.POINTER(target)
    raise ImportError(f"featurenorm: the library describes a field of type {typ!r}, unknown to this package")


def _build_structs():
    names, i = [], 0
    while lib.fn_struct_name(i):
        names.append(lib.fn_struct_name(i).decode())
        i += 1
    structs = {n: type(n, (ctypes.Structure,), {}) for n in names}
    for n in names:
        desc = _describe(n)
        structs[n]._fields_ = [(f, _ctype(t, structs)) for f, t, _, _ in desc]
        for f, t, off, size in desc:
            got = getattr(structs[n], f)
            if (got.offset, got.size) != (off, size):
                raise ImportError(f"featurenorm: {n}.{f} ({t}) is at {off} ({size} bytes) in the library, "
                                  f"{got.offset} ({got.size} bytes) in ctypes")
        if ctypes.sizeof(structs[n]) != lib.fn_struct_size(n.encode()):
            raise ImportError(f"featurenorm: {n} is {lib.fn_struct_size(n.encode())} bytes in the library, "
                              f"{ctypes.sizeof(structs[n])} as described")
    return structs


structs = _build_structs()


def check(status):
    """Raise Error for a failed call (on the thread that made it: the message is per thread)."""
    if status != 0:
        raise Error(lib.fn_status_name(status).decode(), lib.fn_last_error().decode(errors="replace"))


def new(name, init=None, **fields):
    """A zeroed (or init-ed) struct with fields set; unknown fields are an Error, not a silent no-op."""
    s = structs[name]()
    if init:
        getattr(lib, init)(ctypes.byref(s))
    known = {f for f, _ in structs[name]._fields_}
    keep = []  # bytes the struct points into live as long as it does
    for k, v in fields.items():
        if k not in known:
            raise Error("FN_ERR_INVALID_ARG", f"{name} has no field {k!r}")
        if isinstance(v, str):
            v = v.encode()
            keep.append(v)
        setattr(s, k, v)
    s._keep = keep
    return s


def text(p):
    return p.decode(errors="replace") if p is not None else None
