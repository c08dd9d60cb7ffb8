"""hrlib.augment.spectral: independent vs shared vs multiplicative band noise, NDVI and band correlation."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from hrlib.augment.spectral import NOISE_MODES, band_correlation, band_noise, normalized_difference
from hrlib.data.synth import make_multispectral, ndvi


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return make_multispectral(64, label=1, seed=2).image


def _ndvi_error(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(np.abs(normalized_difference(noisy) - normalized_difference(clean)).mean())


@pytest.mark.parametrize("mode", NOISE_MODES)
def test_zero_sigma_is_the_identity_and_a_seed_fixes_the_noise(scene, mode):
    assert np.array_equal(band_noise(scene, 0.0, mode=mode, rng=np.random.default_rng(0)), scene)
    a = band_noise(scene, 0.05, mode=mode, rng=np.random.default_rng(4))
    b = band_noise(scene, 0.05, mode=mode, rng=np.random.default_rng(4))
    c = band_noise(scene, 0.05, mode=mode, rng=np.random.default_rng(5))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == scene.dtype and a.shape == scene.shape


def test_shared_noise_is_the_same_map_in_every_band_after_removing_the_scale():
    flat = np.full((32, 32, 4), 0.5, np.float32)
    scale = [1.0, 0.5, 2.0, 1.5]
    out = band_noise(flat, 0.05, mode="shared", rng=np.random.default_rng(0), scale=scale, clip=False)
    maps = (out.astype(np.float64) - 0.5) / np.asarray(scale)
    for b in range(1, 4):
        np.testing.assert_allclose(maps[..., b], maps[..., 0], atol=1e-6)
    assert maps[..., 0].std() == pytest.approx(0.05, rel=0.15)


def test_multiplicative_noise_keeps_band_ratios_and_ndvi(scene):
    out = band_noise(scene, 0.1, mode="multiplicative", rng=np.random.default_rng(1))
    np.testing.assert_allclose(ndvi(out), ndvi(scene), atol=1e-5)
    ratio_in, ratio_out = scene[..., 3] / scene[..., 2], out[..., 3] / out[..., 2]
    np.testing.assert_allclose(ratio_out, ratio_in, rtol=1e-4)


def test_independent_noise_decorrelates_bands_and_distorts_ndvi_most(scene):
    err = {m: _ndvi_error(scene, band_noise(scene, 0.03, mode=m, rng=np.random.default_rng(2))) for m in NOISE_MODES}
    assert err["multiplicative"] < 1e-5 < err["shared"] < err["independent"]
    corr_in = band_correlation(scene)[0, 1]
    noisy = band_noise(scene, 0.03, mode="independent", rng=np.random.default_rng(2))
    shared = band_noise(scene, 0.03, mode="shared", rng=np.random.default_rng(2))
    assert band_correlation(noisy)[0, 1] < corr_in - 0.1
    assert band_correlation(shared)[0, 1] > band_correlation(noisy)[0, 1]


def test_albumentations_equivalents_share_their_map_across_four_float_bands(scene):
    gauss = A.Compose([A.GaussNoise(std_range=(0.03, 0.03), per_channel=False, p=1)], seed=0)(image=scene)["image"]
    d = gauss.astype(np.float64) - scene
    inside = (gauss > 0.01).all(axis=2) & (gauss < 0.99).all(axis=2)
    np.testing.assert_allclose(d[inside, 3], d[inside, 0], atol=1e-5)
    mult = A.Compose([A.MultiplicativeNoise(multiplier=(0.9, 1.1), per_channel=False, elementwise=True, p=1)],
                     seed=0)(image=scene)["image"]
    np.testing.assert_allclose(ndvi(mult), ndvi(scene), atol=1e-5)


def test_uint8_images_are_supported(scene):
    u8 = np.rint(scene * 255).astype(np.uint8)
    out = band_noise(u8, 0.02, mode="shared", rng=np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == u8.shape and not np.array_equal(out, u8)


def test_bad_input_errors_name_the_argument(scene):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^image must have bands=3 channels"):
        band_noise(scene, 0.1, rng=rng, bands=3)
    with pytest.raises(ValueError, match=r"^image must be an? HxWxC"):
        band_noise(scene[..., 0], 0.1, rng=rng)
    with pytest.raises(ValueError, match=r"^image must hold float reflectances or uint8"):
        band_noise(scene.astype(np.int32), 0.1, rng=rng)
    with pytest.raises(ValueError, match=r"^sigma "):
        band_noise(scene, -0.1, rng=rng)
    with pytest.raises(ValueError, match=r"^mode "):
        band_noise(scene, 0.1, mode="per_band", rng=rng)
    with pytest.raises(ValueError, match=r"^scale "):
        band_noise(scene, 0.1, mode="shared", scale=[1.0, 2.0], rng=rng)
    with pytest.raises(TypeError, match=r"^rng "):
        band_noise(scene, 0.1, rng=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^a "):
        normalized_difference(scene, a=7)
