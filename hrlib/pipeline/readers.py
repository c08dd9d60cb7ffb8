"""The zarr and LMDB tile store readers (lesson 05): :class:`ZarrTileStore` and :class:`LmdbTileStore`.

Both read only the chunks a region meets and check each one against its position-bound checksum before its pixels
are used (see :mod:`hrlib.pipeline.tilestore` for what is detected). Files are checked before they are read: a
chunk, ``zarr.json`` or ``data.mdb`` that is a FIFO, a device or far larger than the format allows is damage, not
something to wait on or to load into memory. Open a store with :func:`hrlib.pipeline.store.open_store`.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

import numpy as np

from hrlib._io import read_limited
from hrlib.pipeline._storage import DIRS, chunk_crc, tiles
from hrlib.pipeline.tilestore import MAX_REPORTED, StoreCorruptError, TileStore

__all__ = ["LmdbTileStore", "ZarrTileStore"]

_LMDB_ENVS: dict[tuple[str, int], tuple[Any, int, int]] = {}  # (path, inode) -> (environment, pid, open stores)
_LMDB_LOCK = threading.Lock()  # py-lmdb allows one open environment per file and process: the stores share it
MAX_ZARR_JSON = 64 << 20  # an array's zarr.json holds its chunk checksums: about 11 bytes per chunk


class ZarrTileStore(TileStore):
    """A zarr 3 store: ``images.zarr/<id>/<level>`` arrays, chunks checked by a position-bound crc32c (the
    ``hrlib_chunk_crc32c`` attribute) and by zarr's own crc32c codec, missing chunks detected.

    Args:
        path: the store folder.
        manifest: its parsed manifest (read from ``path`` when None).
    """

    fmt = "zarr"

    def _open(self) -> dict[str, Any]:
        import zarr

        return {"store": zarr.storage.LocalStore(self.path / DIRS["zarr"], read_only=True), "arrays": {}}

    def _array(self, image_id: str, level: int) -> tuple[Any, list[list[int]]]:
        import zarr

        handle = self._get()
        key = f"{image_id}/{level}"
        if key not in handle["arrays"]:
            try:  # zarr would read a FIFO (hang), /dev/zero or a huge file (memory) as metadata: check it first
                read_limited(self.path / DIRS["zarr"] / key / "zarr.json", MAX_ZARR_JSON)
                arr = zarr.open_array(handle["store"], path=key, mode="r", zarr_format=3)
                table = arr.attrs.get("hrlib_chunk_crc32c")
            except Exception as e:  # noqa: BLE001 - damaged metadata: zarr raises TypeError, KeyError, ValueError, ...
                raise StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                        reason=f"array {key} is missing or unreadable ({type(e).__name__}: {e})") from e
            want = (self.shape(image_id, level), np.dtype(np.uint8), (self.tile, self.tile, arr.shape[-1]))
            if (arr.shape, arr.dtype, arr.chunks) != want:
                raise StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                        reason=f"array {key} has shape {arr.shape}, dtype {arr.dtype} and chunks "
                                               f"{arr.chunks}; the manifest says {want}")
            rows, cols = arr.cdata_shape[:2]
            if not (isinstance(table, list) and len(table) == rows
                    and all(isinstance(r, list) and len(r) == cols for r in table)):
                raise StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                        reason=f"array {key} lacks its {rows} x {cols} table of chunk checksums "
                                               f"(attribute hrlib_chunk_crc32c)")
            handle["arrays"][key] = (arr, table)
        return handle["arrays"][key]

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        arr, table = self._array(image_id, level)
        folder = self.path / DIRS["zarr"] / image_id / str(level)
        grid = list(tiles(arr.shape[0], arr.shape[1], self.tile, y, x, h, w))
        limit = self.tile * self.tile * arr.shape[2] + 1024  # blosc adds at most 16 bytes, the crc32c codec 4
        for r, c, *_ in grid:  # zarr reads a missing chunk as fill values: check each one, and where it belongs
            try:
                data = read_limited(folder / arr.metadata.encode_chunk_key((r, c, 0)), limit)
            except FileNotFoundError:
                raise StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=(r, c),
                                        reason="is missing") from None
            except OSError as e:
                raise StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=(r, c),
                                        reason=f"is unreadable ({e})") from e
            if chunk_crc(self.store_id, image_id, level, r, c, data[:-4]) != table[r][c]:  # see ZarrWriter.write
                raise self._mismatch(image_id, level, (r, c))
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
    """An LMDB store of raw tiles: key ``<id>/<level>/<row>/<col>``, value = tile bytes + big-endian position-bound
    crc32c.

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
            info = os.stat(os.path.join(folder, "data.mdb"))
        except OSError as e:
            raise StoreCorruptError(store=self.path, reason=f"the LMDB environment {DIRS['lmdb']} is missing or "
                                                            f"unreadable ({type(e).__name__}: {e})") from e
        if not stat.S_ISREG(info.st_mode):  # LMDB would block on a FIFO
            raise StoreCorruptError(store=self.path, reason=f"{DIRS['lmdb']}/data.mdb is not a regular file")
        return folder, info.st_ino

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        import lmdb

        big_h, big_w, ch = self.shape(image_id, level)
        out = np.empty((h, w, ch), np.uint8)
        try:
            with self._get().begin(buffers=True) as txn:  # values stay in the map until their size is checked
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

    def _tile(self, value: memoryview | None, image_id: str, level: int, chunk: tuple[int, int],
              shape: tuple[int, int, int]) -> np.ndarray:
        """One stored tile's pixels, after its size and position-bound crc32c are checked."""
        if value is None:
            raise StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=chunk, reason="is missing")
        if len(value) != shape[0] * shape[1] * shape[2] + 4:
            raise StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=chunk,
                                    reason=f"is corrupt ({len(value):,} bytes; a {shape} tile and its checksum "
                                           f"are {shape[0] * shape[1] * shape[2] + 4:,})")
        data = bytes(value[:-4])
        if chunk_crc(self.store_id, image_id, level, *chunk, data).to_bytes(4) != bytes(value[-4:]):
            raise self._mismatch(image_id, level, chunk)
        return np.frombuffer(data, np.uint8).reshape(shape)

    def _claim_problem(self, image_id: str, level: int) -> str:
        """One line if the database holds fewer chunks of the level than the manifest claims (its chunks are then
        not looked up one by one: a manifest claiming a huge image would take minutes)."""
        import lmdb

        h, w, _ = self.shape(image_id, level)
        want = (-(-h // self.tile)) * (-(-w // self.tile))
        prefix, held = f"{image_id}/{level}/".encode(), 0
        try:
            with self._get().begin(buffers=True) as txn, txn.cursor() as cursor:
                found = cursor.set_range(prefix)
                while found and bytes(cursor.key()[:len(prefix)]) == prefix and held <= want:
                    held, found = held + 1, cursor.next()
        except lmdb.Error as e:
            return str(StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                         reason=f"the LMDB database cannot be read ({type(e).__name__}: {e})"))
        if held >= want - MAX_REPORTED:  # a few missing chunks are named one by one
            return ""
        return str(StoreCorruptError(store=self.path, image_id=image_id, level=level,
                                     reason=f"the database holds {held:,} of the {want:,} chunks the manifest "
                                            f"claims"))
