"""Resolution staging (claim C2), deterministic validation preprocessing (C8) and FixRes helpers (C1).

A :class:`Schedule` of :class:`Stage` s (name, resolution, epochs, policy) says which resolution and transform run
at each epoch and what that costs. Transforms are albumentations 2.0 pipelines ending in Normalize + ToTensorV2
(float32 CHW); hrlib only chooses and orders them. Resizes average areas when shrinking, interpolate when enlarging.

Boxes (``with_boxes=True``, ``pascal_voc`` pixels, label field ``box_labels``, ``min_visibility=0``, ``clip=True``)
move with the pixels. A box with no visible area is removed: one that a crop leaves entirely outside the image, or
one whose pixels (those it covers by more than half) all lie under occlusion holes; a box cut by a crop is clipped
to its visible part, and a box partly covered by a hole shrinks to the bounding box of its visible pixels (the
hole transforms come from ``hrlib.augment.local``, which fixes albumentations' whole-pixel truncation of boxes).
Pass ``box_labels=range(len(boxes))`` to know which boxes survived.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

import albumentations as A
import cv2
import numpy as np
import torch
from torch import nn

from hrlib._checks import check_bool as _check_flag
from hrlib._checks import check_float, check_int
from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD

__all__ = ["POLICIES", "Policy", "Schedule", "Stage", "evaluate_at_resolutions", "recalibrate_bn",
           "stage_transform", "val_transform"]

Policy = Literal["none", "warmup", "scale_jitter", "finetune", "finetune_local"]
POLICIES: tuple[str, ...] = ("none", "warmup", "scale_jitter", "finetune", "finetune_local")
Stats = tuple[float, float, float]


def _check_resolution(name: str, resolution: object, source_size: int, allow_upsample: bool) -> int:
    resolution, allow_upsample = check_int(name, resolution), _check_flag("allow_upsample", allow_upsample)
    if resolution > source_size and not allow_upsample:
        raise ValueError(f"{name}={resolution} exceeds source_size={source_size}; pass allow_upsample=True to "
                         f"work above the source's resolution")
    return resolution


def _check_stats(name: str, value: object, positive: bool, high: float = math.inf) -> Stats:
    """Three finite floats (each > 0 when ``positive``, each <= ``high``), e.g. a per-channel mean."""
    ok = not isinstance(value, str) and isinstance(value, Sequence) and len(value) == 3 and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and math.isfinite(v)
        and (v > 0 or not positive) and v <= high for v in value)
    if not ok:
        bound = f" in (0, {high:g}]" if positive and high < math.inf else " > 0" if positive else ""
        raise ValueError(f"{name} must be 3 finite floats{bound}, got {value!r}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _resize(side: int) -> A.Resize:
    """Square resize to ``side`` px: area averaging when shrinking, bilinear when enlarging."""
    return A.Resize(side, side, interpolation=cv2.INTER_LINEAR, area_for_downscale="image")


def _policy_steps(policy: str, resolution: int, mean: Stats, occlusion: bool) -> list[A.BasicTransform]:
    if policy == "none":
        return [_resize(resolution)]
    if policy == "warmup":  # standard augmentation; pathology advice: mild brightness/contrast, saturation/hue off
        return [_resize(resolution), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5),
                A.Rotate(limit=15, border_mode=cv2.BORDER_REFLECT_101, p=0.5),
                A.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.0, hue=0.0, p=0.5)]
    if policy == "scale_jitter":  # Resize(800) -> RandomCrop(640) -> Resize(768), scaled so 768 becomes `resolution`
        return [_resize(round(resolution * 800 / 768)), A.RandomCrop(round(resolution * 640 / 768),
                                                                     round(resolution * 640 / 768)),
                _resize(resolution), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    from hrlib.augment.local import Cutout, mean_fill, occlusion_policy

    steps: list[A.BasicTransform] = [_resize(resolution)]  # finetune: no global geometry
    if policy == "finetune_local":  # lesson 02's stage: GridMask, non-overlapping CutOut, bounded erasing
        return steps + (occlusion_policy(resolution, fill=mean_fill(mean)) if occlusion else [])
    if occlusion:  # 2-6 holes of 3-6 % of the side, filled with the mean colour (normalises to about 0)
        steps.append(Cutout(num_holes_range=(2, 6), hole_height_range=(0.03, 0.06), hole_width_range=(0.03, 0.06),
                            fill=mean_fill(mean), p=0.5))
    return steps


def stage_transform(policy: str, resolution: int, *, source_size: int, mean: Sequence[float] = SLIDE_MEAN,
                    std: Sequence[float] = SLIDE_STD, with_boxes: bool = False, seed: int | None = None,
                    allow_upsample: bool = False, occlusion: bool = True) -> A.Compose:
    """One stage's training transform: uint8 HxWx3 image -> float32 (3, resolution, resolution) tensor.

    ``policy`` (one of ``POLICIES``): ``"none"`` resize only; ``"warmup"`` flips, rotation within 15 degrees
    (reflected border), brightness/contrast jitter 0.1; ``"scale_jitter"`` resize to ``resolution * 800/768``,
    random crop ``resolution * 640/768``, resize to ``resolution`` (the crop is enlarged 1.2x, as in the recipe),
    flips; ``"finetune"`` resize only (identity at ``source_size``), no global geometry, and with probability 0.5
    2-6 CoarseDropout holes of 3-6 % of the side in the mean colour: a hole can hide a small target entirely;
    ``"finetune_local"`` resize, then ``hrlib.augment.local.occlusion_policy`` (GridMask, non-overlapping CutOut,
    aspect-bounded erasing, each with probability 0.5, in the mean colour).
    ``resolution``: output side in px, <= ``source_size`` (side of the square inputs) unless ``allow_upsample``.
    ``mean``/``std``: per-channel, 0-1 units. ``with_boxes``: call as ``t(image=..., bboxes=(N, 4) x0 y0 x1 y1 px,
    box_labels=...)``, both required. ``seed``: two transforms with the same seed give the same sequence; DataLoader
    workers each repeat it, so call ``set_random_seed(seed + worker_id)`` in a worker_init_fn. ``occlusion=False``
    drops the finetune and finetune_local holes (ablation, tests).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    source_size = check_int("source_size", source_size)
    resolution = _check_resolution("resolution", resolution, source_size, allow_upsample)
    mean, std = _check_stats("mean", mean, False), _check_stats("std", std, True)
    seed = None if seed is None else check_int("seed", seed, 0)
    with_boxes, occlusion = _check_flag("with_boxes", with_boxes), _check_flag("occlusion", occlusion)
    steps = _policy_steps(policy, resolution, mean, occlusion)
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["box_labels"], min_visibility=0.0,
                               clip=True) if with_boxes else None
    return A.Compose([*steps, A.Normalize(mean=mean, std=std, max_pixel_value=255.0), A.ToTensorV2()],
                     bbox_params=bbox_params, seed=seed)


