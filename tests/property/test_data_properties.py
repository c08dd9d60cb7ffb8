"""Properties of the generator and resizing helpers that must hold for any size, seed, label and site."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlib.data.slides import SITES, downscale, make_slide
from hrlib.viz import crop_box

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(size=st.integers(16, 160), seed=st.integers(0, 2**31 - 1), label=st.integers(0, 2),
       site=st.sampled_from(sorted(SITES)), frac=st.floats(0.02, 0.2))
def test_ground_truth_is_consistent(size, seed, label, site, frac):
    s = make_slide(size, label=label, seed=seed, site=site, target_frac=frac)
    assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
    for boxes in (s.boxes, s.decoy_boxes):
        assert boxes.shape[1] == 4
        assert np.all(boxes >= 0) and np.all(boxes <= size)
        assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])
    assert (len(s.boxes) == 0) == (label == 0)
    assert len(s.boxes) <= (1 if label == 1 else 3)


@FAST
@given(seed=st.integers(0, 10_000), label=st.integers(0, 2), site=st.sampled_from(sorted(SITES)))
def test_same_seed_same_slide(seed, label, site):
    a = make_slide(48, label=label, seed=seed, site=site)
    b = make_slide(48, label=label, seed=seed, site=site)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes) and np.array_equal(a.mask, b.mask)


@FAST
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_layout_scales_exactly_with_size(seed, k):
    small, large = make_slide(40, label=2, seed=seed), make_slide(40 * k, label=2, seed=seed)
    np.testing.assert_allclose(large.boxes, small.boxes * k, atol=1e-3 * k)
    np.testing.assert_allclose(large.decoy_boxes, small.decoy_boxes * k, atol=1e-3 * k)


@FAST
@given(h=st.integers(1, 64), w=st.integers(1, 64), c=st.sampled_from([None, 1, 3]), f=st.integers(1, 8),
       seed=st.integers(0, 1000))
def test_downscale_shape_and_mean(h, w, c, f, seed):
    f = min(f, h, w)
    shape = (h, w) if c is None else (h, w, c)
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    out = downscale(img, f)
    assert out.shape == (h // f, w // f, *shape[2:]) and out.dtype == np.uint8
    cropped = img[: h // f * f, : w // f * f].astype(float)
    assert abs(out.astype(float).mean() - cropped.mean()) <= 1.0  # area averaging keeps the mean (up to rounding)


@FAST
@given(h=st.integers(1, 50), w=st.integers(1, 50), box=st.tuples(*[st.floats(-20, 80)] * 4),
       pad=st.floats(0, 2))
def test_crop_box_never_empty_and_inside(h, w, box, pad):
    x0, x1 = sorted(box[::2])
    y0, y1 = sorted(box[1::2])
    img = np.arange(h * w).reshape(h, w)
    crop = crop_box(img, (x0, y0, x1, y1), pad)
    assert crop.size >= 1 and crop.shape[0] <= h and crop.shape[1] <= w
