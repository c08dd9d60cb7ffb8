"""How ``hrlib train`` (lesson 08) treats an output folder that already holds checkpoints.

A fresh run refuses a folder that holds checkpoints (:func:`refuse_another_run`): they belong to another run, and
its ``keep_last`` would otherwise mix the two. ``--resume`` continues the one run whose checkpoints are there
(:func:`load_for_resume`: every ``epoch_NNNN.pt`` must be an hrlib checkpoint of the same ``run_id``, the newest
one of ``hrlib train`` with the same config); a run that already finished is left as it is (:func:`finished_note`).
:class:`CheckpointWriter` is the callback that writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import hrlib.train.checkpoint as checkpoints
from hrlib.train._ckptfiles import FOREIGN, epoch_files, run_id_of
from hrlib.train._ddp import all_reduce, gather
from hrlib.train.history import Callback, History, TrainState
from hrlib.train.schema import ConfigError

__all__ = ["CheckpointWriter", "apply_checkpoint", "finished_note", "load_for_resume", "refuse_another_run",
           "restore_callbacks", "restore_rng"]

# what a checkpoint of hrlib train holds, and the type of each (scheduler: a dict or None)
_KEYS = {"epoch": int, "step": int, "model": Mapping, "optimizer": Mapping, "scaler": Mapping, "rng": list,
         "history": list, "config": Mapping}


def _differences(a: object, b: object, path: str = "") -> list[str]:
    """Key paths where two configs differ, as ``"path: checkpoint A, config B"``."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: checkpoint {a!r}, config {b!r}"]


def refuse_another_run(out_dir: Path) -> None:
    """Raise ``FileExistsError`` if ``out_dir/checkpoints`` holds any checkpoint (a fresh run must not mix with,
    or prune, another run's)."""
    files = epoch_files(out_dir / "checkpoints")
    if files:
        raise FileExistsError(f"out folder {out_dir} already holds a run ({len(files)} checkpoint(s) in "
                              f"{out_dir / 'checkpoints'}): continue it with --resume (resume=True), or train into "
                              f"another --out folder; nothing was changed")


def load_for_resume(out_dir: Path, cfg: Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint of the one run in ``out_dir``, checked; ``(checkpoint, its path)``.

    Raises ``FileNotFoundError`` without checkpoints, ``ValueError`` naming a file that is not an hrlib
    checkpoint of ``hrlib train`` or checkpoints of several runs, ``ConfigError`` for a different config."""
    folder = out_dir / "checkpoints"
    files = epoch_files(folder)
    if not files:
        raise FileNotFoundError(f"resume needs a checkpoint in {folder}, found none; run without --resume first")
    owners: dict[object, list[str]] = {}
    for path in files:
        run_id = run_id_of(path)
        if run_id is FOREIGN:  # load_checkpoint says why in one line (unreadable, refused pickle, no 'epoch'...)
            run_id = checkpoints.load_checkpoint(path).get("run_id")
        owners.setdefault(run_id, []).append(path.name)
    if len(owners) > 1:
        runs = "; ".join(f"{', '.join(names)}" for names in owners.values())
        raise ValueError(f"{folder} holds checkpoints of {len(owners)} different runs ({runs}): resume needs one "
                         f"run's, move the others away")
    found = files[-1]
    ckpt = checkpoints.load_checkpoint(found)
    bad = [k for k, kind in _KEYS.items() if not isinstance(ckpt.get(k), kind) or isinstance(ckpt.get(k), bool)]
    if bad or not (ckpt.get("scheduler") is None or isinstance(ckpt["scheduler"], Mapping)):
        raise ValueError(f"checkpoint {found} is not an hrlib checkpoint of hrlib train: "
                         f"{', '.join(map(repr, bad or ['scheduler']))} missing or of the wrong type")
    diffs = _differences({k: v for k, v in ckpt["config"].items() if k != "output"},
                         {k: v for k, v in cfg.items() if k != "output"})
    if diffs:
        raise ConfigError(f"config must match the checkpoint's to resume from {found}; {len(diffs)} difference(s), "
                          f"first {diffs[0]}")
    return ckpt, found


def finished_note(ckpt: Mapping[str, Any], out_dir: Path, num_epochs: int) -> str | None:
    """None if the checkpoint's run has epochs left; else the line that says it finished (nothing to resume)."""
    if ckpt["epoch"] < num_epochs - 1 and not ckpt.get("finished"):
        return None
    early = f" (stopped early, of {num_epochs})" if ckpt["epoch"] < num_epochs - 1 else ""
    return (f"the run in {out_dir} already finished after {ckpt['epoch'] + 1} epochs{early}: nothing to resume, "
            f"no file changed")


def apply_checkpoint(ckpt: Mapping[str, Any], found: Path, parts: Mapping[str, Any], state: TrainState) -> int:
    """Load ``ckpt`` into ``parts`` (model, optimizer, scheduler, scaler) and ``state`` (history, step); the first
    epoch to run. A state dict that does not fit is a ``ValueError`` naming the file."""
    for key, part in parts.items():
        if part is not None:
            try:
                part.load_state_dict(ckpt[key])
            except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
                first = " ".join(str(e).split())[:200]
                raise ValueError(f"checkpoint {found} does not fit this config's {key}: {first}") from e
    state.history, state.step = History(ckpt["history"]), ckpt["step"]
    return ckpt["epoch"] + 1


def restore_callbacks(callbacks: Sequence[Callback], saved: Sequence[Mapping[str, Any]], found: Path) -> None:
    """Give each callback its state from the checkpoint (``saved``: ``{"name", "state"}`` per callback, in order)."""
    names = [type(cb).__name__ for cb in callbacks]
    if [s.get("name") if isinstance(s, Mapping) else None for s in saved] != names:
        raise ValueError(f"checkpoint {found} holds the state of other callbacks than this config's {names}")
    for cb, s in zip(callbacks, saved, strict=True):
        try:
            cb.load_state_dict(s["state"])
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"checkpoint {found} holds a state of {type(cb).__name__} that does not load: {e}") from e


