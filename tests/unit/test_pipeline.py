"""hrlib.pipeline.loaders and hrlib.pipeline.shards: region datasets, the file baseline and its guards, cache,
loader, timer, shards."""

from __future__ import annotations

import pickle
import struct
import sys
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from hrlib.pipeline import (
    ImageDecodeError,
    ImageFileDataset,
    RegionDataset,
    ShardDataset,
    SkippedSample,
    SmallFileDataset,
    StepTimer,
    TileCache,
    batched_augment,
    collate_skipping,
    decode_image,
    default_num_workers,
    make_loader,
    open_store,
    sample_augment,
    to_tensor,
    write_shards,
    write_small_files,
    write_store,
)

RNG = np.random.default_rng(0)
IMAGES = {"a": RNG.integers(0, 256, (150, 200, 3), dtype=np.uint8),
          "b": RNG.integers(0, 256, (128, 96, 3), dtype=np.uint8)}


@pytest.fixture(scope="module", params=["zarr", "lmdb"])
def store_path(request, tmp_path_factory):
    return write_store(tmp_path_factory.mktemp(request.param) / "s", IMAGES, fmt=request.param, tile=32, levels=2)


def test_region_dataset_items_equal_store_reads_and_are_deterministic(store_path):
    ds = RegionDataset(store_path, 40, 12, labels={"a": 1}, seed=3)
    with open_store(store_path) as store:
        for i in range(len(ds)):
            image_id, y, x = ds.region(i)
            x_i, label = ds[i]
            assert x_i.shape == (3, 40, 40) and x_i.dtype == torch.float32 and 0 <= x_i.min() <= x_i.max() <= 1
            assert torch.equal(x_i, to_tensor(store.read_region(image_id, y, x, 40, 40)))
            assert torch.equal(x_i, to_tensor(IMAGES[image_id][y:y + 40, x:x + 40]))
            assert label == (1 if image_id == "a" else -1)
    again = RegionDataset(store_path, 40, 12, seed=3)
    other = RegionDataset(store_path, 40, 12, seed=4)
    assert [again.region(i) for i in range(12)] == [ds.region(i) for i in range(12)]
    assert [other.region(i) for i in range(12)] != [ds.region(i) for i in range(12)]
    assert {ds.region(i)[0] for i in range(12)} == {"a", "b"}


def test_region_dataset_reads_pyramid_levels(store_path):
    ds = RegionDataset(store_path, 24, 6, level=1, seed=1)
    with open_store(store_path) as store:
        image_id, y, x = ds.region(2)
        assert y + 24 <= store.shape(image_id, 1)[0] and x + 24 <= store.shape(image_id, 1)[1]
        assert torch.equal(ds[2][0], to_tensor(store.read_region(image_id, y, x, 24, 24, level=1)))


def test_region_dataset_pickles_without_an_open_handle_and_reopens_in_workers(store_path):
    ds = RegionDataset(store_path, 32, 8, seed=0)
    ds[0]  # opens the store in this process
    assert ds._store is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._store is None
    assert torch.equal(clone[5][0], ds[5][0])
    # forked workers inherit the parent's open handle; each must open its own (LMDB must not cross a fork)
    serial = [b[0] for b in make_loader(ds, 4, num_workers=0, shuffle=False)]
    parallel = [b[0] for b in make_loader(ds, 4, num_workers=2, shuffle=False, persistent=False)]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_region_dataset_validates(store_path):
    with pytest.raises(ValueError, match="^size must be <= the smallest image side at level 0 .96 px."):
        RegionDataset(store_path, 97, 4)
    with pytest.raises(ValueError, match="^level must be < the number of pyramid levels"):
        RegionDataset(store_path, 8, 4, level=2)
    with pytest.raises(ValueError, match="^n_samples must be"):
        RegionDataset(store_path, 8, 0)
    with pytest.raises(IndexError, match="^i must be in"):
        RegionDataset(store_path, 8, 4).region(4)
    with pytest.raises(ValueError, match="^image_ids must be ids of the store"):
        RegionDataset(store_path, 8, 4, image_ids=["nope"])


