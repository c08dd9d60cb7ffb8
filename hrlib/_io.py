"""Writing files and folders so that a crash, an interrupt or a full disk never leaves a half-written output that
looks complete: one atomic file write and one atomic folder commit, shared by every writer in hrlib."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], mode: str = "w", *,
                 keep_permissions: bool = False) -> Path:
    """Write a file all at once or not at all.

    Args:
        path: the file to create or replace; its folder must exist.
        write: called with an open temporary file next to ``path``; it writes the content.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        keep_permissions: give the file the permission bits of the file it replaces (``0o644`` for a new one)
            instead of the temporary file's private ``0o600``.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OSError: the folder is missing or the disk is full; ``path`` is then unchanged and no temporary file is left.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if keep_permissions:
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def temp_folder(dst: str | os.PathLike) -> Path:
    """A new empty temporary folder next to ``dst`` (same file system), to fill and then :func:`commit_folder`.

    Args:
        dst: the folder that will be committed; its parent is created if needed.

    Returns:
        The temporary folder's path (hidden, named after ``dst``).
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp"))


def commit_folder(tmp: str | os.PathLike, dst: str | os.PathLike, *, replace: bool = False) -> Path:
    """Rename the finished folder ``tmp`` to ``dst`` in one step.

    An existing ``dst`` is first renamed aside and deleted only after ``tmp`` took its place, so at every moment
    ``dst`` is either the old complete folder or the new complete one.

    Args:
        tmp: a finished folder on the same file system (e.g. from :func:`temp_folder`).
        dst: where it goes.
        replace: whether an existing ``dst`` may be replaced; the caller decides first whether ``dst`` is
            something it may delete.

    Returns:
        ``dst`` as a ``Path``.

    Raises:
        FileExistsError: ``dst`` exists and ``replace`` is False.
    """
    tmp, dst = Path(tmp), Path(dst)
    old = None
    if dst.exists() or dst.is_symlink():
        if not replace:
            raise FileExistsError(f"dst {dst} already exists; pass force=True (--force) to replace it")
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    return dst
