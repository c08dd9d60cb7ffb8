"""What a model costs at an image size, and what it sees (lesson 00).

Costs: :func:`conv2d_params`, :func:`conv2d_macs` (analytic), :func:`count_cost` (measured: parameters, MACs and
the activation memory training keeps, with :class:`SavedBytes`). Receptive field: :func:`receptive_field`
(analytic), :func:`measure_receptive_field` (by backpropagation).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils.flop_counter import FlopCounterMode

from hrlib._checks import check_bool, check_int, check_model
from hrlib.models._meta import check_has_data
from hrlib.models.networks import bare_copy

__all__ = ["Cost", "SavedBytes", "conv2d_macs", "conv2d_params", "count_cost", "measure_receptive_field",
           "receptive_field"]


def _pair(name: str, value: object) -> tuple[int, int]:
    """Return an int or a pair of ints (all >= 1) as ``(h, w)``, or raise naming ``name``."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w) of ints, got {len(value)} values")
        return check_int(f"{name}[0]", value[0]), check_int(f"{name}[1]", value[1])
    return (side := check_int(name, value)), side


def conv2d_params(c_in: int, c_out: int, kernel: int | tuple[int, int], groups: int = 1,
                  bias: bool = True) -> int:
    """Number of parameters of ``nn.Conv2d(c_in, c_out, kernel, groups=groups, bias=bias)``.

    Args:
        c_in: input channels (>= 1, divisible by ``groups``).
        c_out: output channels (>= 1, divisible by ``groups``).
        kernel: side or (kh, kw) in pixels (>= 1).
        groups: channel groups (``groups == c_in`` is depthwise).
        bias: whether there is one bias per output channel.

    Returns:
        The parameter count.
    """
    c_in, c_out, groups = check_int("c_in", c_in), check_int("c_out", c_out), check_int("groups", groups)
    kh, kw = _pair("kernel", kernel)
    bias = check_bool("bias", bias)
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups must divide c_in and c_out, got {groups} for c_in={c_in}, c_out={c_out}")
    return c_out * (c_in // groups) * kh * kw + (c_out if bias else 0)


def conv2d_macs(c_in: int, c_out: int, kernel: int | tuple[int, int], out_h: int, out_w: int,
                groups: int = 1) -> int:
    """Multiply-accumulates of one conv for one image (bias adds not counted, as in ``FlopCounterMode``).

    Args:
        c_in, c_out, kernel, groups: as in :func:`conv2d_params`.
        out_h, out_w: output size in px (>= 1).

    Returns:
        ``c_out * (c_in // groups) * kh * kw * out_h * out_w``.
    """
    out_h, out_w = check_int("out_h", out_h), check_int("out_w", out_w)
    return conv2d_params(c_in, c_out, kernel, groups, bias=False) * out_h * out_w


class SavedBytes:
    """Context manager measuring what training keeps for the backward pass.

    Inside it, the bytes of the tensors autograd saves (``saved_tensors_hooks``) are added up once per storage;
    ``total`` is the sum so far.

    Args:
        module: its parameters and buffers do not count.
        exclude: live tensors whose storages do not count either (e.g. an input already counted).
    """

    def __init__(self, module: nn.Module, exclude: Sequence[torch.Tensor] = ()) -> None:
        check_model("module", module)
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
        """Bytes saved so far."""
        return sum(self.storages.values())

    def __enter__(self) -> SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


@dataclass(frozen=True)
class Cost:
    """What one model costs at one input size (see :func:`count_cost`).

    Attributes:
        params: parameter count.
        macs: multiply-accumulates of one forward of the batch.
        activation_bytes: bytes autograd keeps for the backward pass of one training forward.
        output_shape: of the model's output for that batch.
    """

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

    Args:
        model: gets a random (batch_size, in_channels, h, w) batch (a fixed seed: the same numbers every call).
        image_size: side or (h, w) in pixels (ints >= 1).
        batch_size: images per batch (>= 1).
        in_channels: image channels (>= 1, default: that of the first Conv2d).

    Returns:
        A :class:`Cost`.

    Raises:
        ValueError: the input does not fit the model, ``in_channels`` cannot be inferred, or the weights are on the
            ``meta`` device.
    """
    check_has_data("model", check_model("model", model))
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
    except ValueError:  # training-mode BatchNorm cannot normalize one value per channel (a 1x1 map, batch 1):
        # extrapolate from batches of 2 and 4; another error fails again there and propagates
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
    matter).

    Args:
        layers: the convs in the order the input meets them, or a module whose Conv2d layers (in definition
            order) form a chain, possibly with skip connections (those only add shorter paths).

    Returns:
        The receptive field's side in input pixels.
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

    Args:
        module: (1, C, H, W) images -> (1, C', H', W') feature map; C from its first Conv2d.
        image_size: side or (h, w) of the probe image in pixels (>= 1).

    Returns:
        ``(extent, grad_map)``: first to last non-zero pixel along the centre row of the non-zero region, and the
        (H, W) float64 map of ``|gradient|`` summed over input channels.
    """
    check_model("module", module)
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
