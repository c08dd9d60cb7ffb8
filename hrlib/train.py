"""A small training loop that follows a resolution schedule, and an evaluation that breaks accuracy down by class.

:func:`fit` trains a classifier epoch by epoch at the resolution a schedule gives (any object with the
:class:`Schedule` members, e.g. one from ``hrlib.staging``) and returns a :class:`History` of per-epoch rows;
:class:`Callback` subclasses hook into it (early stopping, grad-norm monitors, logging). :func:`evaluate` returns an
:class:`EvalResult` with loss, accuracy, per-class accuracy and the confusion matrix.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hrlib._checks import check_bool as _check_bool
from hrlib._checks import check_float, check_int
from hrlib.config import _check_device, seed_everything
from hrlib.models import count_cost

__all__ = ["Callback", "EvalResult", "History", "Schedule", "TrainState", "evaluate", "fit"]

Transform = Callable[..., dict[str, Any]]  # albumentations-style: transform(image=uint8 HWC)["image"] -> CHW tensor
LR_SCHEDULES = ("onecycle", "constant", "cosine", "step")
_SCHEDULE_MEMBERS = ("num_epochs", "stage_at", "resolution_at", "train_transform")


class Schedule(Protocol):
    """What :func:`fit` needs from a resolution schedule (epochs are 0-based)."""

    num_epochs: int

    def stage_at(self, epoch: int) -> Any: ...  # an object with .name (str) and .resolution (int, px)
    def resolution_at(self, epoch: int) -> int: ...
    def train_transform(self, epoch: int) -> Transform: ...


class _Transformed(Dataset):
    """Items ``(image, label, ...)`` of ``dataset`` as ``(transform(image=image)["image"], label)``."""

    def __init__(self, dataset: Dataset, transform: Transform) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[i]
        return self.transform(image=item[0])["image"], int(item[1])


def _seed_transform(transform: object, seed: int) -> None:
    """Seed a transform's own random generator (albumentations' draws from OS entropy unless seeded)."""
    set_seed = getattr(transform, "set_random_seed", None)
    if callable(set_seed):
        set_seed(seed)


def _seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: each worker's copy of the transform gets its worker's torch seed."""
    info = torch.utils.data.get_worker_info()
    if info is not None:
        _seed_transform(getattr(info.dataset, "transform", None), torch.initial_seed() % 2**32)


def _check_path(path: object) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__} {path!r:.60}")
    return Path(path)


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
        path = _check_path(path)
        if path.is_dir() or not path.parent.is_dir():
            raise FileNotFoundError(f"path must be a file in an existing folder, got {str(path)!r}")
        rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in self.rows]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"rows": rows}, fh, indent=1)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`to_json`."""
        path = _check_path(path)
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
    schedule: Schedule
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


def _check_dataset(name: str, dataset: object) -> Dataset:
    if isinstance(dataset, str | bytes | Mapping | np.ndarray | torch.Tensor):
        raise TypeError(f"{name} must be a map-style Dataset of (image, label, ...) items, got "
                        f"{type(dataset).__name__}")
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__") or len(dataset) < 1:  # type: ignore
        raise ValueError(f"{name} must be a non-empty map-style Dataset of (image, label, ...), got "
                         f"{type(dataset).__name__} of length {len(dataset) if hasattr(dataset, '__len__') else '?'}")
    return dataset  # type: ignore[return-value]


def evaluate(model: nn.Module, dataset: Dataset, transform: Transform, *, batch_size: int = 64,
             device: str | torch.device | None = None, num_classes: int | None = None,
             num_workers: int = 0) -> EvalResult:
    """Evaluate ``model`` on ``dataset`` (items ``(uint8 HWC image, label, ...)``) under no_grad, in eval mode.

    ``transform``: deterministic, albumentations-style (``transform(image=image)["image"]`` is a CHW float
    tensor); ``batch_size`` (>= 1); ``device``: default the model's (moved there if given); ``num_classes``
    (>= 1): size of the confusion matrix, default the model's number of logits. The model's train/eval mode is
    restored afterwards.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dataset = _check_dataset("dataset", dataset)
    if not callable(transform):
        raise TypeError(f"transform must be callable as transform(image=...), got {type(transform).__name__}")
    batch_size, num_workers = check_int("batch_size", batch_size), check_int("num_workers", num_workers, 0)
    if num_classes is not None:
        check_int("num_classes", num_classes)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    else:
        device = _check_device("device", device)
        model.to(device)
    # its own generator: creating a loader iterator draws a seed, which must not shift the global RNG that
    # training uses (otherwise evaluating more or less often would change the training run)
    loader = DataLoader(_Transformed(dataset, transform), batch_size=batch_size, num_workers=num_workers,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = [(model(x.to(device)).float().cpu(), y) for x, y in loader]
    finally:
        model.train(was_training)
    logits, labels = torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])
    width = logits.shape[1]
    k = width if num_classes is None else check_int("num_classes", num_classes)
    if k < width or labels.max() >= width:
        raise ValueError(f"num_classes must be >= the model's {width} logits, and dataset labels < {width}; got "
                         f"num_classes={num_classes} and labels up to {labels.max().item()}")
    loss = F.cross_entropy(logits, labels).item()
    preds, y = logits.argmax(1).numpy(), labels.numpy().astype(np.int64)
    confusion = np.bincount(y * k + preds, minlength=k * k).reshape(k, k)
    support = confusion.sum(1)
    per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    return EvalResult(loss, float((preds == y).mean()), per_class, confusion, preds, y, logits.numpy())


