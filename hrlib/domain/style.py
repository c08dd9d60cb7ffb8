"""Feature-style layers for domain shift (lesson 04): MixStyle and AdaIN as functions and modules, and StyleSwap.

A CNN's per-sample, per-channel feature means and standard deviations carry much of an image's "style" (stain,
scanner, brightness). :class:`MixStyle` mixes them between training samples (Zhou et al., ICLR 2021); :func:`adain`
replaces them by another image's (Huang & Belongie, ICCV 2017), and :class:`StyleSwap` does so in training with
unlabeled target images appended to the batch. Statistics over H, W use the unbiased variance plus
``eps`` inside the square root, as the papers' reference code does. As in torchvision's transforms v2, the functions
check their arguments and compute; the modules hold the parameters and the randomness, and their ``forward`` calls
the unchecked kernels (no validation, no device sync per batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hrlib._checks import check_batch, check_float, check_generator, check_int
from hrlib.domain import _stats

__all__ = ["AdaIN", "MixStyle", "StyleSwap", "adain", "insert_mixstyle", "mixstyle"]

MIX_MODES = ("random", "crossdomain")


def mixstyle(x: Tensor, lam: Tensor, partner: Tensor, eps: float = 1e-6) -> Tensor:
    """MixStyle with given weights and partners (no randomness): each sample's style is mixed with its partner's.

    Per sample and channel, ``mu`` and ``sig = sqrt(var + eps)`` over H, W are computed and detached (no gradient
    flows through the statistics); ``mu_mix = lam * mu + (1 - lam) * mu[partner]`` (same for ``sig``) and
    ``out = sig_mix * (x - mu) / sig + mu_mix``.

    Args:
        x: (N, C, H, W) float features, H * W >= 2.
        lam: N weights in [0, 1], shape (N,) or (N, 1, 1, 1): the share of each sample's own statistics.
        partner: (N,) integer indices into the batch.
        eps: added to the variance, > 0.

    Returns:
        A tensor of the shape and dtype of ``x`` (computed in at least float32).

    Raises:
        TypeError, ValueError: an argument of the wrong type, shape or range (the message names it).
    """
    x = check_batch("x", x, min_pixels=2, finite=False)
    n = x.shape[0]
    if not isinstance(lam, Tensor) or lam.numel() != n or not bool(((lam >= 0) & (lam <= 1)).all()):
        raise ValueError(f"lam must be a tensor of {n} weights in [0, 1], got {lam!r}")
    if (not isinstance(partner, Tensor) or tuple(partner.shape) != (n,) or partner.dtype.is_floating_point
            or bool(((partner < 0) | (partner >= n)).any())):
        raise ValueError(f"partner must be a ({n},) integer tensor of indices in 0..{n - 1}, got {partner!r}")
    return _stats.mixstyle(x, lam, partner, check_float("eps", eps, 0.0, low_open=True))


class MixStyle(nn.Module):
    """MixStyle (Zhou et al., ICLR 2021): in training, mix each sample's feature statistics with a partner's.

    The identity in eval mode, when ``p == 0`` and for batches of one sample. Otherwise each forward makes all its
    draws in one place (:meth:`randomize`), from ``generator``, in this order: ``u = rand(())`` (mix only if
    ``u < p``; nothing else is drawn otherwise); ``lam ~ Beta(alpha, alpha)`` per sample, shape (N, 1, 1, 1); the
    partners (:meth:`partners`): ``randperm(N)`` for ``mix="random"``; for ``mix="crossdomain"`` the paper's
    convention that the batch is two domains' halves: the first half's partners are the second half in
    ``randperm(N // 2)`` order, then the second half's are the first half in another ``randperm(N // 2)`` order.
    With per-sample ids (:meth:`set_domain`), or an odd N (halves N // 2 and the rest), each sample's partner is
    drawn uniformly among the samples of another domain (from the whole batch if there is none), via
    ``rand(N, N)``. Then the deterministic kernel of :func:`mixstyle`, unchecked.

    Args:
        p: probability in [0, 1] of mixing a batch.
        alpha: Beta parameter, > 0 (0.1 in the paper, which makes lam mostly near 0 or 1).
        eps: added to the variance, > 0.
        mix: ``"random"`` or ``"crossdomain"``.
        generator: the CPU ``torch.Generator`` that owns the draws (the layers :func:`insert_mixstyle` adds share
            the one given), or None for torch's global RNG. Draws happen on the CPU and are moved to the device.
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6, mix: str = "random",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.p, self.eps = check_float("p", p, 0.0, 1.0), check_float("eps", eps, 0.0, low_open=True)
        self.alpha = check_float("alpha", alpha, 0.0, low_open=True)
        if mix not in MIX_MODES:
            raise ValueError(f"mix must be one of {MIX_MODES}, got {mix!r}")
        self.mix = mix
        self.generator = check_generator("generator", generator)
        self.domain_ids: Tensor | None = None

    def set_domain(self, domain: int | Tensor | None) -> None:
        """Set the per-sample domain ids of the next batches, for ``mix="crossdomain"``.

        Args:
            domain: a (N,) integer tensor of ids >= 0; an int (one domain for the whole batch) or None clears the
                ids, and the halves convention applies.
        """
        ids = _stats.check_domain(domain, None)
        self.domain_ids = ids if isinstance(ids, Tensor) else None

    def partners(self, n: int) -> Tensor:
        """Draw the partners of a batch of ``n`` samples (>= 1), as the class describes.

        Returns:
            (n,) int64 partner indices, on the CPU.

        Raises:
            ValueError: per-sample domain ids are set, but not ``n`` of them.
        """
        return self._partners(check_int("n", n))

    def randomize(self, n: int) -> tuple[Tensor, Tensor] | None:
        """Make all the draws of one training forward on a batch of ``n`` samples (>= 1), in the documented order.

        Returns:
            None when this batch is not mixed, else ``(lam, partner)``: (n, 1, 1, 1) float32 weights and (n,) int64
            partner indices, on the CPU.
        """
        return self._draw(check_int("n", n))

    def _draw(self, n: int) -> tuple[Tensor, Tensor] | None:
        if torch.rand((), generator=self.generator).item() >= self.p:
            return None
        # Beta(alpha, alpha) as torch.distributions.Beta samples it (its kernel), which takes no generator itself
        concentration = torch.tensor([self.alpha, self.alpha]).expand(n, 1, 1, 1, 2)
        lam = torch._sample_dirichlet(concentration, generator=self.generator).select(-1, 0)
        return lam, self._partners(n)

    def _partners(self, n: int) -> Tensor:
        g = self.generator
        if self.mix == "random":
            return torch.randperm(n, generator=g)
        if self.domain_ids is None and n % 2 == 0:
            half = n // 2
            first = torch.arange(half, n)[torch.randperm(half, generator=g)]  # the first half's: the second half
            return torch.cat([first, torch.arange(half)[torch.randperm(half, generator=g)]])
        ids = self.domain_ids if self.domain_ids is not None else (torch.arange(n) >= n // 2).long()
        if ids.numel() != n:
            raise ValueError(f"domain ids must be one per sample: {ids.numel()} ids were set for a batch of {n}")
        other = (ids[:, None] != ids[None, :]).float()
        return (torch.rand(n, n, generator=g) + other).argmax(1)  # a random other-domain sample if there is one

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` (N, C, H, W), mixed with probability ``p`` in training, else unchanged."""
        if not self.training or self.p == 0.0 or x.shape[0] < 2:
            return x
        draws = self._draw(x.shape[0])
        return x if draws is None else _stats.mixstyle(x, *draws, self.eps)

    def extra_repr(self) -> str:
        """The settings shown in the module's repr."""
        return f"p={self.p}, alpha={self.alpha}, eps={self.eps}, mix={self.mix!r}"


def insert_mixstyle(model: nn.Module, stages: Sequence[int] = (0, 1), **kwargs: object) -> nn.Module:
    """Insert a :class:`MixStyle` after the given stages of ``model.features``, in place.

    Stage ``i`` becomes ``nn.Sequential(stage, MixStyle(**kwargs))``; ``cam_layer`` (the last stage) is unchanged.
    A ``generator`` in ``kwargs`` is shared by all the inserted layers (they draw from it in forward order).

    Args:
        model: a classifier whose ``features`` is an ``nn.Sequential`` of stages (``hrlib.models``).
        stages: indices into ``model.features`` (negative from the end), never the last one: its statistics feed
            the head, and the paper found mixing there hurts.
        **kwargs: the arguments of :class:`MixStyle`.

    Returns:
        ``model``.

    Raises:
        TypeError, ValueError: a bad model, stage index or MixStyle argument; the model is then unchanged.
    """
    features = getattr(model, "features", None)
    if not isinstance(model, nn.Module) or not isinstance(features, nn.Sequential):
        raise TypeError(f"model must be an nn.Module whose `features` is an nn.Sequential of stages "
                        f"(hrlib.models), got {type(model).__name__}")
    n = len(features)
    if isinstance(stages, str) or not isinstance(stages, Sequence) or len(stages) == 0:
        raise TypeError(f"stages must be a non-empty sequence of indices into model.features, got {stages!r}")
    indices = [check_int(f"stages[{i}]", s, -n) for i, s in enumerate(stages)]
    if any(i >= n - 1 or i == -1 for i in indices):
        raise ValueError(f"stages must be early stages of model.features (0..{n - 2} or -{n}..-2), never the last "
                         f"one ({n - 1}), got {stages!r}")
    MixStyle(**kwargs)  # type: ignore[arg-type]  # validate before changing the model
    for i in sorted({i % n for i in indices}):
        stage = features[i]
        if isinstance(stage, nn.Sequential) and len(stage) and isinstance(stage[-1], MixStyle):
            raise ValueError(f"stages must not repeat a stage that already has a MixStyle, got stage {i}")
        features[i] = nn.Sequential(stage, MixStyle(**kwargs))  # type: ignore[arg-type]
    return model


def adain(content: Tensor, style: Tensor, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalization (Huang & Belongie, 2017): ``content`` with the ``style``'s statistics.

    ``(content - mu_c) / sig_c * sig_s + mu_s`` with per-sample, per-channel mean and ``sqrt(var + eps)`` over H, W.

    Args:
        content: (N, C, H, W) float features, H * W >= 2.
        style: (N, C, H', W') or (1, C, H', W') (one style for all) float features, H' * W' >= 2.
        eps: added to the variances, > 0.

    Returns:
        A tensor shaped like ``content`` whose statistics are the style's.

    Raises:
        TypeError, ValueError: an argument of the wrong type, shape or range (the message names it).
    """
    content = check_batch("content", content, min_pixels=2, finite=False)
    style = check_batch("style", style, min_pixels=2, finite=False)
    if style.shape[1] != content.shape[1] or style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"style must have {content.shape[1]} channels and 1 or {content.shape[0]} samples "
                         f"(as content), got shape {tuple(style.shape)}")
    return _stats.adain(content, style, check_float("eps", eps, 0.0, low_open=True))


class AdaIN(nn.Module):
    """:func:`adain` as a module: ``AdaIN(eps)(content, style)``; its forward calls the unchecked kernel.

    Args:
        eps: added to the variances, > 0.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = check_float("eps", eps, 0.0, low_open=True)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        """Return ``content`` (N, C, H, W) with the statistics of ``style`` ((N or 1), C, H', W')."""
        return _stats.adain(content, style, self.eps)


class StyleSwap(nn.Module):
    """AdaIN toward unlabeled target images in training (lesson 04's "AdaIN" technique).

    The training loop appends ``n_style`` target images to each batch and sets ``n_style`` (0 turns the layer off;
    ``hrlib.domain.tensor_fit.fit_tensors`` does both): each of the N source samples takes the statistics of a
    random one of them with probability ``p`` (:func:`adain`'s kernel), and the style samples are dropped from the
    output. The identity in eval mode. Draws per training forward, from ``generator``, in this order: each source
    sample's style sample (``randint(n_style, (N,))``), then whether it takes it (``rand(N, 1, 1, 1) < p``).

    Args:
        p: probability in [0, 1] that a source sample takes a target style.
        eps: added to the variances, > 0.
        generator: the CPU ``torch.Generator`` that owns the draws, or None for torch's global RNG.
    """

    def __init__(self, p: float = 0.5, eps: float = 1e-5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.p, self.eps = check_float("p", p, 0.0, 1.0), check_float("eps", eps, 0.0, low_open=True)
        self.generator = check_generator("generator", generator)
        self.n_style = 0

    def forward(self, x: Tensor) -> Tensor:
        """Return the first N samples of ``x`` (N + n_style, C, H, W), restyled, in training; else ``x``."""
        if not self.training or self.n_style == 0:
            return x
        src, style = x[:-self.n_style], x[-self.n_style:].detach()
        pick = style[torch.randint(len(style), (len(src),), generator=self.generator)]
        use = (torch.rand(len(src), 1, 1, 1, generator=self.generator) < self.p).to(x.device, x.dtype)
        return use * _stats.adain(src, pick, self.eps) + (1 - use) * src
