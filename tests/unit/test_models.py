"""Tests for hrlib.models: shapes, analytic vs measured cost, LayerScale, receptive fields, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hrlib.models import (
    ConvNeXtBlock,
    Cost,
    DepthwiseSeparableConv,
    DSConvNet,
    LayerNorm2d,
    TinyConvNeXt,
    build_model,
    conv2d_macs,
    conv2d_params,
    count_cost,
    measure_receptive_field,
    receptive_field,
)

NAMES = ["dsconvnet", "tinyconvnext"]


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_logits_shape_at_any_resolution(name: str) -> None:
    model = build_model(name, num_classes=5).eval()
    for size in (64, 96, 128, 200):
        with torch.no_grad():
            assert model(torch.randn(2, 3, size, size)).shape == (2, 5)


@pytest.mark.parametrize("name", NAMES)
def test_features_last_conv_and_cam_layer(name: str) -> None:
    model = build_model(name, in_channels=1).eval()
    seen: list[torch.Tensor] = []
    model.cam_layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        feats = model.features(torch.randn(1, 1, 128, 128))
        model(torch.randn(1, 1, 128, 128))
    assert feats.ndim == 4 and feats.shape[-1] == 128 // 16 // (2 if name == "tinyconvnext" else 1)
    assert seen[-1].shape == feats.shape
    assert isinstance(model.last_conv, nn.Conv2d)
    assert model.last_conv is [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    assert not any(k.startswith("last_conv") for k in model.state_dict())


def test_build_model_passes_kwargs() -> None:
    model = build_model("DSConvNet", num_classes=2, widths=(8, 16))
    assert isinstance(model, DSConvNet) and model.head[-1].in_features == 16
    assert isinstance(build_model("tinyconvnext", dims=(8, 16), depths=(1, 1)), TinyConvNeXt)


@pytest.mark.parametrize("name", NAMES)
def test_cost_scales_with_area_but_params_do_not(name: str) -> None:
    model = build_model(name)
    small, big = count_cost(model, 128), count_cost(model, 256)
    assert isinstance(small, Cost)
    assert small.params == big.params == _n_params(model)
    assert 3.5 <= big.macs / small.macs <= 4.5
    assert 3.5 <= big.activation_bytes / small.activation_bytes <= 4.5
    assert small.output_shape == (1, 3)
    batch = count_cost(model, 128, batch_size=2)
    assert batch.macs == 2 * small.macs and batch.output_shape == (2, 3)


@pytest.mark.parametrize(("c_in", "c_out", "k", "stride", "groups", "bias"), [
    (3, 16, 3, 1, 1, True),
    (8, 8, 3, 1, 8, False),   # depthwise
    (8, 4, 5, 2, 2, True),    # grouped, strided
    (6, 12, 1, 1, 1, False),  # pointwise
])
def test_count_cost_of_one_conv_matches_formulas(c_in: int, c_out: int, k: int, stride: int, groups: int,
                                                 bias: bool) -> None:
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=bias)
    cost = count_cost(conv, (20, 24))
    _, _, out_h, out_w = cost.output_shape
    assert (out_h, out_w) == ((20 - 1) // stride + 1, (24 - 1) // stride + 1)
    assert cost.params == conv2d_params(c_in, c_out, k, groups=groups, bias=bias) == _n_params(conv)
    assert cost.macs == conv2d_macs(c_in, c_out, k, out_h, out_w, groups=groups)
    assert cost.activation_bytes == 4 * c_in * 20 * 24  # only the float32 input is saved (for weight grads)


@pytest.mark.parametrize("name", NAMES)
def test_flop_counter_matches_analytic_sum_over_layers(name: str) -> None:
    model = build_model(name).eval()
    expected = [0]

    def hook(m: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            expected[0] += conv2d_macs(m.in_channels, m.out_channels, m.kernel_size, *out.shape[2:], m.groups)
        elif isinstance(m, nn.Linear):
            expected[0] += m.in_features * m.out_features

    for m in model.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(1, 3, 96, 96))
    assert count_cost(model, 96).macs == expected[0]
    model(torch.randn(1, 3, 96, 96))  # the hooks still work on the model ...
    assert count_cost(model, 96).macs == expected[0] / 2  # ... but count_cost does not run them


def test_conv_formulas_by_hand() -> None:
    assert conv2d_params(3, 16, 3) == 3 * 16 * 9 + 16
    assert conv2d_params(32, 32, (3, 5), groups=32, bias=False) == 32 * 15
    assert conv2d_macs(3, 16, 3, 10, 10) == 16 * 3 * 9 * 100
    assert conv2d_macs(32, 64, 3, 10, 10, groups=4) == 64 * 8 * 9 * 100


def test_depthwise_separable_is_cheaper_than_standard_conv() -> None:
    ds = DepthwiseSeparableConv(32, 64)
    bn = 2 * 32 + 2 * 64
    dw, pw = conv2d_params(32, 32, 3, groups=32, bias=False), conv2d_params(32, 64, 1, bias=False)
    assert _n_params(ds) == dw + pw + bn
    assert _n_params(ds) < conv2d_params(32, 64, 3, bias=False) / 5
    assert ds(torch.randn(1, 32, 16, 16)).shape == (1, 64, 16, 16)
    assert DepthwiseSeparableConv(32, 64, stride=2)(torch.randn(1, 32, 15, 15)).shape == (1, 64, 8, 8)


def test_layer_norm_2d_normalises_over_channels() -> None:
    x = torch.randn(2, 8, 5, 7) * 3 + 1
    y = LayerNorm2d(8)(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 5, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(2, 5, 7), atol=1e-3, rtol=0)


def test_convnext_block_layer_scale_and_near_identity() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 12, 12)
    block = ConvNeXtBlock(16, layer_scale_init=1e-6)
    assert torch.equal(block.gamma.detach(), torch.full((16,), 1e-6))
    torch.testing.assert_close(block(x), x, atol=1e-3, rtol=0)
    assert (ConvNeXtBlock(16, layer_scale_init=1.0)(x) - x).abs().max() > 1e-2
    assert ConvNeXtBlock(16, kernel_size=3, expansion=2)(x).shape == x.shape
    gamma = TinyConvNeXt(layer_scale_init=0.5).features[1][0].gamma.detach()
    assert torch.equal(gamma, torch.full((24,), 0.5))


@pytest.mark.parametrize("train", [True, False])
def test_count_cost_leaves_model_untouched(train: bool) -> None:
    model = DSConvNet(widths=(8, 16)).train(train)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_cost(model, 64, batch_size=2)
    assert all(m.training == train for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_count_cost_infers_in_channels() -> None:
    assert count_cost(DSConvNet(in_channels=1, widths=(8,)), 32).output_shape == (1, 3)
    assert count_cost(nn.Conv2d(5, 2, 3), 10, in_channels=5).output_shape == (1, 2, 8, 8)


def _stack(*specs: tuple[int, int, int]) -> nn.Sequential:
    """(kernel, stride, dilation) per layer -> 'same'-padded single-channel conv stack with ReLUs."""
    layers: list[nn.Module] = []
    for k, s, d in specs:
        layers += [nn.Conv2d(1, 1, k, s, d * (k - 1) // 2, dilation=d), nn.ReLU()]
    return nn.Sequential(*layers)


@pytest.mark.parametrize(("specs", "expected"), [
    ([(3, 1, 1)] * 3, 7),
    ([(3, 2, 1), (3, 1, 1), (3, 1, 1)], 11),
    ([(5, 2, 1), (3, 2, 1), (3, 1, 1)], 17),
    ([(3, 1, 2)] * 3, 13),
    ([(3, 1, 1), (3, 1, 2), (3, 1, 4)], 15),
    ([(3, 2, 1), (3, 1, 2)], 11),
])
def test_receptive_field_analytic_equals_measured(specs: list[tuple[int, int, int]], expected: int) -> None:
    stack = _stack(*specs)
    assert receptive_field([m for m in stack if isinstance(m, nn.Conv2d)]) == expected
    assert receptive_field(stack) == expected
    extent, grad_map = measure_receptive_field(stack, 48)
    assert extent == expected
    assert grad_map.shape == (48, 48) and grad_map.dtype == np.float64


def test_receptive_field_of_small_models() -> None:
    ds = DSConvNet(widths=(4, 8, 8))
    assert receptive_field(ds.features) == measure_receptive_field(ds.features, 96)[0] == 39
    cnx = TinyConvNeXt(dims=(4, 8), depths=(1, 1))
    assert receptive_field(cnx.features) == measure_receptive_field(cnx.features, 160)[0] == 80


def test_dilated_stack_shows_gridding_holes() -> None:
    _, gridded = measure_receptive_field(_stack((3, 1, 2), (3, 1, 2), (3, 1, 2)), 32)
    offsets = np.arange(-6, 7)
    row = gridded[16, 16 + offsets] > 0
    np.testing.assert_array_equal(row, offsets % 2 == 0)  # non-zero only at even offsets
    assert not (gridded[17] > 0).any()                     # odd rows are empty
    _, hybrid = measure_receptive_field(_stack((3, 1, 1), (3, 1, 2), (3, 1, 4)), 32)
    assert (hybrid[16 - 7:16 + 8, 16 - 7:16 + 8] > 0).all()  # dilations 1, 2, 4: no holes


def test_measure_receptive_field_warns_when_clipped() -> None:
    with pytest.warns(UserWarning, match="image_size"):
        extent, _ = measure_receptive_field(_stack(*[(3, 1, 1)] * 6), 9)
    assert extent == 9


def test_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"name must be one of \['dsconvnet', 'tinyconvnext'\], got 'nope'"):
        build_model("nope")
    with pytest.raises(ValueError, match="groups must divide c_in and c_out, got 4 for c_in=6, c_out=8"):
        conv2d_macs(6, 8, 3, 4, 4, groups=4)
    with pytest.raises(ValueError, match="c_in must be an int >= 1, got 0"):
        conv2d_params(0, 8, 3)
    model = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="image_size must be an int >= 1, got 0"):
        count_cost(model, 0)
    with pytest.raises(ValueError, match="image_size must be an int >= 1, got -3"):
        count_cost(model, -3)
    with pytest.raises(TypeError, match="image_size must be an int >= 1, got float 2.5"):
        count_cost(model, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"image_size\[1\] must be an int >= 1, got 0"):
        count_cost(model, (8, 0))
    with pytest.raises(ValueError, match="batch_size"):
        count_cost(model, 8, batch_size=0)
    with pytest.raises(ValueError, match="in_channels must be given"):
        count_cost(nn.Linear(3, 4), 8)
    with pytest.raises(ValueError, match="dims and depths must have the same length"):
        TinyConvNeXt(dims=(8, 16), depths=(1,))
    with pytest.raises(ValueError, match="layer_scale_init must be a finite float > 0"):
        ConvNeXtBlock(8, layer_scale_init=0.0)
    with pytest.raises(TypeError, match=r"layers\[1\] must be an nn.Conv2d, got ReLU"):
        receptive_field([nn.Conv2d(1, 1, 3), nn.ReLU()])
    with pytest.raises(ValueError, match="must return a .N, C, H, W. feature map"):
        measure_receptive_field(DSConvNet(widths=(4,)))


def test_count_cost_when_the_last_feature_map_is_one_pixel():
    """At 16 px DSConvNet's last map is 1x1: batch-1 training-mode BatchNorm fails, so count_cost extrapolates from
    batches 2 and 4; the extrapolation agrees with a direct batch-1 measurement where one is possible."""
    model = build_model("dsconvnet")
    one = count_cost(model, 16)
    assert one.output_shape == (1, 3) and one.activation_bytes > 0
    b2, b4 = (count_cost(model, 16, batch_size=b).activation_bytes for b in (2, 4))
    assert one.activation_bytes == (3 * b2 - b4) // 2
    d1, d2, d4 = (count_cost(model, 64, batch_size=b).activation_bytes for b in (1, 2, 4))  # all direct
    assert d1 == (3 * d2 - d4) // 2
