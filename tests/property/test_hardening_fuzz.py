"""Damaged and crafted inputs through the data path (issue 9, hardening): image files -> convert -> tile store ->
RegionDataset -> DataLoader workers.

Each damaged input must end in one of two ways: an error of the expected kind whose message names the file or
store, or exactly the right pixels. Never a crash (every decode runs in a forked child, so a segfault or SIGBUS
fails the test instead of killing it), never another exception type, never different pixels. The one honest
exception is a format without a checksum (JPEG, uncompressed TIFF): a flipped byte in its pixel data can decode
to other pixels, and the property there is "an error, or an 8-bit HxWxC array".
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from hrlib.pipeline import (
    RegionDataset,
    StoreCorruptError,
    convert,
    downsample,
    make_loader,
    open_store,
    read_image_file,
    verify,
    write_store,
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def in_child(fn: Any, *args: Any) -> tuple:
    """Run ``fn(*args)`` in a forked child: ``("ok", value)``, ``("error", type name, message)`` or
    ``("crash", exit status)`` when the child dies (a segfault or SIGBUS in a C library)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(read_fd)
        try:
            out: tuple = ("ok", fn(*args))
        except BaseException as e:  # noqa: BLE001 - report every exception to the parent
            out = ("error", type(e).__name__, str(e))
        with os.fdopen(write_fd, "wb") as fh:
            fh.write(pickle.dumps(out))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return pickle.loads(data) if code == 0 and data else ("crash", code)


def damage(data: bytes, how: str, at: float, value: int) -> bytes:
    """``data`` with one bit flipped, cut short, or 8 bytes overwritten, at relative position ``at``."""
    buf = bytearray(data)
    i = min(int(at * len(buf)), len(buf) - 1)
    if how == "flip":
        buf[i] ^= 1 << (value % 8)
    elif how == "truncate":
        del buf[i:]
    else:
        buf[i:i + 8] = np.random.default_rng(value).integers(0, 256, 8, dtype=np.uint8).tobytes()
    return bytes(buf)


DAMAGE = st.tuples(st.sampled_from(["flip", "truncate", "overwrite"]), st.floats(0, 1), st.integers(0, 2**16))

# ---------------------------------------------------------------------------------------------------- image files

