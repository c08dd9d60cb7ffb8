"""Small resolution-agnostic classifiers, and what they cost at a given image size.

Models: :class:`DSConvNet`, :class:`TinyConvNeXt` (by name: :func:`build_model`); each has ``features``
(images -> feature map), ``last_conv`` and ``cam_layer`` (Grad-CAM hook points). Costs: :func:`conv2d_params`,
:func:`conv2d_macs` (analytic), :func:`count_cost` (measured). Receptive field: :func:`receptive_field`
(analytic), :func:`measure_receptive_field` (by backpropagation).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils.flop_counter import FlopCounterMode

from hrlib._checks import check_float, check_int

__all__ = ["MODELS", "ConvNeXtBlock", "Cost", "DSConvNet", "DepthwiseSeparableConv", "LayerNorm2d", "SavedBytes",
           "TinyConvNeXt", "add_dropblock", "bare_copy", "build_model", "conv2d_macs", "conv2d_params", "count_cost",
           "eval_mode", "measure_receptive_field", "receptive_field"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of ``model`` in eval mode inside the block; restore each module's own mode afterwards.

    ``model.train(was_training)`` would not do: it sets every submodule alike, so a submodule that was frozen in
    eval mode (e.g. BatchNorm layers kept in eval while the rest trains) would come back in training mode.

    Args:
        model: the module to switch.

    Yields:
        ``model``, in eval mode.
    """
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


def _pair(name: str, value: object) -> tuple[int, int]:
    """Return an int or a pair of ints (all >= 1) as ``(h, w)``, or raise naming ``name``."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w) of ints, got {len(value)} values")
        return check_int(f"{name}[0]", value[0]), check_int(f"{name}[1]", value[1])
    return (side := check_int(name, value)), side


def bare_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` on the CPU without its hooks (e.g. Grad-CAM's, which must not fire in the copy).

    Args:
        module: the module to copy; it is not changed.

    Returns:
        The copy.
    """
    clone = copy.deepcopy(module).cpu()
    for m in clone.modules():
        for hooks in (m._forward_pre_hooks, m._forward_hooks, m._backward_pre_hooks, m._backward_hooks):
            hooks.clear()
    return clone


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise 3x3 conv (``stride`` 1 or 2) + BN + ReLU, then 1x1 conv ``c_in`` -> ``c_out`` + BN + ReLU."""

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
        """Return logits of shape (N, num_classes) for images ``x`` of shape (N, in_channels, H, W)."""
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
    :class:`DepthwiseSeparableConv` (the first with stride 2). ``num_classes``: logits (>= 1);
    ``in_channels``: image channels (>= 1); ``widths``: channels of the stem and of each stage (ints >= 1).
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
    """LayerNorm over C of (N, C, H, W) tensors (each pixel across its C values); ``eps``: added to var."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(check_int("num_channels", num_channels), eps=check_float("eps", eps, 0.0, low_open=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the normalised ``x`` (N, C, H, W), same shape."""
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: depthwise kxk conv, LayerNorm, 1x1 expand, GELU, 1x1 project, LayerScale, + input.

    Args: ``dim``: channels in and out (>= 1); ``kernel_size``: depthwise kernel side (odd, padded to keep
    H, W); ``expansion``: hidden channels per channel of the 1x1 MLP (>= 1); ``layer_scale_init``: initial
    value (> 0) of ``gamma``, the learnable per-channel gain of the branch (small: starts near the identity).
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
        """Return ``x + gamma * branch(x)``, same shape as ``x`` (N, dim, H, W)."""
        branch = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.gamma.view(1, -1, 1, 1) * branch


class TinyConvNeXt(_Classifier):
    """A scaled-down ConvNeXt: patchify stem, stages of :class:`ConvNeXtBlock`, pool, LayerNorm, Linear.

    Stem: 4x4 conv stride 4 + :class:`LayerNorm2d`; between stages LayerNorm2d + 2x2 conv stride 2. Inputs
    need ``4 * 2 ** (len(dims) - 1)`` px per side or more. ``num_classes``: logits (>= 1); ``in_channels``:
    image channels (>= 1); ``dims``, ``depths``: channels and blocks of each stage (same length, ints >= 1);
    ``layer_scale_init``: initial LayerScale gain of every block (> 0).
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
    """Return a new model: ``name`` is ``"dsconvnet"`` or ``"tinyconvnext"`` (case-insensitive);
    ``num_classes``: logits (>= 1); ``in_channels``: image channels (>= 1); ``kwargs``: to the constructor."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    key = name.strip().lower()
    if key not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[key](num_classes=num_classes, in_channels=in_channels, **kwargs)


