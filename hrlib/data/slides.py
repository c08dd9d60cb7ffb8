"""The course data: procedural histology-like slides with ground truth, and real images bundled with scikit-image.

A slide is rendered in two steps:

1. **Layout** (from ``seed`` and ``label`` only): tissue texture, lumen, nuclei, decoys and targets, all in
   normalised coordinates in [0, 1]. The layout does not depend on ``size`` or ``site``, so the same seed gives the
   same slide at every resolution, and the same tissue seen through different scanners.
2. **Rendering** (at ``size`` pixels through a ``Site``): stain concentrations per pixel, Beer-Lambert optical
   density ``OD = sum_s c_s * v_s`` with hematoxylin/eosin/DAB stain vectors ``v_s``, intensity
   ``I = I0 * 10**(-OD)``, then the site's blur and sensor noise.

Classes (``CLASS_NAMES``): 0 ``normal``; 1 ``lesion``, a large region of crowded dark nuclei that survives
downsampling; 2 ``target``, one to three small clusters of DAB granules. Every slide also carries smooth DAB blobs
of the same size and stain ("decoys"), so a target is told from a decoy only by its fine granular texture: that is
the evidence that disappears when the image is shrunk.

The small domain generators of lesson 03 live in ``hrlib.data.synth`` and are re-exported here: ``make_multispectral``
and ``ndvi`` (4-band fields), ``make_scratch`` (direction-dependent scratches), ``make_xray`` (laterality),
``make_document`` (glyph aspect), their ``Sample`` and ``*_CLASSES``, and ``SynthDataset``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hrlib._checks import check_float, check_int
from hrlib.config import get_profile

__all__ = ["BAND_NAMES", "CLASS_NAMES", "DOCUMENT_CLASSES", "MULTISPECTRAL_CLASSES", "RUIFROK_STAINS",
           "SCRATCH_CLASSES", "SITES", "SLIDE_MEAN", "SLIDE_STD", "XRAY_CLASSES", "Sample", "Site", "Slide",
           "SlideDataset", "SynthDataset", "collate_slides", "detail_energy", "downscale", "get_site", "make_document",
           "make_multispectral", "make_scratch", "make_slide", "make_xray", "ndvi", "real_image"]

CLASS_NAMES: tuple[str, ...] = ("normal", "lesion", "target")

# Ruifrok & Johnston (2001) stain vectors (rows: hematoxylin, eosin, DAB), as in skimage.color.rgb_from_hed.
# Per-channel mean and std of site-A slides in [0, 1] (48 slides, 256 px, balanced classes): the task's own
# statistics, used by hrlib's default normalization (not ImageNet's 0.485/0.456/0.406, 0.229/0.224/0.225).
SLIDE_MEAN: tuple[float, float, float] = (0.814, 0.522, 0.857)
SLIDE_STD: tuple[float, float, float] = (0.142, 0.175, 0.093)

_LUMEN = -0.45  # texture level below which there is no tissue (white lumen)
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


@dataclass
class _Layout:
    label: int
    freqs: np.ndarray  # (K, 2) cycles per unit, texture field
    phases: np.ndarray
    amps: np.ndarray
    nuclei: np.ndarray  # (n, 6): cx, cy, rx, ry, angle, H concentration
    blobs: list[tuple[float, float, float, float]] = field(default_factory=list)  # decoys: cx, cy, r, DAB
    granules: list[tuple[float, float, float, float]] = field(default_factory=list)  # cx, cy, r, DAB
    evidence: list[tuple[float, float, float, float]] = field(default_factory=list)  # ellipses cx, cy, rx, ry


def get_site(site: str | Site) -> Site:
    """Return a ``Site`` from its name (one of ``SITES``) or pass a ``Site`` through."""
    if isinstance(site, Site):
        return site
    if not isinstance(site, str) or site not in SITES:
        raise ValueError(f"site must be one of {sorted(SITES)} or a Site, got {site!r}")
    return SITES[site]


def _field(layout: _Layout, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth tissue texture in about [-1, 1] at normalised points ``(x[i], y[i])``."""
    arg = 2 * np.pi * (np.outer(x, layout.freqs[:, 0]) + np.outer(y, layout.freqs[:, 1])) + layout.phases
    return np.cos(arg) @ layout.amps


