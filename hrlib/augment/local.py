"""Local occlusion for the high-resolution fine-tune stage (lesson 02, claim C2).

Everything composes albumentations 2.0: :func:`occlusion_policy` is GridMask (:class:`GridMask`, an
``A.GridDropout``), several *non-overlapping* CutOut holes (:class:`NonOverlappingCutout`: ``A.CoarseDropout``
places holes independently, so they may overlap) and aspect-ratio-bounded random erasing (:class:`RandomErasing`, an
``A.Erasing``); holes are filled with the slides' mean colour (:func:`mean_fill`), so that Normalize maps them to
about 0. These hole transforms shrink each box to the bounding box of its visible pixels (albumentations 2.0's own
rule truncates boxes to whole pixels first and can keep a box many pixels wider than what is left of its object, or
drop one that is still visible). Their randomness is albumentations' own generator (``A.Compose(seed=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np

from hrlib._checks import check_bool, check_float, check_floats, check_int
from hrlib.data.slides import SLIDE_MEAN

__all__ = ["Cutout", "GridMask", "NonOverlappingCutout", "RandomErasing", "mean_fill", "nonoverlapping_holes",
           "occlusion_policy"]

Fill = float | tuple[float, ...]


def mean_fill(mean: Sequence[float] = SLIDE_MEAN) -> tuple[int, ...]:
    """The 0-255 fill colour of a per-channel mean: holes in it normalise to about 0.

    Args:
        mean: per-channel floats in [0, 1] (the Normalize mean).

    Returns:
        One int in 0-255 per channel.
    """
    return tuple(round(255 * m) for m in check_floats("mean", mean, 0.0, 1.0))


def _hole_px(hole_size: object, height: int, width: int) -> tuple[int, int]:
    """``hole_size`` (two ints >= 1 in px, or two floats in (0, 1] as fractions of height and width) -> px."""
    ok = isinstance(hole_size, Sequence) and not isinstance(hole_size, str) and len(hole_size) == 2
    kinds = {type(v) for v in hole_size} if ok else set()  # type: ignore[union-attr]
    if ok and kinds <= {int, np.int64} and min(hole_size) >= 1:  # type: ignore[type-var]
        return int(hole_size[0]), int(hole_size[1])  # type: ignore[index]
    if ok and kinds <= {float, np.float64} and all(0 < v <= 1 for v in hole_size):  # type: ignore[union-attr]
        return max(1, round(hole_size[0] * height)), max(1, round(hole_size[1] * width))  # type: ignore[index]
    raise ValueError(f"hole_size must be (height, width) as two ints >= 1 (px) or two floats in (0, 1] (fractions "
                     f"of the image's height and width), got {hole_size!r}")


def nonoverlapping_holes(height: int, width: int, num_holes: int, hole_size: tuple[int, int] | tuple[float, float],
                         *, rng: np.random.Generator, max_tries: int = 100) -> np.ndarray:
    """``num_holes`` holes of ``hole_size`` inside a ``height`` x ``width`` px image, no two sharing a pixel.

    Holes are half-open pixel boxes ``x0, y0, x1, y1`` (``x1 - x0`` = hole width; touching edges is not an
    overlap). Each hole is drawn uniformly among positions that avoid the holes placed so far (``max_tries``
    rejection draws per hole: column, then row); if that gets stuck, the holes go to random cells of a randomly
    offset grid of hole-sized cells.

    Args:
        height, width: the image's size in px.
        num_holes: >= 0.
        hole_size: ``(h, w)``: two ints >= 1 (px), or two floats in (0, 1] (fractions of height and width).
        rng: the generator every position is drawn from.
        max_tries: rejection draws per hole before the grid fallback (>= 1).

    Returns:
        An ``(num_holes, 4)`` int64 array of ``x0, y0, x1, y1``.

    Raises:
        ValueError: the holes cannot fit: at most ``(height // h) * (width // w)`` translates of an ``h x w`` box
            fit without overlap.
    """
    height, width = check_int("height", height), check_int("width", width)
    num_holes, max_tries = check_int("num_holes", num_holes, 0), check_int("max_tries", max_tries)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    h, w = _hole_px(hole_size, height, width)
    rows, cols = height // h, width // w
    if num_holes > rows * cols:
        raise ValueError(f"num_holes={num_holes} non-overlapping {h}x{w} px holes (hole_size={hole_size!r}) cannot "
                         f"fit in a {height}x{width} px image (at most {rows * cols}); use fewer or smaller holes")
    holes = np.zeros((num_holes, 4), dtype=np.int64)
    for i in range(num_holes):
        for _ in range(max_tries):
            x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            p = holes[:i]
            if not np.any((x0 < p[:, 2]) & (p[:, 0] < x0 + w) & (y0 < p[:, 3]) & (p[:, 1] < y0 + h)):
                holes[i] = x0, y0, x0 + w, y0 + h
                break
        else:  # crowded: random cells of a grid of hole-sized cells, which always has room
            oy, ox = int(rng.integers(0, height - rows * h + 1)), int(rng.integers(0, width - cols * w + 1))
            cells = rng.choice(rows * cols, size=num_holes, replace=False)
            y0s, x0s = oy + cells // cols * h, ox + cells % cols * w
            return np.stack([x0s, y0s, x0s + w, y0s + h], axis=1).astype(np.int64)
    return holes


def _visible_boxes(boxes: np.ndarray, holes: np.ndarray, height: int, width: int, min_area: float = 0.0,
                   min_visibility: float = 0.0) -> np.ndarray:
    """Boxes (N, 4 + k) ``x0, y0, x1, y1`` px after filling ``holes`` (M, 4) px: each shrinks to its visible pixels.

    A box *owns* the pixels it covers by more than half of their area (a box that covers no pixel by more than half
    owns the pixels it touches). It is removed when every owned pixel lies under a hole, or when its visible area (the
    covered area outside holes) is below ``min_area`` px or ``min_visibility`` of its area; otherwise each side
    moves to the edge of the outermost visible owned pixel, and a side that no hole cuts keeps its exact value.
    (albumentations 2.0 truncates the box to whole pixels first, so a box can keep a hidden row that it covers by
    1 % and lose a visible one that it covers by 99 %, and every box is snapped whenever any hole is drawn.)
    """
    hidden = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in np.asarray(holes).reshape(-1, 4).astype(np.int64):
        hidden[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    kept = []
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        c0, c1 = max(0, int(np.floor(x0))), min(width, int(np.ceil(x1)))
        r0, r1 = max(0, int(np.floor(y0))), min(height, int(np.ceil(y1)))
        if c1 <= c0 or r1 <= r0 or x1 <= x0 or y1 <= y0:  # no area: nothing of it can be visible
            continue
        cx = np.clip(np.minimum(np.arange(c0 + 1, c1 + 1), x1) - np.maximum(np.arange(c0, c1), x0), 0, 1)
        cy = np.clip(np.minimum(np.arange(r0 + 1, r1 + 1), y1) - np.maximum(np.arange(r0, r1), y0), 0, 1)
        cover, covered = np.outer(cy, cx), hidden[r0:r1, c0:c1]
        area = float(cover[~covered].sum())
        if area <= 0 or area < min_area or area < min_visibility * (x1 - x0) * (y1 - y0):
            continue
        owned = cover > 0.5 + 1e-4  # more than half; exactly half (up to float32 noise in the box) is not
        owned = owned if owned.any() else cover > 0
        seen = owned & ~covered
        if not seen.any():
            continue
        oy, ox = np.flatnonzero(owned.any(axis=1)), np.flatnonzero(owned.any(axis=0))
        sy, sx = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
        out = np.array(box, dtype=np.float64)
        out[0] = x0 if sx[0] == ox[0] else c0 + sx[0]
        out[1] = y0 if sy[0] == oy[0] else r0 + sy[0]
        out[2] = x1 if sx[-1] == ox[-1] else c0 + sx[-1] + 1
        out[3] = y1 if sy[-1] == oy[-1] else r0 + sy[-1] + 1
        kept.append(out)
    return np.array(kept, dtype=boxes.dtype).reshape(-1, boxes.shape[1])


class _VisibleBoxes:
    """Mixin for albumentations' hole transforms: boxes shrink to their visible pixels (:func:`_visible_boxes`)."""

    def apply_to_bboxes(self, bboxes: np.ndarray, holes: np.ndarray, **params: Any) -> np.ndarray:
        """albumentations' hook: normalized boxes (N, 4 + k) after ``holes`` (M, 4) px are filled."""
        processor = self.get_processor("bboxes")  # type: ignore[attr-defined]
        if holes.size == 0 or processor is None or len(bboxes) == 0:
            return bboxes
        height, width = params["shape"][:2]
        scale = np.array([width, height, width, height], dtype=np.float64)
        px = np.array(bboxes, dtype=np.float64)
        px[:, :4] *= scale
        out = _visible_boxes(px, holes, height, width, processor.params.min_area, processor.params.min_visibility)
        out[:, :4] /= scale
        return out.astype(bboxes.dtype, copy=False)


class GridMask(_VisibleBoxes, A.GridDropout):
    """``A.GridDropout`` (GridMask: a regular grid of square holes) whose boxes shrink to their visible pixels. Same
    arguments; see :func:`_visible_boxes` for how boxes follow the holes."""


class Cutout(_VisibleBoxes, A.CoarseDropout):
    """``A.CoarseDropout`` (CutOut: independently placed holes, which may overlap) whose boxes shrink to their
    visible pixels. Same arguments."""


class RandomErasing(_VisibleBoxes, A.Erasing):
    """``A.Erasing`` (random erasing: one rectangle of bounded area and aspect ratio) whose boxes shrink to their
    visible pixels. Same arguments."""


class NonOverlappingCutout(Cutout):
    """CutOut with holes that never overlap and stay inside the image (``A.CoarseDropout`` does not promise either
    the first). Same arguments as ``A.CoarseDropout``; one hole size is drawn per call from ``hole_height_range`` and
    ``hole_width_range`` (px ints, or fractions of the side as floats in (0, 1]). Like ``A.CoarseDropout`` it is a
    dual transform: boxes shrink to their visible part, masks are filled only if ``fill_mask`` is set. A call whose
    drawn holes cannot fit raises ``ValueError``. Seeded by ``A.Compose(seed=...)``."""

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """albumentations' hook: draw the holes (count, one size, positions) from the transform's generators."""
        height, width = params["shape"][:2]
        num_holes = self.py_random.randint(*self.num_holes_range)
        heights, widths = self.calculate_hole_dimensions((height, width), self.hole_height_range,
                                                         self.hole_width_range, size=1)
        size = (max(1, int(heights[0])), max(1, int(widths[0])))
        holes = nonoverlapping_holes(height, width, num_holes, size, rng=self.random_generator)
        return {"holes": holes, "seed": self.random_generator.integers(0, 2**32 - 1)}


def _check_fill(fill: object) -> Fill:
    """A 0-255 colour: one number, or one per channel (a single one is returned as a float)."""
    if isinstance(fill, Sequence) and not isinstance(fill, str):
        values = check_floats("fill", fill, 0.0, 255.0)
        return values if len(values) > 1 else values[0]
    return check_float("fill", fill, 0.0, 255.0, hint="grey levels")


def occlusion_policy(resolution: int, *, gridmask: bool = True, cutout: bool = True, erasing: bool = True,
                     fill: Fill | None = None, strength: float = 1.0, p: float = 0.5,
                     max_aspect: float = 2.0) -> list[A.BasicTransform]:
    """The high-resolution fine-tune stage's local occlusion (C2), for images of ``resolution`` px.

    Each part runs with probability ``p``: GridMask (:class:`GridMask`, grid unit 8-16 % of the side, a square
    of ``0.3 * strength`` of the unit dropped), CutOut (:class:`NonOverlappingCutout`, 2-6 holes of
    ``(3-6 %) * strength`` of the side) and random erasing (:class:`RandomErasing`, ``(2-10 %) * strength`` of the
    area). No global geometry, so boxes and masks keep their place.

    Args:
        resolution: the images' side in px (>= 8).
        gridmask, cutout, erasing: which parts to include.
        fill: 0-255 colour of the holes, one number or one per channel; default the slides' mean (:func:`mean_fill`).
        strength: in [0, 1]; 0 returns no transform (identity).
        p: probability in [0, 1] of each part.
        max_aspect: random erasing's aspect ratio lies within ``[1 / max_aspect, max_aspect]`` (>= 1).

    Returns:
        A list of transforms to put after the resize and before Normalize.
    """
    resolution = check_int("resolution", resolution, 8)
    strength = check_float("strength", strength, 0.0, 1.0)
    p = check_float("p", p, 0.0, 1.0)
    max_aspect = check_float("max_aspect", max_aspect, 1.0)
    gridmask, cutout, erasing = (check_bool(n, v) for n, v in (("gridmask", gridmask), ("cutout", cutout),
                                                               ("erasing", erasing)))
    fill = mean_fill() if fill is None else _check_fill(fill)
    if strength == 0:
        return []
    steps: list[A.BasicTransform] = []
    if gridmask:
        unit = (max(2, round(0.08 * resolution)), max(3, round(0.16 * resolution)))
        steps.append(GridMask(ratio=0.3 * strength, unit_size_range=unit, random_offset=True, fill=fill, p=p))
    if cutout:
        size = (0.03 * strength, 0.06 * strength)
        steps.append(NonOverlappingCutout(num_holes_range=(2, 6), hole_height_range=size, hole_width_range=size,
                                          fill=fill, p=p))
    if erasing:
        steps.append(RandomErasing(scale=(0.02 * strength, 0.1 * strength), ratio=(1 / max_aspect, max_aspect),
                                   fill=fill, p=p))
    return steps
