"""Properties of hrlib.pipeline.store: any region read equals the full image cropped (both formats, every level, regions
that cross chunk boundaries or touch the edges); downsample is the rounded block mean."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hrlib.pipeline.store import FORMATS, downsample, open_store, write_store

TILE = 64
H, W = 257, 300  # partial chunks on both axes


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    root = tmp_path_factory.mktemp("stores")
    opened = {fmt: open_store(write_store(root / fmt, {"img": image}, fmt=fmt, tile=TILE, levels=3)) for fmt in FORMATS}
    yield image, opened
    for store in opened.values():
        store.close()


def _coordinate(size: int) -> st.SearchStrategy[int]:
    """Positions anywhere, with chunk boundaries (63, 64, 65, ...) and the last pixels drawn often."""
    special = sorted({v for t in range(TILE, size, TILE) for v in (t - 1, t, t + 1) if v < size} | {0, size - 1})
    return st.one_of(st.integers(0, size - 1), st.sampled_from(special))


@st.composite
def regions(draw):
    level = draw(st.integers(0, 2))
    h_max, w_max = H >> level, W >> level
    y, x = draw(_coordinate(h_max)), draw(_coordinate(w_max))
    h = draw(st.one_of(st.integers(1, h_max - y), st.just(h_max - y)))  # h_max - y: the region touches the edge
    w = draw(st.one_of(st.integers(1, w_max - x), st.just(w_max - x)))
    return level, y, x, h, w


@settings(max_examples=60, deadline=None)
@given(fmt=st.sampled_from(FORMATS), region=regions())
@example(fmt="zarr", region=(0, 63, 63, 2, 2)).via("four chunks meet")
@example(fmt="lmdb", region=(0, 63, 63, 2, 2)).via("four chunks meet")
@example(fmt="lmdb", region=(0, 256, 299, 1, 1)).via("last pixel")
@example(fmt="zarr", region=(2, 0, 0, 64, 75)).via("whole top level")
@example(fmt="zarr", region=(0, 256, 0, 1, 300)).via("the last row, just past a chunk boundary at 256")
def test_region_equals_crop_of_full_image(stores, fmt, region):
    image, opened = stores
    level, y, x, h, w = region
    full = downsample(image, level)
    np.testing.assert_array_equal(opened[fmt].read_region("img", y, x, h, w, level=level), full[y:y + h, x:x + w])


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), c=st.sampled_from([1, 3]), level=st.integers(0, 5),
       seed=st.integers(0, 2**16))
def test_downsample_is_block_mean_rounded_half_up(h, w, c, level, seed):
    f = 2 ** level
    image = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    if min(h, w) < f:
        with pytest.raises(ValueError, match="^level "):
            downsample(image, level)
        return
    out = downsample(image, level)
    blocks = image[:h // f * f, :w // f * f].reshape(h // f, f, w // f, f, c).astype(np.int64).sum(axis=(1, 3))
    assert out.shape == (h // f, w // f, c) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, (2 * blocks + f * f) // (2 * f * f))
