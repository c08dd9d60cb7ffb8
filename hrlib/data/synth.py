"""Small domain generators with known truth, for domain-specific augmentation (lesson 03).

Each ``make_*`` renders one :class:`Sample` (image, label, evidence boxes and mask, ``meta`` facts) from ``seed``
alone (the class too, unless ``label`` is given) in a few ms at 128 px; default sizes follow the profile (fast 128
px, full 512 px; documents 64 / 256 px high). Which augmentation each task tolerates is the point:

- ``make_multispectral`` (C4): 4 reflectance bands (``BAND_NAMES``); classes by spectral signature (NDVI) and by
  a fine row texture; a shared illumination field makes the visible bands strongly correlated.
- ``make_scratch`` (C11): brushed metal, grain always horizontal (parts are imaged with the rolling direction
  fixed); the class is the scratch direction in the image frame, i.e. relative to the grain. A free rotation turns
  the grain too and puts an ``along_grain`` label on a vertical scratch: an image that never occurs, mislabelled.
- ``make_xray`` (C32): chest-like radiographs; the class is the heart's side, so a horizontal flip changes it.
- ``hrlib.data.documents.make_document`` (C10): text-like pages whose class is the glyphs' aspect ratio.
- :class:`SynthDataset`: any of the four as a torch ``Dataset`` of ``(image, label, boxes)``, like ``SlideDataset``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from hrlib._checks import check_float, check_image, check_int
from hrlib.data._items import SeededItems
from hrlib.data._sample import MIN_SIZE, Sample, box, grid, smooth, start, to_uint8
from hrlib.data.documents import DOCUMENT_CLASSES, make_document

__all__ = ["BAND_NAMES", "MULTISPECTRAL_CLASSES", "SCRATCH_CLASSES", "XRAY_CLASSES", "Sample", "SynthDataset",
           "make_multispectral", "make_scratch", "make_xray", "ndvi"]

BAND_NAMES: tuple[str, ...] = ("blue", "green", "red", "nir")
MULTISPECTRAL_CLASSES: tuple[str, ...] = ("bare_soil", "crop", "stressed_crop")
SCRATCH_CLASSES: tuple[str, ...] = ("clean", "along_grain", "across_grain")
XRAY_CLASSES: tuple[str, ...] = ("normal", "dextrocardia")

# reflectance (blue, green, red, nir): soil, tilled wet soil (bare_soil's field), crop, stressed crop
_SOIL = np.array([0.12, 0.16, 0.21, 0.28], np.float32)
_FIELDS = np.array([[0.08, 0.10, 0.13, 0.17], [0.04, 0.08, 0.05, 0.45], [0.05, 0.09, 0.065, 0.30]], np.float32)


def make_multispectral(size: int | None = None, *, label: int | None = None, seed: int = 0,
                       noise: float = 0.004) -> Sample:
    """A field scene seen in 4 bands: (size, size, 4) float32 reflectance in [0, 1], bands ``BAND_NAMES``.

    Soil with smooth brightness variation under a shared illumination field (so the visible bands correlate
    strongly, about 0.9+) carries one rotated rectangular field: ``bare_soil`` a tilled, darker soil with furrows;
    ``crop`` rows of healthy canopy (NDVI about 0.65, row period 2.5-4 % of the side, a fine texture); ``stressed_crop``
    an even, mottled canopy of nearly the same visible colour but lower NIR (NDVI about 0.5). Exposure varies per
    scene (x0.7-1.3). Boxes and mask: the vegetated field (empty for ``bare_soil``).
    ``meta``: ``ndvi`` (mean noise-free NDVI of the field, any class), ``field_frac`` (field area / image area).

    Args:
        size, label, seed: side in px (>= 32, default 128 fast / 512 full), index into ``MULTISPECTRAL_CLASSES``
            (``None``: drawn from the seed), and the seed (>= 0) that fixes everything.
        noise: sensor noise std in reflectance units, independent per band and pixel, in [0, 0.5].

    Returns:
        The :class:`Sample`.
    """
    size, label, rng = start(size, 128, label, seed, MULTISPECTRAL_CLASSES)
    noise = check_float("noise", noise, 0.0, 0.5, hint="sensor noise std, reflectance units")
    x, y = grid(size, size)
    w, h = rng.uniform(0.3, 0.6, 2) * size
    angle = rng.uniform(0, 180)
    corners = cv2.boxPoints((tuple(rng.uniform(0.3, 0.7, 2) * size), (w, h), angle))
    field_u8 = np.zeros((size, size), np.uint8)
    cv2.fillPoly(field_u8, [np.rint(corners * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    inside = field_u8.astype(bool)
    theta, period = np.deg2rad(angle), rng.uniform(0.025, 0.04)
    phase = x * np.float32(2 * np.pi * np.cos(theta) / period) + y * np.float32(2 * np.pi * np.sin(theta) / period)
    closure = rng.uniform(0.65, 0.85)  # mean canopy cover of the field
    if label == 2:  # stressed: even canopy with smooth mottling, no rows
        cover = np.clip(closure + 0.1 * smooth(rng, size, size, 9), 0, 1)
    else:  # rows of canopy (crop) or furrows (tilled soil)
        cover = closure + (1 - closure) * np.cos(phase)
    soil = _SOIL * (1 + 0.12 * smooth(rng, size, size, 6))[..., None]
    cover = np.where(inside, cover, 0.0).astype(np.float32)[..., None]
    light = rng.uniform(0.7, 1.3) * (1 + 0.15 * smooth(rng, size, size, 4))  # exposure and shading, all bands
    clean = (cover * _FIELDS[label] + (1 - cover) * soil) * light[..., None]
    clean = np.clip(clean, 0, 1)
    image = clean + noise * rng.standard_normal(clean.shape, dtype=np.float32)
    mask = inside if label > 0 else np.zeros_like(inside)
    meta = {"ndvi": float(ndvi(clean)[inside].mean()) if inside.any() else float("nan"),
            "field_frac": float(inside.mean())}
    return Sample(np.clip(image, 0, 1).astype(np.float32), label, box(mask), mask, meta)


def ndvi(image: np.ndarray, red: int = 2, nir: int = 3) -> np.ndarray:
    """Normalised difference vegetation index ``(nir - red) / (nir + red)``.

    Args:
        image: HxWxC reflectance (any real dtype; uint8 counts work too, the ratio is scale-free).
        red, nir: band indices (default ``BAND_NAMES`` order).

    Returns:
        (H, W) float32 in [-1, 1]; pixels with ``nir + red == 0`` give 0.
    """
    check_image("image", image, channels=None, gray=False, dtype="numeric")
    if image.dtype == bool:
        raise ValueError("image must hold numeric reflectances, got a bool array")
    for name, band in (("red", red), ("nir", nir)):
        if check_int(name, band, 0) >= image.shape[2]:
            raise ValueError(f"{name} must be a band index < {image.shape[2]} (the image's bands), got {band}")
    r, n = image[..., red].astype(np.float32), image[..., nir].astype(np.float32)
    total = n + r
    return np.clip(np.divide(n - r, total, out=np.zeros_like(total), where=total != 0), -1, 1)


def make_scratch(size: int | None = None, *, label: int | None = None, seed: int = 0, grain: float = 1.0) -> Sample:
    """A brushed-metal surface: (size, size) uint8 grayscale, horizontal grain, lighting gradient and noise.

    ``along_grain`` / ``across_grain`` carry one thin scratch (2-3 px at 128 px; bright or dark; straight or slightly
    bent; 30-70 % of the side long) whose chord is within +-20 degrees of horizontal / of vertical; ``clean`` has
    none. Every class has 0-2 small blemishes (decoys). Boxes and mask: the scratch. ``meta["angle"]``: the chord's
    direction in degrees counter-clockwise from the image's x axis, in [-90, 90) (NaN for ``clean``); the label is
    this direction in the image frame (where the grain is always horizontal).

    Args:
        size, label, seed: side in px (>= 32, default 128 fast / 512 full), index into ``SCRATCH_CLASSES`` (``None``:
            drawn from the seed), and the seed (>= 0) that fixes everything.
        grain: grain contrast multiplier (>= 0; 0 gives a plain surface).

    Returns:
        The :class:`Sample`.
    """
    size, label, rng = start(size, 128, label, seed, SCRATCH_CLASSES)
    grain = check_float("grain", grain, 0.0, 10.0, hint="grain contrast multiplier")
    streaks = rng.standard_normal((size, size)).astype(np.float32)
    k = max(3, size // 6)
    streaks = cv2.blur(cv2.blur(streaks, (k, 1)), (k, 1))  # long along x, one pixel across
    streaks /= streaks.std() + 1e-6
    x, y = grid(size, size)
    phi = rng.uniform(0, 2 * np.pi)
    light = 0.55 + 0.12 * ((x - 0.5) * np.cos(phi) + (y - 0.5) * np.sin(phi)) - 0.1 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    image = light + 0.035 * grain * streaks + 0.012 * rng.standard_normal((size, size), dtype=np.float32)
    for _ in range(rng.integers(0, 3)):  # blemishes: small soft dots, in every class
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.01, 0.025)
        image += rng.choice([-1, 1]) * 0.12 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    mask, angle = np.zeros((size, size), bool), float("nan")
    if label > 0:
        angle = rng.uniform(-20, 20) + (90 if label == 2 else 0)
        angle = (angle + 90) % 180 - 90
        t = np.deg2rad(angle)
        length = rng.uniform(0.3, 0.7) * size
        u, n = np.array([np.cos(t), -np.sin(t)]), np.array([np.sin(t), np.cos(t)])  # image y points down
        half = 0.5 * length * np.abs(u) + 0.04 * length + 3
        centre = rng.uniform(half, size - half)
        s = np.linspace(-0.5, 0.5, 17)[:, None]
        pts = centre + s * length * u + (1 - 4 * s**2) * rng.uniform(-0.04, 0.04) * length * n
        layer = np.zeros((size, size), np.uint8)
        width = max(1, round(size * rng.uniform(0.012, 0.022)))
        cv2.polylines(layer, [np.rint(pts * 16).astype(np.int32)], False, 255, width, cv2.LINE_AA, shift=4)
        mask = layer > 127
        image += rng.choice([-1, 1]) * rng.uniform(0.14, 0.24) * layer.astype(np.float32) / 255
    return Sample(to_uint8(image), label, box(mask), mask, {"angle": angle})


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, soft: float) -> np.ndarray:
    """Soft indicator of an ellipse (normalised units): 1 inside, 0 outside, a linear ramp of width ``soft``."""
    d = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return np.clip((1 - d) / soft + 0.5, 0, 1)


def make_xray(size: int | None = None, *, label: int | None = None, seed: int = 0) -> Sample:
    """A chest-like radiograph: (size, size) uint8 grayscale (bright = dense).

    Dark lung fields, a bright mediastinum and spine, curved ribs, a diaphragm, 0-2 bright electrodes (decoys) and
    a heart shadow on the image's right (``normal``: the patient's left) or left (``dextrocardia``). Pose: rotation
    within +-8 degrees, scale 0.9-1.1, shift within +-6 % of the side; exposure: gamma 0.7-1.4, contrast and
    offset; blur and noise. A ``dextrocardia`` sample is exactly the mirror image of the ``normal`` sample of the
    same seed, so a horizontal flip changes the class and nothing else. Boxes and mask: the heart.
    ``meta``: ``rotation`` (degrees), ``scale``, ``gamma``.

    Args:
        size: side in px (>= 32, default 128 fast / 512 full).
        label: index into ``XRAY_CLASSES`` (``None``: drawn from the seed).
        seed: (>= 0) fixes everything but the side: both classes share anatomy and pose.

    Returns:
        The :class:`Sample`.
    """
    size, label, rng = start(size, 128, label, seed, XRAY_CLASSES)
    x, y = grid(size, size)
    body = _ellipse(x, y, 0.5, 0.62, rng.uniform(0.44, 0.48), 0.62, 0.08)
    dome = rng.uniform(0.74, 0.8)
    lungs = sum(_ellipse(x, y, 0.5 + side * rng.uniform(0.17, 0.2), 0.48, rng.uniform(0.13, 0.16), 0.3, 0.15)
                for side in (-1, 1)) * np.clip((dome + 0.08 * (np.abs(x - 0.5) / 0.4) ** 2 - y) / 0.03, 0, 1)
    spine = np.clip((0.07 - np.abs(x - 0.5)) / 0.03, 0, 1) * (0.8 + 0.2 * np.cos(2 * np.pi * y * 16)) ** 2
    ribs = np.zeros((size, size), np.uint8)
    xs = np.linspace(0, 0.38, 12)
    for k in range(9):
        for side in (-1, 1):
            pts = np.stack([0.5 + side * (xs + 0.03), 0.2 + 0.066 * k + 0.16 * (xs / 0.38) ** 1.6], 1) * size
            cv2.polylines(ribs, [np.rint(pts * 16).astype(np.int32)], False, 255, max(1, round(size * 0.015)),
                          cv2.LINE_AA, shift=4)
    hx, hy = 0.5 + rng.uniform(0.06, 0.1), rng.uniform(0.6, 0.65)
    heart = _ellipse(x, y, hx, hy, rng.uniform(0.13, 0.17), rng.uniform(0.1, 0.13), 0.25)  # hides the lung behind
    canon = body * (0.5 - 0.33 * lungs * (1 - heart) + 0.08 * ribs.astype(np.float32) / 255) + 0.2 * spine * body
    canon = np.maximum(canon, 0.05) + 0.08 * heart
    for _ in range(rng.integers(0, 3)):
        canon += 0.35 * _ellipse(x, y, rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), 0.015, 0.015, 0.3)
    rotation, scale = rng.uniform(-8, 8), rng.uniform(0.9, 1.1)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), rotation, scale)
    m[:, 2] += rng.uniform(-0.06, 0.06, 2) * size
    image = cv2.warpAffine(canon.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.05)
    mask = cv2.warpAffine((heart > 0.5).astype(np.uint8), m, (size, size), flags=cv2.INTER_NEAREST) > 0
    gamma = rng.uniform(0.7, 1.4)
    image = rng.uniform(0.8, 1.15) * np.clip(image, 0, 1) ** gamma + rng.uniform(-0.08, 0.08)
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=0.5 * size / 128)
    image = to_uint8(image + 0.03 * rng.standard_normal((size, size), dtype=np.float32))
    if label == 1:
        image, mask = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
    return Sample(image, label, box(mask), mask, {"rotation": rotation, "scale": scale, "gamma": gamma})


_KINDS: dict[str, tuple[Callable[..., Sample], tuple[str, ...]]] = {
    "multispectral": (make_multispectral, MULTISPECTRAL_CLASSES), "scratch": (make_scratch, SCRATCH_CLASSES),
    "xray": (make_xray, XRAY_CLASSES), "document": (make_document, DOCUMENT_CLASSES)}


class SynthDataset(SeededItems):
    """``n`` generated samples of one ``kind`` as a map-style torch ``Dataset`` of ``(image, label, boxes)``.

    Item ``i`` is ``generator(size, label=i % num_classes, seed=item_seed(i), **kwargs)`` (balanced classes in any
    prefix). Documents differ in width: for ``hrlib.train.fit``, resize or letterbox them in the transform.

    Args:
        kind: ``"multispectral"``, ``"scratch"``, ``"xray"`` or ``"document"``.
        n: number of samples (>= 1).
        size: side in pixels (a document's height); default the generator's (profile-dependent).
        seed: dataset seed (>= 0); item seeds are derived from ``(seed, i)``.
        transform: applied to the image (after ``channels``); boxes are returned untouched.
        channels: ``None`` keeps the generator's image; ``1`` makes a grayscale image HxWx1, ``3`` repeats it to
            HxWx3 uint8 (for RGB pipelines); not for ``multispectral``.
        in_memory: keep rendered samples in this object (for repeated epochs).
        **kwargs: passed to the generator (``grain`` for scratch; ``aspect``, ``aspect_range`` for document).
    """

    unit = "samples"

    def __init__(self, kind: str, n: int, size: int | None = None, *, seed: int = 0,
                 transform: Callable[[np.ndarray], Any] | None = None, channels: int | None = None,
                 in_memory: bool = False, **kwargs: Any) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {tuple(_KINDS)}, got {kind!r}")
        self.kind, (self._generate, self.class_names) = kind, _KINDS[kind]
        super().__init__(n, seed, in_memory)
        self.size = None if size is None else check_int("size", size, MIN_SIZE)
        if (channels is not None and (isinstance(channels, bool) or not isinstance(channels, int | np.integer))) or \
                channels not in (None, 1, 3) or (channels is not None and kind == "multispectral"):
            raise ValueError(f"channels must be None, 1 or 3 (1 and 3 for grayscale kinds only), got {channels!r} "
                             f"for kind {kind!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a callable image -> anything or None, got {type(transform).__name__}")
        self.channels, self.transform, self.kwargs = channels, transform, kwargs
        self._generate(MIN_SIZE, label=0, seed=0, **kwargs)  # validate the keyword arguments now, not in a worker

    @property
    def num_classes(self) -> int:
        """The kind's number of classes."""
        return len(self.class_names)

    def sample(self, i: int) -> Sample:
        """The full sample of an item, mask and meta too.

        Args:
            i: the item's index (negative counts from the end).

        Returns:
            The :class:`Sample`, generated or taken from memory.
        """
        return self._item(i)

    def _make(self, i: int) -> Sample:
        return self._generate(self.size, label=i % self.num_classes, seed=self.item_seed(i), **self.kwargs)

    def __getitem__(self, i: int) -> tuple[Any, int, np.ndarray]:
        """Item ``i`` as ``(image or transform(image), label, boxes)``."""
        s = self.sample(i)
        image = s.image if self.channels is None else np.repeat(s.image[..., None], self.channels, axis=2)
        return (image if self.transform is None else self.transform(image)), s.label, s.boxes
