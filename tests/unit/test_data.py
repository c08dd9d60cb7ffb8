"""hrlib.data.slides: the generator's ground truth, determinism, resolution consistency, sites, Dataset, cache,
errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hrlib.data.real import real_image
from hrlib.data.slides import (
    CLASS_NAMES,
    SITES,
    Site,
    SlideDataset,
    collate_slides,
    detail_energy,
    downscale,
    make_slide,
)


def test_slide_contract():
    s = make_slide(128, label=2, seed=5)
    assert s.image.shape == (128, 128, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (128, 128) and s.mask.dtype == bool
    assert s.label == 2 and s.site == "A" and s.seed == 5
    assert s.boxes.dtype == np.float32 and s.boxes.shape[1] == 4 and 1 <= len(s.boxes) <= 3
    assert len(s.decoy_boxes) == 3
    assert np.all(s.boxes[:, 2] > s.boxes[:, 0]) and np.all(s.boxes[:, 3] > s.boxes[:, 1])
    assert s.boxes.min() >= 0 and s.boxes.max() <= 128


@pytest.mark.parametrize("label,n_boxes", [(0, 0), (1, 1)])
def test_label_defines_evidence(label, n_boxes):
    s = make_slide(96, label=label, seed=1)
    assert len(s.boxes) == n_boxes
    assert s.mask.any() == (n_boxes > 0)


def test_mask_lies_inside_boxes():
    for label in (1, 2):
        s = make_slide(256, label=label, seed=3)
        inside = np.zeros_like(s.mask)
        for x0, y0, x1, y1 in s.boxes:
            inside[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
        assert s.mask.sum() > 0 and not (s.mask & ~inside).any()


def test_deterministic_and_seed_sensitive():
    a, b, c = make_slide(64, seed=3), make_slide(64, seed=3), make_slide(64, seed=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, c.image)


def test_same_layout_at_every_resolution():
    small, large = make_slide(128, label=2, seed=9), make_slide(512, label=2, seed=9)
    np.testing.assert_allclose(large.boxes / 4, small.boxes, atol=1e-3)
    # the large slide shrunk to the small size looks like the small slide (same tissue, same stain)
    diff = np.abs(downscale(large.image, 4).astype(float) - small.image.astype(float)).mean()
    other = np.abs(make_slide(128, label=2, seed=10).image.astype(float) - small.image.astype(float)).mean()
    assert diff < 0.35 * other


def test_target_fraction_is_relative_to_the_image():
    for size in (128, 1024):
        s = make_slide(size, label=2, seed=2, target_frac=0.05)
        side = (s.boxes[:, 2] - s.boxes[:, 0]) / size
        np.testing.assert_allclose(side, 0.05, rtol=1e-3)


def test_site_changes_pixels_not_layout():
    a, b = make_slide(128, label=2, seed=4, site="A"), make_slide(128, label=2, seed=4, site="B")
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert np.abs(a.image.astype(float).mean((0, 1)) - b.image.astype(float).mean((0, 1))).max() > 2


def test_custom_site_and_blur():
    sharp = make_slide(512, seed=1, site=Site("x", blur=0.0, noise=0.0))  # blur is in pixels of a 512 slide
    blurred = make_slide(512, seed=1, site=Site("y", blur=3.0, noise=0.0))
    lap = [np.abs(np.diff(s.image.astype(float), axis=1)).mean() for s in (sharp, blurred)]
    assert lap[1] < 0.6 * lap[0]


def test_stains_follow_beer_lambert():
    """Optical density of a stain-free (lumen) pixel is ~0; nuclei pixels point along the hematoxylin vector."""
    site = Site("clean", blur=0.0, noise=0.0)
    s = make_slide(256, label=0, seed=0, site=site, n_decoys=0)
    od = -np.log10(np.clip(s.image.astype(float), 1, 255) / np.asarray(site.background))
    dark = od.sum(axis=2) > np.quantile(od.sum(axis=2), 0.995)  # densest pixels: nuclei
    direction = od[dark].mean(axis=0)
    direction /= np.linalg.norm(direction)
    h = site.stain_matrix()[0]
    assert direction @ h > 0.97


def test_targets_have_fine_detail_that_downsampling_removes():
    ratios = {}
    for f in (1, 8):
        t, d = [], []
        for seed in range(4):
            s = make_slide(512, label=2, seed=seed)
            img = downscale(s.image, f)
            t += list(detail_energy(img, s.boxes / f))
            d += list(detail_energy(img, s.decoy_boxes / f))
        ratios[f] = np.nanmean(t) / np.nanmean(d)
    assert ratios[1] > 3.0
    assert ratios[8] < 1.5


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"size": 0}, ValueError, "size must be an int >= 1, got 0"),
        ({"size": -5}, ValueError, "size"),
        ({"size": 12.5}, TypeError, "size must be an int"),
        ({"size": True}, TypeError, "size"),
        ({"seed": "1"}, TypeError, "seed must be an int"),
        ({"seed": -1}, ValueError, "seed"),
        ({"site": "Z"}, ValueError, "site must be one of"),
        ({"target_frac": 1.5}, ValueError, "target_frac"),
        ({"target_frac": 0}, ValueError, "target_frac"),
        ({"label": 3}, ValueError, "label must be in 0..2"),
        ({"n_decoys": 11}, ValueError, "n_decoys"),
        ({"density": 0}, ValueError, "density"),
    ],
)
def test_bad_arguments_are_named(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_slide(**{"size": 32, **kwargs})


def test_default_size_follows_profile(monkeypatch):
    monkeypatch.setenv("HRLIB_PROFILE", "fast")
    from hrlib.config import get_profile

    assert make_slide(seed=0).image.shape[0] == get_profile().image_size


def test_dataset_balanced_and_deterministic():
    ds = SlideDataset(6, 48, seed=1, sites=("A", "B"))
    assert len(ds) == 6 and ds.labels == [0, 1, 2, 0, 1, 2]
    img, label, boxes = ds[2]
    assert img.shape == (48, 48, 3) and label == 2 and boxes.shape[1] == 4
    np.testing.assert_array_equal(ds[4][0], SlideDataset(6, 48, seed=1, sites=("A", "B"))[4][0])
    assert ds.slide(1).site == "B"
    with pytest.raises(IndexError, match="out of range"):
        ds[6]


def test_dataset_loader_and_transform():
    ds = SlideDataset(4, 32, transform=lambda im: torch.from_numpy(im).permute(2, 0, 1).float() / 255)
    x, y, boxes = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_slides)))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.tolist() == [0, 1, 2, 0]
    assert len(boxes) == 4 and boxes[0].shape == (0, 4)


def test_dataset_cache_roundtrip_and_corrupt_file(tmp_path):
    ds = SlideDataset(3, 40, seed=2, cache_dir=tmp_path)
    first = ds.slide(2)
    files = sorted(ds.cache_dir.glob("*.npz"))
    assert len(files) == 1 and not list(ds.cache_dir.glob("*.tmp*"))
    again = SlideDataset(3, 40, seed=2, cache_dir=tmp_path).slide(2)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.boxes, again.boxes)
    files[0].write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable"):
        repaired = ds.slide(2)
    np.testing.assert_array_equal(first.image, repaired.image)


def test_dataset_bad_arguments():
    with pytest.raises(ValueError, match="sites must be a non-empty sequence"):
        SlideDataset(2, 32, sites="A")
    with pytest.raises(ValueError, match="labels must have n=2"):
        SlideDataset(2, 32, labels=[0])
    with pytest.raises(TypeError, match="unexpected keyword"):
        SlideDataset(2, 32, target_fraction=0.1)


def test_downscale_is_area_average():
    img = np.zeros((8, 8), np.uint8)
    img[::2, ::2] = 200  # a checkerboard of 1-pixel dots: stride sampling would see only 200s
    assert np.all(downscale(img, 2) == 50)
    with pytest.raises(ValueError, match="factor must be <="):
        downscale(img, 9)
    with pytest.raises(ValueError, match="image must be"):
        downscale(np.zeros(5), 2)


def test_detail_energy_errors():
    with pytest.raises(ValueError, match=r"HxWxC \(C in 3\) uint8"):
        detail_energy(np.zeros((8, 8), np.uint8), np.zeros((1, 4)))


def test_real_images_ship_with_scikit_image():
    retina = real_image("retina")
    assert retina.shape == (1411, 1411, 3) and retina.dtype == np.uint8
    assert real_image("ihc").shape == (512, 512, 3)
    with pytest.raises(ValueError, match="name must be one of"):
        real_image("imagenet")


def test_class_names_and_sites():
    assert CLASS_NAMES == ("normal", "lesion", "target")
    assert {"A", "B", "C", "D"} <= set(SITES)


def test_in_memory_dataset_renders_once(monkeypatch):
    import hrlib.data.slides as data

    calls = []
    real = data.make_slide
    monkeypatch.setattr(data, "make_slide", lambda *a, **k: calls.append(1) or real(*a, **k))
    ds = data.SlideDataset(3, 32, in_memory=True)
    first = ds[1][0]
    assert ds[1][0] is first and ds[-2][0] is first
    assert len(calls) == 2  # one validation render in __init__, one for item 1


def test_slide_statistics_match_the_generator():
    from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD

    ims = np.stack([make_slide(128, seed=i, label=i % 3).image for i in range(12)]).astype(float) / 255
    np.testing.assert_allclose(ims.mean(axis=(0, 1, 2)), SLIDE_MEAN, atol=0.03)
    np.testing.assert_allclose(ims.std(axis=(0, 1, 2)), SLIDE_STD, atol=0.03)


def test_dataset_in_dataloader_workers(tmp_path):
    """Worker processes render (or read the disk cache) the same items as the main process."""
    ds = SlideDataset(6, 32, seed=4, cache_dir=tmp_path)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_slides)
    images = torch.cat([x for x, _, _ in loader])
    assert images.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(images[4].numpy(), ds[4][0])
    assert len(list(ds.cache_dir.glob("*.npz"))) == 6
