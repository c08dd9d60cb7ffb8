"""Training checkpoints that survive a crash and load safely (lesson 08): atomic writes, ``weights_only`` loading.

A checkpoint is a dict of tensors and plain containers (no pickled classes), so ``torch.load(weights_only=True)``
reads it: model, optimizer, LR scheduler and grad scaler state dicts, the epoch just finished, the optimizer step,
the history rows, the run's config and the random states (:func:`rng_state`: Python's, NumPy's and torch's
generators as tensors). :func:`save_checkpoint` writes to a temporary file next to the target and renames it into
place (``os.replace``), so a crash or a full disk during a save leaves the previous checkpoint intact.
``hrlib train`` adds the ``run_id`` of the run that wrote it: ``keep_last`` prunes only that run's checkpoints.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrlib._checks import check_int, check_path
from hrlib._io import atomic_write
from hrlib.train._ckptfiles import epoch_files, run_id_of

__all__ = ["checkpoint_path", "latest_checkpoint", "load_checkpoint", "restore_rng_state", "rng_state",
           "save_checkpoint"]

_RNG_KEYS = {"python": ("version", "words", "gauss"), "numpy": ("name", "keys", "pos", "has_gauss", "cached"),
             "torch": (), "cuda": ()}


def _check_rng_state(state: object) -> None:
    """Raise naming ``state`` unless it has :func:`rng_state`'s layout (checked before any generator is set)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict from rng_state(), got {type(state).__name__}")
    for key, members in _RNG_KEYS.items():
        part = state.get(key)
        if part is None or (members and not (isinstance(part, Mapping) and all(m in part for m in members))):
            raise ValueError(f"state must be a dict from rng_state() with {key!r}"
                             f"{' holding ' + ', '.join(members) if members else ''}, got {part!r:.80}")
    words, keys = state["python"]["words"], state["numpy"]["keys"]
    if not (isinstance(words, torch.Tensor) and words.numel() == 625 and isinstance(keys, torch.Tensor)
            and keys.numel() == 624):
        raise ValueError("state must be a dict from rng_state(): python.words must be a tensor of 625 ints and "
                         "numpy.keys one of 624")
    if not (isinstance(state["torch"], torch.Tensor) and state["torch"].dtype == torch.uint8):
        raise ValueError(f"state['torch'] must be torch.get_rng_state()'s uint8 tensor, got {state['torch']!r:.80}")


def rng_state() -> dict[str, Any]:
    """This process's random states as tensors and ints (``weights_only``-loadable).

    Returns:
        ``{"python": Mersenne Twister words as int64, "numpy": the legacy global generator, "torch": the CPU
        state, "cuda": one state per device}``.
    """
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002  (legacy global generator)
    return {"python": {"version": int(version), "words": torch.tensor(words, dtype=torch.int64),
                       "gauss": None if gauss is None else float(gauss)},
            "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Set this process's generators to ``state``; CUDA states only where as many devices exist.

    Args:
        state: a dict from :func:`rng_state` (checked before any generator is set).

    Raises:
        TypeError, ValueError: ``state`` does not have :func:`rng_state`'s layout.
    """
    _check_rng_state(state)
    py = state["python"]
    random.setstate((py["version"], tuple(int(w) for w in py["words"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],  # noqa: NPY002
                         nps["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(folder: str | os.PathLike, epoch: int) -> Path:
    """Where the checkpoint after ``epoch`` lives.

    Args:
        folder: the run's output folder.
        epoch: the 0-based epoch just finished (>= 0).

    Returns:
        ``folder/checkpoints/epoch_NNNN.pt``.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    return check_path("folder", folder) / "checkpoints" / f"epoch_{check_int('epoch', epoch, 0):04d}.pt"


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any], *, keep_last: int | None = None) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (``hrlib._io.atomic_write``).

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over ``path``: readers see the
    old file or the new one, never a partial one.

    Args:
        path: the file (its folder is created if needed).
        checkpoint: tensors and plain containers only (so ``weights_only`` loading reads it).
        keep_last: afterwards delete all but the newest ``keep_last`` (>= 1) ``epoch_NNNN.pt`` files of the
            folder that hold the same ``run_id`` as ``checkpoint`` (None matches checkpoints saved without one);
            another run's checkpoints and files that are not checkpoints are never deleted (None keeps all).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError, ValueError: a bad argument, named in the message; OSError: the write failed (the old file stays).
    """
    path = check_path("path", path)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"checkpoint must be a dict, got {type(checkpoint).__name__}")
    keep_last = None if keep_last is None else check_int("keep_last", keep_last)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(dict(checkpoint), fh), mode="wb")
    if keep_last is not None:
        run_id = checkpoint.get("run_id")
        ours = [p for p in epoch_files(path.parent) if p == path or run_id_of(p) == run_id]  # FOREIGN: never
        for old in ours[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (no arbitrary code runs).

    Args:
        path: the checkpoint file.
        map_location: the device its tensors are loaded onto.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: ``path`` is missing.
        TypeError, ValueError: a bad argument, a file that is not a readable hrlib checkpoint, or one holding
            tensors without data (saved from the ``meta`` device).
    """
    path = check_path("path", path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be an existing checkpoint file, got {str(path)!r} (does not exist"
                                f"{'; a folder' if path.is_dir() else ''})")
    if not isinstance(map_location, str | torch.device):
        raise TypeError(f"map_location must be a device name or torch.device, got {type(map_location).__name__}")
    try:
        map_location = torch.device(map_location)
    except RuntimeError as e:
        raise ValueError(f"map_location must be a device such as 'cpu' or 'cuda:0', got {map_location!r}") from e
    if map_location.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"map_location must be an available device, got {str(map_location)!r} without CUDA")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated or foreign file; pickle and zip errors have many types
        raise ValueError(f"path {path} is not a readable hrlib checkpoint: {type(e).__name__}: "
                         f"{_first_line(e)}") from e
    if not isinstance(checkpoint, dict) or "epoch" not in checkpoint:
        raise ValueError(f"path {path} is not an hrlib checkpoint: it must hold a dict with an 'epoch', got "
                         f"{type(checkpoint).__name__}{' without one' if isinstance(checkpoint, dict) else ''}")
    meta = _meta_tensor(checkpoint)
    if meta is not None:
        raise ValueError(f"path {path} holds tensors without data ({meta} is on the meta device): not a usable "
                         f"hrlib checkpoint")
    return checkpoint


def _first_line(error: Exception) -> str:
    """What went wrong, on one line: torch's ``weights_only`` refusal spans many lines and suggests loading the file
    unsafely, so only its reason is kept."""
    text = " ".join(str(error).split())
    at = text.find("WeightsUnpickler error:")
    first = text[at + len("WeightsUnpickler error:"):] if at >= 0 else text
    first = first.strip().split(". ")[0].split(" Check the documentation")[0].rstrip(".")[:200] or "unreadable"
    return f"weights_only loading refuses its contents ({first})" if at >= 0 else first


def _meta_tensor(value: object, where: str = "checkpoint") -> str | None:
    """The key path of the first tensor on the meta device inside ``value``, or None."""
    if isinstance(value, torch.Tensor):
        return where if value.is_meta else None
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list | tuple) \
        else ()
    for key, item in items:
        found = _meta_tensor(item, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest checkpoint of a run.

    Args:
        folder: the run's output folder.

    Returns:
        The ``epoch_NNNN.pt`` in ``folder/checkpoints`` with the highest epoch, or None if there is none.
    """
    files = epoch_files(check_path("folder", folder) / "checkpoints")
    return files[-1] if files else None
