"""Text-like pages whose class is the glyphs' aspect ratio (lesson 03, claim C10): plain resizing to a square
distorts it (a wide page of extended glyphs looks condensed), letterboxing keeps it."""

from __future__ import annotations

import cv2
import numpy as np

from hrlib._checks import check_float
from hrlib.data._sample import Sample, box, grid, start, to_uint8

__all__ = ["DOCUMENT_CLASSES", "GLYPH_ASPECTS", "make_document"]

DOCUMENT_CLASSES: tuple[str, ...] = ("condensed", "extended")
GLYPH_ASPECTS: tuple[float, float] = (1.8, 0.6)  # glyph height / width of each document class (+-10 % per page)

# glyph strokes on a 3x3 grid of anchors (fx, fy in {0, 0.5, 1}): the 12 grid edges and 8 cell diagonals
_ANCHORS = [(i / 2, j / 2) for j in range(3) for i in range(3)]
_EDGES = [(a, b) for a in range(9) for b in range(a + 1, 9)
          if abs(_ANCHORS[a][0] - _ANCHORS[b][0]) <= 0.5 and abs(_ANCHORS[a][1] - _ANCHORS[b][1]) <= 0.5]
_STEMS = [((f, 0.0), (f, 1.0)) for f in (0.0, 0.5, 1.0)]
_BARS = [((0.0, f), (1.0, f)) for f in (0.0, 0.5, 1.0)] + [((0.0, 0.0), (1.0, 1.0)), ((0.0, 1.0), (1.0, 0.0))]


def _glyph_lines(rng: np.random.Generator, height: int, width: int, n_lines: int, gh: float,
                 gw: float) -> tuple[list[np.ndarray], list[int]]:
    """Each glyph's strokes (polylines in page px) and the line each stroke belongs to, word gaps included."""
    pitch, strokes, line_of = 0.8 * height / n_lines, [], []
    for i in range(n_lines):
        top, x = 0.1 * height + i * pitch + 0.5 * (pitch - gh), rng.uniform(0.3, 1.0) * gw
        end = width - rng.uniform(0.3, 1.0) * gw - (rng.uniform(0, 0.4) * width if i == n_lines - 1 else 0)
        while x + gw <= end:
            parts = [_STEMS[rng.integers(3)], _BARS[rng.integers(5)]]
            parts += [(_ANCHORS[a], _ANCHORS[b]) for a, b in (_EDGES[j] for j in rng.integers(0, 20, rng.integers(3)))]
            strokes += [np.array([[x + p[0] * gw, top + p[1] * gh] for p in part]) for part in parts]
            line_of += [i] * len(parts)
            x += gw * (1.35 + (rng.uniform(0.6, 1.2) if rng.random() < 0.2 else 0.0))  # word gap
    return strokes, line_of


def _line_boxes(mask: np.ndarray, line_of: list[int], n_lines: int) -> np.ndarray:
    """One box per text line: the bounding box of its ink, in its band of rows (the last band runs to the bottom:
    on small pages a thick stroke can reach past it)."""
    height, pitch, boxes = mask.shape[0], 0.8 * mask.shape[0] / n_lines, []
    for i in sorted(set(line_of)):
        y0 = int(0.1 * height + i * pitch)
        y1 = int(0.1 * height + (i + 1) * pitch) if i < n_lines - 1 else height
        boxes.append(box(mask[y0:y1]) + np.float32([0, y0, 0, y0]))
    return np.concatenate(boxes + [np.zeros((0, 4), np.float32)])


def make_document(height: int | None = None, *, aspect: float | None = None, label: int | None = None,
                  seed: int = 0, aspect_range: tuple[float, float] = (1.0, 4.0)) -> Sample:
    """A text-like page: (height, round(height * aspect)) uint8 grayscale, dark glyph strokes on light paper.

    2-3 lines of block glyphs (a full-height stem, a full-width bar and 0-2 short strokes each, so every glyph's ink
    spans its box). The class is the glyphs' height / width (``GLYPH_ASPECTS``: ``condensed`` 1.8, ``extended``
    0.6, +-10 % per page). A page is a horizontally scaled page of square glyphs (strokes, gaps and margins
    included), so squeezing a page of aspect ``a`` into a square gives exactly the look of glyph aspect
    ``glyph_aspect * a``: after a plain resize only that product is visible, and the classes overlap (an extended
    page of aspect 3 looks condensed); ``aspect_range`` sets how much.
    Boxes: one per text line (the bounding box of its ink); mask: the ink. ``meta``: ``aspect`` (width / height,
    after rounding), ``glyph_aspect`` (the page's glyph height / width), ``glyph_height`` (px).

    Args:
        height, label, seed: page height in px (>= 32, default 64 fast / 256 full), index into ``DOCUMENT_CLASSES``
            (``None``: drawn from the seed), and the seed (>= 0) that fixes everything.
        aspect: page width / height in [0.25, 8]; ``None`` draws it uniformly from ``aspect_range``,
            a ``(low, high)`` pair with 0.25 <= low <= high <= 8.

    Returns:
        The :class:`Sample`.
    """
    height, label, rng = start(height, 64, label, seed, DOCUMENT_CLASSES, name="height")
    if not (isinstance(aspect_range, tuple | list) and len(aspect_range) == 2 and all(
            isinstance(v, int | float) for v in aspect_range) and 0.25 <= aspect_range[0] <= aspect_range[1] <= 8):
        raise ValueError(f"aspect_range must be (low, high) with 0.25 <= low <= high <= 8, got {aspect_range!r}")
    page_aspect = rng.uniform(*aspect_range)
    if aspect is not None:
        page_aspect = check_float("aspect", aspect, 0.25, 8.0, hint="page width / height")
    width = max(1, round(height * page_aspect))
    glyph_aspect = GLYPH_ASPECTS[label] * rng.uniform(0.9, 1.1)
    n_lines = int(rng.integers(2, 4))
    gh = 0.8 * height / n_lines * rng.uniform(0.55, 0.7)
    strokes, line_of = _glyph_lines(rng, height, width, n_lines, gh, gh / glyph_aspect)
    # draw 2x supersampled on a canvas where glyphs are square, then squeeze it to the page: a glyph is an
    # anisotropically scaled square glyph (stems thin with it), so a plain resize of the page mimics another class
    scale = np.array([2 * glyph_aspect, 2.0])
    canvas = np.zeros((2 * height, int(np.ceil(2 * width * glyph_aspect))), np.uint8)
    cv2.polylines(canvas, [np.rint(s * scale * 16).astype(np.int32) for s in strokes], False, 255,
                  max(1, round(2 * gh * 0.13)), cv2.LINE_AA, shift=4)
    ink = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    mask = ink > 127
    x, y = grid(height, width)
    paper = rng.uniform(0.86, 0.96) + 0.03 * (x / max(page_aspect, 1e-6) - 0.5) * rng.uniform(-1, 1)
    image = paper - (paper - rng.uniform(0.1, 0.3)) * ink.astype(np.float32) / 255
    image = to_uint8(image + 0.012 * rng.standard_normal((height, width), dtype=np.float32))
    meta = {"aspect": width / height, "glyph_aspect": float(glyph_aspect), "glyph_height": float(gh)}
    return Sample(image, label, _line_boxes(mask, line_of, n_lines), mask, meta)
