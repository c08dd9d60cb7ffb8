"""Reading tile stores (lesson 05): :class:`TileStore` and its zarr and LMDB readers, :class:`StoreCorruptError`.

A reader reads only the chunks a region meets, checks each one, and turns damage into an error, never into wrong
pixels: a flipped byte fails a chunk's crc32c checksum, a missing chunk (which zarr would silently read as fill
values) is detected, and a damaged manifest or LMDB database is refused. :class:`StoreCorruptError` says what is
damaged. Open a store with :func:`hrlib.pipeline.store.open_store`; the layout is described there.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

from hrlib._checks import check_int, check_path
from hrlib.pipeline._storage import DIRS, MANIFEST, manifest_problem, tiles

__all__ = ["LmdbTileStore", "StoreCorruptError", "TileStore", "ZarrTileStore", "read_manifest"]

_LMDB_ENVS: dict[tuple[str, int], tuple[Any, int, int]] = {}  # (path, inode) -> (environment, pid, open stores)
_LMDB_LOCK = threading.Lock()  # py-lmdb allows one open environment per file and process: the stores share it


class StoreCorruptError(RuntimeError):
    """A store is damaged: a chunk fails its checksum or is missing, or the manifest or storage is absent or
    inconsistent.

    Args:
        message: the whole message; by default built from the other arguments. (Pickling and DataLoader workers
            rebuild the error from its message alone.)
        store: the store folder.
        reason: what is wrong, e.g. ``"is missing"`` (a chunk) or ``"manifest.json is not valid JSON: ..."``.
        image_id: the image affected (None: the store as a whole).
        level: the pyramid level affected.
        chunk: ``(row, col)`` of the damaged tile (None: the whole level, or the store).

    Attributes:
        store, reason, image_id, level, chunk: as the arguments (``store`` a ``Path``; None when not known).
    """

    def __init__(self, message: str | None = None, *, store: str | os.PathLike | None = None, reason: str = "",
                 image_id: str | None = None, level: int | None = None, chunk: tuple[int, int] | None = None) -> None:
        self.store = None if store is None else Path(store)
        self.reason, self.image_id, self.level, self.chunk = reason, image_id, level, chunk
        if message is None and image_id is None:
            message = f"store {store}: {reason}"
        elif message is None:
            where = "" if chunk is None else f"chunk ({chunk[0]}, {chunk[1]}) "
            message = (f"image {image_id!r} level {level}: {where}{reason}; the store {store} is damaged (run "
                       f"`python -m hrlib verify {store}`)")
        super().__init__(message)



def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a finished store, with every value a reader relies on checked.

    Args:
        path: the store folder.

    Returns:
        The parsed ``manifest.json``.

    Raises:
        FileNotFoundError: ``path`` has no ``manifest.json`` (not a store, or an unfinished conversion).
        StoreCorruptError: the manifest is not valid JSON or not a complete hrlib manifest.
    """
    path = check_path("path", path)
    file = path / MANIFEST
    if not file.exists():
        partial = path.with_name(f".{path.name}.partial")
        hint = f"; an interrupted conversion left {partial}: rerun convert with --resume" if partial.exists() else ""
        raise FileNotFoundError(f"path {path} is not a complete hrlib store (no {MANIFEST}){hint}")
    try:
        manifest = json.loads(file.read_text())
    except ValueError as e:  # also UnicodeDecodeError
        raise StoreCorruptError(store=path, reason=f"{MANIFEST} is not valid JSON: {e}") from e
    problem = manifest_problem(manifest)
    if problem:
        raise StoreCorruptError(store=path, reason=f"{MANIFEST} is damaged or not an hrlib manifest: {problem}")
    return manifest


