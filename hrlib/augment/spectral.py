"""Band-consistent noise for multispectral images (lesson 03, claim C4): keep the physics that ties the bands
together.

Neighbouring bands of a real sensor see the same scene, so their values are strongly correlated and spectral
indices such as NDVI ``(nir - red) / (nir + red)`` carry the class. Noise drawn independently per band breaks that
correlation and distorts the indices; :func:`band_noise` offers three modes at the same noise level ``sigma``:

* ``"independent"``: a separate Gaussian map per band (what per-channel noise does);
* ``"shared"``: one Gaussian map added to every band, times a per-band ``scale`` (illumination-like);
* ``"multiplicative"``: one map ``m = 1 + sigma * n`` (floored at 0) multiplying every band: band ratios, hence
  NDVI, are preserved exactly (up to clipping at the value range).

albumentations 2.0.8 has the last two for any number of bands (both accept HxWx4 float32): ``A.GaussNoise(
std_range=(s, s), per_channel=False)`` adds one map to all bands (``"shared"`` with scale 1) and
``A.MultiplicativeNoise(multiplier=(1 - a, 1 + a), per_channel=False, elementwise=True)`` multiplies all bands by
one uniform map (ratio-preserving). Use them in pipelines; ``band_noise`` is the functional form with an explicit
``rng``, a declared band count and the independent mode for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hrlib._checks import check_bool, check_float, check_image, check_int

__all__ = ["NOISE_MODES", "band_correlation", "band_noise", "index_error", "normalized_difference"]

NOISE_MODES: tuple[str, ...] = ("independent", "shared", "multiplicative")


def _check_bands(image: object, bands: int | None = None, name: str = "image") -> np.ndarray:
    """An HxWxB float (finite) or uint8 image, with B = ``bands`` when given; raise naming ``name``."""
    arr = check_image(name, image, channels=None, gray=False, dtype="numeric")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must hold float reflectances or uint8 values, got {arr.dtype}")
    if bands is not None and arr.shape[2] != check_int("bands", bands):
        raise ValueError(f"image must have bands={bands} channels (the declared band count), got "
                         f"{arr.shape[2]} channels in shape {arr.shape}")
    return arr


def band_noise(image: np.ndarray, sigma: float, *, mode: str = "shared", rng: np.random.Generator,
               bands: int | None = None, scale: Sequence[float] | None = None, clip: bool = True) -> np.ndarray:
    """Add noise to a multispectral image, independently per band or consistently across bands.

    Args:
        image: HxWxB float reflectance (usually in [0, 1]) or uint8 (treated as ``image / 255``).
        sigma: noise standard deviation, >= 0: in reflectance units for ``"independent"``/``"shared"``; relative
            (a fraction of the value) for ``"multiplicative"``.
        mode: one of ``NOISE_MODES`` (see the module docstring).
        rng: the random generator.
        bands: the declared band count; the image must have exactly that many channels (``None``: any).
        scale: ``"shared"`` only: one factor per band for the shared map (default 1 for every band).
        clip: clip the result to [0, 1] (reflectance range).

    Returns:
        An array of the input's shape and dtype (uint8 is rounded); equal to ``image`` when ``sigma = 0``.
    """
    image = _check_bands(image, bands)
    sigma = check_float("sigma", sigma, 0.0, hint="noise standard deviation")
    if mode not in NOISE_MODES:
        raise ValueError(f"mode must be one of {NOISE_MODES}, got {mode!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    h, w, b = image.shape
    if scale is not None and (mode != "shared" or np.shape(scale) != (b,)):
        raise ValueError(f"scale must be None or {b} floats (one per band), and only with mode='shared'; got "
                         f"{scale!r} with mode={mode!r}")
    if scale is not None:
        scale = [check_float(f"scale[{i}]", v) for i, v in enumerate(np.asarray(scale).tolist())]
    clip = check_bool("clip", clip)
    x = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    if mode == "independent":
        out = x + sigma * rng.standard_normal((h, w, b))
    elif mode == "shared":
        factors = np.ones(b) if scale is None else np.asarray(scale, dtype=np.float64)
        out = x + sigma * rng.standard_normal((h, w, 1)) * factors
    else:
        out = x * np.maximum(1.0 + sigma * rng.standard_normal((h, w, 1)), 0.0)
    if clip:
        out = np.clip(out, 0.0, 1.0)
    if image.dtype == np.uint8:
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return out.astype(image.dtype)


def normalized_difference(image: np.ndarray, a: int = 3, b: int = 2, eps: float = 1e-6) -> np.ndarray:
    """``(band a - band b) / (band a + band b)`` per pixel; NDVI with a = NIR, b = red.

    Args:
        image: HxWxB float or uint8 bands (``BAND_NAMES = (blue, green, red, nir)`` of ``hrlib.data.synth``).
        a, b: band indices (negative counts from the end).
        eps: guards a zero denominator (> 0).

    Returns:
        (H, W) float64 in [-1, 1].
    """
    image = _check_bands(image)
    for name, i in (("a", a), ("b", b)):
        if isinstance(i, bool) or not (isinstance(i, int | np.integer) and -image.shape[2] <= i < image.shape[2]):
            raise ValueError(f"{name} must be a band index in [0, {image.shape[2]}), got {i!r}")
    eps = check_float("eps", eps, 0.0, low_open=True, hint="guards a zero denominator")
    x = image.astype(np.float64)
    return (x[..., a] - x[..., b]) / np.maximum(x[..., a] + x[..., b], eps)


def band_correlation(image: np.ndarray) -> np.ndarray:
    """Pearson correlation between the bands' pixel values.

    Args:
        image: HxWxB float or uint8 bands.

    Returns:
        (B, B) correlations (1 on the diagonal); a constant band gives NaN.
    """
    image = _check_bands(image)
    flat = image.reshape(-1, image.shape[2]).astype(np.float64).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(flat)


def index_error(clean: np.ndarray, noisy: np.ndarray, mask: np.ndarray | None = None, a: int = 3,
                b: int = 2) -> float:
    """Mean absolute change of the normalized difference index (NDVI by default) that noise caused.

    Zero for any transform that keeps the ratio of bands ``a`` and ``b``, the identity included: read it next to
    how much the transform changed the pixels (e.g. the noise std), never alone.

    Args:
        clean, noisy: HxWxB images of the same shape (float reflectance or uint8).
        mask: (H, W) bool, the pixels that count (e.g. a crop field); default all.
        a, b: band indices of the index ``(a - b) / (a + b)`` (NIR and red by default).

    Returns:
        The mean of ``|index(noisy) - index(clean)|`` over ``mask``.
    """
    clean, noisy = _check_bands(clean, name="clean"), _check_bands(noisy, name="noisy")
    for name, arr in (("clean", clean), ("noisy", noisy)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} must hold finite values, got NaN or inf")
    if noisy.shape != clean.shape:
        raise ValueError(f"noisy must have the shape of clean {clean.shape}, got {noisy.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != clean.shape[:2] or not mask.any():
            raise ValueError(f"mask must be None or a non-empty bool array of shape {clean.shape[:2]}, got "
                             f"{mask.dtype} {mask.shape}")
    diff = np.abs(normalized_difference(noisy, a, b) - normalized_difference(clean, a, b))
    return float(diff[mask].mean() if mask is not None else diff.mean())
