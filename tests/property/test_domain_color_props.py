"""Properties of hrlib.domain.color (LAB alignment) and hrlib.domain.crops (crop boxes) for any size and input."""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from hrlib.domain.color import lab_align, lab_reference
from hrlib.domain.crops import cam_crops, crop_box

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def rgb(draw: st.DrawFn, max_side: int = 24) -> np.ndarray:
    """A random HxWx3 uint8 image: noise around a random colour with a random spread."""
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base, spread = rng.integers(0, 256, 3), draw(st.integers(0, 128))
    return np.clip(base + rng.integers(-spread, spread + 1, (h, w, 3)), 0, 255).astype(np.uint8)


@FAST
@given(image=rgb(), refs=st.lists(rgb(), min_size=1, max_size=3), mode=st.sampled_from(["histogram", "clahe"]))
def test_lab_align_returns_uint8_rgb_of_the_same_shape(image, refs, mode) -> None:
    out = lab_align(image, lab_reference(refs), l_mode=mode)
    assert out.dtype == np.uint8 and out.shape == image.shape


@FAST
@given(image=rgb())
def test_lab_align_to_its_own_reference_changes_little(image) -> None:
    diff = np.abs(lab_align(image, image).astype(np.int16) - image)
    assert diff.mean() <= 1.0


@FAST
@given(cx=st.floats(-50, 150), cy=st.floats(-50, 150), side=st.integers(1, 120), width=st.integers(1, 100),
       height=st.integers(1, 100))
def test_crop_box_is_inside_the_image_with_the_capped_side(cx, cy, side, width, height) -> None:
    x0, y0, x1, y1 = crop_box(cx, cy, side, width, height)
    assert 0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height
    assert x1 - x0 == y1 - y0 == min(side, width, height)
    if x1 - x0 == side and side / 2 + 1 <= cx <= width - side / 2 - 1:
        assert abs((x0 + x1) / 2 - cx) <= 0.5  # centred on the peak when it fits


class Confident(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[0.0, 9.0]]).expand(len(x), 2) + self.w


@FAST
@given(h=st.integers(4, 80), w=st.integers(4, 80), cam_side=st.integers(2, 40),
       peaks=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=4),
       lo=st.floats(0.05, 1.0), width=st.floats(0.0, 1.0), k=st.integers(1, 4), seed=st.integers(0, 100))
def test_cam_crops_stay_inside_the_image_with_the_requested_scale(h, w, cam_side, peaks, lo, width, k, seed) -> None:
    hi = lo + (1.0 - lo) * width
    image = np.zeros((h, w, 3), np.uint8)
    transform = A.Compose([A.Resize(cam_side, cam_side), A.ToFloat(), ToTensorV2()])

    def cam_fn(model: nn.Module, x: torch.Tensor, class_idx: torch.Tensor) -> np.ndarray:
        cam = np.zeros((len(x), cam_side, cam_side))
        for n, (py, px) in enumerate(peaks):
            cam[:, int(py * (cam_side - 1)), int(px * (cam_side - 1))] = 1.0 + n
        return cam

    crops = cam_crops(Confident(), [image], transform, k=k, scale=(lo, hi), seed=seed, cam_fn=cam_fn)
    assert 1 <= len(crops) <= k
    for c in crops:
        x0, y0, x1, y1 = c.box
        assert 0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h
        side = x1 - x0
        assert side == y1 - y0 and lo * min(h, w) - 0.5 <= side <= hi * min(h, w) + 0.5 or side == 1
        assert c.crop.shape == (side, side, 3)
        assert 0 <= c.peak[0] <= w and 0 <= c.peak[1] <= h
