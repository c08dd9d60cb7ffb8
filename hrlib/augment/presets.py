"""Domain presets (claims C3, C10, C11, C32): augmentation that keeps each domain's label and physics.

:func:`preset` returns an albumentations 2.0 pipeline ending in Normalize + ToTensorV2 (CHW float32), and
:class:`FixedPolicy` makes one a schedule for ``hrlib.train.fit``. What each domain keeps:

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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
from torch.utils.data import Dataset

from hrlib._checks import check_float, check_int
from hrlib.augment.stain import HEDJitter

__all__ = ["DOMAINS", "FLIPS", "IMAGENET_MEAN", "IMAGENET_STD", "RESIZES", "ROTATIONS", "FixedPolicy",
           "dataset_stats", "imagenet_stats", "letterbox", "preset", "resize_steps", "train_and_evaluate"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DOMAINS: tuple[str, ...] = ("industrial", "xray", "document", "pathology")
ROTATIONS: tuple[str, ...] = ("none", "bounded", "free", "elastic")
FLIPS: tuple[str, ...] = ("none", "horizontal", "vertical", "both")
RESIZES: tuple[str, ...] = ("letterbox", "plain")
_DEFAULTS = {  # domain -> (rotation, flips, resize, fill)
    "industrial": ("bounded", "both", "plain", 0), "xray": ("bounded", "none", "plain", 0),
    "document": ("none", "none", "letterbox", 255), "pathology": ("none", "both", "plain", 255)}


def imagenet_stats(channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's mean/std for 3 channels; for 1 channel (grayscale) their averages (0.449, 0.226)."""
    if check_int("channels", channels) == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return (round(float(np.mean(IMAGENET_MEAN)), 3),), (round(float(np.mean(IMAGENET_STD)), 3),)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def dataset_stats(images: Iterable[np.ndarray], max_value: float = 255.0) -> tuple[tuple[float, ...],
                                                                                   tuple[float, ...]]:
    """Per-channel mean and std of ``images`` (HxW or HxWxC arrays, same C), in units of ``max_value`` (0-1).

    All pixels of all images count equally (images may differ in size). Returns ``(mean, std)`` tuples of
    length C (1 for HxW images), for ``preset(..., mean=, std=)`` or ``A.Normalize``.
    """
    max_value = check_float("max_value", max_value, 0.0, low_open=True)
    if isinstance(images, str | bytes | np.ndarray) or not isinstance(images, Iterable):
        raise TypeError(f"images must be an iterable of HxW or HxWxC arrays, got {type(images).__name__}")
    total, total_sq, count, channels = 0.0, 0.0, 0, None
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.dtype.kind not in "biuf":
            raise ValueError(f"images[{i}] must be an HxW or HxWxC numeric array, got {type(image).__name__} with "
                             f"dtype {getattr(image, 'dtype', None)} and shape {getattr(image, 'shape', None)}")
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
        if len(fill) == 0:
            raise ValueError("fill must be a number or one number per channel, got an empty sequence")
        return tuple(check_float(f"fill[{i}]", v, hint="grey levels") for i, v in enumerate(fill))
    return check_float("fill", fill, hint="grey levels")


