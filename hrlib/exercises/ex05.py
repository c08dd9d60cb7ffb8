"""Checks for lesson 05, "input pipeline": assemble a region from a grid of tiles, and the data-wait fraction of a
training loop's steps.

The region reference is hrlib's own :meth:`hrlib.pipeline.tilestore.TileStore.read_region` on a small LMDB store
written for the check; the fraction reference is ``sum(wait) / sum(wait + compute)`` after the warm-up steps (what
:class:`hrlib.pipeline.loaders.StepTimer` measures, without its start-up steps).
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from hrlib.exercises import NotYet, call_answer, describe_value, register

# ----------------------------------------------------------------------------------------- region from tiles

TILE = 16
# (what the case tests, y, x, h, w) on a 70 x 96 image: 5 tile rows (the last one 6 px high), 6 full tile columns
REGION_CASES: tuple[tuple[str, int, int, int, int], ...] = (
    ("inside one tile", 3, 5, 8, 8),
    ("one whole tile", 16, 32, 16, 16),
    ("across a vertical tile boundary", 2, 10, 10, 12),
    ("across both boundaries (4 tiles)", 10, 12, 20, 30),
    ("through the short tiles of the bottom row", 60, 20, 10, 40),
    ("ending at the right edge", 20, 80, 12, 16),
    ("the bottom-right corner", 61, 85, 9, 11),
    ("one pixel in the last tile", 69, 95, 1, 1),
    ("the whole image", 0, 0, 70, 96),
)


@functools.cache
def _tile_image() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (70, 96, 3), dtype=np.uint8)


def tiles_of(image: np.ndarray, tile: int) -> dict[tuple[int, int], np.ndarray]:
    """The grid of ``image`` as ``{(row, col): image[row*tile:(row+1)*tile, col*tile:(col+1)*tile]}`` (edge tiles are
    smaller when the side is not a multiple of ``tile``)."""
    h, w = image.shape[:2]
    return {(r, c): image[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile].copy()
            for r in range(-(-h // tile)) for c in range(-(-w // tile))}


@functools.cache
def _references() -> tuple[np.ndarray, ...]:
    """hrlib's store read of every case, from an LMDB store of the test image with the same tile size."""
    from hrlib.pipeline.store import open_store, write_store

    with tempfile.TemporaryDirectory(prefix="hrlib-ex05-") as tmp:
        with open_store(write_store(f"{tmp}/store", {"image": _tile_image()}, fmt="lmdb", tile=TILE, levels=1)) as s:
            return tuple(s.read_region("image", y, x, h, w) for _, y, x, h, w in REGION_CASES)


