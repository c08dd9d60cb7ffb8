"""After training, on which samples (lesson 07, claim C19): a fixed set of failures, re-checked after each change.

:class:`FailureSet` keeps the failing samples (saved as JSON with what re-renders them) and :func:`diff` says which
are fixed, still failing or newly failing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrlib._checks import check_int, check_path
from hrlib._io import atomic_write
from hrlib.analysis._labels import check_class_names, check_ints
from hrlib.analysis.runs import to_jsonable
from hrlib.data.slides import CLASS_NAMES, Slide, make_slide

__all__ = ["FailureCase", "FailureDiff", "FailureSet", "diff"]


@dataclass(frozen=True)
class FailureCase:
    """One failing sample, and what re-renders it with ``make_slide``.

    Args:
        id: index in the evaluated dataset.
        label: the true class index.
        pred: the predicted class index at selection time.
        seed: the slide's seed (None when unknown).
        size: the slide's side, px (None when unknown).
        site: the slide's site (None when unknown).
    """

    id: int
    label: int
    pred: int
    seed: int | None = None
    size: int | None = None
    site: str | None = None


def _pick(ids: np.ndarray, labels: np.ndarray, preds: np.ndarray, wrong: np.ndarray, max_cases: int) -> list[int]:
    """Positions of up to ``max_cases`` of the ``wrong`` ones, error types taking turns, sorted by id."""
    queues: dict[tuple[int, int], list[int]] = {}
    for i in sorted(wrong.tolist(), key=lambda i: ids[i]):
        queues.setdefault((int(labels[i]), int(preds[i])), []).append(i)
    picked: list[int] = []
    while len(picked) < max_cases and any(queues.values()):
        for key in sorted(queues):
            if queues[key] and len(picked) < max_cases:
                picked.append(queues[key].pop(0))
    return sorted(picked, key=lambda i: ids[i])


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
    """A fixed set of failing samples to re-check after each change; build it with :meth:`select` or :meth:`load`.

    Args:
        cases: the selected failures.
        failing: every id that failed at selection (the set keeps at most ``max_cases`` of them).
        evaluated: every id evaluated then.
        class_names: the class names.
        slide_kwargs: the dataset's ``make_slide`` options.
        meta: free JSON notes (model, run).
    """

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
        """Pick failures (``preds != labels``) deterministically: error types ``(label, pred)`` in sorted order
        take turns, each in ascending id, so every kind of error is represented.

        Args:
            ids: sample ids (dataset indices) of ``preds``/``labels``, unique.
            preds: predicted class indices, one per id.
            labels: true class indices, one per id.
            max_cases: the most cases to keep, >= 1.
            dataset: the ``SlideDataset`` evaluated, to record each case's seed, size and site (its labels must
                agree); without it cases cannot be rendered.
            class_names: the class names.
            meta: free JSON notes (model, run), or None.

        Returns:
            The set.

        Raises:
            TypeError, ValueError: malformed or mismatched arguments (the message names which).
        """
        class_names = check_class_names(class_names)
        ids = check_ints("ids", ids)
        preds = check_ints("preds", preds, n=len(ids), high=len(class_names), per="ids")
        labels = check_ints("labels", labels, n=len(ids), high=len(class_names), per="ids")
        max_cases = check_int("max_cases", max_cases)
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("ids must be unique sample ids")
        if dataset is not None and not all(hasattr(dataset, a) for a in ("labels", "item_seed", "size", "sites")):
            raise TypeError(f"dataset must be the SlideDataset evaluated (labels, item_seed, size, sites) or None, "
                            f"got {type(dataset).__name__}")
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"meta must be a mapping of JSON notes or None, got {type(meta).__name__} {meta!r:.80}")
        wrong = np.flatnonzero(preds != labels)
        cases = tuple(cls._case(int(ids[i]), int(labels[i]), int(preds[i]), dataset)
                      for i in _pick(ids, labels, preds, wrong, max_cases))
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
        """Re-render a case with ``make_slide``.

        Args:
            case: one of this set's cases, with its seed, size and site.

        Returns:
            The slide, as the dataset rendered it.

        Raises:
            TypeError: ``case`` is not a :class:`FailureCase`.
            ValueError: the case has no seed, size or site (the set was selected without ``dataset``).
        """
        if not isinstance(case, FailureCase):
            raise TypeError(f"case must be a FailureCase (one of this set's cases), got {type(case).__name__}")
        if case.seed is None or case.size is None or case.site is None:
            raise ValueError(f"case {case.id} has no seed/size/site: select the set with dataset=...")
        return make_slide(case.size, label=case.label, seed=case.seed, site=case.site, **self.slide_kwargs)

    def table(self) -> list[tuple[int, str, str, str | None, int | None]]:
        """The cases for display.

        Returns:
            Rows ``(id, label, pred, site, seed)`` (headers: ``FailureSet.HEADERS``).
        """
        return [(c.id, self.class_names[c.label], self.class_names[c.pred], c.site, c.seed) for c in self.cases]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the set as JSON, atomically (``hrlib._io.atomic_write``).

        Args:
            path: the file to write, in an existing folder.

        Returns:
            ``path`` as a ``Path``.

        Raises:
            TypeError: ``path`` is not a path, or ``meta``/``slide_kwargs`` hold something JSON cannot.
            FileNotFoundError: the folder does not exist.
            IsADirectoryError: ``path`` is a folder.
        """
        path = check_path("path", path)
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
        """Read a set written by :meth:`save`.

        Args:
            path: the file.

        Returns:
            The set.

        Raises:
            TypeError: ``path`` is not a path.
            FileNotFoundError: no such file.
            ValueError: the file is corrupt or not a failure set (the message names it).
        """
        path = check_path("path", path)
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
    """:func:`diff` result.

    Args:
        fixed: ids of set cases now right.
        still_failing: ids of set cases still wrong (maybe as another class).
        newly_failing: ids right at selection and wrong now; None when not checked.
        rows: one ``(id, label, pred then, pred now, status)`` per reported sample, class names as strings.
    """

    fixed: tuple[int, ...]
    still_failing: tuple[int, ...]
    newly_failing: tuple[int, ...] | None
    rows: tuple[tuple[int, str, str, str, str], ...]

    HEADERS = ("id", "label", "before", "now", "status")

    def table(self) -> list[tuple[int, str, str, str, str]]:
        """The reported samples for display.

        Returns:
            Rows for ``format_table(FailureDiff.HEADERS, d.table())``.
        """
        return list(self.rows)

    def markdown(self) -> str:
        """The reported samples as a table.

        Returns:
            A Markdown table (show it with ``IPython.display.Markdown``).
        """
        from hrlib.viz import format_table

        return format_table(self.HEADERS, self.table())


