"""Package-internal kernels of ``hrlib.domain`` (lesson 04): feature statistics, AdaIN, MixStyle's mix, domain ids.

The kernels compute and trust their inputs: the public functions of ``style.py`` check the arguments once and the
modules' ``forward`` calls the kernels directly, so no check runs (and no device sync happens) per batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hrlib._checks import check_int


def mean_std(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and ``sqrt(unbiased variance + eps)`` over H and W, each (N, C, 1, 1)."""
    var, mu = torch.var_mean(x, dim=(2, 3), keepdim=True)
    return mu, (var + eps).sqrt()


def adain(content: Tensor, style: Tensor, eps: float) -> Tensor:
    """``content`` (N, C, H, W) with the per-sample, per-channel statistics of ``style`` (N or 1, C, H', W')."""
    (mu_c, sig_c), (mu_s, sig_s) = mean_std(content, eps), mean_std(style, eps)
    return (content - mu_c) / sig_c * sig_s + mu_s


def mixstyle(x: Tensor, lam: Tensor, partner: Tensor, eps: float) -> Tensor:
    """MixStyle's deterministic mix: statistics (detached) ``lam * own + (1 - lam) * partner's``, in >= float32."""
    n = x.shape[0]
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    mu, sig = mean_std(xf, eps)
    mu, sig = mu.detach(), sig.detach()
    lam, partner = lam.reshape(n, 1, 1, 1).to(xf), partner.to(x.device, torch.int64)
    mu_mix = lam * mu + (1 - lam) * mu[partner]
    sig_mix = lam * sig + (1 - lam) * sig[partner]
    return ((xf - mu) / sig * sig_mix + mu_mix).to(x.dtype)


def check_domain(domain: object, num_domains: int | None) -> int | Tensor | None:
    """``None``, an int id or a (N,) integer tensor of per-sample ids (returned as int64 on the CPU), each in range.

    Raises:
        TypeError: ``domain`` is neither None, an int nor a 1-D integer tensor.
        ValueError: an id is negative or >= ``num_domains``.
    """
    valid = ">= 0" if num_domains is None else f"in 0..{num_domains - 1} (num_domains={num_domains})"
    if domain is None:
        return None
    if isinstance(domain, Tensor):
        if domain.ndim != 1 or domain.dtype.is_floating_point or domain.dtype.is_complex or domain.dtype == torch.bool:
            raise TypeError(f"domain must be an int or a (N,) integer tensor of per-sample ids, "
                            f"got {domain.dtype} with shape {tuple(domain.shape)}")
        ids = domain.detach().to("cpu", torch.int64)
        bad = ids[(ids < 0) | (ids >= (num_domains or torch.iinfo(torch.int64).max))]
        if bad.numel():
            raise ValueError(f"domain ids must be {valid}, got {int(bad[0])}")
        return ids
    d = check_int("domain", domain, 0)
    if num_domains is not None and d >= num_domains:
        raise ValueError(f"domain must be {valid}, got {d}")
    return d
