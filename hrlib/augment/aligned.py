"""Label-aligned augmentation for lesson 02 (claim C5): boxes, masks and keypoints that move with the pixels, and
how precisely they do.

:func:`aligned` builds an albumentations Compose that moves boxes, masks and keypoints with the pixels;
:func:`alignment_error` measures, in pixels, how far a transformed box lies from the box of the transformed mask
(rotating a box can only enlarge it: see ``rotate_method``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np

from hrlib._checks import check_bool, check_int

__all__ = ["Alignment", "aligned", "alignment_error"]


def aligned(transforms: Sequence[A.BasicTransform], *, boxes: bool = True, masks: bool = True,
            keypoints: bool = False, seed: int | None = None) -> A.Compose:
    """A Compose that moves boxes, masks and keypoints with the pixels.

    Call it as ``t(image=..., bboxes=(N, 4) x0 y0 x1 y1 px, box_labels=..., masks=[HxW, ...], keypoints=(K, 2)
    x y px, keypoint_labels=...)``.

    Args:
        transforms: albumentations transforms (or one).
        boxes: pascal_voc boxes, clipped to the image, removed only when nothing is left (``box_labels`` tells
            which survived).
        masks: masks are warped with nearest-neighbour interpolation, so they stay binary.
        keypoints: ``xy`` keypoints (pixel centres at integers), removed when they leave the image; a reflecting
            border adds the mirrored copies that come into view (same label), as it does to the pixels and masks
            (boxes get no mirrored copy).
        seed: the same seed gives the same sequence of outputs (>= 0; None: unseeded).

    Returns:
        The albumentations ``Compose``.
    """
    if isinstance(transforms, A.BasicTransform) or not isinstance(transforms, Sequence):
        transforms = [transforms]  # type: ignore[list-item]
    for i, t in enumerate(transforms):
        if not isinstance(t, A.BasicTransform | A.BaseCompose):
            raise TypeError(f"transforms[{i}] must be an albumentations transform, got {type(t).__name__}")
    seed = None if seed is None else check_int("seed", seed, 0)
    boxes, masks, keypoints = (check_bool(n, v) for n, v in (("boxes", boxes), ("masks", masks),
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

    Attributes:
        box_px: max over the 4 coordinates of |transformed box - box of the transformed mask|.
        keypoint_px: distance from the transformed keypoint to the centroid of the transformed 3x3 marker around
            it (skipped when either left the image).
        lost: objects that left the image (box and mask both gone).
        mismatched: only one of the two gone (a sliver: a box clipped to less than a pixel, or a bug).
    """

    box_px: np.ndarray
    keypoint_px: np.ndarray
    lost: int
    mismatched: int

    def summary(self) -> dict[str, float]:
        """Mean and max of both errors (NaN when nothing was measured), and the two counts.

        Returns:
            ``{"box_mean_px", "box_max_px", "keypoint_max_px", "lost", "mismatched"}``.
        """
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


def _markers(centres: np.ndarray, height: int, width: int) -> list[np.ndarray]:
    """A uint8 mask with a 3x3 marker around each (column, row) centre."""
    out = []
    for cx, cy in centres:
        m = np.zeros((height, width), np.uint8)
        m[cy - 1:cy + 2, cx - 1:cx + 2] = 1
        out.append(m)
    return out


def alignment_error(image_size: int | tuple[int, int], boxes: np.ndarray, mask: np.ndarray,
                    transform: A.BasicTransform | Sequence[A.BasicTransform], *, repeats: int = 5,
                    seed: int = 0) -> Alignment:
    """Coordinate precision of a geometric ``transform`` on boxes, masks and keypoints (claim C5).

    Each draw runs ``transform`` through :func:`aligned` on boxes, object masks, and keypoints at the box centres
    with a 3x3 marker mask around each. Exact transforms (flips) give 0 for objects whose mask fills its box; warps
    add interpolation error (about a pixel), and rotating a box by ``rotate_method="largest_box"`` encloses the
    rotated box, which is larger than the rotated object.

    Args:
        image_size: side or ``(height, width)`` in px (measure at full resolution).
        boxes: (N, 4) ``x0, y0, x1, y1`` px of the objects.
        mask: (H, W) bool mask of the objects (each object = the mask inside its box), or (N, H, W).
        transform: an albumentations transform or a sequence of them.
        repeats: draws (>= 1).
        seed: seeds the draws (>= 0).

    Returns:
        An :class:`Alignment`.
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
    markers = _markers(centres.astype(int), height, width)
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
