"""Convert a folder of large image files into a tile store (``python -m hrlib convert``; lesson 05).

The conversion never leaves a store that looks complete but is not: images go into ``.<DST>.partial`` next to
``DST``, each finished image leaves a completion record there (``done/<id>.json``), and the manifest is written and
the folder renamed to ``DST`` only when every image is done. ``resume=True`` continues an interrupted run from its
records. Inputs are decoded by :func:`hrlib.pipeline.decode.read_image_file` under an explicit pixel limit
(``max_pixels``); a file that cannot be read is named and stops the run or is skipped and reported.
:func:`write_example_images` writes deterministic slide-like sources to convert.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from hrlib._checks import check_bool, check_int, check_path
from hrlib._io import FolderLock, atomic_write, load_json
from hrlib.pipeline._storage import (
    MANIFEST,
    check_dst,
    check_settings,
    commit,
    new_store_id,
    open_writer,
    write_image,
    write_manifest,
)
from hrlib.pipeline.decode import ImageDecodeError, read_image_file
from hrlib.pipeline.tilestore import StoreCorruptError, read_manifest

__all__ = ["ON_ERROR", "SUFFIXES", "ConvertError", "convert", "list_sources", "write_example_images"]

SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
ON_ERROR: tuple[str, ...] = ("stop", "skip")


class ConvertError(RuntimeError):
    """A conversion stopped on an input file (``on_error="stop"``); the message names the file."""


def write_example_images(folder: str | os.PathLike, n: int = 2, size: int = 4096, *, seed: int = 0,
                         quality: int = 90, fmt: str = "jpg") -> list[Path]:
    """Write deterministic slide-like RGB source images to convert: a 512 px ``make_slide`` upscaled to ``size``,
    plus fine noise (so that decoding does real work).

    Args:
        folder: where to write (created if needed).
        n: how many images (>= 1).
        size: the side of each square image in pixels (>= 16).
        seed: the same seed gives the same files.
        quality: the JPEG quality (1-100).
        fmt: ``"jpg"`` or ``"png"``.

    Returns:
        The paths ``folder/example_00.jpg``, ...
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


def list_sources(src: str | os.PathLike) -> dict[str, Path]:
    """The image files to convert, by image id (the file's stem, made safe as a store key).

    Args:
        src: one image file or a folder of them (``SUFFIXES``; not recursive).

    Returns:
        Image id -> file, sorted by file name.

    Raises:
        ValueError: ``src`` is missing, holds no image file, or two files give the same id.
    """
    src = check_path("src", src)
    if src.is_file() and src.suffix.lower() in SUFFIXES:
        files = [src]
    elif src.is_dir():
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    else:
        raise ValueError(f"src must be an image file or a folder with {'/'.join(SUFFIXES)} files, got {str(src)!r}"
                         f"{'' if src.exists() else ' (does not exist)'}")
    if not files:
        raise ValueError(f"src must contain {'/'.join(SUFFIXES)} files, found none in {src}")
    sources: dict[str, Path] = {}
    for file in files:
        image_id = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "._-" else "_"
                           for ch in file.stem).lstrip("._-") or "image"
        if image_id in sources:
            raise ValueError(f"src has two files for the image id {image_id!r}: {sources[image_id]} and {file}")
        sources[image_id] = file
    return sources


