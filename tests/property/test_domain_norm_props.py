"""Properties of hrlib.domain.style and norm: the feature-statistics identities hold for any shape and weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from hrlib.domain.norm import BatchInstanceNorm, DomainSpecificBatchNorm
from hrlib.domain.style import MixStyle, adain, mixstyle

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def features(draw: st.DrawFn, n_min: int = 1) -> torch.Tensor:
    """A float64 (N, C, H, W) batch with H * W >= 2 and per-sample per-channel scales and offsets."""
    n, c = draw(st.integers(n_min, 6)), draw(st.integers(1, 4))
    h, w = draw(st.sampled_from([(1, 2), (2, 1), (2, 2), (3, 5), (6, 4), (7, 7)]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    scale = torch.rand(n, c, 1, 1, generator=g, dtype=torch.float64) * 5 + 0.1
    return x * scale + torch.randn(n, c, 1, 1, generator=g, dtype=torch.float64) * 10


def stats(x: torch.Tensor, eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    return flat.mean(-1), (flat.var(-1) + eps).sqrt()


@FAST
@given(features(), st.data())
def test_mixstyle_output_statistics_are_the_lambda_mix(x: torch.Tensor, data: st.DataObject) -> None:
    n, eps = x.shape[0], data.draw(st.sampled_from([1e-6, 1e-3, 0.5]))
    lam = torch.tensor(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=torch.float64)
    partner = torch.tensor(data.draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
    out = mixstyle(x, lam, partner, eps)
    mu, sig = stats(x, eps)
    lam = lam.view(n, 1)
    mu_out, sd_out = stats(out)
    assert torch.allclose(mu_out, lam * mu + (1 - lam) * mu[partner], atol=1e-8)
    sig_mix = lam * sig + (1 - lam) * sig[partner]
    assert torch.allclose(sd_out, sig_mix * stats(x)[1] / sig, rtol=1e-8, atol=1e-10)


@FAST
@given(features(n_min=2), st.integers(0, 2**31 - 1), st.sampled_from(["random", "crossdomain"]))
def test_mixstyle_module_mixes_the_drawn_pairs(x: torch.Tensor, seed: int, mix: str) -> None:
    layer = MixStyle(p=1.0, alpha=0.5, mix=mix).train()
    torch.manual_seed(seed)
    out = layer(x)
    torch.manual_seed(seed)
    torch.rand(())
    lam = torch.distributions.Beta(0.5, 0.5).sample((x.shape[0], 1, 1, 1))
    assert torch.equal(out, mixstyle(x, lam, layer.partners(x.shape[0]), layer.eps))


@FAST
@given(st.lists(st.integers(0, 3), min_size=2, max_size=12), st.integers(0, 2**31 - 1))
def test_crossdomain_partner_is_from_another_domain_when_there_is_one(ids: list[int], seed: int) -> None:
    layer, ids_t = MixStyle(mix="crossdomain"), torch.tensor(ids)
    layer.set_domain(ids_t)
    torch.manual_seed(seed)
    partner = layer.partners(len(ids))
    has_other = (ids_t[:, None] != ids_t[None, :]).any(1)
    assert ((ids_t[partner] != ids_t) | ~has_other).all()


@FAST
@given(features(), st.data())
def test_adain_output_statistics_are_the_style(content: torch.Tensor, data: st.DataObject) -> None:
    n, c = content.shape[:2]
    style = data.draw(features()).repeat(n, c, 1, 1)[:n, :c]  # any spatial size, same N and C
    eps = data.draw(st.sampled_from([1e-8, 1e-2]))
    out = adain(content, style, eps)
    mu_s, sig_s = stats(style, eps)
    mu_c, sig_c = stats(content, eps)
    assert out.shape == content.shape
    assert torch.allclose(stats(out)[0], mu_s, atol=1e-8)
    assert torch.allclose(stats(out)[1], sig_s * stats(content)[1] / sig_c, rtol=1e-8, atol=1e-10)


@FAST
@given(features(), st.data())
def test_bin_is_the_rho_mix_of_batch_and_instance_norm(x: torch.Tensor, data: st.DataObject) -> None:
    c = x.shape[1]
    layer = BatchInstanceNorm(c).double().eval()
    rho = torch.tensor(data.draw(st.lists(st.floats(0, 1), min_size=c, max_size=c)), dtype=torch.float64)
    with torch.no_grad():
        layer.rho.copy_(rho)
        layer.bn.running_mean.normal_()
        layer.bn.running_var.uniform_(0.5, 2)
    bn = (x - layer.bn.running_mean.view(1, -1, 1, 1)) / (layer.bn.running_var.view(1, -1, 1, 1) + 1e-5).sqrt()
    inorm = F.instance_norm(x, eps=1e-5)
    r = rho.view(1, -1, 1, 1)
    assert torch.allclose(layer(x), r * bn + (1 - r) * inorm, atol=1e-10)


@FAST
@given(features(), st.data())
def test_dsbn_routes_every_sample_to_its_domain(x: torch.Tensor, data: st.DataObject) -> None:
    n, c = x.shape[:2]
    ids = torch.tensor(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    layer = DomainSpecificBatchNorm(c, num_domains=3).double().eval()
    with torch.no_grad():
        for bn in layer.bns:
            bn.running_mean.normal_()
            bn.weight.normal_()
    layer.set_domain(ids)
    out = layer(x)
    for i in range(n):
        one: nn.BatchNorm2d = layer.bns[int(ids[i])]
        assert torch.allclose(out[i : i + 1], one(x[i : i + 1]), atol=1e-12)