def fit(model: nn.Module, train_set: Dataset, schedule: Schedule, *, val_set: Dataset | None = None,
        val_transform: Transform | None = None, epochs_per_eval: int = 1, lr: float = 3e-3,
        weight_decay: float = 1e-4, batch_size: int = 16, lr_schedule: str = "onecycle",
        optimizer: torch.optim.Optimizer | None = None, device: str | torch.device | None = None,
        amp: bool = False, callbacks: Sequence[Callback] = (), seed: int = 0, num_workers: int = 0,
        progress: bool = True, count_macs: bool = True,
        batch_transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
        ) -> History:
    """Train ``model`` with cross-entropy for ``schedule.num_epochs`` epochs, each at its stage's resolution.

    ``train_set``: map-style dataset of ``(uint8 HWC image, label, ...)``; epoch ``e`` transforms its images with
    ``schedule.train_transform(e)`` (see :class:`Schedule`) and visits them in an order fixed by ``(seed, e)``.
    ``val_set``, ``val_transform``: validation data and its deterministic transform (required with ``val_set``),
    evaluated every ``epochs_per_eval`` (>= 1) epochs and at the last one. ``lr`` (> 0), ``weight_decay`` (>= 0):
    peak learning rate and decay of the default AdamW; a given ``optimizer`` keeps its settings and its groups' lr
    are the peaks. ``batch_size``: images per step (>= 1). ``lr_schedule``, stepped after every batch:
    ``"onecycle"`` (warm up, then anneal; OneCycleLR, which also cycles momentum), ``"cosine"`` (from the peak
    to 0), ``"step"`` (the ResNet recipe: the peak, then x0.1 after half and again after three quarters of the
    epochs; MultiStepLR) or ``"constant"``.
    ``device``: ``"cpu"``/``"cuda"``/``"mps"`` or a ``torch.device``, default ``hrlib.config.get_device()``.
    ``amp``: mixed precision (bfloat16 autocast on CPU, float16 with a GradScaler on CUDA). ``callbacks``:
    :class:`Callback` instances, called in order. ``seed`` (>= 0): seeds Python, NumPy and torch at the start
    (``seed_everything``) and each epoch's shuffle. ``num_workers``: DataLoader processes (>= 0). ``progress``:
    show a progress bar. ``count_macs``: fill ``train_macs`` (see :class:`History`). ``batch_transform``: called
    as ``x, y = batch_transform(x, y)`` on each training batch on the device, before the forward pass (e.g.
    torchvision's ``v2.MixUp``/``v2.CutMix``); it may return soft labels ``(N, C)``, and accuracy then counts the
    argmax of the soft label as the true class.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    train_set = _check_dataset("train_set", train_set)
    missing = [m for m in _SCHEDULE_MEMBERS if not hasattr(schedule, m)]
    if missing:
        raise TypeError(f"schedule must have {', '.join(_SCHEDULE_MEMBERS)}; {type(schedule).__name__} lacks "
                        f"{', '.join(missing)}")
    num_epochs = check_int("schedule.num_epochs", schedule.num_epochs)
    if val_transform is not None and not callable(val_transform):
        raise TypeError(f"val_transform must be a callable transform or None, got {type(val_transform).__name__}")
    if val_set is not None:
        val_set = _check_dataset("val_set", val_set)
        if not callable(val_transform):
            raise ValueError(f"val_transform must be a callable transform when val_set is given, "
                             f"got {type(val_transform).__name__}")
    lr, weight_decay = check_float("lr", lr, 0.0, low_open=True), check_float("weight_decay", weight_decay, 0.0)
    batch_size, epochs_per_eval = check_int("batch_size", batch_size), check_int("epochs_per_eval", epochs_per_eval)
    seed, num_workers = check_int("seed", seed, 0), check_int("num_workers", num_workers, 0)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    amp, progress, count_macs = _check_bool("amp", amp), _check_bool("progress", progress), \
        _check_bool("count_macs", count_macs)
    if isinstance(callbacks, Callback) or not isinstance(callbacks, Sequence):
        raise TypeError(f"callbacks must be a sequence (list) of hrlib.train.Callback, got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}] must be a hrlib.train.Callback, got {type(cb).__name__}")
    if batch_transform is not None and not callable(batch_transform):
        raise TypeError(f"batch_transform must be a callable (x, y) -> (x, y) or None, "
                        f"got {type(batch_transform).__name__}")

    device = _check_device("device", device)
    seed_everything(seed)
    model.to(device)
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total_steps = math.ceil(len(train_set) / batch_size) * num_epochs  # type: ignore[arg-type]
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    if lr_schedule == "onecycle":
        peaks = [g["lr"] for g in opt.param_groups]
        scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, peaks, total_steps=total_steps)
    elif lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total_steps)
    elif lr_schedule == "step":
        per_epoch = math.ceil(len(train_set) / batch_size)  # type: ignore[arg-type]
        milestones = sorted({per_epoch * max(1, round(num_epochs * f)) for f in (0.5, 0.75)})
        scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    resolutions = {schedule.resolution_at(e) for e in range(num_epochs)}
    fwd_macs = {r: count_cost(model, r).macs if count_macs else 0 for r in resolutions}

    state = TrainState(model, opt, schedule, History(), num_epochs)
    loader, loader_transform, generator = None, None, torch.Generator()
    bar = tqdm(total=total_steps, desc="fit", unit="batch", disable=not progress, dynamic_ncols=True)
    try:
        for cb in callbacks:
            cb.on_fit_start(state)
        for epoch in range(num_epochs):
            state.epoch, state.stage = epoch, schedule.stage_at(epoch).name
            state.resolution = schedule.resolution_at(epoch)
            transform = schedule.train_transform(epoch)
            if transform is not loader_transform:  # one loader per transform: workers persist within a stage
                loader = DataLoader(_Transformed(train_set, transform), batch_size=batch_size, shuffle=True,
                                    generator=generator, num_workers=num_workers,
                                    worker_init_fn=_seed_worker if num_workers > 0 else None,
                                    persistent_workers=num_workers > 0, pin_memory=device.type == "cuda")
                loader_transform = transform
            order_seed, aug_seed = np.random.SeedSequence([seed, epoch]).generate_state(2)
            generator.manual_seed(int(order_seed))
            _seed_transform(transform, int(aug_seed))  # random augmentation repeats under the same seed
            for cb in callbacks:
                cb.on_epoch_start(state)
            start = time.perf_counter()
            loss, acc, samples = _train_epoch(state, loader, bar, device=device, scheduler=scheduler,  # type: ignore
                                              scaler=scaler, amp=amp, callbacks=callbacks,
                                              batch_transform=batch_transform)
            seconds = time.perf_counter() - start
            val = None
            if val_set is not None and ((epoch + 1) % epochs_per_eval == 0 or epoch == num_epochs - 1):
                val = evaluate(model, val_set, val_transform, batch_size=batch_size,  # type: ignore[arg-type]
                               device=device, num_workers=num_workers)
                bar.set_description(f"fit (val_acc {val.accuracy:.3f})")
            state.row = {"epoch": epoch, "stage": state.stage, "resolution": state.resolution, "lr": state.lr,
                         "momentum": state.momentum, "train_loss": loss, "train_acc": acc,
                         "val_loss": math.nan if val is None else val.loss,
                         "val_acc": math.nan if val is None else val.accuracy, "seconds": seconds,
                         "train_macs": 3 * fwd_macs[state.resolution] * samples, "samples": samples}
            state.history.rows.append(state.row)
            for cb in callbacks:
                cb.on_epoch_end(state)
            if state.stop_training:
                break
    finally:
        bar.close()
    for cb in callbacks:
        cb.on_fit_end(state)
    return state.history


def _momentum(group: dict[str, Any]) -> float:
    """SGD's ``momentum`` or Adam's first beta of an optimizer parameter group; NaN if it has neither."""
    if "betas" in group:
        return float(group["betas"][0])
    return float(group.get("momentum", math.nan))


def _train_epoch(state: TrainState, loader: DataLoader, bar: tqdm, *, device: torch.device,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, scaler: torch.amp.GradScaler, amp: bool,
                 callbacks: Sequence[Callback],
                 batch_transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None
                 = None) -> tuple[float, float, int]:
    """One pass over ``loader``, one optimizer step per batch; returns mean loss, accuracy (0-1) and samples."""
    model, opt = state.model, state.optimizer
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    model.train()
    loss_sum, correct, samples = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if batch_transform is not None:
            x, y = batch_transform(x, y)
        state.inputs = x
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # true gradients for the callbacks (a no-op without a GradScaler)
        state.step, state.loss, state.batch_size = state.step + 1, loss.item(), len(y)
        state.lr, state.momentum = opt.param_groups[0]["lr"], _momentum(opt.param_groups[0])
        for cb in callbacks:
            cb.on_after_backward(state)
        scaler.step(opt)
        scaler.update()
        loss_sum, samples = loss_sum + state.loss * len(y), samples + len(y)
        correct += int((logits.argmax(1) == (y.argmax(1) if y.ndim == 2 else y)).sum())
        for cb in callbacks:
            cb.on_batch_end(state)
        if scheduler is not None:
            scheduler.step()
        bar.update()
        bar.set_postfix({"epoch": state.epoch, "res": state.resolution, "loss": f"{loss_sum / samples:.3f}",
                         "acc": f"{correct / samples:.3f}"}, refresh=False)
    return loss_sum / samples, correct / samples, samples


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hrlib.train --config FILE [--resume] [--out DIR]``: the training CLI of :mod:`hrlib.runner`."""
    from hrlib.runner import main as runner_main

    return runner_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
