"""Lesson 01's FixRes helpers (claim C1): test at other resolutions, and re-estimate BatchNorm statistics there.

:func:`evaluate_at_resolutions` measures a model's accuracy at several test resolutions (through
``hrlib.staging.val_transform``); :func:`recalibrate_bn` re-estimates its BatchNorm running statistics on images
of one resolution, which recovers much of what a train/test resolution change costs.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Sequence

import albumentations as A
import numpy as np
import torch
from torch import nn

from hrlib._checks import check_bool, check_device, check_image, check_int, check_model
from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD
from hrlib.models.networks import eval_mode
from hrlib.staging._validate import check_resolution, check_stats
from hrlib.staging.transforms import val_transform

__all__ = ["evaluate_at_resolutions", "recalibrate_bn"]


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def _batch_of(batch: object) -> torch.Tensor:
    """The NCHW float images of one batch (a tensor, or the first item of a tuple); raise naming ``images``."""
    x = batch[0] if isinstance(batch, tuple | list) else batch
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise TypeError(f"images must yield NCHW float tensors, got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')} with shape {tuple(getattr(x, 'shape', ()))}")
    return x


def recalibrate_bn(model: nn.Module, images: Iterable[torch.Tensor], *, num_batches: int | None = None) -> nn.Module:
    """FixRes: re-estimate BatchNorm running statistics on ``images`` at their resolution, in place.

    Stats are reset, then averaged over the batches (momentum ``None``) with only BN layers in train mode (dropout
    off), under ``no_grad``. Weights do not change; each module's mode and each BN's momentum are restored, and
    on an error the statistics too.

    Args:
        model: the model to recalibrate (a warning, and nothing done, if it has no BatchNorm with running stats).
        images: NCHW float batches, or ``(x, ...)`` tuples (a DataLoader, a list).
        num_batches: use at most this many batches (None: all).

    Returns:
        ``model``.

    Raises:
        TypeError: a batch is not an NCHW float tensor.
        ValueError: a batch holds NaN or inf, or ``images`` yielded no batch.
    """
    check_model("model", model)
    num_batches = None if num_batches is None else check_int("num_batches", num_batches)
    if isinstance(images, str | torch.Tensor | np.ndarray) or not isinstance(images, Iterable):
        raise TypeError(f"images must be an iterable of NCHW float tensors (a DataLoader, a list), got "
                        f"{type(images).__name__}")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        warnings.warn("model has no BatchNorm layer with running statistics; nothing to recalibrate", stacklevel=2)
        return model
    saved = {m: (copy.deepcopy(m.state_dict()), m.momentum) for m in bns}
    device, seen = _device_of(model), 0
    try:
        with eval_mode(model), torch.no_grad():
            for m in bns:  # only BN in train mode: dropout off, as at test time
                m.reset_running_stats()
                m.momentum, m.training = None, True
            for batch in images:
                if num_batches is not None and seen >= num_batches:
                    break
                x = _batch_of(batch)
                if not bool(torch.isfinite(x).all()):
                    raise ValueError(f"images must yield finite tensors, batch {seen} holds NaN or inf")
                model(x.to(device))
                seen += 1
        if seen == 0:
            raise ValueError("images yielded no batch; the BatchNorm statistics are left as they were")
    except BaseException:
        for m, (state, _) in saved.items():
            m.load_state_dict(state)
        raise
    finally:
        for m, (_, momentum) in saved.items():
            m.momentum = momentum
    return model


def _batches(images: Sequence[np.ndarray], transform: A.Compose, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield torch.stack([transform(image=im)["image"] for im in images[start:start + batch_size]])


def _check_images(name: str, images: object) -> Sequence[np.ndarray]:
    """A non-empty sequence of HxWx3 uint8 images; raise naming ``name`` (and the index) otherwise."""
    if isinstance(images, str | np.ndarray) or not isinstance(images, Sequence) or len(images) == 0:
        raise TypeError(f"{name} must be a non-empty sequence of HxWx3 uint8 arrays, got {type(images).__name__}")
    for i, image in enumerate(images):
        check_image(f"{name}[{i}]", image, channels=(3,), gray=False)
    return images


def _check_labels(labels: object, n: int) -> torch.Tensor:
    if isinstance(labels, str) or not isinstance(labels, Sequence | np.ndarray | torch.Tensor):
        raise TypeError(f"labels must be a sequence of class indices, got {type(labels).__name__}")
    if len(labels) != n:
        raise ValueError(f"labels must have one entry per image ({n}), got {len(labels)}")
    return torch.as_tensor([check_int(f"labels[{i}]", v, 0) for i, v in enumerate(labels)])


def evaluate_at_resolutions(model: nn.Module, images: Sequence[np.ndarray], labels: Sequence[int],
                            resolutions: Sequence[int], *, source_size: int, batch_size: int = 32,
                            recalibrate: bool = False, calib_images: Sequence[np.ndarray] | None = None,
                            device: torch.device | str | None = None, mean: Sequence[float] = SLIDE_MEAN,
                            std: Sequence[float] = SLIDE_STD) -> dict[int, float]:
    """Accuracy of ``model`` at each test resolution through ``val_transform``, in eval mode, under no_grad.

    The caller's model (weights, statistics, each module's mode) is left as it was.

    Args:
        model: the classifier.
        images: uint8 HxWx3 arrays of side ``source_size``.
        labels: their class indices.
        resolutions: the test sides in px, each <= ``source_size``.
        source_size: side in px of ``images``.
        batch_size: images per forward pass.
        recalibrate: give a deep copy BatchNorm statistics re-estimated at each resolution (:func:`recalibrate_bn`)
            on ``calib_images`` (default: the evaluation images; labels are never used).
        calib_images: uint8 HxWx3 arrays for the recalibration.
        device: where to evaluate (a copy of the model moves there), default the model's.
        mean, std: per-channel Normalize statistics, 0-1 units.

    Returns:
        ``{resolution: accuracy in [0, 1]}``.
    """
    check_model("model", model)
    images = _check_images("images", images)
    y = _check_labels(labels, len(images))
    source_size = check_int("source_size", source_size)
    if isinstance(resolutions, str) or not isinstance(resolutions, Sequence) or len(resolutions) == 0:
        raise TypeError(f"resolutions must be a non-empty sequence of ints, got {resolutions!r}")
    resolutions = [check_resolution(f"resolutions[{i}]", r, source_size) for i, r in enumerate(resolutions)]
    batch_size, recalibrate = check_int("batch_size", batch_size), check_bool("recalibrate", recalibrate)
    calib = images if calib_images is None else _check_images("calib_images", calib_images)
    mean, std = check_stats(mean, std)
    device = _device_of(model) if device is None else check_device("device", device)
    work = copy.deepcopy(model).to(device) if recalibrate or device != _device_of(model) else model
    out: dict[int, float] = {}
    for r in resolutions:
        transform = val_transform(r, source_size=source_size, mean=mean, std=std)
        if recalibrate:
            recalibrate_bn(work, _batches(calib, transform, batch_size))
        with eval_mode(work), torch.no_grad():
            pred = torch.cat([work(x.to(device)).argmax(dim=1).cpu() for x in _batches(images, transform,
                                                                                       batch_size)])
        out[r] = float((pred == y).double().mean())
    return out
