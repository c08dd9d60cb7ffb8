"""Small resolution-agnostic classifiers and the module helpers around them (lessons 00-07 train them).

:class:`DSConvNet` and :class:`TinyConvNeXt` (by name: :func:`build_model`) each have ``features`` (images ->
feature map), ``last_conv`` and ``cam_layer`` (Grad-CAM hook points); :func:`add_dropblock` regularizes them
(lesson 06). :func:`eval_mode` switches a model to eval and restores each submodule's own mode; :func:`bare_copy`
copies one without its hooks.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from hrlib._checks import check_float, check_int, check_model
from hrlib.models._meta import check_has_data

__all__ = ["MODELS", "ConvNeXtBlock", "DSConvNet", "DepthwiseSeparableConv", "LayerNorm2d", "TinyConvNeXt",
           "add_dropblock", "bare_copy", "build_model", "eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of ``model`` in eval mode inside the block; restore each module's own mode afterwards.

    ``model.train(was_training)`` would not do: it sets every submodule alike, so a submodule that was frozen in
    eval mode (e.g. BatchNorm layers kept in eval while the rest trains) would come back in training mode.

    Args:
        model: the module to switch.

    Yields:
        ``model``, in eval mode.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
    """
    check_model("model", model)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def _check_ints(name: str, values: object, minimum: int = 1) -> tuple[int, ...]:
    """Return a non-empty sequence of ints >= ``minimum`` as a tuple, or raise naming ``name``."""
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
        raise TypeError(f"{name} must be a non-empty sequence of ints >= {minimum}, got {values!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(values))


def bare_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` on the CPU without its hooks (e.g. Grad-CAM's, which must not fire in the copy).

    Args:
        module: the module to copy; it is not changed.

    Returns:
        The copy.

    Raises:
        TypeError: ``module`` is not a ``torch.nn.Module``.
        ValueError: its weights are on the ``meta`` device (no data to copy).
    """
    clone = copy.deepcopy(check_has_data("module", check_model("module", module))).cpu()
    for m in clone.modules():
        for hooks in (m._forward_pre_hooks, m._forward_hooks, m._backward_pre_hooks, m._backward_hooks):
            hooks.clear()
    return clone


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise 3x3 conv + BN + ReLU, then 1x1 conv ``c_in`` -> ``c_out`` + BN + ReLU.

    Args:
        c_in: input channels (>= 1).
        c_out: output channels (>= 1).
        stride: 1 keeps the size, 2 halves it.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        c_in, c_out = check_int("c_in", c_in), check_int("c_out", c_out)
        if check_int("stride", stride) not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in), nn.ReLU(),
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        )


class _Classifier(nn.Module):
    """``features`` (images -> feature map) followed by ``head`` (feature map -> logits)."""
    features: nn.Sequential
    head: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits.

        Args:
            x: images (N, in_channels, H, W).

        Returns:
            (N, num_classes) logits.
        """
        return self.head(self.features(x))

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last ``nn.Conv2d`` of ``features``."""
        return [m for m in self.features.modules() if isinstance(m, nn.Conv2d)][-1]

    @property
    def cam_layer(self) -> nn.Module:
        """The last module of ``features``: its output is the feature map that the head pools."""
        return self.features[-1]


class DSConvNet(_Classifier):
    """Small CPU-friendly classifier for any input size: conv stem, depthwise-separable stages, pool, Linear.

    Stem: 3x3 conv stride 2 + BN + ReLU to ``widths[0]``; each further width adds a stage of two
    :class:`DepthwiseSeparableConv` (the first with stride 2).

    Args:
        num_classes: logits (>= 1).
        in_channels: image channels (>= 1).
        widths: channels of the stem and of each stage (ints >= 1).
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        num_classes = check_int("num_classes", num_classes)
        in_channels, widths = check_int("in_channels", in_channels), _check_ints("widths", widths)
        stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False),
                             nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages = [nn.Sequential(DepthwiseSeparableConv(a, b, 2), DepthwiseSeparableConv(b, b, 1))
                  for a, b in zip(widths[:-1], widths[1:], strict=True)]
        self.features = nn.Sequential(stem, *stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over C of (N, C, H, W) tensors (each pixel across its C values).

    Args:
        num_channels: C (>= 1).
        eps: added to the variance (> 0).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(check_int("num_channels", num_channels), eps=check_float("eps", eps, 0.0, low_open=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each pixel across its channels.

        Args:
            x: (N, C, H, W).

        Returns:
            The normalised tensor, same shape.
        """
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: depthwise kxk conv, LayerNorm, 1x1 expand, GELU, 1x1 project, LayerScale, + input.

    Args:
        dim: channels in and out (>= 1).
        kernel_size: depthwise kernel side (odd, padded to keep H, W).
        expansion: hidden channels per channel of the 1x1 MLP (>= 1).
        layer_scale_init: initial value (> 0) of ``gamma``, the learnable per-channel gain of the branch (small:
            the block starts near the identity).
    """

    def __init__(self, dim: int, kernel_size: int = 7, expansion: int = 4, layer_scale_init: float = 1e-6):
        super().__init__()
        dim, expansion = check_int("dim", dim), check_int("expansion", expansion)
        if check_int("kernel_size", kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be odd (to keep H and W), got {kernel_size}")
        layer_scale_init = check_float("layer_scale_init", layer_scale_init, 0.0, low_open=True)
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Conv2d(dim, expansion * dim, 1)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv2d(expansion * dim, dim, 1)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual block.

        Args:
            x: (N, dim, H, W).

        Returns:
            ``x + gamma * branch(x)``, same shape.
        """
        branch = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.gamma.view(1, -1, 1, 1) * branch


class TinyConvNeXt(_Classifier):
    """A scaled-down ConvNeXt: patchify stem, stages of :class:`ConvNeXtBlock`, pool, LayerNorm, Linear.

    Stem: 4x4 conv stride 4 + :class:`LayerNorm2d`; between stages LayerNorm2d + 2x2 conv stride 2. Inputs
    need ``4 * 2 ** (len(dims) - 1)`` px per side or more.

    Args:
        num_classes: logits (>= 1).
        in_channels: image channels (>= 1).
        dims: channels of each stage (ints >= 1).
        depths: blocks of each stage (ints >= 1, as many as ``dims``).
        layer_scale_init: initial LayerScale gain of every block (> 0).
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 3, dims: Sequence[int] = (24, 48, 96, 192),
                 depths: Sequence[int] = (1, 1, 2, 1), layer_scale_init: float = 1e-6):
        super().__init__()
        num_classes = check_int("num_classes", num_classes)
        in_channels, dims = check_int("in_channels", in_channels), _check_ints("dims", dims)
        depths = _check_ints("depths", depths)
        if len(dims) != len(depths):
            raise ValueError(f"dims and depths must have the same length, got {len(dims)} and {len(depths)}")
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, dims[0], 4, 4), LayerNorm2d(dims[0]))]
        for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            if i > 0:
                layers.append(nn.Sequential(LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dim, 2, 2)))
            layers.append(nn.Sequential(*(ConvNeXtBlock(dim, layer_scale_init=layer_scale_init)
                                          for _ in range(depth))))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(dims[-1]),
                                  nn.Linear(dims[-1], num_classes))


MODELS: dict[str, type[_Classifier]] = {"dsconvnet": DSConvNet, "tinyconvnext": TinyConvNeXt}


def build_model(name: str, num_classes: int = 3, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """A new model of the family ``name``.

    Args:
        name: ``"dsconvnet"`` or ``"tinyconvnext"`` (case-insensitive; the keys of ``MODELS``).
        num_classes: logits (>= 1).
        in_channels: image channels (>= 1).
        **kwargs: passed to the constructor (e.g. ``widths`` or ``dims``).

    Returns:
        The model, freshly initialised (torch's global RNG draws its weights: seed it first).

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is not in ``MODELS``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    key = name.strip().lower()
    if key not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[key](num_classes=num_classes, in_channels=in_channels, **kwargs)


def add_dropblock(model: _Classifier, p: float = 0.1, block_size: int = 5,
                  stages: Sequence[int] = (-2, -1)) -> _Classifier:
    """Insert ``torchvision.ops.DropBlock2d(p, block_size)`` after the given ``model.features`` stages, in place.

    DropBlock (Ghiasi et al., 2018) zeros square regions of a feature map in training and is the identity in eval
    mode; the paper applies it to the last two stages, as the default does.

    Args:
        model: a :class:`DSConvNet` or :class:`TinyConvNeXt`; changed in place.
        p: drop probability, 0 <= p < 1.
        block_size: side of the dropped squares in feature-map pixels (odd, >= 1).
        stages: indices into ``model.features`` (negative counts from the end).

    Returns:
        ``model``; its ``cam_layer`` is then the last stage with its DropBlock.
    """
    from torchvision.ops import DropBlock2d  # torchvision is only needed here

    if not isinstance(model, _Classifier):
        raise TypeError(f"model must be a hrlib.models classifier (DSConvNet, TinyConvNeXt), "
                        f"got {type(model).__name__}")
    p = check_float("p", p, 0.0, 1.0, high_open=True)
    if check_int("block_size", block_size) % 2 == 0:
        raise ValueError(f"block_size must be odd (a centered square), got {block_size}")
    n = len(model.features)
    indices = _check_ints("stages", stages, minimum=-n)
    if any(i >= n for i in indices):
        raise ValueError(f"stages must be indices into model.features (-{n} .. {n - 1}), got {stages!r}")
    for i in sorted({i % n for i in indices}):
        model.features[i] = nn.Sequential(model.features[i], DropBlock2d(p, block_size))
    return model
