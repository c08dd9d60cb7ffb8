"""The data of lesson 04's measured domain shift: labeled source sites, an unlabeled target site, a target test set.

:func:`make_shift` renders the slides of ``hrlib.data.slides`` at the source sites (labeled), at the target site (a pool
whose labels are used only by the oracle) and a target test set, and returns a :class:`ShiftData`. Image-level
techniques (LAB alignment, FDA, elastic) are computed once per :class:`ShiftData` (``variants`` augmented copies per
source image), so that the seeds of ``hrlib.domain.experiment`` vary only the training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hrlib._checks import check_callable, check_float, check_int
from hrlib.data.slides import CLASS_NAMES, get_site, make_slide
from hrlib.domain.color import fda, lab_align, lab_reference, source_elastic

__all__ = ["ShiftData", "make_shift"]


@dataclass
class ShiftData:
    """Images (N, H, W, 3) uint8 and labels (N,) int64 of a source-to-target shift, made by :func:`make_shift`.

    Attributes:
        source, source_labels: the labeled source images.
        source_domains: each source image's site, an index into ``source_sites``.
        pool: target images without labels for the techniques (``pool_labels`` only for the oracle).
        test, test_labels: the target evaluation set.
        source_sites, target_site: site names (``hrlib.data.slides.SITES``).
        seed: the seed the layouts and the image-level variants were drawn from.
        variants: augmented copies per source image for the image-level techniques.
    """

    source: np.ndarray
    source_labels: np.ndarray
    source_domains: np.ndarray
    pool: np.ndarray
    pool_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    source_sites: tuple[str, ...]
    target_site: str
    seed: int = 0
    variants: int = 2

    @property
    def size(self) -> int:
        """The images' side in pixels."""
        return int(self.source.shape[1])

    @cached_property
    def lab(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Source, pool and test images LAB-aligned to the target pool's reference (L histogram, A/B means)."""
        ref = lab_reference(list(self.pool))
        return tuple(np.stack([lab_align(im, ref) for im in ims]) for ims in (self.source, self.pool, self.test))

    @cached_property
    def fda_variants(self) -> np.ndarray:
        """(variants, N, H, W, 3): each source image with a random target pool image's low-frequency amplitude."""
        beta = max(0.03, 2.5 / self.size)  # albumentations' FDA ignores the mean colour below 2 / side
        t = fda(list(self.pool), beta_limit=(beta, 2 * beta), seed=self.seed)
        return np.stack([np.stack([t(image=im)["image"] for im in self.source]) for _ in range(self.variants)])

    @cached_property
    def elastic_variants(self) -> np.ndarray:
        """(variants, N, H, W, 3): source images under small-alpha elastic deformation (about 1 px RMS)."""
        t = source_elastic(alpha=50.0, sigma=5.0, p=1.0, seed=self.seed)
        return np.stack([np.stack([t(image=im)["image"] for im in self.source]) for _ in range(self.variants)])


def _check_sites(source: object, target: object) -> tuple[tuple[str, ...], str]:
    """Source and target site names (``hrlib.data.slides.SITES``), the target not among the sources."""
    if isinstance(source, str) or not isinstance(source, Sequence) or not source:
        raise ValueError(f"source must be a non-empty sequence of site names, got {source!r}")
    try:
        sites = tuple(get_site(s).name for s in source)
    except ValueError as exc:
        raise ValueError(f"source must hold site names: {exc}") from exc
    try:
        target = get_site(target).name
    except ValueError as exc:
        raise ValueError(f"target must be a site name: {exc}") from exc
    if target in sites:
        raise ValueError(f"target must differ from the source sites {sites}, got {target!r}")
    return sites, target


def make_shift(size: int = 96, *, n_source: int = 60, n_pool: int = 120, n_test: int = 90,
               source: Sequence[str] = ("A", "C"), target: str = "B", seed: int = 0, target_frac: float = 0.1,
               variants: int = 2, progress: Callable | None = None) -> ShiftData:
    """Render a shift: ``n_source`` labeled slides per source site, ``n_pool`` and ``n_test`` target slides.

    Classes are balanced in every split (label ``i % 3`` for the ``i``-th slide).

    Args:
        size: side in pixels, >= 32.
        n_source: slides per source site, >= 1.
        n_pool: unlabeled target slides for the techniques, >= 1.
        n_test: target test slides, >= 1.
        source: site names (``hrlib.data.slides.SITES``) of the labeled domains.
        target: the unseen site, not among ``source``.
        seed: the layouts are drawn from it (every split and site has its own layouts), >= 0.
        target_frac: target diameter / side, in (0, 1].
        variants: augmented copies per source image for the image-level techniques, >= 1.
        progress: optional wrapper for the rendering loop, ``progress(iterable, desc=...)`` (e.g. ``tqdm``).

    Returns:
        The :class:`ShiftData`.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """
    size, seed = check_int("size", size, 32), check_int("seed", seed, 0)
    counts = [check_int(n, v) for n, v in (("n_source", n_source), ("n_pool", n_pool), ("n_test", n_test))]
    sites, target = _check_sites(source, target)
    check_callable("progress", progress, allow_none=True, hint="progress(iterable, desc=...)")
    target_frac = check_float("target_frac", target_frac, 0.0, 1.0, low_open=True, hint="target diameter / side")
    variants = check_int("variants", variants)
    jobs = [(s, d, i) for d, s in enumerate(sites) for i in range(counts[0])]
    jobs += [(target, -1, i) for i in range(counts[1])] + [(target, -2, i) for i in range(counts[2])]
    images, labels = [], []
    for site, split, i in (progress(jobs, desc="rendering slides") if progress else jobs):
        label = i % len(CLASS_NAMES)
        layout_seed = int(np.random.default_rng([seed, split + 2, i]).integers(2**31))
        images.append(make_slide(size, label=label, seed=layout_seed, site=site, target_frac=target_frac).image)
        labels.append(label)
    images, labels = np.stack(images), np.asarray(labels, np.int64)
    n_src, n_pool = counts[0] * len(sites), counts[1]
    return ShiftData(images[:n_src], labels[:n_src], np.repeat(np.arange(len(sites)), counts[0]),
                     images[n_src:n_src + n_pool], labels[n_src:n_src + n_pool],
                     images[n_src + n_pool:], labels[n_src + n_pool:], sites, target, seed, variants)
