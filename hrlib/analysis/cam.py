"""Where a classifier looks: Grad-CAM and Score-CAM heatmaps, overlays, and scores against ground-truth boxes.

:func:`grad_cam` and :func:`score_cam` turn a batch ``x`` into (N, H, W) maps in [0, 1]; :func:`overlay` and
:func:`show_cams` draw them on the images; :func:`pointing_game`, :func:`energy_in_boxes` and :func:`score_cams`
check them against the slides' ``boxes`` (``x0, y0, x1, y1`` pixels; pixel ``(row, col)`` covers
``[col, col + 1) x [row, row + 1)``, so its centre is ``(col + 0.5, row + 0.5)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import nn

from hrlib._checks import check_float, check_int
from hrlib.viz import draw_boxes

__all__ = ["CamScores", "energy_in_boxes", "grad_cam", "overlay", "pointing_game", "score_cam", "score_cams",
           "show_cams"]

ClassIndex = int | Sequence[int] | np.ndarray | torch.Tensor | None


def _check_inputs(model: object, x: object, layer: object) -> tuple[nn.Module, torch.Tensor, nn.Module]:
    """Validate ``model``, ``x`` (N, C, H, W float) and resolve ``layer`` (default ``model.cam_layer``)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point() or x.shape[0] == 0:
        raise ValueError(f"x must be a float tensor (N, C, H, W) with N >= 1, got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')} with shape {tuple(getattr(x, 'shape', ()))}")
    if not torch.isfinite(x).all():
        raise ValueError("x must hold finite values, got NaN or inf")
    if layer is None:
        layer = getattr(model, "cam_layer", None)
        if layer is None:
            raise ValueError(f"layer must be given: {type(model).__name__} has no cam_layer property")
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module inside model, got {type(layer).__name__}")
    if not any(m is layer for m in model.modules()):
        raise ValueError(f"layer must be a submodule of model, got a {type(layer).__name__} that is not in it")
    return model, x, layer


def _class_indices(class_idx: ClassIndex, logits: torch.Tensor) -> torch.Tensor:
    """(N,) int64 class per sample: ``class_idx`` (one int for all, or one per sample) or the predicted class."""
    n, k = logits.shape
    if class_idx is None:
        return logits.argmax(1)
    if isinstance(class_idx, int | np.integer) and not isinstance(class_idx, bool):
        idx = torch.full((n,), int(class_idx), dtype=torch.int64)
    else:
        arr = np.asarray(class_idx.cpu() if isinstance(class_idx, torch.Tensor) else class_idx)
        if arr.shape != (n,) or arr.dtype.kind not in "iu":
            raise ValueError(f"class_idx must be None, an int or {n} ints (one per sample), got {class_idx!r}")
        idx = torch.as_tensor(arr, dtype=torch.int64)
    if idx.min() < 0 or idx.max() >= k:
        raise ValueError(f"class_idx must be in [0, {k}) (the model's {k} logits), got {idx.tolist()}")
    return idx.to(logits.device)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Every module in eval mode inside, each module's own train/eval mode restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


class _Capture:
    """Forward hook that keeps ``layer``'s output (removed on exit, even after an error).

    With ``grad`` the kept tensor requires grad, and the model continues with a copy, so an in-place op after
    the layer (``ReLU(inplace=True)``) cannot change it.
    """

    def __init__(self, layer: nn.Module, grad: bool) -> None:
        self.layer, self.grad, self.calls = layer, grad, 0
        self.activation: torch.Tensor | None = None

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise ValueError(f"layer must output a (N, C, h, w) feature map, got {type(output).__name__} with "
                             f"shape {tuple(getattr(output, 'shape', ()))}")
        self.calls += 1
        if not self.grad:
            self.activation = output
            return output
        self.activation = output if output.requires_grad else output.detach().requires_grad_(True)
        return self.activation.clone()

    def __enter__(self) -> _Capture:
        self.handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()

    def result(self) -> torch.Tensor:
        if self.calls != 1 or self.activation is None:
            raise ValueError(f"layer must run exactly once in model's forward, it ran {self.calls} times")
        return self.activation


def _finish(cam: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) non-negative maps -> (N, H, W) float32, bilinear to ``size``, each divided by its maximum."""
    cam = F.interpolate(cam[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0].clamp(min=0)
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp(min=torch.finfo(cam.dtype).tiny), 0.0).cpu().numpy()


def grad_cam(model: nn.Module, x: torch.Tensor, class_idx: ClassIndex = None, *,
             layer: nn.Module | None = None) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) of ``layer`` for a batch.

    Channel weights are the spatial mean of d(class logit) / d(activation); the map is ``ReLU(sum_k w_k A_k)``.
    ``model``: classifier, run in eval mode (each module's mode is restored; parameters' ``.grad`` untouched);
    ``x``: (N, C, H, W) float batch; ``class_idx``: class to explain, one int or one per sample (default: the
    predicted class); ``layer``: a module of ``model`` that outputs (N, K, h, w), default ``model.cam_layer``.
    Returns (N, H, W) float32: upsampled (bilinear) to the input size and divided by each map's maximum, so in
    [0, 1] with 1 at the peak; a map with no positive value (no evidence for the class anywhere) stays all zero.
    """
    model, x, layer = _check_inputs(model, x, layer)
    with _eval_mode(model), torch.enable_grad():
        with _Capture(layer, grad=True) as capture:
            logits = model(x)
        activation = capture.result()
        score = logits.gather(1, _class_indices(class_idx, logits)[:, None]).sum()
        (grads,) = torch.autograd.grad(score, activation, allow_unused=True)
    if grads is None:
        raise ValueError(f"layer must influence the logits; the {type(layer).__name__} given does not")
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return _finish(torch.relu((weights * activation.detach()).sum(1)), tuple(x.shape[-2:]))


