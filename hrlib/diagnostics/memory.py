"""Memory and time of one training step (lesson 06): forward + backward + SGD step, under mixed precision and
checkpointing.

Modes (:data:`MODES`): ``"fp32"``; ``"amp"`` (``torch.autocast``: float16 with ``torch.amp.GradScaler`` on CUDA,
bfloat16 elsewhere); ``"checkpoint"`` (each child of ``model.features`` recomputed in the backward pass, see
:class:`Checkpointed`); ``"amp+checkpoint"``. :func:`profile_step` measures one mode, :func:`compare_modes` several
side by side, :func:`largest_batch` the largest batch that fits a memory budget.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from hrlib._checks import check_device, check_int, check_model
from hrlib.models.cost import SavedBytes
from hrlib.models.networks import bare_copy

__all__ = ["MODES", "Checkpointed", "StepProfile", "compare_modes", "largest_batch", "profile_step"]

MODES: tuple[str, ...] = ("fp32", "amp", "checkpoint", "amp+checkpoint")


def _check_stages(model: object, mode: str) -> nn.Module:
    """``model`` if it is a module with ``features`` (``nn.Sequential``) and ``head``; ``mode`` is named in errors."""
    if not isinstance(getattr(check_model("model", model), "features", None), nn.Sequential) \
            or not hasattr(model, "head"):
        raise TypeError(f"model must have `features` (nn.Sequential) and `head`"
                        f"{f' for mode {mode!r}' if mode else ''}, got {type(model).__name__}")
    return model


@contextlib.contextmanager
def _frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Point the BatchNorm buffers of ``module`` at throw-away copies, so a recompute leaves the real ones alone."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    names = ("running_mean", "running_var", "num_batches_tracked")
    kept = [{n: getattr(bn, n) for n in names} for bn in bns]
    for bn, buffers in zip(bns, kept, strict=True):
        for n, t in buffers.items():
            if t is not None:
                setattr(bn, n, t.clone())
    try:
        yield
    finally:
        for bn, buffers in zip(bns, kept, strict=True):
            for n, t in buffers.items():
                setattr(bn, n, t)


class Checkpointed(nn.Module):
    """Run ``model`` checkpointing each stage.

    Only each stage's input is kept for the backward pass; the stage is recomputed there
    (``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``). The wrapper shares ``model``'s parameters
    and changes nothing in it; BatchNorm running statistics are updated once per step, not again in the recompute.

    Args:
        model: a model with ``features`` (an ``nn.Sequential`` of stages) and ``head``, like hrlib's models.

    Raises:
        TypeError: ``model`` has no such ``features`` and ``head``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = _check_stages(model, "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model, one checkpointed stage at a time.

        Args:
            x: (N, C, H, W) images.

        Returns:
            The model's logits.
        """
        for stage in self.model.features:
            x = checkpoint(stage, x, use_reentrant=False,
                           context_fn=lambda s=stage: (contextlib.nullcontext(), _frozen_bn_stats(s)))
        return self.model.head(x)


@dataclass(frozen=True)
class StepProfile:
    """One training step measured by :func:`profile_step`.

    Args:
        mode: one of :data:`MODES`.
        batch_size: images per step.
        image_size: their side, px.
        peak_bytes: on CUDA, the rise of ``torch.cuda.max_memory_allocated`` over the step; elsewhere
            ``saved_bytes`` plus, in checkpoint modes, the largest stage's own activations, which the backward
            recomputes one stage at a time (an estimate from saved tensors: the CPU has no allocator peak counter).
        saved_bytes: bytes autograd keeps for the backward pass during the forward (once per storage, parameters
            and buffers excluded; checkpointed stages count only their inputs, not their recompute).
        seconds: median wall time of one step (NaN when not timed).
        device: where it ran, e.g. ``"cpu"``.
    """

    mode: str
    batch_size: int
    image_size: int
    peak_bytes: int
    saved_bytes: int
    seconds: float
    device: str


def _check_mode(name: str, mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"{name} must be one of {list(MODES)}, got {mode!r}")
    return str(mode)


def _infer(model: nn.Module, kind: type[nn.Module], attr: str, name: str) -> int:
    layers = [m for m in model.modules() if isinstance(m, kind)]
    if not layers and name == "in_channels":  # not an argument here: the model's first conv sets the input
        raise ValueError(f"model must contain an nn.Conv2d (its in_channels sets the images' channels), got "
                         f"{type(model).__name__}")
    if not layers:
        raise ValueError(f"{name} must be given: the model has no {kind.__name__} to infer it from")
    return int(getattr(layers[0 if attr == "in_channels" else -1], attr))


def _largest_stage_bytes(model: nn.Module, x: torch.Tensor, amp: bool, dtype: torch.dtype) -> int:
    """Bytes one stage of ``model.features`` saves when recomputed, without its input (a counted boundary) and
    the parameters/buffers. Only live tensors are excluded: freed addresses get reused."""
    largest = 0
    with torch.autocast(x.device.type, dtype=dtype, enabled=amp), _frozen_bn_stats(model):
        for stage in model.features:
            with SavedBytes(model, exclude=(x,)) as recorder:
                x = stage(x)
            largest = max(largest, recorder.total)
    return largest


def _profile(model: nn.Module, batch_size: int, image_size: int, mode: str, num_classes: int,
             repeats: int, device: torch.device) -> StepProfile:
    """Measure on a hook-free deep copy; ``repeats`` may be 0 here (then ``seconds`` is NaN)."""
    clone = bare_copy(model).to(device).train()
    net = Checkpointed(clone) if "checkpoint" in mode else clone
    amp, cuda = "amp" in mode, device.type == "cuda"
    dtype = torch.float16 if cuda else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if amp and cuda else None
    optimizer = torch.optim.SGD(clone.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    in_channels = _infer(clone, nn.Conv2d, "in_channels", "in_channels")
    x = torch.randn(batch_size, in_channels, image_size, image_size, generator=gen).to(device)
    y = torch.randint(num_classes, (batch_size,), generator=gen).to(device)
    def step(hooks: contextlib.AbstractContextManager, backward: bool = True) -> None:
        optimizer.zero_grad(set_to_none=True)
        with hooks, torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = F.cross_entropy(net(x), y)
        if not backward:
            return
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    with SavedBytes(clone) as recorder:  # warm-up, and what the forward saves (all a CPU estimate needs)
        step(contextlib.nullcontext(), backward=cuda or repeats > 0)
    saved_bytes = recorder.total
    peak_bytes = saved_bytes
    if "checkpoint" in mode and not cuda:  # the backward rebuilds one stage at a time: add the largest
        peak_bytes += _largest_stage_bytes(clone, x, amp, dtype)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(contextlib.nullcontext())
        torch.cuda.synchronize(device)
        peak_bytes = torch.cuda.max_memory_allocated(device) - base
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(contextlib.nullcontext())
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2] if times else math.nan
    return StepProfile(mode, batch_size, image_size, peak_bytes, saved_bytes, seconds, str(device))


def _resolve(model: object, mode: object, num_classes: int | None,
             device: str | torch.device | None) -> tuple[nn.Module, str, int, torch.device]:
    mode = _check_mode("mode", mode)
    model = _check_stages(model, mode) if "checkpoint" in mode else check_model("model", model)
    if num_classes is None:
        num_classes = _infer(model, nn.Linear, "out_features", "num_classes")
    num_classes = check_int("num_classes", num_classes)
    _infer(model, nn.Conv2d, "in_channels", "in_channels")  # before any work: a model without a conv is refused
    return model, mode, num_classes, check_device("device", device)


def profile_step(model: nn.Module, *, batch_size: int, image_size: int, mode: str = "fp32",
                 num_classes: int | None = None, repeats: int = 3,
                 device: str | torch.device | None = None) -> StepProfile:
    """Measure one training step of a deep copy of ``model`` (the caller's weights and mode stay as they were).

    Random (batch_size, C, image_size, image_size) images and labels from a fixed generator, cross-entropy, SGD.

    Args:
        model: the classifier; its first ``nn.Conv2d`` sets the images' channels C.
        batch_size: images per step, >= 1.
        image_size: their side, px, >= 1.
        mode: one of :data:`MODES`.
        num_classes: the number of labels (default: ``out_features`` of the last ``nn.Linear``).
        repeats: timed steps after one warm-up, >= 1.
        device: ``"cpu"``, ``"cuda"``, ... (default: :func:`hrlib.config.get_device`).

    Returns:
        The step's memory and time.

    Raises:
        TypeError, ValueError: a malformed argument (the message names it).
    """
    batch_size, image_size = check_int("batch_size", batch_size), check_int("image_size", image_size)
    repeats = check_int("repeats", repeats)
    model, mode, num_classes, device = _resolve(model, mode, num_classes, device)
    return _profile(model, batch_size, image_size, mode, num_classes, repeats, device)


def compare_modes(model: nn.Module, *, batch_size: int, image_size: int, modes: Sequence[str] = MODES,
                  num_classes: int | None = None, repeats: int = 3,
                  device: str | torch.device | None = None) -> list[StepProfile]:
    """:func:`profile_step` for each of several modes in one run, on the same inputs.

    Args:
        model, batch_size, image_size, num_classes, repeats, device: as in :func:`profile_step`.
        modes: a non-empty sequence of :data:`MODES`.

    Returns:
        One profile per mode, in order.

    Raises:
        TypeError, ValueError: a malformed argument (the message names it).
    """
    if isinstance(modes, str) or not isinstance(modes, Sequence) or len(modes) == 0:
        raise TypeError(f"modes must be a non-empty sequence of {list(MODES)}, got {modes!r}")
    modes = [_check_mode(f"modes[{i}]", m) for i, m in enumerate(modes)]
    return [profile_step(model, batch_size=batch_size, image_size=image_size, mode=m, num_classes=num_classes,
                         repeats=repeats, device=device) for m in modes]


def largest_batch(model: nn.Module, *, image_size: int, budget_bytes: int, mode: str = "fp32",
                  max_batch: int = 1024, num_classes: int | None = None,
                  device: str | torch.device | None = None) -> int:
    """Largest batch whose memory (``peak_bytes`` of :class:`StepProfile`) fits a budget.

    Activation memory is linear in the batch, so batches 1 and 2 are measured and the line extrapolated; the
    answer is then checked by measuring it and the next batch (searching further if needed).

    Args:
        model, mode, num_classes, device: as in :func:`profile_step`.
        image_size: the images' side, px, >= 1.
        budget_bytes: the memory budget, >= 1.
        max_batch: the largest batch to consider, >= 1.

    Returns:
        The batch size, 0 if batch 1 does not fit.

    Raises:
        TypeError, ValueError: a malformed argument (the message names it).
    """
    image_size, budget_bytes = check_int("image_size", image_size), check_int("budget_bytes", budget_bytes)
    max_batch = check_int("max_batch", max_batch)
    model, mode, num_classes, device = _resolve(model, mode, num_classes, device)
    cache: dict[int, int] = {}

    def cost(b: int) -> int:
        if b not in cache:
            cache[b] = _profile(model, b, image_size, mode, num_classes, 0, device).peak_bytes
        return cache[b]

    if cost(1) > budget_bytes:
        return 0
    if max_batch == 1:
        return 1
    slope = cost(2) - cost(1)
    guess = max_batch if slope <= 0 else int((budget_bytes - cost(1)) // slope) + 1
    guess = min(max(guess, 1), max_batch)
    lo, hi = 1, max_batch + 1  # cost(lo) fits; hi is the smallest batch known not to fit (or beyond max_batch)
    probe, step = guess, 1
    while hi - lo > 1:
        probe = min(max(probe, lo + 1), hi - 1)
        if cost(probe) <= budget_bytes:
            lo = probe
            probe = lo + step if hi > max_batch else (lo + hi) // 2  # gallop up until something does not fit
            step *= 2
        else:
            hi = probe
            probe = hi - 1 if probe == guess else (lo + hi) // 2
    return lo