def val_transform(resolution: int, *, source_size: int, mean: Sequence[float] = SLIDE_MEAN,
                  std: Sequence[float] = SLIDE_STD, crop_fraction: float = 1.0,
                  allow_upsample: bool = False) -> A.Compose:
    """Deterministic validation transform (C8): short side to ``round(resolution / crop_fraction)`` px, centre crop
    ``resolution`` px, normalise, float32 CHW. ``crop_fraction`` in (0, 1]: 1.0 keeps a square image whole, 0.875
    is ImageNet's crop. No randomness: an image gives the same tensor on every call, from every new transform."""
    source_size = check_int("source_size", source_size)
    resolution = _check_resolution("resolution", resolution, source_size, allow_upsample)
    crop_fraction = check_float("crop_fraction", crop_fraction, 0.0, 1.0, low_open=True)
    mean, std = _check_stats("mean", mean, False), _check_stats("std", std, True)
    short = max(resolution, round(resolution / crop_fraction))
    return A.Compose([A.SmallestMaxSize(max_size=short, interpolation=cv2.INTER_LINEAR, area_for_downscale="image"),
                      A.CenterCrop(resolution, resolution), A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
                      A.ToTensorV2()])


@dataclass(frozen=True)
class Stage:
    """``epochs`` consecutive epochs at ``resolution`` px with augmentation ``policy`` (one of ``POLICIES``)."""

    name: str
    resolution: int
    epochs: int
    policy: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Stage name must be a non-empty str, got {self.name!r}")
        object.__setattr__(self, "resolution", check_int(f"Stage {self.name!r} resolution", self.resolution))
        object.__setattr__(self, "epochs", check_int(f"Stage {self.name!r} epochs", self.epochs))
        if self.policy not in POLICIES:
            raise ValueError(f"Stage {self.name!r} policy must be one of {POLICIES}, got {self.policy!r}")


