"""Augmentation that understands high-resolution and domain images (lessons 02 and 03), and annotation checks.

Submodules, one idea each:

- ``hrlib.augment.local``: the high-resolution fine-tune stage's occlusion (GridMask, non-overlapping CutOut,
  aspect-bounded erasing; ``GridMask``, ``Cutout`` and ``RandomErasing`` keep boxes aligned with the pixels left
  visible, which albumentations' own hole transforms do not) (lesson 02);
- ``hrlib.augment.mixup``: MixUp/CutMix for ``fit(batch_transform=...)``, with their own generator (lesson 02);
- ``hrlib.augment.aligned``: label-aligned pipelines for boxes, masks and keypoints and their measured coordinate
  precision (lesson 02);
- ``hrlib.augment.explore``: an ipywidgets explorer of augmentation strengths (a static figure when headless)
  (lesson 02);
- ``hrlib.augment.monitor``: a batch statistics monitor that flags over-blurring and normalization bugs (lesson 02);
- ``hrlib.augment.qa``: automatic annotation checks and planted errors (lesson 02);
- ``hrlib.augment.stain``: HED stain jitter calibrated to the papers' units, and an implausible-colour measure
  (lesson 03);
- ``hrlib.augment.spectral``: band-consistent noise for multispectral images (lesson 03);
- ``hrlib.augment.presets``: domain presets (industrial, X-ray, document, pathology), letterboxing and
  task-fitted normalization (lesson 03).
"""

from hrlib.augment.aligned import Alignment, aligned, alignment_error
from hrlib.augment.explore import STRENGTHS, explorer, strength_grid, strength_pipeline, strength_stack, strength_sweep
from hrlib.augment.local import Cutout, GridMask, NonOverlappingCutout, RandomErasing, mean_fill, nonoverlapping_holes
from hrlib.augment.local import occlusion_policy
from hrlib.augment.mixup import MIX_KINDS, BatchMix, mixing
from hrlib.augment.monitor import BatchStatsMonitor, StatsFlag
from hrlib.augment.presets import DOMAINS, FLIPS, IMAGENET_MEAN, IMAGENET_STD, RESIZES, ROTATIONS, dataset_stats
from hrlib.augment.presets import imagenet_stats, letterbox, preset, resize_steps, train_and_evaluate
from hrlib.augment.qa import KINDS, Annotation, Finding, QAReport, annotations_from_slides, audit, plant_errors
from hrlib.augment.spectral import NOISE_MODES, band_correlation, band_noise, normalized_difference
from hrlib.augment.stain import CALIBRATION_ROWS, SKIMAGE_PER_PAPER, STAIN_NAMES, HEDJitter, calibration_table
from hrlib.augment.stain import hed_adjust, hed_jitter, od_residual, od_residual_map, paper_hed_jitter

__all__ = [
    "CALIBRATION_ROWS", "DOMAINS", "FLIPS", "IMAGENET_MEAN", "IMAGENET_STD", "KINDS", "MIX_KINDS", "NOISE_MODES",
    "RESIZES", "ROTATIONS", "SKIMAGE_PER_PAPER", "STAIN_NAMES", "STRENGTHS", "Alignment", "Annotation", "BatchMix",
    "BatchStatsMonitor", "Cutout", "Finding", "GridMask", "HEDJitter", "NonOverlappingCutout", "QAReport",
    "RandomErasing", "StatsFlag", "aligned", "alignment_error", "annotations_from_slides", "audit",
    "band_correlation", "band_noise", "calibration_table", "dataset_stats", "explorer", "hed_adjust", "hed_jitter",
    "imagenet_stats", "letterbox", "mean_fill", "mixing", "nonoverlapping_holes", "normalized_difference",
    "occlusion_policy", "od_residual", "od_residual_map", "paper_hed_jitter", "plant_errors", "preset",
    "resize_steps", "strength_grid", "strength_pipeline", "strength_stack", "strength_sweep", "train_and_evaluate",
]
