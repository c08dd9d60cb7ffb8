"""Domain presets (lesson 03; claims C3, C10, C11, C32): augmentation that keeps each domain's label and physics.

:func:`preset` returns an albumentations 2.0 pipeline ending in Normalize + ToTensorV2 (CHW float32);
``hrlib.staging.FixedSchedule`` makes one a schedule for ``hrlib.train.fit`` (:func:`train_and_evaluate` does
both). What each domain keeps:

* ``"industrial"``: a scratch's direction is its class, so rotation is bounded (``rotation="bounded"``, within
  ``+-rotation_limit`` degrees) or replaced by elastic deformation; ``"free"`` (any angle) is there to compare.
  Horizontal and vertical flips map a direction ``theta`` to ``-theta``: they keep "along" and "across".
* ``"xray"``: anatomy has an up and a side: no vertical flip, rotation within 10 degrees, mild brightness/contrast;
  the horizontal flip is off by default because laterality (the heart's side) can be the label.
* ``"document"``: letterbox (aspect-preserving resize + pad, :func:`letterbox`) instead of a plain square resize,
  which distorts glyph shapes; mild brightness/contrast only.
* ``"pathology"``: orientation-free tissue (flips, 90-degree turns), HED stain jitter
  (:class:`hrlib.augment.stain.HEDJitter`), brightness/contrast 0.1, saturation and hue off.

Normalization fits the task: :func:`dataset_stats` measures the training images' own mean/std, to pass instead of
``IMAGENET_MEAN``/``IMAGENET_STD`` (the presets' default, what pretrained backbones expect).
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hrlib._checks import check_bool, check_float, check_floats, check_image, check_int
from hrlib.augment.stain import HEDJitter

__all__ = ["DOMAINS", "FLIPS", "IMAGENET_MEAN", "IMAGENET_STD", "RESIZES", "ROTATIONS", "COLORS", "RGB_JITTER",
           "dataset_stats",
           "imagenet_stats", "letterbox", "preset", "resize_steps", "score_arms",
           "train_and_evaluate"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DOMAINS: tuple[str, ...] = ("industrial", "xray", "document", "pathology")
ROTATIONS: tuple[str, ...] = ("none", "bounded", "free", "elastic")
FLIPS: tuple[str, ...] = ("none", "horizontal", "vertical", "both")
RESIZES: tuple[str, ...] = ("letterbox", "plain")
COLORS: tuple[str, ...] = ("hed", "rgb", "none")
RGB_JITTER: dict[str, float] = {"brightness": 0.1, "contrast": 0.1, "saturation": 0.2, "hue": 0.05}
_DEFAULTS = {  # domain -> (rotation, flips, resize, fill)
    "industrial": ("bounded", "both", "plain", 0), "xray": ("bounded", "none", "plain", 0),
    "document": ("none", "none", "letterbox", 255), "pathology": ("none", "both", "plain", 255)}


def imagenet_stats(channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's Normalize statistics, for pretrained backbones.

    Args:
        channels: 3 (RGB), or 1 (grayscale: the averages of the three, 0.449 and 0.226).

    Returns:
        ``(mean, std)``, one value per channel, 0-1 units.
    """
    if check_int("channels", channels) == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return (round(float(np.mean(IMAGENET_MEAN)), 3),), (round(float(np.mean(IMAGENET_STD)), 3),)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def dataset_stats(images: Iterable[np.ndarray], max_value: float = 255.0) -> tuple[tuple[float, ...],
                                                                                   tuple[float, ...]]:
    """Per-channel mean and std of ``images``: the task's own Normalize statistics.

    All pixels of all images count equally (images may differ in size).

    Args:
        images: HxW or HxWxC numeric arrays, all with the same C.
        max_value: the pixel value that means 1 (255 for uint8 images).

    Returns:
        ``(mean, std)`` tuples of length C (1 for HxW images) in units of ``max_value``, for
        ``preset(..., mean=, std=)`` or ``A.Normalize``.
    """
    max_value = check_float("max_value", max_value, 0.0, low_open=True)
    if isinstance(images, str | bytes | np.ndarray) or not isinstance(images, Iterable):
        raise TypeError(f"images must be an iterable of HxW or HxWxC arrays, got {type(images).__name__}")
    total, total_sq, count, channels = 0.0, 0.0, 0, None
    for i, image in enumerate(images):
        check_image(f"images[{i}]", image, channels=None, dtype="numeric", min_side=0)
        x = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2]).astype(np.float64) / max_value
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"images[{i}] must have {channels} channels like images[0], got {x.shape[1]}")
        channels = x.shape[1]
        total, total_sq, count = total + x.sum(0), total_sq + (x**2).sum(0), count + len(x)
    if count == 0:
        raise ValueError("images must contain at least one non-empty image, got none")
    if not (np.isfinite(total).all() and np.isfinite(total_sq).all()):
        raise ValueError("images must hold finite pixel values, got NaN or inf")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(max(v, 1e-6)) for v in std)


