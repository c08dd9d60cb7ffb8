"""Input validation shared by hrlib's public functions (errors name the argument, what was expected and what came),
and :func:`atomic_write`, the one file-writing helper two modules share."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


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


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], mode: str = "w") -> Path:
    """Call ``write`` on a temp file next to ``path``, then ``os.replace`` it: no partial file on failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


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
        raise TypeError(f"{name} must be a file or folder path (str or os.PathLike), "
                        f"got {type(value).__name__} {value!r:.60}")
    return Path(value)
