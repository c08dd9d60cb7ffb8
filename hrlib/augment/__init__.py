"""Augmentation that understands high-resolution and domain images (lessons 02 and 03).

Submodules: ``hrlib.augment.local`` (the high-resolution stage policy: GridMask, non-overlapping CutOut,
aspect-bounded erasing, MixUp/CutMix; label-aligned pipelines for boxes, masks and keypoints),
``hrlib.augment.monitor`` (batch statistics monitor), ``hrlib.augment.stain`` (HED stain jitter),
``hrlib.augment.spectral`` (band-consistent noise), ``hrlib.augment.presets`` (domain presets).
"""