def _swapped_keys(tiles: dict, y: int, x: int, h: int, w: int) -> np.ndarray | None:
    """The region read with tiles looked up as (col, row) (None when such a key does not exist)."""
    out = np.zeros((h, w, 3), np.uint8)
    for r in range(y // TILE, (y + h - 1) // TILE + 1):
        for c in range(x // TILE, (x + w - 1) // TILE + 1):
            if (c, r) not in tiles:
                return None
            t = tiles[(c, r)]
            ty0, ty1 = max(y, r * TILE), min(y + h, r * TILE + TILE)
            tx0, tx1 = max(x, c * TILE), min(x + w, c * TILE + TILE)
            part = t[ty0 - r * TILE:ty1 - r * TILE, tx0 - c * TILE:tx1 - c * TILE]
            if part.shape[:2] != (ty1 - ty0, tx1 - tx0):
                return None
            out[ty0 - y:ty1 - y, tx0 - x:tx1 - x] = part
    return out


def _region_mistakes(tiles: dict, y: int, x: int, h: int, w: int) -> list[tuple[str, Any]]:
    """What plausible mistakes return for one case, to recognise them."""
    image = _tile_image()
    r, c = y // TILE, x // TILE
    first = tiles[(r, c)][y - r * TILE:y - r * TILE + h, x - c * TILE:x - c * TILE + w]
    r0, c0 = r * TILE, c * TILE
    rows_cols = ("tiles are keyed (row, col) = (y // tile, x // tile), and y is the row (first axis): the region "
                 "is image[y:y + h, x:x + w]")
    return [
        ("only the tile that holds (y, x) was used: a region that crosses a tile boundary needs every tile from "
         "(y // tile, x // tile) to ((y + h - 1) // tile, (x + w - 1) // tile)", first),
        ("the region starts at the top-left corner of its first tile: crop at the offset y - row * tile, "
         "x - col * tile inside it", image[r0:r0 + h, c0:c0 + w]),
        ("height and width are swapped (the output was transposed): it is (h, w, C) = image[y:y + h, x:x + w]",
         image[y:y + h, x:x + w].transpose(1, 0, 2)),
        (rows_cols, _swapped_keys(tiles, y, x, h, w)),
        (rows_cols, image[x:x + h, y:y + w] if x + h <= image.shape[0] and y + w <= image.shape[1] else None),
    ]


def _region_hint(case: str, tiles: dict, got: np.ndarray, args: tuple[int, int, int, int]) -> str:
    for hint, candidate in _region_mistakes(tiles, *args):
        if candidate is not None and candidate.shape == got.shape and np.array_equal(candidate, got):
            return hint
    if "bottom" in case or "edge" in case or "corner" in case or "last" in case or "whole" in case:
        return ("tiles of the last row are shorter (and of the last column narrower) than tile x tile: paste the "
                "overlap of each tile with the region, using the tile's real shape")
    return ("for each tile (row, col) that meets the region, copy the overlap of the tile's pixel span "
            "[row * tile, row * tile + tile_height) x [col * tile, ...) with the region into the output")


def _region_error_hint(case: str, message: str) -> str:
    if "KeyError" in message:
        if "edge" in case or "corner" in case or "whole" in case or "last" in case or "bottom" in case:
            return ("a tile outside the grid was asked for: the last tile that meets the region is "
                    "((y + h - 1) // tile, (x + w - 1) // tile), not ((y + h) // tile, ...); tiles are keyed "
                    "(row, col)")
        return "tiles are keyed (row, col) = (y // tile, x // tile): row first"
    if "broadcast" in message or "shape" in message:
        return ("tiles of the last row are shorter (and of the last column narrower) than tile x tile: take each "
                "tile's real shape, not tile x tile")
    return "for each tile that meets the region, copy its overlap with the region into the output"


@register("05.read_region")
def check_read_region(answer: Callable[..., Any]) -> str:
    """``answer(tiles, tile, y, x, h, w) -> (h, w, C) uint8``: the region assembled from ``{(row, col): tile}``."""
    name = getattr(answer, "__name__", "read_region")
    tiles = tiles_of(_tile_image(), TILE)
    for (case, y, x, h, w), expected in zip(REGION_CASES, _references(), strict=True):
        shown = f"{name}(tiles, tile={TILE}, y={y}, x={x}, h={h}, w={w}) [{case}; image 70 x 96]"
        given = {k: v.copy() for k, v in tiles.items()}
        try:
            got = call_answer(answer, shown, given, TILE, y, x, h, w)
        except NotYet as e:
            raise NotYet(f"{e}. Hint: {_region_error_hint(case, str(e))}") from None
        if got is None:
            raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
        if not isinstance(got, np.ndarray):
            raise NotYet(f"{shown} returned {describe_value(got)}; expected a NumPy array of shape {expected.shape}")
        if got.shape != expected.shape:
            if got.shape == (w, h, 3) and h != w:
                hint = ". Hint: height and width are swapped: the output is (h, w, C)"
            else:
                hint = f". Hint: {_region_hint(case, tiles, got, (y, x, h, w))}"
            raise NotYet(f"{shown} returned shape {got.shape}; expected {expected.shape}{hint}")
        if got.dtype != np.uint8:
            raise NotYet(f"{shown} returned dtype {got.dtype}; keep the tiles' uint8 (np.empty((h, w, C), "
                         f"dtype=tiles[(0, 0)].dtype))")
        if not np.array_equal(got, expected):
            wrong = (got != expected).any(axis=2).mean()
            raise NotYet(f"{shown}: {100 * wrong:.0f}% of the pixels differ from hrlib's store read. "
                         f"Hint: {_region_hint(case, tiles, got, (y, x, h, w))}")
        if any(not np.array_equal(given[k], tiles[k]) for k in tiles):
            raise NotYet(f"{shown} modified the tiles it was given; copy pixels out of them, don't write into them")
    return (f"equal to hrlib's TileStore.read_region inside tiles, across boundaries and at edges "
            f"({len(REGION_CASES)} cases)")


# ----------------------------------------------------------------------------------------- data-wait fraction

STEP_CASES: tuple[tuple[str, tuple[tuple[float, float], ...], int], ...] = (
    ("steady steps", ((0.05, 0.10),) * 6, 0),
    ("slow first batch (workers starting)", ((2.0, 0.1), (0.05, 0.1), (0.04, 0.1), (0.06, 0.1), (0.05, 0.1)), 1),
    ("uneven steps", ((1.5, 0.2), (0.01, 0.3), (0.4, 0.1), (0.02, 0.6), (0.3, 0.05), (0.0, 0.2)), 1),
    ("three warm-up steps", ((3.0, 0.5), (1.0, 0.5), (0.5, 0.1), (0.1, 0.2), (0.25, 0.2), (0.05, 0.4)), 3),
    ("data-bound", ((0.9, 0.1), (0.8, 0.1), (0.85, 0.05), (0.7, 0.2)), 1),
)


def _fraction(steps: Any, warmup: int, *, skip: int | None = None, per_step: bool = False,
              over: str = "total", scale: float = 1.0) -> float:
    kept = np.asarray(steps, dtype=float)[warmup if skip is None else skip:]
    wait, compute = kept[:, 0], kept[:, 1]
    top = compute if over == "utilization" else wait
    bottom = compute if over == "compute" else wait + compute
    value = np.mean(top / bottom) if per_step else top.sum() / bottom.sum()
    return float(value) * scale


def _fraction_hint(steps: Any, warmup: int, got: float) -> str:
    mistakes = [
        ("skip the first `warmup` steps (worker start-up and first reads) before summing", {"skip": 0}),
        ("skip exactly `warmup` steps: steps[warmup:]", {"skip": warmup + 1}),
        ("skip exactly `warmup` steps, as the argument says, not always 1", {"skip": 1}),
        ("sum the wait and the step times first, then divide; a mean of per-step fractions over-weights short "
         "steps", {"per_step": True}),
        ("divide by the whole step time (wait + compute), not by the compute time", {"over": "compute"}),
        ("that is the utilization (compute / total); the data-wait fraction is wait / total", {"over": "utilization"}),
        ("return a fraction between 0 and 1, not a percent", {"scale": 100.0}),
    ]
    for hint, kwargs in mistakes:
        if math.isclose(got, _fraction(steps, warmup, **kwargs), rel_tol=1e-6, abs_tol=1e-9):
            return hint
    return "fraction = sum(wait) / sum(wait + compute) over steps[warmup:]"


@register("05.data_fraction")
def check_data_fraction(answer: Callable[..., Any]) -> str:
    """``answer(steps, warmup) -> float``: the share of step time spent waiting for data after the warm-up."""
    name = getattr(answer, "__name__", "data_fraction")
    for case, steps, warmup in STEP_CASES:
        shown = f"{name}(<{len(steps)} steps: {case}>, warmup={warmup})"
        got = call_answer(answer, shown, [tuple(s) for s in steps], warmup)
        if got is None:
            raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
        if isinstance(got, np.ndarray) and got.size == 1:
            got = got.item()
        if not isinstance(got, int | float | np.floating | np.integer) or isinstance(got, bool):
            raise NotYet(f"{shown} returned {describe_value(got)}; expected one number (a float)")
        got = float(got)
        expected = _fraction(steps, warmup)
        if not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
            raise NotYet(f"{shown} returned {got:.4g}; expected {expected:.4g}. "
                         f"Hint: {_fraction_hint(steps, warmup, got)}")
    return f"sum(wait) / sum(wait + compute) after the warm-up steps ({len(STEP_CASES)} cases)"
