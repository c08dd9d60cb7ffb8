"""Reading a heatmap (lesson 07): overlays on the images, and scores against ground-truth boxes.

:func:`overlay` and :func:`show_cams` draw maps from ``hrlib.analysis.cam`` on the images; :func:`pointing_game`,
:func:`energy_in_boxes` and :func:`score_cams` check them against the slides' ``boxes``
(``x0, y0, x1, y1`` pixels; pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``, so its centre is
``(col + 0.5, row + 0.5)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import matplotlib
import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from hrlib._checks import check_float, check_image, check_int
from hrlib.viz import draw_boxes

__all__ = ["CamScores", "energy_in_boxes", "overlay", "pointing_game", "score_cams", "show_cams"]


def _as_float_array(name: str, value: object, what: str) -> np.ndarray:
    try:
        return np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r:.60}") from exc


def _check_map(name: str, cam: object) -> np.ndarray:
    arr = _as_float_array(name, cam, "an (H, W) array of finite values >= 0")
    if arr.ndim != 2 or arr.size == 0 or not np.isfinite(arr).all() or arr.min() < 0:
        raise ValueError(f"{name} must be a non-empty (H, W) map of finite values >= 0, got shape {arr.shape}, "
                         f"min {np.nanmin(arr) if arr.size else None}")
    return arr


def _check_boxes(name: str, boxes: object) -> np.ndarray:
    """(M, 4) float64 ``x0, y0, x1, y1`` boxes; None or empty -> (0, 4)."""
    if boxes is None:
        return np.zeros((0, 4))
    arr = _as_float_array(name, boxes, "an (M, 4) array of x0, y0, x1, y1 boxes or None")
    arr = arr.reshape(0, 4) if arr.size == 0 else arr
    if arr.ndim != 2 or arr.shape[1] != 4 or not np.isfinite(arr).all() or (arr[:, 2:] < arr[:, :2]).any():
        raise ValueError(f"{name} must be (M, 4) finite x0, y0, x1, y1 boxes with x1 >= x0 and y1 >= y0, got "
                         f"shape {arr.shape}: {arr.tolist()}")
    return arr


def pointing_game(cam: np.ndarray, boxes: np.ndarray | None, tolerance: float = 15.0) -> bool | None:
    """Does the map's maximum fall within ``tolerance`` px of a ground-truth box? (Zhang et al. 2016.)

    Args:
        cam: (H, W) map >= 0 in the boxes' pixel coordinates; its maximum is the first one in row-major order,
            taken at the pixel centre; a flat map (max == min) points nowhere and is a miss.
        boxes: (M, 4) ``x0, y0, x1, y1`` px, or None.
        tolerance: Euclidean distance in px (>= 0) from the point to the nearest box (the box grown by a disk, as
            in TorchRay); 15 px is the standard at ImageNet's ~224 px, so scale it: ``15 * side / 224``.

    Returns:
        Whether it is a hit; None when there are no boxes (the sample is not scored).

    Raises:
        TypeError, ValueError: a malformed map, boxes or tolerance.
    """
    arr, boxes = _check_map("cam", cam), _check_boxes("boxes", boxes)
    return _pointing(arr, boxes, check_float("tolerance", tolerance, 0.0, hint="pixels"))


def _pointing(arr: np.ndarray, boxes: np.ndarray, tolerance: float) -> bool | None:
    if len(boxes) == 0:
        return None
    if arr.max() <= arr.min():
        return False
    row, col = np.unravel_index(int(np.argmax(arr)), arr.shape)
    px, py = col + 0.5, row + 0.5
    dx = np.maximum(np.maximum(boxes[:, 0] - px, px - boxes[:, 2]), 0.0)
    dy = np.maximum(np.maximum(boxes[:, 1] - py, py - boxes[:, 3]), 0.0)
    return bool((np.hypot(dx, dy) <= tolerance).any())


def energy_in_boxes(cam: np.ndarray, boxes: np.ndarray | None) -> float | None:
    """Share of the map's total (sum over pixels) on pixels whose centre lies in the union of ``boxes``.

    Args:
        cam: (H, W) map >= 0.
        boxes: (M, 4) ``x0, y0, x1, y1`` px, or None.

    Returns:
        The share, 0-1 (an all-zero map scores 0.0: no energy on the evidence); None when there are no boxes.

    Raises:
        TypeError, ValueError: a malformed map or boxes.
    """
    return _energy(_check_map("cam", cam), _check_boxes("boxes", boxes))


def _energy(arr: np.ndarray, boxes: np.ndarray) -> float | None:
    if len(boxes) == 0:
        return None
    total = arr.sum()
    if total <= 0:
        return 0.0
    ys, xs = np.arange(arr.shape[0]) + 0.5, np.arange(arr.shape[1]) + 0.5
    inside = np.zeros(arr.shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        inside |= ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
    return float(arr[inside].sum() / total)


@dataclass(frozen=True)
class CamScores:
    """:func:`score_cams` of a batch.

    Args:
        hit_rate: pointing-game hits / scored samples (NaN if none).
        energy_share: mean :func:`energy_in_boxes` over scored samples (NaN if none).
        n_scored: samples with boxes.
        n: all samples.
        hits: per sample, as :func:`pointing_game` (None where not scored).
        energies: per sample, as :func:`energy_in_boxes` (None where not scored).
    """

    hit_rate: float
    energy_share: float
    n_scored: int
    n: int
    hits: tuple[bool | None, ...]
    energies: tuple[float | None, ...]


def score_cams(cams: np.ndarray | Sequence[np.ndarray], boxes_list: Sequence[np.ndarray | None],
               tolerance: float = 15.0) -> CamScores:
    """Pointing game and energy share of every map.

    Args:
        cams: (N, H, W) array or N (H, W) maps >= 0.
        boxes_list: one (M, 4) box array per map (None or empty: not scored).
        tolerance: as in :func:`pointing_game`, px.

    Returns:
        The scores, per sample and summarised.

    Raises:
        TypeError, ValueError: malformed maps, boxes or tolerance, or not one box array per map.
    """
    _check_sequence("cams", cams, "an (N, H, W) array or a sequence of (H, W) maps")
    _check_sequence("boxes_list", boxes_list, "a sequence of one (M, 4) box array (or None) per map")
    if len(cams) != len(boxes_list):
        raise ValueError(f"boxes_list must have one entry per map of cams ({len(cams)}), got {len(boxes_list)}")
    tolerance = check_float("tolerance", tolerance, 0.0, hint="pixels")
    maps = [_check_map(f"cams[{i}]", c) for i, c in enumerate(cams)]
    boxes = [_check_boxes(f"boxes_list[{i}]", b) for i, b in enumerate(boxes_list)]
    hits = tuple(_pointing(c, b, tolerance) for c, b in zip(maps, boxes, strict=True))
    energies = tuple(_energy(c, b) for c, b in zip(maps, boxes, strict=True))
    scored = [(h, e) for h, e in zip(hits, energies, strict=True) if h is not None]
    hit_rate = float(np.mean([h for h, _ in scored])) if scored else float("nan")
    energy = float(np.mean([e for _, e in scored])) if scored else float("nan")
    return CamScores(hit_rate, energy, len(scored), len(hits), hits, energies)


def _check_sequence(name: str, value: object, what: str) -> None:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray | torch.Tensor):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r:.60}")


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap over an image for display: ``(1 - alpha) * image + alpha * cmap(cam)``.

    Args:
        image: (H, W, 3) or (H, W) uint8.
        cam: (h, w) map in [0, 1] (clipped; resized bilinearly to the image if its size differs).
        alpha: the heatmap's weight, in [0, 1].
        cmap: a matplotlib colormap name.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        TypeError, ValueError: a malformed image or map, ``alpha`` out of range, an unknown ``cmap``.
    """
    image, arr = check_image("image", image, channels=(3,)), _check_map("cam", cam)
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}")
    rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
    if arr.shape != rgb.shape[:2]:
        arr = cv2.resize(arr.astype(np.float32), rgb.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    heat = matplotlib.colormaps[cmap](np.clip(arr, 0.0, 1.0))[..., :3] * 255.0
    return np.rint((1.0 - alpha) * rgb + alpha * heat).clip(0, 255).astype(np.uint8)


def show_cams(images: Sequence[np.ndarray], cams: np.ndarray | Sequence[np.ndarray],
              titles: Sequence[str] | None = None, *, boxes: Sequence[np.ndarray | None] | None = None,
              ncols: int = 4, alpha: float = 0.45, cmap: str = "jet", size: float = 3.0) -> Figure:
    """A grid of :func:`overlay` s with titles, optional ground-truth boxes (lime) and one colorbar.

    Args:
        images: (H, W, 3) or (H, W) uint8 images.
        cams: one (h, w) map in [0, 1] per image.
        titles: one per image, or None.
        boxes: one (M, 4) ``x0, y0, x1, y1`` px box array (or None) per image, or None.
        ncols: panels per row, >= 1.
        alpha, cmap: as in :func:`overlay`.
        size: inches per panel, > 0.

    Returns:
        The figure.

    Raises:
        TypeError, ValueError: a malformed argument, or not one map, title and box array per image.
    """
    import matplotlib.pyplot as plt

    _check_sequence("images", images, "a sequence of uint8 images")
    _check_sequence("cams", cams, "one (H, W) map per image")
    if titles is not None and (isinstance(titles, str) or not isinstance(titles, Sequence)
                               or not all(isinstance(t, str) for t in titles)):
        raise TypeError(f"titles must be a sequence of str (one per image) or None, got {titles!r:.60}")
    if boxes is not None:
        _check_sequence("boxes", boxes, "one (M, 4) box array (or None) per image, or None")
    n, ncols = len(images), check_int("ncols", ncols)
    size = check_float("size", size, 0.0, low_open=True, hint="inches per panel")
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}")
    if len(cams) != n or (titles is not None and len(titles) != n) or (boxes is not None and len(boxes) != n):
        raise ValueError(f"cams, titles and boxes must have one entry per image of images ({n}), got {len(cams)}, "
                         f"{None if titles is None else len(titles)}, {None if boxes is None else len(boxes)}")
    for i in range(n):
        check_image(f"images[{i}]", images[i], channels=(3,))
        _check_map(f"cams[{i}]", cams[i])
        if boxes is not None:
            _check_boxes(f"boxes[{i}]", boxes[i])
    ncols = min(ncols, max(n, 1))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.6, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(overlay(images[i], cams[i], alpha, cmap))
        if boxes is not None and boxes[i] is not None:
            draw_boxes(ax, _check_boxes(f"boxes[{i}]", boxes[i]))
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap), ax=axes.ravel().tolist(), fraction=0.03)
    bar.set_label("CAM (0 = none, 1 = peak)")
    return fig
