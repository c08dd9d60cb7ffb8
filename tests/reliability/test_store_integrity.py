"""A chunk is read only where it belongs: swapped, aliased or replaced chunks are errors, never wrong pixels; and one
writer at a time per destination."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrlib.pipeline import StoreCorruptError, open_store, verify, write_store
from tests.reliability.limits import run_limited
from tests.reliability.stores import FORMATS, alias_chunk, noise_store, swap_chunks


def _read_all_or_raise(path, images):
    """Each chunk-sized region read: True where the pixels are right; a StoreCorruptError is not a wrong read."""
    out = []
    with open_store(path) as store:
        for y in range(0, 64, 16):
            for x in range(0, 64, 16):
                try:
                    region = store.read_region("a", y, x, 16, 16)
                except StoreCorruptError:
                    out.append("error")
                    continue
                out.append("right" if np.array_equal(region, images["a"][y:y + 16, x:x + 16]) else "WRONG")
    return out


def _damage_and_read(tmp_path, fmt, damage, a, b):
    """A noise store damaged by ``damage(path, fmt, a, b)``; its path and each chunk's read."""
    path = tmp_path / "store"
    images = noise_store(path, fmt)
    damage(path, fmt, a, b)
    return path, _read_all_or_raise(path, images)


@pytest.mark.parametrize("fmt", FORMATS)
def test_swapped_chunks_are_an_error_not_wrong_pixels(tmp_path, fmt):
    path, reads = _damage_and_read(tmp_path, fmt, swap_chunks, (0, 0), (2, 3))
    assert "WRONG" not in reads and reads.count("error") == 2, reads
    assert len(verify(path)) >= 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_chunk_aliased_to_another_is_an_error_not_wrong_pixels(tmp_path, fmt):
    path, reads = _damage_and_read(tmp_path, fmt, alias_chunk, (1, 1), (0, 2))
    assert "WRONG" not in reads and reads[2] == "error", reads
    assert any("chunk (0, 2)" in line for line in verify(path))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_store_replaced_while_open_is_never_read_as_the_old_one(tmp_path, fmt):
    path = tmp_path / "store"
    old = noise_store(path, fmt, seed=1)
    store = open_store(path)
    assert np.array_equal(store.read_region("a", 0, 0, 16, 16), old["a"][:16, :16])
    new = {"a": np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)}
    write_store(path, new, fmt=fmt, tile=16, levels=1, force=True)
    try:
        region = store.read_region("a", 32, 32, 16, 16)
    except StoreCorruptError as e:
        assert "replaced" in str(e) or "missing" in str(e), e
    else:  # the old store's pixels (LMDB keeps the old file mapped), never the new store's under the old manifest
        assert np.array_equal(region, old["a"][32:48, 32:48])
    store.close()


CONCURRENT = """
import threading
from pathlib import Path
import hrlib.pipeline.converter as conv
from hrlib.pipeline import convert, open_store, verify

real, gate, inside = conv.read_image_file, threading.Event(), threading.Event()
first_thread = []

def paused(file, **kw):  # the first conversion stops before its second image until the second one has run
    if threading.current_thread() in first_thread and file.name.endswith("01.png"):
        inside.set()
        gate.wait(60)
    return real(file, **kw)

conv.read_image_file = paused
result = {}

def first():
    try:
        convert(src, dst, fmt=fmt, tile=32, levels=1, progress=False, **first_kw)
        result["first"] = "ok"
    except Exception as e:
        result["first"] = f"{type(e).__name__}: {e}"

t = threading.Thread(target=first)
first_thread.append(t)
t.start()
inside.wait(60)
try:
    convert(src, dst, fmt=fmt, tile=32, levels=1, progress=False, **second_kw)
    result["second"] = "ok"
except Exception as e:
    result["second"] = f"{type(e).__name__}: {e}"
gate.set()
t.join(120)
result["problems"] = verify(dst) if (Path(dst) / "manifest.json").exists() else ["no store"]
result["images"] = open_store(dst).image_ids if not result["problems"] else []
return result
"""


@pytest.mark.parametrize(("fmt", "first_kw", "second_kw"), [
    ("lmdb", {"force": True}, {"force": True}),
    ("lmdb", {}, {"force": True}),
    ("zarr", {"resume": True}, {"resume": True}),
], ids=["lmdb-force-force", "lmdb-plain-force", "zarr-resume-resume"])
def test_a_second_conversion_of_the_same_dst_fails_at_once(tmp_path, fmt, first_kw, second_kw):
    from hrlib.pipeline.converter import write_example_images

    write_example_images(tmp_path / "src", n=3, size=96, fmt="png")
    out = run_limited(CONCURRENT, 180, src=str(tmp_path / "src"), dst=str(tmp_path / "dst"), fmt=fmt,
                      first_kw=first_kw, second_kw=second_kw)
    assert out.status == "ok", (out.error, out.message, out.stderr)
    result = out.value
    assert result["second"].startswith("BlockingIOError") and str(tmp_path / "dst") in result["second"], result
    assert result["first"] == "ok" and result["problems"] == [], result
    assert result["images"] == ["example_00", "example_01", "example_02"], result


def test_the_writer_lock_is_released_and_removed(tmp_path):
    from hrlib.pipeline.converter import convert, write_example_images

    write_example_images(tmp_path / "src", n=1, size=64, fmt="png")
    convert(tmp_path / "src", tmp_path / "dst", tile=32, levels=1, progress=False)
    convert(tmp_path / "src", tmp_path / "dst", tile=32, levels=1, progress=False, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]
    assert json.loads((tmp_path / "dst" / "manifest.json").read_text())["images"]
