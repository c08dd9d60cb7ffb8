"""Samples read from files (lesson 05): whole image files decoded with PIL (the baseline that a tile store
replaces), and sequential shard files vs a folder of many small files (claim C30; TFRecord / WebDataset in PyTorch
terms).

A shard folder holds ``shard-00000.npy``, ... (each a stack of equal-sized HxWxC uint8 images, read through a
memory map) and ``index.json`` (shard sizes and labels). A small-file folder holds one ``.png`` or ``.npy`` per
sample plus ``index.json``. Writers fill a temporary sibling folder and rename it when complete, so an interrupted
write never leaves a folder that looks finished. Both datasets return ``(CxHxW float tensor in [0, 1], label)``.
Image files are decoded by :func:`hrlib.pipeline.decode.decode_image` (guarded against crafted, truncated or huge
files).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from hrlib._checks import check_bool, check_image, check_index, check_int, check_path
from hrlib._io import load_json
from hrlib.pipeline._storage import build_folder
from hrlib.pipeline.decode import decode_image, read_image_file

__all__ = ["Batch", "ImageFileDataset", "ShardDataset", "SkippedSample", "SmallFileDataset", "collate_skipping",
           "to_tensor", "write_shards", "write_small_files"]

OnError = Literal["raise", "skip"]
SmallFormat = Literal["png", "npy"]
INDEX = "index.json"


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """Convert an image to a tensor.

    Args:
        image: HxWxC (or HxW) uint8.

    Returns:
        CxHxW float32 tensor in [0, 1].
    """
    image = check_image("image", image, channels=None)
    if image.ndim == 2:
        image = image[..., None]
    chw = np.require(image.transpose(2, 0, 1), requirements=("C", "W"))  # copies read-only memmaps (torch warns)
    return torch.from_numpy(chw).float().div_(255.0)


@dataclass(frozen=True)
class SkippedSample:
    """A sample that failed to load under ``on_error="skip"``.

    Attributes:
        path: the file.
        reason: why it failed (the error's message).
    """

    path: str
    reason: str


class Batch(list):
    """A collated batch: a list, e.g. ``[x, y]``, with the samples left out of it.

    Attributes:
        skipped: the :class:`SkippedSample` s of the batch.
    """

    skipped: list[SkippedSample]


def collate_skipping(items: Sequence[Any]) -> Batch:
    """``default_collate`` of the samples that loaded; the skipped ones go to ``batch.skipped``.

    Args:
        items: what the dataset returned for one batch: samples and :class:`SkippedSample` s.

    Returns:
        The collated :class:`Batch`; empty (check ``len(batch)``) when every sample was skipped.
    """
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise TypeError(f"items must be a list of samples (what a Dataset returns), got {type(items).__name__}")
    good = [s for s in items if not isinstance(s, SkippedSample)]
    try:
        batch = Batch(default_collate(good) if good else [])
    except (RuntimeError, TypeError) as e:  # shapes that do not stack, types that do not collate
        raise ValueError(f"items must be samples that collate into one batch (equal shapes, tensors/arrays/numbers): "
                         f"{type(e).__name__}: {str(e)[:200]}") from e
    batch.skipped = [s for s in items if isinstance(s, SkippedSample)]
    return batch


class ImageFileDataset(Dataset):
    """The baseline: decode a whole image file with PIL, then crop a region (what C7 replaces).

    Args:
        files: image files (JPEG, PNG, ...); item ``i`` reads ``files[i % len(files)]``.
        size: side of the random crop in pixels, or None for the whole image.
        n_samples: dataset length; default ``len(files)``.
        labels: one class per file (default -1).
        seed: the crop of item ``i`` comes from ``seed`` and ``i``.
        max_pixels: refuse larger images (see :func:`hrlib.pipeline.decode.decode_image`).
        on_error: ``"raise"``: a file that fails raises :class:`hrlib.pipeline.decode.ImageDecodeError` (a
            ``ValueError``) naming it, also from a worker process;
            ``"skip"``: the item is a :class:`SkippedSample` that :func:`collate_skipping` (the loader's default
            collate) leaves out and reports in ``batch.skipped``.
        transform: called on the HxWxC uint8 crop; default :func:`to_tensor`.
    """

    def __init__(self, files: Iterable[str | os.PathLike], size: int | None = None, *, n_samples: int | None = None,
                 labels: Sequence[int] | None = None, seed: int = 0, max_pixels: int | None = None,
                 on_error: OnError = "raise", transform: Callable[[np.ndarray], Any] | None = None) -> None:
        if isinstance(files, str | os.PathLike) or not isinstance(files, Iterable):
            raise TypeError(f"files must be a list of image file paths, got {type(files).__name__} {files!r:.60}")
        self.files = [check_path(f"files[{i}]", f) for i, f in enumerate(files)]
        if not self.files:
            raise ValueError("files must name at least one image file, got none")
        self.size = None if size is None else check_int("size", size)
        self.n_samples = len(self.files) if n_samples is None else check_int("n_samples", n_samples)
        if labels is not None and (isinstance(labels, str) or not isinstance(labels, Sequence | np.ndarray) or any(
                isinstance(v, bool) or not isinstance(v, int | np.integer) for v in labels)):
            raise TypeError(f"labels must be a sequence of int class indices (one per file), got {labels!r:.80}")
        self.labels = [-1] * len(self.files) if labels is None else [int(v) for v in labels]
        if len(self.labels) != len(self.files):
            raise ValueError(f"labels must have one entry per file ({len(self.files)}), got {len(self.labels)}")
        self.seed = check_int("seed", seed, 0)
        self.max_pixels = None if max_pixels is None else check_int("max_pixels", max_pixels)
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a callable on the HxWxC uint8 crop or None, got "
                            f"{type(transform).__name__}")
        self.transform = transform

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, i: int) -> tuple[Any, int] | SkippedSample:
        check_index("i", i, len(self))
        path = self.files[i % len(self.files)]
        try:
            image = decode_image(path, self.max_pixels)
            if self.size is not None:
                h, w = image.shape[:2]
                if self.size > min(h, w):
                    raise ValueError(f"path {os.fspath(path)!r} is {h}x{w}, smaller than size={self.size}")
                rng = np.random.default_rng([self.seed, i])
                y, x = int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))
                image = image[y:y + self.size, x:x + self.size]
        except ValueError as err:  # an ImageDecodeError, or an image smaller than size
            if self.on_error == "raise":
                raise
            return SkippedSample(os.fspath(path), str(err))
        out = self.transform(image) if self.transform is not None else to_tensor(image)
        return out, self.labels[i % len(self.files)]


def _pairs(samples: object) -> Iterable[tuple[int, np.ndarray, int]]:
    """``(i, image, label)`` of each ``(image, label)`` sample, or raise naming ``samples``."""
    if isinstance(samples, str | bytes | np.ndarray | torch.Tensor) or not isinstance(samples, Iterable):
        raise TypeError(f"samples must be an iterable of (image, label) pairs, got {type(samples).__name__}")
    for i, sample in enumerate(samples):
        if not isinstance(sample, tuple | list) or len(sample) != 2:
            raise ValueError(f"samples[{i}] must be an (image, label) pair, got {type(sample).__name__} "
                             f"{sample!r:.60}")
        if isinstance(sample[1], bool) or not isinstance(sample[1], int | np.integer):
            raise TypeError(f"samples[{i}] must have an int label, got {type(sample[1]).__name__} {sample[1]!r:.40}")
        yield i, sample[0], int(sample[1])


def _check_sample(i: int, image: object, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape of ``samples[i]``'s HxWxC uint8 image, which must equal ``shape`` (unless None)."""
    image = check_image(f"samples[{i}]", image, channels=None, gray=False)
    if shape is not None and image.shape != shape:
        raise ValueError(f"samples[{i}] must have the shape of samples[0] {shape}, got {image.shape}")
    return image.shape


def _write_folder(dst: object, force: object, fill: Callable[[Path], None]) -> Path:
    """Create the sample folder ``dst`` atomically (see :func:`hrlib.pipeline._storage.build_folder`)."""
    dst, force = check_path("dst", dst), check_bool("force", force)
    return build_folder(dst, force, fill, "sample folder")


def write_shards(samples: Iterable[tuple[np.ndarray, int]], dst: str | os.PathLike, *, shard_size: int = 256,
                 force: bool = False) -> Path:
    """Write samples into sequential shard files, read back by :class:`ShardDataset`.

    Args:
        samples: ``(image, label)`` pairs: equal-shaped HxWxC uint8 images and int labels.
        dst: the folder to create.
        shard_size: images per shard file (>= 1).
        force: replace an existing shard folder (only an hrlib sample folder or an empty folder is replaced).

    Returns:
        ``dst`` as a ``Path``.

    Raises:
        FileExistsError: ``dst`` exists and ``force`` is False, or it is not an hrlib sample folder.
    """
    shard_size = check_int("shard_size", shard_size)

    def fill(tmp: Path) -> None:
        sizes: list[int] = []
        labels: list[int] = []
        buffer: list[np.ndarray] = []
        shape: tuple[int, ...] | None = None

        def flush() -> None:
            np.save(tmp / f"shard-{len(sizes):05d}.npy", np.stack(buffer))
            sizes.append(len(buffer))
            buffer.clear()

        for i, image, label in _pairs(samples):
            shape = _check_sample(i, image, shape)
            buffer.append(image)
            labels.append(int(label))
            if len(buffer) == shard_size:
                flush()
        if buffer:
            flush()
        if not labels:
            raise ValueError("samples must hold at least one (image, label) pair, got none")
        (tmp / INDEX).write_text(json.dumps({"kind": "shards", "shard_sizes": sizes, "labels": labels}))

    return _write_folder(dst, force, fill)


def write_small_files(samples: Iterable[tuple[np.ndarray, int]], dst: str | os.PathLike, *,
                      fmt: SmallFormat = "png", force: bool = False) -> Path:
    """Write one file per sample, read back by :class:`SmallFileDataset` (the baseline shards replace).

    Args:
        samples: ``(image, label)`` pairs: HxWxC uint8 images (1, 3 or 4 channels for PNG) and int labels.
        dst: the folder to create.
        fmt: ``"png"`` (compressed, decoded on read) or ``"npy"`` (raw).
        force: replace an existing sample folder (only an hrlib sample folder or an empty folder is replaced).

    Returns:
        ``dst`` as a ``Path``.

    Raises:
        FileExistsError: ``dst`` exists and ``force`` is False, or it is not an hrlib sample folder.
    """
    if fmt not in ("png", "npy"):
        raise ValueError(f"fmt must be 'png' or 'npy', got {fmt!r}")

    def fill(tmp: Path) -> None:
        labels: list[int] = []
        for i, image, label in _pairs(samples):
            _check_sample(i, image, None)
            if fmt == "png" and image.shape[2] not in (1, 3, 4):
                raise ValueError(f"samples[{i}] must have 1, 3 or 4 channels for fmt='png', got {image.shape}")
            if fmt == "png":
                Image.fromarray(image.squeeze(-1) if image.shape[2] == 1 else image).save(tmp / f"{i:06d}.png")
            else:
                np.save(tmp / f"{i:06d}.npy", image)
            labels.append(int(label))
        if not labels:
            raise ValueError("samples must hold at least one (image, label) pair, got none")
        (tmp / INDEX).write_text(json.dumps({"kind": "small", "fmt": fmt, "labels": labels}))

    return _write_folder(dst, force, fill)


def _read_index(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    index_file = check_path("path", path) / INDEX
    if not index_file.is_file():
        raise ValueError(f"path {os.fspath(path)!r} has no index.json (not a finished {kind} folder)")
    try:
        index = load_json(index_file)
    except (OSError, ValueError) as e:  # a FIFO or device, too large or deep, not JSON
        raise ValueError(f"path {os.fspath(path)!r} has a corrupt index.json: {e}") from e
    if not isinstance(index, dict) or index.get("kind") != kind:
        got = index.get("kind") if isinstance(index, dict) else type(index).__name__
        raise ValueError(f"path {os.fspath(path)!r} holds {got!r} data, expected {kind!r}")
    needed = ("shard_sizes", "labels") if kind == "shards" else ("fmt", "labels")
    if any(k not in index for k in needed):
        raise ValueError(f"path {os.fspath(path)!r} has an index.json without {', '.join(needed)}")
    return index


class ShardDataset(Dataset):
    """Samples from :func:`write_shards` output; each process memory-maps the shards on first use.

    Reading indices in order touches each shard file sequentially (``shuffle=False``, or shuffle shard order and
    within a buffer, as WebDataset does). Item ``i`` is ``(CxHxW float tensor in [0, 1], label)``.

    Args:
        path: the shard folder.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_path("path", path)
        index = _read_index(self.path, "shards")
        self.labels: list[int] = index["labels"]
        self.starts = np.cumsum([0, *index["shard_sizes"]])
        self._maps: dict[int, np.ndarray] = {}
        self._pid = -1

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}, "_pid": -1}

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        check_index("i", i, len(self))
        if self._pid != os.getpid():
            self._maps, self._pid = {}, os.getpid()
        shard = int(np.searchsorted(self.starts, i, side="right")) - 1
        if shard not in self._maps:
            self._maps[shard] = np.load(self.path / f"shard-{shard:05d}.npy", mmap_mode="r")
        return to_tensor(self._maps[shard][i - self.starts[shard]]), self.labels[i]


class SmallFileDataset(Dataset):
    """Samples from :func:`write_small_files` output: one file opened (and for PNG decoded) per item.

    Item ``i`` is ``(CxHxW float tensor in [0, 1], label)``.

    Args:
        path: the small-file folder.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_path("path", path)
        index = _read_index(self.path, "small")
        self.fmt: str = index["fmt"]
        self.labels: list[int] = index["labels"]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        check_index("i", i, len(self))
        file = self.path / f"{i:06d}.{self.fmt}"
        image = np.load(file) if self.fmt == "npy" else read_image_file(file)
        return to_tensor(image), self.labels[i]
