"""The API audit's vocabulary: a :class:`Case` per public callable (a valid call and bad values per argument).

``tests/audit/test_api_audit.py`` runs every case in ``tests/audit/specs_*.py``: the valid call must succeed, and
each bad value must raise ``TypeError``/``ValueError``/``LookupError``/``OSError`` whose message names the argument
(``Case.names`` overrides the name looked for, e.g. a CLI flag). Every public name of hrlib is either audited or
exempt with a reason, so a new function cannot slip past the audit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ERRORS: tuple[type[BaseException], ...] = (TypeError, ValueError, LookupError, OSError)


@dataclass
class Case:
    """One audited callable.

    valid: returns the keyword arguments of a call that succeeds (a function, so arrays are fresh each time).
    bad: argument name -> values that must each be rejected with an error naming the argument.
    fn: the callable, when it is not the public name itself (a method: ``lambda **kw: make().method(**kw)``).
    names: argument name -> the text the error must contain instead of the argument's name.
    run_valid: False skips the valid call (give the reason in ``why``; e.g. it trains for minutes).
    """

    valid: Callable[[], Mapping[str, Any]]
    bad: Mapping[str, Sequence[Any]]
    fn: Callable[..., Any] | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    run_valid: bool = True
    why: str = ""


def image_u8(h: int = 16, w: int = 16, c: int | None = 3, seed: int = 0) -> np.ndarray:
    """A random HxWxC (or HxW when c is None) uint8 image."""
    shape = (h, w) if c is None else (h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# Values most image arguments must refuse (HxWxC uint8 expected): use as ``bad={"image": BAD_IMAGES}``.
BAD_IMAGES: list[Any] = [
    None,
    "image.png",
    np.zeros(16, np.uint8),  # 1-D
    np.zeros((2, 16, 16, 3, 1), np.uint8),  # 5-D
    np.zeros((0, 16, 3), np.uint8),  # empty
    np.full((16, 16, 3), np.nan, np.float32),  # NaN
]


def public_callables() -> Iterator[tuple[str, Any]]:
    """``(module.name, object)`` for every public callable hrlib defines (in a module's ``__all__``; no exercises)."""
    import hrlib

    for info in pkgutil.walk_packages(hrlib.__path__, "hrlib."):
        if ".exercises" in info.name or info.name.rpartition(".")[2].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if callable(obj) and getattr(obj, "__module__", None) == info.name:
                yield f"{info.name}.{attr}", obj
