"""Local augmentation for the high-resolution fine-tune stage (claim C2), batch mixing (C35) and label-aligned
pipelines with a measured coordinate precision (C5). Lesson 02.

Everything composes albumentations 2.0 and torchvision v2: :func:`occlusion_policy` is GridMask
(:class:`GridMask`, an ``A.GridDropout``), several *non-overlapping* CutOut holes (:class:`NonOverlappingCutout`:
``A.CoarseDropout`` places holes independently, so they may overlap) and aspect-ratio-bounded random erasing
(:class:`RandomErasing`, an ``A.Erasing``); holes are filled with the slides' mean colour, so that Normalize maps
them to about 0. These hole transforms shrink each box to the bounding box of its visible pixels (albumentations
2.0's own rule truncates boxes to whole pixels first and can keep a box many pixels wider than what is left of its
object, or drop one that is still visible). :func:`mixing` returns torchvision's
MixUp/CutMix for ``hrlib.train.fit(batch_transform=...)``. :func:`aligned` builds a Compose that moves boxes,
masks
and keypoints with the pixels, and :func:`alignment_error` measures, in pixels, how far a transformed box lies from
the box of the transformed mask (rotating a box can only enlarge it: see ``rotate_method``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from torchvision.transforms import v2

from hrlib._checks import check_bool as _check_flag
from hrlib._checks import check_float, check_int
from hrlib.data.slides import SLIDE_MEAN

__all__ = ["MIX_KINDS", "Alignment", "Cutout", "GridMask", "NonOverlappingCutout", "RandomErasing", "aligned",
           "alignment_error", "mean_fill", "mixing", "nonoverlapping_holes", "occlusion_policy"]

MIX_KINDS: tuple[str, ...] = ("mixup", "cutmix", "both")
Fill = float | tuple[float, ...]


def mean_fill(mean: Sequence[float] = SLIDE_MEAN) -> tuple[int, ...]:
    """The 0-255 fill colour of a per-channel ``mean`` in 0-1 units: holes in it normalise to about 0."""
    if isinstance(mean, str) or not isinstance(mean, Sequence) or len(mean) == 0 or not all(
            isinstance(m, int | float | np.integer | np.floating) and not isinstance(m, bool) and 0 <= m <= 1
            for m in mean):
        raise ValueError(f"mean must be per-channel floats in [0, 1], got {mean!r}")
    return tuple(round(255 * float(m)) for m in mean)


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
    rejection draws per hole); if that gets stuck, the holes go to random cells of a randomly offset grid of
    hole-sized cells. Raises ``ValueError`` when they cannot fit: at most ``(height // h) * (width // w)``
    translates of an ``h x w`` box fit without overlap. Returns an ``(num_holes, 4)`` int64 array.
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
        height, width = params["shape"][:2]
        num_holes = self.py_random.randint(*self.num_holes_range)
        heights, widths = self.calculate_hole_dimensions((height, width), self.hole_height_range,
                                                         self.hole_width_range, size=1)
        size = (max(1, int(heights[0])), max(1, int(widths[0])))
        holes = nonoverlapping_holes(height, width, num_holes, size, rng=self.random_generator)
        return {"holes": holes, "seed": self.random_generator.integers(0, 2**32 - 1)}


def _check_fill(fill: object) -> Fill:
    values = fill if isinstance(fill, Sequence) and not isinstance(fill, str) else (fill,)
    if len(values) == 0 or not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 255
                                   for v in values):
        raise ValueError(f"fill must be a number or per-channel numbers in [0, 255], got {fill!r}")
    return tuple(float(v) for v in values) if len(values) > 1 else float(values[0])


def occlusion_policy(resolution: int, *, gridmask: bool = True, cutout: bool = True, erasing: bool = True,
                     fill: Fill | None = None, strength: float = 1.0, p: float = 0.5,
                     max_aspect: float = 2.0) -> list[A.BasicTransform]:
    """The high-resolution fine-tune stage's local occlusion (C2), for images of ``resolution`` px.

    Each part runs with probability ``p``: GridMask (:class:`GridMask`, grid unit 8-16 % of the side, a square
    of ``0.3 * strength`` of the unit dropped), CutOut (:class:`NonOverlappingCutout`, 2-6 holes of
    ``(3-6 %) * strength`` of the side) and random erasing (:class:`RandomErasing`, ``(2-10 %) * strength`` of the area,
    aspect ratio within ``[1 / max_aspect, max_aspect]``). ``fill``: 0-255 colour, default the slides' mean
    (:func:`mean_fill`). ``strength`` in [0, 1]: 0 returns no transform (identity). Returns a list to put after
    the resize and before Normalize; no global geometry, so boxes and masks keep their place.
    """
    resolution = check_int("resolution", resolution, 8)
    strength = check_float("strength", strength, 0.0, 1.0)
    p = check_float("p", p, 0.0, 1.0)
    max_aspect = check_float("max_aspect", max_aspect, 1.0)
    gridmask, cutout, erasing = (_check_flag(n, v) for n, v in (("gridmask", gridmask), ("cutout", cutout),
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


class BatchMix:
    """``x, y = mix(x, y)`` on a training batch: NCHW float ``x``, (N,) int64 class ids ``y`` -> mixed ``x`` and
    (N, num_classes) soft labels whose rows sum to 1. Randomness from torch's global RNG (``fit`` seeds it)."""

    def __init__(self, transform: Callable[..., Any], kind: str, num_classes: int, alpha: float) -> None:
        self.transform, self.kind, self.num_classes, self.alpha = transform, kind, num_classes, alpha

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"x must be an NCHW float tensor, got {type(x).__name__} "
                             f"{getattr(x, 'dtype', '')} with shape {tuple(getattr(x, 'shape', ()))}")
        if not isinstance(y, torch.Tensor) or y.shape != (len(x),) or y.is_floating_point():
            raise ValueError(f"y must be an (N,) = ({len(x)},) integer tensor of class ids, got {type(y).__name__} "
                             f"{getattr(y, 'dtype', '')} with shape {tuple(getattr(y, 'shape', ()))}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"y must hold class ids in [0, {self.num_classes}), got {int(y.min())}..{int(y.max())}")
        return self.transform(x, y)

    def __repr__(self) -> str:
        return f"mixing({self.kind!r}, num_classes={self.num_classes}, alpha={self.alpha})"


def mixing(kind: str, num_classes: int, alpha: float = 1.0) -> BatchMix:
    """torchvision v2 MixUp (``"mixup"``), CutMix (``"cutmix"``) or one of them at random per batch (``"both"``)
    for ``hrlib.train.fit(batch_transform=...)``. ``num_classes`` (>= 2); ``alpha`` (> 0): the Beta(alpha, alpha)
    parameter of the mixing weight (1: uniform in [0, 1]). Deterministic under ``torch.manual_seed``."""
    if kind not in MIX_KINDS:
        raise ValueError(f"kind must be one of {MIX_KINDS}, got {kind!r}")
    num_classes = check_int("num_classes", num_classes, 2)
    alpha = check_float("alpha", alpha, 0.0, low_open=True)
    mixup, cutmix = v2.MixUp(alpha=alpha, num_classes=num_classes), v2.CutMix(alpha=alpha, num_classes=num_classes)
    transform = {"mixup": mixup, "cutmix": cutmix}.get(kind) or v2.RandomChoice([mixup, cutmix])
    return BatchMix(transform, kind, num_classes, alpha)


def aligned(transforms: Sequence[A.BasicTransform], *, boxes: bool = True, masks: bool = True,
            keypoints: bool = False, seed: int | None = None) -> A.Compose:
    """A Compose that moves boxes, masks and keypoints with the pixels.

    Call it as ``t(image=..., bboxes=(N, 4) x0 y0 x1 y1 px, box_labels=..., masks=[HxW, ...], keypoints=(K, 2)
    x y px, keypoint_labels=...)``. ``boxes``: pascal_voc boxes, clipped to the image, removed only when nothing is
    left (``box_labels`` tells which survived). ``masks``: masks are warped with nearest-neighbour interpolation, so
    they stay binary. ``keypoints``: ``xy`` keypoints (pixel centres at integers), removed when they leave the
    image; a reflecting border adds the mirrored copies that come into view (same label), as it does to the pixels
    and masks (boxes get no mirrored copy). ``seed``: the same seed gives the same sequence of outputs.
    """
    if isinstance(transforms, A.BasicTransform) or not isinstance(transforms, Sequence):
        transforms = [transforms]  # type: ignore[list-item]
    for i, t in enumerate(transforms):
        if not isinstance(t, A.BasicTransform | A.BaseCompose):
            raise TypeError(f"transforms[{i}] must be an albumentations transform, got {type(t).__name__}")
    seed = None if seed is None else check_int("seed", seed, 0)
    boxes, masks, keypoints = (_check_flag(n, v) for n, v in (("boxes", boxes), ("masks", masks),
                                                             ("keypoints", keypoints)))
    transforms = list(transforms) or [A.NoOp()]  # an empty Compose warns that no transform uses the boxes
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["box_labels"], min_visibility=0.0,
                               clip=True) if boxes else None
    keypoint_params = A.KeypointParams(format="xy", label_fields=["keypoint_labels"]) if keypoints else None
    return A.Compose(transforms, bbox_params=bbox_params, keypoint_params=keypoint_params, seed=seed,
                     mask_interpolation=cv2.INTER_NEAREST if masks else None)


