"""A small training loop that follows a resolution schedule, and an evaluation that breaks accuracy down by class.

:func:`fit` trains a classifier epoch by epoch at the resolution a schedule gives (any object with the
:class:`Schedule` members, e.g. one from ``hrlib.staging``) and returns a :class:`History` of per-epoch rows;
:class:`Callback` subclasses hook into it (early stopping, grad-norm monitors, logging). :func:`evaluate` returns an
:class:`EvalResult` with loss, accuracy, per-class accuracy and the confusion matrix.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hrlib._checks import check_bool as _check_bool
from hrlib._checks import check_device, check_float, check_int
from hrlib.config import seed_everything, seed_transform, seed_worker
from hrlib.models import count_cost
from hrlib.train.history import Callback, EvalResult, History, TrainState

__all__ = ["Schedule", "TransformedDataset", "epoch_loader", "epoch_seeds", "evaluate", "fit", "lr_scheduler",
           "train_epoch"]

Transform = Callable[..., dict[str, Any]]  # albumentations-style: transform(image=uint8 HWC)["image"] -> CHW tensor
BatchTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
LR_SCHEDULES = ("onecycle", "constant", "cosine", "step")
_SCHEDULE_MEMBERS = ("num_epochs", "stage_at", "resolution_at", "train_transform")


@runtime_checkable
class Schedule(Protocol):
    """What :func:`fit` needs from a schedule (epochs are 0-based): ``hrlib.staging.Schedule`` (resolution stages)
    and ``hrlib.staging.FixedSchedule`` (one transform throughout) are the two in hrlib."""

    num_epochs: int

    def stage_at(self, epoch: int) -> Any: ...  # an object with .name (str) and .resolution (int, px)
    def resolution_at(self, epoch: int) -> int: ...
    def train_transform(self, epoch: int) -> Transform: ...


class TransformedDataset(Dataset):
    """Items ``(image, label, ...)`` of ``dataset`` as ``(transform(image=image)["image"], label)``.

    Args:
        dataset: a map-style dataset of ``(uint8 HWC image, label, ...)`` items.
        transform: albumentations-style, ``transform(image=image)["image"]`` is a CHW float tensor.
    """

    def __init__(self, dataset: Dataset, transform: Transform) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[i]
        return self.transform(image=item[0])["image"], int(item[1])


def epoch_seeds(seed: int, epoch: int, rank: int = 0) -> tuple[int, int]:
    """The two seeds of one epoch of one process: the data order's and the augmentation's.

    Both come from ``numpy.random.SeedSequence([seed, epoch])`` alone, so an epoch repeats exactly under the same
    seed whether the run went straight through or was resumed. Rank ``r`` of a distributed run takes word
    ``1 + r`` of the sequence for its augmentation (each rank draws different augmentations); rank 0's words are
    those of a one-process run, so :func:`fit` and ``hrlib train`` on one process draw the same.

    Args:
        seed: the run's seed (>= 0).
        epoch: the 0-based epoch.
        rank: the process's rank (0 on one process).

    Returns:
        ``(order_seed, augment_seed)``, each in [0, 2**32).
    """
    words = np.random.SeedSequence([seed, epoch]).generate_state(2 + rank)
    return int(words[0]), int(words[1 + rank])


def epoch_loader(dataset: Dataset, transform: Transform, *, batch_size: int, order_seed: int,
                 num_workers: int = 0, pin_memory: bool = False, sampler: Any = None) -> DataLoader:
    """The DataLoader of one epoch: ``dataset`` through ``transform``, shuffled by ``order_seed``.

    Args:
        dataset: a map-style dataset of ``(uint8 HWC image, label, ...)`` items.
        transform: the epoch's training transform (see :class:`TransformedDataset`).
        batch_size: images per batch.
        order_seed: seeds the loader's generator: the shuffle (without ``sampler``) and the workers' base seed.
        num_workers: DataLoader worker processes; each seeds its copy of the transform (``seed_worker``).
        pin_memory: pin batches in page-locked memory (for CUDA).
        sampler: a sampler that fixes the order instead (e.g. ``DistributedSampler`` after ``set_epoch``).

    Returns:
        A new ``DataLoader``.
    """
    return DataLoader(TransformedDataset(dataset, transform), batch_size=batch_size, shuffle=sampler is None,
                      sampler=sampler, generator=torch.Generator().manual_seed(order_seed), num_workers=num_workers,
                      worker_init_fn=seed_worker if num_workers > 0 else None, pin_memory=pin_memory)


def lr_scheduler(optimizer: torch.optim.Optimizer, kind: str, steps_per_epoch: int,
                 num_epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-batch learning-rate schedule, stepped after every optimizer step.

    Args:
        optimizer: its parameter groups' ``lr`` are the peaks.
        kind: ``"onecycle"`` (warm up, then anneal; also cycles momentum), ``"cosine"`` (from the peak to 0),
            ``"step"`` (the peak, then x0.1 after half and again after three quarters of the epochs) or
            ``"constant"``.
        steps_per_epoch: optimizer steps (batches) per epoch.
        num_epochs: epochs of the whole run.

    Returns:
        The scheduler, or None for ``"constant"``.

    Raises:
        ValueError: ``kind`` is not one of ``LR_SCHEDULES``.
    """
    total = steps_per_epoch * num_epochs
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, [g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    if kind == "step":
        milestones = sorted({steps_per_epoch * max(1, round(num_epochs * f)) for f in (0.5, 0.75)})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    if kind == "constant":
        return None
    raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {kind!r}")


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
        device = check_device("device", device)
        model.to(device)
    # its own generator: creating a loader iterator draws a seed, which must not shift the global RNG that
    # training uses (otherwise evaluating more or less often would change the training run)
    loader = DataLoader(TransformedDataset(dataset, transform), batch_size=batch_size, num_workers=num_workers,
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
    if not isinstance(schedule, Schedule):
        missing = [m for m in _SCHEDULE_MEMBERS if not hasattr(schedule, m)]
        raise TypeError(f"schedule must be a hrlib.train.Schedule (with {', '.join(_SCHEDULE_MEMBERS)}); "
                        f"{type(schedule).__name__} lacks {', '.join(missing)}")
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

    device = check_device("device", device)
    seed_everything(seed)
    model.to(device)
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / batch_size)  # type: ignore[arg-type]
    scheduler = lr_scheduler(opt, lr_schedule, steps_per_epoch, num_epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    resolutions = {schedule.resolution_at(e) for e in range(num_epochs)}
    fwd_macs = {r: count_cost(model, r).macs if count_macs else 0 for r in resolutions}

    state = TrainState(model, opt, schedule, History(), num_epochs)
    bar = tqdm(total=steps_per_epoch * num_epochs, desc="fit", unit="batch", disable=not progress,
               dynamic_ncols=True)
    try:
        for cb in callbacks:
            cb.on_fit_start(state)
        for epoch in range(num_epochs):
            state.epoch, state.stage = epoch, schedule.stage_at(epoch).name
            state.resolution = schedule.resolution_at(epoch)
            transform = schedule.train_transform(epoch)
            order_seed, aug_seed = epoch_seeds(seed, epoch)
            seed_transform(transform, aug_seed)  # random augmentation repeats under the same seed
            loader = epoch_loader(train_set, transform, batch_size=batch_size, order_seed=order_seed,
                                  num_workers=num_workers, pin_memory=device.type == "cuda")
            for cb in callbacks:
                cb.on_epoch_start(state)
            start = time.perf_counter()
            loss, acc, samples = train_epoch(state, loader, device=device, scheduler=scheduler, scaler=scaler,
                                             amp=amp, callbacks=callbacks, batch_transform=batch_transform, bar=bar)
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


def train_epoch(state: TrainState, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, device: torch.device,
                scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                scaler: torch.amp.GradScaler | None = None, amp: bool = False, callbacks: Sequence[Callback] = (),
                batch_transform: BatchTransform | None = None, bar: tqdm | None = None) -> tuple[float, float, int]:
    """One pass over ``batches`` with cross-entropy, one optimizer step per batch: the one epoch loop of hrlib.

    :func:`fit`, ``hrlib train`` and lesson 04's harness all train through it. Per batch: move to ``device``,
    ``batch_transform``, forward under autocast (``amp``), backward, unscale (so callbacks see true gradients),
    ``on_after_backward``, optimizer step, ``on_batch_end``, scheduler step.

    Args:
        state: the run's :class:`TrainState` (``model``, ``optimizer``; its ``step``, ``loss``, ``lr``,
            ``momentum``, ``batch_size`` and ``inputs`` are updated per batch).
        batches: ``(x, y)`` pairs: NCHW float images and int64 labels (N,) or soft labels (N, C).
        device: where to train.
        scheduler: stepped after every batch (None: constant LR).
        scaler: a GradScaler for float16 on CUDA (None: none).
        amp: mixed precision (bfloat16 autocast on the CPU, float16 on CUDA).
        callbacks: :class:`Callback` instances, called in order.
        batch_transform: ``x, y = batch_transform(x, y)`` on the device before the forward pass.
        bar: a progress bar advanced per batch.

    Returns:
        ``(mean loss, accuracy 0-1, samples)`` over the pass; accuracy counts the argmax of a soft label.
    """
    model, opt = state.model, state.optimizer
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = scaler if scaler is not None else torch.amp.GradScaler(device.type, enabled=False)
    model.train()
    loss_sum, correct, samples = 0.0, 0, 0
    for x, y in batches:
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
        if bar is not None:
            bar.update()
            bar.set_postfix({"epoch": state.epoch, "res": state.resolution, "loss": f"{loss_sum / samples:.3f}",
                             "acc": f"{correct / samples:.3f}"}, refresh=False)
    return loss_sum / samples, correct / samples, samples
