"""hrlib.pipeline.store: zarr and LMDB tile stores, pyramid, damage detection (checksums, missing chunks), atomic
writes."""

from __future__ import annotations

import json
import multiprocessing
import pickle

import lmdb
import numpy as np
import pytest

from hrlib.data.slides import make_slide
from hrlib.pipeline import (
    FORMATS,
    StoreCorruptError,
    downsample,
    open_store,
    verify,
    write_example_images,
    write_store,
)

TILE = 64


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    rgb = make_slide(300, seed=3).image[:257]  # 257 x 300: partial edge chunks on both axes
    return {"slide": rgb, "grey": rng.integers(0, 256, (130, 70), dtype=np.uint8)}


def _write(tmp_path, images, fmt, name="store"):
    return write_store(tmp_path / name, images, fmt=fmt, tile=TILE, levels=3)


def _flip_byte(path, fmt):
    """Flip one byte in chunk (1, 2) of level 0 of 'slide'."""
    if fmt == "zarr":
        chunk = path / "images.zarr" / "slide" / "0" / "c" / "1" / "2" / "0"
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x01
        chunk.write_bytes(bytes(data))
        return
    with lmdb.open(str(path / "tiles.lmdb"), subdir=True) as env, env.begin(write=True) as txn:
        data = bytearray(txn.get(b"slide/0/1/2"))
        data[100] ^= 0x01
        txn.put(b"slide/0/1/2", bytes(data))


def _delete_chunk(path, fmt):
    if fmt == "zarr":
        (path / "images.zarr" / "slide" / "0" / "c" / "1" / "2" / "0").unlink()
        return
    with lmdb.open(str(path / "tiles.lmdb"), subdir=True) as env, env.begin(write=True) as txn:
        assert txn.delete(b"slide/0/1/2")


@pytest.mark.parametrize("fmt", FORMATS)
def test_regions_and_pyramid_match_the_source(tmp_path, images, fmt):
    path = _write(tmp_path, images, fmt)
    with open_store(path) as store:
        assert store.fmt == fmt and store.tile == TILE and store.image_ids == ["grey", "slide"]
        image = images["slide"]
        for y, x, h, w in [(0, 0, 257, 300), (60, 60, 10, 10), (63, 63, 2, 2), (250, 290, 7, 10), (5, 250, 130, 50)]:
            np.testing.assert_array_equal(store.read_region("slide", y, x, h, w), image[y:y + h, x:x + w])
        grey = store.read_image("grey")
        assert grey.shape == (130, 70, 1) and np.array_equal(grey[..., 0], images["grey"])
        assert store.levels("slide") == 3 and store.shape("slide", 2) == (64, 75, 3)
        for level in range(3):
            np.testing.assert_array_equal(store.read_image("slide", level), downsample(image, level))
        np.testing.assert_array_equal(store.read_region("slide", 10, 20, 30, 40, level=1),
                                      downsample(image, 1)[10:40, 20:60])
        assert verify(path) == []


def test_downsample_is_the_rounded_block_mean():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (13, 10, 3), dtype=np.uint8)
    assert downsample(image, 0) is image
    for level in (1, 2, 3):
        f = 2 ** level
        h, w = 13 // f, 10 // f
        blocks = image[:h * f, :w * f].reshape(h, f, w, f, 3).astype(float).mean(axis=(1, 3))
        np.testing.assert_array_equal(downsample(image, level), np.floor(blocks + 0.5).astype(np.uint8))
    assert downsample(np.full((2, 2), 7, np.uint8), 1).shape == (1, 1)
    with pytest.raises(ValueError, match="^level "):
        downsample(image, 4)  # 2^4 > 10 px
    with pytest.raises(ValueError, match="^image "):
        downsample(image.astype(np.float32), 1)


def test_small_images_get_fewer_levels(tmp_path):
    path = write_store(tmp_path / "s", {"tiny": np.zeros((5, 9, 3), np.uint8)}, tile=8, levels=6)
    store = open_store(path)
    assert store.levels("tiny") == 3 and store.shape("tiny", 2) == (1, 2, 3)
    assert np.array_equal(store.read_image("tiny"), np.zeros((5, 9, 3), np.uint8))  # all-fill chunks are written


@pytest.mark.parametrize("fmt", FORMATS)
def test_flipped_byte_raises_and_is_reported(tmp_path, images, fmt):
    path = _write(tmp_path, images, fmt)
    _flip_byte(path, fmt)
    store = open_store(path)
    with pytest.raises(StoreCorruptError, match=r"'slide' level 0: chunk \(1, 2\) is corrupt") as err:
        store.read_region("slide", 60, 100, 40, 60)  # crosses chunks (0, 1), (0, 2), (1, 1), (1, 2)
    assert (err.value.store, err.value.image_id, err.value.level, err.value.chunk) == (path, "slide", 0, (1, 2))
    assert err.value.reason.startswith("is corrupt")
    assert pickle.loads(pickle.dumps(err.value)).chunk == (1, 2)  # survives the trip from a worker process
    np.testing.assert_array_equal(store.read_region("slide", 0, 0, 64, 64), images["slide"][:64, :64])
    problems = verify(path)
    assert len(problems) == 1 and "chunk (1, 2) is corrupt" in problems[0]  # (no sha256 line for a bad level)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_chunk_raises_and_is_reported(tmp_path, images, fmt):
    path = _write(tmp_path, images, fmt)
    _delete_chunk(path, fmt)
    with pytest.raises(StoreCorruptError, match=r"chunk \(1, 2\) is missing") as err:
        open_store(path).read_region("slide", 64, 128, 1, 1)
    assert (err.value.chunk, err.value.reason) == ((1, 2), "is missing")
    assert any("chunk (1, 2) is missing" in p for p in verify(path))


