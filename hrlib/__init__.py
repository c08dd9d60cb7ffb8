"""hrlib: the library behind the course on training image classifiers on high-resolution images.

Modules mirror the lessons: ``hrlib.config`` (profile, device, seed), ``hrlib.data`` (procedural slides with
ground truth, bundled real images), ``hrlib.synth`` (multispectral, industrial, X-ray and document generators),
``hrlib.augment`` (local and domain augmentation, batch monitor), ``hrlib.qa`` (annotation checks), ``hrlib.viz``
(figures), ``hrlib.models`` (small classifiers and a cost counter), ``hrlib.cam`` (Grad-CAM and Score-CAM scored
against ground-truth boxes), ``hrlib.analysis`` (error modes, failure sets), ``hrlib.runs`` (run records),
``hrlib.bundle`` (preprocessing shipped with the model), ``hrlib.exercises`` (self-checking exercises).
"""

from hrlib.config import Profile, describe, get_device, get_profile, seed_everything

__all__ = ["Profile", "describe", "get_device", "get_profile", "seed_everything"]
__version__ = "0.1.0"