def _fill(fill: float | Sequence[float]) -> float | tuple[float, ...]:
    """``fill`` as a finite float or a non-empty tuple of them (one per channel), or raise naming ``fill``."""
    if isinstance(fill, Sequence | np.ndarray) and not isinstance(fill, str | bytes):
        return check_floats("fill", fill)
    return check_float("fill", fill, hint="grey levels")


def resize_steps(size: int, resize: str = "letterbox", fill: float | Sequence[float] = 0) -> list[A.BasicTransform]:
    """albumentations steps that bring any image to ``size`` x ``size`` px; both average areas when shrinking.

    Args:
        size: the output side in px.
        resize: ``"letterbox"``: ``A.LongestMaxSize`` (the longer side to ``size``, aspect kept) +
            ``A.PadIfNeeded`` (centred, constant ``fill``); ``"plain"``: ``A.Resize`` to a square (distorts a
            non-square image).
        fill: the padding in grey levels, one value or one per channel.

    Returns:
        The list of steps.
    """
    size = check_int("size", size)
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")
    fill = _fill(fill)
    if resize == "plain":
        return [A.Resize(size, size, interpolation=cv2.INTER_LINEAR, area_for_downscale="image")]
    return [A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_LINEAR, area_for_downscale="image"),
            A.PadIfNeeded(size, size, position="center", border_mode=cv2.BORDER_CONSTANT, fill=fill)]


def letterbox(image: np.ndarray, size: int, fill: float | Sequence[float] = 0) -> np.ndarray:
    """Resize ``image`` so its longer side is ``size`` px, keeping its aspect, and pad it centred to a square.

    Args:
        image: HxW or HxWxC numeric array.
        size: the output side in px.
        fill: the padding in grey levels, one value or one per channel.

    Returns:
        The ``size`` x ``size`` image, in the input's dtype.
    """
    check_image("image", image, channels=None, dtype="numeric")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if isinstance(_fill(fill), tuple) and len(_fill(fill)) not in (1, channels):
        raise ValueError(f"fill must be one value or one per channel ({channels}), got {fill!r}")
    return A.Compose(resize_steps(size, "letterbox", fill))(image=image)["image"]


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def _geometry(rotation: str, limit: float, resolution: int, border: int, fill: float) -> list[A.BasicTransform]:
    if rotation == "bounded":
        return [A.Rotate(limit=limit, border_mode=border, fill=fill, p=0.75)]
    if rotation == "free":
        return [A.Rotate(limit=180, border_mode=border, fill=fill, p=0.75)]
    if rotation == "elastic":  # smooth local warps (sigma ~ 1/10 of the side), no global turn
        return [A.ElasticTransform(alpha=resolution * 0.5, sigma=resolution * 0.1, border_mode=border, fill=fill,
                                   p=0.75)]
    return []


