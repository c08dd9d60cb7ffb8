"""Argument checks shared by the modules of ``hrlib.staging`` (package-internal)."""

from __future__ import annotations

import numpy as np

from hrlib._checks import check_bool, check_floats, check_int

POLICIES: tuple[str, ...] = ("none", "warmup", "scale_jitter", "finetune", "finetune_local", "dihedral")
Stats = tuple[float, float, float]


def check_resolution(name: str, resolution: object, source_size: int, allow_upsample: bool = False) -> int:
    """``resolution`` (px) as an int >= 1, at most ``source_size`` unless ``allow_upsample``; raise naming ``name``."""
    resolution, allow_upsample = check_int(name, resolution), check_bool("allow_upsample", allow_upsample)
    if resolution > source_size and not allow_upsample:
        raise ValueError(f"{name}={resolution} exceeds source_size={source_size}; pass allow_upsample=True to "
                         f"work above the source's resolution")
    return resolution


def check_policy(name: str, policy: object) -> str:
    """``policy`` if it is one of ``POLICIES``; raise ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(policy, str) or policy not in POLICIES:
        raise ValueError(f"{name} must be one of {POLICIES}, got {policy!r}")
    return policy


def check_stats(mean: object, std: object) -> tuple[Stats, Stats]:
    """Per-channel Normalize statistics of RGB images: three finite floats each, std > 0 (raises naming them)."""
    return (check_floats("mean", mean, length=3),  # type: ignore[return-value]
            check_floats("std", std, 0.0, low_open=True, length=3))


def check_epoch(epoch: object, num_epochs: int) -> int:
    """``epoch`` as an int in ``[0, num_epochs)``: ``TypeError`` for a non-int, ``IndexError`` out of range."""
    if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer):
        raise TypeError(f"epoch must be an int, got {type(epoch).__name__} {epoch!r}")
    if not 0 <= epoch < num_epochs:
        raise IndexError(f"epoch must be in [0, {num_epochs}) for this {num_epochs}-epoch schedule, got {epoch}")
    return int(epoch)
