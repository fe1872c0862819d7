"""The paper's evaluation: FPR95, AUROC, AUPR of ID against OOD scores."""
import ctypes
import os

import numpy as np

from ._lib import Error, check, lib, structs, text
from ._model import _frame

METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")


def metrics(id_scores, ood_scores):
    """FPR95, AUROC, AUPR-In/Out (fractions, not %) and the FPR95 threshold of one
    score, ID the positive class, higher = more ID (fn_metrics_compute: AUROC
    with ties counted half and AUPR as scikit-learn computes them)."""
    a = np.ascontiguousarray(id_scores, np.float32).ravel()
    b = np.ascontiguousarray(ood_scores, np.float32).ravel()
    m = structs["fn_metrics"]()
    check(lib.fn_metrics_compute(a.ctypes.data_as(ctypes.c_void_p), a.size, b.ctypes.data_as(ctypes.c_void_p),
                                 b.size, ctypes.byref(m)))
    return {k: getattr(m, k) for k in METRICS + ("threshold", "n_id", "n_ood")}


def _title(column):
    names = [text(lib.fn_score_name(i)) for i in range(lib.fn_score_count())]
    if column in names:
        return text(lib.fn_score_title(names.index(column)))
    return f"FeatureNorm ({column[3:]})" if column.startswith("fn.") else column


def _default_scores(columns):
    """eval's default rows: the table's logit scores present, the last block, fn_selected."""
    names = [text(lib.fn_score_name(i)) for i in range(lib.fn_score_count())]
    out = [c for c in names if c != "fn_selected" and c in columns]
    blocks = [c for c in columns if c.startswith("fn.")]
    return out + blocks[-1:] + (["fn_selected"] if "fn_selected" in columns else [])


class Table(dict):
    """evaluate's rows as columns by name (a dict of arrays) that prints as the CLI's
    tables: a row per score, a column per set and the average, cells in %."""

    def _layout(self, header, a, b):
        sets = list(dict.fromkeys(self["set"]))
        lines = [f"| {header} (%) | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
        for first in range(0, len(self["score"]), len(sets)):
            rows = range(first, first + len(sets))
            lines.append(f"| {self['title'][first]} | "
                         + " | ".join(f"{100 * self[a][i]:.2f}/{100 * self[b][i]:.2f}" for i in rows) + " |")
        return "\n".join(lines)

    def __repr__(self):
        return (self._layout("FPR95 (ID positive, paper) / AUROC", "fpr95", "auroc") + "\n\n"
                + self._layout("AUPR-In / AUPR-Out", "aupr_in", "aupr_out"))


def _table(rows):
    return Table({k: np.array([r[k] for r in rows], dtype=object if k in ("score", "title", "set") else None)
                  for k in rows[0]})


def _from_files(id_csv, ood, score_names):
    names = [k.encode() for k in ood]
    paths = [os.fspath(v).encode() for v in ood.values()]
    want = [s.encode() for s in score_names or []]
    out = ctypes.c_void_p()
    check(lib.fn_eval_files(os.fspath(id_csv).encode(), len(names), (ctypes.c_char_p * len(names))(*names),
                            (ctypes.c_char_p * len(paths))(*paths),
                            (ctypes.c_char_p * max(len(want), 1))(*want) if want else None, len(want),
                            ctypes.byref(out)))
    try:
        e = ctypes.cast(out, ctypes.POINTER(structs["fn_eval_result"])).contents
        sets = [text(e.sets[k]) for k in range(e.num_sets)] + ["Average"]
        rows = []
        for j in range(e.num_scores):
            for k, name in enumerate(sets):
                m = e.metrics[j * len(sets) + k]
                rows.append({"score": text(e.scores[j]), "title": text(e.titles[j]), "set": name,
                             **{x: getattr(m, x) for x in METRICS}, "n_id": m.n_id, "n_ood": m.n_ood})
        return rows
    finally:
        lib.fn_eval_free(out)


def evaluate(id, ood, scores=None, as_frame=None):
    """The paper's table: every score of ID against every OOD set and their average.

    id: the columns of Model.score on the ID test set (a dict or DataFrame), or a
    score CSV path; ood: {set name: such columns or CSV path}; scores: the columns
    to evaluate (default, as `featurenorm eval`: the table's logit scores present,
    the last block's FeatureNorm and fn_selected). With CSV paths the files are read
    by fn_eval_files, exactly as the CLI does. Returns one row per (score, set),
    "Average" last in each score: score, title, set, fpr95, auroc, aupr_in,
    aupr_out (fractions, not %), n_id, n_ood; a DataFrame when pandas is installed
    (pivot it for the paper's layout)."""
    if not ood:
        raise Error("FN_ERR_INVALID_ARG", "evaluate: at least one OOD set is needed")
    if isinstance(id, (str, os.PathLike)):
        return _frame(_table(_from_files(id, ood, scores)), as_frame)
    columns = list(id.keys())
    chosen = list(scores) if scores else _default_scores(columns)
    if not chosen:
        raise Error("FN_ERR_NOT_FOUND", "evaluate: no score columns in the ID columns")
    rows = []
    for c in chosen:
        cells = []
        for name, data in ood.items():
            if c not in id or c not in data:
                raise Error("FN_ERR_NOT_FOUND", f"evaluate: column {c!r} missing in "
                                                f"{'the ID columns' if c not in id else name}")
            cells.append({"score": c, "title": _title(c), "set": name,
                          **metrics(np.asarray(id[c]), np.asarray(data[c]))})
        average = {x: sum(r[x] / len(cells) for r in cells) for x in METRICS}  # fn_eval_files' order
        rows += cells + [{"score": c, "title": _title(c), "set": "Average", **average,
                          "n_id": cells[0]["n_id"], "n_ood": sum(r["n_ood"] for r in cells)}]
    for r in rows:
        r.pop("threshold", None)
    return _frame(_table(rows), as_frame)