def test_verify_reports_manifest_problems(tmp_path, images):
    path = _write(tmp_path, {"slide": images["slide"]}, "zarr")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["images"]["slide"]["sha256"] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert len(verify(path)) == 1 and "sha256" in verify(path)[0]
    manifest["complete"] = False
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert "complete must be true, got False" in verify(path)[0]
    with pytest.raises(StoreCorruptError, match="damaged or not an hrlib manifest: complete must be true") as err:
        open_store(path)
    assert err.value.store == path and err.value.image_id is None and err.value.chunk is None
    (path / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a complete hrlib store"):
        open_store(path)


def test_write_store_is_atomic_and_refuses_overwrite(tmp_path, images):
    path = _write(tmp_path, {"a": images["grey"]}, "lmdb")
    with pytest.raises(FileExistsError, match="^dst .*force"):
        _write(tmp_path, {"b": images["grey"]}, "lmdb")
    with pytest.raises(ValueError, match=r"^images\['bad'\] "):
        write_store(tmp_path / "new", [("good", images["grey"]), ("bad", np.zeros(3))], force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no half-written store, no temp folder
    first = open_store(path)
    first.read_image("a")  # keeps the old LMDB environment open while the store is replaced
    write_store(path, {"b": images["grey"][::-1].copy()}, fmt="lmdb", tile=TILE, force=True)
    assert open_store(path).image_ids == ["b"]
    np.testing.assert_array_equal(open_store(path).read_image("b")[..., 0], images["grey"][::-1])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an hrlib store"):
        write_store(tmp_path / "other", {"a": images["grey"]}, force=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_store_pickles_and_two_handles_coexist(tmp_path, images, fmt):
    store = open_store(_write(tmp_path, images, fmt))
    expected = store.read_region("slide", 1, 2, 3, 4)
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone.read_region("slide", 1, 2, 3, 4), expected)
    clone.close()
    np.testing.assert_array_equal(store.read_region("slide", 1, 2, 3, 4), expected)


def _read_in_child(store, queue):
    queue.put(store.read_region("slide", 60, 60, 10, 10))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.parametrize("fmt", FORMATS)
def test_store_opened_before_fork_reads_in_the_child(tmp_path, images, fmt):
    store = open_store(_write(tmp_path, images, fmt))
    store.read_region("slide", 0, 0, 1, 1)  # the parent's handle is open when the DataLoader worker forks
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(store, queue))
    child.start()
    region = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(region, images["slide"][60:70, 60:70])


def test_read_region_errors_name_the_argument(tmp_path, images):
    store = open_store(_write(tmp_path, images, "zarr"))
    np.testing.assert_array_equal(store.read_region("slide", 193, 236, 64, 64), images["slide"][193:, 236:])
    for kwargs, name in [({"y": 194}, "y"), ({"x": 237}, "x"), ({"x": -1}, "x"), ({"h": 0}, "h"), ({"w": 2.0}, "w"),
                         ({"level": 3}, "level")]:
        args = {"y": 0, "x": 0, "h": 64, "w": 64, **kwargs}
        with pytest.raises((ValueError, TypeError), match=f"^{name} "):
            store.read_region("slide", **args)
    with pytest.raises(KeyError, match="image_id 'nope'"):
        store.read_region("nope", 0, 0, 1, 1)
    for kwargs, name in [({"fmt": "tiff"}, "fmt"), ({"tile": 4}, "tile"), ({"levels": 0}, "levels")]:
        with pytest.raises(ValueError, match=f"^{name} "):
            write_store(tmp_path / "x", images, **kwargs)
    with pytest.raises(ValueError, match="^image_id "):
        write_store(tmp_path / "x", {"../up": images["grey"]})


def test_write_example_images_is_deterministic(tmp_path):
    a = write_example_images(tmp_path / "a", n=2, size=96, seed=5)
    b = write_example_images(tmp_path / "b", n=2, size=96, seed=5, fmt="png")
    c = write_example_images(tmp_path / "c", n=1, size=96, seed=5)
    assert [p.name for p in a] == ["example_00.jpg", "example_01.jpg"] and b[0].suffix == ".png"
    assert a[0].read_bytes() == c[0].read_bytes() and a[0].read_bytes() != a[1].read_bytes()
