"""hrlib.domain.color: per-domain statistics, LAB alignment, HistogramMatching/FDA wrappers, source elastic."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from scipy.stats import wasserstein_distance
from skimage import color

from hrlib.data.slides import SlideDataset, make_slide
from hrlib.domain.color import (
    LabAlign,
    LabReference,
    PerDomainDataset,
    PerDomainNormalize,
    domain_stats,
    elastic_rms_displacement,
    fda,
    histogram_matching,
    lab_align,
    lab_reference,
    source_elastic,
)

SIZE = 96


@pytest.fixture(scope="module")
def slides() -> dict[str, list[np.ndarray]]:
    """Site-A references (seeds 0-3), and the same tissue (seeds 10-13) seen by sites A and B."""
    return {"ref": [make_slide(SIZE, seed=s, site="A").image for s in range(4)],
            "A": [make_slide(SIZE, seed=s, site="A").image for s in range(10, 14)],
            "B": [make_slide(SIZE, seed=s, site="B").image for s in range(10, 14)]}


def _mean_rgb(images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64).mean(0)


def _l_values(images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([color.rgb2lab(im)[..., 0].ravel() for im in images])


# ---- per-domain statistics ----

def test_domain_stats_of_constant_images_and_errors() -> None:
    images = [np.full((4, 4, 3), (51, 102, 255), np.uint8), np.full((2, 6, 3), (51, 102, 255), np.uint8)]
    mean, std = domain_stats(images)
    assert mean == pytest.approx((0.2, 0.4, 1.0))
    assert all(s <= 1e-6 for s in std)
    with pytest.raises(ValueError, match=r"^images\[1\] must be an HxWxC \(C in 3\) uint8"):
        domain_stats([images[0], images[0].astype(np.float32)])


def test_per_domain_normalize_standardizes_each_domain_with_its_own_stats(slides) -> None:
    stats = {"A": domain_stats(slides["A"]), "B": domain_stats(slides["B"])}
    t = A.Compose([PerDomainNormalize(stats)])
    for site in ("A", "B"):
        out = np.stack([t(image=im, domain=site)["image"] for im in slides[site]])
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.reshape(-1, 3).mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(out.reshape(-1, 3).std(0), 1.0, atol=1e-3)
    with pytest.raises(ValueError, match=r"^domain must be one of \['A', 'B'\], got 'C'"):
        t(image=slides["A"][0], domain="C")
    with pytest.raises(ValueError, match=r"missing keys: \{'domain'\}"):  # albumentations' own check
        t(image=slides["A"][0])
    with pytest.raises(ValueError, match=r"^stats\['A'\] must be \(mean, std\)"):
        PerDomainNormalize({"A": ((0.5, 0.5, 0.5), (0.1, 0.0, 0.1))})


def test_per_domain_dataset_moves_each_domain_to_the_reference_stats() -> None:
    data = SlideDataset(8, 48, seed=1, sites=("A", "B"))
    by_site = {s: [data[i][0] for i in range(len(data)) if data.sites[i % 2] == s] for s in ("A", "B")}
    stats = {s: domain_stats(ims) for s, ims in by_site.items()}
    reference = stats["A"]
    wrapped = PerDomainDataset(data, stats, reference)  # domains from data.sites
    assert len(wrapped) == len(data)
    image, label, boxes = wrapped[1]
    assert image.dtype == np.uint8 and label == data[1][1] and np.array_equal(boxes, data[1][2])
    moved_b = domain_stats([wrapped[i][0] for i in range(1, len(data), 2)])
    np.testing.assert_allclose(moved_b[0], reference[0], atol=0.01)  # B now has A's mean (up to rounding/clipping)
    np.testing.assert_allclose(moved_b[1], reference[1], rtol=0.1)
    assert np.abs(np.subtract(stats["B"][0], reference[0])).max() > 0.02  # ... which it did not have before
    with pytest.raises(ValueError, match=r"^stats must cover every domain, missing 'B'"):
        PerDomainDataset(data, {"A": reference}, reference)
    with pytest.raises(ValueError, match=r"^domains must have one entry per item \(8\), got 2"):
        PerDomainDataset(data, stats, reference, domains=["A", "B"])


# ---- LAB alignment ----

def test_lab_align_matches_the_l_distribution_and_ab_means_of_the_reference(slides) -> None:
    ref = lab_reference(slides["ref"])
    ref_l = _l_values(slides["ref"])
    for image in slides["B"]:
        out = lab_align(image, ref)
        assert out.dtype == np.uint8 and out.shape == image.shape
        before = wasserstein_distance(_l_values([image]), ref_l)
        after = wasserstein_distance(_l_values([out]), ref_l)
        assert after < 0.5 and after < 0.25 * before, (before, after)
        lab = color.rgb2lab(out)  # after clipping to the gamut and uint8 rounding
        assert abs(lab[..., 1].mean() - ref.a_mean) < 1.5
        assert abs(lab[..., 2].mean() - ref.b_mean) < 1.5


def test_lab_align_brings_site_b_colours_to_site_a(slides) -> None:
    ref = lab_reference(slides["ref"])
    aligned = [lab_align(im, ref) for im in slides["B"]]
    before = np.linalg.norm(_mean_rgb(slides["B"]) - _mean_rgb(slides["A"]))
    after = np.linalg.norm(_mean_rgb(aligned) - _mean_rgb(slides["A"]))
    assert after < 0.3 * before, (before, after)


def test_lab_align_with_its_own_reference_is_nearly_the_identity(slides) -> None:
    image = slides["B"][0]
    out = lab_align(image, image)  # an array reference is turned into a LabReference
    diff = np.abs(out.astype(np.int16) - image)
    assert diff.mean() < 0.1 and np.mean(diff > 1) < 0.01


def test_lab_align_clahe_mode_and_lab_align_transform(slides) -> None:
    ref = lab_reference(slides["ref"])
    out = lab_align(slides["B"][0], ref, l_mode="clahe")
    assert out.shape == slides["B"][0].shape and out.dtype == np.uint8
    assert abs(color.rgb2lab(out)[..., 1].mean() - ref.a_mean) < 1.5
    t = A.Compose([LabAlign(ref)])
    np.testing.assert_array_equal(t(image=slides["B"][1])["image"], lab_align(slides["B"][1], ref))


def test_lab_reference_pools_its_images(slides) -> None:
    ref = lab_reference(slides["ref"])
    assert isinstance(ref, LabReference) and np.all(np.diff(ref.l_quantiles) >= 0)
    pooled = np.concatenate([color.rgb2lab(im).reshape(-1, 3) for im in slides["ref"]])
    assert ref.a_mean == pytest.approx(pooled[:, 1].mean()) and ref.b_mean == pytest.approx(pooled[:, 2].mean())
    assert ref.l_quantiles[0] == pytest.approx(pooled[:, 0].min())


def test_lab_errors_name_the_argument(slides) -> None:
    good = slides["A"][0]
    with pytest.raises(ValueError, match=r"^image must be an HxWxC \(C in 3\) uint8 .*, got float64 .*\(96, 96"):
        lab_align(good.astype(np.float64), good)
    with pytest.raises(ValueError, match=r"^image must be an HxWxC \(C in 3\) uint8 numpy array"):
        lab_align(good[..., 0], good)
    with pytest.raises(ValueError, match=r"^reference must be an HxWxC \(C in 3\) uint8 numpy array"):
        lab_align(good, good[..., :2])
    with pytest.raises(TypeError, match=r"^reference must be a LabReference"):
        lab_align(good, [good])
    with pytest.raises(ValueError, match=r"^l_mode must be one of \('histogram', 'clahe'\), got 'hist'"):
        lab_align(good, good, l_mode="hist")
    with pytest.raises(ValueError, match=r"^clip_limit must be a finite float in \(0, 1\]"):
        lab_align(good, good, l_mode="clahe", clip_limit=0)
    with pytest.raises(ValueError, match=r"^images must be a non-empty sequence"):
        lab_reference([])


# ---- albumentations HistogramMatching / FDA through the metadata API ----

@pytest.mark.parametrize("make", [histogram_matching, fda])
def test_reference_wrappers_move_colour_towards_the_reference_and_are_seeded(slides, make) -> None:
    t = make(slides["ref"], seed=3)
    out = [t(image=im)["image"] for im in slides["B"]]
    assert all(o.shape == im.shape and o.dtype == np.uint8 for o, im in zip(out, slides["B"], strict=True))
    before = np.linalg.norm(_mean_rgb(slides["B"]) - _mean_rgb(slides["ref"]))
    after = np.linalg.norm(_mean_rgb(out) - _mean_rgb(slides["ref"]))
    assert after < 0.3 * before, (before, after)
    again = make(slides["ref"], seed=3)
    for o, im in zip(out, slides["B"], strict=True):
        np.testing.assert_array_equal(again(image=im)["image"], o)


def test_fda_with_a_window_below_two_pixels_keeps_the_mean_colour(slides) -> None:
    """Documents the albumentations 2.0.8 trap: floor(beta * side) < 2 misses the zero frequency (even sides)."""
    image = slides["B"][0]
    small = fda(slides["ref"], beta_limit=(1.5 / SIZE, 1.5 / SIZE), seed=0)(image=image)["image"]
    large = fda(slides["ref"], beta_limit=(2.5 / SIZE, 2.5 / SIZE), seed=0)(image=image)["image"]
    ref_mean = _mean_rgb(slides["ref"])
    assert np.abs(_mean_rgb([small]) - _mean_rgb([image])).max() < 1.0
    assert np.linalg.norm(_mean_rgb([large]) - ref_mean) < 0.5 * np.linalg.norm(_mean_rgb([image]) - ref_mean)


def test_reference_wrappers_take_following_transforms_and_validate(slides) -> None:
    t = fda(slides["ref"], after=[A.Normalize(), ToTensorV2()], seed=0)
    x = t(image=slides["B"][0])["image"]
    assert isinstance(x, torch.Tensor) and x.shape == (3, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"^reference_images must be a non-empty sequence"):
        histogram_matching([])
    with pytest.raises(ValueError, match=r"^reference_images\[1\] must be an HxWxC \(C in 3\) uint8 numpy array"):
        fda([slides["ref"][0], slides["ref"][0][..., 0]])
    with pytest.raises(ValueError, match=r"^p must be a finite float in \[0, 1\]"):
        histogram_matching(slides["ref"], p=2.0)


# ---- source elastic ----

def test_source_elastic_is_small_seeded_and_documented(slides) -> None:
    image = slides["A"][0]
    t = source_elastic(p=1.0, seed=5)
    assert isinstance(t, A.ElasticTransform) and t.alpha == 50.0 and t.sigma == 5.0
    out = t(image=image)["image"]
    np.testing.assert_array_equal(source_elastic(p=1.0, seed=5)(image=image)["image"], out)
    change = np.abs(out.astype(np.int16) - image).mean()
    assert 0.5 < change < 20.0  # it moves pixels, by about a pixel
    rms = elastic_rms_displacement(50.0, 5.0, 128)
    assert 0.5 < rms < 2.0  # ~0.1 * alpha / sigma pixels, as documented
    assert elastic_rms_displacement(1.0, 50.0, 128) < 0.05  # the 2.0.8 default is almost a no-op
    with pytest.raises(ValueError, match=r"^sigma must be a finite float > 0"):
        source_elastic(sigma=0.0)
    with pytest.raises(ValueError, match=r"^alpha must be a finite float >= 0"):
        source_elastic(alpha=-1.0)
