"""hrlib.pipeline.loaders: regions come from the image, the cache is an LRU, batched augmentation only moves
pixels (or shifts them all by one amount), shards return what was written."""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlib.pipeline.loaders import RegionDataset, TileCache, batched_augment
from hrlib.pipeline.shards import ShardDataset, to_tensor, write_shards
from hrlib.pipeline.store import downsample, write_store

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
RNG = np.random.default_rng(1)
IMAGES = {"wide": RNG.integers(0, 256, (70, 130, 3), dtype=np.uint8),
          "tall": RNG.integers(0, 256, (120, 66, 3), dtype=np.uint8)}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("props") / "s", IMAGES, fmt="zarr", tile=16, levels=3)


@FAST
@given(size=st.integers(1, 16), level=st.integers(0, 2), seed=st.integers(0, 2**31), i=st.integers(0, 49))
def test_region_is_inside_and_equals_the_level_image_cropped(store_path, size, level, seed, i):
    ds = RegionDataset(store_path, size, 50, level=level, seed=seed)
    image_id, y, x = ds.region(i)
    full = downsample(IMAGES[image_id], level)
    assert 0 <= y <= full.shape[0] - size and 0 <= x <= full.shape[1] - size
    assert torch.equal(ds[i][0], to_tensor(full[y:y + size, x:x + size]))
    assert RegionDataset(store_path, size, 50, level=level, seed=seed).region(i) == (image_id, y, x)


@FAST
@given(capacity=st.integers(1, 5), keys=st.lists(st.integers(0, 8), max_size=40))
def test_tile_cache_matches_a_reference_lru(capacity, keys):
    cache, reference, misses = TileCache(capacity), OrderedDict(), 0
    for key in keys:
        assert cache.get(key, lambda key=key: -key) == -key
        if key in reference:
            reference.move_to_end(key)
        else:
            misses += 1
            reference[key] = -key
            if len(reference) > capacity:
                reference.popitem(last=False)
    stats = cache.stats()
    assert stats["misses"] == misses and stats["hits"] == len(keys) - misses and stats["size"] == len(reference)


@FAST
@given(n=st.integers(1, 5), h=st.integers(4, 20), w=st.integers(4, 20), seed=st.integers(0, 2**31),
       crop_frac=st.floats(0.2, 1.0), brightness=st.floats(0.0, 0.5))
def test_batched_augment_moves_pixels_and_shifts_brightness_per_sample(n, h, w, seed, crop_frac, brightness):
    x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
    crop = max(1, int(min(h, w) * crop_frac))
    moved = batched_augment(x, seed=seed, crop=crop, brightness=0.0)
    assert moved.shape == (n, 3, crop, crop)
    for i in range(n):  # every output pixel value exists in the sample it came from
        assert torch.isin(moved[i], x[i]).all()
    whole = batched_augment(x, seed=seed, brightness=0.0)
    assert torch.equal(whole.flatten(1).sort(1).values, x.flatten(1).sort(1).values)  # flips only permute
    shifted = batched_augment(x, seed=seed, crop=crop, brightness=brightness)
    diff = (shifted - moved).flatten(1)
    inside = (shifted.flatten(1) > 0) & (shifted.flatten(1) < 1)  # clamped pixels excepted
    for i in range(n):
        d = diff[i][inside[i]]
        assert d.numel() == 0 or (d.max() - d.min() < 1e-5 and d.abs().max() <= brightness + 1e-5)


@FAST
@given(n=st.integers(1, 12), shard_size=st.integers(1, 5), h=st.integers(1, 6), c=st.sampled_from([1, 3]),
       seed=st.integers(0, 2**31))
def test_shards_return_what_was_written(n, shard_size, h, c, seed):
    rng = np.random.default_rng(seed)
    samples = [(rng.integers(0, 256, (h, h + 1, c), dtype=np.uint8), int(rng.integers(9))) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        ds = ShardDataset(write_shards(samples, Path(tmp) / "s", shard_size=shard_size))
        assert len(ds) == n and len(list((Path(tmp) / "s").glob("*.npy"))) == -(-n // shard_size)
        for i, (image, label) in enumerate(samples):
            x, y = ds[i]
            assert torch.equal(x, to_tensor(image)) and y == label
