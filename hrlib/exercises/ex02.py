"""Checks for lesson 02, "local augmentation": a non-overlapping CutOut hole sampler and a reversed-box check.

The references are hrlib's own: :func:`hrlib.augment.local.nonoverlapping_holes` (holes are half-open pixel boxes
``x0, y0, x1, y1``; touching edges is not an overlap; at most ``(H // h) * (W // w)`` holes fit) and the definition
of ``"reversed_box"`` in :mod:`hrlib.augment.qa` (a finite box with ``x1 < x0`` or ``y1 < y0``).
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from hrlib.exercises import NotYet, call_answer, describe_value, register

TIME_LIMIT_S = 2.0  # per call of the learner's sampler: a correct one takes milliseconds on these sizes


class _TimeUp(BaseException):
    """Raised inside a learner's function that ran past the time limit (a BaseException, so that a bare
    ``except Exception`` in the answer cannot swallow it)."""


def _hang_hint(shown: str) -> NotYet:
    return NotYet(f"{shown} did not return within {TIME_LIMIT_S:g} s (stopped). Hint: a loop that draws until a hole "
                  f"fits never ends when no position is left; check (height // h) * (width // w) first, and bound "
                  f"the number of tries (then fall back to a grid, or raise ValueError)")


def _raise_time_up(signum: int, frame: object) -> None:
    raise _TimeUp


def _in_thread(answer: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[bool, Any, BaseException | None]:
    """Run ``answer`` in a worker thread; stop it with an asynchronous exception if it runs past the limit."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = answer(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(TIME_LIMIT_S)
    if worker.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_TimeUp))
        worker.join(1.0)
        return False, None, None
    return True, box.get("value"), box.get("error")


def call_in_time(answer: Callable[..., Any], shown: str, /, *args: Any, **kwargs: Any) -> Any:
    """:func:`hrlib.exercises.call_answer` under a time limit of ``TIME_LIMIT_S`` seconds.

    In the main thread a ``SIGALRM`` timer interrupts the answer (Unix); elsewhere it runs in a worker thread that
    is stopped with an asynchronous exception. An answer that does not return in time is a NOT YET with a hint,
    not a hung check.

    Args:
        answer: the learner's function.
        shown: the call as messages show it.
        *args, **kwargs: its arguments.

    Returns:
        What ``answer`` returned.

    Raises:
        NotImplementedError: the exercise is not done yet.
        NotYet: ``answer`` raised, or ran past the limit.
    """
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        previous = signal.signal(signal.SIGALRM, _raise_time_up)
        signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
        try:
            return call_answer(answer, shown, *args, **kwargs)
        except _TimeUp:
            raise _hang_hint(shown) from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    done, value, error = _in_thread(lambda: call_answer(answer, shown, *args, **kwargs), (), {})
    if not done or isinstance(error, _TimeUp):
        raise _hang_hint(shown)
    if error is not None:
        raise error
    return value

# ----------------------------------------------------------------------------------------- hole sampler

# (height, width, num_holes, (hole height, hole width)); all fit, some only just
HOLE_CASES: tuple[tuple[int, int, int, tuple[int, int]], ...] = (
    (64, 64, 4, (8, 8)), (40, 100, 6, (10, 20)), (30, 30, 1, (30, 30)), (50, 80, 0, (5, 5)), (48, 48, 5, (12, 12)),
    (20, 60, 3, (20, 7)),
)


def _as_holes(shown: str, got: object, n: int) -> np.ndarray:
    if got is None:
        raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
    try:
        arr = np.asarray(got)
    except Exception:  # an object NumPy cannot read
        raise NotYet(f"{shown} returned {describe_value(got)}; expected an (n, 4) int array") from None
    if arr.size == 0 and n == 0:
        return arr.reshape(0, 4).astype(np.int64)
    if arr.shape != (n, 4) or not np.issubdtype(arr.dtype, np.integer):
        raise NotYet(f"{shown} returned {describe_value(got)}; expected an ({n}, 4) integer array of x0, y0, x1, y1")
    return arr.astype(np.int64)


