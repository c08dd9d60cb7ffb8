"""hrlib.analysis.cam and .heatmaps: Grad-CAM and Score-CAM against independent computations, hook hygiene, box
scores, overlays."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrlib.analysis.cam import grad_cam, score_cam
from hrlib.analysis.heatmaps import energy_in_boxes, overlay, pointing_game, score_cams, show_cams
from hrlib.models import DSConvNet

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


class GapNet(nn.Module):
    """conv -> (optional in-place ReLU) -> global average pool -> linear: the CAM of Zhou et al. is known."""

    def __init__(self, stride: int = 1, relu: bool = False, channels: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, stride=stride, padding=1)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.head = nn.Linear(channels, 3)

    @property
    def cam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.conv(x)).mean(dim=(2, 3)))


def normalized(cam: torch.Tensor) -> np.ndarray:
    """(N, H, W) non-negative maps divided by their maxima (the reference's own normalisation)."""
    return (cam / cam.amax(dim=(1, 2), keepdim=True)).numpy()


def manual_grad_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor, classes: list[int]) -> np.ndarray:
    """Grad-CAM by hand: capture the layer's output with a plain hook, differentiate, weight, ReLU, upsample."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.update(a=o))
    model.eval()
    logits = model(x)
    handle.remove()
    grads = torch.autograd.grad(logits[torch.arange(len(x)), classes].sum(), store["a"])[0]
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * store["a"]).sum(1, keepdim=True)).detach()
    return normalized(F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0])


def test_grad_cam_equals_the_class_activation_map_of_a_gap_linear_model() -> None:
    torch.manual_seed(0)
    model, x, classes = GapNet(), torch.randn(3, 3, 20, 20), [0, 2, 1]
    cams = grad_cam(model, x, classes)
    with torch.no_grad():  # Grad-CAM weights are W[c] / (H * W): the map is ReLU(sum_k W[c, k] A_k) up to scale
        acts = model.conv(x)
        expected = torch.relu(torch.einsum("nk,nkhw->nhw", model.head.weight[classes], acts))
    assert cams.shape == (3, 20, 20) and cams.dtype == np.float32
    np.testing.assert_allclose(cams, normalized(expected), atol=1e-5)
    assert np.allclose(cams.max(axis=(1, 2)), 1.0)
    np.testing.assert_allclose(grad_cam(model, x, 2), grad_cam(model, x, [2, 2, 2]))
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    np.testing.assert_allclose(grad_cam(model, x), grad_cam(model, x, predicted))


def test_grad_cam_matches_a_manual_autograd_computation() -> None:
    torch.manual_seed(1)
    model, x, classes = DSConvNet(widths=(8, 16)), torch.randn(2, 3, 32, 32), [1, 0]
    cams = grad_cam(model, x, torch.tensor(classes))  # default layer: model.cam_layer
    np.testing.assert_allclose(cams, manual_grad_cam(model, model.cam_layer, x, classes), atol=1e-5)


def test_grad_cam_sees_the_layer_output_before_an_in_place_relu() -> None:
    torch.manual_seed(1)
    model, x, classes = GapNet(stride=2, relu=True), torch.randn(2, 3, 32, 32), [1, 0]
    acts = F.conv2d(x, model.conv.weight, model.conv.bias, stride=2, padding=1).detach().requires_grad_(True)
    logits = model.head(torch.relu(acts).mean(dim=(2, 3)))  # the same network, written out without hooks
    grads = torch.autograd.grad(logits[[0, 1], classes].sum(), acts)[0]
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1, keepdim=True)).detach()
    expected = normalized(F.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[:, 0])
    np.testing.assert_allclose(grad_cam(model, x, classes), expected, atol=1e-5)


def test_grad_cam_works_on_a_frozen_model_and_an_input_without_grad() -> None:
    torch.manual_seed(5)
    model, x = DSConvNet(widths=(8, 16)), torch.randn(2, 3, 32, 32)
    expected = grad_cam(model, x, 1)
    model.requires_grad_(False)
    with torch.no_grad():  # even inside no_grad: Grad-CAM turns gradients on for itself
        np.testing.assert_allclose(grad_cam(model, x, 1), expected, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_a_map_without_positive_evidence_is_all_zero_not_nan() -> None:
    model = GapNet()
    with torch.no_grad():
        model.conv.weight.fill_(0.1)
        model.conv.bias.fill_(1.0)
        model.head.weight.fill_(-1.0)  # every channel argues against every class
    cams = grad_cam(model, torch.rand(2, 3, 16, 16), 0)
    assert np.isfinite(cams).all() and (cams == 0).all()


def manual_score_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor, classes: list[int]) -> np.ndarray:
    """Score-CAM one masked image at a time."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.update(a=o))
    model.eval()
    with torch.no_grad():
        model(x)
        handle.remove()
        out = []
        for n, c in enumerate(classes):
            acts, weights = store["a"][n], []
            for a in acts:
                m = F.interpolate(a[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
                if m.max() == m.min():
                    weights.append(0.0)
                    continue
                m = (m - m.min()) / (m.max() - m.min())
                weights.append(model(x[n:n + 1] * m).softmax(1)[0, c].item())
            cam = torch.relu((torch.tensor(weights)[:, None, None] * acts).sum(0))
            out.append(F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0])
    return normalized(torch.stack(out))


def test_score_cam_matches_a_one_mask_at_a_time_computation() -> None:
    torch.manual_seed(2)
    model, x = DSConvNet(widths=(8, 16)), torch.randn(2, 3, 32, 32)
    expected = manual_score_cam(model, model.cam_layer, x, [2, 0])
    for batch_size in (5, 64):  # 32 masked images: batches that do and do not divide them
        np.testing.assert_allclose(score_cam(model, x, [2, 0], batch_size=batch_size), expected, atol=1e-5)
    np.testing.assert_allclose(score_cam(model, x, [2, 0], top_k=16), expected, atol=1e-5)  # all channels


def test_score_cam_top_1_is_the_strongest_channel() -> None:
    torch.manual_seed(3)
    model, x = GapNet(stride=2, channels=5), torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        acts = model.conv(x)
    top = acts[torch.arange(2), acts.mean(dim=(2, 3)).argmax(1)]  # any positive weight: only the shape remains
    up = F.interpolate(torch.relu(top)[:, None], size=(24, 24), mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(score_cam(model, x, 1, top_k=1), normalized(up), atol=1e-5)


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(m._backward_pre_hooks) for m in model.modules())


def prepared_model() -> tuple[nn.Module, dict[nn.Module, bool], list[torch.Tensor], list[torch.Tensor]]:
    """A model in train mode with one block in eval, existing gradients, and copies of grads and BN buffers."""
    torch.manual_seed(4)
    model = DSConvNet(widths=(8, 16)).train()
    model.features[0].eval()
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0])).backward()
    model.head[2].bias.grad = None  # a parameter without grad must stay without
    return (model, {m: m.training for m in model.modules()},
            [p.grad.clone() for p in model.parameters() if p.grad is not None],
            [b.clone() for b in model.buffers()])


