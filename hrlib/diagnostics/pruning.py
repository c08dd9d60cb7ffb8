"""Pruning, measured (lesson 06): magnitude (unstructured) pruning zeros weights, channel pruning removes them.

Lesson 06 uses both on the same trained model. Zeros do not make dense convolution kernels faster: a pruned
model computes exactly as many multiply-adds as before, just with more zeros in them. What makes inference
faster is a smaller dense model, which is what :func:`prune_channels` builds (network slimming, Liu et al. 2017:
rank each channel by the magnitude of its BatchNorm scale, keep the largest).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

from hrlib._checks import check_bool, check_float, check_model
from hrlib.models.networks import DepthwiseSeparableConv, DSConvNet

__all__ = ["magnitude_prune", "prune_channels", "sparsity"]

PRUNABLE = (nn.Conv2d, nn.Linear)


def sparsity(model: nn.Module) -> float:
    """How sparse a model's weights are.

    Args:
        model: a model with ``Conv2d`` or ``Linear`` layers.

    Returns:
        The fraction (0-1) of the weights of its ``Conv2d`` and ``Linear`` layers that are exactly zero.

    Raises:
        TypeError: ``model`` is not a module.
        ValueError: it has no such layer.
    """
    weights = [m.weight for m in check_model("model", model).modules() if isinstance(m, PRUNABLE)]
    if not weights:
        raise ValueError(f"model has no Conv2d or Linear layer to measure ({type(model).__name__})")
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)


def magnitude_prune(model: nn.Module, amount: float, *, inplace: bool = False) -> nn.Module:
    """Zero the smallest-magnitude weights over all ``Conv2d`` and ``Linear`` layers together (global L1
    unstructured pruning, ``torch.nn.utils.prune``), made permanent.

    Biases and BatchNorm parameters are kept. The result has the same layers and shapes as before, so it costs the
    same compute: see :func:`prune_channels` for speed.

    Args:
        model: a model with ``Conv2d`` or ``Linear`` layers.
        amount: the fraction of those weights to zero, 0 <= amount < 1.
        inplace: prune ``model`` itself instead of a copy.

    Returns:
        The pruned model: a copy unless ``inplace``.

    Raises:
        TypeError, ValueError: a malformed argument, or a model without such layers.
    """
    amount = check_float("amount", amount, 0.0, 1.0, high_open=True)
    check_model("model", model)
    model = model if check_bool("inplace", inplace) else copy.deepcopy(model)
    params = [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]
    if not params:
        raise ValueError(f"model has no Conv2d or Linear layer to prune ({type(model).__name__})")
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for module, name in params:
        prune.remove(module, name)  # fold the mask into the weight: a plain module again
    return model


def _top_channels(bn: nn.BatchNorm2d, keep: int) -> torch.Tensor:
    """Indices (ascending) of the ``keep`` channels with the largest ``|gamma|`` of ``bn``."""
    return bn.weight.detach().abs().topk(keep).indices.sort().values


def _copy_bn(new: nn.BatchNorm2d, old: nn.BatchNorm2d, idx: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, name).data.copy_(getattr(old, name).data[idx])
    new.num_batches_tracked.data.copy_(old.num_batches_tracked.data)


def prune_channels(model: DSConvNet, amount: float) -> DSConvNet:
    """A new, narrower :class:`~hrlib.models.DSConvNet` without each layer's output channels whose BatchNorm
    scale ``|gamma|`` is smallest (at least one channel is kept).

    Every channel set (the stem's output and each depthwise-separable block's output) loses the same fraction, so
    the result is an ordinary ``DSConvNet`` with smaller ``widths``: it computes fewer multiply-adds and runs faster
    on any hardware. Accuracy usually drops and recovers with a short fine-tune.

    Args:
        model: a ``DSConvNet`` with its original layout; it is not changed.
        amount: the fraction of each layer's channels to remove, 0 <= amount < 1.

    Returns:
        The narrower copy, on the CPU, in eval mode.

    Raises:
        TypeError, ValueError: a malformed argument, or a changed layout (e.g. by ``add_dropblock``).
    """
    if not isinstance(model, DSConvNet):
        raise TypeError(f"model must be a hrlib.models.DSConvNet (channel pruning follows its layout), "
                        f"got {type(model).__name__}")
    amount = check_float("amount", amount, 0.0, 1.0, high_open=True)
    old_stem, *old_stages = model.features
    if not all(isinstance(block, DepthwiseSeparableConv) for stage in old_stages for block in stage):
        raise ValueError("model must have DSConvNet's original layout (stages of DepthwiseSeparableConv blocks); "
                         "this one was changed, e.g. by add_dropblock: prune before adding DropBlock")
    widths = [old_stem[0].out_channels] + [stage[0][3].out_channels for stage in old_stages]
    new_widths = [max(1, round(w * (1 - amount))) for w in widths]
    linear = model.head[-1]
    new = DSConvNet(linear.out_features, old_stem[0].in_channels, new_widths).eval()
    new_stem, *new_stages = new.features

    keep = _top_channels(old_stem[1], new_widths[0])
    new_stem[0].weight.data.copy_(old_stem[0].weight.data[keep])
    _copy_bn(new_stem[1], old_stem[1], keep)
    for old_stage, new_stage, width in zip(old_stages, new_stages, new_widths[1:], strict=True):
        for old_block, new_block in zip(old_stage, new_stage, strict=True):
            new_block[0].weight.data.copy_(old_block[0].weight.data[keep])  # depthwise: one filter per channel
            _copy_bn(new_block[1], old_block[1], keep)
            out = _top_channels(old_block[4], width)
            new_block[3].weight.data.copy_(old_block[3].weight.data[out][:, keep])  # pointwise: out x in
            _copy_bn(new_block[4], old_block[4], out)
            keep = out
    new.head[-1].weight.data.copy_(linear.weight.data[:, keep])
    new.head[-1].bias.data.copy_(linear.bias.data)
    return new
