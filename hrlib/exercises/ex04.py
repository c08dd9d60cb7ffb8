"""Checks for lesson 04, "cross-domain preprocessing": the MixStyle forward pass and per-domain standardization.

The references are hrlib's own: :func:`hrlib.domain.style.mixstyle` (the deterministic core of MixStyle, Zhou et al.,
ICLR 2021) and :func:`hrlib.domain.domain_stats` (per-channel mean and population std of a domain, 0-1 units).
Each check compares with the reference on a few small cases and, when an answer differs, recognises plausible
mistakes by computing what they return.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch

from hrlib.domain import domain_stats
from hrlib.domain.style import mixstyle
from hrlib.exercises import NotYet, call_answer, describe_value, register

# ----------------------------------------------------------------------------------------- MixStyle

MixCase = tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, float]
_SHAPE_HINT = ("mu and sig keep one value per sample and channel, shape (N, C, 1, 1) (x.mean(dim=(2, 3), "
               "keepdim=True)), and lam is reshaped to (N, 1, 1, 1) to broadcast")


def _styled(gen: torch.Generator, n: int, c: int, h: int, w: int, scale: float, offset: float) -> torch.Tensor:
    """Features with a different mean and std per sample and channel (float32)."""
    sig = scale * (0.3 + 2.7 * torch.rand(n, c, 1, 1, generator=gen, dtype=torch.float64))
    mu = offset + 2.0 * scale * torch.randn(n, c, 1, 1, generator=gen, dtype=torch.float64)
    return (mu + sig * torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)).float()


@functools.cache
def _mix_cases() -> tuple[MixCase, ...]:
    gen = torch.Generator().manual_seed(4)
    x1, x2 = _styled(gen, 4, 3, 5, 6, 1.0, 0.0), _styled(gen, 6, 2, 4, 7, 2.0, 1.0)
    x3 = _styled(gen, 3, 2, 3, 5, 1e-3, 0.5)
    p1, p2, p3 = torch.tensor([2, 0, 3, 1]), torch.tensor([3, 4, 0, 0, 5, 1]), torch.tensor([1, 2, 0])
    lam1, lam2 = torch.tensor([0.3, 0.9, 0.0, 0.6]), torch.tensor([0.1, 0.45, 0.7, 1.0, 0.25, 0.8])
    return (("4 samples, 3 channels", x1, lam1, p1, 1e-6),
            ("6 samples, repeated partners", x2, lam2, p2, 1e-6),
            ("4 samples, eps=0.5", x1, lam1, p1, 0.5),
            ("low-variance features (std ~ 1e-3)", x3, torch.tensor([0.2, 0.5, 1.0]), p3, 1e-6))


def _mix(x: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor, eps: float, *, dims: tuple[int, ...] = (2, 3),
         unbiased: bool = True, eps_mode: str = "inside", swap: bool = False, mix_var: bool = False) -> torch.Tensor:
    """What MixStyle variants return (float64), to recognise mistakes."""
    x = x.double()
    mu = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    sig = {"inside": (var + eps).sqrt(), "outside": var.sqrt() + eps, "none": var.sqrt()}[eps_mode]
    lam = lam.double().view(-1, 1, 1, 1)
    a, b = (1 - lam, lam) if swap else (lam, 1 - lam)
    mu_mix = a * mu + b * mu[partner]
    sig_mix = (a * sig**2 + b * sig[partner] ** 2).sqrt() if mix_var else a * sig + b * sig[partner]
    return sig_mix * (x - mu) / sig + mu_mix


def _mix_mistakes(x: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor, eps: float) -> list[tuple[str, Any]]:
    return [
        ("the variance is the unbiased one (torch.var's default, correction=1), not the biased one", _mix(
            x, lam, partner, eps, unbiased=False)),
        ("eps goes inside the square root: sig = sqrt(var + eps), not sqrt(var) + eps",
         _mix(x, lam, partner, eps, eps_mode="outside")),
        ("add eps to the variance (sig = sqrt(var + eps)) so that a flat channel cannot divide by zero",
         _mix(x, lam, partner, eps, eps_mode="none")),
        ("use the `eps` argument, not a fixed 1e-6", _mix(x, lam, partner, 1e-6)),
        ("lam weighs the sample's own statistics: mu_mix = lam * mu + (1 - lam) * mu[partner], not the partner's",
         _mix(x, lam, partner, eps, swap=True)),
        ("compute the statistics per channel: the mean over H and W only (dim=(2, 3)), not over the channels too",
         _mix(x, lam, partner, eps, dims=(1, 2, 3))),
        ("compute the statistics per channel over H and W (dim=(2, 3)), not across the channels (dim=1)",
         _mix(x, lam, partner, eps, dims=(1,))),
        ("mix the standard deviations, sig_mix = lam * sig + (1 - lam) * sig[partner], not the variances",
         _mix(x, lam, partner, eps, mix_var=True)),
    ]


def _rounded(lam: torch.Tensor) -> list[float]:
    return [round(float(v), 3) for v in lam]


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    scale = float(expected.abs().max())
    return bool(((got.double() - expected).abs() <= 1e-5 * (scale + expected.abs())).all())


def _mix_hint(x: torch.Tensor, got: torch.Tensor, expected: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor,
              eps: float) -> str:
    if torch.allclose(got.double(), x.double(), rtol=1e-5, atol=1e-6):
        return ("your output equals the input x: compute mu and sig per sample (over H and W, dim=(2, 3)), not over "
                "the batch, and mix them with the partner's: mu[partner], sig[partner]")
    off = float((got.double() - expected).abs().mean())
    gaps = [(float((got.double() - candidate).abs().mean()), hint) for hint, candidate in
            _mix_mistakes(x, lam, partner, eps)]
    gap, hint = min(gaps)
    if gap < 1e-5 * float(expected.abs().max()) or gap < 0.2 * off:
        return hint
    return ("mu, sig = mean and sqrt(unbiased var + eps) over (H, W) per sample and channel, detached; mu_mix = lam "
            "* mu + (1 - lam) * mu[partner] (same for sig); out = sig_mix * (x - mu) / sig + mu_mix")


def _call_mix(answer: Callable[..., Any], shown: str, x: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor,
              eps: float) -> torch.Tensor:
    try:
        got = call_answer(answer, shown, x, lam.clone(), partner.clone(), eps=eps)
    except NotYet as exc:
        message = str(exc)
        if any(s in message for s in ("out of bounds", "must match", "size of tensor", "shape")):
            message += f". Hint: {_SHAPE_HINT}"
        raise NotYet(message) from None
    if got is None:
        raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(x.shape):
        raise NotYet(f"{shown} returned {describe_value(got)}; expected a torch.Tensor of shape {tuple(x.shape)} "
                     f"(like x)")
    if got.dtype != x.dtype:
        raise NotYet(f"{shown} returned dtype {got.dtype}; keep x's dtype ({x.dtype})")
    if not bool(torch.isfinite(got).all()):
        raise NotYet(f"{shown} returned NaN or inf values: divide by sig = sqrt(var + eps), which is never 0")
    return got


@register("04.mixstyle")
def check_mixstyle(answer: Callable[..., Any]) -> str:
    """Check a learner's MixStyle mix of per-sample feature statistics (values and gradient).

    Args:
        answer: ``answer(x, lam, partner, eps=1e-6) -> tensor`` shaped and typed like ``x``.

    Returns:
        The PASS message.

    Raises:
        NotYet: a wrong answer, with a hint.
    """
    name = getattr(answer, "__name__", "mixstyle_forward")
    for case, x, lam, partner, eps in _mix_cases():
        shown = f"{name}(<x {tuple(x.shape)}>, lam={_rounded(lam)}, partner={partner.tolist()}, eps={eps}) [{case}]"
        before = x.clone()
        got = _call_mix(answer, shown, x, lam, partner, eps)
        if not torch.equal(x, before):
            raise NotYet(f"{shown} changed its input x in place: compute a new tensor (x - mu, not x.sub_(mu))")
        expected = mixstyle(x.double(), lam, partner, eps)
        if not _close(got, expected):
            diff = float((got.double() - expected).abs().max())
            raise NotYet(f"{shown}: max difference {diff:.3g} from the reference. Hint: "
                         f"{_mix_hint(x, got, expected, lam, partner, eps)}")
    case, x, lam, partner, eps = _mix_cases()[0]
    shown = f"{name}(<x {tuple(x.shape)} with requires_grad=True>, lam={_rounded(lam)}, partner={partner.tolist()})"
    weights = torch.linspace(-1.0, 2.0, x.numel()).reshape(x.shape)
    leaf = x.clone().requires_grad_(True)
    got = _call_mix(answer, shown, leaf, lam, partner, eps)
    if not got.requires_grad:
        raise NotYet(f"{shown}: no gradient flows back to x; compute with torch operations on x itself (no .numpy(), "
                     f".data or torch.no_grad()), and detach only mu and sig")
    (grad,) = torch.autograd.grad((got * weights).sum(), leaf)
    ref_leaf = x.clone().requires_grad_(True)
    (ref_grad,) = torch.autograd.grad((mixstyle(ref_leaf, lam, partner, eps) * weights).sum(), ref_leaf)
    if not _close(grad, ref_grad.double()):
        raise NotYet(f"{shown}: the gradient with respect to x differs from the reference (max difference "
                     f"{float((grad - ref_grad).abs().max()):.3g}). Hint: detach mu and sig (mu.detach(), "
                     f"sig.detach()): in MixStyle no gradient flows through the statistics")
    return f"the per-sample, per-channel statistics mixed with lam, detached ({len(_mix_cases()) + 1} cases)"


# ----------------------------------------------------------------------------------------- per-domain standardization

StdCase = tuple[str, np.ndarray, tuple[Hashable, ...]]


@functools.cache
def _std_cases() -> tuple[StdCase, ...]:
    from hrlib.data.slides import make_slide

    sites = ("A", "B", "A", "B", "B", "A")
    slides = np.stack([make_slide(32, seed=i, site=s, target_frac=0.1).image for i, s in enumerate(sites)])
    rng = np.random.default_rng(4)
    casts = {0: (40, 90, 200), 1: (180, 120, 60), 2: (120, 200, 140)}
    domains = (2, 0, 1, 0, 2, 0, 1)
    spread = rng.uniform(10, 40, (len(domains), 1, 1, 3)) * rng.standard_normal((len(domains), 6, 5, 3))
    small = np.clip(np.array([casts[d] for d in domains])[:, None, None, :] + spread, 0, 255).astype(np.uint8)
    return (("six 32 px slides from sites A and B", slides, sites),
            ("seven 6x5 images from three domains 0, 1, 2 (unsorted)", small, domains))


def _reference(images: np.ndarray, domains: Sequence[Hashable]) -> np.ndarray:
    out = np.empty(images.shape, np.float32)
    for d in dict.fromkeys(domains):
        idx = [i for i, di in enumerate(domains) if di == d]
        mean, std = domain_stats([images[i] for i in idx])
        out[idx] = (images[idx].astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)
    return out


def _per_group(images: np.ndarray, domains: Sequence[Hashable], stats: Callable[[np.ndarray], tuple[Any, Any]],
               *, scale: float = 255.0, groups: Sequence[Hashable] | None = None) -> np.ndarray:
    """Standardize ``images / scale`` with ``stats(x)`` of each group's images (in 0-1 units)."""
    groups = list(domains) if groups is None else list(groups)
    out = np.empty(images.shape, np.float64)
    x = images.astype(np.float64) / 255.0
    for g in dict.fromkeys(groups):
        idx = [i for i, gi in enumerate(groups) if gi == g]
        mean, std = stats(x[idx])
        out[idx] = (images[idx].astype(np.float64) / scale - mean) / std
    return out