def assert_untouched(model, modes, grads, buffers) -> None:
    assert hooks(model) == 0
    assert {m: m.training for m in model.modules()} == modes
    assert model.head[2].bias.grad is None
    for before, p in zip(grads, [p for p in model.parameters() if p.grad is not None], strict=True):
        assert torch.equal(before, p.grad)
    for before, b in zip(buffers, model.buffers(), strict=True):  # eval mode inside: BN statistics untouched
        assert torch.equal(before, b)


@pytest.mark.parametrize("method", [grad_cam, score_cam])
def test_hooks_removed_and_mode_grads_and_statistics_restored(method) -> None:
    model, modes, grads, buffers = prepared_model()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    method(model, x)
    assert_untouched(model, modes, grads, buffers)
    assert x.grad is None
    with pytest.raises(ValueError, match="^class_idx "):  # raised after the forward pass
        method(model, x, 3)
    assert_untouched(model, modes, grads, buffers)


class Exploding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


@pytest.mark.parametrize("method", [grad_cam, score_cam])
def test_hooks_removed_when_the_forward_pass_raises(method) -> None:
    model, modes, grads, buffers = prepared_model()
    model.head.append(Exploding())
    modes = {m: m.training for m in model.modules()}
    with pytest.raises(RuntimeError, match="boom"):
        method(model, torch.randn(2, 3, 32, 32))
    assert_untouched(model, modes, grads, buffers)


