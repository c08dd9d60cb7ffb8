"""Augmentation strength (lesson 02, claim C33): an explorer with sliders for a few transforms' strengths over a
grid of augmented draws (a static figure instead when headless, ``HRLIB_HEADLESS``, or without ipywidgets), and the
"many strong transforms" stack that C33 warns against (train with it through
``hrlib.staging.FixedSchedule.from_steps``).

Strengths are in each transform's own units (``STRENGTHS``); 0 switches a transform off, so an all-zero setting
shows the image unchanged. Randomness comes from ``seed`` only: the same settings draw the same grid.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from hrlib._checks import check_float, check_floats, check_image, check_int
from hrlib.augment.local import NonOverlappingCutout, mean_fill

__all__ = ["STRENGTHS", "explorer", "strength_grid", "strength_pipeline", "strength_stack", "strength_sweep"]

# name -> (unit shown on the slider, maximum, default)
STRENGTHS: dict[str, tuple[str, float, float]] = {
    "rotate": ("max degrees", 90.0, 15.0),
    "elastic": ("alpha (px)", 200.0, 0.0),
    "gridmask": ("dropped share", 0.7, 0.3),
    "cutout": ("holes of 5 % side", 12.0, 4.0),
    "erasing": ("max area share", 0.4, 0.0),
}


def _check_strengths(strengths: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(strengths, Mapping):
        raise TypeError(f"strengths must be a mapping {{name: strength}}, got {type(strengths).__name__}")
    unknown = sorted(set(strengths) - set(STRENGTHS))
    if unknown:
        raise ValueError(f"strengths must use the names {sorted(STRENGTHS)}, got unknown {unknown}")
    return {k: check_float(f"strengths[{k!r}]", v, 0.0, STRENGTHS[k][1]) for k, v in strengths.items()}


def strength_pipeline(strengths: Mapping[str, float], resolution: int, *, seed: int = 0) -> A.Compose:
    """Every transform with a non-zero strength, each always applied, in the order rotate, elastic, gridmask, cutout,
    erasing; holes in the slides' mean colour.

    Args:
        strengths: ``{name: strength}`` with names from ``STRENGTHS``, each within ``[0, its maximum]`` in its own
            units; missing names are off.
        resolution: the image side in px (>= 8; sets the hole sizes).
        seed: the Compose's seed (>= 0).

    Returns:
        The albumentations ``Compose`` (uint8 image in, uint8 image out).
    """
    s, resolution = _check_strengths(strengths), check_int("resolution", resolution, 8)
    fill, steps = mean_fill(), []
    if s.get("rotate", 0) > 0:
        steps.append(A.Rotate(limit=s["rotate"], border_mode=cv2.BORDER_REFLECT_101, p=1.0))
    if s.get("elastic", 0) > 0:
        steps.append(A.ElasticTransform(alpha=s["elastic"] * resolution / 256, sigma=max(1.0, 8 * resolution / 256),
                                          border_mode=cv2.BORDER_REFLECT_101, p=1.0))
    if s.get("gridmask", 0) > 0:
        unit = (max(2, round(0.08 * resolution)), max(3, round(0.16 * resolution)))
        steps.append(A.GridDropout(ratio=s["gridmask"], unit_size_range=unit, fill=fill, p=1.0))
    if round(s.get("cutout", 0)) > 0:
        n = round(s["cutout"])
        steps.append(NonOverlappingCutout(num_holes_range=(n, n), hole_height_range=(0.05, 0.05),
                                          hole_width_range=(0.05, 0.05), fill=fill, p=1.0))
    if s.get("erasing", 0) > 0:
        steps.append(A.Erasing(scale=(min(0.02, s["erasing"]), s["erasing"]), ratio=(0.5, 2.0), fill=fill, p=1.0))
    return A.Compose(steps, seed=check_int("seed", seed, 0))


def _check_image(image: object) -> np.ndarray:
    """An HxWx3 uint8 RGB image of at least 8 x 8 px (raises naming ``image``)."""
    return check_image("image", image, channels=(3,), gray=False, min_side=8)


def strength_grid(image: np.ndarray, strengths: Mapping[str, float], *, n: int = 4, seed: int = 0,
                  size: float = 2.4) -> Figure:
    """``n`` draws of :func:`strength_pipeline` on ``image`` side by side (the first panel is the original).

    Args:
        image: HxWx3 uint8 RGB, at least 8 x 8 px.
        strengths: as in :func:`strength_pipeline`.
        n: draws (>= 1).
        seed: the pipeline's seed (>= 0).
        size: panel side in inches (> 0).

    Returns:
        The figure.
    """
    image, n = _check_image(image), check_int("n", n)
    size = check_float("size", size, 0.0, low_open=True, hint="panel side in inches")
    t = strength_pipeline(strengths, min(image.shape[:2]), seed=seed)
    fig, axes = plt.subplots(1, n + 1, figsize=(size * (n + 1), size + 0.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(image if i == 0 else t(image=image)["image"], interpolation="nearest")
        ax.set_title("original" if i == 0 else f"draw {i}", fontsize=9)
        ax.set_axis_off()
    on = ", ".join(f"{k} {v:g}" for k, v in _check_strengths(strengths).items() if v > 0) or "all off"
    fig.suptitle(f"Augmented at: {on}", fontsize=10)
    fig.tight_layout()
    return fig


def strength_sweep(image: np.ndarray, levels: Sequence[float] = (0.0, 0.5, 1.0), *, seed: int = 0,
                   size: float = 1.5) -> Figure:
    """The static view: one row per transform, one column per strength level.

    Args:
        image: HxWx3 uint8 RGB, at least 8 x 8 px.
        levels: strengths as fractions in [0, 1] of each transform's maximum.
        seed: the pipelines' seed (>= 0).
        size: panel side in inches (> 0).

    Returns:
        The figure.
    """
    image = _check_image(image)
    levels = check_floats("levels", levels, 0.0, 1.0)
    size = check_float("size", size, 0.0, low_open=True, hint="panel side in inches")
    fig, axes = plt.subplots(len(STRENGTHS), len(levels), figsize=(size * len(levels), size * len(STRENGTHS) + 0.5),
                             squeeze=False)
    for row, (name, (unit, top, _)) in zip(axes, STRENGTHS.items(), strict=True):
        for ax, level in zip(row, levels, strict=True):
            value = level * top if name != "cutout" else round(level * top)
            ax.imshow(strength_pipeline({name: value}, min(image.shape[:2]), seed=seed)(image=image)["image"],
                      interpolation="nearest")
            ax.set_title(f"{name} {value:.3g}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(unit, fontsize=7)
    fig.suptitle("Augmentation strength, 0 (left) to the slider's maximum (right)", fontsize=10)
    fig.tight_layout()
    return fig


def explorer(image: np.ndarray, *, n: int = 4, seed: int = 0, static: bool | None = None) -> Any:
    """Sliders for the strengths in ``STRENGTHS`` above a grid of ``n`` augmented draws of ``image``.

    Show it with ``display(...)``. Headless (``static=True``, ``HRLIB_HEADLESS`` set, or ipywidgets missing) it
    returns the static :func:`strength_sweep` figure instead, so an exported notebook still shows every strength.

    Args:
        image: HxWx3 uint8 RGB, at least 8 x 8 px.
        n: draws per setting (>= 1).
        seed: the pipelines' seed (>= 0).
        static: force the static figure (True) or the widget (False); None decides from the environment.

    Returns:
        An ipywidgets ``VBox``, or the static figure.
    """
    image, n, seed = _check_image(image), check_int("n", n), check_int("seed", seed, 0)
    if static is not None and not isinstance(static, bool | np.bool_):
        raise TypeError(f"static must be True, False or None, got {type(static).__name__} {static!r}")
    if static is None:
        static = bool(os.environ.get("HRLIB_HEADLESS"))
    try:
        import ipywidgets as widgets
    except ImportError:  # pragma: no cover - the course extra installs it
        static = True
    if static:
        fig = strength_sweep(image, seed=seed)
        plt.close(fig)  # shown once by the caller's display(), not again by the inline backend
        return fig
    sliders = {name: widgets.FloatSlider(value=default, min=0.0, max=top, step=top / 20, description=name,
                                         continuous_update=False, tooltip=unit)
               for name, (unit, top, default) in STRENGTHS.items()}
    out = widgets.Output()

    def draw(_change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            strength_grid(image, {k: s.value for k, s in sliders.items()}, n=n, seed=seed)
            plt.show()

    for s in sliders.values():
        s.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox(list(sliders.values())[:3]), widgets.HBox(list(sliders.values())[3:]), out])


def strength_stack(resolution: int) -> list[A.BasicTransform]:
    """Nine strong transforms stacked, each likely to run (what C33 warns against).

    Rotation up to 90 degrees, affine scale 0.7-1.3 with shear, elastic warping, strong colour jitter (hue
    included), blur, noise, GridMask at half a unit, 4-8 CutOut holes of 8-12 % of the side and erasing of 10-30 %
    of the area; holes in the slides' mean colour.

    Args:
        resolution: the images' side in px (>= 8).

    Returns:
        The list of transforms (uint8 in, uint8 out; for ``FixedSchedule.from_steps``).
    """
    r, fill, reflect = check_int("resolution", resolution, 8), mean_fill(), cv2.BORDER_REFLECT_101
    unit = (max(2, round(0.08 * r)), max(3, round(0.16 * r)))
    return [A.Rotate(limit=90, border_mode=reflect, p=0.8),
            A.Affine(scale=(0.7, 1.3), shear=(-15, 15), border_mode=reflect, p=0.8),
            A.ElasticTransform(alpha=r / 2, sigma=r / 32, border_mode=reflect, p=0.5),
            A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8),
            A.GaussianBlur(sigma_limit=(0.5, 2.0), p=0.5), A.GaussNoise(std_range=(0.03, 0.1), p=0.5),
            A.GridDropout(ratio=0.5, unit_size_range=unit, fill=fill, p=0.5),
            NonOverlappingCutout(num_holes_range=(4, 8), hole_height_range=(0.08, 0.12),
                                 hole_width_range=(0.08, 0.12), fill=fill, p=0.5),
            A.Erasing(scale=(0.1, 0.3), ratio=(0.5, 2.0), fill=fill, p=0.5)]
