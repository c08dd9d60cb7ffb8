"""Tile stores for large images: read a region without decoding the whole file (lesson 05, claims C30/C31).

A store is a folder with ``manifest.json`` (format, tile, levels, each image's shape and the sha256 of its level-0
pixels) and either a zarr 3 hierarchy (``images.zarr/<id>/<level>``: chunks of ``tile x tile x C``, blosc-lz4 and
a crc32c checksum codec) or an LMDB environment (``tiles.lmdb``: one key ``<id>/<level>/<row>/<col>`` per raw tile,
followed by its crc32c). Level ``k`` of the pyramid is :func:`downsample` (level 0, k), so a low-resolution training
stage reads a small level instead of decoding and shrinking the full image.

Damage is an error, never wrong pixels: a flipped byte fails the checksum and a missing chunk (which zarr would
silently read as fill values) is detected; both raise :class:`StoreCorruptError`. Writers build the store in a
temporary sibling folder and rename it when complete, so a store with a manifest is a finished store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

from hrlib._checks import check_bool, check_int, check_path
from hrlib._io import atomic_write

__all__ = ["FORMATS", "LmdbTileStore", "StoreCorruptError", "TileStore", "ZarrTileStore", "downsample",
           "open_store", "verify", "write_example_images", "write_store"]

FORMATS: tuple[str, ...] = ("zarr", "lmdb")
MANIFEST = "manifest.json"
MAX_LEVELS = 12  # 2^12 x 2^12 blocks of uint8 still sum exactly in uint32
MAX_SIDE = 2**20  # a manifest claiming a longer image side is damaged (the largest slides are about 2^18 px)
_DIRS = {"zarr": "images.zarr", "lmdb": "tiles.lmdb"}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_LMDB_ENVS: dict[tuple[str, int], tuple[Any, int, int]] = {}  # (path, inode) -> (environment, pid, open stores)
_LMDB_LOCK = threading.Lock()


class StoreCorruptError(RuntimeError):
    """A store is damaged: a chunk fails its checksum or is missing, or the manifest is absent or inconsistent."""


def write_example_images(folder: str | os.PathLike, n: int = 2, size: int = 4096, *, seed: int = 0,
                         quality: int = 90, fmt: str = "jpg") -> list[Path]:
    """Write ``n`` deterministic slide-like RGB images of ``size x size`` px as JPEG (``fmt="jpg"``) or PNG.

    A 512 px ``make_slide`` upscaled to ``size`` plus fine noise (so decoding does real work). ``quality`` is the
    JPEG quality (1-100). Returns the paths ``folder/example_00.jpg``, ...; the same seed gives the same files.
    """
    import cv2
    from PIL import Image

    from hrlib.data.slides import make_slide

    n, size, seed = check_int("n", n), check_int("size", size, 16), check_int("seed", seed, 0)
    quality = check_int("quality", quality)
    if quality > 100 or fmt not in ("jpg", "png"):
        raise ValueError(f"quality must be 1-100 and fmt 'jpg' or 'png', got quality={quality}, fmt={fmt!r}")
    folder = check_path("folder", folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    noise = rng.integers(-10, 11, (min(size, 1024),) * 2 + (3,), dtype=np.int16)
    reps = -(-size // noise.shape[0])
    noise = np.tile(noise, (reps, reps, 1))[:size, :size]
    paths = []
    for i in range(n):
        base = cv2.resize(make_slide(512, seed=seed + i).image, (size, size), interpolation=cv2.INTER_LINEAR)
        image = np.clip(base.astype(np.int16) + np.roll(noise, 97 * i, axis=(0, 1)), 0, 255).astype(np.uint8)
        path = folder / f"example_{i:02d}.{fmt}"
        Image.fromarray(image).save(path, **({"quality": quality} if fmt == "jpg" else {"compress_level": 1}))
        paths.append(path)
    return paths


def _check_image(name: str, image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or not (
            image.ndim == 2 or (image.ndim == 3 and 1 <= image.shape[2] <= 4)):
        got = f"{image.dtype} with shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be an HxW or HxWxC (C 1-4) uint8 array, got {got}")
    return image


def _check_level(level: object) -> int:
    level = check_int("level", level, 0)
    if level > MAX_LEVELS:
        raise ValueError(f"level must be <= {MAX_LEVELS}, got {level}")
    return level


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Levels 0..levels-1 of ``image`` (HxWxC): exact 2^k block sums, then rounded means (half up)."""
    out, sums = [image], image.astype(np.uint32)
    for k in range(1, levels):
        h, w = sums.shape[0] // 2, sums.shape[1] // 2
        s = sums[:2 * h, :2 * w]
        sums = s[0::2, 0::2] + s[1::2, 0::2] + s[0::2, 1::2] + s[1::2, 1::2]
        n = 4 ** k
        out.append(((sums + n // 2) // n).astype(np.uint8))
    return out


def downsample(image: np.ndarray, level: int) -> np.ndarray:
    """Pyramid level ``level`` of ``image``: the mean of each 2^level x 2^level block, rounded half up.

    ``image`` is HxW or HxWxC uint8; the result is ``(H // 2^level, W // 2^level[, C])`` uint8 (edge rows and
    columns that do not fill a block are dropped). Level 0 returns ``image`` itself.
    """
    image, level = _check_image("image", image), _check_level(level)
    if min(image.shape[:2]) < 2 ** level:
        raise ValueError(f"level must leave at least 1 pixel: 2^{level} exceeds the image's {image.shape[:2]}")
    if level == 0:
        return image
    return _pyramid(image[..., None] if image.ndim == 2 else image, level + 1)[-1].reshape(
        (image.shape[0] >> level, image.shape[1] >> level) + image.shape[2:])


def _tiles(h: int, w: int, tile: int, y: int = 0, x: int = 0, rh: int | None = None,
           rw: int | None = None) -> Iterator[tuple[int, int, int, int, int, int]]:
    """``(row, col, y0, y1, x0, x1)`` of the tiles of an ``h x w`` grid that meet the region (all by default)."""
    rh, rw = h if rh is None else rh, w if rw is None else rw
    for r in range(y // tile, (y + rh - 1) // tile + 1):
        for c in range(x // tile, (x + rw - 1) // tile + 1):
            yield r, c, r * tile, min(h, (r + 1) * tile), c * tile, min(w, (c + 1) * tile)


class _ZarrWriter:
    def __init__(self, root: Path, tile: int):
        import zarr

        self.store, self.tile = zarr.storage.LocalStore(root / _DIRS["zarr"]), tile

    def write(self, image_id: str, level: int, image: np.ndarray) -> None:
        import zarr
        from zarr.codecs import BloscCodec, Crc32cCodec

        # crc32c after the compressor: a flipped byte fails the checksum; write_empty_chunks so no chunk is skipped
        arr = zarr.create_array(self.store, name=f"{image_id}/{level}", shape=image.shape, dtype="uint8",
                                chunks=(self.tile, self.tile, image.shape[2]), fill_value=0, overwrite=True,
                                compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"), Crc32cCodec()],
                                config={"write_empty_chunks": True})
        arr[...] = image

    def close(self) -> None:
        self.store.close()


class _LmdbWriter:
    def __init__(self, root: Path, tile: int):
        import lmdb

        self.env, self.tile = lmdb.open(str(root / _DIRS["lmdb"]), map_size=256 << 20, subdir=True), tile

    def write(self, image_id: str, level: int, image: np.ndarray) -> None:
        import lmdb

        while True:  # grow the map when full (a large map_size would allocate the whole file on Windows)
            try:
                with self.env.begin(write=True) as txn:
                    for r, c, y0, y1, x0, x1 in _tiles(image.shape[0], image.shape[1], self.tile):
                        data = np.ascontiguousarray(image[y0:y1, x0:x1]).tobytes()
                        txn.put(f"{image_id}/{level}/{r}/{c}".encode(), data + google_crc32c.value(data).to_bytes(4))
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def close(self) -> None:
        self.env.close()


def _open_writer(root: Path, fmt: str, tile: int) -> _ZarrWriter | _LmdbWriter:
    return (_ZarrWriter if fmt == "zarr" else _LmdbWriter)(root, tile)


def _write_image(writer: _ZarrWriter | _LmdbWriter, image_id: str, image: np.ndarray, levels: int,
                 source: str | None = None) -> dict[str, Any]:
    """Write all pyramid levels of one image (at most as many as its shorter side allows); its manifest entry."""
    image = image[..., None] if image.ndim == 2 else image
    if max(image.shape[:2]) > MAX_SIDE:
        raise ValueError(f"image {image_id!r} must have sides <= {MAX_SIDE} px to be stored, got {image.shape[:2]}")
    pyramid = _pyramid(image, min(levels, min(image.shape[:2]).bit_length()))
    for k, level in enumerate(pyramid):
        writer.write(image_id, k, level)
    return {"shape": list(image.shape), "sha256": hashlib.sha256(np.ascontiguousarray(image).data).hexdigest(),
            "source": source, "level_shapes": [list(p.shape[:2]) for p in pyramid]}


def _check_settings(fmt: object, tile: object, levels: object) -> tuple[str, int, int]:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    tile, levels = check_int("tile", tile, 8), check_int("levels", levels)
    if levels > MAX_LEVELS:
        raise ValueError(f"levels must be <= {MAX_LEVELS}, got {levels}")
    return str(fmt), tile, levels


def _check_image_id(image_id: object) -> str:
    if not isinstance(image_id, str) or not _ID.match(image_id):
        raise ValueError(f"image_id must be letters, digits, '.', '_' or '-' starting with a letter or digit, "
                         f"got {image_id!r}")
    return image_id


def _check_dst(dst: Path, force: bool) -> None:
    """Refuse an existing ``dst`` unless ``force``; even then, only an hrlib store or an empty folder is replaced."""
    if not dst.exists():
        return
    if not force:
        raise FileExistsError(f"dst {dst} already exists; pass force=True (--force) to overwrite it")
    if not (dst.is_dir() and ((dst / MANIFEST).exists() or not any(dst.iterdir()))):
        raise FileExistsError(f"dst {dst} exists and is not an hrlib store; refusing to replace it even with force")


def _write_manifest(root: Path, fmt: str, tile: int, levels: int, images: Mapping[str, dict], **extra: Any) -> None:
    manifest = {"format": fmt, "tile": tile, "levels": levels, "complete": True, "images": dict(images), **extra}
    atomic_write(root / MANIFEST, lambda fh: json.dump(manifest, fh, indent=1))
    os.chmod(root / MANIFEST, 0o644)  # atomic_write's temp file is private; a store is meant to be shared


def _commit(tmp: Path, dst: Path, force: bool) -> None:
    """Rename the finished ``tmp`` to ``dst`` (replacing an old store only with ``force``)."""
    _check_dst(dst, force)
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}") if dst.exists() else None
    if old is not None:
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old)


def write_store(dst: str | os.PathLike, images: Iterable[tuple[str, np.ndarray]] | Mapping[str, np.ndarray], *,
                fmt: str = "zarr", tile: int = 512, levels: int = 3, force: bool = False) -> Path:
    """Write in-memory ``images`` (id -> HxW[xC] uint8) to a new store at ``dst``; returns its path.

    ``fmt`` in ``FORMATS``; ``tile`` is the chunk side in pixels (>= 8); ``levels`` pyramid levels (1-12; an image
    gets fewer if its shorter side is under 2^(levels-1)). The store is built in a temporary sibling folder and
    renamed into place when complete; an existing ``dst`` is replaced only with ``force=True``.
    """
    fmt, tile, levels = _check_settings(fmt, tile, levels)
    dst, force = check_path("dst", dst), check_bool("force", force)
    _check_dst(dst, force)
    if isinstance(images, str | bytes | np.ndarray) or not isinstance(images, Mapping | Iterable):
        raise TypeError(f"images must be a mapping id -> image or an iterable of (id, image) pairs, got "
                        f"{type(images).__name__}")
    items = images.items() if isinstance(images, Mapping) else images
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")  # mkdir keeps the umask's mode
    tmp.mkdir()
    try:
        entries: dict[str, dict] = {}
        writer = _open_writer(tmp, fmt, tile)
        try:
            for item in items:
                if not (isinstance(item, tuple | list) and len(item) == 2):
                    raise ValueError(f"images must yield (id, image) pairs, got {type(item).__name__} {item!r:.60}")
                image_id, image = item
                if _check_image_id(image_id) in entries:
                    raise ValueError(f"image_id {image_id!r} appears twice in images")
                entries[image_id] = _write_image(writer, image_id, _check_image(f"images[{image_id!r}]", image),
                                                 levels)
        finally:
            writer.close()
        if not entries:
            raise ValueError("images must hold at least one image, got none")
        _write_manifest(tmp, fmt, tile, levels, entries)
        _commit(tmp, dst, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.exists():
        partial = path.with_name(f".{path.name}.partial")
        hint = f"; an interrupted conversion left {partial}: rerun convert with --resume" if partial.exists() else ""
        raise FileNotFoundError(f"path {path} is not a complete hrlib store (no {MANIFEST}){hint}")
    try:
        manifest = json.loads(file.read_text())
    except ValueError as e:  # also UnicodeDecodeError
        raise StoreCorruptError(f"{file} is not valid JSON: {e}") from e
    problem = _manifest_problem(manifest)
    if problem:
        raise StoreCorruptError(f"{file} is damaged or not an hrlib manifest: {problem}")
    return manifest


def _is_size(v: object, lo: int = 1) -> bool:
    return type(v) is int and v >= lo


def _manifest_problem(m: Any) -> str:
    """What is wrong with a parsed manifest ("" when nothing): every value a reader relies on is checked, so a
    crafted or damaged manifest is an error here instead of wrong reads (or reads outside the store) later."""
    if not isinstance(m, dict):
        return f"expected a JSON object, got {type(m).__name__}"
    if m.get("complete") is not True:
        return f"complete must be true, got {m.get('complete')!r}"
    if m.get("format") not in FORMATS:
        return f"format must be one of {FORMATS}, got {m.get('format')!r}"
    if not _is_size(m.get("tile"), 8):
        return f"tile must be an int >= 8, got {m.get('tile')!r}"
    if not isinstance(m.get("images"), dict) or not m["images"]:
        return "images must be a non-empty object"
    for image_id, e in m["images"].items():
        if not _ID.match(image_id):
            return f"image id {image_id!r} is not letters, digits, '.', '_' or '-'"
        shape = e.get("shape") if isinstance(e, dict) else None
        if not (isinstance(shape, list) and len(shape) == 3 and all(map(_is_size, shape)) and shape[2] <= 4
                and max(shape[:2]) <= MAX_SIDE):
            return f"images[{image_id!r}].shape must be [H, W, C] with H, W <= {MAX_SIDE} and C 1-4, got {shape!r}"
        levels = e.get("level_shapes")
        want = [[shape[0] >> k, shape[1] >> k] for k in range(len(levels))] if isinstance(levels, list) else None
        if not (want and len(want) <= MAX_LEVELS and levels == want and all(map(_is_size, want[-1]))):
            return f"images[{image_id!r}].level_shapes must be [H >> k, W >> k] for k = 0, 1, ..., got {levels!r}"
        if not (isinstance(e.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", e["sha256"])):
            return f"images[{image_id!r}].sha256 must be 64 hex digits, got {e.get('sha256')!r:.80}"
    return ""


class TileStore:
    """Read regions of the images in a finished store; use :func:`open_store`. Picklable: a worker process that
    receives (or forks with) a store reopens its own handle on first use.

    Attributes: ``path`` (the store folder), ``fmt``, ``tile`` (chunk side, px), ``image_ids`` (sorted).
    """

    fmt = ""

    def __init__(self, path: str | os.PathLike, manifest: Mapping[str, Any] | None = None):
        self.path = check_path("path", path)
        manifest = _read_manifest(self.path) if manifest is None else manifest
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
        """Number of pyramid levels stored for ``image_id``."""
        return len(self._entry(image_id)["level_shapes"])

    def shape(self, image_id: str, level: int = 0) -> tuple[int, int, int]:
        """``(H, W, C)`` of ``image_id`` at ``level`` (level k is about 1/2^k of level 0 per side)."""
        entry, level = self._entry(image_id), check_int("level", level, 0)
        if level >= len(entry["level_shapes"]):
            raise ValueError(f"level must be < {len(entry['level_shapes'])} for image {image_id!r}, got {level}")
        return (*entry["level_shapes"][level], entry["shape"][2])

    def read_region(self, image_id: str, y: int, x: int, h: int, w: int, level: int = 0) -> np.ndarray:
        """The ``h x w`` region with top-left corner (``y``, ``x``) of ``image_id`` at ``level``, as (h, w, C) uint8.

        Coordinates are pixels of that level's grid; the region may cross chunks but must lie inside the image.
        Raises ``ValueError`` naming the argument otherwise, and :class:`StoreCorruptError` for damaged chunks.
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
        """The whole image ``image_id`` at ``level`` as (H, W, C) uint8."""
        h, w, _ = self.shape(image_id, level)
        return self._read(image_id, level, 0, 0, h, w)

    def close(self) -> None:
        """Release the open handle (the store reopens on the next read)."""
        self._handle = None

    def _get(self) -> Any:
        if self._handle is None or self._pid != os.getpid():  # never use a handle across fork
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def _error(self, image_id: str, level: int, r: int, c: int, what: str) -> StoreCorruptError:
        return StoreCorruptError(f"image {image_id!r} level {level}: chunk ({r}, {c}) {what}; the store {self.path} "
                                 f"is damaged (run `python -m hrlib verify {self.path}`)")

    def _open(self) -> Any:
        raise NotImplementedError

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        raise NotImplementedError


class ZarrTileStore(TileStore):
    """A zarr 3 store: ``images.zarr/<id>/<level>`` arrays, chunks checked by crc32c, missing chunks detected."""

    fmt = "zarr"

    def _open(self) -> dict[str, Any]:
        import zarr

        return {"store": zarr.storage.LocalStore(self.path / _DIRS["zarr"], read_only=True), "arrays": {}}

    def _array(self, image_id: str, level: int) -> Any:
        import zarr

        handle = self._get()
        key = f"{image_id}/{level}"
        if key not in handle["arrays"]:
            try:
                arr = zarr.open_array(handle["store"], path=key, mode="r")
            except (FileNotFoundError, KeyError, ValueError) as e:
                raise StoreCorruptError(f"image {image_id!r} level {level}: array {key} is missing or unreadable "
                                        f"in {self.path} ({type(e).__name__}: {e})") from e
            want = (self.shape(image_id, level), np.dtype(np.uint8), (self.tile, self.tile, arr.shape[-1]))
            if (arr.shape, arr.dtype, arr.chunks) != want:
                raise StoreCorruptError(f"image {image_id!r} level {level}: array {key} has shape {arr.shape}, dtype "
                                        f"{arr.dtype} and chunks {arr.chunks}; the manifest says {want} in {self.path}")
            handle["arrays"][key] = arr
        return handle["arrays"][key]

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        arr = self._array(image_id, level)
        folder = self.path / _DIRS["zarr"] / image_id / str(level)
        tiles = list(_tiles(arr.shape[0], arr.shape[1], self.tile, y, x, h, w))
        for r, c, *_ in tiles:  # zarr reads a missing chunk as fill values: check that each one exists
            if not (folder / arr.metadata.encode_chunk_key((r, c, 0))).is_file():
                raise self._error(image_id, level, r, c, "is missing")
        try:
            return arr[y:y + h, x:x + w]
        except (ValueError, RuntimeError, OSError) as e:  # checksum mismatch (ValueError), codec failure
            for r, c, y0, y1, x0, x1 in tiles:  # find the damaged chunk to name it
                try:
                    arr[y0:y1, x0:x1]
                except (ValueError, RuntimeError, OSError) as chunk_error:
                    raise self._error(image_id, level, r, c, f"is corrupt ({chunk_error})") from e
            raise StoreCorruptError(f"image {image_id!r} level {level}: read failed in {self.path}: {e}") from e


class LmdbTileStore(TileStore):
    """An LMDB store of raw tiles: key ``<id>/<level>/<row>/<col>``, value = tile bytes + big-endian crc32c."""

    fmt = "lmdb"

    def _open(self) -> Any:
        import lmdb

        key = self._env_key()
        with _LMDB_LOCK:  # py-lmdb allows one open environment per file and process: share it, count users
            env, pid, users = _LMDB_ENVS.get(key, (None, -1, 0))
            if pid != os.getpid():  # inherited through fork: py-lmdb refuses to open the file again in the child,
                users = 0  # and a read-only, lock-free environment has no locks to share: the child reuses it
            if env is None:  # read-only and lock-free: a finished store never changes; readahead off for random reads
                try:
                    env, users = lmdb.open(key[0], subdir=True, readonly=True, lock=False, readahead=False), 0
                except lmdb.Error as e:
                    raise StoreCorruptError(f"the LMDB environment {key[0]} cannot be opened ({e})") from e
                need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
                if os.path.getsize(os.path.join(key[0], "data.mdb")) < need:  # reading would fault (SIGBUS)
                    env.close()
                    raise StoreCorruptError(f"the LMDB environment {key[0]} is truncated: data.mdb is shorter than "
                                            f"the {need:,} bytes its pages need")
            _LMDB_ENVS[key] = (env, os.getpid(), users + 1)
        return env

    def close(self) -> None:
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
        folder = os.path.realpath(self.path / _DIRS["lmdb"])  # the inode tells a store replaced at the same path
        try:
            return folder, os.stat(os.path.join(folder, "data.mdb")).st_ino
        except OSError as e:
            raise StoreCorruptError(f"the LMDB environment {folder} is missing or unreadable ({e})") from e

    def _read(self, image_id: str, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        big_h, big_w, ch = self.shape(image_id, level)
        out = np.empty((h, w, ch), np.uint8)
        with self._get().begin() as txn:
            for r, c, y0, y1, x0, x1 in _tiles(big_h, big_w, self.tile, y, x, h, w):
                value = txn.get(f"{image_id}/{level}/{r}/{c}".encode())
                if value is None:
                    raise self._error(image_id, level, r, c, "is missing")
                data = value[:-4]
                if len(data) != (y1 - y0) * (x1 - x0) * ch or google_crc32c.value(data).to_bytes(4) != value[-4:]:
                    raise self._error(image_id, level, r, c, "is corrupt (size or crc32c checksum mismatch)")
                tile = np.frombuffer(data, np.uint8).reshape(y1 - y0, x1 - x0, ch)
                ty, tx = max(y, y0), max(x, x0)
                out[ty - y:min(y + h, y1) - y, tx - x:min(x + w, x1) - x] = \
                    tile[ty - y0:min(y + h, y1) - y0, tx - x0:min(x + w, x1) - x0]
        return out


def open_store(path: str | os.PathLike) -> TileStore:
    """Open the finished store at ``path`` (refuses a folder without a complete ``manifest.json``)."""
    manifest = _read_manifest(check_path("path", path))
    return (ZarrTileStore if manifest["format"] == "zarr" else LmdbTileStore)(path, manifest)


def verify(path: str | os.PathLike) -> list[str]:
    """Check the store at ``path``: manifest, every chunk's presence and checksum, each level-0 sha256.

    Returns the problems found, one line each (an empty list means healthy). Reads the whole store.
    """
    check_path("path", path)
    try:
        store = open_store(path)
    except (FileNotFoundError, StoreCorruptError) as e:
        return [str(e)]
    problems = []
    with store:
        for image_id in store.image_ids:
            for level in range(store.levels(image_id)):
                h, w, _ = store.shape(image_id, level)
                bad = []
                for _, _, y0, y1, x0, x1 in _tiles(h, w, store.tile):
                    try:
                        store._read(image_id, level, y0, x0, y1 - y0, x1 - x0)
                    except StoreCorruptError as e:
                        bad.append(str(e))
                        if "array" in str(e) or "environment" in str(e):  # all of it is unreadable: one line
                            break
                problems += [b for b in bad if b not in problems]
                if level == 0 and not bad:
                    digest = hashlib.sha256(store.read_image(image_id).data).hexdigest()
                    if digest != store._entry(image_id)["sha256"]:
                        problems.append(f"image {image_id!r}: level-0 sha256 {digest[:12]}... differs from the "
                                        f"manifest's {store._entry(image_id)['sha256'][:12]}...")
    return problems
