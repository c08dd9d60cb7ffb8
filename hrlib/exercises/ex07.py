"""Checks for lesson 07, "error analysis": the pointing game and the failure-set diff.

The references are hrlib's own: :func:`hrlib.analysis.heatmaps.pointing_game` and
:func:`hrlib.analysis.failures.diff` (on a :class:`hrlib.analysis.failures.FailureSet` that holds every failing
sample).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hrlib.analysis.failures import FailureCase, FailureSet, diff
from hrlib.analysis.heatmaps import pointing_game
from hrlib.exercises import NotYet, call_answer, describe_value, register

# ----------------------------------------------------------------------------------------- pointing game


def _peak_map(h: int, w: int, row: int, col: int, base: float = 0.1) -> np.ndarray:
    """(h, w) map of ``base`` with a smooth bump peaking at (row, col)."""
    rr, cc = np.mgrid[0:h, 0:w]
    return (base + np.exp(-((rr - row) ** 2 + (cc - col) ** 2) / 8.0)).astype(np.float32)


def _pointing_cases() -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """(description, cam, boxes, tolerance) with known answers; boxes are x0, y0, x1, y1 px."""
    box = np.array([[40.0, 10.0, 50.0, 20.0]])
    wide = np.zeros((64, 96), np.float32)
    wide[15, 80] = 1.0  # row 15, column 80: x = 80.5, y = 15.5
    ties = np.zeros((64, 64), np.float32)
    ties[[5, 60], [45, 2]] = 1.0  # two equal maxima: the first in row-major order (row 5) counts
    return [
        ("the peak inside the box", _peak_map(64, 64, 15, 45), box, 4.0),
        ("the peak 10 px right of the box, tolerance 4 px", _peak_map(64, 64, 15, 60), box, 4.0),
        ("the peak 10 px right of the box, tolerance 12 px", _peak_map(64, 64, 15, 60), box, 12.0),
        ("the peak at row 45, column 15 (x = 15.5, y = 45.5)", _peak_map(64, 64, 45, 15), box, 4.0),
        ("a 64x96 map peaking at x = 80.5, y = 15.5, a box at x 76-86", wide, np.array([[76.0, 12.0, 86.0, 18.0]]),
         0.0),
        ("the peak 2.5 px right of and 2.5 px below the corner (3.5 px away), tolerance 4 px",
         _peak_map(64, 64, 22, 52), box, 4.0),
        ("the peak 3.5 px right of and 3.5 px below the corner (4.9 px away), tolerance 4 px",
         _peak_map(64, 64, 23, 53), box, 4.0),
        ("the peak on pixel (row 20, col 50), just outside x1 = y1 = 50 / 20, tolerance 0", _peak_map(64, 64, 20, 50),
         np.array([[40.0, 10.0, 50.0, 20.0]]), 0.0),
        ("two boxes, the peak in the second", _peak_map(64, 64, 50, 8), np.array([[40, 10, 50, 20], [2, 45, 12, 55]]),
         4.0),
        ("two equal maxima", ties, box, 5.0),
        ("a flat map (all 0.5)", np.full((32, 32), 0.5, np.float32), np.array([[0.0, 0.0, 32.0, 32.0]]), 4.0),
        ("no boxes (a normal slide)", _peak_map(64, 64, 15, 45), np.zeros((0, 4)), 4.0),
    ]


def _point_variant(cam: np.ndarray, boxes: np.ndarray, tolerance: float, mistake: str) -> bool:
    """The pointing game with one plausible mistake: "swap" (row as x), "centre" (distance to the box centre),
    "chebyshev" (max of the x and y gaps instead of the Euclidean distance)."""
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    px, py = (row + 0.5, col + 0.5) if mistake == "swap" else (col + 0.5, row + 0.5)
    if mistake == "centre":
        return bool((np.hypot(px - boxes[:, [0, 2]].mean(1), py - boxes[:, [1, 3]].mean(1)) <= tolerance).any())
    dx = np.maximum(np.maximum(boxes[:, 0] - px, px - boxes[:, 2]), 0.0)
    dy = np.maximum(np.maximum(boxes[:, 1] - py, py - boxes[:, 3]), 0.0)
    dist = np.maximum(dx, dy) if mistake == "chebyshev" else np.hypot(dx, dy)
    return bool((dist <= tolerance).any())


POINTING_RULE = ("hit if the distance from the peak's pixel centre (col + 0.5, row + 0.5) to the nearest box is <= "
                 "tolerance")
POINTING_HINTS = {  # the most specific first
    "centre": "measure the distance to the nearest point of the box, not to its centre",
    "chebyshev": ("the distance is Euclidean: hypot of the x gap and the y gap (each 0 within the box's span), "
                  "not the larger of the two"),
    "swap": "np.unravel_index gives (row, col): the column is x and the row is y (boxes are x0, y0, x1, y1)",
}


def _pointing_hint(cam: np.ndarray, boxes: np.ndarray, tolerance: float, got: object, expected: object) -> str:
    if expected is None:
        return "with no boxes there is nothing to point at: return None (the sample is not scored), not False"
    if cam.max() <= cam.min():
        return "a flat map points nowhere: it is a miss (False), whatever the boxes"
    if (cam == cam.max()).sum() > 1:
        return "several pixels share the maximum: the first in row-major order counts (np.argmax of the map)"
    for mistake, hint in POINTING_HINTS.items():
        if _point_variant(cam, boxes, tolerance, mistake) == got != expected:
            return hint
    return POINTING_RULE


@register("07.pointing_game")
def check_pointing_game(answer: Callable[..., Any]) -> str:
    """Check a learner's pointing game: does the map's maximum hit a box?

    Args:
        answer: ``answer(cam, boxes, tolerance) -> True / False / None``.

    Returns:
        The PASS message: hits, misses, tolerance, flat maps and unscored slides passed.

    Raises:
        NotYet: a wrong verdict on one of the maps, with a hint.
    """
    name = getattr(answer, "__name__", "pointing_game")
    cases = _pointing_cases()
    for what, cam, boxes, tolerance in cases:
        shown = f"{name}(<{what}>)"
        got = call_answer(answer, shown, cam.copy(), boxes.copy(), tolerance)
        expected = pointing_game(cam, boxes, tolerance)
        if isinstance(got, np.bool_):
            got = bool(got)
        if got is not None and not isinstance(got, bool):
            raise NotYet(f"{shown} returned {describe_value(got)}; expected True, False or None")
        if got is not expected:
            raise NotYet(f"{shown} returned {got} but expected {expected}. "
                         f"Hint: {_pointing_hint(cam, boxes, tolerance, got, expected)}")
    return f"hits, misses, tolerance, flat maps and unscored slides ({len(cases)} cases)"


# ----------------------------------------------------------------------------------------- failure-set diff

# (description, case ids, predictions before, predictions now, labels); predictions are indexed by sample id
DIFF_CASES: tuple[tuple[str, list[int], list[int], list[int], list[int]], ...] = (
    ("one fixed, one still failing", [1, 3], [0, 2, 2, 0, 1], [0, 1, 2, 0, 1], [0, 1, 2, 1, 1]),
    ("still failing as another wrong class", [0, 2], [1, 1, 0, 0], [2, 1, 1, 0], [0, 1, 2, 0]),
    ("a regression outside the set", [4], [0, 1, 2, 0, 0, 2], [0, 2, 2, 0, 1, 2], [0, 1, 2, 0, 1, 2]),
    ("a sample that failed before but is not in the set, still wrong", [1], [1, 0, 0, 2], [1, 0, 0, 0],
     [1, 1, 2, 2]),
    ("everything fixed", [0, 1, 2], [2, 0, 0], [0, 1, 2], [0, 1, 2]),
    ("a change that breaks many", [5], [0, 1, 2, 0, 1, 0, 0, 1], [1, 1, 0, 0, 2, 2, 0, 0], [0, 1, 2, 0, 1, 2, 0, 1]),
)


def reference_failure_diff(case_ids: Sequence[int], before: Sequence[int], now: Sequence[int],
                           labels: Sequence[int]) -> dict[str, list[int]]:
    """The reference answer: ``hrlib.analysis.failures.diff`` on a failure set selected from ``before``.

    Args:
        case_ids: the set's sample ids.
        before: predictions at selection, indexed by sample id.
        now: predictions after the change.
        labels: the true classes.

    Returns:
        Sorted id lists under ``"fixed"``, ``"still_failing"`` and ``"newly_failing"``.
    """
    cases = tuple(FailureCase(i, int(labels[i]), int(before[i])) for i in sorted(case_ids))
    failing = frozenset(i for i in range(len(labels)) if before[i] != labels[i])
    names = tuple(str(k) for k in range(max(*labels, *before, *now) + 1))
    failures = FailureSet(cases, failing, frozenset(range(len(labels))), names)
    d = diff(failures, list(now), list(labels))
    return {"fixed": list(d.fixed), "still_failing": list(d.still_failing), "newly_failing": list(d.newly_failing)}


def _diff_hint(key: str, got: list[int], expected: dict[str, list[int]], case_ids: Sequence[int],
               before: Sequence[int], now: Sequence[int], labels: Sequence[int]) -> str:
    if key == "fixed" and sorted(i for i in case_ids if now[i] != before[i]) == got:
        return "a case is fixed when it is now right (now == label), not merely when its prediction changed"
    if key == "still_failing" and sorted(i for i in case_ids if now[i] == before[i]) == got:
        return "a case still fails when it is wrong now, even if it is now wrong as another class"
    if key == "newly_failing" and set(got) > set(expected[key]):
        return ("newly failing are samples that were right before (before == label) and are wrong now: not the "
                "set's own cases, and not samples that already failed before")
    if key == "newly_failing":
        return "look at every sample, not only the set's cases: a change can break samples that used to be right"
    return "fixed and still_failing split the set's cases by whether now == label"


@register("07.failure_diff")
def check_failure_diff(answer: Callable[..., Any]) -> str:
    """Check a learner's failure-set diff.

    Args:
        answer: ``answer(case_ids, before, now, labels) -> {"fixed", "still_failing", "newly_failing": sorted id
            lists}``.

    Returns:
        The PASS message.

    Raises:
        NotYet: a wrong or unsorted id list, with a hint.
    """
    name = getattr(answer, "__name__", "failure_diff")
    for what, case_ids, before, now, labels in DIFF_CASES:
        shown = f"{name}(<{what}>)"
        got = call_answer(answer, shown, list(case_ids), np.array(before), np.array(now), np.array(labels))
        if got is None:
            raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
        expected = reference_failure_diff(case_ids, before, now, labels)
        if not isinstance(got, dict) or set(got) != set(expected):
            raise NotYet(f"{shown} returned {describe_value(got)}; expected a dict with the keys 'fixed', "
                         f"'still_failing' and 'newly_failing'")
        for key, want in expected.items():
            value = got[key]
            try:
                ids = [int(i) for i in value]
            except (TypeError, ValueError):
                raise NotYet(f"{shown}[{key!r}] is {describe_value(value)}; expected a list of int ids") from None
            if sorted(ids) != want:
                raise NotYet(f"{shown}[{key!r}] = {sorted(ids)} but expected {want}. Hint: "
                             f"{_diff_hint(key, sorted(ids), expected, case_ids, before, now, labels)}")
            if ids != want:
                raise NotYet(f"{shown}[{key!r}] = {ids}: right ids, but return them sorted ({want})")
    return f"fixed, still failing and newly failing, as hrlib.analysis.diff ({len(DIFF_CASES)} cases)"
