"""What a training run records and what its callbacks see (lessons 01 and 06): :class:`History` (one row per
epoch), :class:`TrainState`, the :class:`Callback` hooks of :func:`hrlib.train.fit`, and :class:`EvalResult`."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrlib._checks import check_path
from hrlib._io import atomic_write

__all__ = ["Callback", "EvalResult", "History", "TrainState"]


class History:
    """Per-epoch rows of a :func:`fit` run, as dicts with keys :attr:`KEYS`.

    ``lr``, ``momentum``: learning rate and momentum (or Adam's beta1) of the epoch's last batch;
    ``val_loss``/``val_acc``: NaN where not evaluated; ``seconds``: wall time of the training pass (data loading
    included, validation excluded); ``train_macs``: multiply-accumulates of the epoch's forward and backward
    passes, approximated as ``3 x`` forward MACs per sample (the backward computes gradients for activations and
    for weights, each about one forward), 0 if not counted; ``samples``: training images seen.
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
        """A copy of the rows (e.g. for ``pandas.DataFrame(history.as_rows())``)."""
        return [dict(r) for r in self.rows]

    def column(self, key: str) -> np.ndarray:
        """The values of ``key`` (one of :attr:`KEYS`, or one a callback added), one per epoch (NaN if missing)."""
        if not any(key in r for r in self.rows):
            raise KeyError(f"key must be in the rows ({len(self)} epochs) of this history, got {key!r}")
        return np.asarray([r.get(key, math.nan) for r in self.rows])

    def cumulative(self, key: str) -> np.ndarray:
        """Running total of a numeric ``key`` over epochs, e.g. ``cumulative("train_macs")`` for compute spent."""
        return np.cumsum(self.column(key))

    def last(self, key: str) -> Any:
        """The value of ``key`` in the last epoch's row."""
        return self.column(key)[-1].item()

    def best(self, key: str) -> dict[str, Any]:
        """The row with the best ``key``: lowest for keys ending in ``loss``, highest otherwise; NaNs skipped."""
        values = self.column(key).astype(float)
        i = np.nanargmin(values) if key.endswith("loss") else np.nanargmax(values)
        return dict(self.rows[int(i)])

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the rows as JSON (NaN as ``null``) atomically: a temp file, then ``os.replace``. Returns the path."""
        path = check_path("path", path)
        if path.is_dir() or not path.parent.is_dir():
            raise FileNotFoundError(f"path must be a file in an existing folder, got {str(path)!r}")
        rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in self.rows]
        return atomic_write(path, lambda fh: json.dump({"rows": rows}, fh, indent=1))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`to_json`."""
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
    """What callbacks see and may change. ``step``: optimizer steps so far (1 after the first batch);
    ``loss``: last batch's mean loss; ``lr``, ``momentum``: the learning rate and momentum
    (SGD's ``momentum`` or Adam's ``beta1``; NaN without either) that batch used; ``row``: the epoch's history row
    (in ``on_epoch_end``; a callback may add keys); ``inputs``: the current batch as the model sees it (after the
    transforms and ``batch_transform``; NCHW float, on the device); set ``stop_training = True`` to end training
    after the current epoch."""

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
    """Base class of :func:`fit` callbacks: override the hooks you need; each gets the :class:`TrainState`."""

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_after_backward(self, state: TrainState) -> None: ...  # true gradients, before the step: measure or clip
    def on_batch_end(self, state: TrainState) -> None: ...  # after optimizer.step(); gradients are still there
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...


@dataclass(frozen=True)
class EvalResult:
    """Outcome of :func:`evaluate`: ``loss`` (mean cross-entropy), ``accuracy`` (0-1), ``per_class_accuracy``
    ((C,) recall per true class, NaN for classes absent), ``confusion`` ((C, C) counts, rows true, columns
    predicted), ``predictions`` and ``labels`` ((N,) int64), ``logits`` ((N, K) float32)."""

    loss: float
    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray
    logits: np.ndarray


