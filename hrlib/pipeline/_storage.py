"""How a tile store lies on disk and the steps that write one (lesson 05; package-internal).

Shared by :func:`hrlib.pipeline.store.write_store` (images in memory), :func:`hrlib.pipeline.converter.convert`
(image files, resumable) and the store readers; :func:`build_folder` and :func:`commit` are also the shard writers'
atomic folder commit. A store is a folder with ``manifest.json`` and either ``images.zarr`` (one zarr array per image
and level) or ``tiles.lmdb`` (one key ``<id>/<level>/<row>/<col>`` per raw tile, followed by its checksum).

Every chunk's checksum binds its bytes to where they belong: :func:`chunk_crc` hashes the store's id, the image id,
the level and the chunk's row and column together with the bytes. A chunk swapped with another, a chunk file that is
a symlink to another chunk, or a chunk of a store that replaced this one while it was open fails its check instead of
being read as wrong pixels. zarr arrays keep these checksums in their ``hrlib_chunk_crc32c`` attribute; zarr's own
crc32c codec stays, so any zarr reader still detects a flipped byte.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

from hrlib._checks import check_int
from hrlib._io import FolderLock, atomic_write, commit_folder, read_limited, temp_folder

FORMATS: tuple[str, ...] = ("zarr", "lmdb")
MANIFEST = "manifest.json"
MAX_LEVELS = 12  # 2^12 x 2^12 blocks of uint8 still sum exactly in uint32
MAX_SIDE = 2**20  # a manifest claiming a longer image side is damaged (the largest slides are about 2^18 px)
MAX_TILE = 4096  # a 4096 x 4096 x 4 chunk is 64 MiB; blosc cannot compress a buffer over 2 GiB
MAX_MANIFEST_BYTES = 256 << 20  # a manifest of 10^5 images is about 50 MB
CHECKSUM = "crc32c(store_id/image_id/level/row/col NUL bytes)"  # the manifest's chunk_checksum: how chunks are bound
DIRS = {"zarr": "images.zarr", "lmdb": "tiles.lmdb"}
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def tiles(h: int, w: int, tile: int, y: int = 0, x: int = 0, rh: int | None = None,
          rw: int | None = None) -> Iterator[tuple[int, int, int, int, int, int]]:
    """``(row, col, y0, y1, x0, x1)`` of the tiles of an ``h x w`` grid that meet the region (all by default)."""
    rh, rw = h if rh is None else rh, w if rw is None else rw
    for r in range(y // tile, (y + rh - 1) // tile + 1):
        for c in range(x // tile, (x + rw - 1) // tile + 1):
            yield r, c, r * tile, min(h, (r + 1) * tile), c * tile, min(w, (c + 1) * tile)


def check_level(level: object) -> int:
    """``level`` as an int in [0, MAX_LEVELS]; ``TypeError``/``ValueError`` naming ``level`` otherwise."""
    level = check_int("level", level, 0)
    if level > MAX_LEVELS:
        raise ValueError(f"level must be <= {MAX_LEVELS}, got {level}")
    return level


def check_settings(fmt: object, tile: object, levels: object) -> tuple[str, int, int]:
    """A store's ``(fmt, tile, levels)`` checked: a format of ``FORMATS``, tile 8-4096 px, 1-12 levels."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    tile, levels = check_int("tile", tile, 8), check_int("levels", levels)
    if tile > MAX_TILE:
        raise ValueError(f"tile must be <= {MAX_TILE} px (a chunk of {tile} x {tile} px is too large to compress "
                         f"and read), got {tile}")
    if levels > MAX_LEVELS:
        raise ValueError(f"levels must be <= {MAX_LEVELS}, got {levels}")
    return str(fmt), tile, levels


def check_image_id(image_id: object) -> str:
    """``image_id`` if it is a safe name (it becomes a folder or key); ``ValueError`` naming ``image_id``."""
    if not isinstance(image_id, str) or not ID_PATTERN.match(image_id):
        raise ValueError(f"image_id must be letters, digits, '.', '_' or '-' starting with a letter or digit, "
                         f"got {image_id!r}")
    return image_id


def new_store_id() -> str:
    """A random id for a new store (32 hex digits), bound into every chunk's checksum."""
    return uuid.uuid4().hex


def chunk_crc(store_id: str, image_id: str, level: int, row: int, col: int, data: bytes) -> int:
    """The crc32c of ``data`` bound to its place: the store, the image, the level and the chunk's row and column.

    Args:
        store_id: the store's id (its manifest's ``store_id``).
        image_id: the image.
        level: the pyramid level.
        row: the chunk's row in the level's grid.
        col: the chunk's column.
        data: the chunk's stored bytes.

    Returns:
        The checksum, an unsigned 32-bit int.
    """
    return google_crc32c.extend(google_crc32c.value(f"{store_id}/{image_id}/{level}/{row}/{col}\0".encode()), data)


def pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Levels 0..levels-1 of ``image`` (HxWxC): exact 2^k block sums, then rounded means (half up)."""
    out, sums = [image], image.astype(np.uint32)
    for k in range(1, levels):
        h, w = sums.shape[0] // 2, sums.shape[1] // 2
        s = sums[:2 * h, :2 * w]
        sums = s[0::2, 0::2] + s[1::2, 0::2] + s[0::2, 1::2] + s[1::2, 1::2]
        n = 4 ** k
        out.append(((sums + n // 2) // n).astype(np.uint8))
    return out


class ZarrWriter:
    """Writes each level as a zarr 3 array of ``tile x tile x C`` chunks, compressed and checksummed."""

    def __init__(self, root: Path, tile: int, store_id: str) -> None:
        import zarr

        self.root, self.tile, self.store_id = root / DIRS["zarr"], tile, store_id
        self.store = zarr.storage.LocalStore(self.root)

    def write(self, image_id: str, level: int, image: np.ndarray) -> None:
        """Write one level (HxWxC uint8) of ``image_id``."""
        import zarr
        from zarr.codecs import BloscCodec, Crc32cCodec

        # crc32c after the compressor: a flipped byte fails the checksum; write_empty_chunks so no chunk is skipped
        arr = zarr.create_array(self.store, name=f"{image_id}/{level}", shape=image.shape, dtype="uint8",
                                chunks=(self.tile, self.tile, image.shape[2]), fill_value=0, overwrite=True,
                                compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"), Crc32cCodec()],
                                config={"write_empty_chunks": True})
        arr[...] = image
        folder, rows, cols = self.root / image_id / str(level), arr.cdata_shape[0], arr.cdata_shape[1]
        # bound over the bytes before zarr's own crc32c: crc32c(m + crc32c(m)) is the same for every m of a length
        arr.attrs["hrlib_chunk_crc32c"] = [
            [chunk_crc(self.store_id, image_id, level, r, c,
                       (folder / arr.metadata.encode_chunk_key((r, c, 0))).read_bytes()[:-4]) for c in range(cols)]
            for r in range(rows)]

    def close(self) -> None:
        """Release the zarr store."""
        self.store.close()


class LmdbWriter:
    """Writes each tile of each level as one LMDB value: raw bytes followed by their big-endian crc32c."""

    def __init__(self, root: Path, tile: int, store_id: str) -> None:
        import lmdb

        self.env, self.tile = lmdb.open(str(root / DIRS["lmdb"]), map_size=256 << 20, subdir=True), tile
        self.store_id = store_id

    def write(self, image_id: str, level: int, image: np.ndarray) -> None:
        """Write one level (HxWxC uint8) of ``image_id`` in one transaction."""
        import lmdb

        while True:  # grow the map when full (a large map_size would allocate the whole file on Windows)
            try:
                with self.env.begin(write=True) as txn:
                    for r, c, y0, y1, x0, x1 in tiles(image.shape[0], image.shape[1], self.tile):
                        data = np.ascontiguousarray(image[y0:y1, x0:x1]).tobytes()
                        crc = chunk_crc(self.store_id, image_id, level, r, c, data)
                        txn.put(f"{image_id}/{level}/{r}/{c}".encode(), data + crc.to_bytes(4))
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def close(self) -> None:
        """Close the LMDB environment."""
        self.env.close()


def open_writer(root: Path, fmt: str, tile: int, store_id: str) -> ZarrWriter | LmdbWriter:
    """The writer of format ``fmt`` for the store folder ``root`` of the store ``store_id``."""
    return (ZarrWriter if fmt == "zarr" else LmdbWriter)(root, tile, store_id)


def write_image(writer: ZarrWriter | LmdbWriter, image_id: str, image: np.ndarray, levels: int,
                source: str | None = None) -> dict[str, Any]:
    """Write all pyramid levels of one image (at most as many as its shorter side allows); its manifest entry."""
    image = image[..., None] if image.ndim == 2 else image
    if min(image.shape[:2]) < 1:
        raise ValueError(f"image {image_id!r} must have at least 1 pixel per side to be stored, got "
                         f"{image.shape[0]} x {image.shape[1]}")
    if max(image.shape[:2]) > MAX_SIDE:
        raise ValueError(f"image {image_id!r} must have sides <= {MAX_SIDE} px to be stored, got {image.shape[:2]}")
    levels_of = pyramid(image, min(levels, min(image.shape[:2]).bit_length()))
    for k, level in enumerate(levels_of):
        writer.write(image_id, k, level)
    return {"shape": list(image.shape), "sha256": hashlib.sha256(np.ascontiguousarray(image).data).hexdigest(),
            "source": source, "level_shapes": [list(p.shape[:2]) for p in levels_of]}


def write_manifest(root: Path, fmt: str, tile: int, levels: int, images: Mapping[str, dict], store_id: str,
                   **extra: Any) -> None:
    """Write ``manifest.json`` (last: a folder with a manifest is a finished store); readable by all."""
    manifest = {"format": fmt, "tile": tile, "levels": levels, "complete": True, "store_id": store_id,
                "chunk_checksum": CHECKSUM, "images": dict(images), **extra}
    atomic_write(root / MANIFEST, lambda fh: json.dump(manifest, fh, indent=1), keep_permissions=True)


def _is_size(v: object, lo: int = 1) -> bool:
    return type(v) is int and v >= lo


def manifest_problem(m: Any) -> str:
    """What is wrong with a parsed manifest ("" when nothing): every value a reader relies on is checked, so a
    crafted or damaged manifest is an error on open instead of wrong reads (or reads outside the store) later."""
    if not isinstance(m, dict):
        return f"expected a JSON object, got {type(m).__name__}"
    if m.get("complete") is not True:
        return f"complete must be true, got {m.get('complete')!r}"
    if m.get("format") not in FORMATS:
        return f"format must be one of {FORMATS}, got {m.get('format')!r}"
    if not (_is_size(m.get("tile"), 8) and m["tile"] <= MAX_TILE):
        return f"tile must be an int 8-{MAX_TILE}, got {m.get('tile')!r}"
    if m.get("chunk_checksum") != CHECKSUM or not re.fullmatch(r"[0-9a-f]{32}", str(m.get("store_id"))):
        return ("store_id must be 32 hex digits and chunk_checksum must be position-bound crc32c (a store written "
                "by an older hrlib lacks them: convert its images again)")
    if not isinstance(m.get("images"), dict) or not m["images"]:
        return "images must be a non-empty object"
    for image_id, e in m["images"].items():
        if not ID_PATTERN.match(image_id):
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


OWNER = ".hrlib-owner"  # {"kind": ...}: written into every folder hrlib creates; the only folders force replaces


def mark_owned(folder: Path, kind: str) -> None:
    """Mark ``folder`` (a finished temporary folder, before its commit) as an hrlib ``kind`` that ``force`` may
    replace."""
    atomic_write(folder / OWNER, lambda fh: json.dump({"kind": kind}, fh))


def _owned(folder: Path, kind: str) -> bool:
    marker = folder / OWNER
    try:
        return json.loads(read_limited(marker, 4096, follow=False)).get("kind") == kind
    except (OSError, ValueError, AttributeError):
        return False


def check_dst(dst: Path, force: bool, kind: str = "store", protect: tuple[Path, ...] = ()) -> None:
    """Refuse an existing ``dst`` unless ``force``; even then, only a folder hrlib wrote as a ``kind`` (marked by
    :func:`mark_owned`; a ``manifest.json`` or ``index.json`` alone is not enough) or an empty folder is replaced,
    and never one that is or holds a path in ``protect`` (the sources): ``force`` never deletes someone's files."""
    for path in protect:
        if path.resolve() == dst.resolve() or dst.resolve() in path.resolve().parents:
            raise ValueError(f"dst {dst} is or holds the source {path}; write the {kind} somewhere else")
    if not (dst.exists() or dst.is_symlink()):
        return
    if not force:
        raise FileExistsError(f"dst {dst} already exists; pass force=True (--force) to overwrite it")
    if dst.is_symlink() or not dst.is_dir() or not (_owned(dst, kind) or not any(dst.iterdir())):
        raise FileExistsError(f"dst {dst} exists and is not an hrlib {kind} (no {OWNER} marker of a {kind}: "
                              f"a manifest alone is not enough); refusing to replace it even with force: delete "
                              f"it yourself if you mean to")


