"""Plausible wrong answers for exercise 02: {exercise id: [(wrong function, a word its rejection must contain)]}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _sampler(*, touching_overlaps: bool = False, high_offset: int = 1, use_global: bool = False,
             inclusive: bool = False, swap: bool = False, check_overlap: bool = True, check_capacity: bool = True):
    """A rejection sampler with one plausible mistake switched on."""

    def sample_holes(height, width, num_holes, hole_size, rng):
        h, w = hole_size[::-1] if swap else hole_size
        if check_capacity and num_holes > (height // h) * (width // w):
            raise ValueError("too many holes")
        holes: list[list[int]] = []
        draw = np.random.randint if use_global else rng.integers

        def apart(b: list[int], x0: int, y0: int) -> bool:
            if touching_overlaps:  # wrong: a shared edge is treated as an overlap
                return x0 > b[2] or b[0] > x0 + w or y0 > b[3] or b[1] > y0 + h
            return x0 >= b[2] or b[0] >= x0 + w or y0 >= b[3] or b[1] >= y0 + h

        for _ in range(num_holes):
            for _ in range(2_000):
                x0, y0 = int(draw(0, width - w + high_offset)), int(draw(0, height - h + high_offset))
                if not check_overlap or all(apart(b, x0, y0) for b in holes):
                    break
            else:
                if check_capacity:
                    raise ValueError("could not place the holes")
            holes.append([x0, y0, x0 + w - inclusive, y0 + h - inclusive])
        return np.array(holes, dtype=np.int64).reshape(-1, 4)

    return sample_holes


def _naive_rejection(height, width, num_holes, hole_size, rng):
    """Draws until each hole fits, with no capacity check and no bound: never returns when the holes cannot fit."""
    h, w = hole_size
    holes: list[list[int]] = []
    while len(holes) < num_holes:
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        if all(x0 >= b[2] or b[0] >= x0 + w or y0 >= b[3] or b[1] >= y0 + h for b in holes):
            holes.append([x0, y0, x0 + w, y0 + h])
    return np.array(holes, dtype=np.int64).reshape(-1, 4)


def _free_corners(height, width, num_holes, hole_size, rng):
    """Picks among the free top-left corners and raises when none is left, even when a tiling exists."""
    h, w = hole_size
    if num_holes > (height // h) * (width // w):
        raise ValueError("too many holes")
    free = np.ones((height - h + 1, width - w + 1), dtype=bool)
    holes = []
    for _ in range(num_holes):
        ys, xs = np.nonzero(free)
        if len(ys) == 0:
            raise ValueError("ran out of room")
        k = rng.integers(len(ys))
        y0, x0 = int(ys[k]), int(xs[k])
        holes.append((x0, y0, x0 + w, y0 + h))
        free[max(0, y0 - h + 1):y0 + h, max(0, x0 - w + 1):x0 + w] = False
    return np.array(holes, dtype=np.int64).reshape(-1, 4)


def _reversed(rule: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], Any]:
    def find_reversed_boxes(boxes):
        b = np.asarray(boxes, dtype=float).reshape(-1, 4)
        return np.flatnonzero(rule(b)).tolist()

    return find_reversed_boxes


def _as_mask(boxes):
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.isfinite(b).all(1) & ((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))


def _descending(boxes):
    return sorted(np.flatnonzero(_as_mask(boxes)).tolist(), reverse=True)


WRONG: dict[str, list[tuple[Callable[..., Any], str]]] = {
    "02.nonoverlapping_holes": [
        (_sampler(touching_overlaps=True), "touching"),
        (_sampler(high_offset=0), "width - w"),
        (_sampler(high_offset=2), "leaves"),
        (_sampler(use_global=True), "rng"),
        (_sampler(inclusive=True), "exclusive"),
        (_sampler(swap=True), "(height, width)"),
        (_sampler(check_overlap=False), "overlap"),
        (_sampler(check_capacity=False), "ValueError"),
        (_naive_rejection, "did not return"),
        (_free_corners, "tile it exactly"),
    ],
    "02.find_reversed_boxes": [
        (_reversed(lambda b: b[:, 2] < b[:, 0]), "check y"),
        (_reversed(lambda b: b[:, 3] < b[:, 1]), "check x"),
        (_reversed(lambda b: np.isfinite(b).all(1) & ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))), "empty"),
        (_reversed(lambda b: ~((b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1]))), "non-finite"),
        (_as_mask, "mask"),
        (_descending, "ascending"),
        (_reversed(lambda b: np.isfinite(b).all(1) & ((b[:, 2] < b[:, 1]) | (b[:, 3] < b[:, 0]))), "columns"),
    ],
}