def add_dropblock(model: _Classifier, p: float = 0.1, block_size: int = 5,
                  stages: Sequence[int] = (-2, -1)) -> _Classifier:
    """Insert ``torchvision.ops.DropBlock2d(p, block_size)`` after the given ``model.features`` stages, in place.

    DropBlock (Ghiasi et al., 2018) zeros square ``block_size`` x ``block_size`` (odd, >= 1) regions of a feature
    map in training (drop probability ``p``, 0 <= p < 1) and is the identity in eval mode; the paper applies it to
    the last two stages, as the default does. ``stages``: indices into ``model.features`` (negative counts from
    the end). Returns ``model``; its ``cam_layer`` is then the last stage with its DropBlock.
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


def conv2d_params(c_in: int, c_out: int, kernel: int | tuple[int, int], groups: int = 1,
                  bias: bool = True) -> int:
    """Number of parameters of ``nn.Conv2d(c_in, c_out, kernel, groups=groups, bias=bias)``.

    ``c_in``, ``c_out``: channels (>= 1, divisible by ``groups``; ``groups == c_in`` is depthwise);
    ``kernel``: side or (kh, kw) in pixels (>= 1); ``bias``: whether there is one bias per output channel.
    """
    c_in, c_out, groups = check_int("c_in", c_in), check_int("c_out", c_out), check_int("groups", groups)
    kh, kw = _pair("kernel", kernel)
    if not isinstance(bias, bool | np.bool_):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__} {bias!r}")
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups must divide c_in and c_out, got {groups} for c_in={c_in}, c_out={c_out}")
    return c_out * (c_in // groups) * kh * kw + (c_out if bias else 0)


def conv2d_macs(c_in: int, c_out: int, kernel: int | tuple[int, int], out_h: int, out_w: int,
                groups: int = 1) -> int:
    """Multiply-accumulates for one image, ``c_out * (c_in // groups) * kh * kw * out_h * out_w`` (bias adds
    not counted, as in ``FlopCounterMode``); ``out_h``, ``out_w``: output size in px (>= 1); the rest as in
    :func:`conv2d_params`."""
    out_h, out_w = check_int("out_h", out_h), check_int("out_w", out_w)
    return conv2d_params(c_in, c_out, kernel, groups, bias=False) * out_h * out_w


class SavedBytes:
    """Context manager measuring what training keeps for the backward pass: the bytes of the tensors autograd saves
    inside it (``saved_tensors_hooks``), once per storage, without ``module``'s parameters and buffers nor the
    storages of the live tensors in ``exclude`` (e.g. an input already counted). ``total`` is the sum so far."""

    def __init__(self, module: nn.Module, exclude: Sequence[torch.Tensor] = ()) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if isinstance(exclude, torch.Tensor) or not isinstance(exclude, Sequence) or not all(
                isinstance(t, torch.Tensor) for t in exclude):
            raise TypeError(f"exclude must be a sequence of tensors, got {exclude!r:.80}")
        tensors = (*module.parameters(), *module.buffers(), *exclude)
        self.owned = {t.untyped_storage().data_ptr() for t in tensors}
        self.storages: dict[int, int] = {}
        self._hooks = saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.owned:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return t

    @property
    def total(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


@dataclass(frozen=True)
class Cost:
    """What one model costs at one input size (see :func:`count_cost`): ``params`` (count), ``macs``
    (multiply-accumulates of one forward of the batch), ``activation_bytes`` (bytes autograd keeps for the
    backward pass of one training forward), ``output_shape`` (of the model's output for that batch)."""

    params: int
    macs: int
    activation_bytes: int
    output_shape: tuple[int, ...]


def count_cost(model: nn.Module, image_size: int | tuple[int, int], *, batch_size: int = 1,
               in_channels: int | None = None) -> Cost:
    """Measure parameters, MACs and training activation memory of ``model`` at one input size, on the CPU.

    MACs: half the FLOPs ``torch.utils.flop_counter.FlopCounterMode`` counts in one eval-mode forward (convs
    and matmuls; norms, activations and adds are free). ``activation_bytes``: the memory training keeps for
    the backward pass, i.e. the tensors autograd saves (``saved_tensors_hooks``) in one train-mode forward,
    once per storage, without parameters and buffers (the input counts if the first layer saves it). A deep
    copy without hooks is measured: the model's weights, BN statistics and train/eval mode stay as they were.
    ``model`` gets a random (batch_size, in_channels, h, w) batch; ``image_size``: side or (h, w) in pixels
    (ints >= 1); ``batch_size`` (>= 1); ``in_channels`` (>= 1, default: that of the first Conv2d).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    h, w = _pair("image_size", image_size)
    batch_size = check_int("batch_size", batch_size)
    if in_channels is None:
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is None:
            raise ValueError("in_channels must be given: the model has no nn.Conv2d to infer it from")
        in_channels = conv.in_channels
    in_channels = check_int("in_channels", in_channels)
    params = sum(p.numel() for p in model.parameters())
    clone = bare_copy(model).eval()
    dtype = next((p.dtype for p in clone.parameters() if p.is_floating_point()), torch.float32)
    x = torch.randn(batch_size, in_channels, h, w, dtype=dtype, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        output_shape = tuple(_forward_checked(clone, x, "image_size", "in_channels").shape)
    macs = counter.get_total_flops() // 2

    def saved_bytes(batch: torch.Tensor) -> int:
        with torch.enable_grad(), SavedBytes(clone) as recorder:
            clone(batch)
        return recorder.total

    clone.train()
    try:
        activation_bytes = saved_bytes(x)
    except ValueError as exc:  # training-mode BatchNorm cannot normalize one value per channel (a 1x1 map, batch 1)
        if "more than 1 value per channel" not in str(exc):
            raise
        b2, b4 = saved_bytes(x.repeat(2, 1, 1, 1)), saved_bytes(x.repeat(4, 1, 1, 1))
        activation_bytes = (3 * b2 - b4) // 2  # linear in the batch plus BatchNorm's per-channel constant
    return Cost(params=params, macs=macs, activation_bytes=activation_bytes, output_shape=output_shape)


def _forward_checked(model: nn.Module, x: torch.Tensor, *names: str) -> torch.Tensor:
    """``model(x)``; a shape error from inside (input too small, wrong channels) raises naming the arguments."""
    try:
        return model(x)
    except RuntimeError as e:
        what = " or ".join(names)
        raise ValueError(f"{what} must fit the model: a ({', '.join(map(str, x.shape))}) input fails in its forward "
                         f"({type(e).__name__}: {str(e)[:200]})") from e


def receptive_field(layers: Sequence[nn.Conv2d] | nn.Module) -> int:
    """Analytic receptive field (pixels per side) of a sequential stack of square convs.

    ``r = 1 + sum_i (k_i - 1) * d_i * prod_{j < i} s_j`` (kernel k, dilation d, stride s; padding does not
    matter). ``layers``: the convs in the order the input meets them, or a module whose Conv2d layers (in
    definition order) form a chain, possibly with skip connections (those only add shorter paths).
    """
    if isinstance(layers, nn.Module):
        layers = [m for m in layers.modules() if isinstance(m, nn.Conv2d)]
    elif isinstance(layers, str) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a sequence of nn.Conv2d or an nn.Module, got {type(layers).__name__}")
    r, jump = 1, 1
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.Conv2d):
            raise TypeError(f"layers[{i}] must be an nn.Conv2d, got {type(layer).__name__}")
        (k, k2), (s, s2), (d, d2) = layer.kernel_size, layer.stride, layer.dilation
        if k != k2 or s != s2 or d != d2:
            raise ValueError(f"layers[{i}] must be square, got kernel_size={layer.kernel_size}, "
                             f"stride={layer.stride}, dilation={layer.dilation}")
        r += (k - 1) * d * jump
        jump *= s
    return r


def measure_receptive_field(module: nn.Module,
                            image_size: int | tuple[int, int] = 64) -> tuple[int, np.ndarray]:
    """Measure the receptive field of the centre output pixel of ``module`` by backpropagation.

    On a deep copy, conv weights are ``1 / fan_in`` and conv biases 0, BatchNorm uses mean 0 / var 1 (eval),
    LayerNorm/GroupNorm/InstanceNorm become ``nn.Identity`` (they would cancel the gradient), other parameters
    are 1 (e.g. LayerScale). With a float64 input of ones the gradient of the centre pixel is non-zero exactly
    where it depends on the input, holes included: three 3x3 convs with dilation 2 give non-zero values only
    at even offsets. Max-pooling sends gradient to one pixel per window (use conv/norm/ReLU/GELU/residual
    stacks). Warns if the region touches the image border (the extent is then clipped).
    ``module``: (1, C, H, W) images -> (1, C', H', W') feature map, C from its first Conv2d; ``image_size``:
    side or (h, w) of the probe image in pixels (>= 1). Returns ``(extent, grad_map)``: first to last
    non-zero pixel along the centre row of the non-zero region, and the (H, W) float64 map of ``|gradient|``
    summed over input channels.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    h, w = _pair("image_size", image_size)
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError("module must contain an nn.Conv2d (its in_channels sets the probe's channels)")
    probe = bare_copy(module).double().eval()
    for parent in list(probe.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.LayerNorm | nn.GroupNorm | nn.InstanceNorm2d):
                setattr(parent, name, nn.Identity())
    with torch.no_grad():
        for p in probe.parameters():
            p.fill_(1.0)
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
                m.reset_running_stats()
    x = torch.ones(1, conv.in_channels, h, w, dtype=torch.float64, requires_grad=True)
    out = _forward_checked(probe, x, "image_size")
    if out.ndim != 4:
        raise ValueError(f"module must return a (N, C, H, W) feature map, got shape {tuple(out.shape)}")
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    grad_map = x.grad[0].abs().sum(0).numpy()
    mask = grad_map > 0
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, grad_map
    cols = np.flatnonzero(mask[(rows[0] + rows[-1]) // 2])
    if mask[[0, -1]].any() or mask[:, [0, -1]].any():
        warnings.warn(f"the receptive field reaches the border of the {h}x{w} probe image, so the extent is "
                      "clipped: use a larger image_size", stacklevel=2)
    return int(cols[-1] - cols[0] + 1), grad_map