def _std_mistakes(images: np.ndarray, domains: Sequence[Hashable]) -> list[tuple[str, np.ndarray]]:
    per_channel = lambda x: (x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2)))  # noqa: E731
    return [
        ("use each domain's statistics (all its images pooled), not each image's own",
         _per_group(images, domains, per_channel, groups=range(len(domains)))),
        ("compute the statistics per channel (a mean and std for R, G and B: axis=(0, 1, 2)), not one number for "
         "all channels", _per_group(images, domains, lambda x: (x.mean(), x.std()))),
        ("the statistics are in 0-1 units: divide the image by 255 before subtracting the mean",
         _per_group(images, domains, per_channel, scale=1.0)),
        ("standardize each domain with its own statistics, not those of all domains pooled",
         _per_group(images, domains, per_channel, groups=[0] * len(domains))),
        ("pool all pixels of the domain's images; averaging the per-image means and stds misses the spread between "
         "images", _per_group(images, domains, lambda x: (x.mean(axis=(1, 2)).mean(0), x.std(axis=(1, 2)).mean(0)))),
        ("use the population std (np.std's default, ddof=0), not the sample std (ddof=1)",
         _per_group(images, domains, lambda x: (x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2), ddof=1)))),
    ]


def _std_hint(images: np.ndarray, domains: Sequence[Hashable], got: np.ndarray, expected: np.ndarray) -> str:
    off = np.abs(got - expected).mean()
    gaps = [(float(np.abs(got - candidate).mean()), hint) for hint, candidate in _std_mistakes(images, domains)]
    gap, hint = min(gaps)
    if gap < 1e-4 or gap < 0.2 * off:
        return hint
    for d in dict.fromkeys(domains):
        part = got[[i for i, di in enumerate(domains) if di == d]].reshape(-1, 3).astype(np.float64)
        mean, std = part.mean(0), part.std(0)
        if np.abs(mean).max() > 1e-3 or np.abs(std - 1).max() > 1e-3:
            return (f"the output of domain {d!r} should have per-channel mean 0 and std 1 over all its pixels; yours "
                    f"has mean {np.round(mean, 3).tolist()} and std {np.round(std, 3).tolist()}")
    return "out[i] = (images[i] / 255 - mean_d) / std_d with d = domains[i] and (mean_d, std_d) from domain d's images"