def restore_rng(state: Any, found: Path) -> None:
    """Set this process's generators to a checkpoint's random state; a bad one is a ``ValueError`` naming it."""
    try:
        checkpoints.restore_rng_state(state)
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {found} holds no usable random state: {e}") from e


class CheckpointWriter(Callback):
    """The last callback of ``hrlib train``: on a resume it restores the diagnostics callbacks' state (after their
    own ``on_fit_start``); after each epoch, one rank's stop stops all, and rank 0 writes the checkpoint (the run's
    id, whether it finished, every rank's random state and callback states), ``history.json`` and a log line."""

    def __init__(self, cfg: Mapping[str, Any], out_dir: Path, parts: Mapping[str, Any], rank: int, world: int,
                 progress: bool, run_id: str | None, callbacks: Sequence[Callback],
                 resumed: tuple[Mapping[str, Any], Path] | None) -> None:
        self.cfg, self.out_dir, self.parts = cfg, out_dir, parts
        self.rank, self.world, self.progress = rank, world, progress
        self.run_id, self.callbacks, self.resumed = run_id, callbacks, resumed

    def on_fit_start(self, state: TrainState) -> None:
        """On a resume, give the callbacks the state this rank (else rank 0) saved in the checkpoint.

        Args:
            state: the run's state.
        """
        saved = None if self.resumed is None else self.resumed[0].get("callbacks")
        if saved:  # a checkpoint from before callback states were saved has none: the callbacks start afresh
            restore_callbacks(self.callbacks, saved[self.rank if self.rank < len(saved) else 0], self.resumed[1])

    def on_epoch_end(self, state: TrainState) -> None:
        """Agree on stopping, then save (rank 0).

        Args:
            state: the run's state.
        """
        state.stop_training = all_reduce([float(state.stop_training)], "max")[0] > 0  # one rank stops all
        callbacks = [{"name": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks]
        states = gather((checkpoints.rng_state(), callbacks), self.world)
        if self.rank != 0:
            return
        model, opt, scheduler, scaler = (self.parts[k] for k in ("model", "optimizer", "scheduler", "scaler"))
        checkpoints.save_checkpoint(checkpoints.checkpoint_path(self.out_dir, state.epoch), {
            "epoch": state.epoch, "step": state.step, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": [s[0] for s in states], "callbacks": [s[1] for s in states], "history": state.history.as_rows(),
            "config": self.cfg, "world_size": self.world, "run_id": self.run_id,
            "finished": state.stop_training or state.epoch == state.num_epochs - 1},
            keep_last=self.cfg["output"]["keep_last"])
        state.history.to_json(self.out_dir / "history.json")
        if self.progress:
            r = state.row
            tqdm.write(f"epoch {state.epoch + 1}/{state.num_epochs} {r['stage']} {r['resolution']}px: loss "
                       f"{r['train_loss']:.3f} acc {r['train_acc']:.3f} val_acc {r['val_acc']:.3f} "
                       f"{r['seconds']:.1f}s")
