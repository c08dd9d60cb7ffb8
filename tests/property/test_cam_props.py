"""Properties of hrlib.analysis.cam and .heatmaps for any map, box and small model input."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlib.analysis.cam import grad_cam, score_cam
from hrlib.analysis.heatmaps import energy_in_boxes, overlay, pointing_game
from hrlib.models import DSConvNet

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIZE = 24


@st.composite
def boxes(draw: st.DrawFn, n_max: int = 3) -> np.ndarray:
    """1 to ``n_max`` boxes with x1 >= x0, y1 >= y0, inside a SIZE x SIZE image (fractional coordinates)."""
    out = []
    for _ in range(draw(st.integers(1, n_max))):
        x0, y0 = draw(st.floats(0, SIZE - 1)), draw(st.floats(0, SIZE - 1))
        out.append((x0, y0, draw(st.floats(x0, SIZE)), draw(st.floats(y0, SIZE))))
    return np.array(out)


@st.composite
def maps(draw: st.DrawFn) -> np.ndarray:
    """A SIZE x SIZE map >= 0: random values on a random share of the pixels (possibly none)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.exponential(size=(SIZE, SIZE)) * (rng.random((SIZE, SIZE)) < draw(st.floats(0, 1)))


@FAST
@given(cam=maps(), b=boxes(), extra=boxes())
def test_energy_share_is_a_fraction_that_grows_with_more_boxes(cam, b, extra) -> None:
    share = energy_in_boxes(cam, b)
    assert 0.0 <= share <= 1.0
    assert energy_in_boxes(cam, np.concatenate([b, extra])) >= share - 1e-12
    if cam.sum() > 0:
        assert energy_in_boxes(cam, [[0, 0, SIZE, SIZE]]) == 1.0
        assert np.isclose(energy_in_boxes(3.0 * cam, b), share)  # scale-free


@FAST
@given(row=st.integers(0, SIZE - 1), col=st.integers(0, SIZE - 1), b=boxes(1), tolerance=st.floats(0, 8))
def test_pointing_game_is_a_distance_test_on_the_peak(row, col, b, tolerance) -> None:
    cam = np.zeros((SIZE, SIZE))
    cam[row, col] = 1.0
    x0, y0, x1, y1 = b[0]
    dx = max(x0 - (col + 0.5), (col + 0.5) - x1, 0.0)
    dy = max(y0 - (row + 0.5), (row + 0.5) - y1, 0.0)
    assert pointing_game(cam, b, tolerance) == bool(np.hypot(dx, dy) <= tolerance)
    assert pointing_game(cam, b, tolerance) <= pointing_game(cam, b, tolerance + 1.0)  # more tolerance never hurts


@FAST
@given(image=st.integers(0, 255), alpha=st.floats(0, 1), value=st.floats(0, 1))
def test_overlay_stays_between_the_image_and_the_colormap(image, alpha, value) -> None:
    base = np.full((4, 4, 3), image, np.uint8)
    out = overlay(base, np.full((4, 4), value), alpha=alpha).astype(int)
    pure = overlay(base, np.full((4, 4), value), alpha=1.0).astype(int)
    assert (out >= np.minimum(base, pure) - 1).all() and (out <= np.maximum(base, pure) + 1).all()


MODEL = DSConvNet(widths=(4, 8))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n=st.integers(1, 3), side=st.integers(16, 40), cls=st.integers(0, 2))
def test_cams_are_in_unit_range_with_a_peak_of_one_or_all_zero(seed, n, side, cls) -> None:
    x = torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed))
    for cams in (grad_cam(MODEL, x, cls), score_cam(MODEL, x, cls, top_k=4)):
        assert cams.shape == (n, side, side) and np.isfinite(cams).all()
        assert cams.min() >= 0.0 and cams.max() <= 1.0
        peaks = cams.max(axis=(1, 2))
        assert np.all(np.isclose(peaks, 1.0) | (peaks == 0.0))
