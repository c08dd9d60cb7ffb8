"""After training, which errors (lesson 07, claims C17, C19): error modes, accuracy per group, size buckets.

:func:`error_modes` (confusion, per-class accuracy and precision, missed targets vs false alarms) and
:func:`breakdown` (accuracy per group, e.g. :func:`size_bucket` or site). The failing samples themselves are kept
and re-checked by ``hrlib.analysis.failures``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from hrlib._checks import check_float, check_int
from hrlib.analysis._labels import check_class_names, check_ints
from hrlib.data.slides import CLASS_NAMES

__all__ = ["ErrorModes", "breakdown", "error_modes", "size_bucket", "size_bucket_labels"]


@dataclass(frozen=True)
class ErrorModes:
    """:func:`error_modes` result (rates are NaN where their denominator is 0).

    Args:
        class_names: the C class names.
        positive: index of the class whose misses matter.
        confusion: (C, C) counts, rows true, columns predicted.
        accuracy: share of samples predicted right, 0-1.
        per_class_accuracy: (C,) recall per class, NaN where a class is never true.
        precision: (C,) per class, NaN where a class is never predicted.
        missed: slides of the ``positive`` class predicted as another class.
        missed_rate: missed / positives.
        false_alarms: other slides predicted as ``positive``.
        false_alarm_rate: false alarms / non-positives.
    """

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
        """Per-class rows for display.

        Returns:
            Rows ``(class, n, accuracy (recall), precision)`` for ``hrlib.viz.format_table``.
        """
        return [(name, int(self.confusion[i].sum()), float(self.per_class_accuracy[i]), float(self.precision[i]))
                for i, name in enumerate(self.class_names)]


def error_modes(preds: Sequence[int], labels: Sequence[int], class_names: Sequence[str] = CLASS_NAMES,
                positive: int | str = "target") -> ErrorModes:
    """Confusion matrix and error modes of predictions against labels.

    Args:
        preds: (N,) predicted class indices < C.
        labels: (N,) true class indices < C.
        class_names: the C class names (at least 2, distinct).
        positive: the class whose misses matter, by name or index.

    Returns:
        The confusion matrix, per-class accuracy and precision, misses and false alarms.

    Raises:
        TypeError, ValueError: malformed or mismatched arguments (the message names which).
    """
    names = check_class_names(class_names)
    labels = check_ints("labels", labels, high=len(names))
    preds = check_ints("preds", preds, n=len(labels), high=len(names), per="labels")
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
    """Accuracy per group (site, size bucket, ...).

    Args:
        preds: (N,) predicted class indices.
        labels: (N,) true class indices.
        groups: one hashable key per sample.
        order: the groups to list, in that order (groups absent from the data get n = 0 and NaN); default: the
            sorted keys, or the order of first appearance if they cannot be sorted.

    Returns:
        Rows ``(group, n, accuracy)``.

    Raises:
        TypeError, ValueError: malformed or mismatched arguments, or an ``order`` that misses a group.
    """
    labels = check_ints("labels", labels)
    preds = check_ints("preds", preds, n=len(labels), per="labels")
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
    """The labels :func:`size_bucket` gives.

    Args:
        edges: increasing bucket edges, px (> 0).

    Returns:
        The labels, smallest first, then ``"no target"``: ``["<8 px", "8-16 px", ..., ">=32 px", "no target"]``.

    Raises:
        TypeError, ValueError: ``edges`` is not an increasing sequence of sizes.
    """
    e = _check_edges(edges)
    return ([f"<{e[0]:g} px"] + [f"{a:g}-{b:g} px" for a, b in zip(e, e[1:], strict=False)]
            + [f">={e[-1]:g} px", "no target"])


def size_bucket(boxes: np.ndarray | None, edges: Sequence[float] = (8, 16, 32)) -> str:
    """Bucket of the largest target's side (``max(x1 - x0, y1 - y0)`` over ``boxes``, px).

    Args:
        boxes: (N, 4) ``x0, y0, x1, y1`` px, or None.
        edges: increasing bucket edges, px.

    Returns:
        ``"<8 px"``, ``"8-16 px"`` (8 <= side < 16), ..., ``">=32 px"``, or ``"no target"`` without boxes.

    Raises:
        TypeError, ValueError: malformed ``boxes`` or ``edges``.
    """
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
