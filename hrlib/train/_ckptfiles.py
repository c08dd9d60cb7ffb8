"""The files of a run folder (lesson 08): which ``epoch_NNNN.pt`` files are there, which run wrote each one, and
whether an output path can be a run folder at all. Shared by :mod:`hrlib.train.checkpoint` (``keep_last``) and
the runner's resume (:mod:`hrlib.train._resume`).

Every checkpoint of ``hrlib train`` carries the ``run_id`` of the run that wrote it (a random hex string made when
a fresh run starts, kept by its resumes), so a folder's checkpoints can be told apart from another run's.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

__all__ = ["FOREIGN", "check_out_folder", "epoch_files", "run_id_of"]

_NAME = re.compile(r"epoch_(\d{4,})\.pt\Z")
FOREIGN = object()  # run_id_of's answer for a file that is not a readable checkpoint dict


def epoch_files(folder: Path) -> list[Path]:
    """The ``epoch_NNNN.pt`` files of ``folder``, oldest epoch first (none if the folder is missing)."""
    files = [p for p in folder.glob("epoch_*.pt") if _NAME.match(p.name)]
    return sorted(files, key=lambda p: int(_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def run_id_of(path: Path) -> object:
    """The ``run_id`` inside the checkpoint ``path`` (None for one saved without), read without loading its tensors
    (``mmap``); :data:`FOREIGN` for a file that is not a checkpoint dict that ``weights_only`` loading reads."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # random bytes, a foreign pickle, a truncated zip: not ours, whatever the error type
        return FOREIGN
    if not isinstance(checkpoint, dict) or "epoch" not in checkpoint:
        return FOREIGN
    return checkpoint.get("run_id")


def check_out_folder(name: str, path: Path) -> Path:
    """Return ``path`` if it is a folder or can become one; raise ``NotADirectoryError`` naming ``name`` if it, or
    the nearest of its parents that exists, is a file."""
    for part in (path, *path.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                what = "it is a file" if part == path else f"{str(part)!r} is a file"
                raise NotADirectoryError(f"{name} must be a folder for the run's outputs, got {str(path)!r} "
                                         f"({what}); choose another {name}")
            break
    return path