def _check_floats(name: str, values: object, low: float = -np.inf, *, low_open: bool = False) -> tuple[float, ...]:
    """``values`` as a non-empty tuple of finite floats (> or >= ``low``), or raise naming ``name``."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray) or len(values) == 0:
        raise TypeError(f"{name} must be a non-empty sequence of floats, got {type(values).__name__} {values!r:.60}")
    return tuple(check_float(f"{name}[{i}]", v, low, low_open=low_open) for i, v in enumerate(values))


def resize_steps(size: int, resize: str = "letterbox", fill: float | Sequence[float] = 0) -> list[A.BasicTransform]:
    """albumentations steps that bring any image to ``size`` x ``size`` px.

    ``"letterbox"``: ``A.LongestMaxSize`` (the longer side to ``size``, aspect kept) + ``A.PadIfNeeded`` (centred,
    constant ``fill`` in grey levels); ``"plain"``: ``A.Resize`` to a square (distorts a non-square image). Both
    average areas when shrinking.
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
    """Resize ``image`` (HxW or HxWxC) so its longer side is ``size`` px, keeping its aspect, and pad it centred to
    ``size`` x ``size`` with ``fill`` (grey levels, one value or one per channel). Returns the input's dtype."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"image must be an HxW or HxWxC numpy array, got {type(image).__name__} with shape "
                         f"{getattr(image, 'shape', None)}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError("image must hold finite values, got NaN or inf")
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
           hed_strength: float = 0.05, fill: float | None = None, seed: int | None = None) -> A.Compose:
    """The augmentation pipeline of ``domain`` (one of ``DOMAINS``) at ``resolution`` px, ending in Normalize and
    ToTensorV2.

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
        hed_strength: pathology only: ``sigma = bias`` of the HED jitter in the papers' units (0.05 "light").
        fill: pad / border value in grey levels (default 255 for document and pathology, 0 otherwise).
        seed: ``A.Compose`` seed (``hrlib.train.fit`` re-seeds it every epoch).
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
    hed_strength = check_float("hed_strength", hed_strength, 0.0, hint="HED jitter sigma = bias, papers' units")
    if not isinstance(train, bool | np.bool_):
        raise TypeError(f"train must be True or False, got {type(train).__name__} {train!r}")
    seed = None if seed is None else check_int("seed", seed, 0)
    mean, std = _check_floats("mean", mean), _check_floats("std", std)
    if len(mean) != len(std) or min(std) <= 0:
        raise ValueError(f"mean and std must have one value per channel and std > 0, got {mean!r} and {std!r}")
    steps = resize_steps(resolution, resize, fill)
    if train:
        border = cv2.BORDER_CONSTANT if domain in ("xray", "document") else cv2.BORDER_REFLECT_101
        steps += _geometry(rotation, rotation_limit, resolution, border, fill)
        steps += [A.HorizontalFlip(p=0.5)] if flips in ("horizontal", "both") else []
        steps += [A.VerticalFlip(p=0.5)] if flips in ("vertical", "both") else []
        if domain == "pathology":
            steps += [A.RandomRotate90(p=0.5), HEDJitter(hed_strength, hed_strength, p=1.0)]
        if brightness_contrast > 0:
            steps.append(A.RandomBrightnessContrast(brightness_contrast, brightness_contrast, p=0.5))
    steps += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), A.ToTensorV2()]
    return A.Compose(steps, seed=seed)


@dataclass(frozen=True)
class _Stage:
    name: str
    resolution: int


class FixedPolicy:
    """A one-stage schedule for ``hrlib.train.fit``: ``transform`` (e.g. a :func:`preset`) at ``resolution`` px
    for every one of ``num_epochs`` epochs; ``name`` labels the stage in the history."""

    def __init__(self, transform: A.Compose, resolution: int, num_epochs: int, name: str = "fixed") -> None:
        if not callable(transform):
            raise TypeError(f"transform must be callable as transform(image=...), got {type(transform).__name__}")
        self.transform, self.resolution = transform, check_int("resolution", resolution)
        if not isinstance(name, str):
            raise TypeError(f"name must be a str (the stage's label), got {type(name).__name__} {name!r}")
        self.num_epochs, self.name = check_int("num_epochs", num_epochs), name

    def stage_at(self, epoch: int) -> _Stage:
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer):
            raise TypeError(f"epoch must be an int, got {type(epoch).__name__} {epoch!r}")
        if not 0 <= epoch < self.num_epochs:
            raise IndexError(f"epoch must be in [0, {self.num_epochs}), got {epoch}")
        return _Stage(self.name, self.resolution)

    def resolution_at(self, epoch: int) -> int:
        return self.stage_at(epoch).resolution

    def train_transform(self, epoch: int) -> A.Compose:
        self.stage_at(epoch)
        return self.transform

    def __repr__(self) -> str:
        return f"FixedPolicy({self.name!r}, {self.resolution}px x{self.num_epochs})"


def train_and_evaluate(train_set: Dataset, val_set: Dataset, transform: A.Compose, val_transform: A.Compose, *,
                       resolution: int, num_epochs: int, num_classes: int, in_channels: int = 1,
                       widths: Sequence[int] = (8, 16, 32), batch_size: int = 16, lr: float = 3e-3,
                       seed: int = 0) -> float:
    """Train a fresh ``DSConvNet(num_classes, in_channels, widths)`` with ``transform`` for ``num_epochs`` epochs
    (``hrlib.train.fit``, OneCycle, AdamW) and return its accuracy (0-1) on ``val_set`` under ``val_transform``.
    ``seed`` fixes the weights, the batch order and the augmentation draws: one comparison run per call."""
    from hrlib.config import seed_everything
    from hrlib.models import DSConvNet
    from hrlib.train.engine import evaluate, fit

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
    seed_everything(seed)
    model = DSConvNet(num_classes, in_channels, widths)
    fit(model, train_set, FixedPolicy(transform, resolution, num_epochs), lr=lr, batch_size=batch_size, seed=seed,
        progress=False, count_macs=False)
    return evaluate(model, val_set, val_transform).accuracy
