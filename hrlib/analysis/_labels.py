"""Class-index arrays and class names as the analysis modules take them (package-internal, lesson 07)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def check_ints(name: str, values: object, n: int | None = None, high: int | None = None,
               per: str = "") -> np.ndarray:
    """(N,) int64 array of ``values`` (length ``n`` and in [0, high) where given), or raise naming ``name``;
    ``per`` names the argument that sets ``n`` (added to the message)."""
    arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu") or (n is not None and len(arr) != n):
        one_per = f" (one per entry of {per})" if per else ""
        raise ValueError(f"{name} must be a 1-D sequence of {n if n is not None else 'N'} ints{one_per}, got dtype "
                         f"{arr.dtype} with shape {arr.shape}")
    if high is not None and arr.size and (arr.min() < 0 or arr.max() >= high):
        raise ValueError(f"{name} must be class indices in [0, {high}), got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64)


def check_class_names(class_names: object) -> tuple[str, ...]:
    """``class_names`` as a tuple of at least 2 distinct strings, or raise naming it."""
    if isinstance(class_names, str | bytes) or not isinstance(class_names, Sequence | np.ndarray):
        raise TypeError(f"class_names must be a sequence of class names, got {type(class_names).__name__} "
                        f"{class_names!r:.80}")
    names = tuple(str(c) for c in class_names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"class_names must name at least 2 distinct classes, got {class_names!r:.200}")
    return names
