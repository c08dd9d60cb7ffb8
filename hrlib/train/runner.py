"""``hrlib train --config FILE``: the whole staged training from one TOML or YAML file, on one process or under
``torchrun`` with DistributedDataParallel (issue 9).

:func:`load_config` reads and validates a config (unknown keys and bad values raise :class:`ConfigError` naming the
key path and the value, e.g. ``schedule.stages[1].resolution must be an int >= 8, got 'big'``); :func:`train`
runs it: data (generated slides or random regions of a tile store), the ``hrlib.staging`` schedule, a
``hrlib.models`` classifier, AdamW with a per-batch LR schedule, ``hrlib.diagnostics.monitors`` callbacks, a
checkpoint per
epoch (:mod:`hrlib.train.checkpoint`), ``history.json`` and a ``hrlib.analysis.runs`` run record in the output folder.

Under ``torchrun --nproc_per_node=N`` (RANK / WORLD_SIZE / LOCAL_RANK set) each process joins the process group
(gloo on the CPU, nccl on CUDA), the model is wrapped in ``DistributedDataParallel`` (SyncBatchNorm only on CUDA
with several processes), a ``DistributedSampler`` gives each rank its share (``set_epoch`` reshuffles every
epoch), and only rank 0 shows progress, logs, writes checkpoints and records the run. ``train.batch_size`` is per
process: the global batch is ``batch_size x N`` and the LR is not rescaled. Epoch ``e`` of rank ``r`` draws its
order and augmentation from ``(seed, e, r)`` only, so a run stopped and resumed ends with the same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from hrlib._checks import check_int
from hrlib._io import atomic_write
from hrlib.config import get_device, seed_everything, seed_transform, seed_worker
from hrlib.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from hrlib.train.config import ConfigError, _build_callbacks, _read_labels, load_config, validate_config
from hrlib.train.engine import TransformedDataset, evaluate, train_epoch
from hrlib.train.history import History, TrainState

__all__ = ["ConfigError", "add_arguments", "load_config", "main", "train", "validate_config"]

def _identity(image: np.ndarray) -> np.ndarray:
    return image


def _datasets(cfg: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """``(train_set, val_set or None, what identifies the data for the run record)``. Generated slides: the
    ``n_val`` validation slides come after the training ones (never the same slides). A tile store: validation
    regions come from held-out images (the last ``n_val / (n_samples + n_val)`` of the sorted image ids, at least
    one), so no image is seen in both."""
    from torch.utils.data import Subset

    d = cfg["data"]
    if d["source"] == "generator":
        from hrlib.data.slides import SlideDataset

        whole = SlideDataset(d["n"] + d["n_val"], d["size"], seed=d["seed"], sites=d["sites"], in_memory=True)
        n, ident = d["n"], whole
    else:
        from hrlib.pipeline.loaders import RegionDataset

        def regions(n: int, ids: Sequence[str] | None, seed: int) -> RegionDataset:
            return RegionDataset(d["path"], d["region"], n, level=d["level"], transform=_identity,
                                 labels=_read_labels(d["labels"]), seed=seed, cache=d["cache"] or None, image_ids=ids)

        ident = [Path(d["path"]) / "manifest.json", Path(d["labels"])]
        if not d["n_val"]:
            return regions(d["n_samples"], None, d["seed"]), None, ident
        ids = regions(1, None, d["seed"]).image_ids
        if len(ids) < 2:
            raise ConfigError(f"data.n_val needs a store with at least 2 images (validation uses held-out images), "
                              f"got {len(ids)}")
        n_held = min(len(ids) - 1, max(1, round(len(ids) * d["n_val"] / (d["n_samples"] + d["n_val"]))))
        return (regions(d["n_samples"], ids[:-n_held], d["seed"]), regions(d["n_val"], ids[-n_held:], d["seed"] + 1),
                ident)
    val = Subset(whole, range(n, len(whole))) if d["n_val"] else None
    return Subset(whole, range(n)), val, ident


def _lr_scheduler(opt: torch.optim.Optimizer, kind: str, per_epoch: int, num_epochs: int) -> Any:
    """The per-batch LR schedule of :func:`hrlib.train.fit` (same rules), or None for ``"constant"``."""
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in opt.param_groups],
                                                   total_steps=per_epoch * num_epochs)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, per_epoch * num_epochs)
    if kind == "step":
        milestones = sorted({per_epoch * max(1, round(num_epochs * f)) for f in (0.5, 0.75)})
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    return None


def _distributed(device_choice: str) -> tuple[int, int, torch.device, bool]:
    """``(rank, world_size, device, joined)``: join torchrun's process group when its variables are set."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        device = get_device(None if device_choice == "auto" else device_choice)
        return 0, 1, device, False
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


