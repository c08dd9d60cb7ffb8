"""HED-space stain jitter for pathology (lesson 03, claim C3) and a number for implausible colours.

Tellez et al. (2018, 2019) jitter each stain's concentration: ``c' = alpha * c + beta`` with ``alpha ~ U(1 - sigma,
1 + sigma)`` and ``beta ~ U(-bias, bias)`` per stain (H, E, DAB), then go back to RGB. "HED light" is
``sigma = bias = 0.05``, "HED strong" ``0.2``, in the units of the group's implementation (below).

Units: which strength is "light"? Three readings of ``c``, all offered by ``units``:

* ``"reference"``: the Radboud/DIAG group's public ``HedColorAugmenter`` (the implementation behind the papers'
  "light" and "strong"), which unmixes as scikit-image did before 0.19: ``OD = -ln(I / 255 + 2)`` (natural log,
  reflectance offset by 2), ``c = OD @ hed_from_rgb``, back through ``I / 255 = exp(-c' @ rgb_from_hed) - 2``.
  The offset makes white a mix of non-zero amounts, so the scale ``alpha`` also moves bright pixels.
* ``"paper"``: a log10 reading of the formula, ``OD = -log10(I / I0)`` (:func:`paper_hed_jitter`). On identical
  draws it moves pixels about half as far as the reference (the table below: the reference 2.1-2.3x "paper";
  less at strong strength on images where both clip at white).
* ``"skimage"``: ``skimage.color.rgb2hed`` (0.26) divides the natural-log OD by ``ln(1e-6)``, so its concentrations
  are the log10 reading's divided by 6 (``SKIMAGE_PER_PAPER``): a shift of 0.05 there is 0.30 in ``"paper"``.

All functions default to ``"paper"``, which keeps every colour a non-negative mix of the stains (Beer-Lambert);
the reference's offset makes its "stain space" non-linear in OD, so it leaves the stain cone a little (see
``od_residual``). To run the papers' strengths as they were run, pass ``units="reference"``. ``rgb2hed`` clips
negative concentrations to 0, which is not invertible, so hrlib unmixes without the clip: zero strength is the
identity in every unit.

Background: a positive shift ``beta`` stains the glass (white background turns coloured), which no scanner does.
``tissue_od`` (default 0.05 in ``hed_jitter``/``HEDJitter``) keeps pixels whose largest channel optical density
``-log10(I / 255)`` is below ``tissue_od / 2`` unchanged and jitters those above ``tissue_od`` fully (linear in
between): only tissue changes colour.

Mean |delta RGB| (grey levels, 0-255) per pixel and channel, from :func:`calibration_table` (seed 0, 4 draws of
alpha, beta per image, the same draws for every row, 3 course slides at 128 px (sites A-C) and the IHC image at
256 px, the whole image jittered). ``A.HEStain``: albumentations 2.0.8 ``HEStain(method="preset",
preset="ruifrok", intensity_scale_range=(1 - s, 1 + s), intensity_shift_range=(-b, b), augment_background=True)``::

    strength sigma = bias           0 (identity)   0.05 (light)   0.2 (strong)
    paper reference (OD, log10)          0.0            8.4           29.3
    hrlib units="paper"                  0.0            8.4           29.3
    hrlib units="reference"              0.0           19.2           62.2
    hrlib units="skimage"                0.0           39.0           85.3
    A.HEStain, s = b                    10.5           11.3           15.4

So the reference moves pixels 2.3x (light) and 2.1x (strong) as far as the log10 reading, and rgb2hed's raw
units would make "light" stronger than the log10 reading's "strong". ``A.HEStain`` works on natural-log OD with two
stains (H, E), so even at zero strength it projects every colour onto the H-E plane.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np
from skimage.color import hed2rgb, hed_from_rgb, rgb_from_hed

from hrlib._checks import check_bool, check_float, check_floats, check_image, check_int

__all__ = ["CALIBRATION_ROWS", "SKIMAGE_PER_PAPER", "STAIN_NAMES", "HEDJitter", "calibration_table", "hed_adjust",
           "hed_jitter", "od_residual", "od_residual_map", "paper_hed_jitter", "tissue_weight"]

STAIN_NAMES: tuple[str, ...] = ("hematoxylin", "eosin", "dab")
SKIMAGE_PER_PAPER: float = -math.log(1e-6) / math.log(10.0)  # = 6: paper concentration / rgb2hed concentration
_UNITS = ("paper", "reference", "skimage")
_REFERENCE_OFFSET = 2.0  # the reference adds 2 to the reflectance (0-1) before the natural log
_EPS = 1e-6  # skimage's floor on I / 255 before the log


def _check_rgb(image: object, name: str = "image") -> np.ndarray:
    """An HxWx3 uint8 RGB image (stain unmixing needs the three colour channels); raise naming ``name``."""
    return check_image(name, image, channels=(3,), gray=False)


def _check_triple(name: str, value: object) -> np.ndarray:
    """A float or 3 floats (one per stain H, E, DAB) as a (3,) float64 array."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.full(2, np.nan)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != 3) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a finite float or 3 finite floats (H, E, DAB), got {value!r}")
    return np.broadcast_to(arr, (3,)).copy()


