"""The one epoch loop (lessons 01, 04 and 08) and the pieces of an epoch that every training run in hrlib shares.

:func:`train_epoch` is the one pass over the batches (forward, backward, optimizer and LR-scheduler step):
:func:`hrlib.train.fit`, ``hrlib train`` and lesson 04's harness all train through it. :func:`epoch_seeds` derives
an epoch's data-order and augmentation seeds, :func:`epoch_loader` builds its DataLoader (through
:class:`TransformedDataset`), :func:`lr_scheduler` makes the per-batch LR schedule, and :class:`Schedule` is what a
run needs from a resolution schedule. :class:`hrlib.train.loop.EpochLoop` puts them together, epoch by epoch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hrlib._checks import check_bool, check_callable, check_dataset, check_device, check_int
from hrlib.config import seed_transform, seed_worker
from hrlib.models._meta import check_has_data
from hrlib.train.history import Callback, TrainState, check_callbacks

__all__ = ["Schedule", "TransformedDataset", "check_schedule", "epoch_loader", "epoch_seeds", "lr_scheduler",
           "train_epoch"]

Transform = Callable[..., dict[str, Any]]  # albumentations-style: transform(image=uint8 HWC)["image"] -> CHW tensor
BatchTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
LR_SCHEDULES = ("onecycle", "constant", "cosine", "step")
SCHEDULE_MEMBERS = ("num_epochs", "stage_at", "resolution_at", "train_transform")


@runtime_checkable
class Schedule(Protocol):
    """What :func:`hrlib.train.fit` needs from a schedule (epochs are 0-based): ``hrlib.staging.Schedule``
    (resolution stages) and ``hrlib.staging.FixedSchedule`` (one transform throughout) are the two in hrlib.

    Attributes:
        num_epochs: epochs of the whole run.
    """

    num_epochs: int

    def stage_at(self, epoch: int) -> Any: ...  # an object with .name (str) and .resolution (int, px)
    def resolution_at(self, epoch: int) -> int: ...
    def train_transform(self, epoch: int) -> Transform: ...


def check_schedule(name: str, schedule: object) -> Schedule:
    """Return ``schedule`` if it has the :class:`Schedule` members; raise ``TypeError`` naming ``name`` otherwise.

    Args:
        name: the argument's name, for the message.
        schedule: the candidate.

    Returns:
        ``schedule`` unchanged.

    Raises:
        TypeError: a member is missing.
    """
    if not isinstance(schedule, Schedule):
        missing = [m for m in SCHEDULE_MEMBERS if not hasattr(schedule, m)]
        raise TypeError(f"{name} must be a hrlib.train.Schedule (with {', '.join(SCHEDULE_MEMBERS)}); "
                        f"{type(schedule).__name__} lacks {', '.join(missing)}")
    return schedule


class TransformedDataset(Dataset):
    """Items ``(image, label, ...)`` of ``dataset`` as ``(transform(image=image)["image"], label)``.

    With a ``seed``, item ``i`` is augmented from ``(seed, i)`` alone: before each item the transform's own
    generators are set from ``numpy.random.SeedSequence([seed, i])`` (albumentations' ``set_random_state``, one
    NumPy and one Python generator shared by all its steps; else ``set_random_seed``). So an item is the same in
    the main process and in any DataLoader worker, in any order: the worker count does not change a run. A
    transform without either method, drawing from the global generators, is not covered.

    Args:
        dataset: a non-empty map-style dataset of ``(uint8 HWC image, label, ...)`` items.
        transform: albumentations-style, ``transform(image=image)["image"]`` is a CHW float tensor.
        seed: the augmentation seed (>= 0), or None to leave the transform's generators alone.

    Raises:
        TypeError: ``dataset`` is not a dataset, or ``transform`` is not callable.
        ValueError: ``dataset`` is empty, or ``seed`` < 0.
    """

    def __init__(self, dataset: Dataset, transform: Transform, seed: int | None = None) -> None:
        self.dataset = check_dataset("dataset", dataset)
        self.transform = check_callable("transform", transform, hint="transform(image=...)")
        self.seed = None if seed is None else check_int("seed", seed, 0)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[i]  # type: ignore[index]
        if self.seed is not None:
            _seed_item(self.transform, int(np.random.SeedSequence([self.seed, int(i)]).generate_state(1)[0]))
        return self.transform(image=item[0])["image"], int(item[1])


def _seed_item(transform: object, seed: int) -> None:
    """Give ``transform`` fresh generators from ``seed``: albumentations' ``set_random_state`` shares one NumPy and
    one Python generator among all the steps of a Compose (``set_random_seed`` would give every step the same
    stream, e.g. both flips the same coin); ``set_random_seed`` otherwise."""
    set_state = getattr(transform, "set_random_state", None)
    if callable(set_state):
        set_state(np.random.default_rng(seed), random.Random(seed))
    else:
        seed_transform(transform, seed)


def epoch_seeds(seed: int, epoch: int, rank: int = 0) -> tuple[int, int]:
    """The two seeds of one epoch of one process: the data order's and the augmentation's.

    Both come from ``numpy.random.SeedSequence([seed, epoch])`` alone, so an epoch repeats exactly under the same
    seed whether the run went straight through or was resumed. Rank ``r`` takes words ``2r`` and ``2r + 1`` of the
    sequence: rank 0's are those of a one-process run (so ``fit`` and ``hrlib train`` on one process draw the
    same), and under torchrun each rank draws its own augmentations (item by item, see :class:`TransformedDataset`; the
    ``DistributedSampler`` fixes the order there).

    Args:
        seed: the run's seed (>= 0).
        epoch: the 0-based epoch (>= 0).
        rank: the process's rank (>= 0; 0 on one process).

    Returns:
        ``(order_seed, augment_seed)``, each in [0, 2**32).

    Raises:
        TypeError, ValueError: an argument is not an int >= 0.
    """
    seed, epoch, rank = check_int("seed", seed, 0), check_int("epoch", epoch, 0), check_int("rank", rank, 0)
    words = np.random.SeedSequence([seed, epoch]).generate_state(2 * rank + 2)
    return int(words[2 * rank]), int(words[2 * rank + 1])


def epoch_loader(dataset: Dataset, transform: Transform, *, batch_size: int, order_seed: int,
                 num_workers: int = 0, pin_memory: bool = False, sampler: Any = None,
                 augment_seed: int | None = None) -> DataLoader:
    """The DataLoader of one epoch: ``dataset`` through ``transform``, shuffled by ``order_seed``.

    Args:
        dataset: a non-empty map-style dataset of ``(uint8 HWC image, label, ...)`` items.
        transform: the epoch's training transform (see :class:`TransformedDataset`).
        batch_size: images per batch (>= 1).
        order_seed: seeds the loader's generator (>= 0): the shuffle (without ``sampler``) and the workers' base seed.
        num_workers: DataLoader worker processes (>= 0). With ``augment_seed`` they change nothing but the speed;
            without, each seeds its copy of the transform (``seed_worker``), so the draws depend on their number.
        pin_memory: pin batches in page-locked memory (for CUDA).
        sampler: a sampler that fixes the order instead (e.g. a ``DistributedSampler`` after ``set_epoch``).
        augment_seed: item ``i`` is augmented from ``(augment_seed, i)`` alone (see :class:`TransformedDataset`);
            None leaves the transform's generators as they are.

    Returns:
        A new ``DataLoader``.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    data = TransformedDataset(dataset, transform, None if augment_seed is None else
                              check_int("augment_seed", augment_seed, 0))
    batch_size, num_workers = check_int("batch_size", batch_size), check_int("num_workers", num_workers, 0)
    generator = torch.Generator().manual_seed(check_int("order_seed", order_seed, 0))
    pin_memory = check_bool("pin_memory", pin_memory)
    if sampler is not None and (isinstance(sampler, str | bytes) or not hasattr(sampler, "__iter__")):
        raise TypeError(f"sampler must be a torch.utils.data.Sampler or None, got {type(sampler).__name__}")
    return DataLoader(data, batch_size=batch_size, shuffle=sampler is None, sampler=sampler, generator=generator,
                      num_workers=num_workers,
                      worker_init_fn=seed_worker if num_workers > 0 and augment_seed is None else None,
                      pin_memory=bool(pin_memory))


