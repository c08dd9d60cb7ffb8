"""Writing files and folders so that a crash, an interrupt or a full disk never leaves a half-written output that
looks complete: one atomic file write, one atomic folder commit and one safe append of a line, shared by every
writer in hrlib."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
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


def append_line(path: str | os.PathLike, line: bytes) -> str:
    """Append one newline-terminated record to a log file, whole or not at all.

    The file is opened without following a symlink and must be a regular file; writers are serialized with an
    exclusive ``flock``. If the file does not end with a newline (a writer was cut off mid-line), the cut-off bytes
    are moved to ``<path>.cut`` (appended there, so nothing is lost) and removed from the log first. If the write
    fails (a full disk), the file is truncated back to where it was.

    Args:
        path: the log file (created with mode ``0o644`` if missing).
        line: the record, ending with ``b"\\n"`` and containing no other newline.

    Returns:
        ``""``, or the path of the ``.cut`` file if cut-off bytes were moved there.

    Raises:
        ValueError: ``line`` is not one newline-terminated line.
        OSError: ``path`` is a symlink or not a regular file (the message names it), or the write failed; the file
            is then as it was.
    """
    if not line.endswith(b"\n") or b"\n" in line[:-1]:
        raise ValueError("line must be one record ending with a newline")
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise OSError(e.errno, f"cannot append to {os.fspath(path)!r}: {e.strerror} (a symlink or special file is "
                               f"refused)") from e
    moved = ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"cannot append to {os.fspath(path)!r}: not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20))) if size else b""
        if tail and not tail.endswith(b"\n"):
            cut = tail[tail.rfind(b"\n") + 1:]
            moved = os.fspath(path) + ".cut"
            side = os.open(moved, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.write(side, cut + b"\n")
                os.fsync(side)
            finally:
                os.close(side)
            size -= len(cut)
            os.ftruncate(fd, size)
        try:
            view = memoryview(line)
            while view:  # a short write (a file size limit) is continued, and fails on the next call
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
    return moved
