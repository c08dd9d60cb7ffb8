"""Image-level alignment between domains (lesson 04, claims C24, C25): per-domain statistics, LAB alignment,
histogram matching, FDA and source-only elastic deformation.

* :func:`domain_stats` and :class:`PerDomainNormalize` standardize each image with its own domain's mean/std.
  ``hrlib.train.fit`` calls its transform as ``transform(image=image)`` only, so a domain cannot reach a
  transform
  there: :class:`PerDomainDataset` wraps a dataset and moves each uint8 image from its domain's statistics to one
  common ``reference`` (``(x - mean_d) / std_d * std_ref + mean_ref``, rounded and clipped), so that fit's usual
  ``A.Normalize(reference)`` then yields ``(x - mean_d) / std_d``.
* :func:`lab_align` (Reinhard-style, in CIELAB): L is histogram-matched to a target :class:`LabReference` (or
  equalized with CLAHE) and A/B are shifted so their means equal the reference's.
* :func:`histogram_matching` and :func:`fda` wrap albumentations 2.0.8 ``HistogramMatching`` and ``FDA``, which take
  their reference images per call from ``data["hm_metadata"]`` / ``data["fda_metadata"]`` (the constructor's
  ``reference_images`` is deprecated): :class:`ReferenceCompose` injects them, so ``t(image=image)`` works in fit.
* :func:`source_elastic`: ``A.ElasticTransform`` with a small alpha. Units in 2.0.8: Gaussian noise is divided by its
  maximum |value| (so in [-1, 1]), blurred with a Gaussian of ``sigma`` pixels, then multiplied by ``alpha`` pixels;
  the RMS displacement is about ``0.09-0.11 * alpha / sigma`` pixels on 128-256 px images (measured by
  :func:`elastic_rms_displacement`), ~2.5x less than 1.x's uniform noise. The 2.0.8 default ``alpha=1, sigma=50``
  moves pixels by ~0.02 px: a no-op.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.augmentations.geometric.functional import generate_displacement_fields
from skimage import color, exposure
from torch.utils.data import Dataset

from hrlib._checks import check_float, check_image, check_int
from hrlib.augment.presets import dataset_stats

__all__ = ["LabAlign", "LabReference", "PerDomainDataset", "PerDomainNormalize", "ReferenceCompose", "domain_stats",
           "elastic_rms_displacement", "fda", "histogram_matching", "lab_align", "lab_reference", "source_elastic"]

Stats = tuple[Sequence[float], Sequence[float]]
L_MODES: tuple[str, ...] = ("histogram", "clahe")
_QUANTILES = 4097  # L quantiles kept per reference: fine enough for the tails of a few 512 px images


def _check_rgb(image: object, name: str = "image") -> np.ndarray:
    """``image`` if an HxWx3 uint8 RGB array, or raise naming ``name`` (``hrlib._checks.check_image``)."""
    return check_image(name, image, channels=(3,), gray=False)


def _check_images(name: str, images: object) -> list[np.ndarray]:
    """``images`` as a non-empty list of HxWx3 uint8 RGB arrays, or raise naming ``name`` (or ``name[i]``)."""
    if isinstance(images, str | bytes | np.ndarray) or not isinstance(images, Sequence):
        raise TypeError(f"{name} must be a non-empty sequence of HxWx3 uint8 RGB arrays, got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of HxWx3 uint8 RGB arrays, got an empty one")
    return [_check_rgb(im, f"{name}[{i}]") for i, im in enumerate(images)]


def _check_seed(seed: object) -> int | None:
    return None if seed is None else check_int("seed", seed, 0)


def _check_transforms(name: str, transforms: object) -> list[Any]:
    if isinstance(transforms, str | bytes) or not isinstance(transforms, Sequence):
        raise TypeError(f"{name} must be a sequence of albumentations transforms, got {type(transforms).__name__}")
    for i, t in enumerate(transforms):
        if not isinstance(t, A.BasicTransform | A.BaseCompose):
            raise TypeError(f"{name}[{i}] must be an albumentations transform, got {type(t).__name__}")
    return list(transforms)


def _check_range(name: str, value: object, low: float, high: float) -> tuple[float, float]:
    """A float or a ``(lo, hi)`` pair with ``low <= lo <= hi <= high``, or raise naming ``name``."""
    pair = (value, value) if isinstance(value, int | float | np.number) and not isinstance(value, bool) else value
    if isinstance(pair, str | bytes) or not isinstance(pair, Sequence | np.ndarray) or len(pair) != 2:
        raise TypeError(f"{name} must be a float or a (low, high) pair in [{low:g}, {high:g}], got {value!r}")
    lo, hi = (check_float(f"{name}[{i}]", v, low, high) for i, v in enumerate(pair))
    if lo > hi:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value!r}")
    return lo, hi


def _check_stats(name: str, stats: object) -> tuple[np.ndarray, np.ndarray]:
    try:
        mean, std = (np.asarray(v, dtype=np.float64) for v in stats)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        mean = std = np.zeros(0)
    if mean.shape != (3,) or std.shape != (3,) or not np.isfinite([mean, std]).all() or (std <= 0).any():
        raise ValueError(f"{name} must be (mean, std), 3 floats each in 0-1 units with std > 0, got {stats!r}")
    return mean, std


def domain_stats(images: Sequence[np.ndarray]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of one domain's images, all pixels pooled.

    Args:
        images: a non-empty sequence of HxWx3 uint8 RGB images (sizes may differ).

    Returns:
        ``(mean, std)``, three floats each, in 0-1 units.
    """
    return dataset_stats(_check_images("images", images))


