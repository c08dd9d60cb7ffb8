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

from hrlib._checks import check_int, resolve_device

__all__ = ["Profile", "describe", "get_device", "get_profile", "seed_everything", "seed_transform", "seed_worker"]

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
    """The active profile (see the module docstring for how it is chosen).

    Returns:
        The :class:`Profile`: name, image size and the reason it was chosen.
    """
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
            environment.

    Returns:
        The ``torch.device``.

    Raises:
        TypeError: ``prefer`` is not a str or None.
        ValueError: the preferred device type is unknown or not available on this machine.
    """
    return resolve_device(prefer)


def seed_everything(seed: int, deterministic: bool = False) -> np.random.Generator:
    """Seed Python's, NumPy's and torch's global generators and return a fresh NumPy ``Generator``.

    Args:
        seed: a non-negative integer.
        deterministic: also ask torch for deterministic kernels (slower; for debugging).

    Returns:
        A fresh ``numpy.random.Generator`` seeded with ``seed``.
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


def seed_transform(transform: object, seed: int) -> None:
    """Seed a transform's own random generator, if it has one (``set_random_seed``, as albumentations' Compose).

    Albumentations draws from OS entropy unless seeded, so an unseeded run never repeats.

    Args:
        transform: any object; one without ``set_random_seed`` is left alone.
        seed: the seed, in [0, 2**32).
    """
    set_seed = getattr(transform, "set_random_seed", None)
    if callable(set_seed):
        set_seed(seed)


def seed_worker(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn``: each worker seeds its copy of the dataset's ``transform`` from its torch seed.

    torch already seeds ``random``, NumPy's legacy generator and torch in each worker from the loader's base seed
    and the worker id; this adds the transform's own generator. The augmentation then depends on the worker count;
    ``hrlib.train`` avoids that by re-seeding the transform for each image from the epoch and the image's index.

    Args:
        worker_id: the worker's index (unused: torch's per-worker seed already includes it).
    """
    info = torch.utils.data.get_worker_info()
    if info is not None:
        seed_transform(getattr(info.dataset, "transform", None), torch.initial_seed() % 2**32)


def describe(seed: int | None = None) -> str:
    """One line for a notebook's first cell: profile, device, seed and library versions.

    Args:
        seed: the notebook's base seed, shown when given (>= 0).

    Returns:
        The line, e.g. ``profile=fast (...) | device=cpu | seed=0 | torch=...``.
    """
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
