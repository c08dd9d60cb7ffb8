"""Checks for lesson 06, "training diagnostics": per-layer gradient norms, a divergence detector, overfitting.

The references are hrlib's own: :func:`hrlib.diagnostics.monitors.grad_norms`, the rule of
:class:`hrlib.diagnostics.monitors.DivergenceDetector` and :func:`hrlib.diagnostics.curves.is_overfitting`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hrlib.diagnostics.curves import is_overfitting
from hrlib.diagnostics.monitors import grad_norms
from hrlib.exercises import NotYet, call_answer, describe_value, register

# ----------------------------------------------------------------------------------------- layer grad norms


def _grad_models() -> list[tuple[str, nn.Module]]:
    """Small models with gradients from one backward pass; one has a frozen layer, one an unused layer."""
    torch.manual_seed(6)
    mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    frozen = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    frozen[0].requires_grad_(False)
    unused = nn.ModuleDict({"body": nn.Linear(5, 3), "spare": nn.Linear(5, 3)})
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 1])
    F.cross_entropy(mlp(x), y).backward()
    F.cross_entropy(cnn(torch.randn(4, 3, 8, 8)), y).backward()
    F.cross_entropy(frozen(x), y).backward()
    F.cross_entropy(unused["body"](x), y).backward()
    return [("an MLP", mlp), ("a small CNN with BatchNorm", cnn), ("an MLP with a frozen first layer", frozen),
            ("a model with an unused layer", unused)]


def _norms_hint(model: nn.Module, got: dict[str, float]) -> str:
    if any(k.endswith((".weight", ".bias")) for k in got):
        return "group parameters by the module that owns them: the layer of 'features.0.weight' is 'features.0'"
    sums = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            layer = name.rpartition(".")[0]
            sums[layer] = sums.get(layer, 0.0) + float(p.grad.norm())
    if all(math.isclose(got.get(k, math.nan), v, rel_tol=1e-4) for k, v in sums.items()):
        return "a layer's norm is sqrt(sum of squares over all its parameters), not the sum of their norms"
    return "the L2 norm of a layer: sqrt of the sum of grad ** 2 over all of its parameters' gradients"


@register("06.layer_grad_norms")
def check_layer_grad_norms(answer: Callable[..., Any]) -> str:
    """Check a learner's per-layer gradient norms (parameters without a gradient skipped).

    Args:
        answer: ``answer(model) -> {layer name: L2 norm of that layer's gradients}``.

    Returns:
        The PASS message.

    Raises:
        NotYet: a wrong norm, or a missing or extra layer (with a hint).
    """
    name = getattr(answer, "__name__", "layer_grad_norms")
    cases = _grad_models()
    for what, model in cases:
        shown = f"{name}(<{what}>)"
        got = call_answer(answer, shown, model)
        if got is None:
            raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
        if not isinstance(got, dict):
            raise NotYet(f"{shown} returned {describe_value(got)}; expected a dict {{layer name: float}}")
        expected = grad_norms(model)
        if set(got) != set(expected):
            extra, missing = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
            hint = (_norms_hint(model, got) if any(k.endswith((".weight", ".bias")) for k in got) else
                    "skip parameters whose .grad is None (frozen or unused layers have no gradient)" if extra else
                    "every module that owns a parameter with a gradient is a layer")
            raise NotYet(f"{shown}: layer names {sorted(got)} but expected {sorted(expected)} "
                         f"(extra {extra}, missing {missing}). Hint: {hint}")
        for layer, value in expected.items():
            v = got[layer]
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise NotYet(f"{shown}[{layer!r}] is {describe_value(v)}; expected a float")
            if not math.isclose(float(v), value, rel_tol=1e-4, abs_tol=1e-7):
                raise NotYet(f"{shown}[{layer!r}] = {float(v):.5g} but expected {value:.5g}. "
                             f"Hint: {_norms_hint(model, got)}")
    return f"one L2 norm per layer, frozen and unused layers skipped ({len(cases)} cases)"


# ----------------------------------------------------------------------------------------- divergence


def reference_first_divergence(losses: Sequence[float], factor: float = 10.0, window: int = 20) -> int | None:
    """The reference answer: where a run first diverges.

    Args:
        losses: one loss per step.
        factor: a loss above this x the median of the recent finite losses is a spike.
        window: how many recent finite losses the median takes.

    Returns:
        The index of the first non-finite loss, or of the first spike (judged once 5 losses are known); None if
        there is none.
    """
    recent: list[float] = []
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            return i
        if len(recent) >= 5 and loss > factor * float(np.median(recent[-window:])):
            return i
        recent.append(loss)
    return None


def _decay(n: int, start: float = 2.0, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(start * 0.97**i * (1 + 0.1 * rng.standard_normal())) for i in range(n)]


DIVERGENCE_CASES: tuple[tuple[str, list[float]], ...] = (
    ("a clean run", _decay(40)),
    ("a NaN at step 17", [*_decay(17), math.nan, 1.0, 1.0]),
    ("an inf at step 2 (before 5 losses are known)", [1.0, 0.9, math.inf, 0.8]),
    ("a spike of 30x at step 25", [*_decay(25, seed=1), 30 * _decay(25, seed=1)[-1], *_decay(5, 0.5)]),
    ("a big loss at step 3 (too early to judge)", [1.0, 1.1, 0.9, 50.0, 0.9, 0.8, 0.8, 0.8, 0.7]),
    ("a high start, then 10x the recent median at step 44", [*[20.0] * 24, *[0.3] * 20, 3.5, 0.3]),
    ("a jump of 8x (below the factor of 10)", [*_decay(12), 8 * _decay(12)[-1], *_decay(3, 1.0)]),
)


def _divergence_hint(losses: list[float], got: object, expected: int | None) -> str:
    finite = [v for v in losses if math.isfinite(v)]
    if isinstance(got, int) and expected is not None and got == expected - 1:
        return "return the index of the diverging loss itself, not of the one before it"
    if expected is not None and not math.isfinite(losses[expected]):
        return "a NaN or inf loss is divergence at once: check math.isfinite(loss) first"
    if isinstance(got, int) and got < 5 and len(finite) > 5:
        return "judge spikes only once at least 5 finite losses are known: an early loss has no baseline yet"
    if expected is None and isinstance(got, int):
        return ("a spike is a loss above `factor` x the median of the recent losses (the median ignores one "
                "outlier, a mean does not); smaller jumps are ordinary noise")
    return "compare with factor x the median of the last `window` finite losses, not of all losses so far"


def _index_or_none(shown: str, got: object) -> int | None:
    """``got`` as a Python int (NumPy ints accepted) or None; anything else is rejected with a clear message."""
    if isinstance(got, np.integer):
        return int(got)
    if got is not None and (isinstance(got, bool) or not isinstance(got, int)):
        raise NotYet(f"{shown} returned {describe_value(got)}; expected an int index or None")
    return got


@register("06.first_divergence")
def check_first_divergence(answer: Callable[..., Any]) -> str:
    """Check a learner's divergence rule: the step where a run first diverges.

    Args:
        answer: ``answer(losses, factor=10.0, window=20) -> int | None``.

    Returns:
        The PASS message, naming the kinds of divergence.

    Raises:
        NotYet: a wrong step on one of the runs, with a hint.
    """
    name = getattr(answer, "__name__", "first_divergence")
    for what, losses in DIVERGENCE_CASES:
        shown = f"{name}(<{what}>)"
        got = call_answer(answer, shown, list(losses))
        expected = reference_first_divergence(losses)
        got = _index_or_none(shown, got)
        if got != expected:
            raise NotYet(f"{shown} returned {got} but expected {expected}. "
                         f"Hint: {_divergence_hint(losses, got, expected)}")
    return f"NaN/inf and spikes against the recent median ({len(DIVERGENCE_CASES)} cases)"


# ----------------------------------------------------------------------------------------- overfitting

OVERFIT_CASES: tuple[tuple[str, list[float], list[float], int], ...] = (
    ("val loss rises from epoch 4", [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
     [1.0, 0.85, 0.75, 0.7, 0.72, 0.75, 0.8, 0.85], 3),
    ("both improving", [1.0, 0.8, 0.6, 0.5, 0.4, 0.3], [1.0, 0.9, 0.8, 0.7, 0.65, 0.6], 3),
    ("val flat, train falling", [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8], 2),
    ("val noisy but a new best at the end", [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
     [0.9, 0.8, 0.85, 0.82, 0.81, 0.83, 0.79], 3),
    ("both stalled (underfitting, not overfitting)", [0.9, 0.7, 0.7, 0.7, 0.71, 0.7],
     [0.9, 0.8, 0.8, 0.82, 0.81, 0.8], 2),
    ("patience 1", [1.0, 0.8, 0.6, 0.5], [1.0, 0.8, 0.81, 0.7], 1),
    ("an early bump in val, then steady progress", [1.0, 0.8, 0.6, 0.5, 0.4, 0.35], [0.8, 0.9, 0.7, 0.65, 0.6, 0.58],
     3),
)


def reference_overfit_epoch(train_losses: Sequence[float], val_losses: Sequence[float], patience: int) -> int | None:
    """The reference answer: the first evaluation flagged as overfitting.

    Args:
        train_losses: one training loss per evaluation.
        val_losses: one validation loss per evaluation.
        patience: as in :func:`is_overfitting`.

    Returns:
        The first index ``e`` at which :func:`is_overfitting` holds for the losses up to ``e``, or None.
    """
    for e in range(len(val_losses)):
        if is_overfitting(train_losses[: e + 1], val_losses[: e + 1], patience):
            return e
    return None


def _overfit_hint(train: list[float], val: list[float], patience: int, got: object) -> str:
    if isinstance(got, int) and 0 <= got < len(val) and not train[got] < train[max(got - patience, 0)]:
        return "overfitting needs the training loss to keep falling; when both stall the model underfits"
    if isinstance(got, int) and got < patience:
        return "you need more than `patience` evaluations before anything can be judged"
    return ("compare the best val loss of the last `patience` evaluations with the best one before them "
            "(not with the previous value: a noisy val loss goes up and down)")


@register("06.overfit_epoch")
def check_overfit_epoch(answer: Callable[..., Any]) -> str:
    """Check a learner's overfitting rule: the first evaluation flagged.

    Args:
        answer: ``answer(train_losses, val_losses, patience) -> int | None``.

    Returns:
        The PASS message.

    Raises:
        NotYet: a wrong epoch on one of the curves, with a hint.
    """
    name = getattr(answer, "__name__", "overfit_epoch")
    for what, train, val, patience in OVERFIT_CASES:
        shown = f"{name}(<{what}>, patience={patience})"
        got = call_answer(answer, shown, list(train), list(val), patience)
        expected = reference_overfit_epoch(train, val, patience)
        got = _index_or_none(shown, got)
        if got != expected:
            raise NotYet(f"{shown} returned {got} but expected {expected}. "
                         f"Hint: {_overfit_hint(train, val, patience, got)}")
    return f"train falling while val stalls for `patience` evaluations ({len(OVERFIT_CASES)} cases)"
