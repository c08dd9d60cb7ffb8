"""Lesson 03's additions to hrlib.augment: the reference HED units, tissue-only jitter, colour arms, per-item scores."""

from __future__ import annotations

import os
import subprocess
import sys

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
    with pytest.raises(ValueError, match=r"^workers "):
        score_arms({"a": (t, v)}, train, val, seeds=[0], workers=0, **kw)
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


_PARALLEL_CHECK = """
import warnings
import numpy as np, torch
from hrlib.augment.presets import preset, score_arms
from hrlib.data.synth import SynthDataset
torch.set_num_threads(1)
train = SynthDataset("xray", 16, 32, seed=1, channels=1, in_memory=True)
val = SynthDataset("xray", 12, 32, seed=2, channels=1, in_memory=True)
arms = {"plain": (preset("xray", 32, rotation="none", brightness_contrast=0.0, mean=(0.4,), std=(0.2,)),
                  preset("xray", 32, train=False, mean=(0.4,), std=(0.2,))),
        "augmented": (preset("xray", 32, mean=(0.4,), std=(0.2,)),
                      preset("xray", 32, train=False, mean=(0.4,), std=(0.2,)))}
kw = {"resolution": 32, "num_epochs": 2, "num_classes": 2, "widths": (4, 8)}
seen = []
def progress(it, total, desc):
    seen.append(total)
    return it
one = score_arms(arms, train, val, seeds=[5, 6, 7], **kw)
with warnings.catch_warnings():
    warnings.simplefilter("error")  # no fallback to one run at a time: the workers really trained
    two = score_arms(arms, train, val, seeds=[5, 6, 7], workers=2, progress=progress, **kw)
assert seen == [6] and list(two) == ["plain", "augmented"], (seen, list(two))
for name in arms:
    assert two[name].shape == (3, 12) and np.array_equal(one[name], two[name]), name
# order and placement: a stand-in run that records its arm, seed and process
import os
from hrlib.augment import presets
def stand_in(train_set, val_set, transform, val_transform, *, seed, per_item, **kwargs):
    arm = [name for name, (t, _) in arms.items() if t is transform][0]
    return np.array([float(seed), float(arm == "augmented"), float(os.getpid())])
presets.train_and_evaluate = stand_in
got = score_arms(arms, train, val, seeds=[5, 6, 7, 8], workers=2, **kw)
for k, name in enumerate(arms):
    assert got[name][:, :2].tolist() == [[s, k] for s in (5, 6, 7, 8)], got[name]
pids = {p for name in arms for p in got[name][:, 2]}
assert os.getpid() not in pids, pids  # worker processes did the runs, not this one
print("ok")
"""


def test_parallel_workers_give_the_sequential_scores_in_order():
    # a fresh interpreter: forked workers must not depend on what earlier tests did to this process's autograd
    done = subprocess.run([sys.executable, "-c", _PARALLEL_CHECK], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]

def test_workers_that_cannot_train_hand_their_runs_back_to_the_parent(one_thread, monkeypatch):
    from hrlib.augment import presets

    train = SynthDataset("xray", 16, 32, seed=1, channels=1, in_memory=True)
    val = SynthDataset("xray", 8, 32, seed=2, channels=1, in_memory=True)
    arms = {"a": (preset("xray", 32, mean=(0.4,), std=(0.2,)),
                  preset("xray", 32, train=False, mean=(0.4,), std=(0.2,)))}
    kw = {"resolution": 32, "num_epochs": 1, "num_classes": 2, "widths": (4, 8)}
    expected = score_arms(arms, train, val, seeds=[1, 2], **kw)
    parent, real = os.getpid(), presets.train_and_evaluate

    def refuses_in_children(*args, **kwargs):  # what autograd does in a child forked after its device threads
        if os.getpid() != parent:
            raise RuntimeError("Unable to handle autograd's threading in combination with fork-based multiprocessing")
        return real(*args, **kwargs)

    monkeypatch.setattr(presets, "train_and_evaluate", refuses_in_children)
    with pytest.warns(RuntimeWarning, match="one at a time"):
        got = score_arms(arms, train, val, seeds=[1, 2], workers=2, **kw)
    assert np.array_equal(got["a"], expected["a"])