class PerDomainNormalize(A.ImageOnlyTransform):
    """``(image / 255 - mean_d) / std_d`` (float32) with the statistics of the image's domain ``d``.

    Call as ``t(image=image, domain=d)`` or inside ``A.Compose`` with a ``domain=`` keyword; an unknown or missing
    domain raises ``ValueError``.

    Args:
        stats: ``{domain: (mean, std)}`` from :func:`domain_stats` (0-1 units, std > 0).
        p: probability of applying, in [0, 1].
    """

    def __init__(self, stats: Mapping[Hashable, Stats], p: float = 1.0) -> None:
        super().__init__(p=p)
        if not isinstance(stats, Mapping) or not stats:
            raise ValueError(f"stats must be a non-empty dict {{domain: (mean, std)}}, got {stats!r}")
        self.stats = {d: _check_stats(f"stats[{d!r}]", s) for d, s in stats.items()}

    @property
    def targets_as_params(self) -> list[str]:
        """The data keys the parameters depend on: ``["domain"]``."""
        return ["domain"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """The ``mean`` and ``std`` of ``data["domain"]`` (albumentations calls it; an unknown domain raises)."""
        domain = data.get("domain")
        if domain not in self.stats:
            raise ValueError(f"domain must be one of {list(self.stats)}, got {domain!r}")
        mean, std = self.stats[domain]
        return {"mean": mean, "std": std}

    def apply(self, img: np.ndarray, mean: np.ndarray, std: np.ndarray, **params: Any) -> np.ndarray:
        """Standardize one HxWx3 uint8 image with its domain's ``mean`` and ``std`` (float32 out)."""
        return ((img.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


class PerDomainDataset(Dataset):
    """Items ``(image', label, ...)`` of ``dataset`` with each uint8 image moved from its domain's statistics to
    ``reference``'s: ``image' = clip(rint(255 * ((x - mean_d) / std_d * std_ref + mean_ref)))``, ``x = image / 255``.

    Values beyond [0, 255] are clipped.

    Args:
        dataset: a map-style dataset of ``(uint8 HxWx3 image, label, ...)`` items.
        stats: ``{domain: (mean, std)}`` of every domain (0-1 units, std > 0).
        reference: the common ``(mean, std)`` (e.g. the source's), to pass to ``A.Normalize`` in fit's transform.
        domains: the domain of each item (length ``len(dataset)``); default ``dataset.sites`` cycled over the items
            (``SlideDataset``).
    """

    def __init__(self, dataset: Dataset, stats: Mapping[Hashable, Stats], reference: Stats,
                 domains: Sequence[Hashable] | None = None) -> None:
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")) or isinstance(dataset, str | bytes):
            raise TypeError(f"dataset must be a map-style Dataset of (image, label, ...) items, got "
                            f"{type(dataset).__name__}")
        if not isinstance(stats, Mapping):
            raise TypeError(f"stats must be a dict {{domain: (mean, std)}}, got {type(stats).__name__}")
        if domains is not None and (isinstance(domains, str | bytes) or not isinstance(domains, Sequence | np.ndarray)
                                    or not all(isinstance(d, Hashable) for d in domains)):
            raise TypeError(f"domains must be a sequence of hashable domain keys (one per item) or None, got "
                            f"{domains!r:.60}")
        n, sites = len(dataset), getattr(dataset, "sites", None)  # type: ignore[arg-type]
        if domains is None and sites is None:
            raise ValueError("domains must be given: the dataset has no `sites` attribute")
        domains = [sites[i % len(sites)] for i in range(n)] if domains is None else domains
        if len(domains) != n:
            raise ValueError(f"domains must have one entry per item ({n}), got {len(domains)}")
        unknown = sorted({repr(d) for d in domains if d not in stats})
        if unknown:
            raise ValueError(f"stats must cover every domain, missing {', '.join(unknown)}")
        self.dataset, self.domains = dataset, list(domains)
        ref_mean, ref_std = _check_stats("reference", reference)
        self._affine = {}  # domain -> (scale, offset) on 0-255 values
        for d, s in stats.items():
            mean, std = _check_stats(f"stats[{d!r}]", s)
            self._affine[d] = (ref_std / std, 255.0 * (ref_mean - mean * ref_std / std))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        image, *rest = self.dataset[i]
        scale, offset = self._affine[self.domains[i]]
        out = np.clip(np.rint(_check_rgb(image).astype(np.float64) * scale + offset), 0, 255).astype(np.uint8)
        return (out, *rest)


@dataclass(frozen=True)
class LabReference:
    """A target's colour in CIELAB, made by :func:`lab_reference`.

    Attributes:
        l_quantiles: 4097 quantiles of the pooled L channel, 0-100.
        a_mean, b_mean: the mean A and B.
    """

    l_quantiles: np.ndarray
    a_mean: float
    b_mean: float


def lab_reference(images: Sequence[np.ndarray]) -> LabReference:
    """Pool a few target images into a :class:`LabReference` (all pixels weigh the same).

    Args:
        images: a non-empty sequence of HxWx3 uint8 RGB images.

    Returns:
        The reference.
    """
    labs = np.concatenate([color.rgb2lab(im).reshape(-1, 3) for im in _check_images("images", images)])
    # inverted_cdf: step quantiles, the convention of match_histograms' source CDF, so an image is its own fixed point
    l_quantiles = np.quantile(labs[:, 0], np.linspace(0, 1, _QUANTILES), method="inverted_cdf")
    return LabReference(l_quantiles, float(labs[:, 1].mean()), float(labs[:, 2].mean()))


def lab_align(image: np.ndarray, reference: np.ndarray | LabReference, *, l_mode: str = "histogram",
              clip_limit: float = 0.01) -> np.ndarray:
    """Align ``image``'s colour to ``reference`` in CIELAB.

    L is mapped first, then A and B are shifted so their means equal the reference's (before clipping to the RGB
    gamut and rounding).

    Args:
        image: HxWx3 uint8 RGB.
        reference: a :class:`LabReference` or one HxWx3 uint8 RGB image.
        l_mode: ``"histogram"`` maps L onto the reference's L distribution (``skimage.exposure.match_histograms``);
            ``"clahe"`` equalizes L locally (``equalize_adapthist``) and ignores the reference's L.
        clip_limit: CLAHE's clip limit, in (0, 1].

    Returns:
        HxWx3 uint8 RGB of the image's shape.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """
    image = _check_rgb(image)
    if isinstance(reference, np.ndarray):
        reference = lab_reference([_check_rgb(reference, "reference")])
    if not isinstance(reference, LabReference):
        raise TypeError(f"reference must be a LabReference or an HxWx3 uint8 RGB array, got {type(reference).__name__}")
    if l_mode not in L_MODES:
        raise ValueError(f"l_mode must be one of {L_MODES}, got {l_mode!r}")
    clip_limit = check_float("clip_limit", clip_limit, 0.0, 1.0, low_open=True)
    lab = color.rgb2lab(image)  # float64, L in [0, 100]
    if l_mode == "histogram":
        lab[..., 0] = exposure.match_histograms(lab[..., 0], reference.l_quantiles[None, :])
    else:
        lab[..., 0] = 100.0 * exposure.equalize_adapthist(lab[..., 0] / 100.0, clip_limit=clip_limit)
    lab[..., 1] += reference.a_mean - lab[..., 1].mean()
    lab[..., 2] += reference.b_mean - lab[..., 2].mean()
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, as documented
        warnings.filterwarnings("ignore", message="Conversion from CIE-LAB", category=UserWarning)
        rgb = color.lab2rgb(lab)  # float in [0, 1]
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


class LabAlign(A.ImageOnlyTransform):
    """An albumentations transform around :func:`lab_align` with a fixed reference (for fit's pipelines).

    Args:
        reference: a :class:`LabReference` or one HxWx3 uint8 RGB image.
        l_mode: as in :func:`lab_align`.
        p: probability of applying, in [0, 1].
    """

    def __init__(self, reference: np.ndarray | LabReference, l_mode: str = "histogram", p: float = 1.0) -> None:
        super().__init__(p=p)
        if isinstance(reference, np.ndarray):
            reference = lab_reference([_check_rgb(reference, "reference")])
        lab_align(np.zeros((1, 1, 3), np.uint8), reference, l_mode=l_mode)  # validate now
        self.reference, self.l_mode = reference, l_mode

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        """Align one HxWx3 uint8 RGB image to the reference."""
        return lab_align(img, self.reference, l_mode=self.l_mode)


class ReferenceCompose:
    """``A.Compose(transforms, seed=seed)`` called with ``metadata`` added to every call's data.

    So ``t(image=image)["image"]`` works, as ``hrlib.train.fit`` calls transforms.

    Args:
        transforms: albumentations transforms.
        metadata: extra keys of every call (e.g. ``{"fda_metadata": images}``).
        seed: the Compose seed (>= 0), or None.
    """

    def __init__(self, transforms: Sequence[Any], metadata: Mapping[str, list[np.ndarray]], seed: int | None = None):
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
            raise TypeError(f"metadata must be a dict {{key: value}} with str keys, got {metadata!r:.60}")
        transforms = _check_transforms("transforms", transforms)
        self.compose, self.metadata = A.Compose(transforms, seed=_check_seed(seed)), dict(metadata)

    def __call__(self, **data: Any) -> dict[str, Any]:
        """Run the Compose on ``data`` (e.g. ``image=...``) with the metadata added; return its output dict."""
        return self.compose(**{**self.metadata, **data})


def _references(reference_images: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _check_images("reference_images", reference_images)


def histogram_matching(reference_images: Sequence[np.ndarray], *, blend_ratio: tuple[float, float] = (1.0, 1.0),
                       p: float = 1.0, after: Sequence[Any] = (), seed: int | None = None) -> ReferenceCompose:
    """Per-channel RGB histogram matching to one reference drawn per call (``A.HistogramMatching``).

    Args:
        reference_images: a non-empty sequence of HxWx3 uint8 RGB images.
        blend_ratio: range of the weight of the matched image (0 = original, 1 = fully matched), within [0, 1].
        p: probability of applying, in [0, 1].
        after: transforms appended (e.g. ``A.Normalize``, ``ToTensorV2``).
        seed: the Compose seed (>= 0), or None.

    Returns:
        The :class:`ReferenceCompose`.
    """
    check_float("p", p, 0.0, 1.0)
    references, after = _references(reference_images), _check_transforms("after", after)
    blend_ratio = _check_range("blend_ratio", blend_ratio, 0.0, 1.0)
    step = A.HistogramMatching(blend_ratio=blend_ratio, p=p, metadata_key="hm_metadata")
    return ReferenceCompose([step, *after], {"hm_metadata": references}, _check_seed(seed))


def fda(reference_images: Sequence[np.ndarray], *, beta_limit: tuple[float, float] | float = (0.02, 0.05),
        p: float = 1.0, after: Sequence[Any] = (), seed: int | None = None) -> ReferenceCompose:
    """Fourier domain adaptation (Yang & Soatto, CVPR 2020; ``A.FDA``): the low-frequency amplitude spectrum of one
    reference drawn per call (resized to the image) replaces the image's.

    Trap in 2.0.8: the window is rows/columns ``[int(c - b), int(c + b))`` with ``b = floor(beta * side)`` and
    ``c = (side - 1) / 2``, so for an even side it misses the zero frequency (the mean colour) unless ``b >= 2``:
    ``beta >= 2 / side`` (0.016 at 128 px); a smaller beta leaves the mean colour unchanged.

    Args:
        reference_images: a non-empty sequence of HxWx3 uint8 RGB images.
        beta_limit: range of the swapped window's half-size as a fraction of the image side, within [0, 0.5] (the
            paper uses 0.01-0.09 on 1024 px images).
        p, after, seed: as in :func:`histogram_matching`.

    Returns:
        The :class:`ReferenceCompose`.
    """
    check_float("p", p, 0.0, 1.0)
    references, after = _references(reference_images), _check_transforms("after", after)
    _check_range("beta_limit", beta_limit, 0.0, 0.5)
    step = A.FDA(beta_limit=beta_limit, p=p, metadata_key="fda_metadata")
    return ReferenceCompose([step, *after], {"fda_metadata": references}, _check_seed(seed))


def source_elastic(alpha: float = 50.0, sigma: float = 5.0, p: float = 0.5,
                   seed: int | None = None) -> A.ElasticTransform:
    """``A.ElasticTransform`` for the source domain only (C25); the defaults move pixels ~1 px RMS (128-256 px).

    Args:
        alpha: displacement scale in pixels, >= 0 (see the module notes).
        sigma: smoothness in pixels, > 0.
        p: probability of applying, in [0, 1].
        seed: the transform's own seed (>= 0), or None to leave it to ``A.Compose(seed=...)``.

    Returns:
        The transform.
    """
    t = A.ElasticTransform(alpha=check_float("alpha", alpha, 0.0), sigma=check_float("sigma", sigma, 0.0,
                           low_open=True), p=check_float("p", p, 0.0, 1.0), border_mode=cv2.BORDER_REFLECT_101)
    if seed is not None:
        t.set_random_seed(check_int("seed", seed, 0))
    return t


def elastic_rms_displacement(alpha: float, sigma: float, size: int = 128, *, draws: int = 3,
                             seed: int = 0) -> float:
    """The RMS displacement of ``A.ElasticTransform(alpha, sigma)`` fields, averaged over draws.

    Args:
        alpha: displacement scale in pixels, >= 0.
        sigma: smoothness in pixels, > 0.
        size: the side of the (square) images, >= 1.
        draws: fields drawn, >= 1.
        seed: >= 0.

    Returns:
        The displacement in pixels.
    """
    size, draws, seed = check_int("size", size), check_int("draws", draws), check_int("seed", seed, 0)
    alpha = check_float("alpha", alpha, 0.0, hint="displacement scale in px")
    sigma = check_float("sigma", sigma, 0.0, low_open=True, hint="smoothness in px")
    fields = [generate_displacement_fields((size, size), alpha, sigma, False, (0, 0), np.random.default_rng([seed, s]),
                                           "gaussian") for s in range(draws)]
    return float(np.mean([np.sqrt((dx.astype(np.float64) ** 2 + dy**2).mean()) for dx, dy in fields]))