def _check_background(background: object) -> float:
    return check_float("background", background, 0.0, low_open=True, hint="I0, the light level in grey levels")


def tissue_weight(image: np.ndarray, tissue_od: float = 0.05) -> np.ndarray:
    """Per pixel, how much of a stain jitter to apply: 0 on bright background (glass), 1 on tissue.

    The largest channel optical density ``-log10(max(I, 1) / 255)`` decides: below ``tissue_od / 2`` the weight is
    0, above ``tissue_od`` it is 1, linear in between (a soft edge, no speckle where noise crosses one threshold).

    Args:
        image: HxWx3 uint8 RGB.
        tissue_od: the optical density (log10) from which a pixel counts fully as tissue, > 0 (the course's lamps
            give glass about 0.01-0.04, its pale tissue 0.04-0.1; the real IHC image's tissue 0.05-0.3).

    Returns:
        (H, W) float64 in [0, 1].
    """
    image = _check_rgb(image)
    tissue_od = check_float("tissue_od", tissue_od, 0.0, low_open=True, hint="optical density (log10) of tissue")
    od = -np.log10(np.maximum(image.astype(np.float64), 1.0) / 255.0).max(axis=2)
    return np.clip((od - tissue_od / 2) / (tissue_od / 2), 0.0, 1.0)


def _check_units(units: object) -> str:
    if units not in _UNITS:
        raise ValueError(f"units must be one of {_UNITS}, got {units!r}")
    return str(units)


def _check_tissue_od(tissue_od: object) -> float | None:
    if tissue_od is None:
        return None
    return check_float("tissue_od", tissue_od, 0.0, low_open=True, hint="None (jitter every pixel) or an OD > 0")


def _unmix(x: np.ndarray, units: str) -> np.ndarray:
    """Concentrations of reflectance ``x`` (0-1) in ``units`` (rgb2hed without its clip at 0, or the reference)."""
    if units == "reference":
        return -np.log(x + _REFERENCE_OFFSET) @ hed_from_rgb
    hed = (np.log(np.maximum(x, _EPS)) / np.log(_EPS)) @ hed_from_rgb
    return hed * SKIMAGE_PER_PAPER if units == "paper" else hed


def _remix(conc: np.ndarray, units: str) -> np.ndarray:
    """Reflectance (0-1, clipped) of concentrations ``conc`` in ``units``; the inverse of :func:`_unmix`."""
    if units == "reference":
        return np.clip(np.exp(-(conc @ rgb_from_hed)) - _REFERENCE_OFFSET, 0.0, 1.0)
    hed = conc / SKIMAGE_PER_PAPER if units == "paper" else conc
    return hed2rgb(hed)  # skimage's inverse; clips to [0, 1]