def preset(domain: str, resolution: int, *, train: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
           std: Sequence[float] = IMAGENET_STD, rotation: str | None = None, rotation_limit: float = 10.0,
           flips: str | None = None, resize: str | None = None, brightness_contrast: float = 0.1,
           hed_strength: float = 0.05, color: str = "hed", hed_units: str = "paper", fill: float | None = None,
           seed: int | None = None) -> A.Compose:
    """The augmentation pipeline of ``domain`` at ``resolution`` px, ending in Normalize and ToTensorV2.

    Args:
        domain: ``"industrial"``, ``"xray"``, ``"document"`` or ``"pathology"`` (see the module docstring).
        resolution: output side in px (square).
        train: ``False`` gives the deterministic validation pipeline: resize + normalize only.
        mean, std: Normalize statistics in 0-1 units, one per channel (``dataset_stats`` or ImageNet's).
        rotation: one of ``ROTATIONS``; default ``"bounded"`` for industrial and xray, ``"none"`` otherwise.
        rotation_limit: bound in degrees for ``"bounded"`` (0-45; 10 by default, the X-ray advice).
        flips: one of ``FLIPS``; default ``"both"`` for industrial and pathology, ``"none"`` for xray and document.
        resize: ``"letterbox"`` or ``"plain"``; default letterbox for documents, plain for the square domains.
        brightness_contrast: half-range of ``A.RandomBrightnessContrast`` (0-1; 0.1 by default; 0 turns it off).
        hed_strength: pathology only: ``sigma = bias`` of the HED jitter in ``hed_units`` (0.05 "light").
        color: pathology only: ``"hed"`` (HED stain jitter of the tissue), ``"rgb"`` (``A.ColorJitter`` with
            ``RGB_JITTER``: brightness/contrast 0.1, saturation 0.2, hue 0.05) or ``"none"``.
        hed_units: ``units`` of the HED jitter (``"paper"``, ``"reference"`` or ``"skimage"``, see
            :mod:`hrlib.augment.stain`).
        fill: pad / border value in grey levels (default 255 for document and pathology, 0 otherwise).
        seed: ``A.Compose`` seed (``hrlib.train.fit`` re-seeds it every epoch).

    Returns:
        The albumentations ``Compose``: uint8 image in, float32 CHW tensor out.
    """
    domain = _choice("domain", domain, DOMAINS)
    resolution = check_int("resolution", resolution)
    d_rotation, d_flips, d_resize, d_fill = _DEFAULTS[domain]
    rotation = _choice("rotation", d_rotation if rotation is None else rotation, ROTATIONS)
    flips = _choice("flips", d_flips if flips is None else flips, FLIPS)
    resize = _choice("resize", d_resize if resize is None else resize, RESIZES)
    rotation_limit = check_float("rotation_limit", rotation_limit, 0.0, 45.0, hint="degrees; 'free' is any angle")
    brightness_contrast = check_float("brightness_contrast", brightness_contrast, 0.0, 1.0)
    fill = float(d_fill if fill is None else check_float("fill", fill, 0.0, 255.0))
    hed_strength = check_float("hed_strength", hed_strength, 0.0, 1.0, high_open=True, hint="HED sigma = bias")
    color = _choice("color", color, COLORS)
    hed_units = _choice("hed_units", hed_units, ("paper", "reference", "skimage"))
    train = check_bool("train", train)
    seed = None if seed is None else check_int("seed", seed, 0)
    mean, std = check_floats("mean", mean), check_floats("std", std)
    if len(mean) != len(std) or min(std) <= 0:
        raise ValueError(f"mean and std must have one value per channel and std > 0, got {mean!r} and {std!r}")
    steps = resize_steps(resolution, resize, fill)
    if train:
        border = cv2.BORDER_CONSTANT if domain in ("xray", "document") else cv2.BORDER_REFLECT_101
        steps += _geometry(rotation, rotation_limit, resolution, border, fill)
        steps += [A.HorizontalFlip(p=0.5)] if flips in ("horizontal", "both") else []
        steps += [A.VerticalFlip(p=0.5)] if flips in ("vertical", "both") else []
        if domain == "pathology":
            steps.append(A.RandomRotate90(p=0.5))
            steps += {"hed": [HEDJitter(hed_strength, hed_strength, units=hed_units, p=1.0)], "none": [],
                      "rgb": [A.ColorJitter(**RGB_JITTER, p=1.0)]}[color]
        if brightness_contrast > 0:
            steps.append(A.RandomBrightnessContrast(brightness_contrast, brightness_contrast, p=0.5))
    steps += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), A.ToTensorV2()]
    return A.Compose(steps, seed=seed)


