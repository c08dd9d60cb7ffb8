"""Writing files and folders so that a crash, an interrupt or a full disk never leaves a half-written output that
looks complete: one atomic file write, one atomic folder commit and one safe append of a line, shared by every
writer in hrlib."""

from __future__ import annotations

import fcntl
import json
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


def read_limited(path: str | os.PathLike, limit: int, *, follow: bool = True) -> bytes:
    """The bytes of a small file, read only if it is a regular file of at most ``limit`` bytes.

    A FIFO, a device such as ``/dev/zero`` or a socket would hang or fill memory; such a file, or one larger than
    ``limit`` (a sparse file claims any size), is refused before anything is read.

    Args:
        path: the file.
        limit: the largest accepted size in bytes.
        follow: follow a symlink at ``path`` (False: a symlink is refused).

    Returns:
        The file's content.

    Raises:
        OSError: ``path`` is missing, unreadable, not a regular file or larger than ``limit`` (the message names it).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{os.fspath(path)!r} is not a regular file (a FIFO, device or socket is refused)")
        if info.st_size > limit:
            raise OSError(f"{os.fspath(path)!r} is {info.st_size:,} bytes, more than the {limit:,} accepted")
        chunks, total = [], 0
        while total <= limit:  # the file may grow while it is read: never read more than limit + 1 bytes
            data = os.read(fd, min(1 << 20, limit + 1 - total))
            if not data:
                break
            chunks.append(data)
            total += len(data)
        if total > limit:
            raise OSError(f"{os.fspath(path)!r} grew past the {limit:,} bytes accepted while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_json(path: str | os.PathLike, limit: int = 64 << 20) -> Any:
    """Parse a JSON file read by :func:`read_limited`.

    Args:
        path: the file.
        limit: the largest accepted size in bytes (default 64 MiB).

    Returns:
        The parsed value.

    Raises:
        OSError: as :func:`read_limited`.
        ValueError: not UTF-8 JSON, or nested too deeply to parse (the message names the file).
    """
    data = read_limited(path, limit)
    try:
        return json.loads(data)
    except RecursionError as e:
        raise ValueError(f"{os.fspath(path)!r} is nested too deeply to be parsed as JSON") from e
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{os.fspath(path)!r} is not valid JSON: {e}") from e


class FolderLock:
    """An exclusive lock on writing one output folder, held by one process at a time.

    The lock is an ``flock`` on ``.<name>.lock`` next to the folder; it is removed on release. A second writer
    does not wait: it gets a ``BlockingIOError`` naming the folder.

    Args:
        dst: the folder to be written (it need not exist; its parent is created).
        what: how the error names the writer, e.g. ``"a conversion"``.
    """

    def __init__(self, dst: str | os.PathLike, what: str = "another writer") -> None:
        self.dst, self.what = Path(dst), what
        self.path = self.dst.with_name(f".{self.dst.name}.lock")
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise BlockingIOError(f"dst {self.dst} is being written by {self.what} in another process (it "
                                      f"holds {self.path}); wait for it to finish") from None
            except BaseException:
                os.close(fd)
                raise
            try:  # the lock file may have been released and removed between open and flock: lock the current one
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return self
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            try:
                os.unlink(self.path)  # while still locked: a waiting process re-checks the inode and retries
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None


MAX_YAML_NODES = 100_000  # a training config has a few hundred


def load_yaml(text: str) -> Any:
    """Parse YAML with ``yaml.SafeLoader``, refusing documents that expand beyond ``MAX_YAML_NODES``.

    Aliases let a few hundred bytes stand for billions of nodes (a "billion laughs" document), and a recursive alias
    for an endless one; such a document is refused before it is built.

    Args:
        text: the YAML text (one document).

    Returns:
        The parsed value.

    Raises:
        yaml.YAMLError: invalid YAML, or a document too large once its aliases are expanded.
        RecursionError: nested too deeply to parse.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_document(self) -> Any:
            node = super().compose_document()
            sizes: dict[int, int] = {}

            def size(n: Any, open_: set[int]) -> int:  # nodes once aliases are expanded, each shared node once
                if id(n) in sizes:
                    return sizes[id(n)]
                if id(n) in open_:
                    raise yaml.YAMLError("a recursive alias (an anchor used inside itself) expands without end")
                open_.add(id(n))
                children = n.value if isinstance(n, yaml.SequenceNode) else [v for kv in n.value for v in kv] \
                    if isinstance(n, yaml.MappingNode) else []
                total = 1
                for child in children:
                    total += size(child, open_)
                    if total > MAX_YAML_NODES:
                        raise yaml.YAMLError(f"the document expands to more than {MAX_YAML_NODES:,} nodes once its "
                                             f"aliases (*name) are expanded")
                open_.discard(id(n))
                sizes[id(n)] = total
                return total

            if node is not None:
                size(node, set())
            return node

    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
