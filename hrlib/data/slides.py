"""The course's slides (lesson 00, used in every lesson): procedural histology-like slides with ground truth.

A slide's layout (tissue, nuclei, decoys, targets) comes from ``seed`` and ``label`` alone, in normalised
coordinates, so the same seed gives the same slide at every resolution and through every scanner (``Site``); it is
then rendered at ``size`` pixels with a Beer-Lambert stain model, the site's blur and sensor noise
(``hrlib.data._render``).

Classes (``CLASS_NAMES``): 0 ``normal``; 1 ``lesion``, a large region of crowded dark nuclei that survives
downsampling; 2 ``target``, one to three small clusters of DAB granules. Every slide also carries smooth DAB blobs
of the same size and stain ("decoys"), so a target is told from a decoy only by its fine granular texture: that is
the evidence that disappears when the image is shrunk (:func:`downscale`, :func:`detail_energy`).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from hrlib._checks import check_float, check_image, check_int
from hrlib._io import atomic_write
from hrlib.config import get_profile
from hrlib.data._items import SeededItems
from hrlib.data._render import ellipse_boxes, make_layout, render

__all__ = ["CLASS_NAMES", "RUIFROK_STAINS", "SITES", "SLIDE_MEAN", "SLIDE_STD", "Site", "Slide", "SlideDataset",
           "collate_slides", "detail_energy", "downscale", "get_site", "make_slide"]

CLASS_NAMES: tuple[str, ...] = ("normal", "lesion", "target")

# Ruifrok & Johnston (2001) stain vectors (rows: hematoxylin, eosin, DAB), as in skimage.color.rgb_from_hed.
# Per-channel mean and std of site-A slides in [0, 1] (48 slides, 256 px, balanced classes): the task's own
# statistics, used by hrlib's default normalization (not ImageNet's 0.485/0.456/0.406, 0.229/0.224/0.225).
SLIDE_MEAN: tuple[float, float, float] = (0.814, 0.522, 0.857)
SLIDE_STD: tuple[float, float, float] = (0.142, 0.175, 0.093)

RUIFROK_STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])


def _is_numeric(value: object) -> bool:
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Site:
    """A scanner/site: how the same tissue is turned into pixels.

    Attributes:
        name: short identifier.
        stains: 3x3 stain vectors (rows H, E, DAB) in optical-density RGB; rows are normalised to unit length.
        stain_scale: multiplier on each stain's concentration (staining protocol strength).
        background: light intensity ``I0`` per RGB channel, 0-255 (illumination and white balance).
        blur: Gaussian blur sigma in pixels *of a 512-pixel slide* (scaled with the size, so focus is relative).
        noise: sensor noise standard deviation in 0-255 intensity units, independent per pixel.
    """

    name: str
    stains: tuple[tuple[float, float, float], ...] = tuple(map(tuple, RUIFROK_STAINS))
    stain_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    background: tuple[float, float, float] = (242.0, 240.0, 245.0)
    blur: float = 0.5
    noise: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        stains = np.asarray(self.stains, dtype=np.float64) if _is_numeric(self.stains) else None
        if stains is None or stains.shape != (3, 3) or not np.isfinite(stains).all() or (
                np.linalg.norm(stains, axis=1) == 0).any():
            raise ValueError(f"stains must be 3 finite, non-zero RGB optical-density vectors (3x3), "
                             f"got {self.stains!r:.80}")
        for name, lo, hi in (("stain_scale", 0.0, 100.0), ("background", 1.0, 255.0)):
            value = getattr(self, name)
            v = np.asarray(value, dtype=np.float64) if _is_numeric(value) else None
            if v is None or v.shape != (3,) or not (np.isfinite(v).all() and (v >= lo).all() and (v <= hi).all()):
                raise ValueError(f"{name} must be 3 numbers in [{lo:g}, {hi:g}], got {value!r:.80}")
        check_float("blur", self.blur, 0.0, hint="Gaussian sigma in pixels of a 512-pixel slide")
        check_float("noise", self.noise, 0.0, hint="noise std in 0-255 units")

    def stain_matrix(self) -> np.ndarray:
        """The stain vectors as a (3, 3) array (rows H, E, DAB), each of unit length."""
        m = np.asarray(self.stains, dtype=np.float64)
        return m / np.linalg.norm(m, axis=1, keepdims=True)


SITES: dict[str, Site] = {
    "A": Site("A"),
    "B": Site("B", stains=((0.55, 0.74, 0.39), (0.12, 0.98, 0.16), (0.27, 0.57, 0.78)),
              stain_scale=(1.25, 0.8, 1.0), background=(235.0, 232.0, 242.0), blur=1.0, noise=4.0),
    "C": Site("C", stains=((0.70, 0.68, 0.22), (0.05, 0.95, 0.30), (0.30, 0.60, 0.74)),
              stain_scale=(0.7, 0.75, 0.9), background=(250.0, 246.0, 236.0), blur=0.3, noise=3.0),
    "D": Site("D", stains=((0.62, 0.72, 0.31), (0.10, 0.99, 0.05), (0.25, 0.52, 0.82)),
              stain_scale=(1.4, 1.2, 1.2), background=(238.0, 240.0, 240.0), blur=1.5, noise=6.0),
}


@dataclass(frozen=True)
class Slide:
    """One rendered slide with its ground truth.

    Attributes:
        image: (size, size, 3) uint8 RGB.
        label: class index into ``CLASS_NAMES``.
        boxes: (N, 4) float32 ``x0, y0, x1, y1`` pixel boxes of the class evidence (lesion or targets; empty for
            ``normal``).
        decoy_boxes: (M, 4) float32 boxes of the decoys (same size and stain as targets, smooth texture).
        mask: (size, size) bool mask of the class evidence.
        site: the site's name; seed: the layout seed.
    """

    image: np.ndarray
    label: int
    boxes: np.ndarray
    decoy_boxes: np.ndarray
    mask: np.ndarray
    site: str
    seed: int


def get_site(site: str | Site) -> Site:
    """A site from its name.

    Args:
        site: a name in ``SITES``, or a ``Site`` (passed through).

    Returns:
        The ``Site``.
    """
    if isinstance(site, Site):
        return site
    if not isinstance(site, str) or site not in SITES:
        raise ValueError(f"site must be one of {sorted(SITES)} or a Site, got {site!r}")
    return SITES[site]


def make_slide(size: int | None = None, *, label: int | None = None, seed: int = 0, site: str | Site = "A",
               target_frac: float = 0.04, n_decoys: int = 3, density: float = 1.0) -> Slide:
    """Render one procedural slide with its ground truth.

    Args:
        size: side in pixels (default: the profile's ``image_size``). Any size renders the same layout.
        label: 0 normal, 1 lesion, 2 target; ``None`` draws it from the seed.
        seed: non-negative int; fixes the layout (and, with the site, the noise).
        site: a name in ``SITES`` or a ``Site``; changes stain vectors, intensity, blur and noise, not the layout.
        target_frac: target and decoy diameter as a fraction of the image side, in (0, 0.25].
        n_decoys: number of smooth DAB decoys (0-10).
        density: nuclei density multiplier, in (0, 4].

    Returns:
        A ``Slide``.
    """
    size = get_profile().image_size if size is None else check_int("size", size, 1)
    seed = check_int("seed", seed, 0)
    if label is not None:
        label = check_int("label", label, 0)
        if label >= len(CLASS_NAMES):
            raise ValueError(f"label must be in 0..{len(CLASS_NAMES) - 1} ({CLASS_NAMES}), got {label}")
    target_frac = check_float("target_frac", target_frac, 0.0, 0.25, low_open=True,
                              hint="target diameter / image side, so that targets fit in the image")
    n_decoys = check_int("n_decoys", n_decoys, 0)
    if n_decoys > 10:
        raise ValueError(f"n_decoys must be <= 10, got {n_decoys}")
    density = check_float("density", density, 0.0, 4.0, low_open=True, hint="nuclei density multiplier")
    site_obj = get_site(site)
    if label is None:
        label = int(np.random.default_rng([seed, 3]).integers(len(CLASS_NAMES)))
    lay = make_layout(seed, label, target_frac, n_decoys, density)
    noise_seed = int.from_bytes(hashlib.sha256(f"{seed}/{site_obj.name}/{size}".encode()).digest()[:8], "little")
    basis = site_obj.stain_matrix() * np.asarray(site_obj.stain_scale)[:, None]  # (stain, rgb)
    image, mask = render(lay, size, basis, site_obj.background, site_obj.blur, site_obj.noise, noise_seed)
    boxes = ellipse_boxes(lay.evidence, size)
    decoys = ellipse_boxes([(cx, cy, r, r) for cx, cy, r, _ in lay.blobs], size)
    return Slide(image, label, boxes, decoys, mask, site_obj.name, seed)


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Shrink an image by an integer factor: each ``factor x factor`` block becomes its mean.

    Rows and columns that do not fill a whole block (the remainder of ``H // factor``) are cropped, so box
    coordinates simply divide by ``factor``. Area averaging is what a thumbnail does: fine texture is averaged
    away rather than aliased.

    Args:
        image: HxW or HxWxC numeric array.
        factor: >= 1, at most the image's smaller side.

    Returns:
        The shrunk image, in the input's dtype (uint8 means are rounded).
    """
    check_image("image", image, channels=None, dtype="numeric")
    factor = check_int("factor", factor, 1)
    h, w = image.shape[:2]
    if factor > min(h, w):
        raise ValueError(f"factor must be <= the image's smaller side ({min(h, w)}), got {factor}")
    if factor == 1:
        return image.copy()
    cropped = np.ascontiguousarray(image[: h // factor * factor, : w // factor * factor])
    out = cv2.resize(cropped, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return out.reshape(h // factor, w // factor, *image.shape[2:])  # OpenCV drops a single channel axis


def detail_energy(image: np.ndarray, boxes: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Fine-detail energy inside each box: RMS of high-pass optical density, per box.

    Optical density ``-log10(gray / 255)`` is proportional to the amount of stain; subtracting a Gaussian blur of
    width ``sigma`` pixels keeps only detail finer than that (a target's granules, not its overall spot). The ratio
    of targets' to decoys' energy is the evidence a classifier can use: about 6 when a target spans 20 pixels, and
    about 1 (indistinguishable) when it spans 2-3 pixels.

    Args:
        image: HxWx3 uint8 RGB.
        boxes: (N, 4) ``x0, y0, x1, y1`` in this image's pixels.
        sigma: high-pass scale in pixels; default ``max(1, median box side / 16)``, about a granule's radius.

    Returns:
        (N,) float array; NaN for a box with no pixel inside the image.
    """
    check_image("image", image, channels=(3,), gray=False)
    try:
        boxes = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"boxes must be an (N, 4) array of x0, y0, x1, y1, got {type(boxes).__name__}") from e
    if not (boxes.ndim == 2 and boxes.shape[1] == 4 or boxes.size == 0) or not np.isfinite(boxes).all():
        raise ValueError(f"boxes must be an (N, 4) array of finite x0, y0, x1, y1, got shape {boxes.shape}")
    boxes = boxes.reshape(-1, 4)
    if sigma is not None:
        sigma = check_float("sigma", sigma, 0.0, low_open=True, hint="high-pass scale in pixels")
    if sigma is None:
        sides = boxes[:, 2:] - boxes[:, :2]
        sigma = max(1.0, float(np.median(sides)) / 16) if len(boxes) else 1.0
    gray = image.astype(np.float32).mean(axis=2)
    od = -np.log10(np.clip(gray, 1.0, 255.0) / 255.0)
    high = od - cv2.GaussianBlur(od, (0, 0), sigmaX=sigma)
    out = np.full(len(boxes), np.nan)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        patch = high[max(0, int(y0)):int(np.ceil(y1)), max(0, int(x0)):int(np.ceil(x1))]
        if patch.size:
            out[i] = float(np.sqrt(np.mean(patch.astype(np.float64) ** 2)))
    return out


class SlideDataset(SeededItems):
    """``n`` procedural slides as a map-style torch ``Dataset`` of ``(image, label, boxes)``.

    Item ``i`` is ``make_slide(size, label=i % 3, seed=item_seed(i), site=sites[i % len(sites)])`` unless
    ``labels`` is given, so classes are balanced and any prefix of the dataset is too.

    Args:
        n: number of slides (>= 1).
        size: side in pixels (default: the profile's ``image_size``).
        seed: dataset seed (>= 0); item seeds are derived from ``(seed, i)``.
        sites: site names cycled over items.
        labels: optional explicit label per item (length ``n``).
        transform: applied to the uint8 HWC image (e.g. a torchvision or albumentations pipeline wrapped in a
            function); boxes are returned untouched.
        cache_dir: if set, rendered items are stored there as ``.npz`` and read back next time (written atomically;
            a corrupt file is re-rendered with a warning).
        in_memory: keep rendered slides in this object (fast repeated epochs; each DataLoader worker has its own).
        **slide_kwargs: passed to ``make_slide`` (``target_frac``, ``n_decoys``, ``density``).
    """

    unit = "slides"

    def __init__(self, n: int, size: int | None = None, *, seed: int = 0, sites: Sequence[str] = ("A",),
                 labels: Sequence[int] | None = None, transform: Callable[[np.ndarray], Any] | None = None,
                 cache_dir: str | os.PathLike | None = None, in_memory: bool = False, **slide_kwargs: Any) -> None:
        super().__init__(n, seed, in_memory)
        self.size = get_profile().image_size if size is None else check_int("size", size, 1)
        if isinstance(sites, str) or not sites:
            raise ValueError(f"sites must be a non-empty sequence of site names, got {sites!r}")
        try:
            self.sites = tuple(get_site(s).name for s in sites)
        except (TypeError, ValueError) as e:
            raise ValueError(f"sites must name sites in {sorted(SITES)} or be Site objects, got {sites!r:.80} ({e})") \
                from e
        if labels is not None and len(labels) != self.n:
            raise ValueError(f"labels must have n={self.n} entries, got {len(labels)}")
        self.labels = [i % len(CLASS_NAMES) for i in range(self.n)] if labels is None else [
            check_int(f"labels[{i}]", v, 0) for i, v in enumerate(labels)]
        if max(self.labels) >= len(CLASS_NAMES):
            raise ValueError(f"labels must be class indices in 0..{len(CLASS_NAMES) - 1} ({CLASS_NAMES}), "
                             f"got {max(self.labels)}")
        self.transform = transform
        self.slide_kwargs = slide_kwargs
        make_slide(8, seed=0, **slide_kwargs)  # validate the keyword arguments now, not in a worker
        self.cache_dir = None
        if cache_dir is not None:
            key = json.dumps({"size": self.size, "seed": self.seed, "sites": self.sites, **slide_kwargs},
                             sort_keys=True)
            self.cache_dir = Path(cache_dir) / hashlib.sha256(key.encode()).hexdigest()[:16]
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def slide(self, i: int) -> Slide:
        """The full slide of an item, with mask and decoys.

        Args:
            i: the item's index (negative counts from the end).

        Returns:
            The ``Slide``, rendered, read from the cache or taken from memory.
        """
        return self._item(i)

    def _make(self, i: int) -> Slide:
        path = None if self.cache_dir is None else self.cache_dir / f"{i:06d}_{self.labels[i]}.npz"
        if path is not None and path.exists():
            try:
                with np.load(path) as f:
                    return Slide(f["image"], int(f["label"]), f["boxes"], f["decoy_boxes"], f["mask"],
                                 str(f["site"]), int(f["seed"]))
            except Exception as exc:  # a truncated or corrupt cache file: re-render it
                warnings.warn(f"cache file {path} is unreadable ({exc}); re-rendering it", stacklevel=2)
        s = make_slide(self.size, label=self.labels[i], seed=self.item_seed(i), site=self.sites[i % len(self.sites)],
                       **self.slide_kwargs)
        if path is not None:
            atomic_write(path, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in asdict(s).items()}), "wb")
        return s

    def __getitem__(self, i: int) -> tuple[Any, int, np.ndarray]:
        """Item ``i`` as ``(image or transform(image), label, boxes)``."""
        s = self.slide(i)
        image = s.image if self.transform is None else self.transform(s.image)
        return image, s.label, s.boxes


def collate_slides(batch: Sequence[tuple[Any, int, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor,
                                                                          list[torch.Tensor]]:
    """DataLoader ``collate_fn`` for ``SlideDataset``: stacks images and labels, keeps boxes as a list.

    Args:
        batch: ``(image, label, boxes)`` items; all images of one shape.

    Returns:
        ``(images, labels, boxes)``: uint8 HWC numpy images become a uint8 NHWC tensor, tensors from a transform
        are stacked as they are; labels an int64 tensor; boxes a list of tensors.
    """
    if isinstance(batch, str | bytes) or not isinstance(batch, Sequence) or not batch or not all(
            isinstance(b, tuple | list) and len(b) == 3 for b in batch):
        raise ValueError(f"batch must be a non-empty sequence of (image, label, boxes) items, got "
                         f"{type(batch).__name__} {batch!r:.80}")
    shapes = {tuple(np.shape(b[0])) for b in batch}
    if len(shapes) != 1:
        raise ValueError(f"batch images must all have one shape to be stacked, got {sorted(shapes)}")
    images = [torch.as_tensor(b[0]) for b in batch]
    return (torch.stack(images), torch.as_tensor([b[1] for b in batch]),
            [torch.as_tensor(b[2]) for b in batch])