def train_and_evaluate(train_set: Dataset, val_set: Dataset, transform: A.Compose, val_transform: A.Compose, *,
                       resolution: int, num_epochs: int, num_classes: int, in_channels: int = 1,
                       widths: Sequence[int] = (8, 16, 32), batch_size: int = 16, lr: float = 3e-3,
                       seed: int = 0, per_item: bool = False) -> float | np.ndarray:
    """Train a fresh ``DSConvNet`` with ``transform`` (``hrlib.train.fit``, OneCycle, AdamW) and measure it.

    Args:
        train_set, val_set: map-style datasets of ``(image, label, ...)`` items with numpy images.
        transform: the training transform (e.g. a :func:`preset`), through a ``hrlib.staging.FixedSchedule``.
        val_transform: the deterministic validation transform.
        resolution: the side in px that ``transform`` outputs.
        num_epochs: >= 1.
        num_classes: >= 2.
        in_channels, widths: of the ``DSConvNet``.
        batch_size, lr: of the training.
        seed: fixes the weights, the batch order and the augmentation draws: one comparison run per call.
        per_item: return each validation item's score (1.0 right, 0.0 wrong) instead of the accuracy, for
            ``hrlib.evidence.compare``.

    Returns:
        The accuracy (0-1) on ``val_set`` under ``val_transform``, or with ``per_item`` a (len(val_set),) float
        array.
    """
    from hrlib.config import seed_everything
    from hrlib.models.networks import DSConvNet
    from hrlib.staging.schedule import FixedSchedule
    from hrlib.train.fitting import evaluate, fit

    for name, data in (("train_set", train_set), ("val_set", val_set)):
        if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")) or isinstance(data, str | bytes):
            raise TypeError(f"{name} must be a map-style Dataset of (image, label, ...) items, got "
                            f"{type(data).__name__}")
        if len(data) == 0:
            raise ValueError(f"{name} must not be empty")
        first = data[0]
        if not isinstance(first, tuple | list) or len(first) < 2 or not isinstance(first[0], np.ndarray):
            raise TypeError(f"{name} must yield (image, label, ...) items with an HxW(xC) image array, got item 0 "
                            f"of type {type(first).__name__}")
    for name, t in (("transform", transform), ("val_transform", val_transform)):
        if not callable(t):
            raise TypeError(f"{name} must be callable as {name}(image=...), got {type(t).__name__}")
    check_int("num_classes", num_classes, 2)
    check_int("in_channels", in_channels)
    check_int("seed", seed, 0)
    per_item = check_bool("per_item", per_item)
    seed_everything(seed)
    model = DSConvNet(num_classes, in_channels, widths)
    fit(model, train_set, FixedSchedule(transform, resolution, num_epochs), lr=lr, batch_size=batch_size, seed=seed,
        progress=False, count_macs=False)
    result = evaluate(model, val_set, val_transform)
    return (result.predictions == result.labels).astype(np.float64) if per_item else result.accuracy


_SHARED: tuple | None = None  # (arms, train_set, val_set, train_kwargs), inherited by forked workers


def _one_run(job: tuple[str, int]) -> np.ndarray | None:
    """One (arm, seed) run of :func:`score_arms`, in a worker process (one torch thread); None if it cannot train."""
    torch.set_num_threads(1)
    arms, train_set, val_set, train_kwargs = _SHARED  # type: ignore[misc]
    train_t, val_t = arms[job[0]]
    try:
        return train_and_evaluate(train_set, val_set, train_t, val_t, seed=job[1], per_item=True, **train_kwargs)
    except RuntimeError as error:  # autograd refuses to run in a child forked after it started its device threads
        if "fork" in str(error):
            return None  # the parent trains this run itself
        raise


