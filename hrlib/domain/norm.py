"""Feature-statistics layers for domain shift (lesson 04): MixStyle, AdaIN, Batch-Instance Norm, per-domain BN.

A CNN's per-sample, per-channel feature means and standard deviations carry much of an image's "style" (stain,
scanner, brightness). :class:`MixStyle` mixes them between training samples (Zhou et al., ICLR 2021); :func:`adain`
replaces them by another image's (Huang & Belongie, ICCV 2017); :class:`BatchInstanceNorm` learns per channel how
much of them to remove (Nam & Kim, NeurIPS 2018); :class:`DomainSpecificBatchNorm` keeps one set of BatchNorm
statistics per domain (Chang et al., CVPR 2019). :func:`insert_mixstyle`, :func:`convert_batchnorm` and
:func:`set_domain` apply them to a model in place. Statistics over H, W use the unbiased variance plus ``eps``
inside the square root, as the papers' reference code does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrlib._checks import check_bool as _check_bool
from hrlib._checks import check_float, check_int

__all__ = ["AdaIN", "BatchInstanceNorm", "DomainSpecificBatchNorm", "MixStyle", "adain", "clip_gates_",
           "convert_batchnorm", "domain_batchnorm_summary", "insert_mixstyle", "mixstyle", "set_domain"]

MIX_MODES = ("random", "crossdomain")
CONVERT_KINDS = ("bin", "dsbn")


def _check_x(name: str, x: object) -> Tensor:
    """Return ``x`` if a float (N, C, H, W) tensor with H * W >= 2 (a standard deviation needs two pixels)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a float torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or not x.is_floating_point() or x.shape[2] * x.shape[3] < 2:
        raise ValueError(f"{name} must be a float tensor of shape (N, C, H, W) with H * W >= 2, "
                         f"got {x.dtype} with shape {tuple(x.shape)}")
    return x


def _check_features(x: object, channels: int, spatial: int = 1) -> Tensor:
    """Return ``x`` if a float (N, C, H, W) tensor with ``channels`` channels and H * W >= ``spatial`` (no scan)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a float torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or not x.is_floating_point() or x.shape[1] != channels or x.shape[2] * x.shape[3] < spatial:
        raise ValueError(f"x must be a float tensor of shape (N, {channels}, H, W)"
                         f"{' with H * W >= 2' if spatial > 1 else ''}, got {x.dtype} with shape {tuple(x.shape)}")
    return x


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _mean_std(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and ``sqrt(unbiased variance + eps)`` over H and W, each (N, C, 1, 1)."""
    var, mu = torch.var_mean(x, dim=(2, 3), keepdim=True)
    return mu, (var + eps).sqrt()


def _check_momentum(momentum: object) -> float | None:
    return None if momentum is None else check_float("momentum", momentum, 0.0, 1.0, hint="None: cumulative average")


def _check_domain(domain: object, num_domains: int | None) -> int | Tensor | None:
    """``None``, an int id or a (N,) integer tensor of per-sample ids (as int64 on the CPU), each in range."""
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


def mixstyle(x: Tensor, lam: Tensor, partner: Tensor, eps: float = 1e-6) -> Tensor:
    """MixStyle with given weights and partners (no randomness): each sample's style is mixed with its partner's.

    Per sample and channel, ``mu`` and ``sig = sqrt(var + eps)`` over H, W are computed and detached (no gradient
    flows through the statistics); ``mu_mix = lam * mu + (1 - lam) * mu[partner]`` (same for ``sig``) and
    ``out = sig_mix * (x - mu) / sig + mu_mix``. ``x``: (N, C, H, W) float, H * W >= 2; ``lam``: N weights in
    [0, 1], shape (N,) or (N, 1, 1, 1); ``partner``: (N,) integer indices into the batch; ``eps`` (> 0): added to
    the variance. Returns a tensor of the shape and dtype of ``x`` (computed in at least float32).
    """
    x = _check_x("x", x)
    n = x.shape[0]
    if not isinstance(lam, Tensor) or lam.numel() != n or not bool(((lam >= 0) & (lam <= 1)).all()):
        raise ValueError(f"lam must be a tensor of {n} weights in [0, 1], got {lam!r}")
    if (not isinstance(partner, Tensor) or tuple(partner.shape) != (n,) or partner.dtype.is_floating_point
            or bool(((partner < 0) | (partner >= n)).any())):
        raise ValueError(f"partner must be a ({n},) integer tensor of indices in 0..{n - 1}, got {partner!r}")
    eps = check_float("eps", eps, 0.0, low_open=True)
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    mu, sig = _mean_std(xf, eps)
    mu, sig = mu.detach(), sig.detach()
    lam, partner = lam.reshape(n, 1, 1, 1).to(xf), partner.to(x.device, torch.int64)
    mu_mix = lam * mu + (1 - lam) * mu[partner]
    sig_mix = lam * sig + (1 - lam) * sig[partner]
    return ((xf - mu) / sig * sig_mix + mu_mix).to(x.dtype)


