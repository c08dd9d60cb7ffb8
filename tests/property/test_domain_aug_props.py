"""Properties of hrlib.augment's domain transforms (stain, spectral, presets) for any image, strength and seed."""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlib.augment.presets import letterbox, preset
from hrlib.augment.spectral import band_noise, normalized_difference
from hrlib.augment.stain import hed_adjust, hed_jitter, od_residual

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2**32 - 1)


@st.composite
def rgb_images(draw: st.DrawFn) -> np.ndarray:
    h, w = draw(st.integers(2, 24)), draw(st.integers(2, 24))
    return np.random.default_rng(draw(seeds)).integers(0, 256, (h, w, 3), dtype=np.uint8)


@st.composite
def band_images(draw: st.DrawFn) -> np.ndarray:
    h, w, b = draw(st.integers(2, 20)), draw(st.integers(2, 20)), draw(st.integers(2, 8))
    return np.random.default_rng(draw(seeds)).uniform(0.05, 0.6, (h, w, b)).astype(np.float32)


@FAST
@given(image=rgb_images(), seed=seeds, units=st.sampled_from(["paper", "skimage"]), nonneg=st.booleans())
def test_hed_jitter_zero_strength_is_the_identity(image, seed, units, nonneg):
    out = hed_jitter(image, 0.0, 0.0, rng=np.random.default_rng(seed), units=units, nonnegative=nonneg)
    assert np.array_equal(out, image)


@FAST
@given(image=rgb_images(), seed=seeds, sigma=st.floats(0.0, 0.5), bias=st.floats(0.0, 0.5))
def test_hed_jitter_same_seed_same_image(image, seed, sigma, bias):
    a = hed_jitter(image, sigma, bias, rng=np.random.default_rng(seed))
    b = hed_jitter(image, sigma, bias, rng=np.random.default_rng(seed))
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == image.shape


@FAST
@given(seed=seeds, alpha=st.lists(st.floats(0.8, 1.2), min_size=3, max_size=3),
       beta=st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=3))
def test_nonnegative_hed_jitter_keeps_stain_colours_on_the_stain_cone(seed, alpha, beta):
    # an image mixed from non-negative H, E, DAB amounts stays explainable by them; hue jitter does not promise it
    rng = np.random.default_rng(seed)
    conc = rng.uniform(0.0, 0.6, (12, 12, 3))
    stains = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
    image = np.clip(np.rint(255 * 10.0 ** -(conc @ stains)), 1, 255).astype(np.uint8)
    assert od_residual(hed_adjust(image, alpha, beta)) < 0.02 + od_residual(image)


@FAST
@given(image=band_images(), seed=seeds, mode=st.sampled_from(["independent", "shared", "multiplicative"]))
def test_band_noise_zero_sigma_is_the_identity_and_seeded(image, seed, mode):
    assert np.array_equal(band_noise(image, 0.0, mode=mode, rng=np.random.default_rng(seed)), image)
    a = band_noise(image, 0.1, mode=mode, rng=np.random.default_rng(seed))
    assert np.array_equal(a, band_noise(image, 0.1, mode=mode, rng=np.random.default_rng(seed)))


@FAST
@given(image=band_images(), seed=seeds, sigma=st.floats(0.001, 0.2))
def test_shared_noise_is_identical_across_bands(image, seed, sigma):
    out = band_noise(image, sigma, mode="shared", rng=np.random.default_rng(seed), clip=False)
    diff = out.astype(np.float64) - image
    np.testing.assert_allclose(diff, np.broadcast_to(diff[..., :1], diff.shape), atol=1e-6)


@FAST
@given(image=band_images(), seed=seeds, sigma=st.floats(0.001, 0.3))
def test_multiplicative_noise_preserves_band_ratios(image, seed, sigma):
    out = band_noise(image, sigma, mode="multiplicative", rng=np.random.default_rng(seed), clip=False)
    alive = out[..., 0] > 1e-3  # a multiplier floored at 0 leaves no ratio to keep (clipping at 1 would also break it)
    np.testing.assert_allclose((out[..., 1:] / out[..., :1])[alive], (image[..., 1:] / image[..., :1])[alive],
                               rtol=1e-4)
    nd_in, nd_out = normalized_difference(image, 1, 0), normalized_difference(out, 1, 0)
    np.testing.assert_allclose(nd_out[alive], nd_in[alive], atol=1e-5)


@FAST
@given(h=st.integers(1, 300), w=st.integers(1, 300), size=st.integers(8, 128), fill=st.integers(0, 255))
def test_letterbox_keeps_aspect_within_a_pixel_and_pads_with_fill(h, w, size, fill):
    image = np.full((h, w), 255 - fill if fill != 128 else 0, np.uint8)
    out = letterbox(image, size, fill=fill)
    assert out.shape == (size, size)
    content = out != fill
    rows, cols = np.flatnonzero(content.any(1)), np.flatnonzero(content.any(0))
    ch, cw = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert max(ch, cw) == size
    assert abs(ch - size * h / max(h, w)) <= 1 and abs(cw - size * w / max(h, w)) <= 1
    assert content.sum() == ch * cw  # the content is one rectangle; the rest is fill


@FAST
@given(seed=seeds, res=st.integers(16, 48))
def test_xray_preset_never_flips_vertically(seed, res):
    # top half bright, bottom half dark: a vertical flip would make the bottom brighter than the top
    image = np.zeros((res, res, 1), np.uint8)
    image[: res // 2] = 220
    t = preset("xray", res, mean=(0.0,), std=(1.0,), brightness_contrast=0.0, seed=seed)
    for _ in range(4):
        x = t(image=image)["image"][0]
        top, bottom = x[: res // 3].mean(), x[-(res // 3):].mean()
        assert top > bottom


@FAST
@given(seed=seeds, domain=st.sampled_from(["industrial", "xray", "document", "pathology"]))
def test_presets_are_deterministic_under_a_seed(seed, domain):
    image = np.random.default_rng(seed).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    a, b = preset(domain, 32, seed=seed), preset(domain, 32, seed=seed)
    assert torch.equal(a(image=image)["image"], b(image=image)["image"])


def test_rgb_hue_jitter_leaves_the_stain_cone_more_than_hed_jitter():
    rng = np.random.default_rng(0)
    conc = rng.uniform(0.0, 0.6, (24, 24, 3)) * np.array([1.0, 1.0, 0.2])
    stains = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
    image = np.clip(np.rint(255 * 10.0 ** -(conc @ stains)), 1, 255).astype(np.uint8)
    hue = A.Compose([A.ColorJitter(0, 0, 0, hue=(-0.1, -0.1), p=1)])
    hed = [od_residual(hed_jitter(image, 0.2, 0.2, rng=np.random.default_rng(s))) for s in range(5)]
    assert od_residual(hue(image=image)["image"]) > 3 * max(hed)
