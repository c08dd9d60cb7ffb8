"""After training: which errors, on which samples, from which run, and a model that carries its preprocessing.

Error modes: :func:`error_modes` (confusion, per-class accuracy and precision, missed targets vs false alarms),
:func:`breakdown` (accuracy per group, e.g. :func:`size_bucket` or site). Failure cases: :class:`FailureSet`
(failing samples saved as JSON with what re-renders them) and :func:`diff` (fixed / still failing / newly
failing). Run records: :func:`record_run` appends hyperparameters, metrics, a :func:`dataset_fingerprint`, the git
commit and package versions to a JSONL log; :func:`read_runs` reads it back. Shipping (claim C34):
:class:`BundledModel` takes uint8 images of any size, so :func:`export_bundle` / :func:`load_bundle` carry the
validation preprocessing with the weights.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from hrlib._checks import check_float, check_int
from hrlib.data import CLASS_NAMES, SLIDE_MEAN, SLIDE_STD, Slide, make_slide

__all__ = ["BundledModel", "ErrorModes", "FailureCase", "FailureDiff", "FailureSet", "breakdown", "dataset_fingerprint",
           "diff", "error_modes", "export_bundle", "git_state", "load_bundle", "package_versions", "read_runs",
           "record_run", "size_bucket", "size_bucket_labels"]

PACKAGES = ("torch", "torchvision", "numpy", "albumentations", "hrlib")


def _int_array(name: str, values: object, n: int | None = None, high: int | None = None) -> np.ndarray:
    """(N,) int64 array of ``values`` (length ``n`` and in [0, high) where given), or raise naming ``name``."""
    arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu") or (n is not None and len(arr) != n):
        raise ValueError(f"{name} must be a 1-D sequence of {n if n is not None else 'N'} ints, got dtype "
                         f"{arr.dtype} with shape {arr.shape}")
    if high is not None and arr.size and (arr.min() < 0 or arr.max() >= high):
        raise ValueError(f"{name} must be class indices in [0, {high}), got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64)


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], mode: str = "w") -> Path:
    """Call ``write`` on a temp file next to ``path``, then ``os.replace`` it: no partial file on failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


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
    names = tuple(str(c) for c in class_names)
    if len(names) < 2:
        raise ValueError(f"class_names must name at least 2 classes, got {class_names!r}")
    labels = _int_array("labels", labels, high=len(names))
    preds = _int_array("preds", preds, n=len(labels), high=len(names))
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
    preds = _int_array("preds", preds, n=len(labels))
    if len(groups) != len(labels):
        raise ValueError(f"groups must have one key per sample ({len(labels)}), got {len(groups)}")
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
    arr = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
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
        ids = _int_array("ids", ids)
        preds = _int_array("preds", preds, n=len(ids), high=len(class_names))
        labels = _int_array("labels", labels, n=len(ids), high=len(class_names))
        max_cases = check_int("max_cases", max_cases)
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("ids must be unique sample ids")
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
        if case.seed is None or case.size is None or case.site is None:
            raise ValueError(f"case {case.id} has no seed/size/site: select the set with dataset=...")
        return make_slide(case.size, label=case.label, seed=case.seed, site=case.site, **self.slide_kwargs)

    def table(self) -> list[tuple[int, str, str, str | None, int | None]]:
        """Rows ``(id, label, pred, site, seed)`` for display (headers: ``FailureSet.HEADERS``)."""
        return [(c.id, self.class_names[c.label], self.class_names[c.pred], c.site, c.seed) for c in self.cases]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the set as JSON, atomically (a temp file, then ``os.replace``). Returns the path."""
        doc = {"format": self.FORMAT, "class_names": list(self.class_names),
               "slide_kwargs": _jsonable(self.slide_kwargs, "slide_kwargs"), "meta": _jsonable(self.meta, "meta"),
               "evaluated": _ranges(self.evaluated), "failing": sorted(self.failing),
               "cases": [vars(c) for c in self.cases]}
        return _atomic_write(path, lambda fh: json.dump(doc, fh, indent=1, allow_nan=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> FailureSet:
        """Read a set written by :meth:`save`; a missing or corrupt file raises naming it."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"failure-set file {path} does not exist")
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
    ids = np.arange(len(preds)) if ids is None else _int_array("ids", ids, n=len(preds))
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
        truth = dict(zip(ids.tolist(), _int_array("labels", labels, n=len(preds), high=k).tolist(), strict=True))
        wrong = [c.id for c in failures.cases if truth[c.id] != c.label]
        if wrong:
            raise ValueError(f"labels must agree with the failure set (the same dataset); they differ at ids {wrong}")
        newly = sorted(i for i, p in now.items() if p != truth[i] and i in failures.evaluated
                       and i not in failures.failing)
        rows += [(i, names[truth[i]], names[truth[i]], names[now[i]], "newly failing") for i in newly]
    return FailureDiff(tuple(fixed), tuple(still), None if newly is None else tuple(newly), tuple(rows))


