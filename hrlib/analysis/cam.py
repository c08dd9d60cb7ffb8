"""Where a classifier looks (lesson 07): Grad-CAM and Score-CAM heatmaps.

:func:`grad_cam` and :func:`score_cam` turn a batch ``x`` into (N, H, W) maps in [0, 1], one per sample;
``hrlib.analysis.heatmaps`` draws them on the images and scores them against ground-truth boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hrlib._checks import check_batch, check_int, check_model
from hrlib.models.networks import eval_mode

__all__ = ["grad_cam", "score_cam"]

ClassIndex = int | Sequence[int] | np.ndarray | torch.Tensor | None


def _check_inputs(model: object, x: object, layer: object) -> tuple[nn.Module, torch.Tensor, nn.Module]:
    """Validate ``model``, ``x`` (N, C, H, W float) and resolve ``layer`` (default ``model.cam_layer``)."""
    model = check_model("model", model)
    if not isinstance(x, torch.Tensor):  # a numpy batch is a wrong value of x here: ValueError, as always
        raise ValueError(f"x must be a float tensor (N, C, H, W) with N >= 1, got {type(x).__name__}")
    x = check_batch("x", x)
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

    Args:
        model: the classifier, run in eval mode (each module's own mode is restored; parameters' ``.grad``
            untouched).
        x: (N, C, H, W) float batch, finite.
        class_idx: the class to explain, one int or one per sample (default: the predicted class).
        layer: a module of ``model`` that outputs (N, K, h, w), run once per forward; default ``model.cam_layer``.

    Returns:
        (N, H, W) float32 maps, upsampled (bilinear) to the input size and divided by each map's maximum, so in
        [0, 1] with 1 at the peak; a map with no positive value (no evidence for the class) stays all zero.

    Raises:
        TypeError: ``model`` or ``layer`` is not a module.
        ValueError: ``x``, ``class_idx`` or ``layer`` is unusable (see the message).
    """
    model, x, layer = _check_inputs(model, x, layer)
    with eval_mode(model), torch.enable_grad():
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
    Parameters and their ``.grad`` are untouched.

    Args:
        model, x, class_idx, layer: as in :func:`grad_cam`.
        batch_size: masked inputs per forward pass, >= 1.
        top_k: keep only the k (>= 1) channels with the largest mean activation per sample (about k / K of the
            cost; the weakest channels add little to the map); None keeps all.

    Returns:
        (N, H, W) float32 maps in [0, 1], as in :func:`grad_cam`.

    Raises:
        TypeError, ValueError: as in :func:`grad_cam`, and for ``batch_size``/``top_k``.
    """
    model, x, layer = _check_inputs(model, x, layer)
    batch_size = check_int("batch_size", batch_size)
    top_k = None if top_k is None else check_int("top_k", top_k)
    size = tuple(x.shape[-2:])
    with torch.no_grad(), eval_mode(model):
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
