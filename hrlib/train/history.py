"""What a training run records and what its callbacks see (lessons 01 and 06): :class:`History` (one row per
epoch), :class:`TrainState`, the :class:`Callback` hooks of :func:`hrlib.train.fit` and ``hrlib train``, and
:class:`EvalResult`."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrlib._checks import check_path
from hrlib._io import atomic_write

__all__ = ["Callback", "EvalResult", "History", "TrainState", "check_callbacks"]


class History:
    """Per-epoch rows of a training run (``fit``, ``hrlib train``), as dicts with keys :attr:`KEYS`.

    ``lr``, ``momentum``: learning rate and momentum (or Adam's beta1) of the epoch's last batch;
    ``val_loss``/``val_acc``: NaN where not evaluated; ``seconds``: wall time of the training pass (data loading
    included, validation excluded); ``train_macs``: multiply-accumulates of the epoch's forward and backward
    passes, approximated as ``3 x`` forward MACs per sample (the backward computes gradients for activations and
    for weights, each about one forward), 0 if not counted; ``samples``: training images seen.

    Args:
        rows: the epochs' rows, oldest first (each a dict; copied).

    Raises:
        TypeError: ``rows`` is not a sequence of dicts.
    """

    KEYS = ("epoch", "stage", "resolution", "lr", "momentum", "train_loss", "train_acc", "val_loss", "val_acc",
            "seconds", "train_macs", "samples")

    def __init__(self, rows: Sequence[dict[str, Any]] = ()) -> None:
        if isinstance(rows, str | Mapping) or not isinstance(rows, Sequence) or not all(
                isinstance(r, Mapping) for r in rows):
            raise TypeError(f"rows must be a sequence of dicts (one per epoch), got {rows!r:.80}")
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def as_rows(self) -> list[dict[str, Any]]:
        """A copy of the rows (e.g. for ``pandas.DataFrame(history.as_rows())``).

        Returns:
            One dict per epoch.
        """
        return [dict(r) for r in self.rows]

    def column(self, key: str) -> np.ndarray:
        """The values of ``key``, one per epoch (NaN where a row lacks it).

        Args:
            key: one of :attr:`KEYS`, or one a callback added.

        Returns:
            A 1-D array.

        Raises:
            KeyError: no row has ``key``.
        """
        if not any(key in r for r in self.rows):
            raise KeyError(f"key must be in the rows ({len(self)} epochs) of this history, got {key!r}")
        return np.asarray([r.get(key, math.nan) for r in self.rows])

    def cumulative(self, key: str) -> np.ndarray:
        """Running total of a numeric ``key`` over epochs, e.g. ``cumulative("train_macs")`` for compute spent.

        Args:
            key: a numeric column (see :meth:`column`).

        Returns:
            A 1-D array, one running total per epoch.
        """
        return np.cumsum(self.column(key))

    def last(self, key: str) -> Any:
        """The value of ``key`` in the last epoch's row.

        Args:
            key: a column (see :meth:`column`).

        Returns:
            The value (a Python scalar).
        """
        return self.column(key)[-1].item()

    def best(self, key: str) -> dict[str, Any]:
        """The row with the best ``key``: lowest for keys ending in ``loss``, highest otherwise; NaNs skipped.

        Args:
            key: a numeric column (see :meth:`column`).

        Returns:
            A copy of that epoch's row.
        """
        values = self.column(key).astype(float)
        i = np.nanargmin(values) if key.endswith("loss") else np.nanargmax(values)
        return dict(self.rows[int(i)])

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the rows as JSON (NaN as ``null``) atomically (``hrlib._io.atomic_write``).

        Args:
            path: the file to write; its folder must exist.

        Returns:
            ``path`` as a ``Path``.

        Raises:
            TypeError: ``path`` is not a path.
            FileNotFoundError: ``path`` is a folder or its folder is missing.
        """
        path = check_path("path", path)
        if path.is_dir() or not path.parent.is_dir():
            raise FileNotFoundError(f"path must be a file in an existing folder, got {str(path)!r}")
        rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in self.rows]
        return atomic_write(path, lambda fh: json.dump({"rows": rows}, fh, indent=1))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`to_json`.

        Args:
            path: the JSON file.

        Returns:
            The :class:`History`.

        Raises:
            TypeError: ``path`` is not a path.
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file is not a history JSON.
        """
        path = check_path("path", path)
        if not path.is_file():
            raise FileNotFoundError(f"path must be an existing history JSON file, got {str(path)!r}")
        try:
            rows = json.loads(path.read_text())["rows"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise TypeError(f"rows is a {type(rows).__name__}")
        except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
            raise ValueError(f"path {path} must hold a history written by History.to_json ({e!r:.200})") from e
        return cls([{k: math.nan if v is None else v for k, v in r.items()} for r in rows])


@dataclass
class TrainState:
    """What callbacks see and may change; the training engine updates it per batch and per epoch.

    Attributes:
        model: the model being trained (DDP-wrapped under torchrun).
        optimizer: its optimizer.
        schedule: the run's ``hrlib.train.Schedule`` (None outside ``fit`` and ``hrlib train``).
        history: the :class:`History`, one row appended per epoch.
        num_epochs: epochs of the whole run.
        epoch, stage, resolution: the current epoch (0-based), its stage's name and resolution (px).
        step: optimizer steps so far (1 after the first batch).
        loss: the last batch's mean loss.
        lr, momentum: the learning rate and momentum (SGD's ``momentum`` or Adam's ``beta1``; NaN without either)
            that batch used.
        batch_size: the last batch's size.
        row: the epoch's history row (in ``on_epoch_end``; a callback may add keys).
        stop_training: set it to True to end training after the current epoch.
        inputs: the current batch as the model sees it (after the transforms and ``batch_transform``; NCHW float,
            on the device).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any  # the run's hrlib.train.Schedule (None outside fit)
    history: History
    num_epochs: int
    epoch: int = 0
    stage: str = ""
    resolution: int = 0
    step: int = 0
    loss: float = math.nan
    lr: float = math.nan
    momentum: float = math.nan
    batch_size: int = 0
    row: dict[str, Any] = field(default_factory=dict)
    stop_training: bool = False
    inputs: torch.Tensor | None = None


