"""Models, datasets, forward passes, block selection and scoring, over libfeaturenorm."""
import collections
import ctypes
import os
import threading

import numpy as np

from ._lib import Error, check, lib, new, structs, text

BACKENDS = ("auto", "cpu", "cuda")          # fn_backend, in enum order
PRESETS = ("auto", "cifar", "imagenet")     # fn_preset, in enum order


def _precisions():
    names = []
    while text(lib.fn_precision_name(len(names))) != "?":  # the library's names, in enum order
        names.append(text(lib.fn_precision_name(len(names))))
    return tuple(names)


PRECISIONS = _precisions()

Block = collections.namedtuple("Block", "index name shape")
Block.__doc__ = "A candidate block: its index (column of the norms), name and output shape (C, H, W)."


def _choice(what, value, names):
    if value not in names:
        raise Error("FN_ERR_INVALID_ARG", f"{what} {value!r}: expected one of {' '.join(names)}")
    return names.index(value)


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p) if a is not None else None


def _call_cancellable(fn, run):
    """fn(run) on a worker thread, so that Ctrl-C sets run.cancel (the pass stops
    after its batch in hand) instead of waiting for the whole run; the GIL is
    released inside the call (ctypes), and the error is read on that thread."""
    flag = ctypes.c_int(0)
    run.cancel = ctypes.cast(ctypes.pointer(flag), ctypes.c_void_p)
    result = {}

    def work():
        try:
            result["value"] = fn(run)
        except BaseException as e:  # noqa: BLE001  (re-raised on the caller's thread)
            result["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(0.2)
    except KeyboardInterrupt:
        flag.value = 1
        t.join()
        raise
    if "error" in result:
        raise result["error"]
    return result["value"]


class Dataset:
    """Images for select and score: a path (folder, .txt/.lst list, CIFAR binary)
    or a uint8 array N x H x W x 3 (any H, W: the run's preset resizes them, as it
    does decoded files). labels: for a folder, True takes first-level sub-folders
    as classes; for an array, N integers (or None)."""

    def __init__(self, data, labels=None, limit=0, every=0):
        self._handle = ctypes.c_void_p()
        self._keep = None
        if isinstance(data, (str, os.PathLike)):
            self.path = os.fspath(data)
            o = new("fn_dataset_options", "fn_dataset_options_init", limit=limit, every=every,
                    labels=int(bool(labels)))
            check(lib.fn_dataset_open(self.path.encode(), ctypes.byref(o), ctypes.byref(self._handle)))
            return
        images = np.asarray(data)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise Error("FN_ERR_SHAPE", f"images for a dataset: uint8 N x H x W x 3, got {images.dtype} "
                                        f"{'x'.join(map(str, images.shape))}")
        images = np.ascontiguousarray(images[::every or 1][:limit or None])
        lab = None
        if labels is not None and not isinstance(labels, bool):
            lab = np.ascontiguousarray(np.asarray(labels, np.int32)[::every or 1][:limit or None])
            if lab.shape != (images.shape[0],):
                raise Error("FN_ERR_SHAPE", f"{lab.size} labels for {images.shape[0]} images")
        self.path, self._keep = "array", (images, lab)  # the library reads them in place
        check(lib.fn_dataset_from_images(_ptr(images), images.shape[0], images.shape[1], images.shape[2],
                                         _ptr(lab), ctypes.byref(self._handle)))

    def __len__(self):
        return lib.fn_dataset_size(self._handle)

    def names(self):
        """The item names: file paths, file#record for CIFAR binary, array#i for arrays."""
        return [text(lib.fn_dataset_item_name(self._handle, i)) for i in range(len(self))]

    def __del__(self):
        if getattr(self, "_handle", None):
            lib.fn_dataset_free(self._handle)
            self._handle = None


class Selection:
    """The result of Model.select: NormRatio of every block and the chosen one
    (``block``, ``index``), the ReAct clip, and ``save(path)`` for the CLI's --selection."""

    def __init__(self, model, handle, data_path):
        self._model, self._handle, self._data_path = model, handle, data_path
        s = ctypes.cast(handle, ctypes.POINTER(structs["fn_selection"])).contents
        B = s.num_blocks
        self.blocks = [text(s.block_names[b]) for b in range(B)]
        self.index = s.selected
        self.block = self.blocks[s.selected]
        self.norm_ratio = np.ctypeslib.as_array(s.norm_ratio, (B,)).copy()
        self.mean_norm_id = np.ctypeslib.as_array(s.mean_norm_id, (B,)).copy()
        self.mean_norm_jigsaw = np.ctypeslib.as_array(s.mean_norm_jigsaw, (B,)).copy()
        self.images, self.skipped, self.seed = s.images, s.skipped, s.seed
        self.react_percentile, self.react_clip = s.react_percentile, s.react_clip

    def save(self, path):
        """Write selection.json as `featurenorm select --out` does (whole or not at all)."""
        check(lib.fn_selection_write_json(self._handle, self._model._handle, self._data_path.encode(),
                                          os.fspath(path).encode()))

    def __repr__(self):
        return f"Selection(block={self.block!r}, norm_ratio={np.round(self.norm_ratio, 4).tolist()})"

    def __del__(self):
        if getattr(self, "_handle", None):
            lib.fn_selection_free(self._handle)
            self._handle = None


def _frame(columns, as_frame):
    """A pandas DataFrame when pandas is there (or as_frame=True), else the dict."""
    if as_frame is False:
        return columns
    try:
        import pandas
    except ImportError:
        if as_frame:
            raise
        return columns
    return pandas.DataFrame(columns)


class Model:
    """A network loaded for FeatureNorm: a named architecture with safetensors
    weights (``Model("resnet20_cifar", "resnet20.safetensors")``), or an ONNX file
    (``Model(model="net.onnx")``). Keywords follow the CLI's options: backend
    (auto, cpu, cuda), precision (fp32, tf32, fp16, bf16), threads, batch (the
    largest forward), input_size, mean/std (of [0,1] RGB), blocks (ONNX: "auto",
    "all" or "a,b"), device (CUDA index), stem_padding, allow_unused_weights,
    verbose (say which backend was chosen and why)."""

    def __init__(self, arch=None, weights=None, *, model=None, blocks=None, backend="auto", precision="fp32",
                 threads=0, batch=64, input_size=0, mean=None, std=None, stem_padding=0, device=0,
                 allow_unused_weights=False, verbose=False):
        o = new("fn_model_options", "fn_model_options_init", backend=_choice("backend", backend, BACKENDS),
                precision=_choice("precision", precision, PRECISIONS), max_batch=batch, threads=threads,
                input_size=input_size, stem_padding=stem_padding, device=device,
                allow_unused_weights=int(allow_unused_weights), verbose=int(verbose))
        for k, v in (("arch", arch), ("weights", weights), ("model", model), ("blocks", blocks)):
            if v is not None:
                o._keep.append(os.fspath(v).encode())
                setattr(o, k, o._keep[-1])
        for k, v in (("mean", mean), ("std", std)):
            if v is not None:
                setattr(o, k, (ctypes.c_float * 3)(*map(float, v)))
        self._handle = ctypes.c_void_p()
        check(lib.fn_model_load(ctypes.byref(o), ctypes.byref(self._handle)))
        info = structs["fn_model_info"]()
        lib.fn_model_get_info(self._handle, ctypes.byref(info))
        self.arch, self.backend, self.device = text(info.arch), text(info.backend), text(info.device)
        self.precision = PRECISIONS[info.precision]
        self.has_weights = bool(info.has_weights)
        self.input_size, self.num_classes, self.feature_dim = info.input_size, info.num_classes, info.feature_dim
        self.batch, self.preset = info.max_batch, PRESETS[info.preset]
        self.mean, self.std = tuple(info.mean), tuple(info.std)
        self.blocks = [self._block(b) for b in range(info.num_blocks)]

    def _block(self, b):
        c, h, w = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.fn_model_block_shape(self._handle, b, c, h, w)
        return Block(b, text(lib.fn_model_block_name(self._handle, b)), (c.value, h.value, w.value))

    def block_index(self, block):
        """A block's column: from its index or its name ("layer3.2")."""
        if isinstance(block, (int, np.integer)):
            if not 0 <= block < len(self.blocks):
                raise Error("FN_ERR_NOT_FOUND", f"block {block}: the model has blocks 0 to {len(self.blocks) - 1}")
            return int(block)
        b = lib.fn_model_find_block(self._handle, str(block).encode())
        if b < 0:
            raise Error("FN_ERR_NOT_FOUND", f"block {block!r}: no such block (Model.blocks lists them)")
        return b

    def __repr__(self):
        return (f"Model({self.arch!r}, backend={self.backend!r}, precision={self.precision!r}, "
                f"device={self.device!r}, blocks={len(self.blocks)})")

    def __del__(self):
        if getattr(self, "_handle", None):
            lib.fn_model_free(self._handle)
            self._handle = None

    # ---- forward ----------------------------------------------------------
    def _images(self, images):
        a = np.asarray(images)
        S = self.input_size
        if a.dtype == np.uint8 and a.ndim == 4 and a.shape[1:] == (S, S, 3):
            return np.ascontiguousarray(a), lib.fn_model_forward_u8
        if a.dtype == np.float32 and a.ndim == 4 and a.shape[1:] == (3, S, S):
            return np.ascontiguousarray(a), lib.fn_model_forward
        raise Error("FN_ERR_SHAPE", f"images: uint8 N x {S} x {S} x 3 (RGB bytes) or float32 N x 3 x {S} x {S} "
                                    f"(normalised), got {a.dtype} {'x'.join(map(str, a.shape))}")

    def forward(self, images, block=None, react_clip=0.0):
        """Forward a batch: uint8 N x S x S x 3 RGB (normalised inside with the
        model's mean/std) or float32 N x 3 x S x S already normalised (S =
        input_size). Returns a dict of NumPy arrays: norms (N x blocks, the
        FeatureNorm of every block), logits, features (penultimate), pred, and
        every score of the table whose needs are met (fn_selected with a block,
        react_energy and react_logits with react_clip > 0), higher = more ID."""
        a, forward = self._images(images)
        N, K, D, B = a.shape[0], self.num_classes, self.feature_dim, len(self.blocks)
        S = lib.fn_score_count()
        out = {"norms": np.empty((N, B), np.float32), "logits": np.empty((N, K), np.float32),
               "features": np.empty((N, D), np.float32), "pred": np.empty(N, np.int32)}
        if react_clip > 0:
            out["react_logits"] = np.empty((N, K), np.float32)
        scores = np.empty((N, S), np.float32)
        o = new("fn_outputs", "fn_outputs_init", block=-1 if block is None else self.block_index(block),
                react_clip=float(react_clip))
        for i in range(0, N, self.batch):
            n = min(self.batch, N - i)
            for k, v in out.items():
                setattr(o, k, v[i:].ctypes.data_as(type(getattr(o, k))))
            o.scores = scores[i:].ctypes.data_as(type(o.scores))
            check(forward(self._handle, n, a[i:].ctypes.data_as(ctypes.c_void_p), ctypes.byref(o)))
        met = {"logits": True, "block": o.block >= 0, "react": react_clip > 0, "features": True,
               "fit": False}  # needs are names joined by '+'; forward has no training statistics
        for j in range(S):
            if all(met[need] for need in text(lib.fn_score_needs(j)).split("+")):
                out[text(lib.fn_score_name(j))] = scores[:, j].copy()
        return out

    def time(self, images, batches=10):
        """Wall seconds of `batches` forward passes of one batch of uint8
        images (N x S x S x 3, N at most the model's batch) run as score runs
        them: batches in flight, every score computed, no decoding. N *
        batches / seconds is the forward throughput (featurenorm bench)."""
        a, forward = self._images(images)
        if forward is not lib.fn_model_forward_u8:
            raise Error("FN_ERR_SHAPE", "time: images must be uint8 N x S x S x 3 RGB bytes")
        seconds = ctypes.c_double(0)
        check(lib.fn_model_time(self._handle, a.shape[0], a.ctypes.data_as(ctypes.c_void_p), int(batches),
                                ctypes.byref(seconds)))
        return seconds.value

    # ---- dataset passes ---------------------------------------------------
    def _run(self, batch=0, preset=None, decode_threads=0, strict=False, progress=True, profile=False,
             seed=0, react_percentile=90.0, checkpoint=None, resume=False, checkpoint_every=0, **score):
        r = new("fn_run_options", "fn_run_options_init", batch=batch, decode_threads=decode_threads,
                strict=int(strict), verbose=int(progress), profile=int(profile), seed=seed,
                react_percentile=react_percentile, resume=int(resume), checkpoint_every=checkpoint_every,
                **score)
        if preset is not None:
            r.preset = _choice("preset", preset, PRESETS)
        if checkpoint is not None:
            r._keep.append(os.fspath(checkpoint).encode())
            r.checkpoint = r._keep[-1]
        return r

    @staticmethod
    def _dataset(data, labels, limit, every):
        return data if isinstance(data, Dataset) else Dataset(data, labels=labels, limit=limit, every=every)

    def select(self, data, *, labels=None, limit=0, every=0, **run):
        """Pick the block by NormRatio over ID images and their Jigsaw copies, as
        `featurenorm select`: data is a path or a uint8 N x H x W x 3 array (see
        Dataset). Keywords: seed, react_percentile, batch, preset, decode_threads,
        strict, progress (on stderr, default True), profile, checkpoint, resume.
        Returns a Selection."""
        d = self._dataset(data, labels, limit, every)
        out = ctypes.c_void_p()
        _call_cancellable(lambda r: check(lib.fn_select_block(self._handle, d._handle, ctypes.byref(r),
                                                              ctypes.byref(out))), self._run(**run))
        return Selection(self, out, d.path)

    def load_selection(self, path):
        """Read a selection.json (from select or Selection.save), checked against this model."""
        out = ctypes.c_void_p()
        check(lib.fn_selection_read_json(os.fspath(path).encode(), self._handle, ctypes.byref(out)))
        return Selection(self, out, "")

    def score(self, data, *, selection=None, block=None, react_clip=None, labels=None, limit=0, every=0,
              csv=None, npy=None, as_frame=None, **run):
        """Score a dataset as `featurenorm score`: one row per readable image, in
        dataset order. selection (a Selection or a selection.json path) adds
        fn_selected and react_energy; or block (name or index) and react_clip.
        csv/npy also write the CLI's files. Returns columns by name: path,
        [label], pred, fn.<block> for every block, then the scores: a pandas
        DataFrame when pandas is installed (as_frame=False: always a dict of arrays)."""
        d = self._dataset(data, labels, limit, every)
        if isinstance(selection, (str, os.PathLike)):
            selection = self.load_selection(selection)
        opts = {"block": -1, "react_clip": 0.0}
        if selection is not None:
            opts = {"block": selection.index, "react_clip": selection.react_clip}
        if block is not None:
            opts["block"] = self.block_index(block)
        if react_clip is not None:
            opts["react_clip"] = float(react_clip)
        out = ctypes.c_void_p()
        _call_cancellable(lambda r: check(lib.fn_score_dataset(self._handle, d._handle, ctypes.byref(r),
                                                               ctypes.byref(out))), self._run(**run, **opts))
        try:
            if csv is not None or npy is not None:
                path = lambda p: None if p is None else os.fspath(p).encode()  # noqa: E731
                check(lib.fn_scores_write(out, self._handle, d._handle, path(csv), path(npy)))
            return _frame(self._columns(out, d), as_frame)
        finally:
            lib.fn_scores_free(out)

    def _columns(self, handle, d):
        s = ctypes.cast(handle, ctypes.POINTER(structs["fn_scores"])).contents
        n, B = s.n, s.num_blocks
        arr = lambda p, *shape: np.ctypeslib.as_array(p, shape).copy() if n else np.empty(shape)  # noqa: E731
        cols = {"path": np.array([text(lib.fn_dataset_item_name(d._handle, i)) for i in arr(s.index, n)],
                                 dtype=object)}
        label = arr(s.label, n).astype(np.int32)
        if (label >= 0).any():
            cols["label"] = label
        cols["pred"] = arr(s.pred, n).astype(np.int32)
        norms = arr(s.norms, n, B).astype(np.float32)
        for b in range(B):
            cols["fn." + self.blocks[b].name] = norms[:, b]
        values = arr(s.scores, s.num_scores, n).astype(np.float32)
        for j in range(s.num_scores):
            cols[text(lib.fn_score_name(s.score_id[j]))] = values[j]
        return cols


def architectures():
    """{name: description} of every named architecture."""
    return {text(lib.fn_arch_name(i)): text(lib.fn_arch_description(i)) for i in range(lib.fn_arch_count())}


def scores():
    """The score table, in order: [(name, title, needs)]; needs is logits, block or react."""
    return [(text(lib.fn_score_name(i)), text(lib.fn_score_title(i)), text(lib.fn_score_needs(i)))
            for i in range(lib.fn_score_count())]