def commit(tmp: Path, dst: Path, force: bool, kind: str = "store", protect: tuple[Path, ...] = ()) -> Path:
    """Mark the finished folder ``tmp`` as a ``kind`` and rename it to ``dst`` in one step (an old ``dst`` only with
    ``force``, and only if :func:`check_dst` allows: it is checked again, as ``dst`` may have appeared while
    ``tmp`` was filled)."""
    mark_owned(tmp, kind)
    check_dst(dst, force, kind, protect)
    return commit_folder(tmp, dst, replace=force)


def build_folder(dst: Path, force: bool, fill: Callable[[Path], None], kind: str = "store") -> Path:
    """Create the folder ``dst`` atomically: ``fill(tmp)`` writes a temporary sibling, which is then committed.

    On any error (or an interrupt) ``dst`` is unchanged and the temporary folder is removed. The folder gets the
    permissions of a plain ``mkdir`` (the umask's), not a temporary folder's private ``0o700``.
    """
    check_dst(dst, force, kind)
    with FolderLock(dst, f"an hrlib {kind} writer"):
        return _build_locked(dst, force, fill, kind)


def _build_locked(dst: Path, force: bool, fill: Callable[[Path], None], kind: str) -> Path:
    tmp = temp_folder(dst)
    try:
        probe = tmp / ".mode"
        probe.mkdir()  # a new folder's mode under the current umask (reading the umask itself would change it)
        tmp.chmod(probe.stat().st_mode & 0o777)
        probe.rmdir()
        fill(tmp)
        commit(tmp, dst, force, kind)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
