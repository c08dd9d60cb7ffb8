"""Training diagnostics for lesson 06: per-layer gradient norms, divergence and overfitting detectors, clipping.

The functions (:func:`grad_norms`, :func:`total_grad_norm`, and ``hrlib.diagnostics.curves.is_overfitting``) read
a model's ``.grad`` or a list of losses and work in any hand-written loop; the :class:`hrlib.train.Callback`
classes here wrap them for :func:`hrlib.train.fit` (and ``hrlib train``'s ``[diagnostics]`` table). Nothing here
registers hooks on the model: gradients are read after ``backward()``.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from hrlib._checks import check_axes, check_bool, check_float, check_int, check_model
from hrlib.diagnostics.curves import is_overfitting
from hrlib.train.history import Callback, TrainState

__all__ = ["DivergenceDetector", "DivergenceReport", "GradClipper", "GradNormMonitor", "OverfitDetector",
           "grad_norms", "total_grad_norm"]


def _layer_grads(model: nn.Module) -> dict[str, list[torch.Tensor]]:
    """Gradients grouped by the name of the module that owns the parameter, in model order; no grad: skipped."""
    groups: dict[str, list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            groups.setdefault(name.rpartition(".")[0] or name, []).append(p.grad.detach())
    return groups


def grad_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of the gradient of each layer. Call it after ``backward()`` (and after ``GradScaler.unscale_``
    under AMP).

    Args:
        model: the model whose ``.grad`` to read; parameters without a gradient are skipped.

    Returns:
        Module name (e.g. ``"features.0.0"``) -> sqrt of the sum of squares over its parameters' ``.grad``, in
        model order; a NaN/inf gradient gives a NaN/inf norm.

    Raises:
        TypeError: ``model`` is not a module.
    """
    groups = _layer_grads(check_model("model", model))
    if not groups:
        return {}
    sq = [sum(g.float().pow(2).sum() for g in grads) for grads in groups.values()]
    return dict(zip(groups, torch.stack(sq).sqrt().tolist(), strict=True))  # one device sync for all layers


def total_grad_norm(model: nn.Module) -> float:
    """L2 norm of all gradients together: what ``torch.nn.utils.clip_grad_norm_`` returns.

    Args:
        model: the model whose ``.grad`` to read.

    Returns:
        The norm (0.0 without gradients).

    Raises:
        TypeError: ``model`` is not a module.
    """
    grads = [p.grad.detach() for p in check_model("model", model).parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0) for g in grads]), 2.0))


def _first_nonfinite(model: nn.Module, norms: dict[str, float]) -> tuple[str, str] | None:
    """``(layer, "nan" or "inf")`` of the first layer in model order with a non-finite gradient value, or None.
    Only layers whose norm is non-finite are scanned (a finite norm means finite values)."""
    suspects = {k for k, v in norms.items() if not math.isfinite(v)}
    for layer, grads in _layer_grads(model).items():
        for g in grads if layer in suspects else ():
            if not bool(torch.isfinite(g).all()):
                return layer, "nan" if bool(torch.isnan(g).any()) else "inf"
    return None


class GradNormMonitor(Callback):
    """Record per-layer gradient norms every N optimizer steps: steps 1, 1 + N, 1 + 2N...

    ``steps``: the recorded steps; ``norms``: layer -> one norm per recorded step (NaN where a layer had no grad).
    With :func:`hrlib.train.fit` it records in ``on_after_backward``; in a plain loop call :meth:`record` after
    every ``backward()``. It only reads ``.grad``: no hooks, so no cost on the steps it skips.

    Args:
        every_n_steps: N, >= 1.
    """

    STATE_KEYS = ("steps", "norms")  # saved in hrlib train's checkpoints

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = check_int("every_n_steps", every_n_steps)
        self.steps: list[int] = []
        self.norms: dict[str, list[float]] = {}

    def record(self, model: nn.Module, step: int) -> bool:
        """Record ``model``'s per-layer norms if ``step`` is due.

        Args:
            model: the model, after ``backward()``.
            step: the optimizer step, >= 1.

        Returns:
            Whether it recorded.
        """
        step = check_int("step", step)
        if (step - 1) % self.every_n_steps:
            return False
        norms = grad_norms(model)
        for layer in norms:  # a layer first seen now: NaN for the earlier steps
            self.norms.setdefault(layer, [math.nan] * len(self.steps))
        for layer, values in self.norms.items():
            values.append(norms.get(layer, math.nan))
        self.steps.append(step)
        return True

    def on_after_backward(self, state: TrainState) -> None:
        self.record(state.model, state.step)

    def as_array(self) -> tuple[list[str], np.ndarray]:
        """The recorded norms as an array.

        Returns:
            The layer names and a ``(recorded steps, layers)`` float array of their norms.
        """
        layers = list(self.norms)
        values = np.array([self.norms[k] for k in layers], dtype=float).T.reshape(len(self.steps), len(layers))
        return layers, values

    def plot(self, ax: Axes | None = None) -> Figure:
        """Heatmap of log10 gradient norms, layers (rows, input first) x recorded steps; zero norms are blank.

        Args:
            ax: the axes to draw on (default: a new figure).

        Returns:
            The figure.

        Raises:
            ValueError: nothing recorded yet.
        """
        check_axes("ax", ax, allow_none=True)
        layers, values = self.as_array()
        if not self.steps or not layers:
            raise ValueError("GradNormMonitor has recorded no gradient norms yet: run fit() or call record() first")
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 1 + 0.25 * len(layers)))
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(values > 0, np.log10(values), np.nan)
        image = ax.imshow(logs.T, aspect="auto", interpolation="nearest", cmap="viridis")
        ticks = np.unique(np.linspace(0, len(self.steps) - 1, min(len(self.steps), 10)).round().astype(int))
        ax.set_xticks(ticks, [str(self.steps[i]) for i in ticks])
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("layer")
        ax.set_title("gradient L2 norm per layer")
        ax.figure.colorbar(image, ax=ax, label="log10 gradient norm")
        return ax.figure  # type: ignore[return-value]