def test_region_dataset_samples_only_the_given_images(store_path):
    first = sorted(IMAGES)[0]
    ds = RegionDataset(store_path, 8, 20, image_ids=[first])
    assert ds.image_ids == [first] and {ds.region(i)[0] for i in range(len(ds))} == {first}


def test_tile_cache_is_lru_and_counts():
    cache, loads = TileCache(2), []

    def get(key):
        return cache.get(key, lambda: loads.append(key) or key * 10)

    assert [get(1), get(2), get(1), get(3), get(2)] == [10, 20, 10, 30, 20]
    assert loads == [1, 2, 3, 2]  # 2 was least recently used when 3 arrived
    assert cache.stats() == {"hits": 1, "misses": 4, "hit_rate": 0.2, "size": 2}
    with pytest.raises(ValueError, match="^capacity must be"):
        TileCache(0)


def test_region_dataset_cache_hits_on_the_second_epoch(store_path):
    ds = RegionDataset(store_path, 32, 10, seed=2, cache=10)
    first = [ds[i][0] for i in range(10)]
    second = [ds[i][0] for i in range(10)]
    assert ds.cache.hits == 10 and ds.cache.misses == 10
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_make_loader_defaults(monkeypatch, store_path):
    ds = RegionDataset(store_path, 16, 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loader = make_loader(ds, 4, num_workers=2, pin_memory=True)
    assert loader.pin_memory is False  # pin_memory only with CUDA
    assert loader.persistent_workers and loader.prefetch_factor == 2 and loader.num_workers == 2
    loader = make_loader(ds, 4, num_workers=2, persistent=False, prefetch=5)
    assert not loader.persistent_workers and loader.prefetch_factor == 5
    assert make_loader(ds, 4, num_workers=0, prefetch=5).prefetch_factor is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert make_loader(ds, 4, num_workers=0).pin_memory is True
    for platform in ("win32", "darwin"):
        monkeypatch.setattr(sys, "platform", platform)
        assert default_num_workers() == 0 and make_loader(ds, 4).num_workers == 0
    monkeypatch.setattr(sys, "platform", "linux")
    assert 1 <= default_num_workers() <= 2
    with pytest.raises(ValueError, match="^num_workers must be"):
        make_loader(ds, 4, num_workers=-1)
    with pytest.raises(ValueError, match="^batch_size must be"):
        make_loader(ds, 0)


def test_make_loader_shuffle_is_seeded(store_path):
    ds = RegionDataset(store_path, 16, 12)

    def labels_order(seed):
        return torch.cat([b[0].flatten(1)[:, :4] for b in make_loader(ds, 4, num_workers=0, seed=seed)])

    assert torch.equal(labels_order(1), labels_order(1)) and not torch.equal(labels_order(1), labels_order(2))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _crafted_png(width: int, height: int) -> bytes:
    """A valid-looking PNG that claims width x height pixels and holds (almost) no pixel data."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


@pytest.fixture()
def bad_files(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(RNG.integers(0, 256, 300, dtype=np.uint8)))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_crafted_png(100_000, 100_000))
    return good, truncated, garbage, bomb


def test_decode_image_names_the_file_for_bad_inputs(bad_files):
    good, truncated, garbage, bomb = bad_files
    assert decode_image(good).shape == (64, 64, 3)
    for path in (truncated, garbage, bomb, good.with_name("missing.jpg")):
        with pytest.raises(ImageDecodeError, match=f"^path .*{path.name}.* could not be decoded") as err:
            decode_image(path)
        assert err.value.path == path and err.value.reason and isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="DecompressionBombError"):  # PIL's guard stays on
        decode_image(bomb)
    with pytest.raises(ValueError, match="exceeds max_pixels=1,000;"):
        decode_image(good, max_pixels=1000)
    large = good.with_name("large.png")
    large.write_bytes(_crafted_png(12_000, 12_000))  # below PIL's limit: the explicit max_pixels refuses it
    with pytest.raises(ValueError, match="^path .*large.png.* 144,000,000 pixels exceeds max_pixels=1,000,000"):
        decode_image(large, max_pixels=10**6)


def test_bad_files_never_crash_a_worker_process(bad_files):
    good, truncated, garbage, bomb = bad_files
    files = [good, truncated, good, garbage, good, bomb]
    raising = make_loader(ImageFileDataset(files, 32), 2, num_workers=2, shuffle=False, persistent=False)
    with pytest.raises(ValueError, match="truncated.jpg' could not be decoded"):  # an exception, not a dead worker
        list(raising)
    skipping = ImageFileDataset(files, 32, labels=[0, 1, 2, 3, 4, 5], on_error="skip")
    batches = list(make_loader(skipping, 2, num_workers=2, shuffle=False, persistent=False))
    skipped = [s for b in batches for s in b.skipped]
    assert sorted(p.path.rsplit("/", 1)[-1] for p in skipped) == ["bomb.png", "garbage.png", "truncated.jpg"]
    assert all(isinstance(s, SkippedSample) and "could not be decoded" in s.reason for s in skipped)
    assert torch.cat([b[1] for b in batches]).tolist() == [0, 2, 4]
    assert all(b[0].shape[1:] == (3, 32, 32) for b in batches)


def test_image_file_dataset_validates(bad_files):
    good = bad_files[0]
    with pytest.raises(ValueError, match="^on_error must be"):
        ImageFileDataset([good], on_error="ignore")
    with pytest.raises(ValueError, match="^labels must have one entry per file"):
        ImageFileDataset([good], labels=[1, 2])
    with pytest.raises(ValueError, match="smaller than size=65"):
        ImageFileDataset([good], 65)[0]
    assert ImageFileDataset([good])[0][0].shape == (3, 64, 64)
    assert len(collate_skipping([SkippedSample("x", "y")])) == 0


def _samples(n, shape=(12, 10, 3), seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, shape, dtype=np.uint8), int(rng.integers(5))) for _ in range(n)]


def test_shards_round_trip_equal_small_files(tmp_path):
    samples = _samples(21)
    shards = ShardDataset(write_shards(samples, tmp_path / "shards", shard_size=8))
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.npy")) == [f"shard-0000{k}.npy" for k in range(3)]
    for fmt in ("png", "npy"):
        small = SmallFileDataset(write_small_files(samples, tmp_path / fmt, fmt=fmt))
        assert len(small) == len(shards) == 21
        for i, (image, label) in enumerate(samples):
            assert torch.equal(small[i][0], to_tensor(image)) and torch.equal(shards[i][0], small[i][0])
            assert small[i][1] == shards[i][1] == label
    assert torch.equal(pickle.loads(pickle.dumps(shards))[20][0], shards[20][0])
    with pytest.raises(IndexError, match="^i must be in"):
        shards[21]


def test_shard_writers_refuse_overwrite_and_leave_nothing_when_interrupted(tmp_path):
    write_shards(_samples(3), tmp_path / "s")
    with pytest.raises(FileExistsError, match="^dst .* already exists"):
        write_shards(_samples(3), tmp_path / "s")
    assert len(ShardDataset(write_shards(_samples(5), tmp_path / "s", force=True))) == 5

    def interrupted():
        yield from _samples(4)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_small_files(interrupted(), tmp_path / "cut", fmt="npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no dst and no temporary folder left
    with pytest.raises(ValueError, match=r"^samples\[1\] must have the shape of samples\[0\]"):
        write_shards([*_samples(1), *_samples(1, (5, 5, 3))], tmp_path / "bad")
    with pytest.raises(ValueError, match="^path .* has no index.json"):
        ShardDataset(tmp_path)
    with pytest.raises(ValueError, match="^fmt must be"):
        write_small_files(_samples(1), tmp_path / "x", fmt="jpg")


def _sleepy(n, seconds):
    for i in range(n):
        time.sleep(seconds)
        yield i


def test_step_timer_data_fraction_orders_slow_and_fast_data():
    slow_data = StepTimer(_sleepy(6, 0.03), sync=False)
    for _ in slow_data:
        slow_data.step_done()  # no compute at all
    fast_data = StepTimer(list(range(6)), sync=False)
    for _ in fast_data:
        time.sleep(0.03)
        fast_data.step_done()
    s, f = slow_data.summary(), fast_data.summary()
    assert s["steps"] == f["steps"] == 6
    assert s["data_fraction"] > 0.6 > 0.4 > f["data_fraction"]
    assert f["utilization"] > 0.6 and abs(f["data_fraction"] + f["utilization"] - 1) < 0.2
    for _ in fast_data:  # a second epoch adds to the totals; without step_done compute runs until the next batch
        time.sleep(0.01)
    assert fast_data.summary()["steps"] == 12 and fast_data.summary()["compute_s"] > f["compute_s"]


def test_step_timer_with_a_real_loader(store_path, one_thread):
    timer = StepTimer(make_loader(RegionDataset(store_path, 16, 8), 4, num_workers=0), sync=False)
    for x, _y in timer:
        torch.nn.functional.avg_pool2d(x, 2)
        timer.step_done()
    summary = timer.summary()
    assert summary["steps"] == 2 and 0 < summary["data_fraction"] < 1
    assert summary["total_s"] >= summary["wait_s"] + summary["compute_s"] - 1e-6


def test_batched_augment_is_seeded_flips_crops_and_shifts(one_thread):
    x = torch.rand(8, 3, 20, 24)
    a, b = batched_augment(x, seed=1, crop=16), batched_augment(x, seed=1, crop=16)
    assert a.shape == (8, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, batched_augment(x, seed=2, crop=16))
    plain = batched_augment(x, seed=5, brightness=0.0)
    variants = [lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.flip(-1).flip(-2)]
    used = [next(k for k, f in enumerate(variants) if torch.equal(plain[i], f(x[i]))) for i in range(8)]
    flipped_x, flipped_y = [k in (1, 3) for k in used], [k in (2, 3) for k in used]
    assert 0 < sum(flipped_x) < 8 and 0 < sum(flipped_y) < 8  # each sample draws its own flips
    shifted = batched_augment(x * 0 + 0.5, seed=5, brightness=0.3)
    per_sample = shifted.flatten(1)
    assert torch.all(per_sample.max(1).values == per_sample.min(1).values)  # one shift per sample
    assert 0.2 - 1e-6 <= per_sample.min() and per_sample.max() <= 0.8 + 1e-6 and per_sample[:, 0].std() > 0
    u8 = (x * 255).round().to(torch.uint8)
    assert torch.equal(batched_augment(u8, seed=3, crop=10), batched_augment(u8.float() / 255, seed=3, crop=10))
    assert torch.equal(x, batched_augment(x, seed=3, brightness=0.0, crop=None).sum() * 0 + x)  # input untouched
    with pytest.raises(ValueError, match="^x must be a non-empty NCHW"):
        batched_augment(x[0], seed=0)
    with pytest.raises(ValueError, match="^crop must be <="):
        batched_augment(x, seed=0, crop=21)


def test_sample_augment_is_seeded_and_crops():
    image = RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    a = sample_augment(24, seed=7)(image=image)["image"]
    assert a.shape == (24, 24, 3) and np.array_equal(a, sample_augment(24, seed=7)(image=image)["image"])
    assert sample_augment(seed=0)(image=image)["image"].shape == image.shape