def score_cam(model: nn.Module, x: torch.Tensor, class_idx: ClassIndex = None, *, layer: nn.Module | None = None,
              batch_size: int = 32, top_k: int | None = None) -> np.ndarray:
    """Score-CAM (Wang et al. 2020) of ``layer``: gradient-free, one forward pass per channel.

    Each channel's activation, upsampled and min-max scaled to [0, 1], masks the input (masked pixels become 0,
    the normalised mean colour); the softmax probability of the class on that masked input is the channel's
    weight; the map is ``ReLU(sum_k w_k A_k)``. A constant channel carries no location and gets weight 0.
    ``batch_size`` (>= 1): masked inputs per forward pass. ``top_k`` (>= 1): keep only the k channels with the
    largest mean activation per sample (about k / K of the cost; the weakest channels add little to the map).
    Other arguments and the returned maps as in :func:`grad_cam`; parameters and their ``.grad`` are untouched.
    """
    model, x, layer = _check_inputs(model, x, layer)
    batch_size = check_int("batch_size", batch_size)
    top_k = None if top_k is None else check_int("top_k", top_k)
    size = tuple(x.shape[-2:])
    with torch.no_grad(), _eval_mode(model):
        with _Capture(layer, grad=False) as capture:
            logits = model(x)
        acts, idx = capture.result(), _class_indices(class_idx, logits)
        n, k = acts.shape[:2]
        channels = acts.mean(dim=(2, 3)).topk(k if top_k is None else min(top_k, k), dim=1).indices  # (N, k')
        chosen = acts.gather(1, channels[:, :, None, None].expand(-1, -1, *acts.shape[2:]))  # (N, k', h, w)
        flat, sample = chosen.flatten(0, 1), torch.arange(n, device=x.device).repeat_interleave(channels.shape[1])
        weights = torch.zeros(flat.shape[0], device=x.device)
        for start in range(0, flat.shape[0], batch_size):
            part = slice(start, start + batch_size)
            masks = F.interpolate(flat[part, None].float(), size=size, mode="bilinear", align_corners=False)
            lo, hi = masks.amin(dim=(2, 3), keepdim=True), masks.amax(dim=(2, 3), keepdim=True)
            masks = torch.where(hi > lo, (masks - lo) / (hi - lo).clamp(min=1e-12), 0.0)
            probs = model(x[sample[part]] * masks.to(x.dtype)).float().softmax(1)
            score = probs.gather(1, idx[sample[part]][:, None])[:, 0]
            weights[part] = torch.where(hi.flatten() > lo.flatten(), score, 0.0)
        cam = (weights.view(n, -1, 1, 1) * chosen.float()).sum(1)
    return _finish(torch.relu(cam), size)


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

    ``cam``: (H, W) map >= 0 in the boxes' pixel coordinates; its maximum is the first one in row-major order,
    taken at the pixel centre; a flat map (max == min) points nowhere and is a miss. ``boxes``: (M, 4)
    ``x0, y0, x1, y1``. ``tolerance`` (>= 0): Euclidean distance in px from the point to the nearest box (the box
    grown by a disk, as in TorchRay); 15 px is the standard at ImageNet's ~224 px, so scale it with the image:
    ``15 * side / 224``, about 4 px at 64 px. Returns None when there are no boxes (the sample is not scored).
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
    """Share (0-1) of the map's total (sum over pixels) on pixels whose centre lies in the union of ``boxes``.

    ``cam``: (H, W) map >= 0; ``boxes``: (M, 4) ``x0, y0, x1, y1`` px. An all-zero map scores 0.0 (it puts no
    energy on the evidence); None when there are no boxes (not scored).
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
    """:func:`score_cams` of a batch: ``hit_rate`` (pointing-game hits / scored, NaN if none), ``energy_share``
    (mean :func:`energy_in_boxes`, NaN if none), ``n_scored`` (samples with boxes) of ``n`` samples, and the
    per-sample ``hits`` and ``energies`` (None where not scored)."""

    hit_rate: float
    energy_share: float
    n_scored: int
    n: int
    hits: tuple[bool | None, ...]
    energies: tuple[float | None, ...]


def score_cams(cams: np.ndarray | Sequence[np.ndarray], boxes_list: Sequence[np.ndarray | None],
               tolerance: float = 15.0) -> CamScores:
    """Pointing game and energy share of every map: ``cams`` (N, H, W) or N maps, ``boxes_list`` one (M, 4) box
    array (or None / empty: not scored) per map, ``tolerance`` as in :func:`pointing_game`."""
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


def _check_image(name: str, image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{name} must be a non-empty (H, W, 3) or (H, W) uint8 array, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} with shape {getattr(image, 'shape', None)}")
    return image


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap over an image for display: ``(1 - alpha) * image + alpha * cmap(cam)``.

    ``image``: (H, W, 3) or (H, W) uint8; ``cam``: (h, w) map in [0, 1] (clipped; resized bilinearly to the image
    if its size differs); ``alpha``: heatmap weight in [0, 1]; ``cmap``: a matplotlib colormap name.
    Returns (H, W, 3) uint8 RGB.
    """
    image, arr = _check_image("image", image), _check_map("cam", cam)
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
    """A grid of :func:`overlay` s with titles, optional ground-truth ``boxes`` (lime) and one colorbar.

    ``images``: uint8 images; ``cams``: one map per image; ``ncols`` (>= 1): panels per row; ``size``: inches
    per panel. Returns the figure.
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
        _check_image(f"images[{i}]", images[i])
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
