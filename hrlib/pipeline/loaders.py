"""Loading batches in lesson 05 (claims C7, C29, C30, C31): a dataset that reads regions from a tile store, a
decoded-region cache, a DataLoader helper with safe defaults, tensor batch augmentation and a step timer that
measures how much of each training step waits for data. (Whole image files, shards and small files:
:mod:`hrlib.pipeline.shards`.)

The tf.data <-> PyTorch mapping: parallel ``map`` <-> ``num_workers``; ``prefetch`` <-> ``prefetch_factor``;
``cache`` <-> :class:`TileCache` (one per worker process); ``shuffle`` <-> the sampler (it shuffles indices, before
any augmentation runs in ``__getitem__``); TFRecord + ``interleave`` <-> :mod:`hrlib.pipeline.shards`.

Datasets are picklable and open the store lazily in each process (an LMDB environment must not cross a fork), and
every random choice comes from ``seed`` and the item index, so worker count and order do not change a sample.
"""

from __future__ import annotations

import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hrlib._checks import check_bool, check_float, check_index, check_int, check_path
from hrlib.config import seed_worker
from hrlib.pipeline.shards import collate_skipping, to_tensor
from hrlib.pipeline.store import open_store
from hrlib.pipeline.tilestore import TileStore

__all__ = ["RegionDataset", "StepTimer", "TileCache", "batched_augment", "default_num_workers", "make_loader",
           "sample_augment"]


class TileCache:
    """Least-recently-used cache of decoded regions (tf.data's ``cache`` after the expensive step).

    Each DataLoader worker holds its own copy, so hits accumulate only in persistent workers (or with
    ``num_workers=0``).

    Args:
        capacity: most entries kept (>= 1); the least recently used one is evicted first.

    Attributes:
        hits: lookups answered from the cache.
        misses: lookups that called ``load``.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = check_int("capacity", capacity)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The cached value for ``key``; on a miss, ``load()``'s result, which is stored.

        Args:
            key: any hashable key, e.g. ``(image_id, level, y, x, size)``.
            load: called with no arguments on a miss.

        Returns:
            The value.
        """
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        if not callable(load):
            raise TypeError(f"load must be a function returning the value, got {type(load).__name__}")
        value = load()
        self._items[key] = value
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value

    def stats(self) -> dict[str, float]:
        """The counts so far.

        Returns:
            ``{"hits", "misses", "hit_rate", "size"}``; ``hit_rate`` is 0 before any lookup.
        """
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / total if total else 0.0,
                "size": len(self._items)}


def _as_cache(cache: TileCache | int | None) -> TileCache | None:
    if cache is None or isinstance(cache, TileCache):
        return cache
    return TileCache(check_int("cache", cache))


