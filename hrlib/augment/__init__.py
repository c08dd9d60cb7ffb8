"""Augmentation that understands high-resolution and domain images (lessons 02 and 03).

Submodules, one idea each:

- ``hrlib.augment.local``: the high-resolution fine-tune stage (GridMask, non-overlapping CutOut, aspect-bounded
  erasing; ``GridMask``, ``Cutout`` and ``RandomErasing`` keep boxes aligned with the pixels left visible, which
  albumentations' own hole transforms do not), MixUp/CutMix for ``fit(batch_transform=...)``, label-aligned
  pipelines for boxes, masks and keypoints and their measured coordinate precision (lesson 02);
- ``hrlib.augment.explore``: an ipywidgets explorer of augmentation strengths (a static figure when headless);
- ``hrlib.augment.monitor``: a batch statistics monitor that flags over-blurring and normalization bugs;
- ``hrlib.augment.stain``: HED stain jitter calibrated to the papers' units, and an implausible-colour measure;
- ``hrlib.augment.spectral``: band-consistent noise for multispectral images;
- ``hrlib.augment.presets``: domain presets (industrial, X-ray, document, pathology), letterboxing and
  task-fitted normalization (lesson 03).

The most used names are importable from here, e.g. ``from hrlib.augment import occlusion_policy, hed_jitter``.
"""

from hrlib.augment.local import (
    Cutout,
    GridMask,
    NonOverlappingCutout,
    RandomErasing,
    aligned,
    alignment_error,
    mixing,
    nonoverlapping_holes,
    occlusion_policy,
)
from hrlib.augment.monitor import BatchStatsMonitor
from hrlib.augment.presets import dataset_stats, letterbox, preset
from hrlib.augment.spectral import band_noise
from hrlib.augment.stain import HEDJitter, hed_jitter, od_residual

__all__ = ["BatchStatsMonitor", "Cutout", "GridMask", "HEDJitter", "NonOverlappingCutout", "RandomErasing", "aligned",
           "alignment_error", "band_noise", "dataset_stats", "hed_jitter", "letterbox", "mixing",
           "nonoverlapping_holes", "occlusion_policy", "od_residual", "preset"]
