"""The one scale knob (fast/full profile), the device helper and the seeding helper.

The profile is chosen, in order of precedence, by:

1. ``HRLIB_PROFILE=fast`` or ``HRLIB_PROFILE=full`` in the environment;
2. ``CI`` set to a true value (``CI=true``): always ``fast``;
3. otherwise ``full`` when CUDA is available, ``fast`` when it is not.

In the fast profile images are a few hundred pixels; in the full profile they are several times larger. The
ratios that matter (target size / image size, stage resolution / full resolution) are the same in both.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch

from hrlib._checks import check_int

__all__ = ["Profile", "describe", "get_device", "get_profile", "seed_everything"]

ProfileName = Literal["fast", "full"]
T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Profile:
    """Sizes shared by the whole course for one profile.

    Attributes:
        name: ``"fast"`` (2-core CPU) or ``"full"`` (GPU).
        image_size: side in pixels of the course's "full resolution" slide.
        reason: why this profile was chosen (environment variable, CI, or hardware).
        train_size: full resolution of the slides that lessons *train* on (half of ``image_size``: targets are
            10 px across in the fast profile, 41 px in the full one).
    """

    name: ProfileName
    image_size: int
    reason: str

    @property
    def train_size(self) -> int:
        return self.image_size // 2

    def pick(self, fast: T, full: T) -> T:
        """Return ``fast`` in the fast profile and ``full`` in the full profile."""
        return fast if self.name == "fast" else full


_SIZES: dict[str, int] = {"fast": 512, "full": 2048}


def get_profile() -> Profile:
    """Return the active profile (see the module docstring for how it is chosen)."""
    env = os.environ.get("HRLIB_PROFILE", "").strip().lower()
    if env:
        if env not in _SIZES:
            raise ValueError(f"HRLIB_PROFILE must be 'fast' or 'full', got {env!r}")
        return Profile(env, _SIZES[env], "HRLIB_PROFILE")  # type: ignore[arg-type]
    if os.environ.get("CI", "").strip().lower() in _TRUE:
        return Profile("fast", _SIZES["fast"], "CI")
    if torch.cuda.is_available():
        return Profile("full", _SIZES["full"], "CUDA available")
    return Profile("fast", _SIZES["fast"], "no CUDA")


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device to compute on: CUDA if available, else Apple MPS, else CPU.

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


def _check_device(name: str, device: object) -> torch.device:
    """``device`` (a ``torch.device``, a device type ``"cpu"``/``"cuda"``/``"mps"``, or None for :func:`get_device`)
    as a ``torch.device``; errors name ``name`` (the caller's argument)."""
    if isinstance(device, torch.device):
        return device
    if device is not None and not isinstance(device, str):
        raise TypeError(f"{name} must be a torch.device, 'cpu', 'cuda', 'mps' or None, got {type(device).__name__} "
                        f"{device!r}")
    try:
        return get_device(device)
    except ValueError as e:
        raise ValueError(f"{name} must be an available device ('cpu', 'cuda', 'mps') or None, got {device!r} "
                         f"({e})") from e


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int, deterministic: bool = False) -> np.random.Generator:
    """Seed Python's, NumPy's and torch's global generators and return a fresh NumPy ``Generator``.

    Args:
        seed: a non-negative integer.
        deterministic: also ask torch for deterministic kernels (slower; for debugging).
    """
    seed = check_int("seed", seed, 0)
    if not isinstance(deterministic, bool | np.bool_):
        raise TypeError(f"deterministic must be a bool, got {type(deterministic).__name__} {deterministic!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (legacy global generator, used by older code)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def describe(seed: int | None = None) -> str:
    """One line for a notebook's first cell: profile, device, seed and library versions."""
    if seed is not None:
        seed = check_int("seed", seed, 0)
    profile = get_profile()
    parts = [
        f"profile={profile.name} ({profile.reason}, image_size={profile.image_size})",
        f"device={get_device()}",
        f"torch={torch.__version__}",
    ]
    if seed is not None:
        parts.insert(2, f"seed={seed}")
    return " | ".join(parts)
