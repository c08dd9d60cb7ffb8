"""Lesson 01's transforms: each stage's training transform (claim C2) and the deterministic validation one (C8).

Transforms are albumentations 2.0 pipelines ending in Normalize + ToTensorV2 (float32 CHW); hrlib only chooses and
orders them. Resizes average areas when shrinking, interpolate when enlarging.

Boxes (``with_boxes=True``, ``pascal_voc`` pixels, label field ``box_labels``, ``min_visibility=0``, ``clip=True``)
move with the pixels. A box with no visible area is removed: one that a crop leaves entirely outside the image, or
one whose pixels (those it covers by more than half) all lie under occlusion holes; a box cut by a crop is clipped
to its visible part, and a box partly covered by a hole shrinks to the bounding box of its visible pixels (the
hole transforms come from ``hrlib.augment.local``, which fixes albumentations' whole-pixel truncation of boxes).
Pass ``box_labels=range(len(boxes))`` to know which boxes survived.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import albumentations as A
import cv2

from hrlib._checks import check_bool, check_float, check_int
from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD
from hrlib.staging._validate import POLICIES, Stats, check_policy, check_resolution, check_stats

__all__ = ["POLICIES", "Policy", "stage_transform", "val_transform"]

Policy = Literal["none", "warmup", "scale_jitter", "finetune", "finetune_local", "dihedral"]


def _resize(side: int) -> A.Resize:
    """Square resize to ``side`` px: area averaging when shrinking, bilinear when enlarging."""
    return A.Resize(side, side, interpolation=cv2.INTER_LINEAR, area_for_downscale="image")


def _policy_steps(policy: str, resolution: int, mean: Stats, occlusion: bool) -> list[A.BasicTransform]:
    if policy == "none":
        return [_resize(resolution)]
    if policy == "dihedral":  # lossless: one of the 8 rotations by 90 degrees and flips, no interpolation
        return [_resize(resolution), A.D4(p=1.0)]
    if policy == "warmup":  # standard augmentation; pathology advice: mild brightness/contrast, saturation/hue off
        return [_resize(resolution), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5),
                A.Rotate(limit=15, border_mode=cv2.BORDER_REFLECT_101, p=0.5),
                A.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.0, hue=0.0, p=0.5)]
    if policy == "scale_jitter":  # Resize(800) -> RandomCrop(640) -> Resize(768), scaled so 768 becomes `resolution`
        return [_resize(round(resolution * 800 / 768)), A.RandomCrop(round(resolution * 640 / 768),
                                                                     round(resolution * 640 / 768)),
                _resize(resolution), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    # here, not at the top: hrlib.augment's package face imports hrlib.staging (FixedSchedule)
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

    Policies: ``"none"`` resize only; ``"warmup"`` flips, rotation within 15 degrees (reflected border),
    brightness/contrast jitter 0.1; ``"scale_jitter"`` resize to ``resolution * 800/768``, random crop
    ``resolution * 640/768``, resize to ``resolution`` (the crop is enlarged 1.2x, as in the recipe), flips;
    ``"finetune"`` resize only (identity at ``source_size``), no global geometry, and with probability 0.5 2-6
    CoarseDropout holes of 3-6 % of the side in the mean colour: a hole can hide a small target entirely;
    ``"finetune_local"`` resize, then ``hrlib.augment.local.occlusion_policy`` (GridMask, non-overlapping CutOut,
    aspect-bounded erasing, each with probability 0.5, in the mean colour); ``"dihedral"`` resize, then one of the
    8 rotations by multiples of 90 degrees and flips (``A.D4``): lossless, every pixel kept exactly (the pathology
    practice for orientation-free tissue).

    Args:
        policy: one of ``POLICIES``.
        resolution: output side in px, <= ``source_size`` unless ``allow_upsample``.
        source_size: side in px of the square full-resolution inputs.
        mean, std: per-channel Normalize statistics, 0-1 units (std > 0).
        with_boxes: call as ``t(image=..., bboxes=(N, 4) x0 y0 x1 y1 px, box_labels=...)``, both required.
        seed: two transforms with the same seed give the same sequence (``hrlib.config.seed_transform`` re-seeds
            one; DataLoader workers each seed their copy with ``hrlib.config.seed_worker``; ``hrlib.train`` re-seeds it
            for each image from the epoch and the image's index, so its runs do not depend on the worker count).
        allow_upsample: allow a resolution above ``source_size``.
        occlusion: ``False`` drops the finetune and finetune_local holes (ablation, tests).

    Returns:
        The albumentations ``Compose``.
    """
    policy = check_policy("policy", policy)
    source_size = check_int("source_size", source_size)
    resolution = check_resolution("resolution", resolution, source_size, allow_upsample)
    mean, std = check_stats(mean, std)
    seed = None if seed is None else check_int("seed", seed, 0)
    with_boxes, occlusion = check_bool("with_boxes", with_boxes), check_bool("occlusion", occlusion)
    steps = _policy_steps(policy, resolution, mean, occlusion)
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["box_labels"], min_visibility=0.0,
                               clip=True) if with_boxes else None
    return A.Compose([*steps, A.Normalize(mean=mean, std=std, max_pixel_value=255.0), A.ToTensorV2()],
                     bbox_params=bbox_params, seed=seed)


def val_transform(resolution: int, *, source_size: int, mean: Sequence[float] = SLIDE_MEAN,
                  std: Sequence[float] = SLIDE_STD, crop_fraction: float = 1.0,
                  allow_upsample: bool = False) -> A.Compose:
    """Deterministic validation transform (C8): short side to ``round(resolution / crop_fraction)`` px, centre crop
    ``resolution`` px, normalise, float32 CHW.

    No randomness: an image gives the same tensor on every call, from every new transform.

    Args:
        resolution: output side in px, <= ``source_size`` unless ``allow_upsample``.
        source_size: side in px of the full-resolution inputs.
        mean, std: per-channel Normalize statistics, 0-1 units (std > 0).
        crop_fraction: in (0, 1]; 1.0 keeps a square image whole, 0.875 is ImageNet's crop.
        allow_upsample: allow a resolution above ``source_size``.

    Returns:
        The albumentations ``Compose``.
    """
    source_size = check_int("source_size", source_size)
    resolution = check_resolution("resolution", resolution, source_size, allow_upsample)
    crop_fraction = check_float("crop_fraction", crop_fraction, 0.0, 1.0, low_open=True)
    mean, std = check_stats(mean, std)
    short = max(resolution, round(resolution / crop_fraction))
    return A.Compose([A.SmallestMaxSize(max_size=short, interpolation=cv2.INTER_LINEAR, area_for_downscale="image"),
                      A.CenterCrop(resolution, resolution), A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
                      A.ToTensorV2()])