def _parallel_runs(runs: list[tuple[str, int]], shared: tuple, workers: int, progress: Callable | None) -> list:
    """Run :func:`_one_run` over ``runs`` in ``workers`` forked processes, results in the order of ``runs``."""
    global _SHARED  # what the forked workers inherit
    _SHARED = shared
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.imap(_one_run, runs)
            return list(progress(results, total=len(runs), desc="trainings") if progress else results)
    finally:
        _SHARED = None


def score_arms(arms: Mapping[str, tuple[A.Compose, A.Compose]], train_set: Dataset, val_set: Dataset, *,
               seeds: Sequence[int], progress: Callable[..., Iterable] | None = None, workers: int = 1,
               **train_kwargs: object) -> dict[str, np.ndarray]:
    """Train every arm with every seed (:func:`train_and_evaluate`) and keep each validation item's score.

    Seed ``s`` gives every arm the same initial weights and batch order, so the arms differ only in their
    transform: the rows pair up for ``hrlib.evidence.compare``.

    Args:
        arms: arm name -> ``(train transform, validation transform)``.
        train_set, val_set: as in :func:`train_and_evaluate`.
        seeds: the seeds (ints >= 0), one row each.
        progress: optional wrapper of the loop over (arm, seed) runs, ``progress(iterable, total=..., desc=...)``
            (e.g. ``tqdm``).
        workers: runs at a time (>= 1). Above 1, the runs go to that many forked processes with one torch
            thread each (the tiny models here gain nothing from a second thread, but a second core trains a second
            model); each run seeds itself, so the scores are the same as with ``workers=1`` under one thread. Needs
            the ``fork`` start method (Linux, macOS); elsewhere the runs stay sequential with a warning.
        **train_kwargs: passed to :func:`train_and_evaluate` (``resolution``, ``num_epochs``, ``num_classes``, ...).

    Returns:
        ``{arm: (len(seeds), len(val_set)) float array}``: 1.0 where the item was classified right.
    """
    if not isinstance(arms, Mapping) or not arms or not all(
            isinstance(v, tuple) and len(v) == 2 and all(callable(t) for t in v) for v in arms.values()):
        raise TypeError(f"arms must be a non-empty mapping of name -> (train transform, val transform), got "
                        f"{type(arms).__name__}")
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a non-empty sequence of ints >= 0, got {seeds!r}")
    seeds = [check_int(f"seeds[{i}]", s, 0) for i, s in enumerate(seeds)]
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable as progress(iterable, total=..., desc=...), got {progress!r}")
    workers = check_int("workers", workers, 1)
    runs = [(name, s) for name in arms for s in seeds]
    if workers > 1 and "fork" not in multiprocessing.get_all_start_methods():
        warnings.warn("score_arms: workers > 1 needs the 'fork' start method; running the trainings one at a time",
                      RuntimeWarning, stacklevel=2)
        workers = 1
    if workers > 1 and len(runs) > 1:
        rows = _parallel_runs(runs, (dict(arms), train_set, val_set, train_kwargs), min(workers, len(runs)), progress)
        if any(r is None for r in rows):
            warnings.warn("score_arms: autograd cannot train in processes forked from this one (it started threads "
                          "for another device before); training the runs one at a time here", RuntimeWarning,
                          stacklevel=2)
            rows = [train_and_evaluate(train_set, val_set, *arms[name], seed=s, per_item=True,
                                       **train_kwargs) if r is None else r  # type: ignore[arg-type]
                    for (name, s), r in zip(runs, rows, strict=True)]
    else:
        rows = [train_and_evaluate(train_set, val_set, *arms[name], seed=s, per_item=True,
                                   **train_kwargs)  # type: ignore[arg-type]
                for name, s in (progress(runs, total=len(runs), desc="trainings") if progress else runs)]
    return {name: np.stack([r for (n, _), r in zip(runs, rows, strict=True) if n == name]) for name in arms}
