"""Train a classifier on a resolution schedule and evaluate it class by class (lesson 01; used in lessons 02-07).

:func:`fit` trains epoch by epoch at the resolution a schedule gives (any object with the :class:`Schedule`
members, e.g. one from ``hrlib.staging``) and returns a :class:`History` of per-epoch rows; :class:`Callback`
subclasses hook into it (early stopping, grad-norm monitors, logging). It runs the same :class:`EpochLoop` as
``hrlib train``. :func:`evaluate` returns an :class:`EvalResult` with loss, accuracy, per-class accuracy and the
confusion matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hrlib._checks import check_bool, check_callable, check_dataset, check_device, check_float, check_int, check_model
from hrlib.config import seed_everything
from hrlib.models._meta import check_has_data
from hrlib.models.networks import eval_mode
from hrlib.train.engine import LR_SCHEDULES, BatchTransform, Schedule, Transform, TransformedDataset, check_schedule
from hrlib.train.history import Callback, EvalResult, History, TrainState, check_callbacks
from hrlib.train.loop import EpochLoop, build_optimizer, forward_macs

__all__ = ["evaluate", "fit"]


def evaluate(model: nn.Module, dataset: Dataset, transform: Transform, *, batch_size: int = 64,
             device: str | torch.device | None = None, num_classes: int | None = None,
             num_workers: int = 0) -> EvalResult:
    """Evaluate ``model`` on ``dataset`` under no_grad, in eval mode (each module's mode restored afterwards).

    Args:
        model: the classifier.
        dataset: a non-empty map-style dataset of ``(uint8 HWC image, label, ...)`` items.
        transform: deterministic, albumentations-style (``transform(image=image)["image"]`` is a CHW float tensor).
        batch_size: images per forward pass (>= 1).
        device: where to evaluate; default the model's (the model is moved there if given).
        num_classes: size of the confusion matrix (>= the model's number of logits); default that number.
        num_workers: DataLoader worker processes (>= 0).

    Returns:
        The :class:`EvalResult`.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    model, dataset = check_has_data("model", check_model("model", model)), check_dataset("dataset", dataset)
    data = TransformedDataset(dataset, check_callable("transform", transform, hint="transform(image=...)"))
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
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(0))
    with eval_mode(model), torch.no_grad():
        outputs = [(model(x.to(device)).float().cpu(), y) for x, y in loader]
    logits, labels = torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])
    width = logits.shape[1]
    k = width if num_classes is None else num_classes
    if k < width or labels.max() >= width:
        raise ValueError(f"num_classes must be >= the model's {width} logits, and dataset labels < {width}; got "
                         f"num_classes={num_classes} and labels up to {labels.max().item()}")
    loss = F.cross_entropy(logits, labels).item()
    preds, y = logits.argmax(1).numpy(), labels.numpy().astype(np.int64)
    confusion = np.bincount(y * k + preds, minlength=k * k).reshape(k, k)
    support = confusion.sum(1)
    per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    return EvalResult(loss, float((preds == y).mean()), per_class, confusion, preds, y, logits.numpy())


def _check_fit_arguments(model: object, train_set: object, schedule: object, val_set: object, val_transform: object,
                         epochs_per_eval: object, lr: object, weight_decay: object, batch_size: object,
                         lr_schedule: object, optimizer: object, device: object, amp: object, callbacks: object,
                         seed: object, num_workers: object, progress: object, count_macs: object,
                         batch_transform: object) -> None:
    """Raise ``TypeError``/``ValueError`` naming the first bad argument of :func:`fit` (before anything changes)."""
    check_has_data("model", check_model("model", model))
    check_dataset("train_set", train_set)
    check_int("schedule.num_epochs", check_schedule("schedule", schedule).num_epochs)
    if val_set is not None:
        check_dataset("val_set", val_set)
    check_callable("val_transform", val_transform, allow_none=val_set is None,
                   hint="transform(image=...), required with val_set")
    check_int("epochs_per_eval", epochs_per_eval)
    check_float("lr", lr, 0.0, low_open=True)
    check_float("weight_decay", weight_decay, 0.0)
    check_int("batch_size", batch_size)
    if not isinstance(lr_schedule, str) or lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    check_device("device", device)
    check_callbacks("callbacks", callbacks)
    check_int("seed", seed, 0)
    check_int("num_workers", num_workers, 0)
    for name, flag in (("amp", amp), ("progress", progress), ("count_macs", count_macs)):
        check_bool(name, flag)
    check_callable("batch_transform", batch_transform, allow_none=True, hint="(x, y) -> (x, y)")