@dataclass(frozen=True)
class Alignment:
    """What :func:`alignment_error` measured, one entry per object and draw, in the output's pixels.

    ``box_px``: max over the 4 coordinates of |transformed box - box of the transformed mask|. ``keypoint_px``:
    distance from the transformed keypoint to the centroid of the transformed 3x3 marker around it (skipped when
    either left the image). ``lost``: objects that left the image (box and mask both gone); ``mismatched``: only
    one of the two gone (a sliver: a box clipped to less than a pixel, or a bug)."""

    box_px: np.ndarray
    keypoint_px: np.ndarray
    lost: int
    mismatched: int

    def summary(self) -> dict[str, float]:
        """Mean and max of both errors (NaN when nothing was measured), and the two counts."""
        def stat(v: np.ndarray, f: Callable[[np.ndarray], Any]) -> float:
            return float(f(v)) if v.size else float("nan")
        return {"box_mean_px": stat(self.box_px, np.mean), "box_max_px": stat(self.box_px, np.max),
                "keypoint_max_px": stat(self.keypoint_px, np.max), "lost": self.lost, "mismatched": self.mismatched}


def _mask_box(m: np.ndarray) -> np.ndarray | None:
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    return None if rows.size == 0 else np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=float)


def _object_masks(name: str, mask: object, boxes: np.ndarray, height: int, width: int) -> list[np.ndarray]:
    """One uint8 mask per box: ``mask`` (N, H, W) as is, or an (H, W) mask cut to each box grown by 1 px."""
    arr = np.asarray(mask)
    if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
        raise ValueError(f"{name} must be a finite bool or numeric mask, got {arr.dtype} with shape {arr.shape}")
    if arr.shape == (len(boxes), height, width):
        return [m.astype(np.uint8) for m in arr]
    if arr.shape != (height, width):
        raise ValueError(f"{name} must be an (H, W) = ({height}, {width}) or (N, H, W) = ({len(boxes)}, {height}, "
                         f"{width}) mask, got shape {arr.shape}")
    out = []
    for x0, y0, x1, y1 in boxes:
        m = np.zeros((height, width), np.uint8)
        r0, c0 = max(0, int(y0) - 1), max(0, int(x0) - 1)
        m[r0:int(np.ceil(y1)) + 1, c0:int(np.ceil(x1)) + 1] = arr[r0:int(np.ceil(y1)) + 1, c0:int(np.ceil(x1)) + 1]
        out.append(m)
    return out