class RegionDataset(Dataset):
    """``n_samples`` random ``size`` x ``size`` regions read from a tile store (decode only the region: C7).

    Args:
        store: an open :class:`hrlib.pipeline.tilestore.TileStore` or a store path; only the path is kept, and each
            process opens its own handle on first use.
        size: region side in pixels at ``level`` (>= 1, at most the smallest image side at that level).
        n_samples: dataset length (>= 1).
        level: pyramid level (0 = full resolution; level k is 2^k times smaller).
        transform: called on the HxWxC uint8 region; default :func:`to_tensor`.
        labels: image id -> class; images without one get -1.
        seed: item ``i`` is the same region for the same ``seed`` whatever the worker count or order.
        cache: a :class:`TileCache`, a capacity for a new one, or None.
        image_ids: sample only these images of the store (e.g. a train/validation split by image); default all.

    Item ``i`` is ``(transform(region), label)``.
    """

    def __init__(self, store: TileStore | str | os.PathLike, size: int, n_samples: int, *, level: int = 0,
                 transform: Callable[[np.ndarray], Any] | None = None, labels: Mapping[str, int] | None = None,
                 seed: int = 0, cache: TileCache | int | None = None, image_ids: Iterable[str] | None = None) -> None:
        self.size = check_int("size", size)
        self.n_samples = check_int("n_samples", n_samples)
        self.level = check_int("level", level, 0)
        self.seed = check_int("seed", seed, 0)
        self.path = check_path("store", store.path if isinstance(store, TileStore) else store)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a function of the HxWxC uint8 region or None, got "
                            f"{type(transform).__name__}")
        self.transform = transform
        if labels is not None and not isinstance(labels, Mapping):
            raise TypeError(f"labels must be a mapping image id -> class or None, got {type(labels).__name__}")
        self.labels = dict(labels or {})
        if isinstance(image_ids, str) or image_ids is not None and not isinstance(image_ids, Iterable):
            raise TypeError(f"image_ids must be a list of image ids or None, got {type(image_ids).__name__} "
                            f"{image_ids!r:.60}")
        self.cache = _as_cache(cache)
        with open_store(self.path) as opened:  # read what sampling needs, then close: no handle crosses a fork
            self.image_ids = list(opened.image_ids)
            if image_ids is not None:
                wanted = [str(i) for i in image_ids]
                unknown = sorted(set(wanted) - set(self.image_ids))
                if unknown:
                    raise ValueError(f"image_ids must be ids of the store, got unknown {unknown[:3]}")
                self.image_ids = [i for i in self.image_ids if i in set(wanted)]
            bad = [i for i in self.image_ids if opened.levels(i) <= self.level]
            if bad:
                raise ValueError(f"level must be < the number of pyramid levels of every image, got {self.level} "
                                 f"for {bad[0]!r} with {opened.levels(bad[0])} levels")
            self.shapes = {i: opened.shape(i, self.level)[:2] for i in self.image_ids}
        if not self.image_ids:
            raise ValueError(f"store must hold at least one image, got none in {self.path}")
        smallest = min(min(s) for s in self.shapes.values())
        if self.size > smallest:
            raise ValueError(f"size must be <= the smallest image side at level {self.level} ({smallest} px), "
                             f"got {self.size}")
        self._store: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return self.n_samples

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"], state["_pid"] = None, -1  # never pickle an open handle
        return state

    def store(self) -> TileStore:
        """This process's open store (opened on first use, reopened after a fork).

        Returns:
            The open :class:`hrlib.pipeline.tilestore.TileStore`.
        """
        if self._store is None or self._pid != os.getpid():
            self._store, self._pid = open_store(self.path), os.getpid()
        return self._store

    def region(self, i: int) -> tuple[str, int, int]:
        """Where item ``i`` reads, drawn from ``seed`` and ``i`` alone.

        Args:
            i: the item index, in [0, n_samples).

        Returns:
            ``(image_id, y, x)``: the region's top-left corner in the level's pixel grid.
        """
        i = check_index("i", i, self.n_samples)
        rng = np.random.default_rng([self.seed, i])
        image_id = self.image_ids[int(rng.integers(len(self.image_ids)))]
        h, w = self.shapes[image_id]
        return image_id, int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))

    def read(self, i: int) -> np.ndarray:
        """The pixels of item ``i`` (through the cache when there is one).

        Args:
            i: the item index, in [0, n_samples).

        Returns:
            The region, (size, size, C) uint8.
        """
        image_id, y, x = self.region(i)

        def load() -> np.ndarray:
            return self.store().read_region(image_id, y, x, self.size, self.size, level=self.level)

        if self.cache is None:
            return load()
        return self.cache.get((image_id, self.level, y, x, self.size), load)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image_id = self.region(i)[0]
        region = self.read(i)
        out = self.transform(region) if self.transform is not None else to_tensor(region)
        return out, self.labels.get(image_id, -1)


def default_num_workers() -> int:
    """The number of DataLoader worker processes that is safe by default.

    Returns:
        0 on Windows and macOS (their ``spawn`` start method cannot import a Dataset defined in a notebook), else
        ``min(2, cpu count)``.
    """
    if sys.platform in ("win32", "darwin"):
        return 0
    return min(2, os.cpu_count() or 1)


