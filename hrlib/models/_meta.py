"""Models on the meta device (shapes without data): refused where weights are needed (training, measuring,
copying), and used to size a model before building it for real (``hrlib train``'s config checks)."""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["activation_bytes", "check_has_data"]


def check_has_data(name: str, model: nn.Module) -> nn.Module:
    """Return ``model`` unless one of its parameters or buffers is on the ``meta`` device (a shape without data, as
    ``torch.device("meta")`` builds); then raise ``ValueError`` naming ``name`` and the tensor."""
    for key, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        if tensor.is_meta:
            raise ValueError(f"{name} must have its weights in memory, got {key} on the meta device (built under "
                             f"torch.device('meta')?): build it on a real device, or fill it with "
                             f"load_state_dict(..., assign=True) first")
    return model


def activation_bytes(model: nn.Module, batch_size: int, resolution: int) -> int | None:
    """Bytes of every leaf module's output in one forward of a ``batch_size`` x 3 x ``resolution``^2 batch, traced
    on the meta device (no memory used): about what training keeps for the backward pass. None if the forward
    fails (training reports that with its own message)."""
    total = 0

    def count(module: nn.Module, inputs: object, output: object) -> None:
        nonlocal total
        total += output.numel() * output.element_size() if isinstance(output, torch.Tensor) else 0

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.empty(batch_size, 3, resolution, resolution, device="meta"))
    except (RuntimeError, ValueError, TypeError, NotImplementedError):
        return None
    finally:
        for h in handles:
            h.remove()
    return total
