"""Normalization layers for domain shift (lesson 04): Batch-Instance Norm and per-domain BatchNorm.

:class:`BatchInstanceNorm` learns per channel how much of each sample's own feature statistics to remove (Nam & Kim,
NeurIPS 2018); :class:`DomainSpecificBatchNorm` keeps one set of BatchNorm statistics per domain (Chang et al., CVPR
2019). :func:`convert_batchnorm` and :func:`set_domain` apply them (and ``hrlib.domain.style.MixStyle``'s domain ids)
to a model in place. Arguments are checked in the constructors and helpers; the ``forward`` passes check nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrlib._checks import check_bool, check_float, check_int, check_model
from hrlib.domain._stats import check_domain
from hrlib.domain.style import MixStyle

__all__ = ["BatchInstanceNorm", "DomainSpecificBatchNorm", "clip_gates_", "convert_batchnorm",
           "domain_batchnorm_summary", "set_domain"]

CONVERT_KINDS = ("bin", "dsbn")


def _check_momentum(momentum: object) -> float | None:
    return None if momentum is None else check_float("momentum", momentum, 0.0, 1.0, hint="None: cumulative average")


class BatchInstanceNorm(nn.Module):
    """Batch-Instance Normalization (Nam & Kim, NeurIPS 2018): ``(rho * BN(x) + (1 - rho) * IN(x)) * weight + bias``.

    ``rho`` (per channel, learnable, initially 1: pure BatchNorm) is kept in [0, 1] as in the paper, which clips it
    after each optimizer step: call :func:`clip_gates_` then, e.g. as a hook,
    ``optimizer.register_step_post_hook(lambda *_: clip_gates_(model))`` (lesson 04's harness does). The forward
    uses ``rho`` clamped to [0, 1] out of place (no in-place change, no device sync; the gradient passes as if it
    were clipped), so the gate it applies is valid even between a step and the clip. BN: batch statistics in
    training, running ones in eval; IN: each sample's statistics, always.

    Args:
        num_features: channels C, >= 1.
        eps: added to the variances, > 0.
        momentum: running-statistics update in [0, 1] (None: cumulative average).
        track_running_stats: as in ``nn.BatchNorm2d``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features)
        self.eps = check_float("eps", eps, 0.0, low_open=True)
        self.bn = nn.BatchNorm2d(self.num_features, self.eps, _check_momentum(momentum), affine=False,
                                 track_running_stats=check_bool("track_running_stats", track_running_stats))
        self.rho = nn.Parameter(torch.ones(self.num_features))
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))

    def forward(self, x: Tensor) -> Tensor:
        """Return the normalised ``x`` (N, C, H, W) with H * W >= 2, same shape."""
        # the gate clamped to [0, 1] with the gradient of the identity (a plain clamp would stop the gradient at the
        # bounds, where rho starts): exactly rho when it is in range, as after clip_gates_
        rho = (self.rho + (self.rho.clamp(0.0, 1.0) - self.rho).detach()).view(1, -1, 1, 1)
        out = rho * self.bn(x) + (1 - rho) * F.instance_norm(x, eps=self.eps)
        return out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def clip_gates_(model: nn.Module) -> nn.Module:
    """Clip the gate ``rho`` of every :class:`BatchInstanceNorm` in ``model`` to [0, 1], in place.

    Call it after each optimizer step, as the paper does (e.g. from ``optimizer.register_step_post_hook``).

    Args:
        model: the module whose BIN layers are clipped (one without any is left as it is).

    Returns:
        ``model``.
    """
    check_model("model", model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BatchInstanceNorm):
                m.rho.clamp_(0.0, 1.0)
    return model