def test_bad_arguments_raise_naming_the_argument() -> None:
    model, plain = DSConvNet(widths=(8, 16)), nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="^layer must be given"):
        grad_cam(plain, x)
    assert grad_cam(plain, x, layer=plain[0]).shape == (2, 32, 32)  # any conv layer, given explicitly
    with pytest.raises(ValueError, match="^layer must be a submodule"):
        grad_cam(model, x, layer=nn.Conv2d(3, 4, 3))
    unused = DSConvNet(widths=(8, 16))
    unused.spare = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match="^layer must run exactly once"):
        score_cam(unused, x, layer=unused.spare)
    with pytest.raises(ValueError, match="^layer must output"):
        grad_cam(model, x, layer=model.head[1])
    for bad in (torch.randn(3, 32, 32), torch.zeros(2, 3, 32, 32, dtype=torch.uint8), np.zeros((2, 3, 32, 32))):
        with pytest.raises(ValueError, match="^x "):
            grad_cam(model, bad)
    with pytest.raises(ValueError, match="^class_idx "):
        grad_cam(model, x, [0, 1, 2])
    with pytest.raises(ValueError, match="^class_idx "):
        grad_cam(model, x, -1)
    with pytest.raises(ValueError, match="^batch_size "):
        score_cam(model, x, batch_size=0)
    with pytest.raises(TypeError, match="^model "):
        grad_cam("model", x)  # type: ignore[arg-type]


def peak(row: int, col: int, size: int = 32) -> np.ndarray:
    cam = np.zeros((size, size))
    cam[row, col] = 1.0
    return cam


def test_pointing_game_on_constructed_maps() -> None:
    box = np.array([[10, 10, 20, 20]], np.float32)
    assert pointing_game(peak(15, 15), box, tolerance=0) is True
    assert pointing_game(peak(15, 19), box, tolerance=0) is True  # centre 19.5 inside x1 = 20
    assert pointing_game(peak(15, 20), box, tolerance=0) is False  # centre 20.5: 0.5 px outside
    assert pointing_game(peak(15, 20), box, tolerance=0.5) is True
    assert pointing_game(peak(15, 29), box, tolerance=10) is True  # 9.5 px right of the box
    assert pointing_game(peak(15, 30), box, tolerance=10) is False  # 10.5 px
    # the tolerance is a distance: a corner point 3.5 px off in x and y is 4.95 px away
    assert pointing_game(peak(23, 23), box, tolerance=4) is False
    assert pointing_game(peak(23, 23), box, tolerance=5) is True
    two = np.array([[0, 0, 4, 4], [25, 25, 32, 32]])
    assert pointing_game(peak(28, 28), two, tolerance=0) is True  # any box counts
    assert pointing_game(torch.tensor(peak(28, 28)), torch.tensor(two), 0) is True
    cam = peak(2, 2) + peak(15, 15)  # a tie: the first maximum in row-major order
    assert pointing_game(cam, box, 0) is False and pointing_game(cam, two, 0) is True


def test_pointing_game_does_not_score_samples_without_boxes_and_flat_maps_miss() -> None:
    for empty in (None, np.zeros((0, 4)), []):
        assert pointing_game(peak(5, 5), empty) is None
    assert pointing_game(np.zeros((32, 32)), np.array([[0, 0, 32, 32]]), tolerance=100) is False
    with pytest.raises(ValueError, match="^cam "):
        pointing_game(-peak(5, 5), [[0, 0, 4, 4]])
    with pytest.raises(ValueError, match="^boxes "):
        pointing_game(peak(5, 5), [[4, 0, 0, 4]])  # x1 < x0
    with pytest.raises(ValueError, match="^tolerance "):
        pointing_game(peak(5, 5), [[0, 0, 4, 4]], tolerance=-1)