PIXELS = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
PIXELS[:20] = 128  # a flat half, so compressed formats have structure to break


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    kwargs = {"png": {"format": "PNG"}, "jpg": {"format": "JPEG", "quality": 90}, "tif": {"format": "TIFF"},
              "tif-deflate": {"format": "TIFF", "compression": "tiff_deflate"}}[fmt]
    Image.fromarray(PIXELS).save(buf, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif", "tif-deflate"])
@FUZZ
@given(how=DAMAGE)
def test_damaged_image_file_is_a_named_error_or_right_pixels(tmp_path, fmt, how):
    original = tmp_path / f"original.{fmt[:3]}"
    original.write_bytes(encoded(fmt))
    reference = read_image_file(original)
    path = tmp_path / f"damaged.{fmt[:3]}"
    path.write_bytes(damage(original.read_bytes(), *how))
    out = in_child(read_image_file, path)
    assert out[0] != "crash", f"decoding the damaged file crashed the process (status {out[1]})"
    if out[0] == "error":
        assert out[1] == "ImageDecodeError" and str(path) in out[2], out
        return
    image = out[1]
    if fmt == "png":  # checksummed: anything that decodes is the original
        np.testing.assert_array_equal(image, reference)
    else:  # no checksum over the pixels: an 8-bit image of some shape is all that can be promised
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (1, 3, 4)


def png_with_header(width: int, height: int, bit_depth: int = 8, color: int = 2) -> bytes:
    """A PNG whose IHDR (with a correct CRC) claims any size; its one IDAT holds at most one row of zeros (a
    reader must refuse the claimed size from the header, before it looks at the pixel data)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    row = zlib.compress(b"\0" * min(1 + 3 * width, 4096))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose SOF0 marker is edited to claim ``width`` x ``height``."""
    data = bytearray(encoded("jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(("name", "data"), [
    ("bomb.png", png_with_header(60_000, 60_000)),  # 3.6 G pixels: refused from the header, nothing allocated
    ("wide.png", png_with_header(2**31 - 1, 1)),
    ("bomb.jpg", jpeg_claiming(65_000, 65_000)),
])
def test_size_bombs_are_refused_from_the_header(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    out = in_child(read_image_file, path)
    assert out[0] == "error" and out[1] == "ImageDecodeError", out
    assert str(path) in out[2] and "max_pixels" in out[2], out


@pytest.mark.parametrize(("name", "data", "message"), [
    ("empty.png", b"", "cannot decode"),
    ("text.png", b"this is not an image\n" * 20, "cannot decode"),
    ("html.jpg", b"<html><body>404 Not Found</body></html>", "cannot decode"),
    ("zero-size.png", png_with_header(0, 0), "cannot decode"),
    ("deep.png", png_with_header(4, 4, bit_depth=16, color=0), "not 8-bit"),
])
def test_crafted_files_are_named_errors(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    out = in_child(read_image_file, path)
    assert out[0] == "error" and out[1] == "ImageDecodeError" and str(path) in out[2] and message in out[2], out


def test_modes_orientation_and_pages_are_explicit(tmp_path):
    grey = PIXELS[..., 0]
    Image.fromarray(grey > 127).save(tmp_path / "bits.png")  # mode "1": one channel of 0/255
    np.testing.assert_array_equal(read_image_file(tmp_path / "bits.png")[..., 0], np.where(grey > 127, 255, 0))
    Image.fromarray(PIXELS).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert read_image_file(tmp_path / "cmyk.jpg").shape == (40, 50, 3)
    palette = Image.fromarray(PIXELS).quantize(16)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    assert read_image_file(tmp_path / "palette.png").shape == (40, 50, 4)
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(ValueError, match=r"float\.tif' could not be decoded: mode 'F' is not 8-bit"):
        read_image_file(tmp_path / "float.tif")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(PIXELS).save(tmp_path / "rotated.png", exif=exif)
    np.testing.assert_array_equal(read_image_file(tmp_path / "rotated.png"), np.rot90(PIXELS, k=-1))
    pages = [Image.fromarray(PIXELS), Image.fromarray(PIXELS[::2, ::2])]
    pages[0].save(tmp_path / "pyramid.tif", save_all=True, append_images=pages[1:])
    np.testing.assert_array_equal(read_image_file(tmp_path / "pyramid.tif"), PIXELS)  # the first page


def test_convert_skips_damaged_files_and_stores_the_rest_exactly(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = {f"good{i}": np.random.default_rng(i).integers(0, 256, (48, 40, 3), dtype=np.uint8) for i in range(2)}
    for name, pixels in good.items():
        Image.fromarray(pixels).save(src / f"{name}.png")
    (src / "bomb.png").write_bytes(png_with_header(60_000, 60_000))
    flipped = damage((src / "good0.png").read_bytes(), "flip", 0.6, 3)
    (src / "flipped.png").write_bytes(flipped)  # a bit flipped in the pixel data: PIL alone would decode it
    result = convert(src, tmp_path / "store", tile=16, levels=2, on_error="skip", progress=False)
    assert sorted(Path(f).name for f in result["failed"]) == ["bomb.png", "flipped.png"]
    assert "CRC" in result["failed"][str(src / "flipped.png")]
    store = open_store(tmp_path / "store")
    assert store.image_ids == ["good0", "good1"] and verify(tmp_path / "store") == []
    for name, pixels in good.items():
        np.testing.assert_array_equal(store.read_image(name), pixels)

# ------------------------------------------------------------------------------------------------------ stores


IMAGES = {"a": np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8),
          "b": np.random.default_rng(2).integers(0, 256, (40, 33), dtype=np.uint8)[..., None]}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz_stores")
    return {fmt: write_store(root / fmt, IMAGES, fmt=fmt, tile=32, levels=2) for fmt in ("zarr", "lmdb")}


def read_everything(path: Path) -> dict[tuple[str, int], np.ndarray]:
    with open_store(path) as store:
        return {(i, k): store.read_image(i, k) for i in store.image_ids for k in range(store.levels(i))}


STORE_ERRORS = ("StoreCorruptError", "FileNotFoundError")


@pytest.mark.parametrize("fmt", ["zarr", "lmdb"])
@FUZZ
@given(which=st.integers(0, 10**6), how=DAMAGE)
@example(which=1, how=("flip", 0.111328125, 0))  # LMDB: MDB_CORRUPTED from a damaged B-tree page
def test_damaged_store_reads_right_pixels_or_raises_naming_the_store(stores, fmt, which, how):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(shutil.copytree(stores[fmt], Path(tmp) / "store"))
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != "lock.mdb")  # lock.mdb is unused
        target = files[which % len(files)]
        target.write_bytes(damage(target.read_bytes(), *how))
        out = in_child(read_everything, path)
        assert out[0] != "crash", f"reading the store with {target.relative_to(path)} damaged crashed ({out[1]})"
        if out[0] == "error":
            assert out[1] in STORE_ERRORS and str(path) in out[2], out
            assert in_child(verify, path) == ("ok", verify(path)) and verify(path), "verify missed the damage"
            return
        for (image_id, level), pixels in out[1].items():
            np.testing.assert_array_equal(pixels, downsample(IMAGES[image_id], level))


@pytest.mark.parametrize("edit", [("typesize", "typdsize"), ('"blosc"', '"bloxc"'), ('"shape"', '"shapE"'),
                                  ("[", "{")])
def test_damaged_zarr_metadata_is_a_store_error(stores, edit, tmp_path):
    """A zarr.json that still parses as JSON but not as zarr metadata (zarr raises TypeError, KeyError, ...)."""
    path = Path(shutil.copytree(stores["zarr"], tmp_path / "store"))
    meta = sorted(path.rglob("images.zarr/a/1/zarr.json"))[0]
    meta.write_text(meta.read_text().replace(*edit, 1))
    out = in_child(read_everything, path)
    assert out[0] == "error" and out[1] == "StoreCorruptError" and str(path) in out[2], out
    assert verify(path), "verify missed the damage"


def _edit(manifest: dict, edit: str) -> Any:
    a = manifest["images"]["a"]
    if edit == "traversal":
        manifest["images"]["../../outside"] = manifest["images"].pop("a")
    elif edit == "negative shape":
        a["shape"] = [-70, 90, 3]
    elif edit == "huge shape":
        a["shape"], a["level_shapes"] = [10**12, 90, 3], [[10**12, 90], [5 * 10**11, 45]]
    elif edit == "level shapes":
        a["level_shapes"][1] = [70, 90]
    elif edit == "channels":
        a["shape"][2] = 7
    elif edit == "tile":
        manifest["tile"] = "32"
    elif edit == "format":
        manifest["format"] = "tiff"
    elif edit == "no images":
        manifest["images"] = {}
    elif edit == "sha256":
        a["sha256"] = None
    elif edit == "list":
        return [manifest]
    return manifest


@pytest.mark.parametrize("fmt", ["zarr", "lmdb"])
@pytest.mark.parametrize("edit", ["traversal", "negative shape", "huge shape", "level shapes", "channels", "tile",
                                  "format", "no images", "sha256", "list"])
def test_crafted_manifest_is_refused_on_open(tmp_path, stores, fmt, edit):
    path = Path(shutil.copytree(stores[fmt], tmp_path / "store"))
    manifest = _edit(json.loads((path / "manifest.json").read_text()), edit)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreCorruptError, match=r"manifest\.json is damaged or not an hrlib manifest"):
        open_store(path)
    assert verify(path) and "manifest.json" in verify(path)[0]


@pytest.mark.parametrize("fmt", ["zarr", "lmdb"])
def test_truncated_or_missing_storage_is_an_error_not_a_crash(tmp_path, stores, fmt):
    path = Path(shutil.copytree(stores[fmt], tmp_path / "store"))
    big = max((p for p in path.rglob("*") if p.is_file() and p.name != "manifest.json"), key=lambda p: p.stat().st_size)
    big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])  # LMDB's data.mdb: reading it would raise SIGBUS
    out = in_child(read_everything, path)
    assert out[0] == "error" and out[1] == "StoreCorruptError" and str(path) in out[2], out
    shutil.rmtree(path / ("images.zarr" if fmt == "zarr" else "tiles.lmdb"))
    out = in_child(read_everything, path)
    assert out[0] == "error" and out[1] == "StoreCorruptError" and str(path) in out[2], out