# ---- run records ---------------------------------------------------------------------------------------------------

def _jsonable(value: Any, key: str) -> Any:
    """``value`` as plain JSON types: numpy/torch scalars and arrays become numbers and lists, tuples lists, paths
    strings, non-finite floats None; anything else raises naming ``key``."""
    if isinstance(value, np.generic | np.ndarray | torch.Tensor):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{key} must be JSON-serializable; a numpy value of dtype {value.dtype} is not")
        return _jsonable(value.tolist(), key)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{key} must have str keys, got {bad[0]!r}")
        return {k: _jsonable(v, f"{key}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{key}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{key} must be JSON-serializable (numbers, str, bool, None, lists, dicts, numpy values), "
                    f"got {type(value).__name__}")


def _sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _dataset_params(source: Any) -> dict[str, Any] | None:
    """Generator parameters of a ``SlideDataset``-like object (or None): what renders it, with hrlib's version."""
    if not all(hasattr(source, a) for a in ("item_seed", "size", "seed", "sites", "labels", "slide_kwargs")):
        return None
    from hrlib import __version__

    return {"generator": type(source).__name__, "hrlib": __version__, "n": len(source), "size": source.size,
            "seed": source.seed, "sites": list(source.sites), "labels": list(source.labels),
            "slide_kwargs": dict(source.slide_kwargs)}


def dataset_fingerprint(source: Mapping[str, Any] | Sequence[str | os.PathLike] | Any) -> str:
    """sha256 (hex) identifying a dataset. ``source``: generator parameters (a dict, seed included), a
    ``SlideDataset`` (its n, size, seed, sites, labels, slide options and hrlib's version), or a list of file paths
    (their contents, in any order and location: the same bytes give the same fingerprint)."""
    params = _dataset_params(source)
    if params is not None:
        return _sha256(params)
    if isinstance(source, Mapping):
        return _sha256(_jsonable(source, "source"))
    if isinstance(source, Sequence) and not isinstance(source, str) and all(
            isinstance(p, str | os.PathLike) for p in source):
        digests = []
        for p in source:
            if not Path(p).is_file():
                raise FileNotFoundError(f"source file {p} does not exist")
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(block)
            digests.append(h.hexdigest())
        return _sha256(sorted(digests))
    raise TypeError(f"source must be a dict of generator parameters, a SlideDataset or a list of file paths, got "
                    f"{type(source).__name__}")


def git_state(repo: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git work tree at ``repo`` (default: the current
    directory); None where git is missing, slow (> 5 s) or ``repo`` is not in a repository."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=5, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions() -> dict[str, str | None]:
    """Python's and each of ``PACKAGES``' installed version (None if not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def record_run(path: str | os.PathLike, *, params: Mapping[str, Any], metrics: Mapping[str, Any], seed: int,
               dataset: Any, repo: str | os.PathLike | None = None) -> dict[str, Any]:
    """Append one run to the JSONL log at ``path`` (one JSON object per line; created if missing) and return it.

    ``params``: hyperparameters; ``metrics``: results (both JSON-serializable after converting numpy/torch values;
    NaN/inf become null); ``seed`` (>= 0); ``dataset``: a fingerprint from :func:`dataset_fingerprint` (64 hex
    chars) or anything it accepts (a dict's parameters and a ``SlideDataset``'s are stored too); ``repo``: where
    to ask git for the commit (default: the current directory). The record also holds an ISO-8601 UTC
    ``timestamp`` and package ``versions``. The line is serialized first, then written with one ``write`` in
    append mode, flushed and fsynced: an error leaves no partial line.
    """
    seed = check_int("seed", seed, 0)
    if not isinstance(params, Mapping) or not isinstance(metrics, Mapping):
        raise TypeError(f"params and metrics must be dicts, got {type(params).__name__} and "
                        f"{type(metrics).__name__}")
    if isinstance(dataset, str):
        if len(dataset) != 64 or any(c not in "0123456789abcdef" for c in dataset):
            raise ValueError(f"dataset must be a 64-hex-digit fingerprint or a dataset description, got {dataset!r}")
        data: dict[str, Any] = {"fingerprint": dataset}
    else:
        data = {"fingerprint": dataset_fingerprint(dataset)}
        described = _dataset_params(dataset) or (dataset if isinstance(dataset, Mapping) else None)
        if described is not None:
            data["params"] = _jsonable(described, "dataset")
    record = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "seed": seed, "params": _jsonable(params, "params"), "metrics": _jsonable(metrics, "metrics"),
              "dataset": data, "git": git_state(repo), "versions": package_versions()}
    line = json.dumps(record, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return record


def read_runs(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a :func:`record_run` log, oldest first (blank lines skipped); a corrupt line raises
    ``ValueError`` naming the file and line number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run log {path} does not exist")
    runs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"run log {path}, line {number} is not valid JSON ({exc.msg}): {line[:80]!r}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"run log {path}, line {number} must be a JSON object, got {type(record).__name__}")
        runs.append(record)
    return runs


# ---- preprocessing shipped with the model (C34) -------------------------------------------------------------------

_META = "hrlib_bundle.json"
_BUNDLE_FORMAT = "hrlib-bundle/1"


def _check_images(images: object) -> torch.Tensor:
    """Raise unless ``images`` is a uint8 tensor (N, H, W, 3), N >= 1, H and W >= 2."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.uint8 tensor (N, H, W, 3), got {type(images).__name__} "
                        f"(for numpy images: torch.from_numpy(np.stack(images)))")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must have dtype torch.uint8 (0-255 pixels), got {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[0] < 1 or min(images.shape[1:3]) < 2:
        raise ValueError(f"images must have shape (N, H, W, 3), channels last, with N >= 1 and H, W >= 2, got "
                         f"{tuple(images.shape)}")
    return images


def _resample(n_in: Any, n_full: Any, start: Any, count: int) -> torch.Tensor:
    """(count, n_in) float32 weights: rows ``start..start+count`` of resizing ``n_in`` px to ``n_full`` px with
    OpenCV's rules: INTER_AREA (exact overlap of pixel intervals) when shrinking, INTER_LINEAR (half-pixel
    centres, edge clamped) when enlarging. Sizes may be symbolic (torch.export): both are built, no branch."""
    scale = n_in / n_full
    i = torch.arange(count, dtype=torch.float64) + start
    j = torch.arange(n_in, dtype=torch.float64)
    overlap = torch.minimum((i[:, None] + 1) * scale, j + 1) - torch.maximum(i[:, None] * scale, j)
    area = overlap.clamp(min=0) / scale
    src = ((i + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor()
    lam = (src - i0)[:, None]
    i0 = i0.clamp(max=n_in - 1)[:, None]
    linear = (1 - lam) * (j == i0) + lam * (j == (i0 + 1).clamp(max=n_in - 1))
    return torch.where(j[-1] + 1 > n_full, area, linear).float()


class BundledModel(nn.Module):
    """A classifier that takes raw uint8 images of any size: the validation preprocessing ships with the weights.

    ``forward(images)``: (N, H, W, 3) uint8 RGB tensor (channels last, as images are stored; H, W >= 2) ->
    (N, num_classes) logits. Preprocessing is ``hrlib.staging.val_transform(resolution, crop_fraction=...)``
    written in torch: short side to ``round(resolution / crop_fraction)`` px (area averaging when shrinking,
    bilinear when enlarging, as OpenCV does), centre crop ``resolution`` px, rounding to whole 0-255 levels as a
    uint8 resize does, then ``(x / 255 - mean) / std``. The resize is two small matrix products, so sizes stay
    dynamic under ``torch.export``. It matches the albumentations path to one 0-255 level per pixel (long-side
    sizes may differ by 1 px at exact .5 ties). ``model``: takes (N, 3, resolution, resolution) normalised
    batches; ``resolution`` (>= 1): training resolution, px; ``mean``/``std``: per channel, 0-1 scale;
    ``crop_fraction``: in (0, 1]; ``class_names``: stored with an exported bundle. The bundle starts in eval mode
    (so does ``model``).
    """

    def __init__(self, model: nn.Module, resolution: int, *, mean: Sequence[float] = SLIDE_MEAN,
                 std: Sequence[float] = SLIDE_STD, crop_fraction: float = 1.0,
                 class_names: Sequence[str] = CLASS_NAMES) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for name, v in (("mean", mean), ("std", std)):
            if isinstance(v, str) or len(v) != 3 or (name == "std" and min(v) <= 0):
                raise ValueError(f"{name} must be 3 floats (0-1 scale{', > 0' * (name == 'std')}), got {v!r}")
        self.model = model
        self.resolution = check_int("resolution", resolution)
        self.crop_fraction = check_float("crop_fraction", crop_fraction, 0.0, 1.0, low_open=True)
        self.short = max(self.resolution, round(self.resolution / self.crop_fraction))  # as val_transform
        self.class_names = tuple(class_names)
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, 3, 1, 1))
        self.eval()  # an inference artefact: BatchNorm uses its running statistics

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, resolution, resolution) float32, normalised."""
        h, w = images.shape[1], images.shape[2]
        if torch.jit.is_tracing():  # sizes are traced as tensors; a trace is fixed to one size anyway
            h, w = int(h), int(w)
        side = torch.sym_min(h, w)
        full_h = (2 * h * self.short + side) // (2 * side)  # round(h * short / side), halves up
        full_w = (2 * w * self.short + side) // (2 * side)
        rows = _resample(h, full_h, (full_h - self.resolution) // 2, self.resolution).to(images.device)
        cols = _resample(w, full_w, (full_w - self.resolution) // 2, self.resolution).to(images.device)
        x = images.permute(0, 3, 1, 2).float()
        x = torch.matmul(torch.matmul(rows, x), cols.T).round()
        return (x / 255.0 - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for uint8 ``images`` (N, H, W, 3)."""
        return self.model(self.preprocess(_check_images(images)))


class _LoadedBundle(nn.Module):
    """A loaded bundle: checks ``images`` like :class:`BundledModel`, then runs the saved program (eval only)."""

    def __init__(self, program: nn.Module, meta: dict[str, Any], kind: str) -> None:
        super().__init__()
        self.program, self.kind = program, kind
        self.resolution, self.crop_fraction = int(meta["resolution"]), float(meta["crop_fraction"])
        self.class_names = tuple(meta["class_names"])

    def train(self, mode: bool = True) -> _LoadedBundle:
        self.training = mode  # the saved program is fixed in eval mode (exported modules refuse train())
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.program(_check_images(images))


def export_bundle(bundle: BundledModel, path: str | os.PathLike, example_size: int | None = None) -> Path:
    """Save ``bundle`` (in eval mode; each module's mode is restored) with ``torch.export`` to ``path``, atomically.

    Batch size, height and width stay dynamic (H, W >= 2). If export fails, a TorchScript trace is saved instead
    with a warning: a trace is fixed to the example's size, ``example_size`` px square (default: the short side
    ``val_transform`` resizes to). The raw programs reject wrong inputs with torch's own guard errors;
    :func:`load_bundle` checks first and names the problem. Returns the path.
    """
    if not isinstance(bundle, BundledModel):
        raise TypeError(f"bundle must be a BundledModel, got {type(bundle).__name__}")
    side = bundle.short if example_size is None else check_int("example_size", example_size, 2)
    device = bundle.mean.device
    example = torch.randint(0, 256, (2, side, side, 3), dtype=torch.uint8, device=device,
                            generator=torch.Generator(device).manual_seed(0))
    meta = json.dumps({"format": _BUNDLE_FORMAT, "resolution": bundle.resolution,
                       "crop_fraction": bundle.crop_fraction, "class_names": list(bundle.class_names),
                       "mean": bundle.mean.flatten().tolist(), "std": bundle.std.flatten().tolist()})
    dims = {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("height", min=2),
            2: torch.export.Dim("width", min=2)}
    modes = {m: m.training for m in bundle.modules()}
    bundle.eval()
    try:
        artefact: Any = torch.export.export(bundle, (example,), dynamic_shapes={"images": dims})
    except Exception as exc:  # an op export cannot trace: keep a working, size-specialised artefact
        warnings.warn(f"torch.export failed ({type(exc).__name__}: {str(exc)[:200]}); saving a TorchScript trace, "
                      f"which only accepts {side}x{side} images", RuntimeWarning, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trace deprecation and TracerWarnings: the size is fixed, as warned
            artefact = torch.jit.trace(bundle, (example,))
    finally:
        for m, training in modes.items():
            m.training = training

    def write(fh: IO[Any]) -> None:
        if isinstance(artefact, torch.export.ExportedProgram):
            torch.export.save(artefact, fh, extra_files={_META: meta})
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated: this is the fallback
                torch.jit.save(artefact, fh, _extra_files={_META: meta})

    return _atomic_write(path, write, "wb")


def load_bundle(path: str | os.PathLike) -> nn.Module:
    """Load a bundle saved by :func:`export_bundle` (torch.export, or TorchScript mapped to the CPU). The module
    maps (N, H, W, 3) uint8 images to logits, raises ``TypeError``/``ValueError`` on other inputs, and has
    ``resolution``, ``crop_fraction``, ``class_names`` and ``kind`` (``"export"`` or ``"torchscript"``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bundle file {path} does not exist")
    extra = {_META: ""}
    try:
        with zipfile.ZipFile(path) as archive:
            exported = any(n.endswith("archive_format") for n in archive.namelist())
        if exported:
            program, kind = torch.export.load(path, extra_files=extra).module(), "export"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                program, kind = torch.jit.load(path, map_location="cpu", _extra_files=extra), "torchscript"
        raw = extra[_META]
        meta = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if meta.get("format") != _BUNDLE_FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {_BUNDLE_FORMAT!r}")
    except (zipfile.BadZipFile, RuntimeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"bundle file {path} is not a bundle saved by export_bundle: {exc!r:.300}") from exc
    return _LoadedBundle(program, meta, kind)
