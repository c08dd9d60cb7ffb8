"""Figures and tables for every lesson (00-08): image grids with titles, box overlays, side-by-side resolution
comparisons (lessons 00-01), Markdown tables and ``mean ± std`` cells.

Every figure function returns the matplotlib ``Figure`` (notebooks display it; scripts can ``savefig`` it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from hrlib._checks import check_axes, check_bool, check_float, check_image, check_int
from hrlib.data.slides import downscale

__all__ = ["compare_resolutions", "crop_box", "draw_boxes", "format_table", "interactive_widgets", "mean_spread",
           "resolution_slider", "show_images"]


def _check_box(name: str, box: object) -> tuple[float, float, float, float]:
    if isinstance(box, str | bytes) or not isinstance(box, Sequence | np.ndarray) or len(box) != 4:
        raise ValueError(f"{name} must be (x0, y0, x1, y1), got {box!r}")
    return tuple(check_float(f"{name}[{i}]", v, hint="px") for i, v in enumerate(box))  # type: ignore[return-value]


def _check_format(name: str, fmt: object) -> str:
    try:
        format(1.5, fmt)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a float format spec such as '.3g' or '.2f', got {fmt!r}") from exc
    return fmt  # type: ignore[return-value]


def _check_sequence(name: str, value: object, what: str) -> None:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r:.60}")


def _check_zoom(image: object, factors: object, box: object, pad: object) -> tuple[list[int], float]:
    """Check the arguments of a resolution comparison; return the factors as ints and ``pad`` as a float."""
    check_image("image", image, dtype="numeric")
    _check_sequence("factors", factors, "a non-empty sequence of integer downsampling factors >= 1")
    if len(factors) == 0:  # type: ignore[arg-type]
        raise ValueError("factors must contain at least one factor")
    factors = [check_int(f"factors[{i}]", f) for i, f in enumerate(factors)]  # type: ignore[arg-type]
    if box is not None:
        _check_box("box", box)
    return factors, check_float("pad", pad, 0.0, hint="fraction of the box size per side")


def interactive_widgets(static: bool | None = None) -> ModuleType | None:
    """The ``ipywidgets`` module for an interactive figure, or None where a static figure should be drawn.

    Args:
        static: force a static figure (True) or widgets (False, if installed); default: static when the
            environment variable ``HRLIB_HEADLESS`` is set, as when tests execute notebooks.

    Returns:
        ``ipywidgets``, or None when static (also when ipywidgets is not installed), so that an exported notebook
        still shows every step.

    Raises:
        TypeError: ``static`` is not a bool or None.
    """
    static = check_bool("static", static, allow_none=True)
    if static is None:
        static = bool(os.environ.get("HRLIB_HEADLESS"))
    if static:
        return None
    try:
        import ipywidgets
    except ImportError:  # pragma: no cover - the course extra installs it
        return None
    return ipywidgets


def crop_box(image: np.ndarray, box: Sequence[float], pad: float = 0.0) -> np.ndarray:
    """The region of ``image`` inside a box, grown on each side.

    Args:
        image: HxW or HxWxC numeric array.
        box: ``x0, y0, x1, y1``, px.
        pad: growth per side, as a fraction of the box's size, >= 0.

    Returns:
        A view of the region, clipped to the image; it always keeps at least one pixel.

    Raises:
        TypeError, ValueError: a malformed argument.
    """
    check_image("image", image, dtype="numeric")
    x0, y0, x1, y1 = _check_box("box", box)
    pad = check_float("pad", pad, 0.0, hint="fraction of the box size per side")
    h, w = image.shape[:2]
    gx, gy = (x1 - x0) * pad, (y1 - y0) * pad
    c0, r0 = min(w - 1, max(0, int(x0 - gx))), min(h - 1, max(0, int(y0 - gy)))
    c1, r1 = max(c0 + 1, min(w, int(np.ceil(x1 + gx)))), max(r0 + 1, min(h, int(np.ceil(y1 + gy))))
    return image[r0:r1, c0:c1]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], floatfmt: str = ".3g") -> str:
    """A Markdown table (show it with ``IPython.display.Markdown``).

    Args:
        headers: the column names.
        rows: the rows, one cell per header.
        floatfmt: the format spec of float cells, e.g. ``".3g"``.

    Returns:
        The table's Markdown text.

    Raises:
        TypeError, ValueError: malformed headers or rows, a row of the wrong length, a bad format spec.
    """
    def cell(v: object) -> str:
        return format(v, floatfmt) if isinstance(v, float | np.floating) else str(v)

    _check_sequence("headers", headers, "a sequence of column names")
    _check_sequence("rows", rows, "a sequence of rows (sequences of cells)")
    floatfmt = _check_format("floatfmt", floatfmt)
    headers = [str(h) for h in headers]
    for i, row in enumerate(rows):
        _check_sequence(f"rows[{i}]", row, "a sequence of cells")
        if len(row) != len(headers):
            raise ValueError(f"rows[{i}] has {len(row)} cells, expected {len(headers)} (one per header)")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_spread(values: Sequence[float], fmt: str = ".2f") -> str:
    """``"mean ± std"`` of several seeds' results, e.g. ``"0.91 ± 0.02"``.

    Args:
        values: one or more numbers (the std is the population std).
        fmt: the format spec of both numbers, e.g. ``".2f"``.

    Returns:
        The text.

    Raises:
        TypeError, ValueError: no numbers, or a bad format spec.
    """
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"values must be a sequence of numbers, got {values!r:.60}") from exc
    fmt = _check_format("fmt", fmt)
    if arr.ndim != 1:
        raise ValueError(f"values must be a 1-D sequence of numbers, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("values must contain at least one number")
    return f"{format(arr.mean(), fmt)} ± {format(arr.std(), fmt)}"


def draw_boxes(ax: Axes, boxes: np.ndarray, color: str = "lime", label: str | None = None,
               linewidth: float = 1.5) -> None:
    """Draw boxes on an axes that shows an image (pixel centres at integers).

    Args:
        ax: the axes.
        boxes: (N, 4) ``x0, y0, x1, y1``, px (one box may be given as 4 numbers).
        color: a matplotlib colour.
        label: the legend label (given to the first box only), or None.
        linewidth: points, >= 0.

    Raises:
        TypeError, ValueError: a malformed argument.
    """
    check_axes("ax", ax)
    try:
        arr = np.asarray(boxes, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"boxes must be an (N, 4) array of x0, y0, x1, y1 px, got {boxes!r:.60}") from exc
    if arr.size % 4 or arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 4) or not np.isfinite(arr).all():
        raise ValueError(f"boxes must be an (N, 4) array of finite x0, y0, x1, y1 px, got shape {arr.shape}")
    boxes = arr.reshape(-1, 4)
    linewidth = check_float("linewidth", linewidth, 0.0, hint="points")
    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be a str or None, got {type(label).__name__}")
    from matplotlib.colors import is_color_like

    if not is_color_like(color):
        raise ValueError(f"color must be a matplotlib colour, got {color!r}")
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color,
                               linewidth=linewidth, label=label if i == 0 else None))


def show_images(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, *, ncols: int = 4,
                boxes: Sequence[np.ndarray | None] | None = None, box_color: str = "lime", size: float = 3.0,
                suptitle: str | None = None, cmap: str = "gray") -> Figure:
    """A grid of images with titles and optional box overlays.

    Args:
        images: HxW or HxWxC arrays (uint8, or float in [0, 1]).
        titles: one per image, or None.
        ncols: images per row, >= 1.
        boxes: optional (N, 4) pixel boxes per image (``None`` for none).
        box_color: the boxes' matplotlib colour.
        size: inches per panel, > 0.
        suptitle: the figure's title, or None.
        cmap: the colormap of single-channel images.

    Returns:
        The figure.

    Raises:
        TypeError, ValueError: a malformed argument, or not one title and box array per image.
    """
    _check_sequence("images", images, "a non-empty sequence of HxW or HxWxC arrays")
    if len(images) == 0:
        raise ValueError("images must contain at least one image")
    for i, im in enumerate(images):
        check_image(f"images[{i}]", im, dtype="numeric")
    if titles is not None:
        _check_sequence("titles", titles, "a sequence of str (one per image) or None")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles must have one entry per image ({len(images)}), got {len(titles)}")
    if boxes is not None:
        _check_sequence("boxes", boxes, "a sequence of (N, 4) box arrays (or None), one per image, or None")
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"boxes must have one entry per image ({len(images)}), got {len(boxes)}")
    ncols = max(1, min(check_int("ncols", ncols), len(images)))
    size = check_float("size", size, 0.0, low_open=True, hint="inches per panel")
    if cmap not in plt.colormaps():
        raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}")
    from matplotlib.colors import is_color_like

    if not is_color_like(box_color):
        raise ValueError(f"box_color must be a matplotlib colour, got {box_color!r}")
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

    Each factor's image is made with area averaging (``hrlib.data.slides.downscale``); when ``box`` is given, every
    panel shows the same region around it, displayed at the same on-screen size so that lost detail is visible as
    blocky pixels.

    Args:
        image: the full-resolution image.
        factors: integer downsampling factors, 1 = original.
        box: optional ``x0, y0, x1, y1`` in full-resolution pixels to zoom on.
        pad: the zoomed region's growth per side, as a fraction of the box's size, >= 0.
        size: inches per panel, > 0.
        title: the figure's title, or None.

    Returns:
        The figure.

    Raises:
        TypeError, ValueError: a malformed argument.
    """
    factors, pad = _check_zoom(image, factors, box, pad)
    size = check_float("size", size, 0.0, low_open=True, hint="inches per panel")
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

    Show the result with ``display(...)``.

    Args:
        image, factors, box, pad, title: as in :func:`compare_resolutions`.
        static: return the static figure; as in :func:`interactive_widgets`.

    Returns:
        In JupyterLab an ipywidgets box (slider + figure); headless, or without ipywidgets, the static
        side-by-side figure of :func:`compare_resolutions`, so an exported notebook still shows every step.

    Raises:
        TypeError, ValueError: a malformed argument.
    """
    factors, pad = _check_zoom(image, factors, box, pad)
    widgets = interactive_widgets(static)
    if widgets is None:
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