def _field_grid(layout: _Layout, n: int) -> np.ndarray:
    """The texture on an n x n pixel-centre grid, separably: cos(a + b) = cos a cos b - sin a sin b."""
    g = (np.arange(n) + 0.5) / n
    ax = 2 * np.pi * np.outer(layout.freqs[:, 0], g)  # (K, n) along x
    by = 2 * np.pi * np.outer(layout.freqs[:, 1], g) + layout.phases[:, None]  # (K, n) along y
    w = layout.amps[:, None]
    return (np.cos(by) * w).T @ np.cos(ax) - (np.sin(by) * w).T @ np.sin(ax)


def _make_layout(seed: int, label: int, target_frac: float, n_decoys: int, density: float) -> _Layout:
    rng = np.random.default_rng([seed, 7])
    k = 24
    radius = rng.uniform(1.5, 14.0, k)
    theta = rng.uniform(0, 2 * np.pi, k)
    freqs = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
    amps = 1.0 / radius
    amps /= amps.sum() / 2.0
    lay = _Layout(label, freqs, rng.uniform(0, 2 * np.pi, k), amps, np.zeros((0, 6)))

    def in_tissue(p: np.ndarray, margin: float = 0.0) -> np.ndarray:
        return _field(lay, p[:, 0], p[:, 1]) > _LUMEN + margin

    n = rng.poisson(420 * density)
    pts = rng.uniform(0.0, 1.0, (n, 2))
    pts = pts[in_tissue(pts)]
    nuc = [np.column_stack([pts, rng.uniform(0.006, 0.010, (len(pts), 2)), rng.uniform(0, np.pi, len(pts)),
                            rng.uniform(0.35, 0.6, len(pts))])]
    r_obj = target_frac / 2
    if label == 1:  # lesion: a large region of crowded, enlarged, darker nuclei
        rx, ry = rng.uniform(0.12, 0.18, 2)
        cx, cy = rng.uniform(0.22, 0.78, 2)
        m = rng.poisson(220 * density * rx * ry / 0.0225)
        t = rng.uniform(0, 2 * np.pi, m)
        s = np.sqrt(rng.uniform(0, 1, m))
        p = np.column_stack([cx + rx * s * np.cos(t), cy + ry * s * np.sin(t)])
        nuc.append(np.column_stack([p, rng.uniform(0.009, 0.014, (m, 2)), rng.uniform(0, np.pi, m),
                                    rng.uniform(0.55, 0.8, m)]))
        lay.evidence.append((cx, cy, rx + 0.01, ry + 0.01))
    lay.nuclei = np.concatenate(nuc)
    centers: list[tuple[float, float]] = []

    def free_spot() -> tuple[float, float]:
        for _ in range(500):  # inside tissue, away from other objects
            c = tuple(rng.uniform(r_obj + 0.02, 1 - r_obj - 0.02, 2))
            if in_tissue(np.array([c]), 0.25)[0] and all(
                    np.hypot(c[0] - o[0], c[1] - o[1]) > 4 * r_obj for o in centers):
                break
        centers.append(c)  # type: ignore[arg-type]
        return c  # type: ignore[return-value]

    for _ in range(n_decoys):
        cx, cy = free_spot()
        lay.blobs.append((cx, cy, r_obj, rng.uniform(0.25, 0.45)))
    if label == 2:  # targets: clusters of DAB granules
        for _ in range(rng.integers(1, 4)):
            cx, cy = free_spot()
            lay.evidence.append((cx, cy, r_obj, r_obj))
            for _ in range(rng.integers(10, 16)):
                t, s = rng.uniform(0, 2 * np.pi), r_obj * 0.8 * np.sqrt(rng.uniform(0, 1))
                lay.granules.append((cx + s * np.cos(t), cy + s * np.sin(t), r_obj * rng.uniform(0.12, 0.18),
                                     rng.uniform(0.9, 1.4)))
    return lay


def _stamp(canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, angle: float, value: float,
           smooth: bool = False) -> None:
    """Add an anti-aliased ellipse (normalised units) of concentration ``value`` to ``canvas`` in place.

    Coverage is normalised to the ellipse's area, so a sub-pixel object keeps its total stain at any resolution.
    """
    size = canvas.shape[0]
    px, py, a, b = cx * size, cy * size, max(rx * size, 1e-3), max(ry * size, 1e-3)
    r = max(a, b) + 1.5
    x0, x1 = max(0, int(px - r)), min(size, int(np.ceil(px + r)))
    y0, y1 = max(0, int(py - r)), min(size, int(np.ceil(py + r)))
    if x0 >= x1 or y0 >= y1:
        return
    xs, ys = np.arange(x0, x1) + 0.5 - px, (np.arange(y0, y1) + 0.5 - py)[:, None]
    c, s = np.cos(angle), np.sin(angle)
    d = np.sqrt(((xs * c + ys * s) / a) ** 2 + ((-xs * s + ys * c) / b) ** 2)
    cover = np.exp(-2.0 * d**2) if smooth else np.clip((1.0 - d) * min(a, b) + 0.5, 0.0, 1.0)
    area = np.pi * a * b * (0.5 if smooth else 1.0)
    total = cover.sum()
    if total > area:
        cover *= area / total
    canvas[y0:y1, x0:x1] += value * cover