class Callback:
    """Base class of training callbacks (``fit`` and ``hrlib train``): override the hooks you need.

    Every hook takes the run's :class:`TrainState` (``state``) and returns nothing; the base class's do nothing.

    A callback that keeps state across epochs (counters, recent losses, a best value) names those attributes in
    :attr:`STATE_KEYS`: ``hrlib train`` saves :meth:`state_dict` in every checkpoint and, on ``--resume``, gives it
    back to :meth:`load_state_dict` right after ``on_fit_start``, so a resumed run decides (e.g. to stop early) as
    the uninterrupted one would. Values must be plain: numbers, strings, None, lists, dicts, deques, dataclasses.

    Attributes:
        STATE_KEYS: the attributes that make up the callback's state (none for the base class).
    """

    STATE_KEYS: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        """The callback's state: a deep copy of each :attr:`STATE_KEYS` attribute (a deque as a list, a dataclass
        as a dict), loadable with ``torch.load(weights_only=True)``.

        Returns:
            ``{attribute: value}``.
        """
        def plain(value: Any) -> Any:
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return dataclasses.asdict(value)
            return [plain(v) for v in value] if isinstance(value, deque | list | tuple) else copy.deepcopy(value)

        return {key: plain(getattr(self, key)) for key in self.STATE_KEYS}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (a deque attribute is refilled, keeping its ``maxlen``).

        Args:
            state: ``{attribute: value}`` with every :attr:`STATE_KEYS` attribute.

        Raises:
            TypeError: ``state`` is not a dict.
            ValueError: an attribute is missing.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict from {type(self).__name__}.state_dict(), got "
                            f"{type(state).__name__}")
        missing = [key for key in self.STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"state must be a dict from {type(self).__name__}.state_dict(), it lacks {missing}")
        for key in self.STATE_KEYS:
            current = getattr(self, key)
            if isinstance(current, deque):
                current.clear()
                current.extend(state[key])
            else:
                setattr(self, key, copy.deepcopy(state[key]))

    def on_fit_start(self, state: TrainState) -> None:
        """Before the first epoch (after a resume: before the first resumed epoch)."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Before the epoch's first batch (``state.epoch``, ``stage`` and ``resolution`` are set)."""

    def on_after_backward(self, state: TrainState) -> None:
        """After each backward pass, before the optimizer step: true (unscaled) gradients, to measure or clip."""

    def on_batch_end(self, state: TrainState) -> None:
        """After each optimizer step (the gradients are still there)."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After the epoch's row is in the history (``state.row``; a callback may add keys)."""

    def on_fit_end(self, state: TrainState) -> None:
        """After the last epoch."""


def check_callbacks(name: str, value: object) -> Sequence[Callback]:
    """Return ``value`` if it is a sequence (list) of :class:`Callback`; raise ``TypeError`` naming ``name``.

    Args:
        name: the argument's name, for the message (an element is named ``name[i]``).
        value: the candidate.

    Returns:
        ``value`` unchanged.

    Raises:
        TypeError: not a sequence, or an element is not a :class:`Callback`.
    """
    if isinstance(value, Callback | str) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence (list) of hrlib.train.Callback, got {type(value).__name__}")
    for i, cb in enumerate(value):
        if not isinstance(cb, Callback):
            raise TypeError(f"{name}[{i}] must be a hrlib.train.Callback, got {type(cb).__name__}")
    return value


@dataclass(frozen=True)
class EvalResult:
    """Outcome of :func:`hrlib.train.evaluate`.

    Attributes:
        loss: mean cross-entropy.
        accuracy: fraction correct (0-1).
        per_class_accuracy: (C,) recall per true class, NaN for classes absent.
        confusion: (C, C) counts, rows true, columns predicted.
        predictions, labels: (N,) int64.
        logits: (N, K) float32.
    """

    loss: float
    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray
    logits: np.ndarray