def _prepare(dst: Path, partial: Path, settings: dict[str, Any], resume: bool, force: bool,
             protect: tuple[Path, ...]) -> str:
    """Create ``partial`` or check that the interrupted run in it used the same settings; the store's id."""
    check_dst(dst, force, protect=protect)
    if partial.exists() and resume:
        try:
            old = load_json(partial / "convert.json", 1 << 16)
            if not (isinstance(old, dict) and isinstance(old.get("store_id"), str)):
                raise ValueError("it is not the record of an hrlib conversion")
        except (OSError, ValueError) as e:
            raise ValueError(f"resume: {partial} has no readable convert.json ({e}); pass --force to start over") \
                from e
        for name, value in settings.items():
            if old.get(name) != value:
                arg = {"format": "fmt"}.get(name, name)
                raise ValueError(f"{arg} must match the interrupted run in {partial} ({old.get(name)!r}) to resume, "
                                 f"got {value!r}; pass --force without --resume to start over")
        return old["store_id"]
    if partial.exists():
        if not force:
            raise FileExistsError(f"dst: an interrupted conversion left {partial}; pass --resume to finish it or "
                                  f"--force to start over")
        shutil.rmtree(partial)
    (partial / "done").mkdir(parents=True)
    store_id = new_store_id()
    atomic_write(partial / "convert.json", lambda fh: json.dump({**settings, "store_id": store_id}, fh))
    return store_id


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, fmt: str = "zarr", tile: int = 512, levels: int = 3,
            resume: bool = False, force: bool = False, on_error: str = "stop", max_pixels: int | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Convert image files into a new tile store (``python -m hrlib convert SRC DST``).

    Args:
        src: a folder of image files or one file (see :func:`list_sources`).
        dst: the store folder to create.
        fmt: ``"zarr"`` or ``"lmdb"`` (as in :func:`hrlib.pipeline.store.write_store`).
        tile: the chunk side in pixels (>= 8).
        levels: pyramid levels (1-12).
        resume: continue an interrupted conversion (images with a completion record are skipped); with a finished
            ``dst`` that already holds every source image, nothing is done.
        force: replace an existing store at ``dst`` (or discard an interrupted run when not resuming).
        on_error: ``"stop"`` raises :class:`ConvertError` naming the file (finished images are kept for
            ``resume``); ``"skip"`` records it under ``"failed"`` (also in the manifest) and goes on.
        max_pixels: the largest accepted width x height per image (default
            :data:`hrlib.pipeline.decode.DEFAULT_MAX_PIXELS`).
        progress: show a tqdm progress bar.

    Returns:
        ``{"converted": [files], "skipped": [files already done], "failed": {file: reason}}``.

    Raises:
        ConvertError: an input file failed with ``on_error="stop"``, or no image could be converted.
        FileExistsError: ``dst`` exists without ``force``, or an interrupted run exists without ``resume``.
    """
    fmt, tile, levels = check_settings(fmt, tile, levels)
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if max_pixels is not None:
        check_int("max_pixels", max_pixels)
    resume, force, progress = (check_bool(n, v) for n, v in (("resume", resume), ("force", force),
                                                             ("progress", progress)))
    dst = check_path("dst", dst)
    sources = list_sources(src)
    settings = {"format": fmt, "tile": tile, "levels": levels}
    with FolderLock(dst, "another conversion"):  # one writer per destination: a second one fails at once
        return _convert_locked(src, dst, sources, settings, resume=resume, force=force, on_error=on_error,
                               max_pixels=max_pixels, progress=progress)


def _convert_locked(src: str | os.PathLike, dst: Path, sources: dict[str, Path], settings: dict[str, Any], *,
                    resume: bool, force: bool, on_error: str, max_pixels: int | None, progress: bool) -> dict[str, Any]:
    """The conversion, run while this process holds ``dst``'s writer lock."""
    protect = (Path(os.fspath(src)), *sources.values())
    if resume and (dst / MANIFEST).exists():
        try:
            manifest = read_manifest(dst)
        except StoreCorruptError:
            manifest = {}
        if {k: manifest.get(k) for k in settings} == settings and set(sources) <= set(manifest["images"]):
            return {"converted": [], "skipped": [str(f) for f in sources.values()], "failed": {}}
    partial = dst.with_name(f".{dst.name}.partial")
    store_id = _prepare(dst, partial, settings, resume, force, protect)
    try:
        result = _convert_sources(sources, partial, {**settings, "store_id": store_id}, on_error=on_error,
                                  max_pixels=max_pixels, progress=progress)
    except Exception as e:
        if not isinstance(e, ConvertError) and not any((partial / "done").iterdir()):  # nothing to resume
            shutil.rmtree(partial, ignore_errors=True)
        raise
    images = {i: load_json(partial / "done" / f"{i}.json") for i in sources
              if (partial / "done" / f"{i}.json").exists()}
    if not images:
        shutil.rmtree(partial)
        raise ConvertError(f"no image of {src} could be converted: {result['failed']}")
    write_manifest(partial, settings["format"], settings["tile"], settings["levels"], images, store_id,
                   failed=result["failed"])
    commit(partial, dst, force, protect=protect)
    return result


def _convert_sources(sources: dict[str, Path], partial: Path, settings: dict[str, Any], *, on_error: str,
                     max_pixels: int | None, progress: bool) -> dict[str, Any]:
    """Decode and write each source without a completion record into ``partial``; what happened to each."""
    from tqdm.auto import tqdm

    fmt = settings["format"]
    result: dict[str, Any] = {"converted": [], "skipped": [], "failed": {}}
    writer = open_writer(partial, fmt, settings["tile"], settings["store_id"])
    try:
        for image_id, file in tqdm(sources.items(), desc=f"convert to {fmt}", unit="image", disable=not progress):
            record = partial / "done" / f"{image_id}.json"
            if record.exists():
                result["skipped"].append(str(file))
                continue
            try:
                image = read_image_file(file, max_pixels=max_pixels)
            except ImageDecodeError as e:
                if on_error == "stop":
                    raise ConvertError(f"{e}. Stopped; the {len(list((partial / 'done').iterdir()))} finished "
                                       f"images are kept in {partial}: fix or remove the file and rerun with "
                                       f"--resume, or pass --on-error skip") from e
                result["failed"][str(file)] = str(e)
                continue
            entry = write_image(writer, image_id, image, settings["levels"], source=file.name)
            atomic_write(record, lambda fh, entry=entry: json.dump(entry, fh))
            result["converted"].append(str(file))
    finally:
        writer.close()
    return result
