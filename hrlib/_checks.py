"""Input validation shared by hrlib's public functions: errors name the argument, what was expected and what came."""

from __future__ import annotations

import numpy as np


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int; raise ``TypeError``/``ValueError`` naming ``name`` unless an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)