def diff(failures: FailureSet, preds: Sequence[int], labels: Sequence[int] | None = None,
         ids: Sequence[int] | None = None) -> FailureDiff:
    """Re-check a :class:`FailureSet` against new predictions.

    Args:
        failures: the set.
        preds: current predictions, one per id of ``ids``; they must cover every case of the set.
        labels: the true classes, one per prediction (must agree with the set's labels); with them, also report
            ``newly_failing``: samples evaluated at selection, right then and wrong now (regressions). Samples not
            evaluated at selection are not reported as new.
        ids: the sample id of each prediction (default ``0..N-1``, i.e. indexed by sample id), unique.

    Returns:
        Which cases are fixed, still failing and newly failing, with rows for display.

    Raises:
        TypeError, ValueError: malformed or mismatched arguments, or predictions missing set cases.
    """
    if not isinstance(failures, FailureSet):
        raise TypeError(f"failures must be a FailureSet, got {type(failures).__name__}")
    k = len(failures.class_names)
    preds = check_ints("preds", preds, high=k)
    ids = np.arange(len(preds)) if ids is None else check_ints("ids", ids, n=len(preds), per="preds")
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
        truth = dict(zip(ids.tolist(), check_ints("labels", labels, n=len(preds), high=k, per="preds").tolist(),
                         strict=True))
        newly = _newly_failing(failures, now, truth)
        rows += [(i, names[truth[i]], names[truth[i]], names[now[i]], "newly failing") for i in newly]
    return FailureDiff(tuple(fixed), tuple(still), None if newly is None else tuple(newly), tuple(rows))


def _newly_failing(failures: FailureSet, now: dict[int, int], truth: dict[int, int]) -> list[int]:
    """Ids right at selection and wrong now; ``truth`` must agree with the set's labels."""
    wrong = [c.id for c in failures.cases if truth[c.id] != c.label]
    if wrong:
        raise ValueError(f"labels must agree with the failure set (the same dataset); they differ at ids {wrong}")
    return sorted(i for i, p in now.items() if p != truth[i] and i in failures.evaluated
                  and i not in failures.failing)