def hed_adjust(image: np.ndarray, alpha: float | Sequence[float], beta: float | Sequence[float], *,
               units: str = "paper", nonnegative: bool = True, tissue_od: float | None = None) -> np.ndarray:
    """Deterministic core of :func:`hed_jitter`: ``c' = alpha * c + beta`` per stain, back to uint8 RGB.

    Args:
        image: HxWx3 uint8 RGB.
        alpha: scale per stain (H, E, DAB), or one float for all; 1 is no change.
        beta: shift per stain in ``units`` of concentration, or one float; 0 is no change.
        units: ``"paper"`` (log10 OD), ``"reference"`` (the DIAG group's ``HedColorAugmenter``) or ``"skimage"``
            (``rgb2hed``'s units, 6x smaller than ``"paper"``); see the module docstring.
        nonnegative: floor each new concentration at ``min(old, 0)``, so the jitter never creates a negative amount
            of stain (a negative shift on stain-free background would: an impossible colour). ``False`` is the
            papers' transform exactly. The floor is a no-op at zero strength, and only applies to ``"paper"`` and
            ``"skimage"`` (the reference's offset has no "no stain" zero; use ``tissue_od`` there).
        tissue_od: ``None`` jitters every pixel; a float keeps the background (:func:`tissue_weight`) unchanged.

    Returns:
        HxWx3 uint8 RGB, rounded and clipped to 0-255 (the identity when alpha = 1 and beta = 0).
    """
    image, units = _check_rgb(image), _check_units(units)
    alpha, beta = _check_triple("alpha", alpha), _check_triple("beta", beta)
    nonnegative, tissue_od = check_bool("nonnegative", nonnegative), _check_tissue_od(tissue_od)
    x = image.astype(np.float64) / 255.0
    conc = _unmix(x, units)
    new = conc * alpha + beta
    if nonnegative and units != "reference":
        new = np.maximum(new, np.minimum(conc, 0.0))
    out = _remix(new, units)
    if tissue_od is not None:
        weight = tissue_weight(image, tissue_od)[..., None]
        out = weight * out + (1.0 - weight) * x
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _draw(sigma: float, bias: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(1.0 - sigma, 1.0 + sigma, 3), rng.uniform(-bias, bias, 3)


def hed_jitter(image: np.ndarray, sigma: float = 0.05, bias: float = 0.05, *, rng: np.random.Generator,
               units: str = "paper", nonnegative: bool = True, tissue_od: float | None = 0.05) -> np.ndarray:
    """Tellez et al. stain jitter: per stain ``alpha ~ U(1 - sigma, 1 + sigma)``, ``beta ~ U(-bias, bias)``.

    Args:
        image: HxWx3 uint8 RGB.
        sigma: scale half-range in [0, 1); 0.05 is "HED light", 0.2 "HED strong".
        bias: shift half-range (>= 0) in ``units``; same presets.
        rng: the random generator (3 scales, then 3 shifts are drawn from it).
        units: ``"paper"`` (default: a log10 reading of the formula, Beer-Lambert consistent), ``"reference"`` (the
            DIAG group's implementation, whose strengths the papers report: about twice as strong on the same
            draws) or ``"skimage"`` (raw rgb2hed units).
        nonnegative: no negative stain amounts (see :func:`hed_adjust`; not with ``"reference"``).
        tissue_od: jitter only tissue (default 0.05, see :func:`tissue_weight`); ``None`` jitters the glass too.

    Returns:
        HxWx3 uint8 RGB; equal to ``image`` when ``sigma = bias = 0``.
    """
    sigma = check_float("sigma", sigma, 0.0, 1.0, high_open=True, hint="relative scale half-range per stain")
    bias = check_float("bias", bias, 0.0, hint="concentration shift half-range per stain")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    _check_rgb(image)
    units, nonnegative = _check_units(units), check_bool("nonnegative", nonnegative)
    tissue_od = _check_tissue_od(tissue_od)
    alpha, beta = _draw(sigma, bias, rng)
    return hed_adjust(image, alpha, beta, units=units, nonnegative=nonnegative, tissue_od=tissue_od)


def paper_hed_jitter(image: np.ndarray, alpha: Sequence[float], beta: Sequence[float], *,
                     background: float = 255.0) -> np.ndarray:
    """The papers' transform, written independently as a reference.

    ``OD = -log10(max(I, 1) / I0)``, concentrations ``c = OD @ pinv(S)`` with the unit-length Ruifrok stain vectors
    ``S`` (rows H, E, DAB), ``c' = alpha * c + beta``, ``I = I0 * 10 ** -(c' @ S)``.

    Args:
        image: HxWx3 uint8 RGB.
        alpha: scale per stain (H, E, DAB), or one float for all.
        beta: shift per stain in the papers' units (optical density, log10), or one float.
        background: ``I0``, the light level in grey levels (> 0).

    Returns:
        HxWx3 uint8 RGB.
    """
    image = _check_rgb(image)
    alpha, beta = _check_triple("alpha", alpha), _check_triple("beta", beta)
    background = _check_background(background)
    stains = rgb_from_hed / np.linalg.norm(rgb_from_hed, axis=1, keepdims=True)
    od = -np.log10(np.maximum(image.astype(np.float64), 1.0) / background)
    conc = od @ np.linalg.pinv(stains)
    out = background * 10.0 ** -((conc * np.asarray(alpha) + np.asarray(beta)) @ stains)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class HEDJitter(A.ImageOnlyTransform):
    """albumentations transform around :func:`hed_jitter`: 3 scales, then 3 shifts drawn per call from the
    transform's own generator.

    Args:
        sigma, bias, units, nonnegative, tissue_od: as in :func:`hed_jitter` (default: log10 units, tissue only).
        seed: fixes the draws (>= 0; or seed the ``A.Compose`` around it).
        p: probability of applying it.
    """

    def __init__(self, sigma: float = 0.05, bias: float = 0.05, units: str = "reference", nonnegative: bool = True,
                 tissue_od: float | None = 0.05, seed: int | None = None, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.sigma = check_float("sigma", sigma, 0.0, 1.0, high_open=True)
        self.bias = check_float("bias", bias, 0.0)
        self.units, self.nonnegative = _check_units(units), check_bool("nonnegative", nonnegative)
        self.tissue_od = _check_tissue_od(tissue_od)
        if seed is not None:
            self.set_random_seed(check_int("seed", seed, 0))

    def get_params(self) -> dict[str, Any]:
        """albumentations' hook: draw ``alpha`` (3 scales), then ``beta`` (3 shifts)."""
        alpha, beta = _draw(self.sigma, self.bias, self.random_generator)
        return {"alpha": alpha, "beta": beta}

    def apply(self, img: np.ndarray, alpha: np.ndarray, beta: np.ndarray, **params: Any) -> np.ndarray:
        """albumentations' hook: :func:`hed_adjust` with the drawn parameters."""
        return hed_adjust(img, alpha, beta, units=self.units, nonnegative=self.nonnegative, tissue_od=self.tissue_od)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        """albumentations' hook: the arguments that describe the transform."""
        return ("sigma", "bias", "units", "nonnegative", "tissue_od")


def _basis(stains: str) -> np.ndarray:
    rows = {"h": 0, "e": 1, "d": 2}
    if not isinstance(stains, str) or not stains or any(c not in rows for c in stains.lower()) or \
            len(set(stains.lower())) != len(stains):
        raise ValueError(f"stains must be letters from 'HED' without repeats (e.g. 'HED', 'HE', 'HD'), got {stains!r}")
    m = rgb_from_hed[[rows[c] for c in stains.lower()]]
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def od_residual_map(image: np.ndarray, stains: str = "HED", background: float = 255.0) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """Per pixel: the optical density's distance to the stain cone ``{sum_s c_s v_s, c_s >= 0}`` and its norm.

    ``OD = -log10(max(I, 1) / background)``; the distance is the exact non-negative least-squares residual (the best
    feasible least-squares fit over subsets of the stain vectors).

    Args:
        image: HxWx3 uint8 RGB.
        stains: which Ruifrok vectors span the cone: letters from ``"HED"`` without repeats.
        background: ``I0``, the light level in grey levels (> 0).

    Returns:
        Two (H, W) float arrays: the residual and ``|OD|``.
    """
    image = _check_rgb(image)
    basis, background = _basis(stains), _check_background(background)
    od = -np.log10(np.maximum(image.reshape(-1, 3).astype(np.float64), 1.0) / background)
    norm = np.linalg.norm(od, axis=1)
    best = norm.copy()  # the empty subset: the whole OD is off the cone
    for k in range(1, len(basis) + 1):
        for subset in itertools.combinations(range(len(basis)), k):
            m = basis[list(subset)]
            conc = od @ np.linalg.pinv(m)
            res = np.linalg.norm(od - conc @ m, axis=1)
            best = np.where((conc >= -1e-9).all(axis=1) & (res < best), res, best)
    h, w = image.shape[:2]
    return best.reshape(h, w), norm.reshape(h, w)


def od_residual(image: np.ndarray, stains: str = "HED", background: float = 255.0) -> float:
    """Implausible-colour number: the fraction of optical density that no non-negative mix of the stains explains.

    About 0.001-0.01 for the course's slides, 0.09 for the real IHC image (whose colours sit slightly off the
    Ruifrok vectors), higher after RGB hue or saturation jitter.

    Args:
        image, stains, background: as in :func:`od_residual_map`.

    Returns:
        ``sum |residual| / sum |OD|`` over pixels, in [0, 1].
    """
    res, norm = od_residual_map(image, stains, background)
    return float(res.sum() / max(norm.sum(), 1e-12))


CALIBRATION_ROWS: tuple[str, ...] = ("paper reference", "hrlib paper", "hrlib reference", "hrlib skimage",
                                     "hrlib nonnegative", "A.HEStain", "A.HEStain ln10")


def _mean_abs_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def calibration_table(images: Sequence[np.ndarray], strengths: Sequence[float] = (0.0, 0.05, 0.2), *,
                      draws: int = 8, seed: int = 0) -> dict[str, dict[float, float]]:
    """Mean |delta RGB| (grey levels) per method and strength ``sigma = bias`` (the module docstring's table).

    Each image gets ``draws`` draws of alpha, beta from ``seed``, shared by the paper reference and hrlib (the
    papers' transform in the three unit conventions, and ``nonnegative=True`` in paper units), all on the whole image
    (no tissue mask); ``A.HEStain`` (preset
    "ruifrok", whole image) draws its own from ``A.Compose(seed=seed)``, with its shift range ``sigma``
    ("A.HEStain") or ``sigma * ln 10`` ("A.HEStain ln10", the papers' log10 units).

    Args:
        images: HxWx3 uint8 RGB images.
        strengths: values of ``sigma = bias``, each in [0, 1).
        draws: draws per image and strength (>= 1).
        seed: seeds the draws (>= 0).

    Returns:
        ``{row in CALIBRATION_ROWS: {strength: mean change}}``.
    """
    if isinstance(images, str | bytes | np.ndarray) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a sequence of HxWx3 uint8 arrays, got {type(images).__name__}")
    images = [_check_rgb(im, f"images[{i}]") for i, im in enumerate(images)]
    if not images:
        raise ValueError("images must be a non-empty sequence, got 0 images")
    draws, seed = check_int("draws", draws), check_int("seed", seed, 0)
    strengths = [check_float(f"strengths[{i}]", s, 0.0, 1.0, high_open=True)
                 for i, s in enumerate(check_floats("strengths", strengths))]
    out: dict[str, dict[float, float]] = {row: {} for row in CALIBRATION_ROWS}
    for s in strengths:
        rng = np.random.default_rng(seed)
        changes: dict[str, list[float]] = {row: [] for row in CALIBRATION_ROWS}
        for im in images:
            for _ in range(draws):
                alpha, beta = _draw(s, s, rng)
                changes["paper reference"].append(_mean_abs_change(paper_hed_jitter(im, alpha, beta), im))
                for row, units, nonneg in (("hrlib paper", "paper", False), ("hrlib reference", "reference", False),
                                           ("hrlib skimage", "skimage", False), ("hrlib nonnegative", "paper", True)):
                    out_im = hed_adjust(im, alpha, beta, units=units, nonnegative=nonneg)
                    changes[row].append(_mean_abs_change(out_im, im))
            for row, shift in (("A.HEStain", s), ("A.HEStain ln10", s * math.log(10.0))):
                he = A.Compose([A.HEStain(method="preset", preset="ruifrok", intensity_scale_range=(1 - s, 1 + s),
                                          intensity_shift_range=(-shift, shift), augment_background=True, p=1.0)],
                               seed=seed)
                changes[row] += [_mean_abs_change(he(image=im)["image"], im) for _ in range(draws)]
        for row in CALIBRATION_ROWS:
            out[row][s] = float(np.mean(changes[row]))
    return out
