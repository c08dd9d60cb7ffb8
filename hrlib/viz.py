"""Figures for the course: image grids with titles, box overlays, side-by-side resolution comparisons.

Every function returns the matplotlib ``Figure`` (notebooks display it; scripts can ``savefig`` it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from hrlib.data import downscale


def _check_image(name: str, image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in
                                                                          (1, 3, 4)):
        raise ValueError(f"{name} must be an HxW or HxWxC (C in 1, 3, 4) numpy array, got "
                         f"{type(image).__name__} with shape {getattr(image, 'shape', None)}")
    return image


def crop_box(image: np.ndarray, box: Sequence[float], pad: float = 0.0) -> np.ndarray:
    """The region of ``image`` inside ``box`` (``x0, y0, x1, y1`` pixels) grown by ``pad`` x its size per side.

    The region is clipped to the image and always keeps at least one pixel.
    """
    _check_image("image", image)
    if len(box) != 4:
        raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    gx, gy = (x1 - x0) * pad, (y1 - y0) * pad
    c0, r0 = min(w - 1, max(0, int(x0 - gx))), min(h - 1, max(0, int(y0 - gy)))
    c1, r1 = max(c0 + 1, min(w, int(np.ceil(x1 + gx)))), max(r0 + 1, min(h, int(np.ceil(y1 + gy))))
    return image[r0:r1, c0:c1]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], floatfmt: str = ".3g") -> str:
    """A Markdown table (show it with ``IPython.display.Markdown``); floats are formatted with ``floatfmt``."""
    def cell(v: object) -> str:
        return format(v, floatfmt) if isinstance(v, float | np.floating) else str(v)

    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"rows[{i}] has {len(row)} cells, expected {len(headers)} (one per header)")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_spread(values: Sequence[float], fmt: str = ".2f") -> str:
    """``"mean ± std"`` of ``values`` (population std; several seeds' results), e.g. ``"0.91 ± 0.02"``."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("values must contain at least one number")
    return f"{format(arr.mean(), fmt)} ± {format(arr.std(), fmt)}"


def draw_boxes(ax: Axes, boxes: np.ndarray, color: str = "lime", label: str | None = None,
               linewidth: float = 1.5) -> None:
    """Draw ``x0, y0, x1, y1`` pixel boxes on an axes that shows an image (pixel centres at integers)."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color,
                               linewidth=linewidth, label=label if i == 0 else None))


def show_images(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, *, ncols: int = 4,
                boxes: Sequence[np.ndarray | None] | None = None, box_color: str = "lime", size: float = 3.0,
                suptitle: str | None = None, cmap: str = "gray") -> Figure:
    """A grid of images with titles and optional box overlays.

    Args:
        images: HxW or HxWxC arrays (uint8, or float in [0, 1]).
        titles: one per image.
        ncols: images per row.
        boxes: optional (N, 4) pixel boxes per image (``None`` for none).
        size: inches per panel.
    """
    if len(images) == 0:
        raise ValueError("images must contain at least one image")
    for i, im in enumerate(images):
        _check_image(f"images[{i}]", im)
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles must have one entry per image ({len(images)}), got {len(titles)}")
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"boxes must have one entry per image ({len(images)}), got {len(boxes)}")
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= len(images):
            continue
        ax.imshow(images[i], cmap=cmap if images[i].ndim == 2 else None, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        if boxes is not None and boxes[i] is not None:
            draw_boxes(ax, boxes[i], color=box_color)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def compare_resolutions(image: np.ndarray, factors: Sequence[int] = (1, 2, 4, 8), *,
                        box: Sequence[float] | None = None, pad: float = 1.0, size: float = 2.6,
                        title: str | None = None) -> Figure:
    """The same image (or a zoom on one box) at several downsampling factors, side by side.

    Each factor's image is made with area averaging (``hrlib.data.downscale``); when ``box`` is given, every panel
    shows the same region around it (the box grown by ``pad`` times its size on each side), displayed at the same
    on-screen size so that lost detail is visible as blocky pixels.

    Args:
        image: the full-resolution image.
        factors: integer downsampling factors, 1 = original.
        box: optional ``x0, y0, x1, y1`` in full-resolution pixels to zoom on.
    """
    _check_image("image", image)
    if not factors:
        raise ValueError("factors must contain at least one factor")
    fig, axes = plt.subplots(1, len(factors), figsize=(size * len(factors), size + 0.5), squeeze=False)
    for ax, f in zip(axes[0], factors, strict=True):
        small = downscale(image, int(f))
        if box is not None:
            small = crop_box(small, [v / f for v in box], pad)
        ax.imshow(small, interpolation="nearest", cmap="gray" if small.ndim == 2 else None)
        what = "region" if box is not None else "image"
        ax.set_title(f"{'full' if f == 1 else f'1/{f}'}: {what} {small.shape[1]}x{small.shape[0]} px", fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def resolution_slider(image: np.ndarray, factors: Sequence[int] = (1, 2, 4, 8), *, box: Sequence[float] | None = None,
                      pad: float = 1.0, static: bool | None = None, title: str | None = None) -> Any:
    """A slider that scrubs through downsampling factors of ``image`` (or of the region around ``box``).

    Show the result with ``display(...)``. In JupyterLab it is an ipywidgets box (slider + figure).
    Headless (``static=True``, the environment variable
    ``HRLIB_HEADLESS`` set, as when notebooks are executed by tests, or ipywidgets missing) it returns the static
    side-by-side figure of :func:`compare_resolutions` instead, so an exported notebook still shows every step.
    """
    _check_image("image", image)
    factors = [int(f) for f in factors]
    if static is None:
        static = bool(os.environ.get("HRLIB_HEADLESS"))
    try:
        import ipywidgets as widgets
    except ImportError:  # pragma: no cover - the course extra installs it
        static = True
    if static:
        fig = compare_resolutions(image, factors, box=box, pad=pad, title=title)
        plt.close(fig)  # shown once by the caller's display(), not again by the inline backend
        return fig
    slider = widgets.SelectionSlider(options=[("full" if f == 1 else f"1/{f}", f) for f in factors], value=factors[0],
                                     description="scale", continuous_update=False)
    out = widgets.Output()

    def draw(_change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            compare_resolutions(image, [slider.value], box=box, pad=pad, size=4.0, title=title)
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, out])
