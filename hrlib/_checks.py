"""Input validation shared by hrlib's public functions: one validator per concept.

Each raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong value) with a message that
names the argument, what was expected and what came. Validation happens at the public edge, never inside a
module's ``forward``: internals trust their inputs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int; raise ``TypeError``/``ValueError`` naming ``name`` unless an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value: object, low: float = -math.inf, high: float = math.inf, *,
                low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """Return ``value`` as a finite float within the bounds; raise ``TypeError``/``ValueError`` naming ``name``.

    ``low_open``/``high_open`` exclude the bound itself; ``hint`` (what the number means) is added to the message.
    """
    if low > -math.inf and high < math.inf:
        want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low > -math.inf:
        want = f"{'>' if low_open else '>='} {low:g}"
    elif high < math.inf:
        want = f"{'<' if high_open else '<='} {high:g}"
    else:
        want = ""
    what = f"{name} must be a finite float {want}".rstrip() + (f" ({hint})" if hint else "")
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{what}, got {type(value).__name__} {value!r}")
    v = float(value)
    if not (math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)):
        raise ValueError(f"{what}, got {value!r}")
    return v


def check_bool(name: str, value: object, *, allow_none: bool = False) -> bool | None:
    """Return ``value`` if it is a bool (or None when ``allow_none``); raise ``TypeError`` naming ``name``.

    A truthy string such as ``"no"`` would silently mean True, so only real bools are accepted.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False{' or None' if allow_none else ''}, "
                        f"got {type(value).__name__} {value!r:.60}")
    return bool(value)


def check_path(name: str, value: object) -> Path:
    """Return ``value`` as a ``Path``; raise ``TypeError`` naming ``name`` unless it is a str or os.PathLike."""
    if not isinstance(value, str | os.PathLike) or value == "":
        what = "an empty string" if value == "" else f"{type(value).__name__} {value!r:.60}"
        raise TypeError(f"{name} must be a file or folder path (a non-empty str or os.PathLike), got {what}")
    return Path(value)


def check_model(name: str, value: object) -> nn.Module:
    """Return ``value`` if it is a ``torch.nn.Module``; raise ``TypeError`` naming ``name`` otherwise."""
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")
    return value


