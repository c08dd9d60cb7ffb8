"""Batch mixing for lesson 02 (claim C35): MixUp and CutMix on a training batch, with their own generator.

Two deterministic kernels compute a mix from given parameters; :class:`BatchMix` draws the parameters from its own
``torch.Generator`` (or torch's global one) and calls them, as torchvision's transforms v2 do (``make_params``
draws, ``transform`` computes); :func:`mixing` builds one for ``hrlib.train.fit(batch_transform=...)``.
Each image is mixed with the previous one of the batch (``x.roll(1, 0)``, as torchvision does), so the batches must
be shuffled.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hrlib._checks import check_batch, check_float, check_generator, check_int

__all__ = ["MIX_KINDS", "BatchMix", "mixing"]

MIX_KINDS: tuple[str, ...] = ("mixup", "cutmix", "both")
_CHOICE = torch.tensor([0.5, 0.5])  # "both": MixUp or CutMix with equal odds


def _soft(y: torch.Tensor, num_classes: int, lam: float) -> torch.Tensor:
    label = F.one_hot(y, num_classes=num_classes).float()
    return label.roll(1, 0).mul_(1.0 - lam).add_(label.mul(lam))


def _mixup(x: torch.Tensor, y: torch.Tensor, lam: float, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp of each image with the previous one of the batch: ``lam * x + (1 - lam) * x.roll(1, 0)``.

    Args:
        x: NCHW float images.
        y: (N,) int64 class ids.
        lam: the weight of each image itself, in [0, 1].
        num_classes: width of the soft labels.

    Returns:
        The mixed images and (N, num_classes) soft labels mixed with the same weight.
    """
    return x.roll(1, 0).mul_(1.0 - lam).add_(x.mul(lam)), _soft(y, num_classes, lam)


def _cutmix(x: torch.Tensor, y: torch.Tensor, box: tuple[int, int, int, int],
           num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix: paste the pixels of ``box`` from the previous image of the batch into each image.

    Args:
        x: NCHW float images.
        y: (N,) int64 class ids.
        box: ``x0, y0, x1, y1`` px, half-open, inside the image.
        num_classes: width of the soft labels.

    Returns:
        The mixed images and (N, num_classes) soft labels weighted by the area each image keeps.
    """
    x0, y0, x1, y1 = box
    out = x.clone()
    out[..., y0:y1, x0:x1] = x.roll(1, 0)[..., y0:y1, x0:x1]
    lam = 1.0 - (x1 - x0) * (y1 - y0) / (x.shape[-1] * x.shape[-2])
    return out, _soft(y, num_classes, lam)


class BatchMix:
    """``x, y = mix(x, y)`` on a training batch: NCHW float ``x``, (N,) int64 class ids ``y`` -> mixed ``x`` and
    (N, num_classes) soft labels whose rows sum to 1.

    Randomness comes only from ``generator``, all of it drawn by :meth:`draw` before the batch is touched, in this
    order: (1) with ``kind="both"``, MixUp or CutMix (one ``multinomial`` draw, equal odds); (2) the weight
    ``lam ~ Beta(alpha, alpha)`` (a Dirichlet draw); (3) for CutMix, the box centre: its column (``randint(W)``),
    then its row (``randint(H)``). These are the draws, in their order, of torchvision v2's
    ``RandomChoice([MixUp, CutMix])``, so a generator seeded with ``s`` repeats what torchvision draws after
    ``torch.manual_seed(s)``.

    Args:
        kind: ``"mixup"``, ``"cutmix"`` or ``"both"`` (one of them per batch).
        num_classes: >= 2.
        alpha: the Beta(alpha, alpha) parameter of the mixing weight (> 0; 1 is uniform in [0, 1]).
        generator: the CPU ``torch.Generator`` that owns the draws; None draws from torch's global RNG (which
            ``hrlib.train.fit`` seeds), as torchvision does.
    """

    def __init__(self, kind: str, num_classes: int, alpha: float = 1.0, *,
                 generator: torch.Generator | None = None) -> None:
        if kind not in MIX_KINDS:
            raise ValueError(f"kind must be one of {MIX_KINDS}, got {kind!r}")
        self.kind, self.num_classes = kind, check_int("num_classes", num_classes, 2)
        self.alpha = check_float("alpha", alpha, 0.0, low_open=True)
        self.generator = check_generator("generator", generator)

    def draw(self, height: int, width: int) -> dict[str, object]:
        """Draw one batch's parameters (see the class docstring for the order).

        Args:
            height, width: the images' size in px.

        Returns:
            ``{"kind": "mixup" or "cutmix", "lam": float}``, and ``"box"`` (``x0, y0, x1, y1`` px) for CutMix.
        """
        height, width, kind = check_int("height", height), check_int("width", width), self.kind
        if kind == "both":
            kind = MIX_KINDS[int(torch.multinomial(_CHOICE, 1, generator=self.generator))]
        concentration = torch.tensor([[self.alpha, self.alpha]])
        lam = float(torch._sample_dirichlet(concentration, generator=self.generator)[..., 0])
        if kind == "mixup":
            return {"kind": kind, "lam": lam}
        cx = int(torch.randint(width, (1,), generator=self.generator))
        cy = int(torch.randint(height, (1,), generator=self.generator))
        r = 0.5 * math.sqrt(1.0 - lam)
        half_w, half_h = int(r * width), int(r * height)
        box = (max(cx - half_w, 0), max(cy - half_h, 0), min(cx + half_w, width), min(cy + half_h, height))
        return {"kind": kind, "lam": lam, "box": box}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix one batch.

        Args:
            x: NCHW float images (not scanned for NaN: this runs on every training batch).
            y: (N,) integer class ids in ``[0, num_classes)``.

        Returns:
            The mixed images and (N, num_classes) float soft labels.
        """
        check_batch("x", x, finite=False)
        if not isinstance(y, torch.Tensor) or y.shape != (len(x),) or y.is_floating_point():
            raise ValueError(f"y must be an (N,) = ({len(x)},) integer tensor of class ids, got {type(y).__name__} "
                             f"{getattr(y, 'dtype', '')} with shape {tuple(getattr(y, 'shape', ()))}")
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise ValueError(f"y must hold class ids in [0, {self.num_classes}), got {int(y.min())}..{int(y.max())}")
        params = self.draw(x.shape[-2], x.shape[-1])
        if params["kind"] == "mixup":
            return _mixup(x, y, params["lam"], self.num_classes)  # type: ignore[arg-type]
        return _cutmix(x, y, params["box"], self.num_classes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"mixing({self.kind!r}, num_classes={self.num_classes}, alpha={self.alpha})"


def mixing(kind: str, num_classes: int, alpha: float = 1.0, *, generator: torch.Generator | None = None) -> BatchMix:
    """MixUp (``"mixup"``), CutMix (``"cutmix"``) or one of them at random per batch (``"both"``), for
    ``hrlib.train.fit(batch_transform=...)``.

    Args:
        kind: one of ``MIX_KINDS``.
        num_classes: >= 2.
        alpha: the Beta(alpha, alpha) parameter of the mixing weight (> 0; 1 is uniform in [0, 1]).
        generator: the CPU ``torch.Generator`` that owns the draws (the same seed draws the same mixes); None:
            torch's global RNG, deterministic under ``torch.manual_seed``.

    Returns:
        The :class:`BatchMix`.
    """
    return BatchMix(kind, num_classes, alpha, generator=generator)