class DomainSpecificBatchNorm(nn.Module):
    """Domain-specific BatchNorm (Chang et al., CVPR 2019): one ``nn.BatchNorm2d`` (statistics and affine) per domain.

    The domain must be set before a forward (:meth:`set_domain` or :func:`set_domain`; else ``RuntimeError``): an
    int routes the whole batch, a (N,) tensor of ids routes each sub-batch through its domain's BN and reassembles
    the batch in the original order. ``bns[d]``: domain ``d``'s BatchNorm2d.

    Args:
        num_features: channels C, >= 1.
        num_domains: domains, >= 1.
        eps: added to the variances, > 0.
        momentum: running-statistics update in [0, 1] (None: cumulative average).
        affine: a learnable weight and bias per domain, as in ``nn.BatchNorm2d``.
    """

    def __init__(self, num_features: int, num_domains: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features)
        self.num_domains = check_int("num_domains", num_domains)
        eps, momentum = check_float("eps", eps, 0.0, low_open=True), _check_momentum(momentum)
        affine = check_bool("affine", affine)
        self.bns = nn.ModuleList(nn.BatchNorm2d(self.num_features, eps, momentum, affine)
                                 for _ in range(self.num_domains))
        self.domain: int | Tensor | None = None

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d, num_domains: int) -> DomainSpecificBatchNorm:
        """A DSBN whose every domain starts as a copy of ``bn`` (weights, running statistics, settings).

        Args:
            bn: the BatchNorm to copy.
            num_domains: domains, >= 1.

        Returns:
            The new layer, in ``bn``'s train/eval mode.
        """
        if not isinstance(bn, nn.BatchNorm2d):
            raise TypeError(f"bn must be an nn.BatchNorm2d, got {type(bn).__name__}")
        new = cls(bn.num_features, num_domains, bn.eps, bn.momentum, bn.affine)
        new.bns = nn.ModuleList(copy.deepcopy(bn) for _ in range(new.num_domains))
        return new.train(bn.training)

    def set_domain(self, domain: int | Tensor | None) -> None:
        """Set the domain of the next batches.

        Args:
            domain: an int in 0..num_domains-1, a (N,) integer tensor of per-sample ids (kept on the CPU), or None.
        """
        self.domain = check_domain(domain, self.num_domains)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` (N, C, H, W) normalised by its domain's (or each sample's domain's) BatchNorm."""
        if self.domain is None:
            raise RuntimeError("domain is not set: call set_domain(d) (an int, or a (N,) tensor of per-sample ids "
                               f"in 0..{self.num_domains - 1}) before the forward pass")
        if isinstance(self.domain, int):
            return self.bns[self.domain](x)
        ids = self.domain  # on the CPU (set_domain): the routing needs no device sync
        if ids.numel() != x.shape[0]:
            raise ValueError(f"domain ids must be one per sample of x: {ids.numel()} ids were set, x has "
                             f"{x.shape[0]} samples")
        parts, order = [], []
        for d in ids.unique().tolist():
            idx = (ids == d).nonzero(as_tuple=True)[0].to(x.device)
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

    Args:
        model: the model to convert (or a single ``nn.BatchNorm2d``).
        kind: ``"bin"`` (:class:`BatchInstanceNorm`, rho = 1: the same output until rho moves) or ``"dsbn"``
            (:class:`DomainSpecificBatchNorm`, every domain a copy of the BN; set the domain before a forward).
        num_domains: required (>= 1) for ``"dsbn"``, None for ``"bin"``.

    Returns:
        ``model`` (the replacement if ``model`` is itself a BatchNorm2d).

    Raises:
        TypeError, ValueError: a bad argument, or a model without any ``nn.BatchNorm2d``.
    """
    check_model("model", model)
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
    """Set ``domain`` on every :class:`DomainSpecificBatchNorm` and ``MixStyle`` in ``model``.

    All layers are checked before any is set. Pass a CPU tensor of ids to keep the call free of device syncs.

    Args:
        model: a model with at least one such layer.
        domain: an int, a (N,) integer tensor of per-sample ids, or None to unset.

    Raises:
        TypeError, ValueError: a bad model or domain (an id out of a DSBN's range).
    """
    check_model("model", model)
    layers = [m for m in model.modules() if isinstance(m, DomainSpecificBatchNorm | MixStyle)]
    if not layers:
        raise ValueError(f"model must contain a DomainSpecificBatchNorm or MixStyle, {type(model).__name__} has none")
    for m in layers:
        check_domain(domain, m.num_domains if isinstance(m, DomainSpecificBatchNorm) else None)
    for m in layers:
        m.set_domain(domain)


def domain_batchnorm_summary(model: nn.Module) -> dict[str, np.ndarray]:
    """The running means of every :class:`DomainSpecificBatchNorm` in ``model``.

    Args:
        model: a model with at least one DSBN.

    Returns:
        Module name -> (num_domains, C) array of running means.
    """
    check_model("model", model)
    out = {name: np.stack([bn.running_mean.detach().cpu().numpy() for bn in m.bns])
           for name, m in model.named_modules() if isinstance(m, DomainSpecificBatchNorm)}
    if not out:
        raise ValueError(f"model must contain a DomainSpecificBatchNorm, {type(model).__name__} has none")
    return out
