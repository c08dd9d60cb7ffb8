"""Lesson 03's additions to hrlib.augment: the reference HED units, tissue-only jitter, colour arms, per-item scores."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from hrlib.augment.presets import preset, score_arms, train_and_evaluate
from hrlib.augment.spectral import band_noise, index_error
from hrlib.augment.stain import HEDJitter, hed_adjust, hed_jitter, tissue_weight
from hrlib.data import SynthDataset, make_multispectral, make_slide

# The Radboud/DIAG HedColorAugmenter, re-written here from its formula (not from its code): scikit-image < 0.19
# unmixing with a reflectance offset of 2 and the natural log, float32, truncation back to uint8.
_M = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])


def reference_formula(image: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    od = -np.log(x + 2.0)  # "optical density" of the offset reflectance
    conc = od.reshape(-1, 3) @ np.linalg.inv(_M) * alpha + beta
    back = np.exp(-(conc @ _M)) - 2.0
    return (np.clip(back, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(image.shape)


@pytest.fixture(scope="module")
def slides() -> list[np.ndarray]:
    return [make_slide(96, label=k, seed=40 + k, site=s).image for k, s in enumerate("ABC")]


def test_reference_units_match_the_reference_formula_on_identical_draws(slides):
    rng = np.random.default_rng(0)
    for image in slides:
        for s in (0.05, 0.2):
            alpha, beta = rng.uniform(1 - s, 1 + s, 3), rng.uniform(-s, s, 3)
            ours = hed_adjust(image, alpha, beta, units="reference", nonnegative=False).astype(int)
            ref = reference_formula(image, alpha, beta).astype(int)
            assert np.abs(ours - ref).max() <= 1  # hrlib rounds, the reference truncates


def test_reference_moves_pixels_about_twice_as_far_as_the_log10_reading(slides):
    rng = np.random.default_rng(1)
    for s, low in ((0.05, 1.8), (0.2, 1.4)):  # at "strong" both clip at white and black more often
        ref, paper = [], []
        for image in slides:
            for _ in range(4):
                alpha, beta = rng.uniform(1 - s, 1 + s, 3), rng.uniform(-s, s, 3)
                ref.append(np.abs(reference_formula(image, alpha, beta).astype(float) - image).mean())
                paper.append(np.abs(hed_adjust(image, alpha, beta, nonnegative=False).astype(float) - image).mean())
        assert low < np.mean(ref) / np.mean(paper) < 2.8


def test_reference_units_zero_strength_is_the_identity(slides):
    for image in slides:
        assert np.array_equal(hed_adjust(image, 1.0, 0.0, units="reference"), image)
        assert np.array_equal(hed_jitter(image, 0.0, 0.0, rng=np.random.default_rng(0), units="reference"), image)


def test_tissue_only_jitter_leaves_the_glass_white(slides):
    image = slides[0]
    weight = tissue_weight(image)
    glass, tissue = weight == 0, weight == 1
    assert glass.any() and tissue.any() and weight.min() >= 0 and weight.max() <= 1
    stained = hed_adjust(image, 1.0, 0.2, units="reference", tissue_od=None)
    masked = hed_adjust(image, 1.0, 0.2, units="reference", tissue_od=0.05)
    assert np.abs(stained[glass].astype(int) - image[glass]).mean() > 10  # a positive shift stains the glass
    assert np.array_equal(masked[glass], image[glass])
    assert np.array_equal(masked[tissue], stained[tissue])
    assert np.array_equal(HEDJitter(0.0, 0.0, units="reference", seed=0)(image=image)["image"], image)


def test_bad_tissue_od_is_named(slides):
    with pytest.raises(ValueError, match=r"^tissue_od "):
        hed_adjust(slides[0], 1.0, 0.0, tissue_od=0.0)
    with pytest.raises(ValueError, match=r"^tissue_od "):
        tissue_weight(slides[0], tissue_od=-1)
    with pytest.raises(ValueError, match=r"^units "):
        hed_adjust(slides[0], 1.0, 0.0, units="diag")


def test_pathology_colour_arms():
    names = {c: [type(t).__name__ for t in preset("pathology", 32, color=c).transforms] for c in ("hed", "rgb", "none")}
    assert "HEDJitter" in names["hed"] and "ColorJitter" not in names["hed"]
    assert "ColorJitter" in names["rgb"] and "HEDJitter" not in names["rgb"]
    assert "HEDJitter" not in names["none"] and "ColorJitter" not in names["none"]
    hed = next(t for t in preset("pathology", 32, hed_units="reference").transforms if isinstance(t, HEDJitter))
    assert hed.units == "reference"
    with pytest.raises(ValueError, match=r"^color "):
        preset("pathology", 32, color="hsv")
    with pytest.raises(ValueError, match=r"^hed_units "):
        preset("pathology", 32, hed_units="diag")


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_per_item_scores_average_to_the_accuracy_and_pair_by_seed(one_thread):
    train = SynthDataset("xray", 16, 32, seed=1, channels=1, in_memory=True)
    val = SynthDataset("xray", 10, 32, seed=2, channels=1, in_memory=True)
    t, v = preset("xray", 32, mean=(0.4,), std=(0.2,)), preset("xray", 32, train=False, mean=(0.4,), std=(0.2,))
    kw = {"resolution": 32, "num_epochs": 1, "num_classes": 2, "widths": (4, 8)}
    acc = train_and_evaluate(train, val, t, v, seed=3, **kw)
    items = train_and_evaluate(train, val, t, v, seed=3, per_item=True, **kw)
    assert items.shape == (10,) and set(np.unique(items)) <= {0.0, 1.0} and items.mean() == pytest.approx(acc)
    scores = score_arms({"a": (t, v), "b": (t, v)}, train, val, seeds=[3, 4], **kw)
    assert scores["a"].shape == (2, 10) and np.array_equal(scores["a"], scores["b"])  # same seed, same run
    assert np.array_equal(scores["a"][0], items)
    with pytest.raises(ValueError, match=r"^seeds "):
        score_arms({"a": (t, v)}, train, val, seeds=[], **kw)
    with pytest.raises(TypeError, match=r"^arms "):
        score_arms({"a": t}, train, val, seeds=[0], **kw)


def test_index_error_is_zero_for_ratio_keeping_noise_and_not_for_independent():
    scene = make_multispectral(48, label=1, seed=0)
    rng = np.random.default_rng(0)
    mult = band_noise(scene.image, 0.05, mode="multiplicative", rng=rng, clip=False)
    indep = band_noise(scene.image, 0.02, mode="independent", rng=rng)
    assert index_error(scene.image, scene.image) == 0.0  # the identity scores zero too: read it with the noise std
    assert index_error(scene.image, mult, scene.mask) < 1e-5
    assert index_error(scene.image, indep, scene.mask) > 0.01
    with pytest.raises(ValueError, match=r"^noisy "):
        index_error(scene.image, scene.image[:10])
    with pytest.raises(ValueError, match=r"^mask "):
        index_error(scene.image, indep, np.zeros((48, 48), bool))
    assert isinstance(A.Compose([HEDJitter()]), A.Compose)
