"""hrlib.data.synth: the domain generators' ground truth, class evidence, determinism, the Dataset and bad arguments."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hrlib import data
from hrlib.data.documents import DOCUMENT_CLASSES, make_document
from hrlib.data.synth import (
    BAND_NAMES,
    MULTISPECTRAL_CLASSES,
    SCRATCH_CLASSES,
    XRAY_CLASSES,
    Sample,
    SynthDataset,
    make_multispectral,
    make_scratch,
    make_xray,
    ndvi,
)

GENERATORS = {"multispectral": (make_multispectral, MULTISPECTRAL_CLASSES), "scratch": (make_scratch, SCRATCH_CLASSES),
              "xray": (make_xray, XRAY_CLASSES), "document": (make_document, DOCUMENT_CLASSES)}


def covered(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    inside = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        inside[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
    return inside


def test_reexported_from_data():
    assert data.SynthDataset is SynthDataset and data.make_xray is make_xray and data.Sample is Sample


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_contract_and_ground_truth(kind):
    make, classes = GENERATORS[kind]
    for label in range(len(classes)):
        s = make(96, label=label, seed=3)
        assert isinstance(s, Sample) and s.label == label
        h, w = s.image.shape[:2]
        assert h == 96 and (w == 96 or kind == "document")
        if kind == "multispectral":
            assert s.image.shape == (96, 96, len(BAND_NAMES)) and s.image.dtype == np.float32
            assert 0 <= s.image.min() and s.image.max() <= 1
        else:
            assert s.image.ndim == 2 and s.image.dtype == np.uint8
        assert s.boxes.dtype == np.float32 and s.boxes.ndim == 2 and s.boxes.shape[1] == 4
        assert s.mask is not None and s.mask.shape == (h, w) and s.mask.dtype == bool
        b = s.boxes
        assert np.all(b[:, :2] >= 0) and np.all(b[:, 2] <= w) and np.all(b[:, 3] <= h)
        assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
        assert not (s.mask & ~covered(b, (h, w))).any()  # boxes enclose the evidence
        assert (len(b) > 0) == s.mask.any()
        assert all(isinstance(v, float) for v in s.meta.values())


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_deterministic_and_seed_sensitive(kind):
    make, classes = GENERATORS[kind]
    a, b, c = make(64, seed=7), make(64, seed=7), make(64, seed=8)
    assert a.image.tobytes() == b.image.tobytes() and np.array_equal(a.boxes, b.boxes) and a.label == b.label
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)
    drawn = {make(32, seed=s).label for s in range(40)}  # label from the seed covers every class
    assert drawn == set(range(len(classes)))


def test_default_size_follows_profile(monkeypatch):
    monkeypatch.setenv("HRLIB_PROFILE", "fast")
    assert make_scratch().image.shape == (128, 128) and make_document(aspect=2.0).image.shape == (64, 128)
    monkeypatch.setenv("HRLIB_PROFILE", "full")
    assert make_xray().image.shape == (512, 512)


def test_multispectral_bands_correlate_and_ndvi_orders_classes():
    means = {label: [] for label in range(3)}
    for seed in range(12):
        for label in range(3):
            s = make_multispectral(96, label=label, seed=seed)
            corr = np.corrcoef(s.image[..., :3].reshape(-1, 3).T)
            assert corr[np.triu_indices(3, 1)].min() > 0.8
            means[label].append(s.meta["ndvi"])
            if label > 0:
                assert abs(ndvi(s.image)[s.mask].mean() - s.meta["ndvi"]) < 0.05
    # every crop is greener than every stressed crop, which is greener than any bare soil
    assert min(means[1]) > max(means[2]) and min(means[2]) > max(means[0]) + 0.2


def test_multispectral_crop_has_fine_rows_and_stressed_does_not():
    def fine_energy(s: Sample) -> float:
        band = s.image[..., 3]
        high = band - cv2.GaussianBlur(band, (0, 0), 2.0)
        return float(np.sqrt(np.mean(high[cv2.erode(s.mask.astype(np.uint8), np.ones((5, 5))) > 0] ** 2)))

    for seed in range(5):
        assert fine_energy(make_multispectral(128, label=1, seed=seed)) > 3 * fine_energy(
            make_multispectral(128, label=2, seed=seed))


def test_ndvi_values_and_errors():
    image = np.array([[[0.1, 0.1, 0.1, 0.5], [0.0, 0.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(ndvi(image), [[2 / 3, 0.0]], rtol=1e-6)
    assert ndvi(image).dtype == np.float32
    with pytest.raises(ValueError, match="^image "):
        ndvi(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="^nir "):
        ndvi(np.zeros((4, 4, 3)))


@pytest.mark.parametrize("label", [1, 2])
def test_scratch_angle_follows_class(label):
    for seed in range(20):
        s = make_scratch(96, label=label, seed=seed)
        off_horizontal = abs(s.meta["angle"])
        assert -90 <= s.meta["angle"] < 90
        assert off_horizontal <= 20 if label == 1 else off_horizontal >= 70
        x0, y0, x1, y1 = s.boxes[0]
        assert (x1 - x0 > y1 - y0) == (label == 1)  # the box's long side follows the scratch
        assert max(x1 - x0, y1 - y0) >= 0.25 * 96


def test_clean_scratch_has_no_evidence_and_grain_is_horizontal():
    s = make_scratch(128, label=0, seed=1)
    assert len(s.boxes) == 0 and not s.mask.any() and np.isnan(s.meta["angle"])
    img = s.image.astype(float)
    assert np.abs(np.diff(img, axis=0)).mean() > 2 * np.abs(np.diff(img, axis=1)).mean()
    flat = make_scratch(128, label=0, seed=1, grain=0.0).image.astype(float)
    assert np.abs(np.diff(flat, axis=0)).mean() < 0.5 * np.abs(np.diff(img, axis=0)).mean()


def test_xray_flip_changes_class_and_mirrors_the_heart():
    for seed in range(6):
        normal, dextro = make_xray(96, label=0, seed=seed), make_xray(96, label=1, seed=seed)
        assert np.array_equal(normal.image[:, ::-1], dextro.image)
        x0, y0, x1, y1 = normal.boxes[0]
        np.testing.assert_array_equal(dextro.boxes[0], [96 - x1, y0, 96 - x0, y1])
        assert (x0 + x1) / 2 > 48 > (dextro.boxes[0, 0] + dextro.boxes[0, 2]) / 2
    diffs = []
    for seed in range(40):
        s = make_xray(96, label=0, seed=seed)
        x0, y0, x1, y1 = s.boxes[0].astype(int)
        diffs.append(s.image[y0:y1, x0:x1].mean() - s.image[y0:y1, 96 - x1:96 - x0].mean())
    assert np.mean(np.array(diffs) > 0) >= 0.9 and np.median(diffs) > 15


def glyph_aspects(image: np.ndarray) -> float:
    """Median height / width of the ink's connected components (one per glyph)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats((image < 128).astype(np.uint8))
    stats = stats[1:][stats[1:, cv2.CC_STAT_AREA] > 4]
    return float(np.median(stats[:, cv2.CC_STAT_HEIGHT] / stats[:, cv2.CC_STAT_WIDTH]))