@pytest.mark.parametrize("fmt", ["zarr", "lmdb"])
def test_damage_surfaces_through_dataloader_workers(tmp_path, stores, fmt):
    """A corrupt chunk read in a worker process reaches the training loop as a StoreCorruptError naming the chunk
    and the store; the workers exit (no hang, no crash)."""
    path = Path(shutil.copytree(stores[fmt], tmp_path / "store"))
    if fmt == "zarr":
        chunk = path / "images.zarr" / "a" / "0" / "c" / "1" / "1" / "0"
        chunk.write_bytes(damage(chunk.read_bytes(), "flip", 0.5, 1))
    else:
        import lmdb

        with lmdb.open(str(path / "tiles.lmdb"), subdir=True) as env, env.begin(write=True) as txn:
            txn.put(b"a/0/1/1", damage(txn.get(b"a/0/1/1"), "flip", 0.5, 1))
    dataset = RegionDataset(path, size=24, n_samples=64, image_ids=["a"], seed=0)
    loader = make_loader(dataset, batch_size=8, num_workers=2, persistent=False)
    with pytest.raises(StoreCorruptError, match=rf"chunk \(1, 1\) is corrupt.*{path}"):
        for _ in loader:
            pass


@FUZZ
@given(how=DAMAGE)
def test_small_file_reader_refuses_damaged_png(tmp_path, how):
    """hrlib.pipeline.decode.decode_image (ImageFileDataset's reader) makes the same promise for PNG: error or exact."""
    from hrlib.pipeline.decode import decode_image

    path = tmp_path / "damaged.png"
    path.write_bytes(damage(encoded("png"), *how))
    out = in_child(decode_image, path)
    assert out[0] != "crash", out
    if out[0] == "error":
        assert out[1] == "ImageDecodeError" and str(path) in out[2], out
    else:
        np.testing.assert_array_equal(out[1], PIXELS)