class MixStyle(nn.Module):
    """MixStyle (Zhou et al., ICLR 2021): in training, mix each sample's feature statistics with a partner's.

    The identity in eval mode, when ``p == 0`` and for batches of one sample. Otherwise each forward draws from
    torch's RNG, in this order: ``u = torch.rand(())`` (MixStyle applies if ``u < p``); ``lam ~ Beta(alpha,
    alpha)`` per sample, shape (N, 1, 1, 1); the partners: ``torch.randperm(N)`` for ``mix="random"``; for
    ``mix="crossdomain"`` the paper's convention that the batch is two domains' halves: the first half's partners
    are the second half in ``randperm(N // 2)`` order, then the second half's are the first half in another
    ``randperm(N // 2)`` order. With per-sample ids (:meth:`set_domain`), or an odd N (halves N // 2 and the rest),
    each sample's partner is drawn uniformly among the samples of another domain (from the whole batch if there is
    none), via ``torch.rand(N, N)``. Then :func:`mixstyle`.
    ``p``: probability in [0, 1] of mixing a batch; ``alpha`` (> 0): Beta parameter (0.1 in the paper, which makes
    lam mostly near 0 or 1); ``eps`` (> 0): added to the variance; ``mix``: ``"random"`` or ``"crossdomain"``.
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6, mix: str = "random") -> None:
        super().__init__()
        self.p, self.eps = check_float("p", p, 0.0, 1.0), check_float("eps", eps, 0.0, low_open=True)
        self.alpha = check_float("alpha", alpha, 0.0, low_open=True)
        if mix not in MIX_MODES:
            raise ValueError(f"mix must be one of {MIX_MODES}, got {mix!r}")
        self.mix = mix
        self.domain_ids: Tensor | None = None

    def set_domain(self, domain: int | Tensor | None) -> None:
        """Per-sample domain ids of the next batches ((N,) integer tensor, ids >= 0) for ``mix="crossdomain"``;
        an int (one domain for the whole batch) or None clears them and the halves convention applies."""
        ids = _check_domain(domain, None)
        self.domain_ids = ids if isinstance(ids, Tensor) else None

    def partners(self, n: int) -> Tensor:
        """(N,) partner indices for a batch of ``n`` samples, drawn from torch's RNG as the class describes."""
        n = check_int("n", n)
        if self.mix == "random":
            return torch.randperm(n)
        if self.domain_ids is None and n % 2 == 0:
            half = n // 2
            first = torch.arange(half, n)[torch.randperm(half)]  # partners of the first half: the second half
            return torch.cat([first, torch.arange(half)[torch.randperm(half)]])
        ids = self.domain_ids if self.domain_ids is not None else (torch.arange(n) >= n // 2).long()
        if ids.numel() != n:
            raise ValueError(f"domain ids must be one per sample: {ids.numel()} ids were set for a batch of {n}")
        other = (ids[:, None] != ids[None, :]).float()
        return (torch.rand(n, n) + other).argmax(1)  # a random other-domain sample if there is one

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` (N, C, H, W), mixed with probability ``p`` in training, else unchanged."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a float torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
        if not self.training or self.p == 0.0 or x.shape[0] < 2:
            return x
        if torch.rand(()).item() >= self.p:
            return x
        n = x.shape[0]
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((n, 1, 1, 1))
        return mixstyle(x, lam, self.partners(n), self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, eps={self.eps}, mix={self.mix!r}"


def insert_mixstyle(model: nn.Module, stages: Sequence[int] = (0, 1), **kwargs: object) -> nn.Module:
    """Insert a :class:`MixStyle` (``kwargs``: its arguments) after the given stages of ``model.features``, in place.

    ``model``: a classifier whose ``features`` is an ``nn.Sequential`` of stages (``hrlib.models``); ``stages``:
    indices into it (negative from the end), never the last one: its statistics feed the head, and the paper found
    mixing there hurts. Stage ``i`` becomes ``nn.Sequential(stage, MixStyle(**kwargs))``; ``cam_layer`` (the last
    stage) is unchanged. Returns ``model``.
    """
    features = getattr(model, "features", None)
    if not isinstance(model, nn.Module) or not isinstance(features, nn.Sequential):
        raise TypeError(f"model must be an nn.Module whose `features` is an nn.Sequential of stages "
                        f"(hrlib.models), got {type(model).__name__}")
    n = len(features)
    if isinstance(stages, str) or not isinstance(stages, Sequence) or len(stages) == 0:
        raise TypeError(f"stages must be a non-empty sequence of indices into model.features, got {stages!r}")
    indices = [check_int(f"stages[{i}]", s, -n) for i, s in enumerate(stages)]
    if any(i >= n - 1 or i == -1 for i in indices):
        raise ValueError(f"stages must be early stages of model.features (0..{n - 2} or -{n}..-2), never the last "
                         f"one ({n - 1}), got {stages!r}")
    MixStyle(**kwargs)  # type: ignore[arg-type]  # validate before changing the model
    for i in sorted({i % n for i in indices}):
        stage = features[i]
        if isinstance(stage, nn.Sequential) and len(stage) and isinstance(stage[-1], MixStyle):
            raise ValueError(f"stages must not repeat a stage that already has a MixStyle, got stage {i}")
        features[i] = nn.Sequential(stage, MixStyle(**kwargs))  # type: ignore[arg-type]
    return model


def adain(content: Tensor, style: Tensor, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalization (Huang & Belongie, 2017): ``content`` with the ``style``'s statistics.

    ``(content - mu_c) / sig_c * sig_s + mu_s`` with per-sample, per-channel mean and ``sqrt(var + eps)`` over H,
    W. ``content``: (N, C, H, W) float; ``style``: (N, C, H', W') or (1, C, H', W') (one style for all), H' * W'
    >= 2; ``eps`` (> 0). Returns a tensor shaped like ``content`` whose statistics are the style's.
    """
    content, style = _check_x("content", content), _check_x("style", style)
    if style.shape[1] != content.shape[1] or style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"style must have {content.shape[1]} channels and 1 or {content.shape[0]} samples "
                         f"(as content), got shape {tuple(style.shape)}")
    eps = check_float("eps", eps, 0.0, low_open=True)
    (mu_c, sig_c), (mu_s, sig_s) = _mean_std(content, eps), _mean_std(style, eps)
    return (content - mu_c) / sig_c * sig_s + mu_s


class AdaIN(nn.Module):
    """:func:`adain` as a module: ``AdaIN(eps)(content, style)``."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = check_float("eps", eps, 0.0, low_open=True)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        return adain(content, style, self.eps)


class BatchInstanceNorm(nn.Module):
    """Batch-Instance Normalization (Nam & Kim, NeurIPS 2018): ``(rho * BN(x) + (1 - rho) * IN(x)) * weight + bias``.

    ``rho`` (per channel, learnable, initially 1: pure BatchNorm) is kept in [0, 1] as in the paper, which clips
    it after each optimizer step: here each forward first clips it in place (under ``no_grad``) if a step pushed it
    out, so the forward always uses a gate in [0, 1]; :func:`clip_gates_` does the same after the last step.
    BN: batch statistics in training, running ones in eval; IN: each sample's statistics, always.
    ``num_features``: channels C (>= 1); ``eps`` (> 0): added to variances; ``momentum``: running-statistics
    update in [0, 1] (None: cumulative average); ``track_running_stats``: as in ``nn.BatchNorm2d``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features)
        self.eps = check_float("eps", eps, 0.0, low_open=True)
        self.bn = nn.BatchNorm2d(self.num_features, self.eps, _check_momentum(momentum), affine=False,
                                 track_running_stats=_check_bool("track_running_stats", track_running_stats))
        self.rho = nn.Parameter(torch.ones(self.num_features))
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))

    def forward(self, x: Tensor) -> Tensor:
        """Return the normalised ``x`` (N, C, H, W), same shape."""
        _check_features(x, self.num_features, spatial=2)
        if bool(((self.rho < 0) | (self.rho > 1)).any()):
            with torch.no_grad():
                self.rho.clamp_(0.0, 1.0)
        rho = self.rho.view(1, -1, 1, 1)
        out = rho * self.bn(x) + (1 - rho) * F.instance_norm(x, eps=self.eps)
        return out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def clip_gates_(model: nn.Module) -> nn.Module:
    """Clip the gate ``rho`` of every :class:`BatchInstanceNorm` in ``model`` to [0, 1], in place; returns it."""
    _check_model(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BatchInstanceNorm):
                m.rho.clamp_(0.0, 1.0)
    return model


class DomainSpecificBatchNorm(nn.Module):
    """Domain-specific BatchNorm (Chang et al., CVPR 2019): one ``nn.BatchNorm2d`` (statistics and affine) per domain.

    The domain must be set before a forward (:meth:`set_domain` or :func:`set_domain`; else ``RuntimeError``): an
    int routes the whole batch, a (N,) tensor of ids routes each sub-batch through its domain's BN and reassembles
    the batch in the original order. ``num_features``: channels C (>= 1); ``num_domains`` (>= 1); ``eps``,
    ``momentum``, ``affine``: as in ``nn.BatchNorm2d``. ``bns[d]``: domain ``d``'s BatchNorm2d.
    """

    def __init__(self, num_features: int, num_domains: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features)
        self.num_domains = check_int("num_domains", num_domains)
        eps, momentum = check_float("eps", eps, 0.0, low_open=True), _check_momentum(momentum)
        affine = _check_bool("affine", affine)
        self.bns = nn.ModuleList(nn.BatchNorm2d(self.num_features, eps, momentum, affine)
                                 for _ in range(self.num_domains))
        self.domain: int | Tensor | None = None

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d, num_domains: int) -> DomainSpecificBatchNorm:
        """A DSBN whose every domain starts as a copy of ``bn`` (weights, running statistics, settings)."""
        if not isinstance(bn, nn.BatchNorm2d):
            raise TypeError(f"bn must be an nn.BatchNorm2d, got {type(bn).__name__}")
        new = cls(bn.num_features, num_domains, bn.eps, bn.momentum, bn.affine)
        new.bns = nn.ModuleList(copy.deepcopy(bn) for _ in range(new.num_domains))
        return new.train(bn.training)

    def set_domain(self, domain: int | Tensor | None) -> None:
        """The domain of the next batches: an int in 0..num_domains-1, a (N,) integer tensor of ids, or None."""
        self.domain = _check_domain(domain, self.num_domains)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` (N, C, H, W) normalised by its domain's (or each sample's domain's) BatchNorm."""
        if self.domain is None:
            raise RuntimeError("domain is not set: call set_domain(d) (an int, or a (N,) tensor of per-sample ids "
                               f"in 0..{self.num_domains - 1}) before the forward pass")
        _check_features(x, self.num_features)
        if isinstance(self.domain, int):
            return self.bns[self.domain](x)
        ids = self.domain.to(x.device)
        if ids.numel() != x.shape[0]:
            raise ValueError(f"domain ids must be one per sample of x: {ids.numel()} ids were set, x has "
                             f"{x.shape[0]} samples")
        parts, order = [], []
        for d in ids.unique().tolist():
            idx = (ids == d).nonzero(as_tuple=True)[0]
            parts.append(self.bns[d](x[idx]))
            order.append(idx)
        return torch.cat(parts)[torch.argsort(torch.cat(order))]


def _swap_batchnorms(module: nn.Module, make: Callable[[nn.BatchNorm2d], nn.Module]) -> int:
    """Replace each ``nn.BatchNorm2d`` below ``module`` (not inside BIN/DSBN) by ``make(bn)``; return the count."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, make(child))
            count += 1
        elif not isinstance(child, BatchInstanceNorm | DomainSpecificBatchNorm):
            count += _swap_batchnorms(child, make)
    return count


def _bin_from(bn: nn.BatchNorm2d) -> BatchInstanceNorm:
    """A BIN with rho = 1 that computes what ``bn`` does (weights and running statistics copied)."""
    new = BatchInstanceNorm(bn.num_features, bn.eps, bn.momentum, bn.track_running_stats)
    ref = next(iter([*bn.parameters(), *bn.buffers()]), None)
    if ref is not None:
        new.to(ref)  # device and float dtype of the BN
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight)
            new.bias.copy_(bn.bias)
    if bn.track_running_stats:
        new.bn.load_state_dict({k: v for k, v in bn.state_dict().items() if k not in ("weight", "bias")})
    return new.train(bn.training)


def convert_batchnorm(model: nn.Module, kind: str, *, num_domains: int | None = None) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` of ``model`` in place, copying its weights and running statistics.

    ``kind``: ``"bin"`` (:class:`BatchInstanceNorm`, rho = 1: the same output until rho moves) or ``"dsbn"``
    (:class:`DomainSpecificBatchNorm`, every domain a copy of the BN; set the domain before a forward);
    ``num_domains``: required (>= 1) for ``"dsbn"`` only. Returns ``model`` (the replacement if ``model`` is
    itself a BatchNorm2d).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if kind not in CONVERT_KINDS:
        raise ValueError(f"kind must be one of {CONVERT_KINDS}, got {kind!r}")
    if kind == "dsbn":
        if num_domains is None:
            raise ValueError("num_domains must be given (an int >= 1) for kind='dsbn', got None")
        make = partial(DomainSpecificBatchNorm.from_batchnorm, num_domains=check_int("num_domains", num_domains))
    elif num_domains is not None:
        raise ValueError(f"num_domains must be None for kind='bin' (one BIN for all domains), got {num_domains!r}")
    else:
        make = _bin_from  # type: ignore[assignment]
    if isinstance(model, nn.BatchNorm2d):
        return make(model)
    if _swap_batchnorms(model, make) == 0:
        raise ValueError(f"model must contain an nn.BatchNorm2d to convert, {type(model).__name__} has none "
                         "(TinyConvNeXt normalises with LayerNorm)")
    return model


def set_domain(model: nn.Module, domain: int | Tensor | None) -> None:
    """Set ``domain`` (an int, a (N,) integer tensor of per-sample ids, or None to unset) on every
    :class:`DomainSpecificBatchNorm` and :class:`MixStyle` in ``model``; all are checked before any is set."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers = [m for m in model.modules() if isinstance(m, DomainSpecificBatchNorm | MixStyle)]
    if not layers:
        raise ValueError(f"model must contain a DomainSpecificBatchNorm or MixStyle, {type(model).__name__} has none")
    for m in layers:
        _check_domain(domain, m.num_domains if isinstance(m, DomainSpecificBatchNorm) else None)
    for m in layers:
        m.set_domain(domain)


def domain_batchnorm_summary(model: nn.Module) -> dict[str, np.ndarray]:
    """Running means of every :class:`DomainSpecificBatchNorm` in ``model``: module name -> (num_domains, C)."""
    _check_model(model)
    out = {name: np.stack([bn.running_mean.detach().cpu().numpy() for bn in m.bns])
           for name, m in model.named_modules() if isinstance(m, DomainSpecificBatchNorm)}
    if not out:
        raise ValueError(f"model must contain a DomainSpecificBatchNorm, {type(model).__name__} has none")
    return out
