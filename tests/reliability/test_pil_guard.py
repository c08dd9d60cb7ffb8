"""A decode that asks for a large ``max_pixels`` must not lower PIL's bomb guard in other threads."""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrlib.pipeline import ImageDecodeError, read_image_file


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` (no pixel data: opening it reads the header only)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_a_large_max_pixels_in_one_thread_keeps_the_guard_in_others(tmp_path):
    bomb = _png_header(tmp_path / "bomb.png", 20_000, 10_000)  # 2e8 pixels: over PIL's 2 x MAX_IMAGE_PIXELS
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1500, 1500, 3), np.uint8)).save(big)
    stop, opened, refused = threading.Event(), [], []

    def converter():  # what `hrlib convert --max-pixels 1000000000` does, over and over
        while not stop.is_set():
            read_image_file(big, max_pixels=10**9)

    def other_code():  # plain PIL elsewhere in the same process, relying on PIL's guard
        for _ in range(300):
            try:
                with Image.open(bomb):
                    opened.append(1)
            except Image.DecompressionBombError:
                refused.append(1)

    worker = threading.Thread(target=converter)
    worker.start()
    try:
        other_code()
    finally:
        stop.set()
        worker.join()
    assert opened == [] and len(refused) == 300
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # PIL's global was never written


def test_the_large_limit_still_applies_in_its_own_thread(tmp_path):
    bomb = _png_header(tmp_path / "bomb.png", 20_000, 10_000)
    with pytest.raises(ImageDecodeError, match="cannot decode|truncated|exceeds") as info:
        read_image_file(bomb, max_pixels=10**9)  # passes the size guards, then fails on the missing pixel data
    assert "max_pixels" not in str(info.value)
