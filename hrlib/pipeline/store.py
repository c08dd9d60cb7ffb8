"""Tile stores for large images: read a region without decoding the whole file (lesson 05, claims C30/C31).

A store is a folder with ``manifest.json`` (format, tile, levels, each image's shape and the sha256 of its level-0
pixels) and either a zarr 3 hierarchy (``images.zarr/<id>/<level>``: chunks of ``tile x tile x C``, blosc-lz4 and
a crc32c checksum codec) or an LMDB environment (``tiles.lmdb``: one key ``<id>/<level>/<row>/<col>`` per raw tile,
followed by its crc32c). Level ``k`` of the pyramid is :func:`downsample` (level 0, k), so a low-resolution training
stage reads a small level instead of decoding and shrinking the full image.

This module writes a store from images in memory (:func:`write_store`; :func:`hrlib.pipeline.converter.convert`
writes one from image files), opens one (:func:`open_store`, the readers are in :mod:`hrlib.pipeline.tilestore`)
and checks one (:func:`verify`). Damage is an error, never wrong pixels: see
:class:`hrlib.pipeline.tilestore.StoreCorruptError`. A store is built in a temporary sibling folder and renamed
when complete, so a store with a manifest is a finished store.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from hrlib._checks import check_bool, check_image, check_path
from hrlib.pipeline._storage import (
    FORMATS,
    build_folder,
    check_image_id,
    check_level,
    check_settings,
    new_store_id,
    open_writer,
    pyramid,
    write_image,
    write_manifest,
)
from hrlib.pipeline.readers import LmdbTileStore, ZarrTileStore
from hrlib.pipeline.tilestore import StoreCorruptError, TileStore, read_manifest

__all__ = ["FORMATS", "downsample", "open_store", "verify", "write_store"]


def downsample(image: np.ndarray, level: int) -> np.ndarray:
    """Pyramid level ``level`` of ``image``: the mean of each 2^level x 2^level block, rounded half up.

    Args:
        image: HxW or HxWxC (C 1-4) uint8.
        level: 0 to 12; 2^level must not exceed the image's shorter side.

    Returns:
        ``(H // 2^level, W // 2^level[, C])`` uint8 (edge rows and columns that do not fill a block are dropped);
        level 0 returns ``image`` itself.
    """
    image, level = check_image("image", image, channels=(1, 2, 3, 4)), check_level(level)
    if min(image.shape[:2]) < 2 ** level:
        raise ValueError(f"level must leave at least 1 pixel: 2^{level} exceeds the image's {image.shape[:2]}")
    if level == 0:
        return image
    return pyramid(image[..., None] if image.ndim == 2 else image, level + 1)[-1].reshape(
        (image.shape[0] >> level, image.shape[1] >> level) + image.shape[2:])


def write_store(dst: str | os.PathLike, images: Iterable[tuple[str, np.ndarray]] | Mapping[str, np.ndarray], *,
                fmt: str = "zarr", tile: int = 512, levels: int = 3, force: bool = False) -> Path:
    """Write in-memory images to a new store at ``dst``.

    The store is built in a temporary sibling folder and renamed into place when complete.

    Args:
        dst: the store folder to create.
        images: image id -> HxW[xC] uint8 image (C 1-4), as a mapping or as (id, image) pairs; ids are letters,
            digits, '.', '_' or '-'.
        fmt: one of ``FORMATS`` (``"zarr"``, ``"lmdb"``).
        tile: the chunk side in pixels (>= 8).
        levels: pyramid levels (1-12; an image gets fewer if its shorter side is under 2^(levels-1)).
        force: replace an existing store (only an hrlib store or an empty folder is ever replaced).

    Returns:
        ``dst`` as a ``Path``.

    Raises:
        FileExistsError: ``dst`` exists and ``force`` is False, or it is something other than a store.
    """
    fmt, tile, levels = check_settings(fmt, tile, levels)
    dst, force = check_path("dst", dst), check_bool("force", force)
    if isinstance(images, str | bytes | np.ndarray) or not isinstance(images, Mapping | Iterable):
        raise TypeError(f"images must be a mapping id -> image or an iterable of (id, image) pairs, got "
                        f"{type(images).__name__}")
    items = images.items() if isinstance(images, Mapping) else images

    def fill(tmp: Path) -> None:
        entries: dict[str, dict] = {}
        store_id = new_store_id()
        writer = open_writer(tmp, fmt, tile, store_id)
        try:
            for item in items:
                if not (isinstance(item, tuple | list) and len(item) == 2):
                    raise ValueError(f"images must yield (id, image) pairs, got {type(item).__name__} {item!r:.60}")
                image_id, image = item
                if check_image_id(image_id) in entries:
                    raise ValueError(f"image_id {image_id!r} appears twice in images")
                image = check_image(f"images[{image_id!r}]", image, channels=(1, 2, 3, 4))
                entries[image_id] = write_image(writer, image_id, image, levels)
        finally:
            writer.close()
        if not entries:
            raise ValueError("images must hold at least one image, got none")
        write_manifest(tmp, fmt, tile, levels, entries, store_id)

    return build_folder(dst, force, fill)


def open_store(path: str | os.PathLike) -> TileStore:
    """Open a finished store.

    Args:
        path: the store folder.

    Returns:
        A :class:`ZarrTileStore` or :class:`LmdbTileStore` (a context manager that closes its handle).

    Raises:
        FileNotFoundError: ``path`` has no ``manifest.json`` (not a store, or an unfinished conversion).
        StoreCorruptError: the manifest is damaged.
    """
    manifest = read_manifest(check_path("path", path))
    return (ZarrTileStore if manifest["format"] == "zarr" else LmdbTileStore)(path, manifest)


def verify(path: str | os.PathLike) -> list[str]:
    """Check a store: the manifest, every chunk's presence and checksum, each level-0 sha256. Reads the whole store.

    Args:
        path: the store folder.

    Returns:
        The problems found, one line each; an empty list means healthy.
    """
    check_path("path", path)
    try:
        store = open_store(path)
    except (FileNotFoundError, StoreCorruptError) as e:
        return [str(e)]
    with store:
        return store.problems()
