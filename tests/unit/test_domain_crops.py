"""hrlib.domain.crops: CAM-guided crops with a stub model (fixed logits) and a stub CAM with known peaks."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from torch import nn

from hrlib.domain.crops import CamCrop, cam_crops, crop_box, find_peaks
from hrlib.models import DSConvNet


class FixedLogits(nn.Module):
    """Image ``i`` carries ``i`` in its top-left red pixel; the model returns row ``i`` of ``logits``."""

    def __init__(self, logits: list[list[float]]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0, 0, 0].round().long()]


class StubCam:
    """Maps of the transformed size with Gaussian bumps at ``peaks[i]`` (``(row, col, height)``) for image ``i``."""

    def __init__(self, peaks: dict[int, list[tuple[int, int, float]]]) -> None:
        self.peaks, self.calls = peaks, []

    def __call__(self, model: nn.Module, x: torch.Tensor, class_idx: torch.Tensor) -> np.ndarray:
        self.calls.append((x[:, 0, 0, 0].round().long().tolist(), class_idx.tolist(), model.training))
        h, w = x.shape[-2:]
        rows, cols = np.mgrid[:h, :w]
        out = np.zeros((len(x), h, w))
        for n, i in enumerate(x[:, 0, 0, 0].round().long().tolist()):
            for r, c, v in self.peaks.get(i, []):
                out[n] += v * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 8.0)
        return out


def to_tensor(size: int | None = None) -> A.Compose:
    """Keeps the index pixel exact: no normalization; ``size`` resizes with nearest neighbour."""
    steps = [] if size is None else [A.Resize(size, size, interpolation=0)]
    return A.Compose([*steps, A.ToFloat(max_value=1.0), ToTensorV2()])


def images(n: int, h: int = 64, w: int = 64) -> list[np.ndarray]:
    out = []
    for i in range(n):
        im = np.random.default_rng(i).integers(20, 255, (h, w, 3)).astype(np.uint8)
        im[0, 0, 0] = i
        out.append(im)
    return out


CONFIDENT, UNSURE = [0.0, 5.0, 0.0], [1.0, 1.2, 1.0]  # softmax max 0.987 (class 1) and 0.38


def test_crops_centre_on_the_cam_peaks_of_confident_images() -> None:
    model = FixedLogits([CONFIDENT, UNSURE, [4.0, 0.0, 0.0]])
    cam = StubCam({0: [(20, 30, 1.0), (50, 10, 0.5)], 1: [(32, 32, 1.0)], 2: [(40, 40, 1.0)]})
    model.train()
    crops = cam_crops(model, images(3), to_tensor(), k=2, scale=(0.25, 0.25), cam_fn=cam)
    assert model.training  # the mode is restored
    assert all(isinstance(c, CamCrop) for c in crops)
    assert [(c.image_index, c.label) for c in crops] == [(0, 1), (0, 1), (2, 0)]  # image 1 skipped (p = 0.38)
    assert crops[0].confidence == pytest.approx(torch.tensor(CONFIDENT).softmax(0).max().item())
    assert [c.peak for c in crops] == [(30.5, 20.5), (10.5, 50.5), (40.5, 40.5)]  # strongest first, (x, y) px
    np.testing.assert_array_equal(crops[0].box, [22, 12, 38, 28])  # side 16, centred on the peak
    assert crops[0].box.dtype == np.float32
    np.testing.assert_array_equal(crops[0].crop, images(1)[0][12:28, 22:38])
    assert cam.calls == [([0, 2], [1, 0], False)]  # CAM of the pseudo-labels, confident images only, eval mode


def test_crops_stay_inside_the_image_and_have_the_requested_scale() -> None:
    model = FixedLogits([CONFIDENT] * 4)
    corners = {0: [(0, 0, 1.0)], 1: [(63, 63, 1.0)], 2: [(0, 63, 1.0)], 3: [(63, 0, 1.0)]}
    crops = cam_crops(model, images(4), to_tensor(), k=1, scale=(0.7, 1.0), cam_fn=StubCam(corners), seed=3)
    assert len(crops) == 4
    for c in crops:
        x0, y0, x1, y1 = c.box
        assert 0 <= x0 and 0 <= y0 and x1 <= 64 and y1 <= 64
        assert 0.7 * 64 - 1 <= x1 - x0 <= 64 and x1 - x0 == y1 - y0
        assert c.crop.shape == (y1 - y0, x1 - x0, 3)
    assert tuple(crops[1].box[2:]) == (64, 64) and tuple(crops[0].box[:2]) == (0, 0)  # shifted, not cut


def test_peaks_closer_than_min_distance_are_suppressed_and_k_limits_them() -> None:
    model = FixedLogits([CONFIDENT])
    cam = StubCam({0: [(20, 20, 1.0), (20, 26, 0.9), (50, 50, 0.8), (10, 50, 0.7)]})
    near = cam_crops(model, images(1), to_tensor(), k=3, min_distance=0.25, cam_fn=cam)  # 16 px apart at least
    assert [c.peak for c in near] == [(20.5, 20.5), (50.5, 50.5), (50.5, 10.5)]
    loose = cam_crops(model, images(1), to_tensor(), k=2, min_distance=0.05, cam_fn=cam)
    assert [c.peak for c in loose] == [(20.5, 20.5), (26.5, 20.5)]


def test_cam_coordinates_are_scaled_back_to_non_square_images() -> None:
    model = FixedLogits([CONFIDENT])
    crops = cam_crops(model, images(1, h=64, w=128), to_tensor(32), k=1, scale=(0.5, 0.5),
                      cam_fn=StubCam({0: [(8, 24, 1.0)]}))
    assert crops[0].peak == (24.5 * 4, 8.5 * 2)
    np.testing.assert_array_equal(crops[0].box, [82, 1, 114, 33])  # side 0.5 * min(64, 128), centre (98, 17)


def test_sides_are_seeded_and_no_cam_peak_means_no_crop() -> None:
    model = FixedLogits([CONFIDENT] * 3)
    cam = StubCam({0: [(30, 30, 1.0)], 1: [(30, 30, 1.0)], 2: []})
    first = cam_crops(model, images(3), to_tensor(), k=1, cam_fn=cam, seed=1)
    again = cam_crops(model, images(3), to_tensor(), k=1, cam_fn=cam, seed=1)
    other = cam_crops(model, images(3), to_tensor(), k=1, cam_fn=cam, seed=2)
    assert [c.image_index for c in first] == [0, 1]  # image 2's CAM is all zero
    assert [c.box.tolist() for c in first] == [c.box.tolist() for c in again]
    assert [c.box.tolist() for c in first] != [c.box.tolist() for c in other]


def test_batches_give_the_same_crops() -> None:
    model = FixedLogits([CONFIDENT, UNSURE, CONFIDENT])
    cam = StubCam({0: [(30, 30, 1.0)], 1: [(10, 10, 1.0)], 2: [(40, 20, 1.0)]})
    one = cam_crops(model, images(3), to_tensor(), cam_fn=cam, batch_size=1)
    all_ = cam_crops(model, images(3), to_tensor(), cam_fn=cam, batch_size=8)
    assert [(c.image_index, c.box.tolist()) for c in one] == [(c.image_index, c.box.tolist()) for c in all_]


def test_default_grad_cam_on_a_real_model(one_thread) -> None:
    torch.manual_seed(0)
    model = DSConvNet(num_classes=3)
    with torch.no_grad():
        model.head[-1].weight.abs_()  # positive class weights: the CAM is positive where features are
    ims = images(2, 64, 64)
    crops = cam_crops(model, ims, to_tensor(), k=2, min_confidence=0.0)
    assert {c.image_index for c in crops} == {0, 1}
    for c in crops:
        assert 0 <= c.box.min() and c.box.max() <= 64 and c.crop.shape[:2] == (c.box[3] - c.box[1],) * 2


def test_bad_inputs_raise_clear_errors() -> None:
    model, ims, t = FixedLogits([CONFIDENT]), images(1), to_tensor()
    with pytest.raises(TypeError, match=r"^model must be a torch.nn.Module"):
        cam_crops(lambda x: x, ims, t)
    with pytest.raises(TypeError, match=r"^images must be a sequence"):
        cam_crops(model, ims[0], t)
    with pytest.raises(ValueError, match=r"^images\[0\] must be a HxWxC numeric numpy array"):
        cam_crops(model, [ims[0][..., 0]], t)
    with pytest.raises(ValueError, match=r"^scale must be \(low, high\) with 0 < low <= high <= 1"):
        cam_crops(model, ims, t, scale=(0.8, 0.7))
    with pytest.raises(ValueError, match=r"^scale must be"):
        cam_crops(model, ims, t, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"^min_confidence must be a finite float in \[0, 1\]"):
        cam_crops(model, ims, t, min_confidence=1.5)
    with pytest.raises(ValueError, match=r"^k must be an int >= 1"):
        cam_crops(model, ims, t, k=0)
    with pytest.raises(ValueError, match=r"^min_distance must be a finite float in \(0, 1\]"):
        cam_crops(model, ims, t, min_distance=0.0)
    with pytest.raises(ValueError, match=r"^cam_fn must return \(1, h, w\) maps"):
        cam_crops(model, ims, t, cam_fn=lambda m, x, c: np.zeros((64, 64)))
    with pytest.raises(ValueError, match=r"^cam must be a non-empty finite \(h, w\) map"):
        find_peaks(np.zeros(5), 1, 1)
    with pytest.raises(ValueError, match=r"^side must be an int >= 1"):
        crop_box(0.0, 0.0, 0, 10, 10)
