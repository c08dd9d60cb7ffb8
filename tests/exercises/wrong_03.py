"""Plausible wrong answers for exercise 03: {exercise id: [(wrong function, a word its rejection must contain)]}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from skimage.color import hed2rgb, hed_from_rgb, rgb2hed, rgb_from_hed


def _od_jitter(image, alpha, beta, log=np.log10, shift_first=False, rnd=np.rint, clip=True, dtype=np.uint8):
    od = -log(image.astype(np.float64) / 255.0)
    conc = od @ hed_from_rgb
    conc = (conc + beta) * alpha if shift_first else conc * alpha + beta
    base = 10.0 if log is np.log10 else np.e
    out = rnd(255.0 * base ** -(conc @ rgb_from_hed))
    return (np.clip(out, 0, 255) if clip else out).astype(dtype)


def hed_rgb_jitter(image, alpha, beta):  # jitters the RGB values, not the stain amounts
    return np.clip(np.rint(image * alpha + 255 * beta), 0, 255).astype(np.uint8)


def hed_shift_first(image, alpha, beta):
    return _od_jitter(image, alpha, beta, shift_first=True)


def hed_skimage_units(image, alpha, beta):  # rgb2hed's units: its shift of beta is 6 beta in the papers' units
    return np.clip(np.rint(255 * hed2rgb(rgb2hed(image) * alpha + beta)), 0, 255).astype(np.uint8)


def hed_rgb2hed_clipped(image, alpha, beta):  # right units, but rgb2hed drops negative concentrations
    return np.clip(np.rint(255 * hed2rgb(rgb2hed(image) * alpha + beta / 6)), 0, 255).astype(np.uint8)


def hed_natural_log(image, alpha, beta):
    return _od_jitter(image, alpha, beta, log=np.log)


def hed_reference_offset(image, alpha, beta):  # the group's implementation: natural log of reflectance + 2
    m = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
    conc = -np.log(image.astype(np.float64) / 255.0 + 2.0) @ np.linalg.inv(m) * alpha + beta
    return np.clip(np.rint(255.0 * (np.exp(-(conc @ m)) - 2.0)), 0, 255).astype(np.uint8)


def hed_truncates(image, alpha, beta):
    return _od_jitter(image, alpha, beta, rnd=np.floor)


def hed_returns_float(image, alpha, beta):
    return _od_jitter(image, alpha, beta, dtype=np.float64)


def hed_no_return(image, alpha, beta):
    _od_jitter(image, alpha, beta)


def noise_independent(image, sigma, rng):  # a map per band
    m = np.maximum(1 + sigma * rng.standard_normal(image.shape), 0)
    return np.clip(image * m, 0, 1).astype(image.dtype)


def noise_shared_additive(image, sigma, rng):
    h, w = image.shape[:2]
    return np.clip(image + sigma * rng.standard_normal((h, w, 1)), 0, 1).astype(image.dtype)


def noise_no_clip(image, sigma, rng):
    h, w = image.shape[:2]
    return (image * (1 + sigma * rng.standard_normal((h, w, 1)))).astype(image.dtype)


def noise_global_random(image, sigma, rng):  # ignores the rng argument
    h, w = image.shape[:2]
    m = np.maximum(1 + sigma * np.random.default_rng().standard_normal((h, w, 1)), 0)
    return np.clip(image * m, 0, 1).astype(image.dtype)


def noise_float64(image, sigma, rng):
    h, w = image.shape[:2]
    return np.clip(image * np.maximum(1 + sigma * rng.standard_normal((h, w, 1)), 0), 0, 1)


def noise_variance_for_std(image, sigma, rng):  # sigma used as a variance
    h, w = image.shape[:2]
    return np.clip(image * np.maximum(1 + sigma**2 * rng.standard_normal((h, w, 1)), 0), 0, 1).astype(image.dtype)


WRONG: dict[str, list[tuple[Callable[..., Any], str]]] = {
    "03.hed_jitter": [
        (hed_rgb_jitter, "RGB"),
        (hed_shift_first, "before the scale"),
        (hed_skimage_units, "6x"),
        (hed_rgb2hed_clipped, "clips negative"),
        (hed_natural_log, "log10"),
        (hed_reference_offset, "reference"),
        (hed_truncates, "round"),
        (hed_returns_float, "uint8"),
        (hed_no_return, "return"),
    ],
    "03.ratio_noise": [
        (noise_independent, "one map"),
        (noise_shared_additive, "multiply"),
        (noise_no_clip, "clip"),
        (noise_global_random, "rng"),
        (noise_float64, "dtype"),
        (noise_variance_for_std, "std"),
    ],
}