def _split_epochs(num_epochs: int, shares: Sequence[float]) -> list[int]:
    """Split ``num_epochs`` by ``shares`` (largest remainder), each part >= 1, total exactly ``num_epochs``."""
    raw = np.asarray(shares, dtype=float) / sum(shares) * num_epochs
    counts = np.maximum(1, np.floor(raw)).astype(int)
    while counts.sum() < num_epochs:
        counts[np.argmax(raw - counts)] += 1
    while counts.sum() > num_epochs:
        counts[np.argmax(np.where(counts > 1, counts - raw, -np.inf))] -= 1
    return counts.tolist()


class Schedule:
    """``stages`` (non-empty) run one after the other, epochs counted from 0. ``source_size``: side in px of the
    full-resolution images; no stage may exceed it unless ``allow_upsample``. ``mean``/``std``: for the transforms."""

    def __init__(self, stages: Sequence[Stage], source_size: int, allow_upsample: bool = False, *,
                 mean: Sequence[float] = SLIDE_MEAN, std: Sequence[float] = SLIDE_STD) -> None:
        if isinstance(stages, str | Stage) or not isinstance(stages, Sequence):
            raise TypeError(f"stages must be a sequence of Stage, got {type(stages).__name__}")
        if len(stages) == 0:
            raise ValueError("stages must be a non-empty sequence of Stage, got an empty sequence")
        self.source_size = check_int("source_size", source_size)
        self.allow_upsample = _check_flag("allow_upsample", allow_upsample)
        self.mean, self.std = _check_stats("mean", mean, False), _check_stats("std", std, True)
        for i, s in enumerate(stages):
            if not isinstance(s, Stage):
                raise TypeError(f"stages[{i}] must be a Stage, got {type(s).__name__} {s!r}")
            _check_resolution(f"stages[{i}] ({s.name!r}) resolution", s.resolution, self.source_size,
                              self.allow_upsample)
        self.stages: tuple[Stage, ...] = tuple(stages)
        self._ends = np.cumsum([s.epochs for s in self.stages])

    @property
    def num_epochs(self) -> int:  # total over the stages
        return int(self._ends[-1])

    def stage_at(self, epoch: int) -> Stage:
        """The stage that runs at ``epoch`` (0-based, in ``[0, num_epochs)``)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer):
            raise TypeError(f"epoch must be an int, got {type(epoch).__name__} {epoch!r}")
        if not 0 <= epoch < self.num_epochs:
            raise IndexError(f"epoch must be in [0, {self.num_epochs}) for this {self.num_epochs}-epoch "
                             f"schedule, got {epoch}")
        return self.stages[int(np.searchsorted(self._ends, epoch, side="right"))]

    def resolution_at(self, epoch: int) -> int:
        return self.stage_at(epoch).resolution

    def train_transform(self, epoch: int, *, with_boxes: bool = False, seed: int | None = None,
                        occlusion: bool = True) -> A.Compose:
        """``stage_transform`` of the stage at ``epoch``: its policy at its resolution."""
        s = self.stage_at(epoch)
        return stage_transform(s.policy, s.resolution, source_size=self.source_size, mean=self.mean, std=self.std,
                               with_boxes=with_boxes, seed=seed, allow_upsample=self.allow_upsample,
                               occlusion=occlusion)

    def rows(self) -> list[tuple[int, str, int, str]]:
        """One ``(epoch, stage name, resolution, policy)`` row per epoch, for a table."""
        return [(e, s.name, s.resolution, s.policy) for e in range(self.num_epochs) for s in [self.stage_at(e)]]

    def relative_cost(self) -> float:
        """Mean over epochs of ``(resolution / source_size) ** 2``: compute relative to full resolution always."""
        return sum(s.epochs * (s.resolution / self.source_size) ** 2 for s in self.stages) / self.num_epochs

    def __repr__(self) -> str:
        parts = ", ".join(f"{s.name}: {s.resolution}px x{s.epochs} {s.policy}" for s in self.stages)
        return f"Schedule(source_size={self.source_size}, num_epochs={self.num_epochs}, [{parts}])"

    @classmethod
    def fixed(cls, source_size: int, num_epochs: int, resolution: int | None = None,
              policy: str = "warmup") -> Schedule:
        """Every epoch at ``resolution`` px (default ``source_size``)."""
        source_size, num_epochs = check_int("source_size", source_size), check_int("num_epochs", num_epochs)
        resolution = source_size if resolution is None else _check_resolution("resolution", resolution, source_size,
                                                                              False)
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        return cls([Stage("fixed", resolution, num_epochs, policy)], source_size)

    @classmethod
    def three_stage(cls, source_size: int, num_epochs: int, fractions: Sequence[float] = (0.25, 0.5, 1.0),
                    epoch_shares: Sequence[float] = (0.4, 0.4, 0.2)) -> Schedule:
        """Claim C2: warmup at ``fractions[0] * source_size``, scale_jitter at ``fractions[1]``, finetune at
        ``fractions[2]``; epochs split by ``epoch_shares`` (each stage >= 1 epoch, so ``num_epochs >= 3``)."""
        source_size, num_epochs = check_int("source_size", source_size), check_int("num_epochs", num_epochs, 3)
        fractions = _check_stats("fractions", fractions, True, high=1.0)
        epochs = _check_stats("epoch_shares", epoch_shares, True)
        epochs = _split_epochs(num_epochs, epochs)
        return cls([Stage(p, max(1, math.floor(0.5 + f * source_size)), e, p)
                    for p, f, e in zip(("warmup", "scale_jitter", "finetune"), fractions, epochs, strict=True)],
                   source_size)

    @classmethod
    def linear_ramp(cls, source_size: int, num_epochs: int, start: float = 0.25, end: float = 1.0,
                    multiple: int = 16, policy: str = "warmup") -> Schedule:
        """FFCV-style ramp: resolution grows linearly from ``start * source_size`` (epoch 0) to ``end *
        source_size`` (last epoch), rounded to a multiple of ``multiple`` and clipped to [multiple, source_size];
        ``0 < start <= end <= 1``. Consecutive epochs at the same resolution form one stage."""
        source_size, multiple = check_int("source_size", source_size), check_int("multiple", multiple)
        num_epochs = check_int("num_epochs", num_epochs)
        if not (isinstance(start, int | float) and isinstance(end, int | float) and 0 < start <= end <= 1):
            raise ValueError(f"start and end must satisfy 0 < start <= end <= 1, got start={start!r}, end={end!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        fracs = np.linspace(start, end, num_epochs) if num_epochs > 1 else np.array([end])
        res = [min(source_size, max(multiple, math.floor(0.5 + f * source_size / multiple) * multiple))
               for f in fracs]
        return cls([Stage(f"ramp{i}", int(r), len(list(g)), policy) for i, (r, g) in enumerate(groupby(res))],
                   source_size)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def recalibrate_bn(model: nn.Module, images: Iterable[torch.Tensor], *, num_batches: int | None = None) -> nn.Module:
    """FixRes: re-estimate BatchNorm running statistics on ``images`` (NCHW float batches, or ``(x, ...)``
    tuples) at their resolution, in place; returns ``model``. Stats are reset, then averaged over at most
    ``num_batches`` batches (momentum ``None``) with only BN layers in train mode (dropout off), under ``no_grad``.
    Weights do not change; each module's mode and each BN's momentum are restored."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    num_batches = None if num_batches is None else check_int("num_batches", num_batches)
    if isinstance(images, str | torch.Tensor | np.ndarray) or not isinstance(images, Iterable):
        raise TypeError(f"images must be an iterable of NCHW float tensors (a DataLoader, a list), got "
                        f"{type(images).__name__}")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        warnings.warn("model has no BatchNorm layer with running statistics; nothing to recalibrate", stacklevel=2)
        return model
    saved = {m: (copy.deepcopy(m.state_dict()), m.momentum) for m in bns}
    modes = {m: m.training for m in model.modules()}
    device, seen = _device_of(model), 0
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        for m in model.modules():  # only BN in train mode: dropout off, as at test time
            m.training = m in saved
        with torch.no_grad():
            for batch in images:
                if num_batches is not None and seen >= num_batches:
                    break
                x = batch[0] if isinstance(batch, tuple | list) else batch
                if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
                    raise TypeError(f"images must yield NCHW float tensors, got {type(x).__name__} "
                                    f"{getattr(x, 'dtype', '')} with shape {tuple(getattr(x, 'shape', ()))}")
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
        for m, training in modes.items():
            m.training = training
    return model


