"""Reading tile stores (lesson 05): :class:`TileStore`, :func:`read_manifest` and :class:`StoreCorruptError`.

A reader reads only the chunks a region meets, checks each one, and turns damage into an error, never into wrong
pixels: a flipped byte fails a chunk's checksum, a chunk moved to another position (or another store's chunk) fails
its position-bound checksum, a missing chunk (which zarr would silently read as fill values) is detected, and a
damaged manifest or LMDB database is refused. :class:`StoreCorruptError` says what is damaged. The zarr and LMDB
readers are in :mod:`hrlib.pipeline.readers`; open a store with :func:`hrlib.pipeline.store.open_store`, where the
layout is described.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hrlib._checks import check_int, check_path
from hrlib._io import load_json
from hrlib.pipeline._storage import MANIFEST, MAX_MANIFEST_BYTES, manifest_problem, tiles

__all__ = ["StoreCorruptError", "TileStore", "read_manifest"]

MAX_REPORTED = 8  # verify names at most this many damaged chunks per level, then counts the rest


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
        manifest = load_json(file, MAX_MANIFEST_BYTES)
    except (OSError, ValueError) as e:  # a FIFO, a device, a huge or deeply nested file, not JSON
        raise StoreCorruptError(store=path, reason=f"{MANIFEST} cannot be read: {e}") from e
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
        self.store_id: str = manifest["store_id"]
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

        Memory stays at one row of chunks: the sha256 is computed band by band.

        Returns:
            One line per damaged chunk (at most ``MAX_REPORTED`` per level, then a count), per unreadable level
            and per sha256 mismatch; empty when healthy.
        """
        problems: list[str] = []
        for image_id in self.image_ids:
            for level in range(self.levels(image_id)):
                bad = self._level_problems(image_id, level)
                problems += [b for b in bad if b not in problems]
                if level == 0 and not bad:
                    digest, want = self._sha256(image_id), self._entry(image_id)["sha256"]
                    if digest != want:
                        problems.append(f"image {image_id!r}: level-0 sha256 {digest[:12]}... differs from the "
                                        f"manifest's {want[:12]}...")
        return problems

    def _sha256(self, image_id: str) -> str:
        """The sha256 of level 0's pixels in row-major order, read one band of chunk rows at a time."""
        h, w, _ = self.shape(image_id)
        digest = hashlib.sha256()
        for y in range(0, h, self.tile):
            digest.update(self._read(image_id, 0, y, 0, min(self.tile, h - y), w).data)
        return digest.hexdigest()

    def _level_problems(self, image_id: str, level: int) -> list[str]:
        """Each chunk of one level read alone: a line per damaged chunk, one line if the whole level is unreadable."""
        try:
            claim = self._claim_problem(image_id, level)
        except StoreCorruptError as e:
            claim = str(e)
        if claim:
            return [claim]
        h, w, _ = self.shape(image_id, level)
        bad, more = [], 0
        for _, _, y0, y1, x0, x1 in tiles(h, w, self.tile):
            try:
                self._read(image_id, level, y0, x0, y1 - y0, x1 - x0)
            except StoreCorruptError as e:
                if e.chunk is None:  # not one chunk: the array, the database or the environment is damaged
                    return [*bad, str(e)]
                if len(bad) < MAX_REPORTED:
                    bad.append(str(e))
                else:
                    more += 1
        return bad + ([f"image {image_id!r} level {level}: {more} more damaged chunk(s)"] if more else [])

    def _claim_problem(self, image_id: str, level: int) -> str:
        """A line if the storage cannot hold the level the manifest claims (then its chunks are not read one by
        one); "" otherwise."""
        return ""

    def _mismatch(self, image_id: str, level: int, chunk: tuple[int, int]) -> StoreCorruptError:
        """The error for a chunk that fails its checksum: damaged, or the store was replaced while open."""
        try:
            now = load_json(self.path / MANIFEST, MAX_MANIFEST_BYTES).get("store_id")
        except (OSError, ValueError, AttributeError):
            now = None
        if now is not None and now != self.store_id:
            return StoreCorruptError(f"store {self.path} was replaced by another store while it was open (store id "
                                     f"{self.store_id[:8]}... is now {str(now)[:8]}...); open it again",
                                     store=self.path, image_id=image_id, level=level, chunk=chunk,
                                     reason="was replaced")
        return StoreCorruptError(store=self.path, image_id=image_id, level=level, chunk=chunk,
                                 reason="is corrupt: it fails its checksum (damaged bytes, or another chunk's data in "
                                        "its place)")

    def _get(self) -> Any:
        if self._handle is None or self._pid != os.getpid():  # never use a handle across fork
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def _open(self) -> Any:
        raise NotImplementedError

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        raise NotImplementedError