def check_device(name: str, value: object) -> torch.device:
    """Return ``value`` as a ``torch.device``: a device, a type such as ``"cpu"``/``"cuda"``/``"mps"``, or None
    for :func:`resolve_device`'s choice; raise ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, torch.device):
        return value
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a torch.device, 'cpu', 'cuda', 'mps' or None, got {type(value).__name__} "
                        f"{value!r}")
    try:
        return resolve_device(value)
    except ValueError as e:
        raise ValueError(f"{name} must be an available device ('cpu', 'cuda', 'mps') or None, got {value!r} "
                         f"({e})") from e


def resolve_device(prefer: str | None = None) -> torch.device:
    """The device to compute on (``hrlib.config.get_device``): CUDA if available, else Apple MPS, else CPU.

    Args:
        prefer: force a device type (``"cpu"``, ``"cuda"``, ``"mps"``); ``HRLIB_DEVICE`` does the same from the
            environment. A preferred device that is not available raises ``ValueError``.
    """
    if prefer is not None and not isinstance(prefer, str):
        raise TypeError(f"prefer must be a device type ('cpu', 'cuda', 'mps') or None, got {type(prefer).__name__} "
                        f"{prefer!r}")
    source = "prefer" if prefer else "HRLIB_DEVICE"
    choice = (prefer or os.environ.get("HRLIB_DEVICE", "")).strip().lower()
    if choice:
        available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
        if choice not in available:
            raise ValueError(f"{source} must name a device type, one of {sorted(available)}, got {choice!r}")
        if not available[choice]:
            raise ValueError(f"{source} requested device {choice!r}, which is not available on this machine")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device(torch.cuda.current_device())
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _shape_text(value: object) -> str:
    if isinstance(value, np.ndarray | torch.Tensor):
        return f"{value.dtype} with shape {tuple(value.shape)}"
    return type(value).__name__


def check_image(name: str, value: object, *, channels: Sequence[int] | None = (1, 3, 4), gray: bool = True,
                dtype: str = "uint8", min_side: int = 1) -> np.ndarray:
    """Return ``value`` if it is a numpy image; raise ``TypeError``/``ValueError`` naming ``name`` otherwise.

    Args:
        name: the argument's name, for the message.
        value: the candidate, HxW or HxWxC (channels last).
        channels: allowed channel counts of an HxWxC image (None: any >= 1).
        gray: whether an HxW image (no channel axis) is allowed.
        dtype: ``"uint8"`` (0-255 pixels) or ``"numeric"`` (any bool, int or finite float dtype).
        min_side: the smallest allowed height and width, in pixels.

    Returns:
        ``value`` unchanged.

    Raises:
        TypeError: ``value`` is not a numpy array.
        ValueError: wrong dtype, number of dimensions, channel count, size or non-finite values.
    """
    shapes = (["HxW"] if gray else []) + ["HxWxC" + (f" (C in {', '.join(map(str, channels))})" if channels else "")]
    what = f"{name} must be a{'n' if dtype == 'uint8' else ''} {' or '.join(shapes)} " \
           f"{'uint8' if dtype == 'uint8' else 'numeric'} numpy array with sides >= {min_side}"
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what}, got {_shape_text(value)}")
    ok_dtype = value.dtype == np.uint8 if dtype == "uint8" else value.dtype.kind in "biuf"
    ok_shape = (value.ndim == 2 and gray) or (value.ndim == 3 and (
        value.shape[2] in channels if channels else value.shape[2] >= 1))
    if not ok_dtype or not ok_shape or min(value.shape[:2], default=0) < min_side:
        raise ValueError(f"{what}, got {_shape_text(value)}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ValueError(f"{name} must hold finite values, got NaN or inf")
    return value


def check_batch(name: str, value: object, *, channels: int | None = None, min_pixels: int = 1,
                finite: bool = True) -> torch.Tensor:
    """Return ``value`` if it is a float (N, C, H, W) tensor with N >= 1; raise naming ``name`` otherwise.

    Args:
        name: the argument's name, for the message.
        value: the candidate batch, NCHW float.
        channels: the required C (None: any).
        min_pixels: the smallest allowed H * W (2 where a standard deviation over pixels is taken).
        finite: also refuse NaN and inf (a scan of the tensor: keep it out of hot loops).

    Returns:
        ``value`` unchanged.

    Raises:
        TypeError: ``value`` is not a tensor.
        ValueError: wrong dtype, shape, channel count or non-finite values.
    """
    c = "C" if channels is None else str(channels)
    what = f"{name} must be a float tensor (N, {c}, H, W) with N >= 1" + (
        f" and H * W >= {min_pixels}" if min_pixels > 1 else "")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what}, got {_shape_text(value)}")
    if value.ndim != 4 or not value.is_floating_point() or value.shape[0] == 0 or (
            channels is not None and value.shape[1] != channels) or value.shape[2] * value.shape[3] < min_pixels:
        raise ValueError(f"{what}, got {_shape_text(value)}")
    if finite and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must hold finite values, got NaN or inf")
    return value


def check_axes(name: str, value: object, *, allow_none: bool = False) -> object:
    """Return ``value`` if it is a matplotlib ``Axes`` (or None when ``allow_none``); raise ``TypeError`` naming
    ``name`` otherwise.

    Args:
        name: the argument's name, for the message.
        value: the candidate axes to draw on.
        allow_none: whether None (the caller makes its own figure) is allowed.

    Returns:
        ``value`` unchanged.

    Raises:
        TypeError: ``value`` is not an ``Axes`` (nor an allowed None).
    """
    from matplotlib.axes import Axes  # here, so that importing hrlib._checks does not load matplotlib

    if not (isinstance(value, Axes) or (value is None and allow_none)):
        raise TypeError(f"{name} must be a matplotlib Axes{' or None' if allow_none else ''}, "
                        f"got {type(value).__name__}")
    return value


def check_floats(name: str, value: object, low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
                 length: int | None = None) -> tuple[float, ...]:
    """Return ``value`` as a tuple of finite floats within the bounds (e.g. a per-channel mean or std).

    Args:
        name: the argument's name, for the message (an element is named ``name[i]``).
        value: the candidate, a non-empty sequence of numbers (a str is not one).
        low, high: bounds of every element; ``low_open`` excludes ``low`` itself (std > 0).
        length: the required number of elements (None: any >= 1).

    Returns:
        The elements as floats.

    Raises:
        TypeError: ``value`` is not a non-empty sequence, or an element is not a number.
        ValueError: wrong length, or an element out of bounds, NaN or infinite.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray) or len(value) == 0:
        raise TypeError(f"{name} must be a non-empty sequence of floats, got {type(value).__name__} {value!r:.60}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} values, got {len(value)}: {value!r:.60}")
    out = []
    for i, v in enumerate(value):
        try:
            out.append(check_float(f"{name}[{i}]", v, low, high, low_open=low_open))
        except (TypeError, ValueError) as e:  # the message starts with the argument's own name
            raise type(e)(f"{name} has a bad element: {e}") from None
    return tuple(out)