def make_loader(dataset: Dataset, batch_size: int, *, num_workers: int | None = None, persistent: bool | None = None,
                prefetch: int | None = None, shuffle: bool = True, seed: int = 0, pin_memory: bool | None = None,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader with safe defaults; its batches come from :func:`hrlib.pipeline.shards.collate_skipping` (a list
    ``[x, y]`` with ``.skipped``).

    Args:
        dataset: a map-style dataset.
        batch_size: samples per batch (>= 1).
        num_workers: worker processes (>= 0); default :func:`default_num_workers`. Each worker seeds its copy of
            the dataset's ``transform`` (:func:`hrlib.config.seed_worker`).
        persistent: keep workers alive between epochs (default: True with workers); ignored with 0 workers.
        prefetch: batches each worker prepares ahead (>= 1, default 2); ignored with 0 workers.
        shuffle: shuffle the indices each epoch (the sampler shuffles before ``__getitem__`` augments).
        seed: seeds the shuffling generator, so the order of epoch k is reproducible (>= 0).
        pin_memory: page-locked batches for faster host-to-GPU copies; only ever True when CUDA is available
            (default: True exactly then).
        drop_last: drop a last incomplete batch.

    Returns:
        The ``torch.utils.data.DataLoader``.
    """
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(f"dataset must be a map-style dataset (with __getitem__ and __len__), got "
                        f"{type(dataset).__name__}")
    batch_size = check_int("batch_size", batch_size)
    shuffle, drop_last = check_bool("shuffle", shuffle), check_bool("drop_last", drop_last)
    persistent = check_bool("persistent", persistent, allow_none=True)
    pin_memory = check_bool("pin_memory", pin_memory, allow_none=True)
    num_workers = default_num_workers() if num_workers is None else check_int("num_workers", num_workers, 0)
    prefetch = None if prefetch is None else check_int("prefetch", prefetch)
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs["persistent_workers"] = True if persistent is None else persistent
        kwargs["prefetch_factor"] = 2 if prefetch is None else prefetch
        kwargs["worker_init_fn"] = seed_worker
    cuda = torch.cuda.is_available()
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(check_int("seed", seed, 0)),
                      collate_fn=collate_skipping, pin_memory=cuda if pin_memory is None else pin_memory and cuda,
                      drop_last=drop_last, **kwargs)


class StepTimer:
    """Wrap a loader and measure the fraction of step time spent waiting for data (C31's diagnosis).

    ``for x, y in timer: ...compute...; timer.step_done()``. Per step it records the time blocked in the loader
    (``wait``), the time from the batch's arrival to ``step_done()`` (``compute``; without a call, until the loop
    asks for the next batch) and the whole step. ``step_done`` first waits for queued CUDA work, so asynchronous
    GPU kernels count as compute. Iterating again (next epoch) adds to the same totals.

    Args:
        loader: any iterable of batches.
        sync: wait for CUDA in ``step_done`` (default: when CUDA is available).

    Attributes:
        wait: seconds blocked in the loader, per step.
        compute: seconds from a batch's arrival to ``step_done()``, per step.
        step: seconds of each whole step.
    """

    def __init__(self, loader: Iterable[Any], *, sync: bool | None = None) -> None:
        if not isinstance(loader, Iterable):
            raise TypeError(f"loader must be an iterable of batches (e.g. a DataLoader), got {type(loader).__name__}")
        self.loader = loader
        sync = check_bool("sync", sync, allow_none=True)
        self.sync = torch.cuda.is_available() if sync is None else sync
        self.wait: list[float] = []
        self.compute: list[float] = []
        self.step: list[float] = []
        self._arrived: float | None = None
        self._done: float | None = None

    def step_done(self) -> None:
        """Mark the end of this step's compute."""
        if self.sync:
            torch.cuda.synchronize()
        self._done = time.perf_counter()

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self._arrived = time.perf_counter()
            self._done = None
            yield batch
            resumed = time.perf_counter()
            self.wait.append(self._arrived - start)
            self.compute.append((self._done or resumed) - self._arrived)
            self.step.append(resumed - start)

    def summary(self) -> dict[str, float]:
        """The totals so far.

        Returns:
            ``steps``, seconds ``wait_s``/``compute_s``/``total_s``, ``data_fraction`` = wait / total and
            ``utilization`` = compute / total (a proxy for accelerator utilization); fractions are 0 before a step.
        """
        total = sum(self.step)
        return {"steps": len(self.step), "wait_s": sum(self.wait), "compute_s": sum(self.compute), "total_s": total,
                "data_fraction": sum(self.wait) / total if total else 0.0,
                "utilization": sum(self.compute) / total if total else 0.0}


def batched_augment(x: torch.Tensor, *, seed: int, crop: int | None = None, brightness: float = 0.2) -> torch.Tensor:
    """Per-sample random crop, horizontal and vertical flips (p = 0.5 each) and brightness shift on a whole batch.

    The same operations as :func:`sample_augment`, written as tensor operations (C29). Draw order, from one CPU
    generator: the two flips of every sample, the brightness shifts, then the crop rows and the crop columns.

    Args:
        x: NCHW batch, uint8 (0-255) or float in [0, 1], on any device (the work stays there); uint8 moves 4x
            fewer bytes to a GPU.
        seed: the random parameters come from a CPU generator seeded with this, so CPU and GPU agree.
        crop: output side in pixels (<= H and W), a random position per sample; None keeps the size.
        brightness: each sample gets ``+ U(-brightness, brightness)``, then clamping to [0, 1] (0 <= b <= 1).

    Returns:
        A new float32 NCHW tensor in [0, 1] (the input is not modified).
    """
    if (not isinstance(x, torch.Tensor) or x.ndim != 4 or len(x) == 0
            or not (x.is_floating_point() or x.dtype == torch.uint8)):
        got = f"{x.dtype} with shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a non-empty NCHW uint8 or float tensor, got {got}")
    brightness = check_float("brightness", brightness, 0.0, 1.0)
    n, _, h, w = x.shape
    g = torch.Generator().manual_seed(check_int("seed", seed, 0))
    flips = (torch.rand(n, 2, generator=g) < 0.5).tolist()
    shift = ((torch.rand(n, generator=g) * 2 - 1) * brightness).to(x.device)
    if crop is not None:
        crop = check_int("crop", crop)
        if crop > min(h, w):
            raise ValueError(f"crop must be <= the batch's height and width ({h}x{w}), got {crop}")
        oy = torch.randint(0, h - crop + 1, (n,), generator=g).tolist()
        ox = torch.randint(0, w - crop + 1, (n,), generator=g).tolist()
        x = torch.stack([x[i, :, oy[i]:oy[i] + crop, ox[i]:ox[i] + crop] for i in range(n)])
    out = []
    for i, (flip_x, flip_y) in enumerate(flips):  # flip only the samples that drew a flip
        sample = x[i].flip(-1) if flip_x else x[i]
        out.append(sample.flip(-2) if flip_y else sample)
    x = torch.stack(out)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    return x.add_(shift[:, None, None, None]).clamp_(0.0, 1.0)


def sample_augment(crop: int | None = None, *, seed: int = 0, brightness: float = 0.2) -> A.Compose:
    """The per-sample albumentations twin of :func:`batched_augment` (on HxWxC uint8 images, on the CPU: C6).

    Args:
        crop: random crop side in pixels (>= 1), or None.
        seed: the Compose's seed (>= 0); the same seed gives the same sequence of draws.
        brightness: brightness limit (fraction of the maximum value, 0..1).

    Returns:
        An ``albumentations.Compose``: call it as ``aug(image=image)["image"]``.
    """
    steps: list[A.BasicTransform] = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    if crop is not None:
        steps.insert(0, A.RandomCrop(check_int("crop", crop), crop))
    steps.append(A.RandomBrightnessContrast(brightness_limit=check_float("brightness", brightness, 0.0, 1.0),
                                            contrast_limit=0.0, p=1.0))
    return A.Compose(steps, seed=check_int("seed", seed, 0))