def fit(model: nn.Module, train_set: Dataset, schedule: Schedule, *, val_set: Dataset | None = None,
        val_transform: Transform | None = None, epochs_per_eval: int = 1, lr: float = 3e-3,
        weight_decay: float = 1e-4, batch_size: int = 16, lr_schedule: str = "onecycle",
        optimizer: torch.optim.Optimizer | None = None, device: str | torch.device | None = None,
        amp: bool = False, callbacks: Sequence[Callback] = (), seed: int = 0, num_workers: int = 0,
        progress: bool = True, count_macs: bool = True, batch_transform: BatchTransform | None = None) -> History:
    """Train ``model`` with cross-entropy for ``schedule.num_epochs`` epochs, each at its stage's resolution.

    Args:
        model: the classifier; trained in place.
        train_set: map-style dataset of ``(uint8 HWC image, label, ...)``; epoch ``e`` transforms its images with
            ``schedule.train_transform(e)`` and visits them in an order fixed by ``(seed, e)``.
        schedule: a :class:`Schedule` (e.g. ``hrlib.staging.Schedule``).
        val_set, val_transform: validation data and its deterministic transform (required with ``val_set``).
        epochs_per_eval: validate every this many epochs (>= 1) and at the last one.
        lr, weight_decay: peak learning rate (> 0) and decay (>= 0) of the default AdamW.
        batch_size: images per step (>= 1).
        lr_schedule: stepped after every batch (see :func:`hrlib.train.lr_scheduler`): ``"onecycle"``,
            ``"cosine"``, ``"step"`` (x0.1 after half and three quarters of the epochs) or ``"constant"``.
        optimizer: use this one instead (its settings kept; its groups' lr are the peaks).
        device: ``"cpu"``/``"cuda"``/``"mps"`` or a ``torch.device``; default ``hrlib.config.get_device()``.
        amp: mixed precision (bfloat16 autocast on CPU, float16 with a GradScaler on CUDA).
        callbacks: :class:`Callback` instances, called in order.
        seed: seeds Python, NumPy and torch at the start (``seed_everything``) and each epoch (>= 0).
        num_workers: DataLoader processes (>= 0).
        progress: show a progress bar.
        count_macs: fill ``train_macs`` (see :class:`History`).
        batch_transform: ``x, y = batch_transform(x, y)`` on each training batch on the device (e.g. torchvision's
            ``v2.MixUp``); soft labels ``(N, C)`` count their argmax as the true class for accuracy.

    Returns:
        The :class:`History`, one row per epoch.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    _check_fit_arguments(**locals())  # every argument, before anything changes
    num_epochs, device = int(schedule.num_epochs), check_device("device", device)
    seed_everything(seed)
    model.to(device)
    opt, scheduler, scaler = build_optimizer(
        model, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule, num_epochs=num_epochs, device=device,
        amp=amp, optimizer=optimizer, steps_per_epoch=math.ceil(len(train_set) / batch_size))  # type: ignore
    fwd_macs = forward_macs(model, schedule) if count_macs else {}
    bar = tqdm(total=math.ceil(len(train_set) / batch_size) * num_epochs, desc="fit", unit="batch",  # type: ignore
               disable=not progress, dynamic_ncols=True)

    def validate(epoch: int) -> EvalResult:
        val = evaluate(model, val_set, val_transform, batch_size=batch_size, device=device,  # type: ignore[arg-type]
                       num_workers=num_workers)
        bar.set_description(f"fit (val_acc {val.accuracy:.3f})")
        return val

    loop = EpochLoop(train_set, batch_size, seed, device, scheduler, scaler, amp, callbacks, batch_transform,
                     num_workers, fwd_macs, None if val_set is None else validate, epochs_per_eval)
    return loop.run(TrainState(model, opt, schedule, History(), num_epochs), range(num_epochs), bar)

