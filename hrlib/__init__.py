"""hrlib: the library behind the course on training image classifiers on high-resolution images.

Modules mirror the lessons: ``hrlib.config`` (profile, device, seed), ``hrlib.data`` (procedural slides with
ground truth, bundled real images), ``hrlib.viz`` (figures), ``hrlib.models`` (small classifiers and a cost
counter), ``hrlib.exercises`` (self-checking exercises).
"""

from hrlib.config import Profile, describe, get_device, get_profile, seed_everything

__all__ = ["Profile", "describe", "get_device", "get_profile", "seed_everything"]
__version__ = "0.1.0"