def _check_one(shown: str, holes: np.ndarray, height: int, width: int, size: tuple[int, int]) -> None:
    h, w = size
    widths, heights = holes[:, 2] - holes[:, 0], holes[:, 3] - holes[:, 1]
    if len(holes) and ((widths == w - 1) & (heights == h - 1)).all():
        raise NotYet(f"{shown}: holes are {w - 1} x {h - 1} px, expected {w} x {h}. Hint: x1 and y1 are exclusive "
                     f"(half-open boxes): x1 = x0 + w")
    if len(holes) and h != w and (widths == h).all() and (heights == w).all():
        raise NotYet(f"{shown}: holes are {h} px wide and {w} px tall. Hint: hole_size is (height, width), and a "
                     f"box is x0, y0, x1, y1 (x is the column)")
    if not ((widths == w) & (heights == h)).all():
        sizes = sorted(set(zip(widths.tolist(), heights.tolist(), strict=True)))
        raise NotYet(f"{shown}: hole sizes (w x h) {sizes} but every hole must be {w} x {h} px")
    if (holes[:, :2] < 0).any() or (holes[:, 2] > width).any() or (holes[:, 3] > height).any():
        raise NotYet(f"{shown}: a hole leaves the {width} x {height} image: {holes.tolist()}. Hint: x0 can go from 0 "
                     f"to width - w included, and rng.integers(low, high) excludes high")
    for i in range(len(holes)):
        for j in range(i):
            a, b = holes[i], holes[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                raise NotYet(f"{shown}: holes {j} {b.tolist()} and {i} {a.tolist()} overlap. Hint: two half-open boxes "
                             f"overlap when a.x0 < b.x1 and b.x0 < a.x1, and the same in y")


def _draws(answer: Callable[..., Any], name: str, height: int, width: int, n: int, size: tuple[int, int],
           seeds: range) -> list[np.ndarray]:
    shown = f"{name}({height}, {width}, {n}, {size}, rng=...)"
    out = []
    for seed in seeds:
        try:
            got = call_in_time(answer, shown, height, width, n, size, rng=np.random.default_rng(seed))
        except NotYet as exc:
            if "high" not in str(exc):
                raise
            raise NotYet(f"{exc}. Hint: rng.integers(low, high) excludes high, so a hole as wide as the image needs "
                         f"rng.integers(0, width - w + 1)") from None
        holes = _as_holes(shown, got, n)
        _check_one(shown, holes, height, width, size)
        out.append(holes)
    return out


@register("02.nonoverlapping_holes")
def check_nonoverlapping_holes(answer: Callable[..., Any]) -> str:
    """Check a learner's non-overlapping hole sampler.

    Args:
        answer: ``answer(height, width, num_holes, hole_size, rng) -> (num_holes, 4) int array``.

    Returns:
        The PASS message: holes fit, never overlap, and are drawn from ``rng``.

    Raises:
        NotYet: overlapping, misplaced or wrongly sized holes, with a hint.
    """
    name = getattr(answer, "__name__", "sample_holes")
    for height, width, n, size in HOLE_CASES:
        first, again = (_draws(answer, name, height, width, n, size, range(s, s + 1))[0] for s in (3, 3))
        if not np.array_equal(first, again):
            raise NotYet(f"{name}({height}, {width}, {n}, {size}, rng=np.random.default_rng(3)) gave different holes "
                         f"on two calls. Hint: draw every random number from the `rng` argument, not np.random")
    others = _draws(answer, name, 64, 64, 4, (8, 8), range(8))
    if all(np.array_equal(others[0], o) for o in others[1:]):
        raise NotYet(f"{name} gave the same holes for 8 different rng seeds. Hint: draw the positions from `rng`")
    edge = _draws(answer, name, 10, 11, 1, (10, 10), range(40))  # x0 is 0 or 1, each about half of the time
    if not any(h[0, 0] == 1 for h in edge):
        raise NotYet(f"{name}(10, 11, 1, (10, 10), rng) never put the hole at x0 = 1 in 40 draws. Hint: the last "
                     f"valid x0 is width - w; rng.integers(0, width - w + 1) includes it")
    try:  # two holes in a 30 px strip: there is always room, but only if touching is allowed
        strip = _draws(answer, name, 10, 30, 2, (10, 10), range(200))
    except NotYet as exc:
        raise NotYet(f"{exc}. Hint: two 10 px holes always fit in a 30 px strip when touching edges is allowed, "
                     f"which it is (x1 is exclusive)") from None
    if not any(abs(int(h[0, 0]) - int(h[1, 0])) == 10 for h in strip):
        raise NotYet(f"{name}(10, 30, 2, (10, 10), rng) never placed two holes side by side in 200 draws. Hint: "
                     f"touching edges is not an overlap (x1 is exclusive): compare with <, not <=")
    _impossible_raises(answer, name)
    for height, width, n, size in ((32, 32, 4, (16, 16)), (30, 40, 12, (10, 10))):  # they fit, but only on a grid
        try:
            _draws(answer, name, height, width, n, size, range(20))
        except NotYet as exc:
            if "raised ValueError" not in str(exc):
                raise
            raise NotYet(f"{exc}; but {n} holes of {size[0]} x {size[1]} px do fit in {height} x {width} px (they "
                         f"tile it exactly). Hint: random placement can leave gaps that waste the room; when it gets "
                         f"stuck, put the holes in random cells of a grid of hole-sized cells") from None
    return (f"holes of the right size, inside, never overlapping, from the rng; impossible requests raise; exact "
            f"tilings filled ({len(HOLE_CASES) + 6} cases)")


def _impossible_raises(answer: Callable[..., Any], name: str) -> None:
    """NOT YET unless ``answer(20, 20, 5, (10, 10))`` (5 holes where 4 fit) raises ValueError in time."""
    shown = f"{name}(20, 20, 5, (10, 10), rng)"
    try:
        got = call_in_time(answer, shown, 20, 20, 5, (10, 10), rng=np.random.default_rng(0))
    except NotYet as exc:
        if "did not return" in str(exc):
            raise
        if "raised ValueError" in str(exc):
            return
        raise NotYet(f"{exc}; expected ValueError: at most (20 // 10) * (20 // 10) = 4 holes of 10 x 10 px "
                     f"fit") from None
    raise NotYet(f"{shown} returned {describe_value(got)}; expected a ValueError. Hint: at most (height // h) * "
                 f"(width // w) holes fit; check before sampling (and never loop forever)")


# ----------------------------------------------------------------------------------------- reversed boxes

NAN, INF = float("nan"), float("inf")
BOX_CASES: tuple[tuple[str, list[list[float]]], ...] = (
    ("good boxes", [[0, 0, 10, 10], [5.5, 2, 9, 30], [0, 0, 1, 1], [0, 20, 10, 30], [40, 0, 50, 8]]),
    ("x reversed", [[0, 0, 10, 10], [30, 5, 10, 20]]),
    ("y reversed", [[1, 40, 10, 20], [0, 0, 10, 10], [3, 3, 4, 4]]),
    ("both reversed", [[10, 10, 0, 0]]),
    ("empty boxes (zero width or height)", [[5, 5, 5, 9], [2, 7, 8, 7], [9, 9, 1, 3]]),
    ("non-finite boxes", [[NAN, 0, 10, 10], [0, 0, INF, 3], [5, 5, 1, NAN], [0, 0, -INF, 5], [4, 4, 2, 8]]),
    ("several reversed", [[10, 0, 0, 5], [0, 0, 5, 5], [0, 9, 5, 1], [3, 3, 1, 1]]),
    ("no boxes", []),
)


def reference_reversed(boxes: np.ndarray) -> list[int]:
    """The reference: indices of finite boxes with ``x1 < x0`` or ``y1 < y0`` (``hrlib.augment.qa``'s
    ``"reversed_box"``).

    Args:
        boxes: (N, 4) ``x0, y0, x1, y1``.

    Returns:
        The indices, ascending.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(b).all(axis=1)
    return np.flatnonzero(finite & ((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))).tolist()


def _reversed_hint(boxes: np.ndarray, got: list[int], expected: list[int]) -> str:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    extra, missing = set(got) - set(expected), set(expected) - set(got)
    if any(not np.isfinite(b[i]).all() for i in extra):
        return ("a box with a NaN or inf coordinate is non-finite, not reversed: skip it "
                "(hrlib.augment.qa reports it apart)")
    if any(b[i, 2] == b[i, 0] or b[i, 3] == b[i, 1] for i in extra):
        return "a zero-width or zero-height box is empty, not reversed: compare with <, not <="
    if any(b[i, 3] < b[i, 1] and b[i, 2] >= b[i, 0] for i in missing):
        return "check y too: a box is reversed when x1 < x0 *or* y1 < y0"
    if any(b[i, 2] < b[i, 0] and b[i, 3] >= b[i, 1] for i in missing):
        return "check x too: a box is reversed when x1 < x0 *or* y1 < y0"
    return "boxes are x0, y0, x1, y1: compare x1 with x0 (columns 2 and 0) and y1 with y0 (columns 3 and 1)"


@register("02.find_reversed_boxes")
def check_find_reversed_boxes(answer: Callable[..., Any]) -> str:
    """Check a learner's reversed-box finder: indices (ascending) of finite boxes with x1 < x0 or y1 < y0.

    Args:
        answer: ``answer(boxes) -> list[int]``.

    Returns:
        The PASS message: the reversed boxes of every case found.

    Raises:
        NotYet: a missed or extra index, with a hint (NaN boxes, empty boxes, ...).
    """
    name = getattr(answer, "__name__", "find_reversed_boxes")
    for what, rows in BOX_CASES:
        boxes = np.asarray(rows, dtype=np.float32).reshape(-1, 4)
        shown = f"{name}(<{what}>)"
        got = call_answer(answer, shown, boxes.copy())
        if got is None:
            raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
        arr = np.asarray(got) if isinstance(got, list | tuple | np.ndarray) else None
        if arr is not None and arr.dtype == bool:
            raise NotYet(f"{shown} returned a boolean mask; expected the indices. Hint: np.flatnonzero(mask)")
        if arr is None or arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise NotYet(f"{shown} returned {describe_value(got)}; expected a list of int indices")
        expected = reference_reversed(boxes)
        if sorted(arr.tolist()) != expected:
            raise NotYet(f"{shown} returned {arr.tolist()} but expected {expected}. "
                         f"Hint: {_reversed_hint(boxes, arr.tolist(), expected)}")
        if arr.tolist() != expected:
            raise NotYet(f"{shown} returned {arr.tolist()}: the right boxes, but list them in ascending order")
    return f"reversed boxes found, empty and non-finite boxes left to their own checks ({len(BOX_CASES)} cases)"