def _render(lay: _Layout, size: int, site: Site, noise_seed: int) -> tuple[np.ndarray, np.ndarray]:
    grid = min(size, 256)  # the texture is smooth (< 15 cycles per side): evaluate coarse, then interpolate
    tex = _field_grid(lay, grid)
    if grid != size:
        tex = cv2.resize(tex.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    tissue = np.clip((tex - _LUMEN) / 0.1, 0.0, 1.0)  # soft lumen edges
    conc = np.zeros((3, size, size), dtype=np.float32)
    conc[0] = 0.05 * tissue
    conc[1] = tissue * (0.24 + 0.10 * tex)
    for cx, cy, rx, ry, ang, h in lay.nuclei:
        _stamp(conc[0], cx, cy, rx, ry, ang, h)
    for cx, cy, r, dab in lay.blobs:
        _stamp(conc[2], cx, cy, r, r, 0.0, dab * 1.6, smooth=True)
    for cx, cy, r, dab in lay.granules:
        _stamp(conc[2], cx, cy, r, r, 0.0, dab)
    mask = np.zeros((size, size), dtype=np.float32)
    for cx, cy, rx, ry in lay.evidence:
        _stamp(mask, cx, cy, rx, ry, 0.0, 1.0)
    basis = site.stain_matrix() * np.asarray(site.stain_scale)[:, None]  # (stain, rgb)
    od = conc.reshape(3, -1).T @ basis.astype(np.float32)  # (pixels, rgb) optical density, base 10
    img = (np.exp(-np.log(10.0) * od) * np.asarray(site.background, dtype=np.float32)).reshape(size, size, 3)
    sigma = site.blur * size / 512
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma)
    rng = np.random.default_rng(noise_seed)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(site.noise)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask > 0.5