def lr_scheduler(optimizer: torch.optim.Optimizer, kind: str, steps_per_epoch: int,
                 num_epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-batch learning-rate schedule, stepped after every optimizer step.

    Args:
        optimizer: its parameter groups' ``lr`` are the peaks.
        kind: ``"onecycle"`` (warm up, then anneal; also cycles momentum), ``"cosine"`` (from the peak to 0),
            ``"step"`` (the peak, then x0.1 after half and again after three quarters of the epochs) or
            ``"constant"``.
        steps_per_epoch: optimizer steps (batches) per epoch (>= 1).
        num_epochs: epochs of the whole run (>= 1).

    Returns:
        The scheduler, or None for ``"constant"``.

    Raises:
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer``, or a count is not an int.
        ValueError: ``kind`` is not one of ``LR_SCHEDULES``, or a count is < 1.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(kind, str) or kind not in LR_SCHEDULES:
        raise ValueError(f"kind must be one of {LR_SCHEDULES}, got {kind!r}")
    steps_per_epoch, num_epochs = check_int("steps_per_epoch", steps_per_epoch), check_int("num_epochs", num_epochs)
    total = steps_per_epoch * num_epochs
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, [g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    if kind == "step":
        milestones = sorted({steps_per_epoch * max(1, round(num_epochs * f)) for f in (0.5, 0.75)})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    return None


def _momentum(group: dict[str, Any]) -> float:
    """SGD's ``momentum`` or Adam's first beta of an optimizer parameter group; NaN if it has neither."""
    if "betas" in group:
        return float(group["betas"][0])
    return float(group.get("momentum", math.nan))


def train_epoch(state: TrainState, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
                device: str | torch.device, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                scaler: torch.amp.GradScaler | None = None, amp: bool = False, callbacks: Sequence[Callback] = (),
                batch_transform: BatchTransform | None = None, bar: tqdm | None = None) -> tuple[float, float, int]:
    """One pass over ``batches`` with cross-entropy, one optimizer step per batch: the one epoch loop of hrlib.

    :func:`hrlib.train.fit`, ``hrlib train`` and lesson 04's harness all train through it. Long because the
    per-batch order (move, ``batch_transform``, forward under autocast, backward, unscale so callbacks see true
    gradients, ``on_after_backward``, step, ``on_batch_end``, scheduler step) is the recipe and reads best in one place.

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

    Raises:
        TypeError, ValueError: a bad ``state``, ``device`` or ``callbacks``, or no batches.
    """
    if not isinstance(state, TrainState):
        raise TypeError(f"state must be a hrlib.train.TrainState, got {type(state).__name__}")
    device, callbacks = check_device("device", device), check_callbacks("callbacks", callbacks)
    check_has_data("state.model", state.model)
    model, opt, amp_dtype = state.model, state.optimizer, torch.float16 if device.type == "cuda" else torch.bfloat16
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
        _advance(bar, state, loss_sum / samples, correct / samples)
    if samples == 0:
        raise ValueError("batches must yield at least one (x, y) batch, got none")
    return loss_sum / samples, correct / samples, samples


def _advance(bar: tqdm | None, state: TrainState, loss: float, acc: float) -> None:
    """One batch more on the progress bar, with the epoch's running loss and accuracy."""
    if bar is not None:
        bar.update()
        bar.set_postfix({"epoch": state.epoch, "res": state.resolution, "loss": f"{loss:.3f}", "acc": f"{acc:.3f}"},
                        refresh=False)