def check_generator(name: str, value: object) -> torch.Generator | None:
    """Return ``value`` if it is a CPU ``torch.Generator`` or None (torch's global RNG); raise naming ``name``.

    Draws of a few numbers per batch happen on the CPU and are moved to the data's device, so a run gives the same
    draws on every device.

    Raises:
        TypeError: ``value`` is neither a ``torch.Generator`` nor None.
        ValueError: the generator is not on the CPU.
    """
    if value is None:
        return None
    if not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(value).__name__} {value!r:.60}")
    if value.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU torch.Generator (its draws are moved to the data's device), "
                         f"got one on {value.device}")
    return value


def check_callable(name: str, value: object, *, allow_none: bool = False, hint: str = "") -> object:
    """Return ``value`` if it is callable (or None when ``allow_none``); raise ``TypeError`` naming ``name``.

    Args:
        name: the argument's name, for the message.
        value: the candidate.
        allow_none: whether None is accepted.
        hint: how it is called, for the message (e.g. ``"progress(iterable)"``).
    """
    if not (callable(value) or (value is None and allow_none)):
        raise TypeError(f"{name} must be callable{f' as {hint}' if hint else ''}{' or None' if allow_none else ''}, "
                        f"got {type(value).__name__} {value!r:.60}")
    return value


def check_dataset(name: str, value: object) -> object:
    """Return ``value`` if it is a non-empty map-style dataset (``__getitem__`` and ``__len__``); raise naming ``name``.

    Args:
        name: the argument's name, for the message.
        value: the candidate, e.g. a ``torch.utils.data.Dataset`` or a list of ``(image, label, ...)`` items.

    Returns:
        ``value`` unchanged.

    Raises:
        TypeError: a str, bytes, mapping, array or tensor (a container, not a dataset of items).
        ValueError: no ``__getitem__``/``__len__``, or empty.
    """
    if isinstance(value, str | bytes | Mapping | np.ndarray | torch.Tensor):
        raise TypeError(f"{name} must be a map-style Dataset of (image, label, ...) items, got {type(value).__name__}")
    if not hasattr(value, "__getitem__") or not hasattr(value, "__len__") or len(value) < 1:  # type: ignore[arg-type]
        size = len(value) if hasattr(value, "__len__") else "?"  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a non-empty map-style Dataset of (image, label, ...), got "
                         f"{type(value).__name__} of length {size}")
    return value


def check_index(name: str, value: object, length: int) -> int:
    """Return ``value`` as an int index into a sequence of ``length`` items; raise naming ``name`` otherwise.

    Args:
        name: the argument's name, for the message.
        value: the candidate index (negative indices are refused).
        length: the number of items.

    Returns:
        ``value`` as an int in ``[0, length)``.

    Raises:
        TypeError: ``value`` is not an int.
        IndexError: ``value`` is outside ``[0, length)``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int index, got {type(value).__name__} {value!r:.60}")
    if not 0 <= value < length:
        raise IndexError(f"{name} must be in [0, {length}), got {value}")
    return int(value)