def test_energy_in_boxes_on_constructed_maps() -> None:
    ones = np.ones((10, 10))
    assert energy_in_boxes(ones, [[0, 0, 5, 10]]) == pytest.approx(0.5)
    assert energy_in_boxes(ones, [[0, 0, 5, 10], [0, 0, 5, 10]]) == pytest.approx(0.5)  # a union, not a sum
    assert energy_in_boxes(ones, [[0, 0, 5, 10], [5, 0, 10, 10]]) == pytest.approx(1.0)
    assert energy_in_boxes(ones, [[0, 0, 5, 5], [2, 2, 7, 7]]) == pytest.approx(41 / 100)  # 25 + 25 - 9 pixels
    cam = np.zeros((10, 10))
    cam[1, 1], cam[8, 8] = 3.0, 1.0
    assert energy_in_boxes(cam, [[0, 0, 3, 3]]) == pytest.approx(0.75)
    assert energy_in_boxes(np.zeros((10, 10)), [[0, 0, 3, 3]]) == 0.0
    assert energy_in_boxes(ones, None) is None


def test_score_cams_aggregates_only_samples_with_boxes() -> None:
    box = np.array([[10, 10, 20, 20]])
    cams = np.stack([peak(15, 15), peak(2, 2), peak(15, 15)])
    scores = score_cams(cams, [box, box, None], tolerance=0)
    assert (scores.n_scored, scores.n, scores.hits) == (2, 3, (True, False, None))
    assert scores.hit_rate == 0.5 and scores.energy_share == pytest.approx(0.5)
    assert scores.energies == (1.0, 0.0, None)
    none = score_cams(cams[:1], [None])
    assert none.n_scored == 0 and math.isnan(none.hit_rate) and math.isnan(none.energy_share)
    with pytest.raises(ValueError, match="^boxes_list "):
        score_cams(cams, [box])


def test_overlay_blends_the_colormap_over_the_image() -> None:
    image = np.full((8, 8, 3), 200, np.uint8)
    cam = np.zeros((8, 8))
    assert np.array_equal(overlay(image, cam, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, cam, alpha=1.0)[0, 0], [0, 0, 128])  # jet(0): dark blue
    np.testing.assert_array_equal(overlay(image, np.ones((8, 8)), alpha=1.0)[0, 0], [128, 0, 0])  # jet(1)
    blended = overlay(image, cam, alpha=0.5)
    np.testing.assert_array_equal(blended[0, 0], [100, 100, 164])
    small = overlay(image[..., 0], np.ones((2, 2)), cmap="gray")  # a gray image and a smaller map
    assert small.shape == (8, 8, 3) and small.dtype == np.uint8
    with pytest.raises(ValueError, match="^cmap "):
        overlay(image, cam, cmap="no-such-map")
    with pytest.raises(ValueError, match="^image "):
        overlay(image.astype(np.float32), cam)
    with pytest.raises(ValueError, match="^alpha "):
        overlay(image, cam, alpha=1.5)


def test_show_cams_draws_titled_overlays_boxes_and_a_colorbar() -> None:
    images = [np.full((16, 16, 3), 100, np.uint8)] * 3
    fig = show_cams(images, np.stack([peak(3, 3, 16)] * 3), ["a", "b", "c"], ncols=2,
                    boxes=[np.array([[1, 1, 6, 6]]), None, np.zeros((0, 4))])
    panels, colorbar = fig.axes[:4], fig.axes[4]
    assert [ax.get_title() for ax in panels] == ["a", "b", "c", ""]
    assert len(panels[0].patches) == 1 and len(panels[1].patches) == 0
    assert "CAM" in colorbar.get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="one entry per image"):
        show_cams(images, np.stack([peak(3, 3, 16)] * 2))
