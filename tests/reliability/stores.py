"""Where a store keeps one chunk, for the attacks that move or replace chunks. These helpers are the only place the
reliability tests know a store's layout: when the store format changes, change them and every attack still runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hrlib.pipeline import write_store

FORMATS = ("zarr", "lmdb")


def noise_store(path: Path, fmt: str, seed: int = 0, side: int = 64, tile: int = 16) -> dict[str, np.ndarray]:
    """A store of one image of random pixels (every chunk different); its images."""
    images = {"a": np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)}
    write_store(path, images, fmt=fmt, tile=tile, levels=1, force=True)
    return images


def chunk_file(path: Path, image_id: str, level: int, row: int, col: int) -> Path:
    """The file of one zarr chunk."""
    return path / "images.zarr" / image_id / str(level) / "c" / str(row) / str(col) / "0"


def _lmdb(path: Path):
    import lmdb

    return lmdb.open(str(path / "tiles.lmdb"), subdir=True, lock=False)


def swap_chunks(path: Path, fmt: str, a: tuple[int, int], b: tuple[int, int]) -> None:
    """Exchange two chunks of image ``a`` level 0 (both valid, each in the other's place)."""
    if fmt == "zarr":
        fa, fb = chunk_file(path, "a", 0, *a), chunk_file(path, "a", 0, *b)
        da, db = fa.read_bytes(), fb.read_bytes()
        fa.write_bytes(db)
        fb.write_bytes(da)
        return
    env = _lmdb(path)
    with env.begin(write=True) as txn:
        ka, kb = f"a/0/{a[0]}/{a[1]}".encode(), f"a/0/{b[0]}/{b[1]}".encode()
        va, vb = txn.get(ka), txn.get(kb)
        txn.put(ka, vb)
        txn.put(kb, va)
    env.close()


def alias_chunk(path: Path, fmt: str, src: tuple[int, int], dst: tuple[int, int]) -> None:
    """Make chunk ``dst`` the same stored chunk as ``src``: a symlink (zarr) or a copied value (LMDB)."""
    if fmt == "zarr":
        target = chunk_file(path, "a", 0, *dst)
        target.unlink()
        os.symlink(chunk_file(path, "a", 0, *src), target)
        return
    env = _lmdb(path)
    with env.begin(write=True) as txn:
        txn.put(f"a/0/{dst[0]}/{dst[1]}".encode(), txn.get(f"a/0/{src[0]}/{src[1]}".encode()))
    env.close()


def edit_manifest(path: Path, edit) -> None:
    """Rewrite ``manifest.json`` through ``edit(manifest)``."""
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
