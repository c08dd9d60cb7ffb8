"""Tests for hrlib.domain.style and norm: MixStyle, AdaIN, Batch-Instance Norm, domain-specific BN, model helpers."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrlib.analysis.cam import grad_cam
from hrlib.domain.norm import (
    BatchInstanceNorm,
    DomainSpecificBatchNorm,
    clip_gates_,
    convert_batchnorm,
    domain_batchnorm_summary,
    set_domain,
)
from hrlib.domain.style import AdaIN, MixStyle, StyleSwap, adain, insert_mixstyle, mixstyle
from hrlib.models import build_model, count_cost
from hrlib.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


def styled(n: int = 8, c: int = 4, side: int = 6, seed: int = 0) -> torch.Tensor:
    """(n, c, side, side) float64 features whose per-sample per-channel means and stds differ widely."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, side, side, generator=g, dtype=torch.float64)
    scale = torch.rand(n, c, 1, 1, generator=g, dtype=torch.float64) * 3 + 0.2
    return x * scale + torch.randn(n, c, 1, 1, generator=g, dtype=torch.float64) * 4


def stats(x: torch.Tensor, eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample per-channel mean and sqrt(unbiased var + eps) over H, W, written independently of the module."""
    flat = x.flatten(2)
    return flat.mean(-1), (flat.var(-1, unbiased=True) + eps).sqrt()


def trained_bn_model(seed: int = 0) -> nn.Module:
    """A small DSConvNet in eval mode whose BatchNorms have non-trivial weights and running statistics."""
    torch.manual_seed(seed)
    model = build_model("dsconvnet", num_classes=2, widths=(8, 16))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    return model.eval()


# ---------------------------------------------------------------- MixStyle

def test_mixstyle_is_the_identity_in_eval_mode_with_p0_and_for_one_sample() -> None:
    x = styled()
    assert MixStyle(p=1.0).eval()(x) is x
    assert MixStyle(p=0.0).train()(x) is x
    one = x[:1]
    assert MixStyle(p=1.0).train()(one) is one
    assert not torch.allclose(MixStyle(p=1.0).train()(x), x)  # it does act in training


@pytest.mark.parametrize("mix", ["random", "crossdomain"])
def test_mixstyle_statistics_are_the_lambda_mix_of_the_pair(mix: str) -> None:
    x, eps, n = styled(), 1e-6, 8
    torch.manual_seed(3)
    out = MixStyle(p=1.0, alpha=0.3, eps=eps, mix=mix).train()(x)
    torch.manual_seed(3)  # replay the draws in the documented order: coin, lambda, partners
    assert torch.rand(()).item() < 1.0
    lam = torch.distributions.Beta(0.3, 0.3).sample((n, 1, 1, 1)).view(n, 1).double()
    if mix == "random":
        perm = torch.randperm(n)
    else:
        perm = torch.cat([torch.arange(4, 8)[torch.randperm(4)], torch.arange(4)[torch.randperm(4)]])
    mu, sig = stats(x, eps)
    mu_out, sd_out = stats(out)
    sd_x = stats(x)[1]
    assert torch.allclose(mu_out, lam * mu + (1 - lam) * mu[perm], atol=1e-9)
    sig_mix = lam * sig + (1 - lam) * sig[perm]
    assert torch.allclose(sd_out, sig_mix * sd_x / sig, rtol=1e-9)  # = sig_mix up to eps
    assert torch.allclose(sd_out, sig_mix, rtol=1e-4)
    assert not torch.allclose(mu_out, mu, atol=1e-3)  # something was mixed


def test_mixstyle_draws_are_reproducible_under_a_seed_and_p_is_a_probability() -> None:
    x, layer = styled(), MixStyle(p=0.5).train()
    torch.manual_seed(0)
    a = [layer(x) for _ in range(40)]
    torch.manual_seed(0)
    b = [layer(x) for _ in range(40)]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    mixed = sum(not torch.equal(u, x) for u in a)
    assert 8 <= mixed <= 32  # Binomial(40, 0.5): far outside this range only if p is ignored


def test_mixstyle_statistics_are_detached() -> None:
    x, n = styled().requires_grad_(), 8
    lam, perm = torch.full((n,), 0.3, dtype=torch.float64), torch.roll(torch.arange(n), 1)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (mixstyle(x, lam, perm) * w).sum().backward()
    _, sig = stats(x.detach(), 1e-6)
    lam2 = lam.view(n, 1)
    ratio = (lam2 * sig + (1 - lam2) * sig[perm]) / sig
    assert torch.allclose(x.grad, w * ratio[..., None, None])  # d out / d x = sig_mix / sig: nothing through stats
    # a version whose statistics are not detached has a different gradient: the test can tell them apart
    x2 = x.detach().clone().requires_grad_()
    mu2, sig2 = stats(x2, 1e-6)
    mu2, sig2 = mu2[..., None, None], sig2[..., None, None]
    lam4 = lam.view(n, 1, 1, 1)
    out2 = (x2 - mu2) / sig2 * (lam4 * sig2 + (1 - lam4) * sig2[perm]) + lam4 * mu2 + (1 - lam4) * mu2[perm]
    (out2 * w).sum().backward()
    assert not torch.allclose(x2.grad, x.grad, atol=1e-3)


def test_crossdomain_partners_come_from_the_other_half_or_another_domain() -> None:
    layer = MixStyle(mix="crossdomain")
    torch.manual_seed(0)
    for _ in range(20):
        p = layer.partners(8)
        assert sorted(p[:4].tolist()) == [4, 5, 6, 7] and sorted(p[4:].tolist()) == [0, 1, 2, 3]
        p = layer.partners(7)  # odd: halves of 3 and 4, drawn with replacement
        assert (p[:3] >= 3).all() and (p[3:] < 3).all()
    ids = torch.tensor([0, 0, 1, 2, 2, 1])
    layer.set_domain(ids)
    for _ in range(20):
        assert (ids[layer.partners(6)] != ids).all()
    assert {tuple(layer.partners(6).tolist()) for _ in range(20)}.__len__() > 1  # random, not fixed
    layer.set_domain(torch.zeros(4, dtype=torch.int64))  # one domain only: partners from the whole batch
    assert layer.partners(4).shape == (4,)
    with pytest.raises(ValueError, match="^domain ids must be one per sample"):
        layer.partners(5)
    layer.set_domain(1)  # an int clears the ids: the halves convention again
    assert layer.domain_ids is None


def test_mixstyle_random_partners_are_a_permutation() -> None:
    torch.manual_seed(0)
    assert sorted(MixStyle().partners(9).tolist()) == list(range(9))


def test_mixstyle_keeps_dtype_and_works_in_float32() -> None:
    x = styled().float()
    torch.manual_seed(0)
    out = MixStyle(p=1.0).train()(x)
    assert out.dtype == torch.float32 and out.shape == x.shape and torch.isfinite(out).all()


def test_mixstyle_with_a_generator_repeats_and_leaves_the_global_rng_alone() -> None:
    x = styled()
    outs = []
    for _ in range(2):
        layer = MixStyle(p=0.5, mix="crossdomain", generator=torch.Generator().manual_seed(7)).train()
        before = torch.random.get_rng_state()
        outs.append([layer(x) for _ in range(10)])
        assert torch.equal(torch.random.get_rng_state(), before)  # every draw came from the generator
    assert all(torch.equal(a, b) for a, b in zip(*outs, strict=True))
    g = torch.Generator().manual_seed(7)  # the documented order: coin, then (if mixed) lambda and partners
    draws = MixStyle(p=1.0, alpha=0.3, generator=torch.Generator().manual_seed(7)).randomize(8)
    assert draws is not None and torch.rand((), generator=g).item() < 1.0
    lam = torch._sample_dirichlet(torch.tensor([0.3, 0.3]).expand(8, 1, 1, 1, 2), generator=g).select(-1, 0)
    assert torch.equal(draws[0], lam) and torch.equal(draws[1], torch.randperm(8, generator=g))
    assert MixStyle(p=0.0, generator=torch.Generator()).randomize(8) is None
    with pytest.raises(TypeError, match="^generator must be a torch.Generator"):
        MixStyle(generator=7)


def test_style_swap_takes_target_statistics_from_its_own_generator() -> None:
    src, style = styled(n=6, seed=0).float(), styled(n=3, seed=1).float() * 3 + 2
    layer = StyleSwap(p=1.0, generator=torch.Generator().manual_seed(0)).train()
    layer.n_style = 3
    before = torch.random.get_rng_state()
    out = layer(torch.cat([src, style]))
    assert torch.equal(torch.random.get_rng_state(), before)
    g = torch.Generator().manual_seed(0)
    pick = torch.randint(3, (6,), generator=g)
    assert out.shape == src.shape and torch.allclose(out, adain(src, style[pick]), atol=1e-5)
    assert layer.eval()(src) is src


# ---------------------------------------------------------------- AdaIN

def test_adain_output_statistics_equal_the_style() -> None:
    content, style = styled(seed=0), styled(side=9, seed=1)
    out = adain(content, style, eps=1e-8)
    mu_o, sd_o = stats(out)
    mu_s, sd_s = stats(style)
    assert torch.allclose(mu_o, mu_s, atol=1e-9) and torch.allclose(sd_o, sd_s, rtol=1e-6)
    one = adain(content, style[:1], eps=1e-8)  # one style for all
    assert torch.allclose(stats(one)[0], mu_s[:1].expand(8, -1), atol=1e-9)
    assert torch.equal(AdaIN(eps=1e-8)(content, style), out)
    # the content's spatial pattern survives: per channel, out is an increasing affine function of content
    assert torch.allclose(torch.corrcoef(torch.stack([out[0, 0].flatten(), content[0, 0].flatten()]))[0, 1],
                          torch.tensor(1.0, dtype=torch.float64))


# ---------------------------------------------------------------- BatchInstanceNorm

def test_bin_with_rho_1_is_batchnorm_and_with_rho_0_is_instancenorm() -> None:
    x = styled().float()
    bin_, bn = BatchInstanceNorm(4), nn.BatchNorm2d(4)
    with torch.no_grad():
        for m in (bin_, bn):
            m.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
            m.bias.copy_(torch.tensor([0.0, 1.0, 2.0, -3.0]))
    assert torch.allclose(bin_(x), bn(x), atol=1e-5)  # training: batch statistics
    assert torch.allclose(bin_.bn.running_mean, bn.running_mean) and torch.allclose(bin_.bn.running_var, bn.running_var)
    assert torch.allclose(bin_.eval()(x), bn.eval()(x), atol=1e-5)  # eval: running statistics
    inorm = nn.InstanceNorm2d(4, affine=True)
    inorm.load_state_dict({"weight": bn.weight, "bias": bn.bias})
    with torch.no_grad():
        bin_.rho.zero_()
    for mode in (True, False):
        assert torch.allclose(bin_.train(mode)(x), inorm(x), atol=1e-5)


def test_bin_gate_stays_in_0_1_under_large_steps() -> None:
    x = styled().float()
    start = BatchInstanceNorm(4)  # rho = 1, on the bound: the gate must still learn
    (start(x) * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    assert (start.rho.grad != 0).all()
    for sign in (1.0, -1.0):
        layer = BatchInstanceNorm(4)
        opt = torch.optim.SGD(layer.parameters(), lr=100.0)
        for _ in range(3):
            opt.zero_grad()
            (sign * layer.rho.sum() * 1.0 + 0 * layer(x).sum()).backward()  # pushes rho down (+) or up (-)
            opt.step()
            raw = layer.rho.detach().clone()
            assert (raw < 0).any() or (raw > 1).any()  # the step did push it out
            out = layer(x)  # the forward uses the gate clamped to [0, 1], out of place
            assert torch.equal(layer.rho, raw)  # and leaves the parameter alone
            clip_gates_(layer)  # the paper's clip after each step
            assert ((layer.rho >= 0) & (layer.rho <= 1)).all()
        target = nn.InstanceNorm2d(4, affine=True) if sign > 0 else nn.BatchNorm2d(4)
        target.load_state_dict({"weight": layer.weight, "bias": layer.bias}, strict=False)
        assert torch.allclose(out, target.train()(x), atol=1e-5)  # the gate the forward used was clipped
        with torch.no_grad():
            layer.rho.fill_(7.0)
        clip_gates_(layer)
        assert (layer.rho == 1).all()


# ---------------------------------------------------------------- DomainSpecificBatchNorm

def test_dsbn_keeps_separate_running_statistics_per_domain() -> None:
    layer = DomainSpecificBatchNorm(3, num_domains=2, momentum=0.5)
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        for d, mean in ((0, 0.0), (1, 5.0)):
            layer.set_domain(d)
            layer(torch.randn(8, 3, 5, 5, generator=g) + mean)
    assert torch.allclose(layer.bns[0].running_mean, torch.zeros(3), atol=0.2)
    assert torch.allclose(layer.bns[1].running_mean, torch.full((3,), 5.0), atol=0.2)
    summary = domain_batchnorm_summary(nn.Sequential(layer))
    assert summary["0"].shape == (2, 3) and summary["0"][1].mean() > 4.5


def test_dsbn_per_sample_routing_equals_routing_each_sub_batch() -> None:
    ids = torch.tensor([1, 0, 2, 1, 0, 1, 2, 2])
    x = styled().float()
    routed = DomainSpecificBatchNorm(4, num_domains=3)
    with torch.no_grad():
        for d, bn in enumerate(routed.bns):
            bn.weight.fill_(d + 1.0)
    separate = copy.deepcopy(routed)
    routed.set_domain(ids)
    out = routed(x)
    for d in range(3):
        separate.set_domain(d)
        assert torch.allclose(out[ids == d], separate(x[ids == d]), atol=1e-6)
        assert torch.allclose(routed.bns[d].running_mean, separate.bns[d].running_mean)
    # gradients reach every domain's BN through the reassembled batch
    out.sum().backward()
    assert all(bn.weight.grad is not None for bn in routed.bns)


def test_dsbn_rejects_unknown_and_unset_domains() -> None:
    layer = DomainSpecificBatchNorm(4, num_domains=2)
    with pytest.raises(RuntimeError, match="^domain is not set"):
        layer(styled().float())
    with pytest.raises(ValueError, match=r"^domain must be in 0..1 \(num_domains=2\), got 2"):
        layer.set_domain(2)
    with pytest.raises(ValueError, match=r"^domain ids must be in 0..1 \(num_domains=2\), got 3"):
        layer.set_domain(torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="^domain ids must be in 0..1"):
        layer.set_domain(torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="^domain must be an int or a"):
        layer.set_domain(torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="^domain must be an int"):
        layer.set_domain("0")
    layer.set_domain(torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="^domain ids must be one per sample"):
        layer(styled().float())


# ---------------------------------------------------------------- model helpers

def test_convert_batchnorm_preserves_eval_outputs() -> None:
    model = trained_bn_model()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = model(x)
    b = convert_batchnorm(copy.deepcopy(model), "bin")
    inner = {id(m.bn) for m in b.modules() if isinstance(m, BatchInstanceNorm)}
    assert all(id(m) in inner for m in b.modules() if isinstance(m, nn.BatchNorm2d))  # BIN's own BN only
    assert sum(isinstance(m, BatchInstanceNorm) for m in b.modules()) == 5
    assert torch.allclose(b(x), ref, atol=1e-5)
    d = convert_batchnorm(copy.deepcopy(model), "dsbn", num_domains=3)
    assert sum(isinstance(m, DomainSpecificBatchNorm) for m in d.modules()) == 5
    for domain in (0, 2, torch.tensor([0, 1, 2, 1])):
        set_domain(d, domain)
        assert torch.allclose(d(x), ref, atol=1e-6)
    # the copies are separate: training on domain 1 leaves domain 0's statistics alone
    set_domain(d, 1)
    d.train()(x + 3)
    first = d.features[0][1]
    assert torch.equal(first.bns[0].running_mean, model.features[0][1].running_mean)
    assert not torch.equal(first.bns[1].running_mean, model.features[0][1].running_mean)
    assert isinstance(convert_batchnorm(nn.BatchNorm2d(3), "bin"), BatchInstanceNorm)


def test_convert_batchnorm_and_set_domain_errors() -> None:
    model = trained_bn_model()
    with pytest.raises(ValueError, match="^kind must be one of"):
        convert_batchnorm(model, "in")
    with pytest.raises(ValueError, match="^num_domains must be given"):
        convert_batchnorm(model, "dsbn")
    with pytest.raises(ValueError, match="^num_domains must be None"):
        convert_batchnorm(model, "bin", num_domains=2)
    with pytest.raises(ValueError, match="^num_domains must be an int >= 1"):
        convert_batchnorm(model, "dsbn", num_domains=0)
    with pytest.raises(ValueError, match="^model must contain an nn.BatchNorm2d"):
        convert_batchnorm(build_model("tinyconvnext"), "bin")
    with pytest.raises(TypeError, match="^model must be"):
        convert_batchnorm("model", "bin")
    assert all(type(m) is not DomainSpecificBatchNorm for m in model.modules())  # errors changed nothing
    with pytest.raises(ValueError, match="^model must contain a DomainSpecificBatchNorm or MixStyle"):
        set_domain(model, 0)
    convert_batchnorm(model, "dsbn", num_domains=2)
    with pytest.raises(ValueError, match="^domain must be in 0..1"):
        set_domain(model, 5)
    assert all(m.domain is None for m in model.modules() if isinstance(m, DomainSpecificBatchNorm))


def test_insert_mixstyle_after_early_stages_only() -> None:
    model = build_model("dsconvnet", num_classes=2, widths=(8, 16, 32))
    cam_layer = model.cam_layer
    assert insert_mixstyle(model, (0, -2), p=1.0, mix="crossdomain") is model
    layers = [m for m in model.modules() if isinstance(m, MixStyle)]
    assert len(layers) == 2 and all(m.p == 1.0 and m.mix == "crossdomain" for m in layers)
    assert isinstance(model.features[0][1], MixStyle) and isinstance(model.features[1][1], MixStyle)
    assert model.cam_layer is cam_layer
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model.eval()
    before = model(x)
    assert grad_cam(model, x).shape == (4, 32, 32)
    assert count_cost(model, 32).output_shape == (1, 2)
    assert torch.equal(model(x), before)
    model.train()
    assert not torch.allclose(model(x), before)  # active in training
    for stages in ((3,), (-1,), (0, 3)):
        with pytest.raises(ValueError, match="^stages must be early stages"):
            insert_mixstyle(build_model("dsconvnet", widths=(8, 16, 32)), stages)
    with pytest.raises(ValueError, match="^stages must not repeat"):
        insert_mixstyle(model, (0,))
    with pytest.raises(ValueError, match="^p must be"):
        insert_mixstyle(build_model("dsconvnet"), (0,), p=2.0)
    with pytest.raises(TypeError, match="^model must be"):
        insert_mixstyle(nn.Linear(2, 2))


@pytest.mark.parametrize(("make", "match"), [
    (lambda: MixStyle(p=1.5), "^p must be"),
    (lambda: MixStyle(alpha=0), "^alpha must be"),
    (lambda: MixStyle(eps=-1), "^eps must be"),
    (lambda: MixStyle(mix="halves"), "^mix must be one of"),
    (lambda: BatchInstanceNorm(0), "^num_features must be"),
    (lambda: BatchInstanceNorm(3, momentum=2.0), "^momentum must be"),
    (lambda: DomainSpecificBatchNorm(3, 0), "^num_domains must be"),
    (lambda: adain(torch.zeros(2, 3, 4, 4), torch.zeros(2, 2, 4, 4)), "^style must have 3 channels"),
    (lambda: adain(torch.zeros(2, 3, 1, 1), torch.zeros(2, 3, 4, 4)), "^content must be a float tensor"),
    (lambda: adain(np.zeros((2, 3, 4, 4)), torch.zeros(2, 3, 4, 4)), "^content must be a float tensor"),
    (lambda: mixstyle(torch.zeros(2, 3, 4, 4), torch.tensor([0.5, 1.5]), torch.tensor([1, 0])), "^lam must be"),
    (lambda: mixstyle(torch.zeros(2, 3, 4, 4), torch.tensor([0.5, 0.5]), torch.tensor([1, 2])), "^partner must be"),
    (lambda: MixStyle().set_domain(torch.tensor([-1, 0])), "^domain ids must be >= 0"),
])
def test_errors_name_the_argument(make, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        make()


# ---------------------------------------------------------------- training with hrlib.train.fit

@dataclass(frozen=True)
class Stage:
    name: str
    resolution: int


@dataclass
class Schedule:
    num_epochs: int = 2

    def stage_at(self, epoch: int) -> Stage:
        return Stage("all", 32)

    def resolution_at(self, epoch: int) -> int:
        return 32

    def train_transform(self, epoch: int):
        def to_tensor(*, image: np.ndarray) -> dict[str, torch.Tensor]:
            return {"image": torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1}
        return to_tensor


def bright_dark(n: int = 16) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(0)
    return [(rng.normal(100 + 50 * (i % 2), 30, (32, 32, 3)).clip(0, 255).astype(np.uint8), i % 2) for i in range(n)]


@pytest.mark.parametrize("variant", ["mixstyle", "bin", "dsbn"])
def test_fit_trains_a_converted_model(variant: str) -> None:
    torch.manual_seed(0)
    model = build_model("dsconvnet", num_classes=2, widths=(8, 16))
    if variant == "mixstyle":
        insert_mixstyle(model, (0,), p=1.0, mix="crossdomain")
    elif variant == "bin":
        convert_batchnorm(model, "bin")
    else:
        convert_batchnorm(model, "dsbn", num_domains=2)
        set_domain(model, 1)
    before = copy.deepcopy(model.state_dict())
    history = fit(model, bright_dark(), Schedule(), batch_size=6, lr=1e-2, progress=False, device="cpu")
    assert len(history) == 2 and np.isfinite(history.column("train_loss")).all()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    if variant == "dsbn":  # only domain 1's BatchNorms learned
        assert any(".bns.1." in k for k in changed) and not any(".bns.0." in k for k in changed)
    if variant == "bin":
        assert all(((m.rho >= 0) & (m.rho <= 1)).all() for m in clip_gates_(model).modules()
                   if isinstance(m, BatchInstanceNorm))
    assert F.softmax(model.eval()(torch.zeros(1, 3, 32, 32)), 1).shape == (1, 2)