def alignment_error(image_size: int | tuple[int, int], boxes: np.ndarray, mask: np.ndarray,
                    transform: A.BasicTransform | Sequence[A.BasicTransform], *, repeats: int = 5,
                    seed: int = 0) -> Alignment:
    """Coordinate precision of a geometric ``transform`` on boxes, masks and keypoints (claim C5).

    ``image_size``: side or ``(height, width)`` in px (measure at full resolution). ``boxes``: (N, 4) ``x0, y0,
    x1, y1`` px of the objects; ``mask``: (H, W) bool mask of the objects (each object = the mask inside its box)
    or (N, H, W). Each of ``repeats`` draws (from ``seed``) runs ``transform`` through :func:`aligned` on boxes,
    object masks, and keypoints at the box centres with a 3x3 marker mask around each. Exact transforms (flips)
    give 0 for objects whose mask fills its box; warps add interpolation error (about a pixel), and rotating a
    box by ``rotate_method="largest_box"`` encloses the rotated box, which is larger than the rotated object.
    """
    if isinstance(image_size, int | np.integer) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if not (isinstance(image_size, Sequence | np.ndarray) and not isinstance(image_size, str) and len(image_size) == 2):
        raise TypeError(f"image_size must be an int or (height, width), got {type(image_size).__name__} "
                        f"{image_size!r}")
    height, width = check_int("image_size height", image_size[0]), check_int("image_size width", image_size[1])
    try:
        boxes = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        boxes = np.full((0,), np.nan)  # rejected below
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0 or not np.isfinite(boxes).all():
        raise ValueError(f"boxes must be a non-empty finite (N, 4) array of x0, y0, x1, y1 px, got shape {boxes.shape}")
    repeats = check_int("repeats", repeats)
    objects = _object_masks("mask", mask, boxes, height, width)
    centres = np.rint((boxes[:, :2] + boxes[:, 2:]) / 2 - 0.5).clip(1, [width - 2, height - 2])
    markers = []
    for cx, cy in centres.astype(int):
        m = np.zeros((height, width), np.uint8)
        m[cy - 1:cy + 2, cx - 1:cx + 2] = 1
        markers.append(m)
    pipeline = aligned(transform, keypoints=True, seed=check_int("seed", seed, 0))  # type: ignore[arg-type]
    image, n = np.zeros((height, width), np.uint8), len(boxes)
    box_err, kp_err, lost, mismatched = [], [], 0, 0
    for _ in range(repeats):
        out = pipeline(image=image, bboxes=boxes.astype(np.float32), box_labels=list(range(n)),
                       masks=objects + markers, keypoints=centres, keypoint_labels=list(range(n)))
        kept = {int(label): np.asarray(b, dtype=float) for label, b in zip(out["box_labels"], out["bboxes"],
                                                                            strict=True)}
        for i in range(n):
            seen = _mask_box(np.asarray(out["masks"][i]))
            if seen is None or i not in kept:
                lost += seen is None and i not in kept
                mismatched += (seen is None) != (i not in kept)
                continue
            box_err.append(np.abs(kept[i] - seen).max())
            ys, xs = np.nonzero(np.asarray(out["masks"][n + i]))
            copies = np.array([k for k, label in zip(out["keypoints"], out["keypoint_labels"], strict=True)
                               if label == i]).reshape(-1, 2)
            if xs.size and len(copies):  # the copy nearest the marker's centroid (reflection adds mirrored copies)
                kp_err.append(float(np.hypot(copies[:, 0] - xs.mean(), copies[:, 1] - ys.mean()).min()))
    return Alignment(np.asarray(box_err), np.asarray(kp_err), lost, mismatched)