def _batches(images: Sequence[np.ndarray], transform: A.Compose, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield torch.stack([transform(image=im)["image"] for im in images[start:start + batch_size]])


def _check_images(name: str, images: object) -> Sequence[np.ndarray]:
    if not isinstance(images, Sequence) or len(images) == 0:
        raise TypeError(f"{name} must be a non-empty sequence of HxWx3 uint8 arrays, got {type(images).__name__}")
    for i, im in enumerate(images):
        if not (isinstance(im, np.ndarray) and im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8
                and im.size > 0):
            raise ValueError(f"{name}[{i}] must be a non-empty HxWx3 uint8 array, got {getattr(im, 'dtype', type(im))} "
                             f"with shape {getattr(im, 'shape', None)}")
    return images


def evaluate_at_resolutions(model: nn.Module, images: Sequence[np.ndarray], labels: Sequence[int],
                            resolutions: Sequence[int], *, source_size: int, batch_size: int = 32,
                            recalibrate: bool = False, calib_images: Sequence[np.ndarray] | None = None,
                            device: torch.device | str | None = None, mean: Sequence[float] = SLIDE_MEAN,
                            std: Sequence[float] = SLIDE_STD) -> dict[int, float]:
    """Accuracy (0-1) of ``model`` at each test resolution through ``val_transform``, in eval mode, no_grad.

    ``images``: uint8 HxWx3 arrays of side ``source_size``; ``labels``: their class indices. With ``recalibrate``
    a deep copy gets its BatchNorm statistics re-estimated at each resolution on ``calib_images`` (default: the
    evaluation images; labels are never used). The caller's model (weights, stats, mode) is left as it was."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    images = _check_images("images", images)
    if isinstance(labels, str) or not isinstance(labels, Sequence | np.ndarray | torch.Tensor):
        raise TypeError(f"labels must be a sequence of class indices, got {type(labels).__name__}")
    if len(labels) != len(images):
        raise ValueError(f"labels must have one entry per image ({len(images)}), got {len(labels)}")
    y = torch.as_tensor([check_int(f"labels[{i}]", v, 0) for i, v in enumerate(labels)])
    source_size = check_int("source_size", source_size)
    if isinstance(resolutions, str) or not isinstance(resolutions, Sequence) or len(resolutions) == 0:
        raise TypeError(f"resolutions must be a non-empty sequence of ints, got {resolutions!r}")
    resolutions = [_check_resolution(f"resolutions[{i}]", r, source_size, False) for i, r in enumerate(resolutions)]
    batch_size = check_int("batch_size", batch_size)
    recalibrate = _check_flag("recalibrate", recalibrate)
    calib = images if calib_images is None else _check_images("calib_images", calib_images)
    mean, std = _check_stats("mean", mean, False), _check_stats("std", std, True)
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"device must be a torch.device or a name like 'cpu' or 'cuda:0', got {device!r}") from e
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():  # 0 devices without CUDA
            raise ValueError(f"device {device} is not available ({torch.cuda.device_count()} CUDA devices)")
    device = _device_of(model) if device is None else device
    work = copy.deepcopy(model).to(device) if recalibrate or device != _device_of(model) else model
    modes = {m: m.training for m in work.modules()}
    out: dict[int, float] = {}
    try:
        for r in resolutions:
            transform = val_transform(r, source_size=source_size, mean=mean, std=std)
            if recalibrate:
                recalibrate_bn(work, _batches(calib, transform, batch_size))
            work.eval()
            with torch.no_grad():
                pred = torch.cat([work(x.to(device)).argmax(dim=1).cpu() for x in _batches(images, transform,
                                                                                           batch_size)])
            out[r] = float((pred == y).double().mean())
    finally:
        for m, training in modes.items():
            m.training = training
    return out
