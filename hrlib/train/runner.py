"""``hrlib train --config FILE`` (lesson 08): a whole staged training from one TOML or YAML file, on one process or
under ``torchrun`` with DistributedDataParallel.

:func:`run_config` runs a config (:func:`hrlib.train.load_config`): data (generated slides or random regions of a
tile store), the ``hrlib.staging`` schedule, a ``hrlib.models`` classifier, AdamW with a per-batch LR schedule,
``hrlib.diagnostics.monitors`` callbacks, a checkpoint per epoch (:mod:`hrlib.train.checkpoint`), ``history.json``
and a ``hrlib.analysis.runs`` run record in the output folder. It trains through the same
:class:`hrlib.train.loop.EpochLoop` as :func:`hrlib.train.fit`: on one process, with the same model, data, schedule
and seed, both end with bit-identical weights. Its extras ride on the loop: checkpoints and logs are a callback.

Under ``torchrun --nproc_per_node=N`` (RANK / WORLD_SIZE / LOCAL_RANK set) each process joins the process group
(gloo on the CPU, nccl on CUDA), the model is wrapped in ``DistributedDataParallel`` (SyncBatchNorm only on CUDA
with several processes), a ``DistributedSampler`` gives each rank its share (``set_epoch`` reshuffles every
epoch), and only rank 0 shows progress, logs, writes checkpoints and records the run (:mod:`hrlib.train._ddp`).
``train.batch_size`` is per process: the global batch is ``batch_size x N`` and the LR is not rescaled. Epoch ``e``
of rank ``r`` draws its order and augmentation from ``(seed, e, r)`` only (:func:`hrlib.train.epoch_seeds`), so a
run stopped and resumed ends with the same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler, Subset
from tqdm.auto import tqdm

from hrlib._checks import check_bool, check_int, check_path
from hrlib._io import atomic_write
from hrlib.config import seed_everything
from hrlib.train._ckptfiles import check_out_folder
from hrlib.train._ddp import RankSync, join_process_group, reduce_epoch
from hrlib.train._resume import (
    CheckpointWriter,
    apply_checkpoint,
    finished_note,
    load_for_resume,
    refuse_another_run,
    restore_rng,
)
from hrlib.train.config import build_callbacks, load_config, validate_config
from hrlib.train.fitting import evaluate
from hrlib.train.history import EvalResult, History, TrainState
from hrlib.train.loop import EpochLoop, build_optimizer, forward_macs
from hrlib.train.schema import ConfigError, read_labels

__all__ = ["add_arguments", "main", "run_cli", "run_config"]


def _identity(image: np.ndarray) -> np.ndarray:
    return image


def _datasets(cfg: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """``(train_set, val_set or None, what identifies the data for the run record)``. Generated slides: the
    ``n_val`` validation slides come after the training ones (never the same slides). A tile store: validation
    regions come from held-out images (the last ``n_val / (n_samples + n_val)`` of the sorted image ids, at least
    one), so no image is seen in both."""
    d = cfg["data"]
    if d["source"] == "generator":
        from hrlib.data.slides import SlideDataset

        whole = SlideDataset(d["n"] + d["n_val"], d["size"], seed=d["seed"], sites=d["sites"], in_memory=True)
        val = Subset(whole, range(d["n"], len(whole))) if d["n_val"] else None
        return Subset(whole, range(d["n"])), val, whole
    from hrlib.pipeline.loaders import RegionDataset

    def regions(n: int, ids: Sequence[str] | None, seed: int) -> RegionDataset:
        return RegionDataset(d["path"], d["region"], n, level=d["level"], transform=_identity,
                             labels=read_labels(d["labels"]), seed=seed, cache=d["cache"] or None, image_ids=ids)

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


def _num_classes(cfg: Mapping[str, Any]) -> int:
    return 3 if cfg["data"]["source"] == "generator" else cfg["data"]["num_classes"]


def _schedule(cfg: Mapping[str, Any]) -> Any:
    """The ``hrlib.staging.Schedule`` of ``[schedule]`` (a stage's fields by position: name, resolution, epochs,
    policy)."""
    from hrlib.staging import Schedule, Stage

    sc = cfg["schedule"]
    stages = [Stage(s["name"], s["resolution"], s["num_epochs"], s["policy"]) for s in sc["stages"]]
    return Schedule(stages, sc["source_size"], sc["allow_upsample"])


def _validator(cfg: Mapping[str, Any], model: nn.Module, val_set: Any, schedule: Any, rank: int,
               device: torch.device) -> Callable[[int], EvalResult | None] | None:
    """The loop's ``validate``: rank 0 evaluates ``val_set`` at the epoch's stage resolution; None without data."""
    from hrlib.staging import val_transform

    if val_set is None:
        return None

    def validate(epoch: int) -> EvalResult | None:
        if rank != 0:
            return None
        resolution = schedule.stage_at(epoch).resolution
        vt = val_transform(resolution, source_size=schedule.source_size, allow_upsample=schedule.allow_upsample)
        return evaluate(model, val_set, vt, batch_size=cfg["train"]["batch_size"], device=device,
                        num_classes=_num_classes(cfg))

    return validate


def _model_and_data(cfg: Mapping[str, Any], world: int, device: torch.device) -> tuple[nn.Module, Any, Any, Any]:
    """Seed, build the model (first: ``fit`` with a model built right after ``seed_everything`` starts from the same
    weights), then the data; ``(model on device, train_set, val_set, data identity)``."""
    from hrlib.models.networks import build_model

    seed_everything(cfg["train"]["seed"])
    model = build_model(cfg["model"]["name"], _num_classes(cfg), **cfg["model"]["kwargs"])
    train_set, val_set, ident = _datasets(cfg)
    if device.type == "cuda" and world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model.to(device), train_set, val_set, ident


def _run(cfg: dict[str, Any], out_dir: Path, rank: int, world: int, device: torch.device, *, resume: bool,
         stop_after: int | None, progress: bool) -> tuple[History, str | None]:
    """One process's part of a run: check the folder (a fresh run needs one without checkpoints; a resume, the
    checkpoints of one unfinished run), then train. ``(history, None)``, or ``(the recorded history, a note)`` for
    a run that had already finished (then no file is touched)."""
    resumed = load_for_resume(out_dir, cfg) if resume else None
    if resumed is None:
        refuse_another_run(out_dir)
    else:
        note = finished_note(resumed[0], out_dir, _schedule(cfg).num_epochs)
        if note is not None:
            if rank == 0 and progress:
                tqdm.write(note)
            return History(resumed[0]["history"]), note
    return _train(cfg, out_dir, rank, world, device, resumed=resumed, stop_after=stop_after, progress=progress), None


def _train(cfg: dict[str, Any], out_dir: Path, rank: int, world: int, device: torch.device, *,
           resumed: tuple[dict[str, Any], Path] | None, stop_after: int | None, progress: bool) -> History:
    """Build, resume, train through the shared :class:`EpochLoop`, then finish."""
    t, schedule, lead = cfg["train"], _schedule(cfg), rank == 0
    num_epochs = schedule.num_epochs
    model, train_set, val_set, ident = _model_and_data(cfg, world, device)
    seed_everything(t["seed"])  # as fit does from here on: the same global random state at the first batch
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=t["seed"]) \
        if world > 1 else None
    steps = math.ceil((len(train_set) if sampler is None else len(sampler)) / t["batch_size"])
    opt, scheduler, scaler = build_optimizer(model, lr=t["lr"], weight_decay=t["weight_decay"], amp=t["amp"],
                                             lr_schedule=t["lr_schedule"], steps_per_epoch=steps,
                                             num_epochs=num_epochs, device=device)
    fwd_macs = forward_macs(model, schedule)
    parts = {"model": model, "optimizer": opt, "scheduler": scheduler, "scaler": scaler}
    state = TrainState(model, opt, schedule, History(), num_epochs)
    start, run_id = 0, uuid.uuid4().hex  # a fresh run's id, in each of its checkpoints
    if resumed is not None:
        start, run_id = apply_checkpoint(*resumed, parts, state), resumed[0].get("run_id")
        if lead and progress:
            tqdm.write(f"resuming from {resumed[1]} (epoch {start} of {num_epochs})")
    if world > 1:
        state.model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if lead:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(out_dir / "config.json", lambda fh: json.dump(cfg, fh, indent=1))
    seen: dict[str, list[int]] = {}
    diagnostics = build_callbacks(cfg["diagnostics"])
    callbacks = ([RankSync(model, sampler, seen, cfg["output"]["debug_ranks"])] if world > 1 else []) + diagnostics
    callbacks.append(CheckpointWriter(cfg, out_dir, parts, rank, world, progress, run_id, diagnostics, resumed))
    loop = EpochLoop(train_set, t["batch_size"], t["seed"], device, scheduler, scaler, t["amp"], callbacks,
                     num_workers=t["num_workers"], fwd_macs=fwd_macs, epochs_per_eval=t["epochs_per_eval"],
                     validate=_validator(cfg, model, val_set, schedule, rank, device), rank=rank, sampler=sampler,
                     reduce=reduce_epoch if world > 1 else None)
    end = num_epochs if stop_after is None else min(num_epochs, stop_after)
    bar = tqdm(total=steps * max(0, end - start), desc="train", unit="batch", dynamic_ncols=True,
               disable=not (progress and lead))
    rng = None if resumed is None else resumed[0]["rng"]
    if rng is not None and rank < len(rng):  # last: nothing may draw between the restore and the first epoch
        restore_rng(rng[rank], resumed[1])  # type: ignore[index]
    history = loop.run(state, range(start, end), bar)
    _finish(cfg, out_dir, model, history, rank=rank, world=world, start=start if resumed else None,
            stopped=state.stop_training, seen=seen, ident=ident, run_id=run_id)
    return history


def _finish(cfg: Mapping[str, Any], out_dir: Path, model: nn.Module, history: History, *, rank: int, world: int,
            start: int | None, stopped: bool, seen: Mapping[str, list[int]], ident: Any, run_id: str | None) -> None:
    """After the last epoch: per-rank debug files (``output.debug_ranks``); rank 0 writes ``model.pt`` once the
    schedule is finished and appends the run record."""
    from hrlib.analysis.runs import record_run

    num_epochs = sum(s["num_epochs"] for s in cfg["schedule"]["stages"])
    finished = stopped or (len(history) > 0 and history.rows[-1]["epoch"] == num_epochs - 1)
    if cfg["output"]["debug_ranks"]:
        debug = out_dir / "debug"
        debug.mkdir(parents=True, exist_ok=True)
        atomic_write(debug / f"rank{rank}.json", lambda fh: json.dump({"world_size": world, "indices": seen}, fh))
        atomic_write(debug / f"rank{rank}_params.pt", lambda fh: torch.save(model.state_dict(), fh), mode="wb")
    if rank != 0:
        return
    if finished:
        atomic_write(out_dir / "model.pt", lambda fh: torch.save(model.state_dict(), fh), mode="wb")
    rows = history.rows[start or 0:]
    seconds, samples = sum(r["seconds"] for r in rows), sum(r["samples"] for r in rows)
    last = history.rows[-1] if len(history) else {}
    record_run(out_dir / "runs.jsonl", params=cfg, seed=cfg["train"]["seed"], dataset=ident, metrics={
        "epochs": len(history), "finished": finished, "resumed_at_epoch": start, "world_size": world, "run_id": run_id,
        "train_seconds": seconds, "samples_per_s": samples / seconds if seconds else None,
        **{k: last.get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}})


def run_config(config: Mapping[str, Any], *, out: str | os.PathLike | None = None, resume: bool = False,
               stop_after: int | None = None, progress: bool | None = None) -> History:
    """Run an ``hrlib train`` config on this process (and, under torchrun, its siblings).

    Args:
        config: a dict or :func:`hrlib.train.load_config`'s result (checked with ``validate_config``).
        out: output folder (default ``output.dir``); it receives ``config.json``, ``history.json``,
            ``checkpoints/epoch_NNNN.pt`` (the newest ``output.keep_last`` of this run: each holds the run's
            random ``run_id``, and another run's are never deleted), ``runs.jsonl`` (one ``hrlib.analysis.runs``
            record) and, once the schedule is finished or a callback stopped it, ``model.pt`` (the weights). A
            fresh run needs a folder without checkpoints: one holding another run's is refused.
        resume: continue from the newest checkpoint there: the checkpoints of one run, the same config apart
            from ``output``; the callbacks' state (e.g. the overfitting detector's) is restored too, so the run
            stops where the uninterrupted one would. Resuming a run that already finished trains nothing and
            changes no file: it returns the recorded history (and says so when ``progress``).
        stop_after: end after that many epochs in total (>= 1), as an interruption would (the LR schedule still
            spans the whole run).
        progress: progress bar and log lines (default ``output.progress``); only rank 0 shows them.

    Returns:
        The :class:`hrlib.train.History` (all epochs, the resumed ones included).

    Raises:
        ConfigError: a bad config, or one that differs from the checkpoint's on resume.
        FileNotFoundError: ``resume`` without a checkpoint.
        FileExistsError: a fresh run into a folder that holds checkpoints.
        NotADirectoryError: ``out`` (or ``output.dir``) is a file.
        TypeError, ValueError: a bad argument, named in the message; on resume, a file among the checkpoints that
            is not an hrlib checkpoint of ``hrlib train`` (named), or checkpoints of several runs.
    """
    return _run_config(config, out=out, resume=resume, stop_after=stop_after, progress=progress)[0]


def _run_config(config: Mapping[str, Any], *, out: str | os.PathLike | None, resume: bool, stop_after: int | None,
                progress: bool | None) -> tuple[History, str | None]:
    """:func:`run_config`, and the note that the run had already finished (None if it trained)."""
    cfg = validate_config(config)
    name = "output.dir" if out is None else "out (--out)"
    out_dir = check_out_folder(name, Path(cfg["output"]["dir"]) if out is None else check_path("out", out))
    resume, progress = check_bool("resume", resume), check_bool("progress", progress, allow_none=True)
    if stop_after is not None:
        check_int("stop_after", stop_after)
    rank, world, device, joined = join_process_group(cfg["train"]["device"])
    try:
        result = _run(cfg, out_dir, rank, world, device, resume=bool(resume), stop_after=stop_after,
                      progress=cfg["output"]["progress"] if progress is None else bool(progress))
        if joined:
            dist.barrier()  # no rank leaves while another still writes
        return result
    finally:
        if joined:
            dist.destroy_process_group()


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``hrlib train`` options (shared by ``hrlib train`` and ``python -m hrlib.train``) to ``parser``.

    Args:
        parser: the parser (or sub-parser) to extend.

    Returns:
        ``parser``.

    Raises:
        TypeError: ``parser`` is not an ``argparse.ArgumentParser``.
    """
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
    """Run parsed ``hrlib train`` options (from a parser that :func:`add_arguments` extended).

    Args:
        ns: the parsed options.

    Returns:
        The exit status: 0 on success (also for ``--resume`` of a finished run: it says so and changes nothing), 2
        for a bad config, a missing or foreign checkpoint, an output folder that is a file or holds another run
        (one line on stderr).
    """
    try:
        history, note = _run_config(load_config(ns.config), out=ns.out, resume=ns.resume,
                                    stop_after=ns.stop_after, progress=False if ns.quiet else None)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as e:  # ConfigError: a ValueError
        print(f"hrlib train: error: {e}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0" and note is not None:
        print(f"hrlib train: {note}")
    elif os.environ.get("RANK", "0") == "0" and len(history):
        seconds, samples = sum(history.column("seconds")), sum(history.column("samples"))
        world = os.environ.get("WORLD_SIZE", "1")
        print(f"trained {len(history)} epochs on {world} process(es): {samples / seconds:.1f} samples/s, final "
              f"train_loss {history.last('train_loss'):.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hrlib.train --config FILE [--resume] [--out DIR] [--stop-after EPOCHS] [--quiet]``.

    Args:
        argv: the command-line arguments (None: ``sys.argv[1:]``).

    Returns:
        The exit status (see :func:`run_cli`).

    Raises:
        TypeError: ``argv`` is not a list of str.
    """
    if argv is not None and (isinstance(argv, str) or not isinstance(argv, Sequence)
                             or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str (command-line arguments) or None, got {argv!r:.80}")
    parser = add_arguments(argparse.ArgumentParser(prog="hrlib train", description="train from a config file"))
    return run_cli(parser.parse_args(argv))
