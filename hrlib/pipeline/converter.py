"""Convert a folder of large image files into a tile store (``python -m hrlib convert``; lesson 05).

The conversion never leaves a store that looks complete but is not: images go into ``.<DST>.partial`` next to
``DST``, each finished image leaves a completion record there (``done/<id>.json``), and the manifest is written and
the folder renamed to ``DST`` only when every image is done. ``resume=True`` continues an interrupted run from its
records. Inputs are decoded with PIL under an explicit pixel limit (``max_pixels``) instead of a globally disabled
decompression-bomb guard; a file that cannot be read is named and stops the run or is skipped and reported.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from hrlib._checks import check_bool, check_int, check_path
from hrlib._io import atomic_write
from hrlib.pipeline import store as _store

__all__ = ["DEFAULT_MAX_PIXELS", "ON_ERROR", "SUFFIXES", "ConvertError", "convert", "list_sources",
           "read_image_file"]

SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
ON_ERROR: tuple[str, ...] = ("stop", "skip")
DEFAULT_MAX_PIXELS = 178_956_970  # PIL's own refusal threshold (2 x Image.MAX_IMAGE_PIXELS), about 13377^2
_PIL_LOCK = threading.Lock()  # PIL's limit is a module global: change it for one decode at a time


class ConvertError(RuntimeError):
    """A conversion stopped on an input file (``on_error="stop"``); the message names the file."""


def _check_png_crcs(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming ``path`` unless every chunk of the PNG file has its stored CRC-32.

    PIL does not check the CRC of IDAT chunks and stops inflating once it has every row, before zlib's own
    checksum: a flipped byte in the pixel data can decode to wrong pixels without an error. Checking each chunk's
    CRC first (about 1 ms per MB) makes a damaged PNG an error.
    """
    data = Path(path).read_bytes()
    pos, end = 8, len(data)
    while pos < end:
        if pos + 12 > end:
            raise ValueError(f"{path}: truncated PNG (a chunk header at byte {pos} is cut off)")
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body_end = data[pos + 4:pos + 8], pos + 8 + length
        if body_end + 4 > end:
            raise ValueError(f"{path}: truncated PNG (chunk {kind!r} at byte {pos} runs past the end of the file)")
        if zlib.crc32(data[pos + 4:body_end]) != int.from_bytes(data[body_end:body_end + 4], "big"):
            raise ValueError(f"{path}: damaged PNG (chunk {kind!r} at byte {pos} fails its CRC-32 check)")
        pos = body_end + 4
        if kind == b"IEND":
            return
    raise ValueError(f"{path}: truncated PNG (no IEND chunk)")