@dataclass(frozen=True)
class DivergenceReport:
    """A problem a :class:`DivergenceDetector` saw.

    Args:
        step: the optimizer step.
        epoch: the epoch.
        kind: one of :data:`DivergenceDetector.KINDS`.
        loss: the step's loss.
        layer: the first layer (model order) with a non-finite gradient, else the one with the largest norm (None
            without gradients).
        message: one readable sentence.
    """

    step: int
    epoch: int
    kind: str
    loss: float
    layer: str | None
    message: str


class DivergenceDetector(Callback):
    """Flag the first NaN/inf loss, NaN/inf gradient, or loss spike; the first problem is kept in :attr:`report`.

    Each check reads all gradients: one device sync per step.

    Args:
        spike_factor: a loss above this (> 1) x the median of the recent finite losses is a spike (judged once 5
            are known).
        window: how many recent finite losses the median takes, >= 5.
        stop: set ``state.stop_training`` at the first problem (fit ends after the epoch).
        warn: warn about the first problem (``RuntimeWarning``).
    """

    KINDS = ("nan_loss", "inf_loss", "nan_grad", "inf_grad", "spike")
    STATE_KEYS = ("losses", "report")

    def __init__(self, spike_factor: float = 10.0, window: int = 20, stop: bool = True, warn: bool = True) -> None:
        self.spike_factor = check_float("spike_factor", spike_factor, 1.0, low_open=True)
        self.window, self.stop = check_int("window", window, 5), check_bool("stop", stop)
        self.warn = check_bool("warn", warn)
        self.losses: deque[float] = deque(maxlen=self.window)
        self.report: DivergenceReport | None = None

    def check(self, model: nn.Module, loss: float | torch.Tensor, step: int, epoch: int = 0) -> DivergenceReport | None:
        """Check one step, after ``backward()``; the first problem is kept in ``report``.

        Args:
            model: the model, with this step's gradients.
            loss: the step's loss (a float or a 0-d tensor).
            step: the optimizer step, >= 0.
            epoch: the epoch, >= 0.

        Returns:
            The step's problem, or None.

        Raises:
            TypeError, ValueError: a malformed argument.
        """
        if not isinstance(loss, int | float | torch.Tensor) or isinstance(loss, bool):
            raise TypeError(f"loss must be a float or a 0-d tensor, got {type(loss).__name__}")
        loss, step, epoch = float(loss), check_int("step", step, 0), check_int("epoch", epoch, 0)
        norms = grad_norms(model)
        bad = _first_nonfinite(model, norms)
        largest = max(norms, key=lambda k: norms[k]) if norms else None
        median = float(np.median(self.losses)) if len(self.losses) >= 5 else math.nan
        where = f"step {step} (epoch {epoch})"
        if not math.isfinite(loss):
            kind = "nan_loss" if math.isnan(loss) else "inf_loss"
            layer = bad[0] if bad else largest
            message = f"{where}: the loss is {loss}; check the lr, the inputs and the gradients of {layer}"
        elif bad is not None:
            kind, layer = f"{bad[1]}_grad", bad[0]
            message = f"{where}: {bad[1]} gradient in layer {layer} (loss {loss:.4g}); lower the lr or clip"
        elif loss > self.spike_factor * median:
            kind, layer, ratio = "spike", largest, loss / median if median > 0 else math.inf
            message = (f"{where}: loss {loss:.4g} is {ratio:.1f} x the running median {median:.4g}; "
                       f"largest gradient norm in {layer}: lower the lr or clip")
        else:
            self.losses.append(loss)
            return None
        if math.isfinite(loss):
            self.losses.append(loss)
        report = DivergenceReport(step, epoch, kind, loss, layer, message)
        if self.report is None:
            self.report = report
            if self.warn:
                warnings.warn(message, RuntimeWarning, stacklevel=2)
        return report

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()``: the recent losses and the first report.

        Args:
            state: from :meth:`state_dict`.
        """
        super().load_state_dict(state)
        self.report = None if state["report"] is None else DivergenceReport(**state["report"])

    def on_fit_start(self, state: TrainState) -> None:
        self.losses.clear()
        self.report = None

    def on_after_backward(self, state: TrainState) -> None:
        if self.check(state.model, state.loss, state.step, state.epoch) is not None and self.stop:
            state.stop_training = True


class GradClipper(Callback):
    """Clip the total gradient norm with ``torch.nn.utils.clip_grad_norm_`` before each step.

    Order matters under AMP: unscale first, then clip (clipping scaled gradients compares ``max_norm`` with norms
    inflated by the loss scale); :func:`hrlib.train.fit` unscales before ``on_after_backward``. Keeps the pre-clip
    norms (``norms``) and adds ``clip_rate`` (fraction of the epoch's steps clipped, 0-1) and
    ``grad_norm_median`` (pre-clip) to each epoch's row.

    Args:
        max_norm: the largest total gradient norm allowed, > 0.
    """

    STATE_KEYS = ("norms", "clipped", "_epoch_start", "_epoch_clipped")

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = check_float("max_norm", max_norm, 0.0, low_open=True)
        self.norms: list[float] = []
        self.clipped = 0
        self._epoch_start = 0
        self._epoch_clipped = 0

    def clip(self, model: nn.Module) -> float:
        """Clip ``model``'s gradients in place; call it after ``backward()`` (and ``unscale_`` under AMP).

        Args:
            model: the model.

        Returns:
            The total norm before clipping.

        Raises:
            TypeError: ``model`` is not a module.
        """
        norm = float(torch.nn.utils.clip_grad_norm_(check_model("model", model).parameters(), self.max_norm))
        self.norms.append(norm)
        if norm > self.max_norm:
            self.clipped += 1
            self._epoch_clipped += 1
        return norm

    def on_fit_start(self, state: TrainState) -> None:
        self.norms, self.clipped = [], 0

    def on_epoch_start(self, state: TrainState) -> None:
        self._epoch_start, self._epoch_clipped = len(self.norms), 0

    def on_after_backward(self, state: TrainState) -> None:
        self.clip(state.model)

    def on_epoch_end(self, state: TrainState) -> None:
        epoch_norms = self.norms[self._epoch_start:]
        state.row["clip_rate"] = self._epoch_clipped / len(epoch_norms) if epoch_norms else math.nan
        state.row["grad_norm_median"] = float(np.median(epoch_norms)) if epoch_norms else math.nan


class OverfitDetector(Callback):
    """Flag overfitting (:func:`is_overfitting`) at each epoch with a finite ``val_loss``.

    Adds ``overfitting`` (bool) to those rows and keeps the first flagged epoch in ``flagged_epoch``. In a plain
    loop call :meth:`update` after each evaluation.

    Args:
        patience, min_delta: as in :func:`is_overfitting`.
        stop: end training at the first flagged epoch.
    """

    STATE_KEYS = ("train_losses", "val_losses", "flagged_epoch")

    def __init__(self, patience: int = 3, min_delta: float = 0.0, stop: bool = False) -> None:
        self.patience = check_int("patience", patience)
        self.min_delta = check_float("min_delta", min_delta, 0.0)
        self.stop = check_bool("stop", stop)
        self.train_losses: list[float] = []
        self.val_losses: list[float] = []
        self.flagged_epoch: int | None = None

    def update(self, epoch: int, train_loss: float, val_loss: float) -> bool:
        """Add one evaluation.

        Args:
            epoch: the epoch, >= 0.
            train_loss: its training loss.
            val_loss: its validation loss, finite (skip epochs without validation).

        Returns:
            Whether the run overfits now (``flagged_epoch`` keeps the first such epoch).

        Raises:
            TypeError, ValueError: a malformed argument.
        """
        epoch = check_int("epoch", epoch, 0)
        if isinstance(train_loss, bool) or not isinstance(train_loss, int | float | np.integer | np.floating
                                                          | torch.Tensor):
            raise TypeError(f"train_loss must be a number, got {type(train_loss).__name__} {train_loss!r}")
        val_loss = check_float("val_loss", float(val_loss) if isinstance(val_loss, torch.Tensor) else val_loss,
                               hint="an evaluated epoch's loss")
        self.train_losses.append(float(train_loss))
        self.val_losses.append(val_loss)
        flagged = is_overfitting(self.train_losses, self.val_losses, self.patience, self.min_delta)
        if flagged and self.flagged_epoch is None:
            self.flagged_epoch = epoch
        return flagged

    def on_fit_start(self, state: TrainState) -> None:
        self.train_losses, self.val_losses, self.flagged_epoch = [], [], None

    def on_epoch_end(self, state: TrainState) -> None:
        val_loss = state.row.get("val_loss", math.nan)
        if not math.isfinite(val_loss):
            return
        state.row["overfitting"] = self.update(state.epoch, state.row["train_loss"], val_loss)
        if state.row["overfitting"] and self.stop:
            state.stop_training = True
