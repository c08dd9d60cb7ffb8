"""What the lesson-03 generators share (package-internal): the :class:`Sample` record and small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from hrlib._checks import check_int
from hrlib.config import get_profile

MIN_SIZE = 32  # the smallest side (a document's height) the generators draw


@dataclass(frozen=True)
class Sample:
    """One generated image with its ground truth.

    Attributes:
        image: see each generator.
        label: index into the generator's ``*_CLASSES``.
        boxes: (N, 4) float32 ``x0, y0, x1, y1`` px of the class evidence (the bounding box of ``mask``'s
            evidence), possibly empty.
        mask: (H, W) bool evidence.
        meta: facts about the sample (see each generator).
    """

    image: np.ndarray
    label: int
    boxes: np.ndarray
    mask: np.ndarray | None
    meta: dict[str, float] = field(default_factory=dict)


def start(size: int | None, fast: int, label: int | None, seed: int, classes: tuple[str, ...],
           name: str = "size") -> tuple[int, int, np.random.Generator]:
    """Validate the common arguments; return the size, the label and the layout generator."""
    size = get_profile().pick(fast, 4 * fast) if size is None else check_int(name, size, MIN_SIZE)
    seed = check_int("seed", seed, 0)
    if label is None:
        label = int(np.random.default_rng([seed, 3]).integers(len(classes)))
    else:
        label = check_int("label", label, 0)
        if label >= len(classes):
            raise ValueError(f"label must be in 0..{len(classes) - 1} {classes}, got {label}")
    return size, label, np.random.default_rng([seed, 11])


def box(mask: np.ndarray) -> np.ndarray:
    """The (1, 4) float32 bounding box ``x0, y0, x1, y1`` of a bool mask's pixels ((0, 4) if empty)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return np.zeros((0, 4), np.float32)
    return np.array([[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]], np.float32)


def smooth(rng: np.random.Generator, h: int, w: int, cells: int = 5) -> np.ndarray:
    """A smooth random field of shape (h, w), about unit standard deviation (cubic upsampling of a coarse grid)."""
    return cv2.resize(rng.standard_normal((cells, cells)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates normalised by the height: x (1, w) and y (h, 1)."""
    return ((np.arange(w, dtype=np.float32) + 0.5) / h)[None], ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A 0-1 float image as uint8 grey levels (rounded, clipped)."""
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
