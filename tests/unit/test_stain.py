"""hrlib.augment.stain: HED jitter (identity, determinism, calibration to the papers' units) and od_residual."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
from skimage.color import hed2rgb, rgb2hed

from hrlib.augment.stain import (
    CALIBRATION_ROWS,
    SKIMAGE_PER_PAPER,
    HEDJitter,
    calibration_table,
    hed_adjust,
    hed_jitter,
    od_residual,
    od_residual_map,
    paper_hed_jitter,
)
from hrlib.data.real import real_image
from hrlib.data.slides import make_slide


@pytest.fixture(scope="module")
def slide() -> np.ndarray:
    return make_slide(96, label=2, seed=3).image


@pytest.fixture(scope="module")
def ihc() -> np.ndarray:
    return real_image("ihc")[::4, ::4].copy()  # 128 px: fast, same colours


def test_skimage_units_are_the_papers_over_six():
    assert SKIMAGE_PER_PAPER == pytest.approx(6.0)
    od10 = 0.3  # one grey pixel: skimage's "concentration" of a neutral OD is 1/6 of the papers'
    grey = np.full((1, 1, 3), 10.0**-od10)  # rgb2hed takes floats in [0, 1]
    conc_sk = rgb2hed(grey)
    conc_paper = -np.log10(grey[0, 0]) @ np.linalg.inv(np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11],
                                                                         [0.27, 0.57, 0.78]]))
    nonzero = conc_sk[0, 0] > 0
    np.testing.assert_allclose(conc_sk[0, 0][nonzero] * 6, conc_paper[nonzero], rtol=1e-6)


@pytest.mark.parametrize("units", ["paper", "skimage"])
def test_zero_strength_is_the_identity(slide, ihc, units):
    for image in (slide, ihc):
        assert np.array_equal(hed_jitter(image, 0.0, 0.0, rng=np.random.default_rng(0), units=units), image)
        assert np.array_equal(hed_adjust(image, 1.0, 0.0, units=units, nonnegative=False), image)


def test_skimage_round_trip_is_not_the_identity_on_ihc(ihc):
    # why hrlib does not call rgb2hed: its clip of negative concentrations is lossy on the real IHC image
    back = np.rint(hed2rgb(rgb2hed(ihc)) * 255)
    assert np.abs(back - ihc).mean() > 2.0


def test_same_rng_seed_same_output_and_different_seeds_differ(slide):
    a = hed_jitter(slide, 0.2, 0.2, rng=np.random.default_rng(5))
    b = hed_jitter(slide, 0.2, 0.2, rng=np.random.default_rng(5))
    c = hed_jitter(slide, 0.2, 0.2, rng=np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == slide.shape


def test_hrlib_paper_units_match_the_reference_transform(slide, ihc):
    rng = np.random.default_rng(1)
    for image in (slide, ihc):
        for _ in range(3):
            alpha, beta = rng.uniform(0.8, 1.2, 3), rng.uniform(-0.2, 0.2, 3)
            ours = hed_adjust(image, alpha, beta, nonnegative=False).astype(int)
            ref = paper_hed_jitter(image, alpha, beta).astype(int)
            assert np.abs(ours - ref).mean() < 0.6  # stain rows normalised vs not: < 0.3 % apart
            assert np.abs(ours - ref).max() <= 4


def test_skimage_units_shift_six_times_more(slide):
    beta = np.array([0.05, -0.03, 0.02])
    assert np.array_equal(hed_adjust(slide, 1.0, beta, units="skimage", nonnegative=False),
                          hed_adjust(slide, 1.0, beta * 6, units="paper", nonnegative=False))


def test_calibration_light_and_strong_match_the_papers_and_skimage_units_overshoot(slide, ihc):
    table = calibration_table([slide, ihc], (0.0, 0.05, 0.2), draws=3)
    assert set(table) == set(CALIBRATION_ROWS)
    paper, ours, raw = table["paper reference"], table["hrlib paper"], table["hrlib skimage"]
    assert ours[0.0] == 0.0 and table["hrlib nonnegative"][0.0] == 0.0
    for s in (0.05, 0.2):
        assert ours[s] == pytest.approx(paper[s], rel=0.05)
        assert table["hrlib nonnegative"][s] == pytest.approx(paper[s], rel=0.25)
    assert 3.0 < ours[0.05] < 15.0 and 15.0 < ours[0.2] < 45.0  # grey levels: "light" is mild, "strong" is not
    assert 2.5 < ours[0.2] / ours[0.05] < 6.0
    assert raw[0.05] > 2.5 * ours[0.05]  # rgb2hed's raw units: "light" would already be strong
    assert table["A.HEStain"][0.0] > 2.0  # HEStain's two-stain projection changes the image at zero strength


def test_nonnegative_never_creates_negative_stain(slide):
    beta = np.array([-0.2, -0.2, -0.2])
    assert od_residual(hed_adjust(slide, 1.0, beta, nonnegative=True)) < 0.01
    assert od_residual(hed_adjust(slide, 1.0, beta, nonnegative=False)) > 0.05


def test_od_residual_low_for_stain_colours_high_for_hue_jitter(slide, ihc):
    assert od_residual(slide) < 0.01
    assert 0.0 <= od_residual(ihc) < 0.15
    hed = np.mean([od_residual(hed_jitter(slide, 0.05, 0.05, rng=np.random.default_rng(s))) for s in range(4)])
    hue = A.Compose([A.ColorJitter(brightness=0, contrast=0, saturation=0, hue=(-0.1, -0.1), p=1)])
    assert hed < 0.01
    assert od_residual(hue(image=slide)["image"]) > 0.05


def test_od_residual_of_pure_stain_colours_is_zero_and_of_green_is_large():
    def colour(od: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(255 * 10.0 ** -od), 0, 255).astype(np.uint8).reshape(1, 1, 3)

    h = np.array([0.65, 0.70, 0.29])
    assert od_residual(np.tile(colour(0.8 * h), (4, 4, 1))) < 0.01
    green = np.tile(np.array([[[40, 200, 40]]], np.uint8), (4, 4, 1))
    assert od_residual(green) > 0.3
    res, norm = od_residual_map(green)
    assert res.shape == norm.shape == (4, 4) and np.all(res <= norm + 1e-12)
    assert od_residual(green, stains="HE") >= od_residual(green, stains="HED") - 1e-12


def test_hedjitter_transform_is_seeded_and_composable(slide):
    a = HEDJitter(0.2, 0.2, seed=3)(image=slide)["image"]
    b = HEDJitter(0.2, 0.2, seed=3)(image=slide)["image"]
    assert np.array_equal(a, b) and not np.array_equal(a, slide)
    c1 = A.Compose([HEDJitter(0.2, 0.2)], seed=7)(image=slide)["image"]
    c2 = A.Compose([HEDJitter(0.2, 0.2)], seed=7)(image=slide)["image"]
    assert np.array_equal(c1, c2)
    assert np.array_equal(HEDJitter(0.0, 0.0, seed=1)(image=slide)["image"], slide)


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), np.float32), [[1, 2, 3]]])
def test_non_rgb_input_is_rejected_naming_the_image(bad):
    with pytest.raises((TypeError, ValueError), match=r"^image must be an HxWxC \(C in 3\) uint8"):
        hed_jitter(bad, rng=np.random.default_rng(0))
    with pytest.raises((TypeError, ValueError), match=r"^image "):
        od_residual(bad)


def test_bad_arguments_are_named(slide):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^sigma "):
        hed_jitter(slide, sigma=1.5, rng=rng)
    with pytest.raises(ValueError, match=r"^bias "):
        hed_jitter(slide, bias=-0.1, rng=rng)
    with pytest.raises(ValueError, match=r"^units "):
        hed_jitter(slide, units="od", rng=rng)
    with pytest.raises(TypeError, match=r"^rng "):
        hed_jitter(slide, rng=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^alpha "):
        hed_adjust(slide, [1.0, 1.0], 0.0)
    with pytest.raises(ValueError, match=r"^stains "):
        od_residual(slide, stains="HX")
