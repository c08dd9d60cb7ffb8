"""After training: which errors, on which samples (claims C17, C19).

Error modes: :func:`error_modes` (confusion, per-class accuracy and precision, missed targets vs false alarms),
:func:`breakdown` (accuracy per group, e.g. :func:`size_bucket` or site). Failure cases: :class:`FailureSet`
(failing samples saved as JSON with what re-renders them) and :func:`diff` (fixed / still failing / newly
failing). Run records (``hrlib.analysis.runs``: :func:`record_run`, :func:`read_runs`, :func:`dataset_fingerprint`)
and the
model shipped with its preprocessing (``hrlib.analysis.bundle``: :class:`BundledModel`, :func:`export_bundle`,
:func:`load_bundle`) are re-exported here, so ``from hrlib.analysis.errors import record_run, BundledModel`` works.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrlib._checks import check_float, check_int
from hrlib._checks import check_path as _check_path
from hrlib._io import atomic_write
from hrlib.analysis.bundle import BundledModel, export_bundle, load_bundle
from hrlib.analysis.runs import dataset_fingerprint, git_state, package_versions, read_runs, record_run, to_jsonable
from hrlib.data.slides import CLASS_NAMES, Slide, make_slide

__all__ = ["BundledModel", "ErrorModes", "FailureCase", "FailureDiff", "FailureSet", "breakdown", "dataset_fingerprint",
           "diff", "error_modes", "export_bundle", "git_state", "load_bundle", "package_versions", "read_runs",
           "record_run", "size_bucket", "size_bucket_labels"]


def _int_array(name: str, values: object, n: int | None = None, high: int | None = None,
               per: str = "") -> np.ndarray:
    """(N,) int64 array of ``values`` (length ``n`` and in [0, high) where given), or raise naming ``name``;
    ``per`` names the argument that sets ``n`` (added to the message)."""
    arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu") or (n is not None and len(arr) != n):
        one_per = f" (one per entry of {per})" if per else ""
        raise ValueError(f"{name} must be a 1-D sequence of {n if n is not None else 'N'} ints{one_per}, got dtype "
                         f"{arr.dtype} with shape {arr.shape}")
    if high is not None and arr.size and (arr.min() < 0 or arr.max() >= high):
        raise ValueError(f"{name} must be class indices in [0, {high}), got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64)


def _class_names(class_names: object) -> tuple[str, ...]:
    """``class_names`` as a tuple of at least 2 distinct strings, or raise naming it."""
    if isinstance(class_names, str | bytes) or not isinstance(class_names, Sequence | np.ndarray):
        raise TypeError(f"class_names must be a sequence of class names, got {type(class_names).__name__} "
                        f"{class_names!r:.80}")
    names = tuple(str(c) for c in class_names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"class_names must name at least 2 distinct classes, got {class_names!r:.200}")
    return names


# ---- error modes ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorModes:
    """:func:`error_modes` result. ``confusion``: (C, C) counts, rows true, columns predicted;
    ``per_class_accuracy`` (recall) and ``precision``: (C,), NaN where a class is never true / never predicted;
    ``missed``: slides of the ``positive`` class predicted as another class, ``missed_rate`` = missed / positives;
    ``false_alarms``: other slides predicted as positive, ``false_alarm_rate`` = false alarms / non-positives
    (rates NaN when their denominator is 0)."""

    class_names: tuple[str, ...]
    positive: int
    confusion: np.ndarray
    accuracy: float
    per_class_accuracy: np.ndarray
    precision: np.ndarray
    missed: int
    missed_rate: float
    false_alarms: int
    false_alarm_rate: float

    def table(self) -> list[tuple[str, int, float, float]]:
        """Rows ``(class, n, accuracy (recall), precision)`` for ``hrlib.viz.format_table``."""
        return [(name, int(self.confusion[i].sum()), float(self.per_class_accuracy[i]), float(self.precision[i]))
                for i, name in enumerate(self.class_names)]


def error_modes(preds: Sequence[int], labels: Sequence[int], class_names: Sequence[str] = CLASS_NAMES,
                positive: int | str = "target") -> ErrorModes:
    """Confusion matrix and error modes of predictions ``preds`` against ``labels`` ((N,) class indices < C);
    ``class_names``: the C class names; ``positive``: the class whose misses matter (name or index)."""
    names = _class_names(class_names)
    labels = _int_array("labels", labels, high=len(names))
    preds = _int_array("preds", preds, n=len(labels), high=len(names), per="labels")
    if isinstance(positive, str):
        if positive not in names:
            raise ValueError(f"positive must be one of {names} or an index, got {positive!r}")
        positive = names.index(positive)
    pos = check_int("positive", positive, 0)
    if pos >= len(names):
        raise ValueError(f"positive must be a class index < {len(names)}, got {pos}")
    k = len(names)
    confusion = np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)
    diag, support, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diag / support, np.nan)
        precision = np.where(predicted > 0, diag / predicted, np.nan)
    missed, false_alarms = int(support[pos] - diag[pos]), int(predicted[pos] - diag[pos])
    return ErrorModes(names, pos, confusion, _rate(diag.sum(), len(labels)), recall, precision, missed,
                      _rate(missed, support[pos]), false_alarms, _rate(false_alarms, len(labels) - support[pos]))


def _rate(count: float, total: float) -> float:
    return float(count / total) if total else math.nan


def breakdown(preds: Sequence[int], labels: Sequence[int], groups: Sequence[Hashable],
              order: Sequence[Hashable] | None = None) -> list[tuple[Hashable, int, float]]:
    """Accuracy per group: rows ``(group, n, accuracy)``. ``groups``: one key per sample (site, size bucket...);
    ``order``: the groups to list, in that order (groups absent from the data get n = 0 and NaN); default:
    the sorted keys, or the order of first appearance if they cannot be sorted."""
    labels = _int_array("labels", labels)
    preds = _int_array("preds", preds, n=len(labels), per="labels")
    if isinstance(groups, str | bytes) or not isinstance(groups, Sequence | np.ndarray):
        raise TypeError(f"groups must be a sequence of one key per sample, got {type(groups).__name__} "
                        f"{groups!r:.80}")
    if len(groups) != len(labels):
        raise ValueError(f"groups must have one key per sample ({len(labels)}), got {len(groups)}")
    unhashable = [g for g in groups if not isinstance(g, Hashable)]
    if unhashable:
        raise TypeError(f"groups must hold hashable keys (site names, size buckets...), got "
                        f"{type(unhashable[0]).__name__} {unhashable[0]!r:.60}")
    if order is not None and (isinstance(order, str | bytes) or not isinstance(order, Sequence | np.ndarray)):
        raise TypeError(f"order must be a sequence of group keys or None, got {type(order).__name__} {order!r:.80}")
    if order is None:
        keys = list(dict.fromkeys(groups))
        try:
            keys = sorted(keys)
        except TypeError:
            pass
    else:
        keys = list(order)
        unknown = set(groups) - set(keys)
        if unknown:
            raise ValueError(f"order must list every group, missing {sorted(map(str, unknown))}")
    correct = preds == labels
    rows = []
    for key in keys:
        member = np.fromiter((g == key for g in groups), dtype=bool, count=len(groups))
        n = int(member.sum())
        rows.append((key, n, float(correct[member].mean()) if n else math.nan))
    return rows


def _check_edges(edges: Sequence[float]) -> list[float]:
    if isinstance(edges, str | bytes) or not isinstance(edges, Sequence | np.ndarray):
        raise TypeError(f"edges must be an increasing sequence of sizes in px, got {type(edges).__name__} "
                        f"{edges!r:.80}")
    values = [check_float(f"edges[{i}]", e, 0.0, low_open=True) for i, e in enumerate(edges)]
    if not values or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"edges must be a non-empty increasing sequence of sizes in px, got {edges!r}")
    return values


def size_bucket_labels(edges: Sequence[float] = (8, 16, 32)) -> list[str]:
    """The labels :func:`size_bucket` gives, smallest first, then ``"no target"``: ``["<8 px", "8-16 px", ...]``."""
    e = _check_edges(edges)
    return ([f"<{e[0]:g} px"] + [f"{a:g}-{b:g} px" for a, b in zip(e, e[1:], strict=False)]
            + [f">={e[-1]:g} px", "no target"])


def size_bucket(boxes: np.ndarray | None, edges: Sequence[float] = (8, 16, 32)) -> str:
    """Bucket of the largest target's side (``max(x1 - x0, y1 - y0)`` over ``boxes``, px): ``"<8 px"``, ``"8-16
    px"`` (8 <= side < 16), ..., ``">=32 px"``, or ``"no target"`` without boxes. ``edges``: increasing, px."""
    labels = size_bucket_labels(edges)
    arr = np.zeros((0, 4)) if boxes is None else np.asarray(boxes)
    if arr.dtype.kind not in "biuf" or arr.size % 4 or not (arr.ndim == 2 or arr.ndim == 1 and arr.size in (0, 4)):
        raise ValueError(f"boxes must be an (N, 4) array of x0, y0, x1, y1 pixels or None, got "
                         f"{type(boxes).__name__} with dtype {arr.dtype} and shape {arr.shape}")
    arr = arr.astype(np.float64).reshape(-1, 4)
    if not np.isfinite(arr).all():
        raise ValueError("boxes must hold finite coordinates, got NaN or inf")
    if len(arr) == 0:
        return labels[-1]
    side = float(np.max(np.maximum(arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1])))
    return labels[int(np.searchsorted(_check_edges(edges), side, side="right"))]


