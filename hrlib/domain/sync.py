"""What ``torch.nn.SyncBatchNorm`` synchronizes, shown on the CPU with two processes (lesson 04, claim C27).

``SyncBatchNorm`` computes BatchNorm statistics over the union of the batches of all processes in its
``process_group`` (a set of *ranks*, i.e. processes, usually one per GPU). It knows nothing about domains: with
two sites split over two processes, both processes normalize with the *pooled* statistics of both sites, which
is the opposite of per-domain statistics; and under ``DistributedDataParallel`` (``broadcast_buffers=True``) every
replica ends up with rank 0's running statistics, one set for all domains at test time. Its forward in training
also needs GPU tensors when more than one process takes part: :func:`syncbn_demo` records the error it raises on
the CPU and computes, with ``torch.distributed.all_reduce`` over the ``gloo`` backend, exactly the statistics it
would use.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from hrlib._checks import check_batch

__all__ = ["SyncDemo", "syncbn_demo"]


@dataclass(frozen=True)
class SyncDemo:
    """What :func:`syncbn_demo` measured.

    Attributes:
        local: (ranks, C) channel means of each rank's own batch (what per-domain BN uses).
        synced: (ranks, C) channel means of the synchronized batch (what SyncBatchNorm uses, the same on every rank).
        pooled: (C,) mean of all batches computed in one process (equal to ``synced``).
        cpu_error: SyncBatchNorm's message on the CPU.
    """

    local: np.ndarray
    synced: np.ndarray
    pooled: np.ndarray
    cpu_error: str


def _worker(rank: int, world: int, init_file: str, batches: list[torch.Tensor], out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x = batches[rank]
        bn = nn.SyncBatchNorm(x.shape[1]).train()
        try:
            bn(x)
            error = ""
        except (ValueError, RuntimeError) as e:  # needs GPU tensors when several processes take part
            error = f"{type(e).__name__}: {e}"
        # what SyncBatchNorm would compute: sums and counts all-reduced over the process group
        total = x.sum(dim=(0, 2, 3))
        count = torch.tensor([float(x.numel() // x.shape[1])])
        dist.all_reduce(total)
        dist.all_reduce(count)
        local = x.mean(dim=(0, 2, 3))
        torch.save({"local": local, "synced": total / count, "error": error}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def syncbn_demo(batches: list[torch.Tensor]) -> SyncDemo:
    """Run one SyncBatchNorm training step on the CPU with one process per batch and report the statistics.

    Takes a few seconds: it starts ``len(batches)`` processes.

    Args:
        batches: at least 2 finite float (N, C, H, W) tensors with the same C, one per process (e.g. one domain's
            features each).

    Returns:
        The :class:`SyncDemo`.

    Raises:
        TypeError, ValueError: bad batches (the message names them).
    """
    if not isinstance(batches, list | tuple) or len(batches) < 2:
        raise ValueError(f"batches must be a list of at least 2 (N, C, H, W) tensors, one per process, got {batches!r}")
    for i, b in enumerate(batches):
        check_batch(f"batches[{i}]", b)
    channels = {b.shape[1] for b in batches}
    if len(channels) != 1:
        raise ValueError("batches must be float (N, C, H, W) tensors with the same number of channels C, got shapes "
                         f"{[tuple(getattr(b, 'shape', ())) for b in batches]}")
    batches = [b.detach().float().cpu() for b in batches]
    with tempfile.TemporaryDirectory() as tmp:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"  # fork: no re-import of torch
        mp.start_processes(_worker, args=(len(batches), os.path.join(tmp, "init"), batches, tmp),
                           nprocs=len(batches), join=True, start_method=method)
        res = [torch.load(os.path.join(tmp, f"{r}.pt")) for r in range(len(batches))]
    pooled = torch.cat([b.permute(1, 0, 2, 3).reshape(b.shape[1], -1) for b in batches], 1).mean(1)
    return SyncDemo(np.stack([r["local"].numpy() for r in res]), np.stack([r["synced"].numpy() for r in res]),
                    pooled.numpy(), res[0]["error"])