def _boxes(ellipses: Sequence[tuple[float, float, float, float]], size: int) -> np.ndarray:
    """Pixel ``x0, y0, x1, y1`` boxes of normalised ellipses ``(cx, cy, rx, ry)``, clipped to the image."""
    out = np.asarray([(cx - rx, cy - ry, cx + rx, cy + ry) for cx, cy, rx, ry in ellipses], dtype=np.float64)
    return (np.clip(out.reshape(-1, 4), 0.0, 1.0) * size).astype(np.float32)


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
    lay = _make_layout(seed, label, target_frac, n_decoys, density)
    noise_seed = int.from_bytes(hashlib.sha256(f"{seed}/{site_obj.name}/{size}".encode()).digest()[:8], "little")
    image, mask = _render(lay, size, site_obj, noise_seed)
    boxes = _boxes(lay.evidence, size)
    decoys = _boxes([(cx, cy, r, r) for cx, cy, r, _ in lay.blobs], size)
    return Slide(image, label, boxes, decoys, mask, site_obj.name, seed)


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Shrink an HxW or HxWxC image by an integer ``factor``: each ``factor x factor`` block becomes its mean.

    Rows and columns that do not fill a whole block (the remainder of ``H // factor``) are cropped, so box
    coordinates simply divide by ``factor``. Area averaging is what a thumbnail does: fine texture is averaged
    away rather than aliased. Returns the input's dtype (uint8 means are rounded).
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError(f"image must be an HxW or HxWxC numpy array, got {type(image).__name__} "
                         f"with shape {getattr(image, 'shape', None)}")
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
    if (not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8
            or image.size == 0):
        raise ValueError(f"image must be a non-empty HxWx3 uint8 array, got {getattr(image, 'dtype', type(image))} "
                         f"with shape {getattr(image, 'shape', None)}")
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


class SlideDataset(Dataset):
    """``n`` procedural slides as a map-style torch ``Dataset`` of ``(image, label, boxes)``.

    Item ``i`` is ``make_slide(size, label=i % 3, seed=hash(seed, i), site=sites[i % len(sites)])`` unless
    ``labels`` is given, so classes are balanced and any prefix of the dataset is too.

    Args:
        n: number of slides (>= 1).
        size: side in pixels (default: the profile's ``image_size``).
        seed: dataset seed; item seeds are derived from ``(seed, i)``.
        sites: site names cycled over items.
        labels: optional explicit label per item (length ``n``).
        transform: applied to the uint8 HWC image (e.g. a torchvision or albumentations pipeline wrapped in a
            function); boxes are returned untouched.
        cache_dir: if set, rendered items are stored there as ``.npz`` and read back next time (written atomically;
            a corrupt file is re-rendered with a warning).
        in_memory: keep rendered slides in this object (fast repeated epochs; each DataLoader worker has its own).
        **slide_kwargs: passed to ``make_slide`` (``target_frac``, ``n_decoys``, ``density``).
    """

    def __init__(self, n: int, size: int | None = None, *, seed: int = 0, sites: Sequence[str] = ("A",),
                 labels: Sequence[int] | None = None, transform: Callable[[np.ndarray], Any] | None = None,
                 cache_dir: str | os.PathLike | None = None, in_memory: bool = False, **slide_kwargs: Any) -> None:
        self.n = check_int("n", n, 1)
        self.size = get_profile().image_size if size is None else check_int("size", size, 1)
        self.seed = check_int("seed", seed, 0)
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
        self._memory: dict[int, Slide] | None = {} if in_memory else None
        make_slide(8, seed=0, **slide_kwargs)  # validate the keyword arguments now, not in a worker
        self.cache_dir = None
        if cache_dir is not None:
            key = json.dumps({"size": self.size, "seed": self.seed, "sites": self.sites, **slide_kwargs},
                             sort_keys=True)
            self.cache_dir = Path(cache_dir) / hashlib.sha256(key.encode()).hexdigest()[:16]
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return self.n

    def item_seed(self, i: int) -> int:
        return int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0])

    def slide(self, i: int) -> Slide:
        """The full ``Slide`` (with mask and decoys) of item ``i``, rendered or read from the cache."""
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for a dataset of {self.n} slides")
        i %= self.n
        if self._memory is not None and i in self._memory:
            return self._memory[i]
        s = self._load_or_render(i)
        if self._memory is not None:
            self._memory[i] = s
        return s

    def _load_or_render(self, i: int) -> Slide:
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
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **{k: np.asarray(v) for k, v in asdict(s).items()})
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        return s

    def __getitem__(self, i: int) -> tuple[Any, int, np.ndarray]:
        s = self.slide(i)
        image = s.image if self.transform is None else self.transform(s.image)
        return image, s.label, s.boxes


def collate_slides(batch: Sequence[tuple[Any, int, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor,
                                                                          list[torch.Tensor]]:
    """DataLoader ``collate_fn`` for ``SlideDataset``: stacks images and labels, keeps boxes as a list.

    uint8 HWC numpy images become a uint8 NHWC tensor; tensors from a transform are stacked as they are.
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


_REAL = {
    "ihc": "immunohistochemistry", "retina": "retina", "hubble": "hubble_deep_field", "brick": "brick",
    "gravel": "gravel", "grass": "grass", "text": "text", "page": "page", "camera": "camera", "coffee": "coffee",
}


def real_image(name: str) -> np.ndarray:
    """A real image shipped inside scikit-image (no download), as uint8 HxWx3 or HxW.

    Names: ``ihc`` (512x512 immunohistochemistry, H-DAB), ``retina`` (1411x1411 fundus), ``hubble`` (872x1000),
    ``brick``, ``gravel``, ``grass`` (textures), ``text``, ``page`` (documents), ``camera``, ``coffee``.
    """
    if name not in _REAL:
        raise ValueError(f"name must be one of {sorted(_REAL)}, got {name!r}")
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, _REAL[name])())


# the lesson-03 domain generators (hrlib.data.synth does not import this module, so the re-export is safe here)
from hrlib.data.synth import (  # noqa: E402, F401
    BAND_NAMES,
    DOCUMENT_CLASSES,
    MULTISPECTRAL_CLASSES,
    SCRATCH_CLASSES,
    XRAY_CLASSES,
    Sample,
    SynthDataset,
    make_document,
    make_multispectral,
    make_scratch,
    make_xray,
    ndvi,
)