def test_document_glyph_aspect_and_plain_resize():
    for seed in range(4):
        condensed = make_document(128, aspect=3.0, label=0, seed=seed)
        extended = make_document(128, aspect=3.0, label=1, seed=seed)
        assert condensed.image.shape == (128, 384) and condensed.meta["aspect"] == 3.0
        assert 1.62 <= condensed.meta["glyph_aspect"] <= 1.98 and 0.54 <= extended.meta["glyph_aspect"] <= 0.66
        assert glyph_aspects(condensed.image) > 1.3 > 0.8 > glyph_aspects(extended.image)
        squeezed = cv2.resize(extended.image, (128, 128), interpolation=cv2.INTER_AREA)
        assert glyph_aspects(squeezed) > 1.3  # a wide page of extended glyphs looks condensed


def test_document_aspect_is_drawn_from_range():
    widths = [make_document(40, seed=s, aspect_range=(1.5, 2.5)).image.shape[1] for s in range(20)]
    assert 60 <= min(widths) and max(widths) <= 100 and len(set(widths)) > 5


def test_dataset_items_labels_and_channels():
    ds = SynthDataset("xray", 5, 48, seed=2, channels=3)
    assert len(ds) == 5 and ds.num_classes == 2 and ds.class_names == XRAY_CLASSES
    image, label, boxes = ds[3]
    s = make_xray(48, label=1, seed=ds.item_seed(3))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8 and label == 3 % 2
    assert np.array_equal(image[..., 1], s.image) and np.array_equal(boxes, s.boxes)
    assert np.array_equal(ds.sample(-2).image, s.image)
    assert SynthDataset("scratch", 3, 40, channels=1)[0][0].shape == (40, 40, 1)
    shapes = SynthDataset("document", 2, 40, aspect=2.0, transform=lambda im: im.shape)[1][0]
    assert shapes == (40, 80)
    cached = SynthDataset("multispectral", 2, 32, in_memory=True)
    assert cached.sample(1) is cached.sample(1)
    assert [SynthDataset("scratch", 6, 32)[i][1] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    with pytest.raises(IndexError):
        ds[5]


@pytest.mark.parametrize("call,name", [
    (lambda: make_scratch(16), "size"),
    (lambda: make_xray(64, label=2), "label"),
    (lambda: make_multispectral(64, seed=-1), "seed"),
    (lambda: make_multispectral(64, noise=-0.1), "noise"),
    (lambda: make_scratch(64, grain=-1.0), "grain"),
    (lambda: make_document(8), "height"),
    (lambda: make_document(64, aspect=0.1), "aspect"),
    (lambda: make_document(64, aspect_range=(3.0, 1.0)), "aspect_range"),
    (lambda: SynthDataset("mri", 4), "kind"),
    (lambda: SynthDataset("xray", 0), "n"),
    (lambda: SynthDataset("xray", 4, size=8), "size"),
    (lambda: SynthDataset("multispectral", 4, channels=3), "channels"),
    (lambda: SynthDataset("scratch", 4, channels=2), "channels"),
    (lambda: SynthDataset("scratch", 4, transform=3), "transform"),
    (lambda: SynthDataset("document", 4, aspect_range=(0.0, 2.0)), "aspect_range"),
])
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises((ValueError, TypeError), match=f"^{name} "):
        call()
