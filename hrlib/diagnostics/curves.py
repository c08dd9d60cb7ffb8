"""Reading training curves in lesson 06: overfitting, the learning-rate schedule, live loss and accuracy curves.

:func:`is_overfitting` judges a list of losses (``hrlib.diagnostics.monitors.OverfitDetector`` wraps it for
:func:`hrlib.train.fit`); :func:`plot_lr` draws a finished :class:`hrlib.train.History`; :class:`LivePlot` is a
:func:`hrlib.train.fit` callback that redraws the curves after every epoch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hrlib._checks import check_axes, check_bool, check_float, check_int
from hrlib.train.history import Callback, History, TrainState

__all__ = ["LivePlot", "is_overfitting", "plot_lr"]


def _check_losses(name: str, values: object) -> Sequence[float]:
    """A sequence of numbers (NaN allowed: a diverged epoch's loss), or raise naming ``name``."""
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray) or any(
            isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) for v in values):
        raise TypeError(f"{name} must be a sequence of losses (numbers, one per evaluation), got {values!r:.80}")
    return values  # type: ignore[return-value]


def is_overfitting(train_losses: Sequence[float], val_losses: Sequence[float], patience: int = 3,
                   min_delta: float = 0.0) -> bool:
    """Whether, over the last ``patience`` evaluations, the train loss fell while no val loss beat the best before
    them by more than ``min_delta``.

    Args:
        train_losses: one training loss per evaluation, oldest first.
        val_losses: one validation loss per evaluation, oldest first.
        patience: how many recent evaluations to judge, >= 1.
        min_delta: the smallest improvement that counts, >= 0.

    Returns:
        Whether the run overfits (False while there are at most ``patience`` evaluations).

    Raises:
        TypeError, ValueError: malformed arguments, or sequences of different lengths.
    """
    patience, min_delta = check_int("patience", patience), check_float("min_delta", min_delta, 0.0)
    train_losses, val_losses = _check_losses("train_losses", train_losses), _check_losses("val_losses", val_losses)
    if len(train_losses) != len(val_losses):
        raise ValueError(f"train_losses and val_losses must have one value per evaluation, got lengths "
                         f"{len(train_losses)} and {len(val_losses)}")
    if len(val_losses) <= patience:
        return False
    train_fell = train_losses[-1] < train_losses[-1 - patience]
    return bool(train_fell and min(val_losses[-patience:]) >= min(val_losses[:-patience]) - min_delta)


def plot_lr(history: History, ax: Axes | None = None) -> Figure:
    """Learning rate per epoch, and ``momentum`` on a second axis where the history has that column.

    Args:
        history: a finished run's history; each row's ``lr`` is that epoch's last batch's.
        ax: the axes to draw on (default: a new figure).

    Returns:
        The figure.

    Raises:
        TypeError: ``history`` is not a ``History`` or ``ax`` not an ``Axes``.
        ValueError: an empty history.
    """
    if not isinstance(history, History):
        raise TypeError(f"history must be a hrlib.train.History, got {type(history).__name__}")
    if len(history) == 0:
        raise ValueError("history must have at least one epoch, got an empty History")
    check_axes("ax", ax, allow_none=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    epochs = history.column("epoch")
    ax.plot(epochs, history.column("lr"), "o-", color="C0", label="lr")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate (last batch of the epoch)")
    if any("momentum" in r for r in history.rows):
        twin = ax.twinx()
        twin.plot(epochs, history.column("momentum"), "s--", color="C1", label="momentum")
        twin.set_ylabel("momentum")
    ax.set_title("learning-rate schedule")
    return ax.figure  # type: ignore[return-value]


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - jupyter installs IPython
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class LivePlot(Callback):
    """Training and validation loss and accuracy per epoch, redrawn after every epoch of :func:`hrlib.train.fit`.

    In a live notebook the figure updates in place. With ``live=False`` (the default when ``HRLIB_HEADLESS`` is
    set, as when tests execute notebooks, or outside a notebook) it is drawn once, at the end of the run, so
    stored outputs hold one figure, not one per epoch. The figure is in :attr:`figure`.

    Args:
        title: the figure's title.
        live: redraw after every epoch (default: only in a notebook and without ``HRLIB_HEADLESS``).
    """

    def __init__(self, title: str = "training curves", live: bool | None = None) -> None:
        if not isinstance(title, str):
            raise TypeError(f"title must be a str, got {type(title).__name__} {title!r}")
        self.title = title
        live = None if live is None else check_bool("live", live)
        self.live = (_in_notebook() and not os.environ.get("HRLIB_HEADLESS")) if live is None else live
        self.figure: Figure | None = None
        self._handle = None

    def on_fit_start(self, state: TrainState) -> None:
        self.figure, _ = plt.subplots(1, 2, figsize=(9, 3))
        plt.close(self.figure)  # shown through display(), never twice by the inline backend
        if self.live:
            from IPython.display import display
            self._handle = display(self.figure, display_id=True)

    def _draw(self, history: History) -> None:
        assert self.figure is not None
        epochs = history.column("epoch") + 1
        for ax, key, label in zip(self.figure.axes, ("loss", "acc"), ("cross-entropy loss", "accuracy (0-1)"),
                                  strict=True):
            ax.clear()
            ax.plot(epochs, history.column(f"train_{key}"), "o-", ms=3, label="train")
            val = history.column(f"val_{key}")
            if np.isfinite(val).any():
                ax.plot(epochs[np.isfinite(val)], val[np.isfinite(val)], "s-", ms=3, label="validation")
            ax.set(xlabel="epoch", ylabel=label)
            ax.legend(fontsize=8)
        self.figure.suptitle(self.title)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.live and self._handle is not None:
            self._draw(state.history)
            self._handle.update(self.figure)

    def on_fit_end(self, state: TrainState) -> None:
        if len(state.history) == 0:
            return
        self._draw(state.history)
        if self._handle is not None:
            self._handle.update(self.figure)
        elif _in_notebook():
            from IPython.display import display
            display(self.figure)
