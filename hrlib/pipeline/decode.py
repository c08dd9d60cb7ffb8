"""Decoding image files safely (lesson 05): the one hardened decoder behind every image file hrlib reads.

:func:`read_image_file` (what ``hrlib convert`` stores: 1, 3 or 4 channels, as in the file) and :func:`decode_image`
(what the whole-file baseline trains on: always RGB) share one core, with these guards:

- size: width x height is checked against ``max_pixels`` from the header, before any pixel is decoded. PIL's global
  guard (``Image.MAX_IMAGE_PIXELS``) is never changed: a call that asks for more pixels than it allows raises the
  limit for its own thread only (PIL's check is wrapped once to consult a thread-local limit), so a decode in
  another thread, hrlib's or not, keeps PIL's guard;
- damage: every PNG chunk is checked against its CRC-32 (PIL skips that for pixel data, and a flipped byte could
  decode to wrong pixels), and PIL's warnings about corrupt data are errors. JPEG and uncompressed TIFF carry no
  checksum: a flipped byte in their pixel data can go unnoticed (keep checksums of such sources);
- errors: whatever cannot be decoded (missing, truncated, garbage, too large, not 8-bit) raises
  :class:`ImageDecodeError`, a ``ValueError`` that carries the file and the reason.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hrlib._checks import check_int, check_path

__all__ = ["DEFAULT_MAX_PIXELS", "ImageDecodeError", "decode_image", "read_image_file"]

DEFAULT_MAX_PIXELS = 178_956_970  # PIL's own refusal threshold (2 x Image.MAX_IMAGE_PIXELS), about 13377^2
_THREAD = threading.local()  # .limit: the pixel limit PIL's bomb check applies in this thread (None: PIL's own)


class ImageDecodeError(ValueError):
    """An image file that cannot be decoded: missing, truncated, damaged, too large, not 8-bit or not an image.

    Args:
        message: the whole message; by default ``"path '<path>' could not be decoded: <reason>"``. (Pickling and
            DataLoader workers rebuild the error from its message alone.)
        path: the file.
        reason: what is wrong with it, e.g. ``"300x257 = 77,100 pixels exceeds max_pixels=50,000; ..."``.

    Attributes:
        path: the file as a ``Path`` (None when only a message was given).
        reason: what is wrong with it.
    """

    def __init__(self, message: str | None = None, *, path: str | os.PathLike | None = None,
                 reason: str = "") -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        super().__init__(message if message is not None else f"path {os.fspath(path)!r} could not be decoded: {reason}")


def _check_png_crcs(path: Path) -> None:
    """Raise :class:`ImageDecodeError` unless every chunk of the PNG file has its stored CRC-32 (about 1 ms per MB).

    PIL does not check the CRC of IDAT chunks and stops inflating once it has every row, before zlib's own
    checksum: without this, a flipped byte in the pixel data can decode to wrong pixels without an error.
    """
    data = path.read_bytes()
    pos, end = 8, len(data)
    while pos < end:
        if pos + 12 > end:
            raise ImageDecodeError(path=path, reason=f"truncated PNG (a chunk header at byte {pos} is cut off)")
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body_end = data[pos + 4:pos + 8], pos + 8 + length
        if body_end + 4 > end:
            raise ImageDecodeError(path=path, reason=f"truncated PNG (chunk {kind!r} at byte {pos} runs past the end "
                                                     f"of the file)")
        if zlib.crc32(data[pos + 4:body_end]) != int.from_bytes(data[body_end:body_end + 4], "big"):
            raise ImageDecodeError(path=path, reason=f"damaged PNG (chunk {kind!r} at byte {pos} fails its CRC-32 "
                                                     f"check)")
        pos = body_end + 4
        if kind == b"IEND":
            return
    raise ImageDecodeError(path=path, reason="truncated PNG (no IEND chunk)")


def _thread_aware_bomb_check(Image) -> None:  # noqa: N803 - the PIL.Image module
    """Wrap PIL's decompression-bomb check (once per process) so that it applies this thread's limit if one is set.

    PIL's check is a module-level function that ``Image.open`` looks up at each call; other threads, and this one
    outside :func:`_pil_guard_allows`, get PIL's own check unchanged.
    """
    original = Image._decompression_bomb_check
    if getattr(original, "hrlib_thread_aware", False):
        return

    def check(size: tuple[int, int]) -> None:
        limit = getattr(_THREAD, "limit", None)
        if limit is None:
            return original(size)
        if size[0] * size[1] > limit:
            raise Image.DecompressionBombError(f"Image size ({size[0] * size[1]} pixels) exceeds limit of {limit} "
                                               f"pixels for this call")
        return None

    check.hrlib_thread_aware = True  # type: ignore[attr-defined]
    Image._decompression_bomb_check = check


@contextlib.contextmanager
def _pil_guard_allows(limit: int) -> Iterator[None]:
    """Let PIL's decompression-bomb guard pass ``limit`` pixels in this thread, for the ``with`` block only.

    A ``limit`` within PIL's own (``2 * Image.MAX_IMAGE_PIXELS``) changes nothing: the caller's header check is the
    stricter guard. PIL's global is never written, so no other thread's guard is ever lowered.
    """
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    if old is None or limit <= 2 * old:
        yield
        return
    _thread_aware_bomb_check(Image)
    previous = getattr(_THREAD, "limit", None)
    _THREAD.limit = limit
    try:
        yield
    finally:
        _THREAD.limit = previous


def _decode(path: Path, limit: int) -> np.ndarray:
    """The core: ``path`` decoded under every guard into HxWxC uint8 with C = 1, 3 or 4 (see the module)."""
    from PIL import Image, ImageOps

    how = f"pass max_pixels=N (--max-pixels N) with N >= the image's pixels to raise the limit of {limit:,}"
    try:
        with _pil_guard_allows(limit), warnings.catch_warnings():
            warnings.simplefilter("error")  # PIL warns ("Truncated File Read", "Corrupt EXIF data") on damaged files
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the header check below replaces it
            with Image.open(path) as im:  # reads the header only
                if im.width * im.height > limit:
                    raise ImageDecodeError(path=path, reason=f"{im.width}x{im.height} = {im.width * im.height:,} "
                                                             f"pixels exceeds max_pixels={limit:,}; {how}")
                if im.mode.startswith(("I", "F")):
                    raise ImageDecodeError(path=path, reason=f"mode {im.mode!r} is not 8-bit; convert it to 8-bit "
                                                             f"first")
                if im.format == "PNG":
                    _check_png_crcs(path)
                im.load()
                ImageOps.exif_transpose(im, in_place=True)  # upright, as image viewers show it
                if im.mode == "1":
                    im = im.convert("L")
                elif im.mode not in ("L", "RGB", "RGBA"):  # palette, CMYK, YCbCr, LA, ...
                    im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
                image = np.asarray(im)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as e:  # PIL's own guard fired first, at open
        raise ImageDecodeError(path=path, reason=f"image exceeds max_pixels={limit:,} (PIL's DecompressionBombError: "
                                                 f"{e}); {how}") from e
    except FileNotFoundError as e:
        raise ImageDecodeError(path=path, reason="the file does not exist") from e
    except Exception as e:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ...) for broken files
        raise ImageDecodeError(path=path, reason=f"cannot decode ({type(e).__name__}: {e})") from e
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ImageDecodeError(path=path, reason=f"decoded to {image.dtype} with shape {image.shape}, expected "
                                                 f"8-bit HxW[xC]")
    return image[..., None] if image.ndim == 2 else image


def read_image_file(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file into HxWxC uint8 with the channels it has: C = 1 grey, 3 RGB, 4 RGBA.

    Grey and 1-bit images give C = 1; palette, CMYK and YCbCr images become RGB (RGBA with transparency). An EXIF
    orientation tag is applied, so the array is upright as image viewers show it; of a multi-page TIFF the first
    page is read (a pyramidal TIFF's full-resolution level). The guards are the module's.

    Args:
        path: the image file (JPEG, PNG, TIFF, ...).
        max_pixels: the largest accepted width x height (default ``DEFAULT_MAX_PIXELS``, PIL's own limit; >= 1).

    Returns:
        The pixels, (H, W, C) uint8.

    Raises:
        ImageDecodeError: the file is missing, too large, unreadable, truncated, damaged or not 8-bit; the message
            names the file.
    """
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else check_int("max_pixels", max_pixels)
    return _decode(check_path("path", path), limit)


def decode_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file into HxWx3 uint8 RGB (what the whole-file baseline trains on).

    :func:`read_image_file`, then grey is repeated into 3 channels and an alpha channel is dropped.

    Args:
        path: the image file.
        max_pixels: the largest accepted width x height (default ``DEFAULT_MAX_PIXELS``, PIL's own limit; >= 1).

    Returns:
        The pixels, (H, W, 3) uint8.

    Raises:
        ImageDecodeError: as :func:`read_image_file`.
    """
    image = read_image_file(path, max_pixels=max_pixels)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3]) if image.shape[2] == 4 else image
