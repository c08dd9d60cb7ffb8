"""The slide renderer behind ``hrlib.data.slides.make_slide`` (lesson 00; package-internal).

1. **Layout** (from ``seed`` and ``label`` only): tissue texture, lumen, nuclei, decoys and targets, all in
   normalised coordinates in [0, 1]. The layout does not depend on ``size`` or the site, so the same seed gives the
   same slide at every resolution, and the same tissue seen through different scanners.
2. **Rendering** (at ``size`` pixels through a site's optics): stain concentrations per pixel, Beer-Lambert optical
   density ``OD = sum_s c_s * v_s`` with hematoxylin/eosin/DAB stain vectors ``v_s``, intensity
   ``I = I0 * 10**(-OD)``, then the site's blur and sensor noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

LUMEN = -0.45  # texture level below which there is no tissue (white lumen)


@dataclass
class Layout:
    """A slide in normalised coordinates: texture field, nuclei, decoy blobs, target granules, evidence ellipses."""

    label: int
    freqs: np.ndarray  # (K, 2) cycles per unit, texture field
    phases: np.ndarray
    amps: np.ndarray
    nuclei: np.ndarray  # (n, 6): cx, cy, rx, ry, angle, H concentration
    blobs: list[tuple[float, float, float, float]] = field(default_factory=list)  # decoys: cx, cy, r, DAB
    granules: list[tuple[float, float, float, float]] = field(default_factory=list)  # cx, cy, r, DAB
    evidence: list[tuple[float, float, float, float]] = field(default_factory=list)  # ellipses cx, cy, rx, ry


def _field(layout: Layout, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth tissue texture in about [-1, 1] at normalised points ``(x[i], y[i])``."""
    arg = 2 * np.pi * (np.outer(x, layout.freqs[:, 0]) + np.outer(y, layout.freqs[:, 1])) + layout.phases
    return np.cos(arg) @ layout.amps


def _field_grid(layout: Layout, n: int) -> np.ndarray:
    """The texture on an n x n pixel-centre grid, separably: cos(a + b) = cos a cos b - sin a sin b."""
    g = (np.arange(n) + 0.5) / n
    ax = 2 * np.pi * np.outer(layout.freqs[:, 0], g)  # (K, n) along x
    by = 2 * np.pi * np.outer(layout.freqs[:, 1], g) + layout.phases[:, None]  # (K, n) along y
    w = layout.amps[:, None]
    return (np.cos(by) * w).T @ np.cos(ax) - (np.sin(by) * w).T @ np.sin(ax)


def make_layout(seed: int, label: int, target_frac: float, n_decoys: int, density: float) -> Layout:
    """The slide's layout from ``seed`` and ``label`` alone (see the module docstring); arguments trusted."""
    rng = np.random.default_rng([seed, 7])
    k = 24
    radius = rng.uniform(1.5, 14.0, k)
    theta = rng.uniform(0, 2 * np.pi, k)
    freqs = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
    amps = 1.0 / radius
    amps /= amps.sum() / 2.0
    lay = Layout(label, freqs, rng.uniform(0, 2 * np.pi, k), amps, np.zeros((0, 6)))

    def in_tissue(p: np.ndarray, margin: float = 0.0) -> np.ndarray:
        return _field(lay, p[:, 0], p[:, 1]) > LUMEN + margin

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


def render(lay: Layout, size: int, basis: np.ndarray, background: Sequence[float], blur: float, noise: float,
           noise_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 (size, size, 3) image and the bool evidence mask of a layout seen through a site's optics.

    ``basis``: (stain, rgb) optical densities per unit concentration (stain vectors times the site's strengths);
    ``background``: ``I0`` per RGB channel; ``blur``: Gaussian sigma in px of a 512-px slide; ``noise``: sensor
    noise std in grey levels, drawn from ``noise_seed``.
    """
    grid = min(size, 256)  # the texture is smooth (< 15 cycles per side): evaluate coarse, then interpolate
    tex = _field_grid(lay, grid)
    if grid != size:
        tex = cv2.resize(tex.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    tissue = np.clip((tex - LUMEN) / 0.1, 0.0, 1.0)  # soft lumen edges
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
    od = conc.reshape(3, -1).T @ basis.astype(np.float32)  # (pixels, rgb) optical density, base 10
    img = (np.exp(-np.log(10.0) * od) * np.asarray(background, dtype=np.float32)).reshape(size, size, 3)
    sigma = blur * size / 512
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma)
    rng = np.random.default_rng(noise_seed)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask > 0.5


def ellipse_boxes(ellipses: Sequence[tuple[float, float, float, float]], size: int) -> np.ndarray:
    """Pixel ``x0, y0, x1, y1`` boxes of normalised ellipses ``(cx, cy, rx, ry)``, clipped to the image."""
    out = np.asarray([(cx - rx, cy - ry, cx + rx, cy + ry) for cx, cy, rx, ry in ellipses], dtype=np.float64)
    return (np.clip(out.reshape(-1, 4), 0.0, 1.0) * size).astype(np.float32)