def _differences(a: object, b: object, path: str = "") -> list[str]:
    """Key paths where two configs differ, as ``"path: checkpoint A, config B"``."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: checkpoint {a!r}, config {b!r}"]


def _reduce(values: Sequence[float], op: Any = None) -> list[float]:
    """Sum (or ``op``) ``values`` over the ranks; unchanged without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
    return t.cpu().tolist()


def _gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def train(config: Mapping[str, Any], *, out: str | os.PathLike | None = None, resume: bool = False,
          stop_after: int | None = None, progress: bool | None = None) -> History:
    """Run a config (a dict or :func:`load_config`'s result) and return the :class:`hrlib.train.History`.

    ``out``: output folder (default ``output.dir``); it receives ``config.json``, ``history.json``,
    ``checkpoints/epoch_NNNN.pt`` (the newest ``output.keep_last``), ``runs.jsonl`` (one ``hrlib.analysis.runs`` record)
    and, once the schedule is finished, ``model.pt`` (the weights). ``resume``: continue from the newest
    checkpoint there; the config must be the same apart from ``output``. ``stop_after`` (>= 1): end after that
    many epochs in total, as an interruption would (the LR schedule still spans the whole run). ``progress``:
    progress bar and log lines (default ``output.progress``); only rank 0 shows them.
    """
    cfg = validate_config(config)
    if out is not None and not isinstance(out, str | os.PathLike):
        raise TypeError(f"out must be a folder path (str or os.PathLike) or None, got {type(out).__name__} {out!r}")
    for name, value in (("resume", resume), ("progress", progress)):
        if not isinstance(value, bool) and not (name == "progress" and value is None):
            raise TypeError(f"{name} must be a bool{' or None' * (name == 'progress')}, got {type(value).__name__} "
                            f"{value!r}")
    if stop_after is not None:
        check_int("stop_after", stop_after)
    out_dir = Path(out if out is not None else cfg["output"]["dir"])
    t = cfg["train"]
    rank, world, device, joined = _distributed(t["device"])
    try:
        history = _run(cfg, out_dir, rank, world, device, resume=resume, stop_after=stop_after,
                       progress=cfg["output"]["progress"] if progress is None else bool(progress))
        if joined:
            dist.barrier()  # no rank leaves while another still writes
        return history
    finally:
        if joined:
            dist.destroy_process_group()