def read_image_file(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file with PIL into HxWxC uint8 (C = 1 grey, 3 RGB, 4 RGBA).

    Grey and 1-bit images give C = 1; palette, CMYK and YCbCr images become RGB (RGBA with transparency). An EXIF
    orientation tag is applied, so the array is upright as image viewers show it; of a multi-page TIFF the first
    page is read (a pyramidal TIFF's full-resolution level).

    ``max_pixels`` (default ``DEFAULT_MAX_PIXELS``) is the largest accepted width x height; PIL's guard is raised
    to it for this call only and restored afterwards, and the size is checked from the header before any pixel is
    decoded. Raises ``ValueError`` naming the file for a file that is too large, unreadable, truncated, damaged or
    not 8-bit; PIL's warnings about corrupt data are errors here. PNG chunks are checked against their CRC-32, so
    a damaged PNG never decodes to wrong pixels; JPEG and uncompressed TIFF carry no checksum, and a flipped byte
    in their pixel data can go unnoticed (keep checksums of such sources).
    """
    from PIL import Image, ImageOps

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else check_int("max_pixels", max_pixels)
    path = check_path("path", path)
    how = f"pass --max-pixels N (max_pixels=N) with N >= the image's pixels to raise the limit of {limit:,}"
    with _PIL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL warns ("Truncated File Read", "Corrupt EXIF data") on damaged files
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the explicit check below replaces it
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
        try:
            with Image.open(path) as im:  # reads the header only
                if im.width * im.height > limit:
                    raise ValueError(f"{path}: {im.width}x{im.height} = {im.width * im.height:,} pixels exceeds "
                                     f"max_pixels={limit:,}; {how}")
                if im.mode.startswith(("I", "F")):
                    raise ValueError(f"{path}: mode {im.mode!r} is not 8-bit; convert it to 8-bit first")
                if im.format == "PNG":
                    _check_png_crcs(path)
                im.load()
                im = ImageOps.exif_transpose(im)
                if im.mode == "1":
                    im = im.convert("L")
                elif im.mode not in ("L", "RGB", "RGBA"):
                    im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
                image = np.asarray(im)
        except Image.DecompressionBombError as e:
            raise ValueError(f"{path}: image exceeds max_pixels={limit:,} (PIL: {e}); {how}") from e
        except FileNotFoundError as e:
            raise FileNotFoundError(f"path {path} does not exist") from e
        except ValueError as e:
            if str(e).startswith(str(path)):
                raise
            raise ValueError(f"{path}: cannot decode ({type(e).__name__}: {e})") from e
        except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files; name the file in all
            raise ValueError(f"{path}: cannot decode ({type(e).__name__}: {e})") from e
        finally:
            Image.MAX_IMAGE_PIXELS = old
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"{path}: decoded to {image.dtype} with shape {image.shape}, expected 8-bit HxW[xC]")
    return image[..., None] if image.ndim == 2 else image


def list_sources(src: str | os.PathLike) -> dict[str, Path]:
    """Image id (the file's stem) -> file for ``src``: one image file or a folder of them (``SUFFIXES``, sorted)."""
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
        image_id = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in file.stem).lstrip("._-") or "image"
        if image_id in sources:
            raise ValueError(f"src has two files for the image id {image_id!r}: {sources[image_id]} and {file}")
        sources[image_id] = file
    return sources


def _prepare(dst: Path, partial: Path, settings: dict[str, Any], resume: bool, force: bool) -> None:
    """Create ``partial`` or check that the interrupted run in it used the same settings."""
    _store._check_dst(dst, force)
    if partial.exists() and resume:
        try:
            old = json.loads((partial / "convert.json").read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"resume: {partial} has no readable convert.json ({e}); pass --force to start over") \
                from e
        for name, value in settings.items():
            if old.get(name) != value:
                arg = {"format": "fmt"}.get(name, name)
                raise ValueError(f"{arg} must match the interrupted run in {partial} ({old.get(name)!r}) to resume, "
                                 f"got {value!r}; pass --force without --resume to start over")
        return
    if partial.exists():
        if not force:
            raise FileExistsError(f"dst: an interrupted conversion left {partial}; pass --resume to finish it or "
                                  f"--force to start over")
        shutil.rmtree(partial)
    (partial / "done").mkdir(parents=True)
    atomic_write(partial / "convert.json", lambda fh: json.dump(settings, fh))


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, fmt: str = "zarr", tile: int = 512, levels: int = 3,
            resume: bool = False, force: bool = False, on_error: str = "stop", max_pixels: int | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Convert the image files in ``src`` (a folder or one file) into a store at ``dst``.

    Args:
        fmt, tile, levels: as in :func:`hrlib.pipeline.store.write_store` (``"zarr"``/``"lmdb"``, chunk side px, pyramid
            levels).
        resume: continue an interrupted conversion (images with a completion record are skipped); with a finished
            ``dst`` that already holds every source image, nothing is done.
        force: replace an existing store at ``dst`` (or discard an interrupted run when not resuming).
        on_error: ``"stop"`` raises :class:`ConvertError` naming the file (finished images are kept for
            ``resume``); ``"skip"`` records it under ``"failed"`` (also in the manifest) and goes on.
        max_pixels: largest accepted width x height per image (default ``DEFAULT_MAX_PIXELS``).
        progress: show a tqdm progress bar.

    Returns:
        ``{"converted": [files], "skipped": [files already done], "failed": {file: reason}}``.
    """
    fmt, tile, levels = _store._check_settings(fmt, tile, levels)
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if max_pixels is not None:
        check_int("max_pixels", max_pixels)
    resume, force, progress = (check_bool(n, v) for n, v in (("resume", resume), ("force", force),
                                                             ("progress", progress)))
    dst = check_path("dst", dst)
    sources = list_sources(src)
    settings = {"format": fmt, "tile": tile, "levels": levels}
    result: dict[str, Any] = {"converted": [], "skipped": [], "failed": {}}
    if resume and (dst / _store.MANIFEST).exists():
        manifest = json.loads((dst / _store.MANIFEST).read_text())
        if {k: manifest.get(k) for k in settings} == settings and set(sources) <= set(manifest["images"]):
            result["skipped"] = [str(f) for f in sources.values()]
            return result
    partial = dst.with_name(f".{dst.name}.partial")
    _prepare(dst, partial, settings, resume, force)
    from tqdm.auto import tqdm

    writer = _store._open_writer(partial, fmt, tile)
    try:
        for image_id, file in tqdm(sources.items(), desc=f"convert to {fmt}", unit="image", disable=not progress):
            record = partial / "done" / f"{image_id}.json"
            if record.exists():
                result["skipped"].append(str(file))
                continue
            try:
                image = read_image_file(file, max_pixels=max_pixels)
            except ValueError as e:
                if on_error == "stop":
                    raise ConvertError(f"{e}. Stopped; the {len(list((partial / 'done').iterdir()))} finished "
                                       f"images are kept in {partial}: fix or remove the file and rerun with "
                                       f"--resume, or pass --on-error skip") from e
                result["failed"][str(file)] = str(e)
                continue
            entry = _store._write_image(writer, image_id, image, levels, source=file.name)
            atomic_write(record, lambda fh, entry=entry: json.dump(entry, fh))
            result["converted"].append(str(file))
    finally:
        writer.close()
    images = {i: json.loads((partial / "done" / f"{i}.json").read_text()) for i in sources
              if (partial / "done" / f"{i}.json").exists()}
    if not images:
        shutil.rmtree(partial)
        raise ConvertError(f"no image of {src} could be converted: {result['failed']}")
    _store._write_manifest(partial, fmt, tile, levels, images, failed=result["failed"])
    _store._commit(partial, dst, force)
    return result
