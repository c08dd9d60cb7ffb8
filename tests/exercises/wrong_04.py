"""Plausible wrong answers for exercise 04: {exercise id: [(wrong function, a word its rejection must contain)]}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def _mix(x, lam, partner, eps=1e-6, *, dims=(2, 3), unbiased=True, eps_mode="inside", swap=False, detach=True,
         keepdim=True, lam_shape=True, inplace=False):
    mu = x.mean(dim=dims, keepdim=keepdim)
    var = x.var(dim=dims, keepdim=keepdim, unbiased=unbiased)
    sig = {"inside": (var + eps).sqrt(), "outside": var.sqrt() + eps, "none": var.sqrt(), "fixed": (var + 1e-6).sqrt()}[
        eps_mode]
    if detach:
        mu, sig = mu.detach(), sig.detach()
    lam = lam.view(-1, 1, 1, 1) if lam_shape else lam
    a, b = (1 - lam, lam) if swap else (lam, 1 - lam)
    mu_mix, sig_mix = a * mu + b * mu[partner], a * sig + b * sig[partner]
    if inplace:
        return x.sub_(mu).div_(sig).mul_(sig_mix).add_(mu_mix)
    return sig_mix * (x - mu) / sig + mu_mix


def mix_biased(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, unbiased=False)


def mix_eps_outside(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, eps_mode="outside")


def mix_no_eps(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, eps_mode="none")


def mix_fixed_eps(x, lam, partner, eps=1e-6):  # ignores the eps argument
    return _mix(x, lam, partner, eps, eps_mode="fixed")


def mix_batch_stats(x, lam, partner, eps=1e-6):  # mu over (N, H, W): (1, C, 1, 1), mu[partner] fails
    return _mix(x, lam, partner, eps, dims=(0, 2, 3))


def mix_batch_stats_expanded(x, lam, partner, eps=1e-6):  # batch statistics broadcast to every sample
    mu = x.mean(dim=(0, 2, 3), keepdim=True).expand(x.shape[0], -1, 1, 1)
    sig = (x.var(dim=(0, 2, 3), keepdim=True) + eps).sqrt().expand(x.shape[0], -1, 1, 1)
    lam = lam.view(-1, 1, 1, 1)
    return (lam * sig + (1 - lam) * sig[partner]) * (x - mu) / sig + lam * mu + (1 - lam) * mu[partner]


def mix_over_channels(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, dims=(1, 2, 3))


def mix_across_channels(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, dims=(1,))


def mix_lam_on_partner(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, swap=True)


def mix_not_detached(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, detach=False)


def mix_no_keepdim(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, keepdim=False)


def mix_lam_not_reshaped(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, lam_shape=False)


def mix_in_place(x, lam, partner, eps=1e-6):
    return _mix(x, lam, partner, eps, inplace=True) if not x.requires_grad else _mix(x, lam, partner, eps)


def mix_numpy(x, lam, partner, eps=1e-6):  # leaves torch: no gradient
    return torch.from_numpy(_mix(x.detach(), lam, partner, eps).numpy())


def mix_variances(x, lam, partner, eps=1e-6):  # mixes variances instead of standard deviations
    mu, var = x.mean(dim=(2, 3), keepdim=True).detach(), x.var(dim=(2, 3), keepdim=True).detach() + eps
    lam = lam.view(-1, 1, 1, 1)
    var_mix = lam * var + (1 - lam) * var[partner]
    return var_mix.sqrt() * (x - mu) / var.sqrt() + lam * mu + (1 - lam) * mu[partner]


def mix_float64(x, lam, partner, eps=1e-6):
    return _mix(x.double(), lam, partner, eps)


def mix_no_return(x, lam, partner, eps=1e-6):
    _mix(x, lam, partner, eps)


def _standardize(images, domains, *, groups=None, axis=(0, 1, 2), scale=255.0, ddof=0, average=False,
                 dtype=np.float32):
    groups = list(domains) if groups is None else list(groups)
    x = np.asarray(images, dtype=np.float64) / 255.0
    out = np.empty(x.shape, np.float64)
    for g in dict.fromkeys(groups):
        idx = [i for i, gi in enumerate(groups) if gi == g]
        if average:
            mean, std = x[idx].mean(axis=(1, 2)).mean(0), x[idx].std(axis=(1, 2)).mean(0)
        else:
            mean, std = x[idx].mean(axis=axis), x[idx].std(axis=axis, ddof=ddof)
        out[idx] = (np.asarray(images[idx], dtype=np.float64) / scale - mean) / std
    return out.astype(dtype)


def std_per_image(images, domains):
    return _standardize(images, domains, groups=range(len(domains)))


def std_not_per_channel(images, domains):
    return _standardize(images, domains, axis=None)


def std_forgot_255(images, domains):
    return _standardize(images, domains, scale=1.0)


def std_pooled_all(images, domains):
    return _standardize(images, domains, groups=[0] * len(domains))


def std_averaged_images(images, domains):
    return _standardize(images, domains, average=True)


def std_sample_std(images, domains):
    return _standardize(images, domains, ddof=1)


def std_float64(images, domains):
    return _standardize(images, domains, dtype=np.float64)


def std_list(images, domains):
    return list(_standardize(images, domains))


def std_in_place(images, domains):  # normalises into the caller's array
    out = _standardize(images, domains)
    images[...] = 0
    return out


def std_swapped_domains(images, domains):  # statistics looked up for the wrong domain
    names = list(dict.fromkeys(domains))
    shifted = {d: names[(k + 1) % len(names)] for k, d in enumerate(names)}
    x = np.asarray(images, dtype=np.float64) / 255.0
    stats = {d: (x[[i for i, di in enumerate(domains) if di == d]].mean((0, 1, 2)),
                 x[[i for i, di in enumerate(domains) if di == d]].std((0, 1, 2))) for d in names}
    return np.stack([(x[i] - stats[shifted[d]][0]) / stats[shifted[d]][1] for i, d in enumerate(domains)]).astype(
        np.float32)


WRONG: dict[str, list[tuple[Callable[..., Any], str]]] = {
    "04.mixstyle": [
        (mix_biased, "unbiased"),
        (mix_eps_outside, "inside the square root"),
        (mix_no_eps, "add eps"),
        (mix_fixed_eps, "`eps` argument"),
        (mix_batch_stats, "per sample"),
        (mix_batch_stats_expanded, "per sample"),
        (mix_over_channels, "per channel"),
        (mix_across_channels, "per channel"),
        (mix_lam_on_partner, "own statistics"),
        (mix_not_detached, "detach"),
        (mix_no_keepdim, "keepdim"),
        (mix_lam_not_reshaped, "(N, 1, 1, 1)"),
        (mix_in_place, "in place"),
        (mix_numpy, "no gradient"),
        (mix_variances, "not the variances"),
        (mix_float64, "dtype"),
        (mix_no_return, "return"),
    ],
    "04.per_domain_standardize": [
        (std_per_image, "not each image's"),
        (std_not_per_channel, "per channel"),
        (std_forgot_255, "255"),
        (std_pooled_all, "all domains pooled"),
        (std_averaged_images, "pool all pixels"),
        (std_sample_std, "population std"),
        (std_float64, "float32"),
        (std_list, "NumPy array"),
        (std_in_place, "in place"),
        (std_swapped_domains, "mean 0 and std 1"),
        (lambda images, domains: None, "return"),
    ],
}
