"""hrlib: the library behind the course on training image classifiers on high-resolution images.

Modules mirror the lessons: ``hrlib.config`` (profile, device, seed), ``hrlib.data.slides`` (procedural slides with
ground truth, bundled real images), ``hrlib.data.synth`` (multispectral, industrial, X-ray and document generators),
``hrlib.augment`` (local and domain augmentation, batch monitor), ``hrlib.augment.qa`` (annotation checks),
``hrlib.viz``
(figures), ``hrlib.models`` (small classifiers and a cost counter), ``hrlib.analysis.cam`` (Grad-CAM and Score-CAM
scored
against ground-truth boxes), ``hrlib.analysis.errors`` (error modes, failure sets), ``hrlib.analysis.runs`` (run
records),
``hrlib.analysis.bundle`` (preprocessing shipped with the model), ``hrlib.exercises`` (self-checking exercises).
"""

from hrlib.config import Profile, describe, get_device, get_profile, seed_everything

__all__ = ["Profile", "describe", "get_device", "get_profile", "seed_everything"]
__version__ = "0.1.0"