def _resume(out_dir: Path, cfg: Mapping[str, Any], parts: Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    """Load the newest checkpoint of ``out_dir`` into ``parts`` (model, optimizer, scheduler, scaler)."""
    found = latest_checkpoint(out_dir)
    if found is None:
        raise FileNotFoundError(f"resume needs a checkpoint in {out_dir / 'checkpoints'}, found none; run without "
                                f"--resume first")
    ckpt = load_checkpoint(found)
    diffs = _differences({k: v for k, v in ckpt["config"].items() if k != "output"},
                         {k: v for k, v in cfg.items() if k != "output"})
    if diffs:
        raise ConfigError(f"config must match the checkpoint's to resume from {found}; {len(diffs)} difference(s), "
                          f"first {diffs[0]}")
    for key, part in parts.items():
        if part is not None:
            part.load_state_dict(ckpt[key])
    return ckpt, found


def _run(cfg: dict[str, Any], out_dir: Path, rank: int, world: int, device: torch.device, *, resume: bool,
         stop_after: int | None, progress: bool) -> History:
    from hrlib.analysis.runs import record_run
    from hrlib.models import build_model, count_cost
    from hrlib.staging import Schedule, Stage, val_transform

    t, sc, lead = cfg["train"], cfg["schedule"], rank == 0
    seed_everything(t["seed"])
    train_set, val_set, ident = _datasets(cfg)
    schedule = Schedule([Stage(**s) for s in sc["stages"]], sc["source_size"], sc["allow_upsample"])
    num_epochs = schedule.num_epochs
    end = num_epochs if stop_after is None else min(num_epochs, check_int("stop_after", stop_after))
    num_classes = 3 if cfg["data"]["source"] == "generator" else cfg["data"]["num_classes"]
    model = build_model(cfg["model"]["name"], num_classes, **cfg["model"]["kwargs"])
    fwd_macs = {s.resolution: count_cost(model, s.resolution).macs for s in schedule.stages}
    if device.type == "cuda" and world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=t["seed"])
    per_epoch = math.ceil(len(sampler) / t["batch_size"])
    scheduler = _lr_scheduler(opt, t["lr_schedule"], per_epoch, num_epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=t["amp"] and device.type == "cuda")
    callbacks = _build_callbacks(cfg["diagnostics"])
    history, start, step, rng = History(), 0, 0, None
    if resume:
        ckpt, found = _resume(out_dir, cfg, {"model": model, "optimizer": opt, "scheduler": scheduler,
                                             "scaler": scaler})
        history, start, step, rng = History(ckpt["history"]), ckpt["epoch"] + 1, ckpt["step"], ckpt["rng"]
        if lead and progress:
            tqdm.write(f"resuming from {found} (epoch {start} of {num_epochs})")
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model
    state = TrainState(net, opt, schedule, history, num_epochs, step=step)
    if lead:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(out_dir / "config.json", lambda fh: json.dump(cfg, fh, indent=1))
    seen: dict[str, list[int]] = {}
    bar = tqdm(total=per_epoch * max(0, end - start), desc="train", unit="batch", dynamic_ncols=True,
               disable=not (progress and lead))
    if rng is not None and rank < len(rng):  # last: nothing may draw between the restore and the first epoch
        restore_rng_state(rng[rank])
    stopped = False
    try:
        for cb in callbacks:
            cb.on_fit_start(state)
        for epoch in range(start, end):
            sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank, split between them
            stage = schedule.stage_at(epoch)
            state.epoch, state.stage, state.resolution = epoch, stage.name, stage.resolution
            transform = schedule.train_transform(epoch)
            aug_seed, loader_seed = np.random.SeedSequence([t["seed"], epoch, rank]).generate_state(2)
            seed_transform(transform, int(aug_seed))
            loader = DataLoader(TransformedDataset(train_set, transform), batch_size=t["batch_size"], sampler=sampler,
                                num_workers=t["workers"], worker_init_fn=seed_worker if t["workers"] else None,
                                generator=torch.Generator().manual_seed(int(loader_seed)),
                                pin_memory=device.type == "cuda")
            if cfg["output"]["debug_ranks"]:
                seen[str(epoch)] = list(sampler)
            for cb in callbacks:
                cb.on_epoch_start(state)
            began = time.perf_counter()
            loss, acc, samples = train_epoch(state, loader, device=device, scheduler=scheduler, scaler=scaler,
                                             amp=t["amp"], callbacks=callbacks, bar=bar)
            loss_sum, correct, samples = _reduce([loss * samples, acc * samples, samples])
            seconds = _reduce([time.perf_counter() - began], dist.ReduceOp.MAX)[0]
            val = None
            if val_set is not None and lead and ((epoch + 1) % t["epochs_per_eval"] == 0 or epoch == num_epochs - 1):
                vt = val_transform(stage.resolution, source_size=schedule.source_size,
                                   allow_upsample=schedule.allow_upsample)
                val = evaluate(model, val_set, vt, batch_size=t["batch_size"], device=device, num_classes=num_classes)
            state.row = {"epoch": epoch, "stage": stage.name, "resolution": stage.resolution, "lr": state.lr,
                         "momentum": state.momentum, "train_loss": loss_sum / samples, "train_acc": correct / samples,
                         "val_loss": math.nan if val is None else val.loss,
                         "val_acc": math.nan if val is None else val.accuracy, "seconds": seconds,
                         "train_macs": 3 * fwd_macs[stage.resolution] * samples, "samples": int(samples)}
            history.rows.append(state.row)
            if world > 1:  # the BN statistics each rank updated in its last step: rank 0's everywhere, as DDP does
                for buffer in model.buffers():
                    dist.broadcast(buffer, 0)
            for cb in callbacks:
                cb.on_epoch_end(state)
            stopped = _reduce([float(state.stop_training)], dist.ReduceOp.MAX)[0] > 0  # one rank stops all
            states = _gather(rng_state(), world)
            if lead:
                save_checkpoint(checkpoint_path(out_dir, epoch), {
                    "epoch": epoch, "step": state.step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": None if scheduler is None else scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "rng": states, "history": history.as_rows(), "config": cfg,
                    "world_size": world}, keep_last=cfg["output"]["keep_last"])
                history.to_json(out_dir / "history.json")
                if progress:
                    r = state.row
                    tqdm.write(f"epoch {epoch + 1}/{num_epochs} {r['stage']} {r['resolution']}px: loss "
                               f"{r['train_loss']:.3f} acc {r['train_acc']:.3f} val_acc {r['val_acc']:.3f} "
                               f"{r['seconds']:.1f}s")
            if stopped:
                break
    finally:
        bar.close()
    for cb in callbacks:
        cb.on_fit_end(state)
    finished = stopped or (len(history) > 0 and history.rows[-1]["epoch"] == num_epochs - 1)
    if cfg["output"]["debug_ranks"]:
        debug = out_dir / "debug"
        debug.mkdir(parents=True, exist_ok=True)
        atomic_write(debug / f"rank{rank}.json", lambda fh: json.dump({"world_size": world, "indices": seen}, fh))
        atomic_write(debug / f"rank{rank}_params.pt", lambda fh: torch.save(model.state_dict(), fh), mode="wb")
    if lead:
        if finished:
            atomic_write(out_dir / "model.pt", lambda fh: torch.save(model.state_dict(), fh), mode="wb")
        rows = history.rows[-(len(history) - start):] if len(history) > start else []
        seconds, samples = sum(r["seconds"] for r in rows), sum(r["samples"] for r in rows)
        last = history.rows[-1] if len(history) else {}
        record_run(out_dir / "runs.jsonl", params=cfg, seed=t["seed"], dataset=ident, metrics={
            "epochs": len(history), "finished": finished, "resumed_at_epoch": start if resume else None,
            "world_size": world, "train_seconds": seconds, "samples_per_s": samples / seconds if seconds else None,
            **{k: last.get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}})
    return history


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``hrlib train`` options (shared by ``hrlib train`` and ``python -m hrlib.train``), added to ``parser``."""
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"parser must be an argparse.ArgumentParser, got {type(parser).__name__}")

    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
        return int(text)

    parser.add_argument("--config", required=True, metavar="FILE", help="a .toml or .yaml training config")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: output.dir)")
    parser.add_argument("--stop-after", type=positive, default=None, metavar="EPOCHS",
                        help="stop after this many epochs in total, as an interruption would (resume later)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    return parser


def run_cli(ns: argparse.Namespace) -> int:
    """Run parsed ``hrlib train`` options; 0 on success, 2 for a bad config or a missing file (message on stderr)."""
    try:
        history = train(load_config(ns.config), out=ns.out, resume=ns.resume, stop_after=ns.stop_after,
                        progress=False if ns.quiet else None)
    except (ConfigError, FileNotFoundError) as e:
        print(f"hrlib train: error: {e}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0" and len(history):
        seconds, samples = sum(history.column("seconds")), sum(history.column("samples"))
        world = os.environ.get("WORLD_SIZE", "1")
        print(f"trained {len(history)} epochs on {world} process(es): {samples / seconds:.1f} samples/s, final "
              f"train_loss {history.last('train_loss'):.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hrlib.train --config FILE [--resume] [--out DIR] [--stop-after EPOCHS] [--quiet]``."""
    if argv is not None and (isinstance(argv, str) or not isinstance(argv, Sequence)
                             or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str (command-line arguments) or None, got {argv!r:.80}")
    parser = add_arguments(argparse.ArgumentParser(prog="hrlib train", description="train from a config file"))
    return run_cli(parser.parse_args(argv))
