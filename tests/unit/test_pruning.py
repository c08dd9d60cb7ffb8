"""hrlib.diagnostics.pruning and hrlib.models.add_dropblock: what is removed, what is kept, and clear errors."""

import pytest
import torch
from torch import nn
from torchvision.ops import DropBlock2d

from hrlib.diagnostics.pruning import magnitude_prune, prune_channels, sparsity
from hrlib.models import DSConvNet, TinyConvNeXt, add_dropblock, count_cost

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_like(seed: int = 0) -> DSConvNet:
    """A DSConvNet with random (not default) BatchNorm parameters and statistics, in eval mode."""
    torch.manual_seed(seed)
    model = DSConvNet(widths=(8, 16, 32))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9])
def test_magnitude_prune_zeros_the_smallest_weights_globally(amount: float) -> None:
    model = trained_like()
    weights = torch.cat([m.weight.detach().flatten() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)])
    pruned = magnitude_prune(model, amount)
    assert sparsity(pruned) == pytest.approx(amount, abs=1e-3)
    assert sparsity(model) == 0.0  # a copy by default
    threshold = weights.abs().sort().values[round(amount * len(weights))]
    for old, new in zip(model.modules(), pruned.modules(), strict=True):
        if isinstance(old, nn.Conv2d | nn.Linear):
            kept = old.weight.abs() >= threshold
            assert torch.equal(new.weight[kept], old.weight[kept]) and not new.weight[~kept].any()
            assert not hasattr(new, "weight_orig") and not hasattr(new, "weight_mask")  # made permanent


def test_magnitude_prune_keeps_shapes_and_compute() -> None:
    model = trained_like()
    pruned = magnitude_prune(model, 0.9)
    shapes = {k: p.shape for k, p in model.named_parameters()}
    assert {k: p.shape for k, p in pruned.named_parameters()} == shapes
    assert count_cost(pruned, 64).macs == count_cost(model, 64).macs
    same = magnitude_prune(model, 0.0)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(same(x), model(x))


def test_magnitude_prune_inplace() -> None:
    model = trained_like()
    assert magnitude_prune(model, 0.5, inplace=True) is model
    assert sparsity(model) == pytest.approx(0.5, abs=1e-3)


def test_prune_channels_equals_original_when_dropped_channels_are_dead() -> None:
    """Channels whose BN scale is 0 and shift <= 0 output 0 after ReLU: removing them changes nothing."""
    model = trained_like()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            half = m.num_features // 2
            m.weight.data[:half] = 0.0
            m.bias.data[:half] = -1.0
    # depthwise BNs follow their input channels: make them dead exactly where the producing channel is dead
    x = torch.randn(3, 3, 64, 64)
    slim = prune_channels(model, 0.5)
    assert [m.out_channels for m in slim.modules() if isinstance(m, nn.Conv2d)][:2] == [4, 4]
    torch.testing.assert_close(slim(x), model(x), rtol=1e-5, atol=1e-5)


def test_prune_channels_is_a_smaller_dsconvnet() -> None:
    model = trained_like()
    slim = prune_channels(model, 0.5)
    assert isinstance(slim, DSConvNet) and not slim.training
    assert [slim.features[0][0].out_channels] + [s[0][3].out_channels for s in slim.features[1:]] == [4, 8, 16]
    assert count_cost(slim, 64).macs < 0.45 * count_cost(model, 64).macs  # 1x1 convs shrink 4x, the rest 2x
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(prune_channels(model, 0.0)(x), model(x))
    assert prune_channels(model, 0.99).features[0][0].out_channels == 1  # at least one channel survives


def test_prune_channels_keeps_the_largest_bn_scales() -> None:
    model = trained_like()
    gamma = model.features[0][1].weight.detach()
    slim = prune_channels(model, 0.5)
    kept = gamma.abs().topk(4).indices.sort().values
    torch.testing.assert_close(slim.features[0][1].weight.detach(), gamma[kept])
    torch.testing.assert_close(slim.features[0][0].weight.detach(), model.features[0][0].weight.detach()[kept])


@pytest.mark.parametrize(("call", "match"), [
    (lambda: magnitude_prune(trained_like(), 1.0), "amount"),
    (lambda: magnitude_prune(trained_like(), -0.1), "amount"),
    (lambda: magnitude_prune("model", 0.5), "model"),  # type: ignore[arg-type]
    (lambda: magnitude_prune(nn.ReLU(), 0.5), "no Conv2d or Linear"),
    (lambda: sparsity(nn.Sequential()), "no Conv2d or Linear"),
    (lambda: prune_channels(TinyConvNeXt(), 0.5), "DSConvNet"),  # type: ignore[arg-type]
    (lambda: prune_channels(trained_like(), 1.0), "amount"),
    (lambda: prune_channels(add_dropblock(trained_like()), 0.5), "add_dropblock"),
])
def test_pruning_rejects_bad_arguments(call, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_add_dropblock_after_the_last_two_stages() -> None:
    torch.manual_seed(0)
    model = DSConvNet(widths=(8, 16, 32))
    reference = DSConvNet(widths=(8, 16, 32))
    reference.load_state_dict(model.state_dict())
    assert add_dropblock(model, p=0.2, block_size=3) is model
    blocks = [m for m in model.modules() if isinstance(m, DropBlock2d)]
    assert len(blocks) == 2 and all(b.p == 0.2 and b.block_size == 3 for b in blocks)
    assert isinstance(model.features[-1][-1], DropBlock2d) and isinstance(model.features[-2][-1], DropBlock2d)
    assert model.state_dict().keys() != reference.state_dict().keys()  # the stages moved one level down
    x = torch.randn(2, 3, 64, 64)
    model.eval(), reference.eval()
    reference_out = reference(x)
    torch.testing.assert_close(model(x), reference_out)  # identity in eval mode
    model.train()
    torch.manual_seed(1)
    assert not torch.allclose(model(x), reference.train()(x))  # active in training


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"p": 1.0}, "p must"), ({"block_size": 4}, "block_size must be odd"), ({"block_size": 0}, "block_size"),
    ({"stages": (7,)}, "stages"), ({"stages": (-9,)}, "stages"), ({"stages": ()}, "stages"),
])
def test_add_dropblock_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        add_dropblock(DSConvNet(widths=(8, 16, 32)), **kwargs)
    with pytest.raises(TypeError, match="model must be"):
        add_dropblock(nn.Sequential(nn.Conv2d(3, 3, 3)))  # type: ignore[arg-type]
