"""hrlib: the library behind the course on training image classifiers on high-resolution images.

One package per theme, named after the lesson that teaches it (the README's "Using hrlib" table lists every module):

- ``hrlib.data`` (lessons 00, 03): procedural slides with ground truth, domain generators, bundled real images;
- ``hrlib.models`` (lesson 00): small classifiers, what they cost, ``eval_mode``;
- ``hrlib.staging`` (lesson 01): resolution schedules, each stage's transforms, FixRes;
- ``hrlib.train`` (lessons 01, 08): ``fit``/``evaluate``, the one epoch loop, the ``hrlib train`` runner, checkpoints;
- ``hrlib.augment`` (lessons 02, 03): local and domain augmentation, MixUp/CutMix, annotation checks, batch monitor;
- ``hrlib.domain`` (lesson 04): MixStyle, AdaIN, per-domain BatchNorm, colour alignment, the shift experiment;
- ``hrlib.pipeline`` (lesson 05): tile stores, conversion, image decoding, shards, loaders;
- ``hrlib.diagnostics`` (lesson 06): gradient norms, detectors, clipping, curves, memory, pruning;
- ``hrlib.analysis`` (lesson 07): error modes, failure sets, Grad-CAM and its scores, run records, bundles;
- ``hrlib.evidence`` (every lesson): paired comparisons with intervals, claims judged by rules declared first;
- at the top: ``hrlib.config`` (profile, device, seed), ``hrlib.viz`` (figures), ``hrlib.bench`` (benchmarks);
  ``hrlib.exercises`` holds the self-checking exercises.
"""

from hrlib.config import Profile, describe, get_device, get_profile, seed_everything

__all__ = ["Profile", "describe", "get_device", "get_profile", "seed_everything"]
__version__ = "0.1.0"
