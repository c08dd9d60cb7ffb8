"""Lesson 01's schedules (claim C2): which resolution and transform run at each epoch, and what that costs.

A :class:`Schedule` of :class:`Stage` s (name, resolution, num_epochs, policy) builds each stage's transform with
``hrlib.staging.stage_transform``; a :class:`FixedSchedule` trains every epoch with one given transform (a domain
preset, a pipeline of your own). Both are what ``hrlib.train.fit`` needs (the ``hrlib.train.Schedule`` protocol:
``num_epochs``, ``stage_at``, ``resolution_at``, ``train_transform``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import albumentations as A
import numpy as np

from hrlib._checks import check_bool, check_float, check_floats, check_int
from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD
from hrlib.staging._validate import check_epoch, check_policy, check_resolution, check_stats
from hrlib.staging.transforms import stage_transform

__all__ = ["FixedSchedule", "Schedule", "Stage"]

Transform = Callable[..., dict[str, Any]]  # albumentations-style: transform(image=uint8 HWC)["image"] -> CHW tensor


@dataclass(frozen=True)
class Stage:
    """Consecutive epochs at one resolution with one augmentation policy.

    Attributes:
        name: the stage's label (non-empty), as the training history records it.
        resolution: side in px of the training images.
        num_epochs: how many epochs the stage lasts (>= 1).
        policy: one of ``POLICIES`` (see ``stage_transform``), or None for a stage whose transform is given, not
            built (a :class:`FixedSchedule`'s).
    """

    name: str
    resolution: int
    num_epochs: int
    policy: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Stage name must be a non-empty str, got {self.name!r}")
        object.__setattr__(self, "resolution", check_int(f"Stage {self.name!r} resolution", self.resolution))
        object.__setattr__(self, "num_epochs", check_int(f"Stage {self.name!r} num_epochs", self.num_epochs))
        if self.policy is not None:
            check_policy(f"Stage {self.name!r} policy", self.policy)


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
    """Stages run one after the other, epochs counted from 0; each stage's transform is built from its policy.

    Args:
        stages: a non-empty sequence of :class:`Stage` (each with a policy).
        source_size: side in px of the full-resolution images; no stage may exceed it unless ``allow_upsample``.
        allow_upsample: allow stages above ``source_size``.
        mean, std: per-channel Normalize statistics of the transforms, 0-1 units (std > 0).
    """

    def __init__(self, stages: Sequence[Stage], source_size: int, allow_upsample: bool = False, *,
                 mean: Sequence[float] = SLIDE_MEAN, std: Sequence[float] = SLIDE_STD) -> None:
        if isinstance(stages, str | Stage) or not isinstance(stages, Sequence):
            raise TypeError(f"stages must be a sequence of Stage, got {type(stages).__name__}")
        if len(stages) == 0:
            raise ValueError("stages must be a non-empty sequence of Stage, got an empty sequence")
        self.source_size = check_int("source_size", source_size)
        self.allow_upsample = check_bool("allow_upsample", allow_upsample)
        self.mean, self.std = check_stats(mean, std)
        for i, s in enumerate(stages):
            if not isinstance(s, Stage):
                raise TypeError(f"stages[{i}] must be a Stage, got {type(s).__name__} {s!r}")
            check_resolution(f"stages[{i}] ({s.name!r}) resolution", s.resolution, self.source_size,
                             self.allow_upsample)
            check_policy(f"stages[{i}] ({s.name!r}) policy", s.policy)
        self.stages: tuple[Stage, ...] = tuple(stages)
        self._ends = np.cumsum([s.num_epochs for s in self.stages])

    @property
    def num_epochs(self) -> int:
        """Epochs over all the stages."""
        return int(self._ends[-1])

    def stage_at(self, epoch: int) -> Stage:
        """The stage that runs at ``epoch``.

        Args:
            epoch: 0-based, in ``[0, num_epochs)``.

        Returns:
            The :class:`Stage`.

        Raises:
            TypeError: ``epoch`` is not an int.
            IndexError: ``epoch`` is out of range.
        """
        epoch = check_epoch(epoch, self.num_epochs)
        return self.stages[int(np.searchsorted(self._ends, epoch, side="right"))]

    def resolution_at(self, epoch: int) -> int:
        """The training resolution in px at ``epoch`` (0-based, in ``[0, num_epochs)``)."""
        return self.stage_at(epoch).resolution

    def train_transform(self, epoch: int, *, with_boxes: bool = False, seed: int | None = None,
                        occlusion: bool = True) -> A.Compose:
        """``stage_transform`` of the stage at ``epoch``: its policy at its resolution.

        Args:
            epoch: 0-based, in ``[0, num_epochs)``.
            with_boxes, seed, occlusion: as in ``stage_transform``.

        Returns:
            The albumentations ``Compose``.
        """
        s = self.stage_at(epoch)
        return stage_transform(s.policy, s.resolution, source_size=self.source_size,  # type: ignore[arg-type]
                               mean=self.mean, std=self.std, with_boxes=with_boxes, seed=seed,
                               allow_upsample=self.allow_upsample, occlusion=occlusion)

    def rows(self) -> list[tuple[int, str, int, str]]:
        """One ``(epoch, stage name, resolution, policy)`` row per epoch, for a table."""
        return [(e, s.name, s.resolution, s.policy) for e in range(self.num_epochs)  # type: ignore[misc]
                for s in [self.stage_at(e)]]

    def relative_cost(self) -> float:
        """Mean over epochs of ``(resolution / source_size) ** 2``: compute relative to full resolution always."""
        return sum(s.num_epochs * (s.resolution / self.source_size) ** 2 for s in self.stages) / self.num_epochs

    def __repr__(self) -> str:
        parts = ", ".join(f"{s.name}: {s.resolution}px x{s.num_epochs} {s.policy}" for s in self.stages)
        return f"Schedule(source_size={self.source_size}, num_epochs={self.num_epochs}, [{parts}])"

    @classmethod
    def fixed(cls, source_size: int, num_epochs: int, resolution: int | None = None,
              policy: str = "warmup") -> Schedule:
        """One stage named ``"fixed"``: every epoch with ``policy`` at one resolution.

        Args:
            source_size: side in px of the full-resolution images.
            num_epochs: >= 1.
            resolution: the training side in px (default ``source_size``).
            policy: one of ``POLICIES``.

        Returns:
            The :class:`Schedule` (for a transform of your own, use :class:`FixedSchedule`).
        """
        source_size, num_epochs = check_int("source_size", source_size), check_int("num_epochs", num_epochs)
        resolution = source_size if resolution is None else check_resolution("resolution", resolution, source_size)
        return cls([Stage("fixed", resolution, num_epochs, check_policy("policy", policy))], source_size)

    @classmethod
    def three_stage(cls, source_size: int, num_epochs: int, fractions: Sequence[float] = (0.25, 0.5, 1.0),
                    epoch_shares: Sequence[float] = (0.4, 0.4, 0.2), *,
                    final_policy: str = "finetune") -> Schedule:
        """Claim C2: warmup, then scale_jitter, then a fine-tune stage, each at a fraction of the source's side.

        Args:
            source_size: side in px of the full-resolution images.
            num_epochs: >= 3 (each stage gets at least one epoch).
            fractions: the three stages' resolutions as fractions in (0, 1] of ``source_size``; published recipes
                start at about 0.44-0.8 of the final side.
            epoch_shares: the three stages' shares of the epochs (> 0; split by largest remainder).
            final_policy: the last stage's policy, one of ``POLICIES``: ``"finetune"`` (a few holes) or
                ``"finetune_local"`` (lesson 02's GridMask, CutOut and bounded erasing); the stage is named after it.

        Returns:
            The :class:`Schedule`.
        """
        source_size, num_epochs = check_int("source_size", source_size), check_int("num_epochs", num_epochs, 3)
        fractions = check_floats("fractions", fractions, 0.0, 1.0, low_open=True, length=3)
        shares = check_floats("epoch_shares", epoch_shares, 0.0, low_open=True, length=3)
        policies = ("warmup", "scale_jitter", check_policy("final_policy", final_policy))
        epochs = _split_epochs(num_epochs, shares)
        return cls([Stage(p, max(1, math.floor(0.5 + f * source_size)), e, p)
                    for p, f, e in zip(policies, fractions, epochs, strict=True)], source_size)

    def target_px(self, target_frac: float = 0.04) -> list[float]:
        """Each stage's target diameter in px, for targets ``target_frac`` of the source's side (the course's 4 %).

        Below about 5 px a target's granular texture is gone (lesson 00): a stage that shows targets smaller than
        that cannot teach the model to tell them from decoys.

        Args:
            target_frac: target diameter as a fraction of ``source_size``, in (0, 1].

        Returns:
            One diameter in px per stage, in order.
        """
        target_frac = check_float("target_frac", target_frac, 0.0, 1.0, low_open=True)
        return [target_frac * s.resolution for s in self.stages]

    @classmethod
    def linear_ramp(cls, source_size: int, num_epochs: int, start: float = 0.25, end: float = 1.0,
                    multiple: int = 16, policy: str = "warmup") -> Schedule:
        """FFCV-style ramp: the resolution grows linearly over the epochs; equal consecutive ones form one stage.

        Args:
            source_size: side in px of the full-resolution images.
            num_epochs: >= 1.
            start, end: the first and the last epoch's resolution as fractions of ``source_size``,
                ``0 < start <= end <= 1``.
            multiple: resolutions are rounded to a multiple of it and clipped to ``[multiple, source_size]``.
            policy: one of ``POLICIES``, for every stage.

        Returns:
            The :class:`Schedule`.
        """
        source_size, multiple = check_int("source_size", source_size), check_int("multiple", multiple)
        num_epochs = check_int("num_epochs", num_epochs)
        if not (isinstance(start, int | float) and isinstance(end, int | float) and 0 < start <= end <= 1):
            raise ValueError(f"start and end must satisfy 0 < start <= end <= 1, got start={start!r}, end={end!r}")
        policy = check_policy("policy", policy)
        fracs = np.linspace(start, end, num_epochs) if num_epochs > 1 else np.array([end])
        res = [min(source_size, max(multiple, math.floor(0.5 + f * source_size / multiple) * multiple))
               for f in fracs]
        return cls([Stage(f"ramp{i}", int(r), len(list(g)), policy) for i, (r, g) in enumerate(groupby(res))],
                   source_size)


class FixedSchedule:
    """One stage: every epoch trains with the same given ``transform`` at ``resolution`` px.

    For a transform that no policy names: a domain preset (``hrlib.augment.preset``, lesson 03) or a pipeline of
    your own (:meth:`from_steps`, lesson 02). ``hrlib.train.fit`` re-seeds ``transform`` every epoch.

    Args:
        transform: called as ``transform(image=uint8 HWC array)["image"]`` -> a float CHW tensor.
        resolution: the side in px of what ``transform`` returns (recorded in the history).
        num_epochs: >= 1.
        name: the stage's label in the history.
    """

    def __init__(self, transform: Transform, resolution: int, num_epochs: int, name: str = "fixed") -> None:
        if not callable(transform):
            raise TypeError(f"transform must be callable as transform(image=...), got {type(transform).__name__}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str (the stage's label), got {type(name).__name__} {name!r}")
        self.transform = transform
        self.stage = Stage(name, check_int("resolution", resolution), check_int("num_epochs", num_epochs), None)

    @classmethod
    def from_steps(cls, steps: Sequence[A.BasicTransform], resolution: int, num_epochs: int, *,
                   mean: Sequence[float] = SLIDE_MEAN, std: Sequence[float] = SLIDE_STD,
                   name: str = "pipeline") -> FixedSchedule:
        """Train every epoch with ``steps``, then Normalize and a float CHW tensor.

        Args:
            steps: albumentations transforms on uint8 images of ``resolution`` px (which they must keep).
            resolution: the images' side in px.
            num_epochs: >= 1.
            mean, std: per-channel Normalize statistics, 0-1 units (std > 0).
            name: the stage's label in the history.

        Returns:
            The :class:`FixedSchedule`.
        """
        if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
            raise TypeError(f"steps must be a sequence of albumentations transforms, got {type(steps).__name__} "
                            f"{steps!r:.60}")
        for i, step in enumerate(steps):
            if not isinstance(step, A.BasicTransform | A.BaseCompose):
                raise TypeError(f"steps[{i}] must be an albumentations transform, got {type(step).__name__}")
        mean, std = check_floats("mean", mean), check_floats("std", std, 0.0, low_open=True)
        transform = A.Compose([*steps, A.Normalize(mean=mean, std=std, max_pixel_value=255.0), A.ToTensorV2()])
        return cls(transform, resolution, num_epochs, name)

    @property
    def num_epochs(self) -> int:
        """Epochs of the one stage."""
        return self.stage.num_epochs

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The one :class:`Stage` (its policy is None: the transform is given)."""
        return (self.stage,)

    def stage_at(self, epoch: int) -> Stage:
        """The one stage, whatever the epoch.

        Args:
            epoch: 0-based; ``IndexError`` outside ``[0, num_epochs)``, ``TypeError`` for a non-int.

        Returns:
            ``self.stage``.
        """
        check_epoch(epoch, self.num_epochs)
        return self.stage

    def resolution_at(self, epoch: int) -> int:
        """The resolution in px (the same at every ``epoch``, 0-based in ``[0, num_epochs)``)."""
        return self.stage_at(epoch).resolution

    def train_transform(self, epoch: int) -> Transform:
        """The transform (the same at every ``epoch``, 0-based in ``[0, num_epochs)``)."""
        self.stage_at(epoch)
        return self.transform

    def __repr__(self) -> str:
        return f"FixedSchedule({self.stage.name!r}, {self.stage.resolution}px x{self.num_epochs})"