class TileStore:
    """Read regions of the images in a finished store; use :func:`open_store`.

    Picklable: a worker process that receives (or forks with) a store reopens its own handle on first use.

    Args:
        path: the store folder.
        manifest: its parsed manifest (read from ``path`` when None).

    Attributes:
        path: the store folder.
        fmt: ``"zarr"`` or ``"lmdb"``.
        tile: the chunk side in pixels.
        image_ids: the stored image ids, sorted.
    """

    fmt = ""

    def __init__(self, path: str | os.PathLike, manifest: Mapping[str, Any] | None = None) -> None:
        self.path = check_path("path", path)
        manifest = read_manifest(self.path) if manifest is None else manifest
        self.tile: int = manifest["tile"]
        self._images: dict[str, dict] = dict(manifest["images"])
        self.image_ids: list[str] = sorted(self._images)
        self._handle: Any = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": -1}

    def __enter__(self) -> TileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, images={len(self.image_ids)}, tile={self.tile})"

    def _entry(self, image_id: str) -> dict[str, Any]:
        if not isinstance(image_id, str) or image_id not in self._images:
            raise KeyError(f"image_id {image_id!r} is not in the store {self.path} (it has {len(self._images)} "
                           f"images, e.g. {self.image_ids[:3]})")
        return self._images[image_id]

    def levels(self, image_id: str) -> int:
        """The number of pyramid levels stored for ``image_id``.

        Args:
            image_id: one of ``image_ids``.

        Returns:
            The count (level k is about 1/2^k of level 0 per side).
        """
        return len(self._entry(image_id)["level_shapes"])

    def shape(self, image_id: str, level: int = 0) -> tuple[int, int, int]:
        """The shape of one image at one level.

        Args:
            image_id: one of ``image_ids``.
            level: the pyramid level, 0 to ``levels(image_id) - 1``.

        Returns:
            ``(H, W, C)`` in pixels of that level.
        """
        entry, level = self._entry(image_id), check_int("level", level, 0)
        if level >= len(entry["level_shapes"]):
            raise ValueError(f"level must be < {len(entry['level_shapes'])} for image {image_id!r}, got {level}")
        return (*entry["level_shapes"][level], entry["shape"][2])

    def read_region(self, image_id: str, y: int, x: int, h: int, w: int, level: int = 0) -> np.ndarray:
        """One region of one image; only the chunks it meets are read.

        Args:
            image_id: one of ``image_ids``.
            y: top row of the region, in pixels of the level's grid (>= 0).
            x: left column (>= 0).
            h: region height in pixels (>= 1); the region must lie inside the image.
            w: region width in pixels (>= 1).
            level: the pyramid level (0 = full resolution).

        Returns:
            The region, (h, w, C) uint8.

        Raises:
            ValueError: an argument is out of range (the message names it).
            StoreCorruptError: a chunk the region needs is damaged or missing.
        """
        big_h, big_w, _ = self.shape(image_id, level)
        h, w = check_int("h", h), check_int("w", w)
        for name, size, lim in (("h", h, big_h), ("w", w, big_w)):
            if size > lim:
                side = "height" if name == "h" else "width"
                raise ValueError(f"{name} must be <= {lim}, the {side} of image {image_id!r} at level {level}, "
                                 f"got {size}")
        for name, v, size, lim in (("y", y, h, big_h), ("x", x, w, big_w)):
            v = check_int(name, v, 0)
            if v + size > lim:
                raise ValueError(f"{name} must be <= {lim - size} so that the {h}x{w} region fits in image "
                                 f"{image_id!r} of shape {(big_h, big_w)} at level {level}, got {v}")
        return self._read(image_id, level, int(y), int(x), h, w)

    def read_image(self, image_id: str, level: int = 0) -> np.ndarray:
        """One whole image at one level.

        Args:
            image_id: one of ``image_ids``.
            level: the pyramid level (0 = full resolution).

        Returns:
            The image, (H, W, C) uint8.

        Raises:
            StoreCorruptError: a chunk of the level is damaged or missing.
        """
        h, w, _ = self.shape(image_id, level)
        return self._read(image_id, level, 0, 0, h, w)

    def close(self) -> None:
        """Release the open handle (the store reopens on the next read)."""
        self._handle = None

    def problems(self) -> list[str]:
        """Read the whole store: every chunk's presence and checksum, each image's level-0 sha256.

        Returns:
            One line per damaged chunk (or per unreadable level) and per sha256 mismatch; empty when healthy.
        """
        problems: list[str] = []
        for image_id in self.image_ids:
            for level in range(self.levels(image_id)):
                bad = self._level_problems(image_id, level)
                problems += [b for b in bad if b not in problems]
                if level == 0 and not bad:
                    digest, want = hashlib.sha256(self.read_image(image_id).data).hexdigest(), \
                        self._entry(image_id)["sha256"]
                    if digest != want:
                        problems.append(f"image {image_id!r}: level-0 sha256 {digest[:12]}... differs from the "
                                        f"manifest's {want[:12]}...")
        return problems

    def _level_problems(self, image_id: str, level: int) -> list[str]:
        """Each chunk of one level read alone: a line per damaged chunk, one line if the whole level is unreadable."""
        h, w, _ = self.shape(image_id, level)
        bad = []
        for _, _, y0, y1, x0, x1 in tiles(h, w, self.tile):
            try:
                self._read(image_id, level, y0, x0, y1 - y0, x1 - x0)
            except StoreCorruptError as e:
                bad.append(str(e))
                if e.chunk is None:  # not one chunk: the array, the database or the environment is damaged
                    break
        return bad

    def _get(self) -> Any:
        if self._handle is None or self._pid != os.getpid():  # never use a handle across fork
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def _open(self) -> Any:
        raise NotImplementedError

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        raise NotImplementedError


