"""CAM-guided crops for an unlabeled target domain (lesson 04, claim C28): crop where the source model sees its class.

:func:`cam_crops` pseudo-labels each target image with the source model (eval mode), skips images whose softmax
confidence is below ``min_confidence``, finds the top-k peaks of the class-activation map of the pseudo-label
(non-maximum suppressed: peaks at least ``min_distance`` apart, ``skimage.feature.peak_local_max``), and cuts one
square crop per peak, of side ``uniform(scale) * min(H, W)``, centred on the peak and shifted to stay inside the image.
The crops (with their pseudo-labels) are extra training data that keeps the evidence and drops background.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from skimage.feature import peak_local_max
from torch import nn

from hrlib._checks import check_float, check_image, check_int, check_model
from hrlib.analysis.cam import grad_cam
from hrlib.models import eval_mode

__all__ = ["CamCrop", "cam_crops", "crop_box", "find_peaks"]

CamFn = Callable[..., np.ndarray]  # cam_fn(model, x, class_idx) -> (N, h, w) maps >= 0


@dataclass(frozen=True)
class CamCrop:
    """One crop, as :func:`cam_crops` returns it.

    Attributes:
        image_index: index into the input images.
        label, confidence: the pseudo-label and its softmax probability.
        box: float32 ``x0, y0, x1, y1`` in pixels of the image.
        crop: HxWxC, the image's dtype.
        peak: ``x, y`` in pixels of the CAM peak it was centred on.
    """

    image_index: int
    label: int
    confidence: float
    box: np.ndarray
    crop: np.ndarray
    peak: tuple[float, float]


def find_peaks(cam: np.ndarray, k: int, min_distance: int) -> np.ndarray:
    """The strongest local maxima of a class-activation map with value > 0, strongest first.

    Args:
        cam: a non-empty finite (h, w) map.
        k: the most peaks returned, >= 1.
        min_distance: the least distance between peaks in pixels (Chebyshev), >= 1.

    Returns:
        An (n, 2) int64 array of ``(row, col)``, n <= k (0 for a map without a positive value).
    """
    try:
        cam = np.asarray(cam, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cam must be a non-empty finite (h, w) map, got {type(cam).__name__} {cam!r:.60}") from exc
    if cam.ndim != 2 or cam.size == 0 or not np.isfinite(cam).all():
        raise ValueError(f"cam must be a non-empty finite (h, w) map, got shape {cam.shape}")
    k, min_distance = check_int("k", k), check_int("min_distance", min_distance)
    if cam.max() <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    # threshold_abs > 0: a zero map has no peak; ties broken by peak_local_max's stable order (row-major)
    return peak_local_max(cam, min_distance=min_distance, threshold_abs=cam.max() * 1e-6, num_peaks=k,
                          exclude_border=False).astype(np.int64)


def crop_box(cx: float, cy: float, side: int, width: int, height: int) -> np.ndarray:
    """An integer square box centred on a point, shifted to lie inside the image.

    Args:
        cx, cy: the centre in pixels.
        side: the box side in pixels, >= 1 (capped at ``min(width, height)``).
        width, height: the image size in pixels, >= 1.

    Returns:
        float32 ``x0, y0, x1, y1``.
    """
    side = min(check_int("side", side), check_int("width", width), check_int("height", height))
    cx, cy = check_float("cx", cx, hint="px"), check_float("cy", cy, hint="px")
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    return np.array([x0, y0, x0 + side, y0 + side], dtype=np.float32)


def _check_scale(scale: object) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in scale)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        lo, hi = np.nan, np.nan
    if not (0 < lo <= hi <= 1):
        raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1 (crop side / image side), got {scale!r}")
    return lo, hi


def cam_crops(model: nn.Module, images: Sequence[np.ndarray], transform: Callable[..., dict[str, Any]], *,
              k: int = 2, scale: tuple[float, float] = (0.7, 1.0), min_confidence: float = 0.6,
              min_distance: float = 0.25, seed: int = 0, cam_fn: CamFn = grad_cam,
              batch_size: int = 16) -> list[CamCrop]:
    """Crops around the CAM peaks of the source ``model``'s pseudo-labels on unlabeled ``images``.

    Args:
        model: the source classifier, in eval mode for the pseudo-labels and cam_fn (each module's mode restored).
        images: HxWxC arrays (sizes may differ); crops are cut from these, at their own resolution.
        transform: the deterministic eval transform, ``transform(image=image)["image"]`` -> CHW float tensor. It
            must resize the whole image (no crop or pad): CAM coordinates are scaled back to the image's.
        k: peaks (crops) per image, >= 1; fewer when the CAM has fewer peaks (an all-zero CAM gives none).
        scale: ``(low, high)`` range of crop side / ``min(H, W)``, with ``0 < low <= high <= 1``.
        min_confidence: images whose top softmax probability is below this (in [0, 1]) are skipped.
        min_distance: minimum peak distance as a fraction of the CAM's side, in (0, 1] (non-maximum suppression).
        seed: fixes the crop sides (one ``uniform(scale)`` per crop, in order).
        cam_fn: ``cam_fn(model, x, class_idx)`` -> (N, h, w) maps >= 0; default :func:`hrlib.analysis.cam.grad_cam`.
        batch_size: images per forward pass, >= 1.

    Returns:
        ``CamCrop`` list, by image then by peak strength.
    """
    check_model("model", model)
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a sequence of HxWxC arrays, got {type(images).__name__}")
    for i, im in enumerate(images):
        check_image(f"images[{i}]", im, channels=None, gray=False, dtype="numeric")
    if not callable(transform) or not callable(cam_fn):
        raise TypeError(f"transform and cam_fn must be callable, got {type(transform).__name__} and "
                        f"{type(cam_fn).__name__}")
    k, batch_size = check_int("k", k), check_int("batch_size", batch_size)
    lo, hi = _check_scale(scale)
    min_confidence = check_float("min_confidence", min_confidence, 0.0, 1.0)
    min_distance = check_float("min_distance", min_distance, 0.0, 1.0, low_open=True, hint="fraction of the side")
    rng = np.random.default_rng(check_int("seed", seed, 0))
    with eval_mode(model):
        return _crops(model, images, transform, k, (lo, hi), min_confidence, min_distance, rng, cam_fn, batch_size)


def _transformed(transform: Callable[..., dict[str, Any]], image: np.ndarray, i: int) -> torch.Tensor:
    out = transform(image=image)
    x = out.get("image") if isinstance(out, Mapping) else None
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or not x.is_floating_point():
        raise TypeError(f"transform must return {{'image': CHW float tensor}} (e.g. end in ToTensorV2), got "
                        f"{type(x).__name__ if x is not None else type(out).__name__} for images[{i}]")
    return x


def _crops(model: nn.Module, images: Sequence[np.ndarray], transform: Callable[..., dict[str, Any]], k: int,
           scale: tuple[float, float], min_confidence: float, min_distance: float, rng: np.random.Generator,
           cam_fn: CamFn, batch_size: int) -> list[CamCrop]:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    out: list[CamCrop] = []
    for start in range(0, len(images), batch_size):
        idx = list(range(start, min(start + batch_size, len(images))))
        x = torch.stack([_transformed(transform, images[i], i) for i in idx]).to(device)
        with torch.no_grad():
            probs = model(x).float().softmax(1).cpu()
        conf, labels = probs.max(1)
        keep = [j for j in range(len(idx)) if conf[j] >= min_confidence]
        if not keep:
            continue
        cams = np.asarray(cam_fn(model, x[keep], labels[keep].to(device)))
        if cams.ndim != 3 or cams.shape[0] != len(keep):
            raise ValueError(f"cam_fn must return ({len(keep)}, h, w) maps, got shape {cams.shape}")
        for cam, j in zip(cams, keep, strict=True):
            image = images[idx[j]]
            (height, width), (h, w) = image.shape[:2], cam.shape
            for row, col in find_peaks(cam, k, max(1, round(min_distance * min(h, w)))):
                cx, cy = (col + 0.5) * width / w, (row + 0.5) * height / h
                side = max(1, round(rng.uniform(*scale) * min(height, width)))
                box = crop_box(cx, cy, side, width, height)
                x0, y0, x1, y1 = box.astype(int)
                out.append(CamCrop(idx[j], int(labels[j]), float(conf[j]), box, image[y0:y1, x0:x1].copy(),
                                   (float(cx), float(cy))))
    return out