# ---- failure cases -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FailureCase:
    """One failing sample: ``id`` (index in the evaluated dataset), true ``label``, ``pred`` at selection time,
    and what re-renders it with ``make_slide`` (``seed``, ``size`` px, ``site``; None when unknown)."""

    id: int
    label: int
    pred: int
    seed: int | None = None
    size: int | None = None
    site: str | None = None


def _ranges(ids: Sequence[int]) -> list[list[int]]:
    """Sorted unique ids as ``[start, stop)`` runs: ``[0..199]`` -> ``[[0, 200]]``."""
    runs: list[list[int]] = []
    for i in sorted(set(ids)):
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return runs


@dataclass(frozen=True)
class FailureSet:
    """A fixed set of failing samples to re-check after each change. ``cases``: the selected failures;
    ``failing``: every id that failed at selection (the set keeps at most ``max_cases`` of them); ``evaluated``:
    every id evaluated then; ``class_names``; ``slide_kwargs``: the dataset's ``make_slide`` options; ``meta``:
    free JSON notes (model, run)."""

    cases: tuple[FailureCase, ...]
    failing: frozenset[int]
    evaluated: frozenset[int]
    class_names: tuple[str, ...] = CLASS_NAMES
    slide_kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    FORMAT = "hrlib-failure-set/1"
    HEADERS = ("id", "label", "pred", "site", "seed")

    @classmethod
    def select(cls, ids: Sequence[int], preds: Sequence[int], labels: Sequence[int], max_cases: int = 20, *,
               dataset: Any = None, class_names: Sequence[str] = CLASS_NAMES,
               meta: Mapping[str, Any] | None = None) -> FailureSet:
        """Pick up to ``max_cases`` (>= 1) failures (``preds != labels``) deterministically: error types
        ``(label, pred)`` in sorted order take turns, each in ascending id, so every kind of error is represented.
        ``ids``: sample ids (dataset indices) of ``preds``/``labels``. ``dataset``: the ``SlideDataset`` evaluated,
        to record each case's seed, size and site (its labels must agree); without it cases cannot be rendered."""
        class_names = _class_names(class_names)
        ids = _int_array("ids", ids)
        preds = _int_array("preds", preds, n=len(ids), high=len(class_names), per="ids")
        labels = _int_array("labels", labels, n=len(ids), high=len(class_names), per="ids")
        max_cases = check_int("max_cases", max_cases)
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("ids must be unique sample ids")
        if dataset is not None and not all(hasattr(dataset, a) for a in ("labels", "item_seed", "size", "sites")):
            raise TypeError(f"dataset must be the SlideDataset evaluated (labels, item_seed, size, sites) or None, "
                            f"got {type(dataset).__name__}")
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"meta must be a mapping of JSON notes or None, got {type(meta).__name__} {meta!r:.80}")
        wrong = np.flatnonzero(preds != labels)
        queues = {}
        for i in sorted(wrong.tolist(), key=lambda i: ids[i]):
            queues.setdefault((int(labels[i]), int(preds[i])), []).append(i)
        picked: list[int] = []
        while len(picked) < max_cases and any(queues.values()):
            for key in sorted(queues):
                if queues[key] and len(picked) < max_cases:
                    picked.append(queues[key].pop(0))
        cases = tuple(cls._case(int(ids[i]), int(labels[i]), int(preds[i]), dataset) for i in sorted(
            picked, key=lambda i: ids[i]))
        kwargs = dict(getattr(dataset, "slide_kwargs", {}))
        return cls(cases, frozenset(ids[wrong].tolist()), frozenset(ids.tolist()), tuple(class_names), kwargs,
                   dict(meta or {}))

    @staticmethod
    def _case(i: int, label: int, pred: int, dataset: Any) -> FailureCase:
        if dataset is None:
            return FailureCase(i, label, pred)
        if dataset.labels[i] != label:
            raise ValueError(f"dataset must be the one evaluated: its label at id {i} is {dataset.labels[i]}, "
                             f"labels says {label}")
        return FailureCase(i, label, pred, dataset.item_seed(i), dataset.size, dataset.sites[i % len(dataset.sites)])

    def render(self, case: FailureCase) -> Slide:
        """Re-render ``case`` with ``make_slide`` (needs its seed, size and site)."""
        if not isinstance(case, FailureCase):
            raise TypeError(f"case must be a FailureCase (one of this set's cases), got {type(case).__name__}")
        if case.seed is None or case.size is None or case.site is None:
            raise ValueError(f"case {case.id} has no seed/size/site: select the set with dataset=...")
        return make_slide(case.size, label=case.label, seed=case.seed, site=case.site, **self.slide_kwargs)

    def table(self) -> list[tuple[int, str, str, str | None, int | None]]:
        """Rows ``(id, label, pred, site, seed)`` for display (headers: ``FailureSet.HEADERS``)."""
        return [(c.id, self.class_names[c.label], self.class_names[c.pred], c.site, c.seed) for c in self.cases]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the set as JSON, atomically (a temp file, then ``os.replace``). Returns the path."""
        path = _check_path("path", path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"path {path}: its directory {path.parent} does not exist")
        if path.is_dir():
            raise IsADirectoryError(f"path {path} is a directory, expected a file path")
        doc = {"format": self.FORMAT, "class_names": list(self.class_names),
               "slide_kwargs": to_jsonable(self.slide_kwargs, "slide_kwargs"), "meta": to_jsonable(self.meta, "meta"),
               "evaluated": _ranges(self.evaluated), "failing": sorted(self.failing),
               "cases": [vars(c) for c in self.cases]}
        return atomic_write(path, lambda fh: json.dump(doc, fh, indent=1, allow_nan=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> FailureSet:
        """Read a set written by :meth:`save`; a missing or corrupt file raises naming it."""
        path = _check_path("path", path)
        if not path.is_file():
            raise FileNotFoundError(f"failure-set file {path} does not exist (path must name a file)")
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != cls.FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, expected {cls.FORMAT!r}")
            evaluated = frozenset(i for a, b in doc["evaluated"] for i in range(a, b))
            cases = tuple(FailureCase(**c) for c in doc["cases"])
            return cls(cases, frozenset(doc["failing"]), evaluated, tuple(doc["class_names"]),
                       dict(doc["slide_kwargs"]), dict(doc["meta"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"failure-set file {path} is corrupt or not a failure set: {exc!r}") from exc


@dataclass(frozen=True)
class FailureDiff:
    """:func:`diff` result: ids ``fixed`` (set cases now right), ``still_failing`` (set cases still wrong, maybe as
    another class), ``newly_failing`` (right at selection, wrong now; None when not checked); ``rows``: one
    ``(id, label, pred then, pred now, status)`` per reported sample, class names as strings."""

    fixed: tuple[int, ...]
    still_failing: tuple[int, ...]
    newly_failing: tuple[int, ...] | None
    rows: tuple[tuple[int, str, str, str, str], ...]

    HEADERS = ("id", "label", "before", "now", "status")

    def table(self) -> list[tuple[int, str, str, str, str]]:
        """Rows for display, e.g. ``format_table(FailureDiff.HEADERS, d.table())``."""
        return list(self.rows)

    def markdown(self) -> str:
        from hrlib.viz import format_table

        return format_table(self.HEADERS, self.table())


def diff(failures: FailureSet, preds: Sequence[int], labels: Sequence[int] | None = None,
         ids: Sequence[int] | None = None) -> FailureDiff:
    """Re-check a :class:`FailureSet` against new predictions.

    ``preds``: current predictions, one per id of ``ids`` (default ``0..N-1``, i.e. indexed by sample id); they
    must cover every case of the set. With ``labels`` (same length; must agree with the set's labels), also
    report ``newly_failing``: samples evaluated at selection, right then and wrong now (regressions). Samples
    not evaluated at selection are not reported as new.
    """
    if not isinstance(failures, FailureSet):
        raise TypeError(f"failures must be a FailureSet, got {type(failures).__name__}")
    k = len(failures.class_names)
    preds = _int_array("preds", preds, high=k)
    ids = np.arange(len(preds)) if ids is None else _int_array("ids", ids, n=len(preds), per="preds")
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("ids must be unique sample ids")
    now = dict(zip(ids.tolist(), preds.tolist(), strict=True))
    missing = [c.id for c in failures.cases if c.id not in now]
    if missing:
        raise ValueError(f"preds must cover every failure-set id; no prediction for ids {missing}")
    names = failures.class_names
    rows, fixed, still = [], [], []
    for c in failures.cases:
        status = "fixed" if now[c.id] == c.label else "still failing"
        (fixed if status == "fixed" else still).append(c.id)
        rows.append((c.id, names[c.label], names[c.pred], names[now[c.id]], status))
    newly = None
    if labels is not None:
        truth_arr = _int_array("labels", labels, n=len(preds), high=k, per="preds")
        truth = dict(zip(ids.tolist(), truth_arr.tolist(), strict=True))
        wrong = [c.id for c in failures.cases if truth[c.id] != c.label]
        if wrong:
            raise ValueError(f"labels must agree with the failure set (the same dataset); they differ at ids {wrong}")
        newly = sorted(i for i, p in now.items() if p != truth[i] and i in failures.evaluated
                       and i not in failures.failing)
        rows += [(i, names[truth[i]], names[truth[i]], names[now[i]], "newly failing") for i in newly]
    return FailureDiff(tuple(fixed), tuple(still), None if newly is None else tuple(newly), tuple(rows))