class ZarrTileStore(TileStore):
    """A zarr 3 store: ``images.zarr/<id>/<level>`` arrays, chunks checked by crc32c, missing chunks detected.

    Args:
        path: the store folder.
        manifest: its parsed manifest (read from ``path`` when None).
    """

    fmt = "zarr"

    def _open(self) -> dict[str, Any]:
        import zarr

        return {"store": zarr.storage.LocalStore(self.path / DIRS["zarr"], read_only=True), "arrays": {}}

    def _array(self, image_id: str, level: int) -> Any:
        import zarr

        handle = self._get()
        key = f"{image_id}/{level}"
        if key not in handle["arrays"]:
            try:
                arr = zarr.open_array(handle["store"], path=key, mode="r")
            except Exception as e:  # noqa: BLE001 - damaged metadata: zarr raises TypeError, KeyError, ValueError, ...
                raise StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                        reason=f"array {key} is missing or unreadable ({type(e).__name__}: {e})") from e
            want = (self.shape(image_id, level), np.dtype(np.uint8), (self.tile, self.tile, arr.shape[-1]))
            if (arr.shape, arr.dtype, arr.chunks) != want:
                raise StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                        reason=f"array {key} has shape {arr.shape}, dtype {arr.dtype} and chunks "
                                               f"{arr.chunks}; the manifest says {want}")
            handle["arrays"][key] = arr
        return handle["arrays"][key]

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        arr = self._array(image_id, level)
        folder = self.path / DIRS["zarr"] / image_id / str(level)
        grid = list(tiles(arr.shape[0], arr.shape[1], self.tile, y, x, h, w))
        for r, c, *_ in grid:  # zarr reads a missing chunk as fill values: check that each one exists
            if not (folder / arr.metadata.encode_chunk_key((r, c, 0))).is_file():
                raise StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=(r, c),
                                        reason="is missing")
        try:
            return arr[y:y + h, x:x + w]
        except (ValueError, RuntimeError, OSError) as e:  # checksum mismatch (ValueError), codec failure
            for r, c, y0, y1, x0, x1 in grid:  # find the damaged chunk to name it
                try:
                    arr[y0:y1, x0:x1]
                except (ValueError, RuntimeError, OSError) as chunk_error:
                    raise StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=(r, c),
                                            reason=f"is corrupt ({chunk_error})") from e
            raise StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                    reason=f"read failed ({type(e).__name__}: {e})") from e


