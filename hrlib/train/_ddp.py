"""What ``hrlib train`` adds under ``torchrun`` (lesson 08; package-internal): joining the process group, sums and
maxima over the ranks, rank 0's BatchNorm statistics everywhere, and the per-rank debug record of the sampler."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from hrlib.config import get_device
from hrlib.train.history import Callback, TrainState


def join_process_group(device_choice: str) -> tuple[int, int, torch.device, bool]:
    """``(rank, world_size, device, joined)``: join torchrun's process group when its variables are set.

    Args:
        device_choice: ``train.device`` (``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``).

    Returns:
        This process's rank, the number of processes, its device, and whether this call joined the group (and
        must destroy it).
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, get_device(None if device_choice == "auto" else device_choice), False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device_choice in ("auto", "cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank) if cuda else get_device("cpu" if device_choice == "auto" else
                                                                      device_choice)
    joined = not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    return dist.get_rank(), dist.get_world_size(), device, joined


def all_reduce(values: Sequence[float], op: str = "sum") -> list[float]:
    """``values`` summed (``op="sum"``) or maximized (``"max"``) over the ranks; unchanged without a process group.

    Args:
        values: this rank's numbers.
        op: ``"sum"`` or ``"max"``.

    Returns:
        The reduced numbers, the same on every rank.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.cpu().tolist()


def gather(obj: Any, world: int) -> list[Any]:
    """Every rank's ``obj`` (pickled), in rank order; ``[obj]`` on one process.

    Args:
        obj: this rank's object.
        world: the number of processes.

    Returns:
        One object per rank.
    """
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def reduce_epoch(loss: float, acc: float, samples: int, seconds: float) -> tuple[float, float, int, float]:
    """An epoch's numbers over all ranks (the ``reduce`` of ``hrlib train``'s ``EpochLoop`` under torchrun).

    Args:
        loss, acc: this rank's mean loss and accuracy.
        samples: this rank's training images.
        seconds: this rank's training time.

    Returns:
        ``(mean loss, accuracy, samples, seconds)`` over all ranks: means weighted by samples, the slowest rank's
        time.
    """
    loss_sum, correct, total = all_reduce([loss * samples, acc * samples, samples])
    return loss_sum / total, correct / total, int(total), all_reduce([seconds], "max")[0]


class RankSync(Callback):
    """The first callback of ``hrlib train`` under torchrun: after each epoch, rank 0's BatchNorm statistics (each
    rank updated its own in its last step) everywhere, as DDP does at the next forward; with ``debug``, the sample
    indices of each epoch in ``seen``.

    Args:
        model: the unwrapped model.
        sampler: the ``DistributedSampler`` (its order is recorded with ``debug``).
        seen: ``{epoch: indices}``, filled with ``debug``.
        debug: record the indices.
    """

    def __init__(self, model: nn.Module, sampler: Any, seen: dict[str, list[int]], debug: bool) -> None:
        self.model, self.sampler, self.seen, self.debug = model, sampler, seen, debug

    def on_epoch_start(self, state: TrainState) -> None:
        """Record the epoch's indices (after the sampler's ``set_epoch``).

        Args:
            state: the run's state.
        """
        if self.debug:
            self.seen[str(state.epoch)] = list(self.sampler)

    def on_epoch_end(self, state: TrainState) -> None:
        """Broadcast rank 0's buffers.

        Args:
            state: the run's state.
        """
        for buffer in self.model.buffers():
            dist.broadcast(buffer, 0)