@register("04.per_domain_standardize")
def check_per_domain_standardize(answer: Callable[..., Any]) -> str:
    """Check a learner's per-domain standardization: each image with its own domain's statistics.

    Args:
        answer: ``answer(images, domains) -> float32 (N, H, W, 3)``.

    Returns:
        The PASS message.

    Raises:
        NotYet: a wrong answer, with a hint.
    """
    name = getattr(answer, "__name__", "per_domain_standardize")
    for case, images, domains in _std_cases():
        shown = f"{name}(<uint8 images {images.shape}>, domains={list(domains)}) [{case}]"
        given = images.copy()
        got = call_answer(answer, shown, given, list(domains))
        if got is None:
            raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
        if not isinstance(got, np.ndarray) or got.shape != images.shape:
            raise NotYet(f"{shown} returned {describe_value(got)}; expected a NumPy array of shape {images.shape} "
                         f"(np.stack the standardized images)")
        if not np.array_equal(given, images):
            raise NotYet(f"{shown} changed its input images in place: compute a new float array")
        if got.dtype != np.float32:
            raise NotYet(f"{shown} returned dtype {got.dtype}; expected float32 (.astype(np.float32))")
        if not np.all(np.isfinite(got)):
            raise NotYet(f"{shown} returned NaN or inf values")
        expected = _reference(images, domains)
        diff = np.abs(got.astype(np.float64) - expected)
        if (diff > 1e-3 * (1 + np.abs(expected))).any():  # 0.1% of a std: float32 sums over 3072 pixels lose ~0.03%
            raise NotYet(f"{shown}: max difference {diff.max():.3g} from the reference. Hint: "
                         f"{_std_hint(images, domains, got.astype(np.float64), expected)}")
    return f"each image standardized with its own domain's per-channel mean and std ({len(_std_cases())} cases)"