class LmdbTileStore(TileStore):
    """An LMDB store of raw tiles: key ``<id>/<level>/<row>/<col>``, value = tile bytes + big-endian crc32c.

    Args:
        path: the store folder.
        manifest: its parsed manifest (read from ``path`` when None).
    """

    fmt = "lmdb"

    def _open(self) -> Any:
        import lmdb

        key = self._env_key()
        with _LMDB_LOCK:  # share one environment per file and process, count its users
            env, pid, users = _LMDB_ENVS.get(key, (None, -1, 0))
            if pid != os.getpid():  # inherited through fork: py-lmdb refuses to open the file again in the child,
                users = 0  # and a read-only, lock-free environment has no locks to share: the child reuses it
            if env is None:  # read-only and lock-free: a finished store never changes; readahead off for random reads
                try:
                    env, users = lmdb.open(key[0], subdir=True, readonly=True, lock=False, readahead=False), 0
                    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
                except lmdb.Error as e:
                    raise StoreCorruptError(store=self.path, reason=f"the LMDB environment {DIRS['lmdb']} cannot be "
                                                                    f"opened ({type(e).__name__}: {e})") from e
                if os.path.getsize(os.path.join(key[0], "data.mdb")) < need:  # reading would fault (SIGBUS)
                    env.close()
                    raise StoreCorruptError(store=self.path, reason=f"the LMDB environment {DIRS['lmdb']} is "
                                                                    f"truncated: data.mdb is shorter than the "
                                                                    f"{need:,} bytes its pages need")
            _LMDB_ENVS[key] = (env, os.getpid(), users + 1)
        return env

    def close(self) -> None:
        """Release this store's use of the shared LMDB environment (closed with its last user)."""
        if self._handle is not None and self._pid == os.getpid():
            with _LMDB_LOCK:
                key = next(k for k, v in _LMDB_ENVS.items() if v[0] is self._handle)
                env, pid, users = _LMDB_ENVS[key]
                _LMDB_ENVS[key] = (env, pid, users - 1)
                if users == 1:
                    del _LMDB_ENVS[key]
                    env.close()
        self._handle = None

    def _env_key(self) -> tuple[str, int]:
        folder = os.path.realpath(self.path / DIRS["lmdb"])  # the inode tells a store replaced at the same path
        try:
            return folder, os.stat(os.path.join(folder, "data.mdb")).st_ino
        except OSError as e:
            raise StoreCorruptError(store=self.path, reason=f"the LMDB environment {DIRS['lmdb']} is missing or "
                                                            f"unreadable ({type(e).__name__}: {e})") from e

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        import lmdb

        big_h, big_w, ch = self.shape(image_id, level)
        out = np.empty((h, w, ch), np.uint8)
        try:
            with self._get().begin() as txn:
                for r, c, y0, y1, x0, x1 in tiles(big_h, big_w, self.tile, y, x, h, w):
                    tile = self._tile(txn.get(f"{image_id}/{level}/{r}/{c}".encode()), image_id, level, (r, c),
                                      (y1 - y0, x1 - x0, ch))
                    ty, tx = max(y, y0), max(x, x0)
                    out[ty - y:min(y + h, y1) - y, tx - x:min(x + w, x1) - x] = \
                        tile[ty - y0:min(y + h, y1) - y0, tx - x0:min(x + w, x1) - x0]
        except lmdb.Error as e:  # a damaged B-tree page (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, ...)
            raise StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                    reason=f"the LMDB database cannot be read ({type(e).__name__}: {e})") from e
        return out

    def _tile(self, value: bytes | None, image_id: str, level: int, chunk: tuple[int, int],
              shape: tuple[int, int, int]) -> np.ndarray:
        """One stored tile's pixels, after its size and crc32c are checked."""
        if value is None:
            raise StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=chunk, reason="is missing")
        data = value[:-4]
        if len(data) != shape[0] * shape[1] * shape[2] or google_crc32c.value(data).to_bytes(4) != value[-4:]:
            raise StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=chunk,
                                    reason="is corrupt (size or crc32c checksum mismatch)")
        return np.frombuffer(data, np.uint8).reshape(shape)
