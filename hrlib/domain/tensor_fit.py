"""Train and score a classifier on in-memory tensors (lesson 04's harness), through hrlib's one epoch loop.

:func:`fit_tensors` runs every epoch through ``hrlib.train.engine.train_epoch`` (AdamW, OneCycle from
``hrlib.train.engine.lr_scheduler``) and only supplies the batches: shuffled index batches (one domain per batch for
a model with per-domain BatchNorm), random flips as the only augmentation, the domains set on the model's MixStyle
and DSBN layers, and unlabeled target images appended for a :class:`hrlib.domain.style.StyleSwap`.
:func:`predict` and :func:`accuracy` score a model in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hrlib._checks import check_batch, check_callable, check_float, check_int, check_model
from hrlib.domain.norm import BatchInstanceNorm, DomainSpecificBatchNorm, clip_gates_, set_domain
from hrlib.domain.style import StyleSwap
from hrlib.models import eval_mode
from hrlib.train.engine import lr_scheduler, train_epoch
from hrlib.train.history import History, TrainState

__all__ = ["accuracy", "fit_tensors", "predict"]


def _check_labels(name: str, y: object, n: int | None, model: nn.Module) -> Tensor:
    """A (n,) integer tensor of class indices in [0, the model's logits) (when its last layer is an nn.Linear)."""
    if not isinstance(y, Tensor) or y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool or (
            n is not None and len(y) != n):
        raise ValueError(f"{name} must be a ({'N' if n is None else n},) integer tensor of class indices (one per "
                         f"image of x), got {type(y).__name__} {getattr(y, 'dtype', '')} with shape "
                         f"{tuple(getattr(y, 'shape', ()))}")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    high = linears[-1].out_features if linears else None
    if len(y) and (int(y.min()) < 0 or (high is not None and int(y.max()) >= high)):
        raise ValueError(f"{name} must be class indices in [0, {high}) (the model's logits), got values from "
                         f"{int(y.min())} to {int(y.max())}")
    return y


def _check_inputs(model: nn.Module, x: object, y: object, domains: object, style: object
                  ) -> tuple[Tensor | Callable[[int], Tensor], Tensor, Tensor | None, Tensor | None]:
    """``x`` (a batch or a callable), ``y``, ``domains`` and ``style`` of :func:`fit_tensors`, checked."""
    if not callable(x):
        x = check_batch("x", x, channels=3)
    y = _check_labels("y", y, None if callable(x) else len(x), model)
    if domains is not None and (not isinstance(domains, Tensor) or domains.shape != y.shape
                                or domains.dtype.is_floating_point or domains.dtype == torch.bool):
        raise ValueError(f"domains must be None or a ({len(y)},) integer tensor of domain ids (one per label), got "
                         f"{type(domains).__name__} {getattr(domains, 'dtype', '')} with shape "
                         f"{tuple(getattr(domains, 'shape', ()))}")
    if style is not None:
        style = check_batch("style", style, channels=3)
        if not callable(x) and style.shape[1:] != x.shape[1:]:
            raise ValueError(f"style must have the images' shape {tuple(x.shape[1:])}, got {tuple(style.shape[1:])}")
    return x, y, domains, style  # type: ignore[return-value]


def _batches(n: int, batch_size: int, gen: torch.Generator, domains: Tensor | None) -> list[Tensor]:
    """Shuffled index batches; with ``domains``, each batch holds one domain only (the batches in random order)."""
    if domains is None:
        return list(torch.randperm(n, generator=gen).split(batch_size))
    out = []
    for d in domains.unique().tolist():
        idx = (domains == d).nonzero(as_tuple=True)[0]
        out += list(idx[torch.randperm(len(idx), generator=gen)].split(batch_size))
    return [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]


@dataclass
class _Batches:
    """The batches of a :func:`fit_tensors` run; every draw comes from ``gen``, per epoch in this order: the index
    batches (:func:`_batches`), then per batch the flips (``rand(B, 2)``) and the style samples (``randint``)."""

    model: nn.Module
    y: Tensor
    gen: torch.Generator
    batch_size: int
    domains: Tensor | None  # per-sample ids on the CPU: setting them needs no device sync
    one_domain: bool  # per-domain BatchNorm: each batch from one domain
    style: Tensor | None
    swap: StyleSwap | None

    def epoch(self, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield the epoch's ``(images, labels)`` batches of ``x``, the model's domains set for each."""
        for idx in _batches(len(self.y), self.batch_size, self.gen, self.domains if self.one_domain else None):
            xb = x[idx]
            flip = (torch.rand(len(idx), 2, generator=self.gen) < 0.5).to(xb.device)
            xb = torch.where(flip[:, 0, None, None, None], xb.flip(3), xb)
            xb = torch.where(flip[:, 1, None, None, None], xb.flip(2), xb)
            if self.domains is not None:
                set_domain(self.model, int(self.domains[idx[0]]) if self.one_domain else self.domains[idx])
            if self.swap is not None and self.style is not None:
                self.swap.n_style = len(idx)
                xb = torch.cat([xb, self.style[torch.randint(len(self.style), (len(idx),), generator=self.gen)]])
            yield xb, self.y[idx]


def fit_tensors(model: nn.Module, x: Tensor | Callable[[int], Tensor], y: Tensor, *, num_epochs: int, seed: int,
                domains: Tensor | None = None, style: Tensor | None = None, batch_size: int = 16,
                lr: float = 3e-3, on_epoch: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Train ``model`` with AdamW + OneCycle on in-memory tensors, random flips as the only augmentation.

    Each epoch is one ``hrlib.train.engine.train_epoch`` on the device of ``y``. The batch draws come from a
    generator seeded with ``seed``, per epoch in this order: the shuffled index batches (``randperm``), then per
    batch of B the flips (``rand(B, 2)``) and the style samples (``randint(M, (B,))``); the model's random layers
    (MixStyle, StyleSwap) draw from their own generators. The gates of BatchInstanceNorm layers are clipped to
    [0, 1] after every optimizer step, as the paper does.

    Args:
        model: the classifier, on the device of ``y``.
        x: (N, 3, H, W) normalized images, or ``x(epoch)`` returning them (e.g. a different augmented variant each
            epoch).
        y: (N,) integer labels in [0, the model's logits).
        num_epochs: passes over the data, >= 1.
        seed: seeds the batch order, the flips and the style samples, >= 0.
        domains: (N,) integer domain ids, set per batch on the model's MixStyle layers (mixed batches) or, if it has
            DomainSpecificBatchNorm layers, used to draw one-domain batches (as DSBN is trained).
        style: (M, 3, H, W) unlabeled target images, B of them appended to each batch of B for a StyleSwap layer.
        batch_size: images per step, >= 1.
        lr: the peak learning rate of OneCycle, > 0.
        on_epoch: ``on_epoch(epoch, model)``, called after each epoch.

    Returns:
        ``model``, in eval mode.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """
    model = check_model("model", model)
    x, y, domains, style = _check_inputs(model, x, y, domains, style)
    num_epochs, batch_size = check_int("num_epochs", num_epochs), check_int("batch_size", batch_size)
    lr, seed = check_float("lr", lr, 0.0, low_open=True), check_int("seed", seed, 0)
    check_callable("on_epoch", on_epoch, allow_none=True, hint="on_epoch(epoch, model)")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    if any(isinstance(m, BatchInstanceNorm) for m in model.modules()):
        opt.register_step_post_hook(lambda *_: clip_gates_(model))
    swap = next((m for m in model.modules() if isinstance(m, StyleSwap)), None)
    one_domain = any(isinstance(m, DomainSpecificBatchNorm) for m in model.modules())
    batches = _Batches(model, y, torch.Generator().manual_seed(seed), batch_size,
                       None if domains is None else domains.cpu(), one_domain, style, swap)
    steps = len(_batches(len(y), batch_size, torch.Generator(), batches.domains if one_domain else None))
    scheduler = lr_scheduler(opt, "onecycle", steps, num_epochs)
    state = TrainState(model, opt, None, History(), num_epochs)
    for epoch in range(num_epochs):
        state.epoch = epoch
        train_epoch(state, batches.epoch(x(epoch) if callable(x) else x), device=y.device, scheduler=scheduler)
        if on_epoch is not None:
            on_epoch(epoch, model)
    if swap is not None:
        swap.n_style = 0
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, *, domain: int | None = None) -> Tensor:
    """The class ``model`` predicts for each image of ``x``, every module in eval mode (each one's mode restored).

    Args:
        model: the classifier, on the device of ``x``.
        x: (N, 3, H, W) normalized images, N >= 1.
        domain: the domain set on the model's DomainSpecificBatchNorm layers first (None: leave them as they are).

    Returns:
        (N,) class indices, on the device of ``x``.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """
    model, x = check_model("model", model), check_batch("x", x, channels=3)
    domain = None if domain is None else check_int("domain", domain, 0)
    with eval_mode(model):
        if domain is not None:
            set_domain(model, domain)
        return torch.cat([model(x[i:i + 128]).argmax(1) for i in range(0, len(x), 128)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, domain: int | None = None) -> float:
    """The share of ``x`` that ``model`` classifies as ``y`` (:func:`predict`'s classes against ``y``).

    Args:
        model: the classifier, on the device of ``x``.
        x: (N, 3, H, W) normalized images, N >= 1.
        y: (N,) integer labels.
        domain: the domain set on the model's DomainSpecificBatchNorm layers first (None: leave them as they are).

    Returns:
        The accuracy, 0-1.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """
    model, x = check_model("model", model), check_batch("x", x, channels=3)
    y = _check_labels("y", y, len(x), model)
    return float((predict(model, x, domain=domain) == y).float().mean())
