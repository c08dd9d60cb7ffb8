"""Real images bundled with scikit-image, no download needed (lessons 00 and 03)."""

from __future__ import annotations

import numpy as np

__all__ = ["REAL_IMAGES", "real_image"]

REAL_IMAGES: dict[str, str] = {  # hrlib name -> skimage.data function
    "ihc": "immunohistochemistry", "retina": "retina", "hubble": "hubble_deep_field", "brick": "brick",
    "gravel": "gravel", "grass": "grass", "text": "text", "page": "page", "camera": "camera", "coffee": "coffee",
}


def real_image(name: str) -> np.ndarray:
    """A real image shipped inside scikit-image.

    Args:
        name: one of ``REAL_IMAGES``: ``ihc`` (512x512 immunohistochemistry, H-DAB), ``retina`` (1411x1411 fundus),
            ``hubble`` (872x1000), ``brick``, ``gravel``, ``grass`` (textures), ``text``, ``page`` (documents),
            ``camera``, ``coffee``.

    Returns:
        The image as uint8 HxWx3 or HxW.

    Raises:
        ValueError: an unknown name.
    """
    if not isinstance(name, str) or name not in REAL_IMAGES:
        raise ValueError(f"name must be one of {sorted(REAL_IMAGES)}, got {name!r}")
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, REAL_IMAGES[name])())
