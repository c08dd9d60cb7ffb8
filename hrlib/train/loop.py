"""The per-epoch body that every training run shares (lessons 01 and 08): :class:`EpochLoop`.

:func:`hrlib.train.fit` (lesson 01) and ``hrlib train`` (:func:`hrlib.train.run_config`, lesson 08) both build their
optimizer with :func:`build_optimizer`, count their MACs with :func:`forward_macs` and run an :class:`EpochLoop`:
the same seeds, loader, augmentation, epoch loop (:func:`hrlib.train.engine.train_epoch`), validation and history
row, epoch by epoch. ``hrlib train`` adds its extras (a ``DistributedSampler``, reductions over the processes,
checkpoints, logs) as the loop's ``sampler``, ``reduce`` and callbacks; so one process of ``hrlib train`` ends
with the same weights as ``fit`` with the same model, data, schedule and seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from hrlib._checks import check_bool, check_callable, check_dataset, check_device, check_float, check_int, check_model
from hrlib.models.cost import count_cost
from hrlib.train.engine import (
    LR_SCHEDULES,
    BatchTransform,
    Schedule,
    check_schedule,
    epoch_loader,
    epoch_seeds,
    lr_scheduler,
    train_epoch,
)
from hrlib.train.history import Callback, EvalResult, History, TrainState, check_callbacks

__all__ = ["EpochLoop", "build_optimizer", "forward_macs"]

Reduce = Callable[[float, float, int, float], tuple[float, float, int, float]]


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float, lr_schedule: str, steps_per_epoch: int,
                    num_epochs: int, device: str | torch.device, amp: bool = False,
                    optimizer: torch.optim.Optimizer | None = None) -> tuple[
                        torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None, torch.amp.GradScaler]:
    """The optimizer, its per-batch LR schedule and the gradient scaler of a run (``fit`` and ``hrlib train``).

    Args:
        model: its parameters are optimized (already on ``device``).
        lr: peak learning rate of the default AdamW (> 0).
        weight_decay: AdamW's decoupled weight decay (>= 0).
        lr_schedule: one of ``LR_SCHEDULES`` (see :func:`lr_scheduler`).
        steps_per_epoch: optimizer steps per epoch (>= 1).
        num_epochs: epochs of the whole run (>= 1).
        device: where the run trains: a float16 ``GradScaler`` is enabled only on CUDA with ``amp``.
        amp: mixed precision.
        optimizer: use this one instead of AdamW (its settings kept, its groups' lr the peaks).

    Returns:
        ``(optimizer, scheduler or None, scaler)``.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    model = check_model("model", model)
    lr, weight_decay = check_float("lr", lr, 0.0, low_open=True), check_float("weight_decay", weight_decay, 0.0)
    if not isinstance(lr_schedule, str) or lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    device, amp = check_device("device", device), check_bool("amp", amp)
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = lr_scheduler(opt, lr_schedule, steps_per_epoch, num_epochs)
    return opt, scheduler, torch.amp.GradScaler(device.type, enabled=bool(amp) and device.type == "cuda")


def forward_macs(model: nn.Module, schedule: Schedule) -> dict[int, int]:
    """Forward multiply-accumulates per sample at each resolution the schedule visits (``count_cost``).

    Args:
        model: the classifier (measured on a bare copy: its weights and mode stay as they are).
        schedule: the run's :class:`Schedule`.

    Returns:
        ``{resolution: MACs}``.

    Raises:
        TypeError: ``model`` is not a module or ``schedule`` not a :class:`Schedule`.
    """
    model, schedule = check_model("model", model), check_schedule("schedule", schedule)
    resolutions = {schedule.resolution_at(e) for e in range(schedule.num_epochs)}
    return {r: count_cost(model, r).macs for r in resolutions}



@dataclass
class EpochLoop:
    """The per-epoch body of every hrlib training run (``fit`` and ``hrlib train``), around :func:`train_epoch`.

    Epoch ``e``: ``state.epoch``, ``stage`` and ``resolution`` from ``state.schedule``; the loader built from
    :func:`epoch_seeds` ``(seed, e, rank)``: its order, and each item's augmentation from the augmentation seed and
    the item's index (so ``num_workers`` changes the speed, never the weights); ``on_epoch_start``;
    :func:`train_epoch`; ``reduce``; ``validate`` when due; the :class:`History` row; ``on_epoch_end``.

    Attributes:
        train_set: map-style dataset of ``(uint8 HWC image, label, ...)`` items.
        batch_size: images per optimizer step (per process).
        seed: the run's seed (>= 0): each epoch's order and augmentation come from it.
        device: where to train.
        scheduler: the per-batch LR schedule (None: constant).
        scaler: the GradScaler (None: none).
        amp: mixed precision.
        callbacks: :class:`Callback` instances, called in order.
        batch_transform: ``x, y = batch_transform(x, y)`` on each training batch (e.g. MixUp).
        num_workers: DataLoader worker processes (the same weights for any number).
        fwd_macs: forward MACs per sample by resolution (:func:`forward_macs`); ``train_macs`` is 0 where missing.
        validate: ``validate(epoch)`` returns an :class:`EvalResult` or None; called every ``epochs_per_eval``
            epochs and at the last one.
        epochs_per_eval: see ``validate`` (>= 1).
        rank: this process's rank (>= 0; 0 on one process).
        sampler: fixes each epoch's order instead of the shuffle; its ``set_epoch(e)`` is called first (e.g. a
            ``DistributedSampler``).
        reduce: ``reduce(mean loss, accuracy, samples, seconds)`` returns them over all processes (None: one).
    """

    train_set: Dataset
    batch_size: int
    seed: int
    device: torch.device
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    scaler: torch.amp.GradScaler | None = None
    amp: bool = False
    callbacks: Sequence[Callback] = ()
    batch_transform: BatchTransform | None = None
    num_workers: int = 0
    fwd_macs: Mapping[int, int] = field(default_factory=dict)
    validate: Callable[[int], EvalResult | None] | None = None
    epochs_per_eval: int = 1
    rank: int = 0
    sampler: Any = None
    reduce: Reduce | None = None

    def __post_init__(self) -> None:
        check_dataset("train_set", self.train_set)
        for name, minimum in (("batch_size", 1), ("seed", 0), ("num_workers", 0), ("epochs_per_eval", 1), ("rank", 0)):
            check_int(name, getattr(self, name), minimum)
        check_bool("amp", self.amp)
        self.device = check_device("device", self.device)
        self.callbacks = check_callbacks("callbacks", self.callbacks)
        check_callable("batch_transform", self.batch_transform, allow_none=True, hint="(x, y) -> (x, y)")
        check_callable("validate", self.validate, allow_none=True, hint="validate(epoch)")
        check_callable("reduce", self.reduce, allow_none=True, hint="reduce(loss, acc, samples, seconds)")

    def run(self, state: TrainState, epochs: Iterable[int], bar: tqdm | None = None) -> History:
        """``on_fit_start``, :meth:`run_epoch` for each epoch until ``state.stop_training``, then ``on_fit_end``.

        Args:
            state: the run's :class:`TrainState` (its ``schedule`` gives each epoch's stage and transform).
            epochs: the 0-based epochs to run, e.g. ``range(start, num_epochs)``.
            bar: a progress bar, closed at the end.

        Returns:
            ``state.history``.
        """
        try:
            for cb in self.callbacks:
                cb.on_fit_start(state)
            for epoch in epochs:
                self.run_epoch(state, epoch, bar)
                if state.stop_training:
                    break
        finally:
            if bar is not None:
                bar.close()
        for cb in self.callbacks:
            cb.on_fit_end(state)
        return state.history

    def run_epoch(self, state: TrainState, epoch: int, bar: tqdm | None = None) -> dict[str, Any]:
        """Train one epoch and append its row to ``state.history`` (see the class docstring for the steps).

        Args:
            state: the run's :class:`TrainState`.
            epoch: the 0-based epoch.
            bar: a progress bar advanced per batch.

        Returns:
            The epoch's history row (``state.row``).
        """
        schedule = state.schedule
        state.epoch, state.stage = epoch, schedule.stage_at(epoch).name
        state.resolution = schedule.resolution_at(epoch)
        transform = schedule.train_transform(epoch)
        order_seed, aug_seed = epoch_seeds(self.seed, epoch, self.rank)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        loader = epoch_loader(self.train_set, transform, batch_size=self.batch_size, order_seed=order_seed,
                              num_workers=self.num_workers, pin_memory=self.device.type == "cuda", sampler=self.sampler,
                              augment_seed=aug_seed)  # item i's augmentation: from (aug_seed, i), in any worker
        for cb in self.callbacks:
            cb.on_epoch_start(state)
        start = time.perf_counter()
        loss, acc, samples = train_epoch(state, loader, device=self.device, scheduler=self.scheduler,
                                         scaler=self.scaler, amp=self.amp, callbacks=self.callbacks,
                                         batch_transform=self.batch_transform, bar=bar)
        stats = (loss, acc, samples, time.perf_counter() - start)
        loss, acc, samples, seconds = stats if self.reduce is None else self.reduce(*stats)
        due = (epoch + 1) % self.epochs_per_eval == 0 or epoch == state.num_epochs - 1
        val = self.validate(epoch) if self.validate is not None and due else None
        state.row = {"epoch": epoch, "stage": state.stage, "resolution": state.resolution, "lr": state.lr,
                     "momentum": state.momentum, "train_loss": loss, "train_acc": acc,
                     "val_loss": math.nan if val is None else val.loss,
                     "val_acc": math.nan if val is None else val.accuracy, "seconds": seconds,
                     "train_macs": 3 * self.fwd_macs.get(state.resolution, 0) * samples, "samples": samples}
        state.history.rows.append(state.row)
        for cb in self.callbacks:
            cb.on_epoch_end(state)
        return state.row
