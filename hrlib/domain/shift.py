"""A measured domain shift (lesson 04): labeled source sites, an unlabeled target site, and one training harness
for every technique of ``hrlib.domain``, so that each is compared on the same data, seeds and budget.

:func:`make_shift` renders the slides of ``hrlib.data.slides`` at the source sites (labeled), at the target site (a pool
whose labels are used only by the oracle, and a test set). :func:`run` trains a fresh ``DSConvNet`` on in-memory
tensors for one technique and seed and returns the target test accuracy; :data:`TECHNIQUES` lists the names.
Image-level techniques (LAB alignment, FDA, elastic) are computed once per :class:`ShiftData` (``variants``
augmented copies per source image, one drawn per epoch), so that seeds vary only the training.
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F
from albumentations.pytorch import ToTensorV2
from torch import Tensor, nn

from hrlib._checks import check_float, check_int
from hrlib.config import get_device
from hrlib.data.slides import CLASS_NAMES, get_site, make_slide
from hrlib.domain.color import domain_stats, fda, lab_align, lab_reference, source_elastic
from hrlib.domain.crops import cam_crops
from hrlib.domain.norm import DomainSpecificBatchNorm, adain, convert_batchnorm, insert_mixstyle, set_domain
from hrlib.models import DSConvNet

__all__ = ["TECHNIQUES", "RunResult", "ShiftData", "accuracy", "gap_recovered", "make_shift", "run", "run_table",
           "source_transform", "summarize", "train", "transfer_curve"]

TECHNIQUES: tuple[str, ...] = ("source only", "per-domain normalization", "LAB alignment", "FDA", "source elastic",
                               "MixStyle", "AdaIN", "Batch-Instance Norm", "per-domain BN", "CAM-guided crops",
                               "per-domain norm. + BN", "oracle")


@dataclass
class ShiftData:
    """Images (N, H, W, 3) uint8 and labels (N,) int64 of a source-to-target shift.

    ``source``/``source_labels``/``source_domains`` (site index into ``source_sites``); ``pool``: target images
    without labels for the techniques (``pool_labels`` only for the oracle); ``test``/``test_labels``: the target
    evaluation set. ``variants``: augmented copies per source image for the image-level techniques.
    """

    source: np.ndarray
    source_labels: np.ndarray
    source_domains: np.ndarray
    pool: np.ndarray
    pool_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    source_sites: tuple[str, ...]
    target_site: str
    seed: int = 0
    variants: int = 2

    @property
    def size(self) -> int:
        return int(self.source.shape[1])

    @cached_property
    def lab(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Source, pool and test images LAB-aligned to the target pool's reference (L histogram, A/B means)."""
        ref = lab_reference(list(self.pool))
        return tuple(np.stack([lab_align(im, ref) for im in ims]) for ims in (self.source, self.pool, self.test))

    @cached_property
    def fda_variants(self) -> np.ndarray:
        """(variants, N, H, W, 3): each source image with a random target pool image's low-frequency amplitude."""
        beta = max(0.03, 2.5 / self.size)  # albumentations' FDA ignores the mean colour below 2 / side
        t = fda(list(self.pool), beta_limit=(beta, 2 * beta), seed=self.seed)
        return np.stack([np.stack([t(image=im)["image"] for im in self.source]) for _ in range(self.variants)])

    @cached_property
    def elastic_variants(self) -> np.ndarray:
        """(variants, N, H, W, 3): source images under small-alpha elastic deformation (about 1 px RMS)."""
        t = source_elastic(alpha=50.0, sigma=5.0, p=1.0, seed=self.seed)
        return np.stack([np.stack([t(image=im)["image"] for im in self.source]) for _ in range(self.variants)])


def _check_data(data: object) -> ShiftData:
    if not isinstance(data, ShiftData):
        raise TypeError(f"data must be a ShiftData from make_shift, got {type(data).__name__}")
    return data


def _check_model(name: str, model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_callable(name: str, fn: object) -> None:
    if fn is not None and not callable(fn):
        raise TypeError(f"{name} must be callable or None, got {type(fn).__name__} {fn!r:.60}")


def _check_names(name: str, values: object, options: tuple[str, ...], empty: bool = False) -> tuple[str, ...]:
    """A sequence of names from ``options`` (non-empty unless ``empty``), or raise naming ``name``."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or (not values and not empty):
        raise TypeError(f"{name} must be a {'' if empty else 'non-empty '}sequence of names from {options}, got "
                        f"{values!r:.80}")
    unknown = [v for v in values if v not in options]
    if unknown:
        raise ValueError(f"{name} must be names in TECHNIQUES {options}, got {unknown[0]!r}")
    return tuple(values)


def _check_images(name: str, x: object) -> Tensor:
    """A float (N, 3, H, W) tensor of finite values with N >= 1."""
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point() or x.shape[0] == 0 or x.shape[1] != 3:
        raise ValueError(f"{name} must be a float tensor (N, 3, H, W) with N >= 1, got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')} with shape {tuple(getattr(x, 'shape', ()))}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must hold finite values, got NaN or inf")
    return x


def _check_labels(name: str, y: object, n: int | None, model: nn.Module) -> Tensor:
    """A (n,) integer tensor of class indices in [0, the model's logits) (when its last layer is an nn.Linear)."""
    if not isinstance(y, Tensor) or y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool or (
            n is not None and len(y) != n):
        raise ValueError(f"{name} must be a ({'N' if n is None else n},) integer tensor of class indices (one per "
                         f"image of x), got {type(y).__name__} {getattr(y, 'dtype', '')} with shape "
                         f"{tuple(getattr(y, 'shape', ()))}")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    high = linears[-1].out_features if linears else None
    if len(y) and (int(y.min()) < 0 or (high is not None and int(y.max()) >= high)):
        raise ValueError(f"{name} must be class indices in [0, {high}) (the model's logits), got values from "
                         f"{int(y.min())} to {int(y.max())}")
    return y


def make_shift(size: int = 96, *, n_source: int = 60, n_pool: int = 120, n_test: int = 90,
               source: Sequence[str] = ("A", "C"), target: str = "B", seed: int = 0, target_frac: float = 0.1,
               variants: int = 2, progress: Callable | None = None) -> ShiftData:
    """Render a shift: ``n_source`` labeled slides per source site, ``n_pool`` and ``n_test`` target slides.

    ``size``: side in pixels (>= 32); ``source``: site names (``hrlib.data.slides.SITES``) of the labeled domains;
    ``target``: the unseen site; ``seed``: layouts are drawn from it (every split and site has its own layouts);
    ``target_frac``: target diameter / side; ``variants``: augmented copies for the image-level techniques;
    ``progress``: optional wrapper for the rendering loop (e.g. ``tqdm.auto.tqdm``). Classes are balanced.
    """
    size, seed = check_int("size", size, 32), check_int("seed", seed, 0)
    counts = [check_int(n, v) for n, v in (("n_source", n_source), ("n_pool", n_pool), ("n_test", n_test))]
    if isinstance(source, str) or not isinstance(source, Sequence) or not source:
        raise ValueError(f"source must be a non-empty sequence of site names, got {source!r}")
    try:
        sites = tuple(get_site(s).name for s in source)
    except ValueError as exc:
        raise ValueError(f"source must hold site names: {exc}") from exc
    try:
        target = get_site(target).name
    except ValueError as exc:
        raise ValueError(f"target must be a site name: {exc}") from exc
    _check_callable("progress", progress)
    target_frac = check_float("target_frac", target_frac, 0.0, 1.0, low_open=True, hint="target diameter / side")
    if target in sites:
        raise ValueError(f"target must differ from the source sites {sites}, got {target!r}")
    jobs = [(s, d, i) for d, s in enumerate(sites) for i in range(counts[0])]
    jobs += [(target, -1, i) for i in range(counts[1])] + [(target, -2, i) for i in range(counts[2])]
    images, labels = [], []
    for site, split, i in (progress(jobs, desc="rendering slides") if progress else jobs):
        label = i % len(CLASS_NAMES)
        layout_seed = int(np.random.default_rng([seed, split + 2, i]).integers(2**31))
        images.append(make_slide(size, label=label, seed=layout_seed, site=site, target_frac=target_frac).image)
        labels.append(label)
    images, labels = np.stack(images), np.asarray(labels, np.int64)
    n_src = counts[0] * len(sites)
    return ShiftData(images[:n_src], labels[:n_src], np.repeat(np.arange(len(sites)), counts[0]),
                     images[n_src:n_src + counts[1]], labels[n_src:n_src + counts[1]],
                     images[n_src + counts[1]:], labels[n_src + counts[1]:], sites, target, seed,
                     check_int("variants", variants))


def _tensor(images: np.ndarray, stats: tuple[Sequence[float], Sequence[float]]) -> Tensor:
    mean, std = (torch.tensor(s, dtype=torch.float32).view(1, 3, 1, 1) for s in stats)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std


class _StyleSwap(nn.Module):
    """AdaIN toward the target (training only): the batch's last ``n_style`` samples are unlabeled target images;
    each source sample takes a random target sample's statistics with probability ``p``, and the style samples
    are dropped from the batch."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p, self.n_style = p, 0

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.n_style == 0:
            return x
        src, style = x[:-self.n_style], x[-self.n_style:].detach()
        pick = style[torch.randint(len(style), (len(src),))]
        use = (torch.rand(len(src), 1, 1, 1) < self.p).to(x.device, x.dtype)
        return use * adain(src, pick) + (1 - use) * src


def _model(technique: str, num_domains: int) -> nn.Module:
    model = DSConvNet(len(CLASS_NAMES), 3, (16, 32, 64))
    if technique in ("MixStyle",):
        insert_mixstyle(model, (0, 1), p=0.5, alpha=0.1, mix="crossdomain")
    elif technique == "AdaIN":
        model.features[0] = nn.Sequential(model.features[0], _StyleSwap())
    elif technique == "Batch-Instance Norm":
        convert_batchnorm(model, "bin")
    elif technique in ("per-domain BN", "per-domain norm. + BN"):
        convert_batchnorm(model, "dsbn", num_domains=num_domains)
    return model


def _batches(n: int, batch_size: int, gen: torch.Generator, domains: Tensor | None) -> list[Tensor]:
    """Shuffled index batches; with ``domains``, each batch holds one domain only (the batches in random order)."""
    if domains is None:
        return list(torch.randperm(n, generator=gen).split(batch_size))
    out = []
    for d in domains.unique().tolist():
        idx = (domains == d).nonzero(as_tuple=True)[0]
        out += list(idx[torch.randperm(len(idx), generator=gen)].split(batch_size))
    return [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]


def train(model: nn.Module, x: Tensor | Callable[[int], Tensor], y: Tensor, *, epochs: int, seed: int,
          domains: Tensor | None = None, style: Tensor | None = None, batch_size: int = 16,
          lr: float = 3e-3, on_epoch: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Train ``model`` with AdamW + OneCycle on in-memory tensors, random flips as the only augmentation.

    ``x``: (N, 3, H, W) normalized images, or ``x(epoch)`` returning them (augmented variants); ``y``: labels (N,);
    ``domains``: per-sample domain ids (N,), set per batch on the model's MixStyle layers (mixed batches) or, if it
    has DomainSpecificBatchNorm layers, used to draw one-domain batches (as DSBN is trained); ``style``:
    unlabeled target tensors appended to each batch for the AdaIN technique; ``on_epoch(epoch, model)``: called
    after each epoch (the model is put back in training mode afterwards). Returns the model in eval mode.
    """
    epochs, batch_size = check_int("epochs", epochs), check_int("batch_size", batch_size)
    model = _check_model("model", model)
    lr = check_float("lr", lr, 0.0, low_open=True)
    if not callable(x):
        x = _check_images("x", x)
    y = _check_labels("y", y, None if callable(x) else len(x), model)
    if domains is not None and (not isinstance(domains, Tensor) or domains.shape != y.shape
                                or domains.dtype.is_floating_point or domains.dtype == torch.bool):
        raise ValueError(f"domains must be None or a ({len(y)},) integer tensor of domain ids (one per label), got "
                         f"{type(domains).__name__} {getattr(domains, 'dtype', '')} with shape "
                         f"{tuple(getattr(domains, 'shape', ()))}")
    if style is not None:
        style = _check_images("style", style)
        if not callable(x) and style.shape[1:] != x.shape[1:]:
            raise ValueError(f"style must have the images' shape {tuple(x.shape[1:])}, got {tuple(style.shape[1:])}")
    _check_callable("on_epoch", on_epoch)
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
    torch.manual_seed(seed)
    n = len(y)
    opt = torch.optim.AdamW(model.parameters(), lr=check_float("lr", lr, 0.0, low_open=True), weight_decay=1e-4)
    swap = next((m for m in model.modules() if isinstance(m, _StyleSwap)), None)
    dsbn = any(isinstance(m, DomainSpecificBatchNorm) for m in model.modules())
    steps = epochs * len(_batches(n, batch_size, torch.Generator(), domains if dsbn else None))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        xe = x(epoch) if callable(x) else x
        for idx in _batches(n, batch_size, gen, domains if dsbn else None):
            xb = xe[idx]
            flip = (torch.rand(len(idx), 2, generator=gen) < 0.5).to(xb.device)
            xb = torch.where(flip[:, 0, None, None, None], xb.flip(3), xb)
            xb = torch.where(flip[:, 1, None, None, None], xb.flip(2), xb)
            if domains is not None:
                set_domain(model, int(domains[idx[0]]) if dsbn else domains[idx])
            if swap is not None and style is not None:
                swap.n_style = len(idx)
                xb = torch.cat([xb, style[torch.randint(len(style), (len(idx),), generator=gen)]])
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch, model)
            model.train()
    if swap is not None:
        swap.n_style = 0
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, domain: int | None = None) -> float:
    """Accuracy (0-1) of ``model`` in eval mode on ``x``, ``y`` (with ``domain`` set on its DSBN layers)."""
    model, x = _check_model("model", model), _check_images("x", x)
    y = _check_labels("y", y, len(x), model)
    domain = None if domain is None else check_int("domain", domain, 0)
    model.eval()
    if domain is not None:
        set_domain(model, domain)
    pred = torch.cat([model(x[i:i + 128]).argmax(1) for i in range(0, len(x), 128)])
    return float((pred == y).float().mean())


@torch.no_grad()
def _adapt_target_bn(model: nn.Module, target: Tensor, domain: int) -> None:
    """Estimate the target domain's BN statistics from unlabeled ``target`` images (cumulative average over
    batches in training mode) and give it the source domains' mean affine parameters."""
    layers = [m for m in model.modules() if isinstance(m, DomainSpecificBatchNorm)]
    for m in layers:
        bn = m.bns[domain]
        bn.reset_running_stats()
        bn.momentum = None
        src = [b for d, b in enumerate(m.bns) if d != domain]
        bn.weight.copy_(torch.stack([b.weight for b in src]).mean(0))
        bn.bias.copy_(torch.stack([b.bias for b in src]).mean(0))
    model.train()
    set_domain(model, domain)
    for i in range(0, len(target), 32):
        model(target[i:i + 32])
    model.eval()


def _inputs(data: ShiftData, technique: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Normalized source (in ``data.source`` order), pool and test tensors, and the source labels, as the
    technique sees them: pooled source statistics, each domain's own statistics, or LAB-aligned images."""
    y = torch.from_numpy(data.source_labels)
    if technique in ("per-domain normalization", "per-domain norm. + BN"):
        xs = torch.empty(data.source.shape[0], 3, data.size, data.size)
        for d in range(len(data.source_sites)):
            sel = data.source_domains == d
            xs[torch.from_numpy(sel)] = _tensor(data.source[sel], domain_stats(list(data.source[sel])))
        pool_stats = domain_stats(list(data.pool))  # the target's own statistics need no labels
        return xs, _tensor(data.pool, pool_stats), _tensor(data.test, pool_stats), y
    source, pool, test = data.lab if technique == "LAB alignment" else (data.source, data.pool, data.test)
    stats = domain_stats(list(source))
    return _tensor(source, stats), _tensor(pool, stats), _tensor(test, stats), y


@dataclass(frozen=True)
class RunResult:
    """One technique and seed: target test ``accuracy`` (0-1), wall ``seconds`` and technique-specific ``notes``
    (CAM-guided crops: ``kept`` share of pool images confidently pseudo-labeled, ``pseudo_accuracy`` of their
    crops' pseudo-labels, ``crops <class>``: how many crops carry each pseudo-label) and the trained ``model``
    when :func:`run_table` was asked to keep it."""

    technique: str
    seed: int
    accuracy: float
    seconds: float
    notes: dict[str, float] = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False, compare=False)


def run(data: ShiftData, technique: str, seed: int = 0, *, epochs: int = 15, finetune_epochs: int = 4,
        device: str | torch.device | None = None, return_model: bool = False
        ) -> RunResult | tuple[RunResult, nn.Module]:
    """Train one ``technique`` (a name in :data:`TECHNIQUES`) with ``seed``; return its :class:`RunResult`
    (and the trained model with ``return_model``).

    All techniques share the model (``DSConvNet`` widths 16-32-64, BatchNorm), AdamW + OneCycle, ``epochs``,
    batch 16 and random flips; inputs are normalized with the pooled source statistics unless the technique
    normalizes otherwise. Target labels are used only by ``oracle`` (trained on the labeled pool) and for the score.
    ``CAM-guided crops`` trains the source-only model, then fine-tunes it for ``finetune_epochs`` on the source
    images plus crops around the CAM peaks of its confident pseudo-labels on the pool. ``device``: where to train
    (default ``hrlib.get_device()``).
    """
    _check_data(data)
    if technique not in TECHNIQUES:
        raise ValueError(f"technique must be one of {TECHNIQUES}, got {technique!r}")
    seed, epochs = check_int("seed", seed, 0), check_int("epochs", epochs)
    finetune_epochs = check_int("finetune_epochs", finetune_epochs)
    if not isinstance(return_model, bool):
        raise TypeError(f"return_model must be True or False, got {type(return_model).__name__} {return_model!r}")
    start = time.perf_counter()
    k = len(data.source_sites)
    dev = get_device() if device is None else _device(device)
    xs, xp, xt, y = (t.to(dev) for t in _inputs(data, technique))
    yt = torch.from_numpy(data.test_labels).to(dev)
    torch.manual_seed(check_int("seed", seed, 0))
    model = _model(technique, k + 1).to(dev)
    kw: dict[str, Any] = {"epochs": check_int("epochs", epochs), "seed": seed}
    notes: dict[str, float] = {}
    domain = None
    if technique == "oracle":
        stats = domain_stats(list(data.pool))
        train(model, _tensor(data.pool, stats).to(dev), torch.from_numpy(data.pool_labels).to(dev), **kw)
        xt = _tensor(data.test, stats).to(dev)
    elif technique in ("FDA", "source elastic"):
        variants = data.fda_variants if technique == "FDA" else data.elastic_variants
        stats = domain_stats(list(data.source))
        xv = [xs] + [_tensor(v, stats).to(dev) for v in variants]
        train(model, lambda e: xv[e % len(xv)], y, **kw)
    elif technique in ("MixStyle", "per-domain BN", "per-domain norm. + BN"):
        train(model, xs, y, domains=torch.from_numpy(data.source_domains).to(dev), **kw)
        if technique == "MixStyle":
            set_domain(model, None)
        else:
            _adapt_target_bn(model, xp, k)
            domain = k
    elif technique == "AdaIN":
        train(model, xs, y, style=xp, **kw)
    else:
        train(model, xs, y, **kw)
        if technique == "CAM-guided crops":
            notes = _cam_finetune(model, data, xs, y, seed, check_int("finetune_epochs", finetune_epochs))
    result = RunResult(technique, seed, accuracy(model, xt, yt, domain=domain), time.perf_counter() - start, notes)
    return (result, model) if return_model else result


def _device(device: object) -> torch.device:
    if not isinstance(device, str | torch.device):
        raise TypeError(f"device must be a str, a torch.device or None, got {type(device).__name__} {device!r}")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must name a torch device ('cpu', 'cuda', 'cuda:0', 'mps'), got {device!r}") from exc


def source_transform(data: ShiftData) -> A.Compose:
    """The source-only model's eval transform as an albumentations pipeline (resize to the data's side, normalize
    with the pooled source statistics, CHW tensor): what :func:`hrlib.domain.cam_crops` needs."""
    _check_data(data)
    stats = domain_stats(list(data.source))
    return A.Compose([A.Resize(data.size, data.size), A.Normalize(*stats, max_pixel_value=255.0), ToTensorV2()])


def _cam_finetune(model: nn.Module, data: ShiftData, xs: Tensor, y: Tensor, seed: int, epochs: int
                  ) -> dict[str, float]:
    tf = source_transform(data)
    crops = cam_crops(model, list(data.pool), tf, k=2, scale=(0.7, 1.0), min_confidence=0.6, seed=seed)
    kept = sorted({c.image_index for c in crops})
    notes = {"kept": len(kept) / len(data.pool), "pseudo_accuracy": float("nan"),
             **{f"crops {name}": float(sum(c.label == k for c in crops)) for k, name in enumerate(CLASS_NAMES)}}
    if crops:
        notes["pseudo_accuracy"] = float(np.mean([data.pool_labels[c.image_index] == c.label for c in crops]))
        xc = torch.stack([tf(image=c.crop)["image"] for c in crops]).to(xs.device)
        yc = torch.tensor([c.label for c in crops], device=xs.device)
        train(model, torch.cat([xs, xc]), torch.cat([y, yc]), epochs=epochs, seed=seed + 1000, lr=1e-3)
    return notes


def _run_one(args: tuple[ShiftData, str, int, bool, dict[str, Any]]) -> RunResult:
    data, technique, seed, keep, kwargs = args
    if not keep:
        return run(data, technique, seed, **kwargs)  # type: ignore[return-value]
    result, model = run(data, technique, seed, return_model=True, **kwargs)  # type: ignore[misc]
    return dataclasses.replace(result, model=model.cpu())


def _one_thread() -> None:
    torch.set_num_threads(1)  # one process per core: tiny models run best single-threaded


def run_table(data: ShiftData, techniques: Sequence[str] = TECHNIQUES, seeds: Sequence[int] = (0, 1, 2), *,
              workers: int | None = None, progress: Callable | None = None, keep_models: Sequence[str] = (),
              **kwargs: Any) -> list[RunResult]:
    """:func:`run` for every technique and seed, in ``workers`` CPU processes of one thread each (default: the CPU
    count, at most 4; 1 runs here, and so does any run on a GPU: ``device``, default ``hrlib.get_device()``).
    ``progress``: optional wrapper for the result iterator (e.g. ``tqdm.auto.tqdm``); ``kwargs`` go to :func:`run`.
    Results come back in (technique, seed) order; each run is deterministic given its seed (and its device).
    ``keep_models``: techniques whose trained models are returned in ``RunResult.model`` (on the CPU)."""
    _check_data(data)
    techniques = _check_names("techniques", techniques, TECHNIQUES)
    keep_models = _check_names("keep_models", keep_models, TECHNIQUES, empty=True)
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence) or not seeds:
        raise TypeError(f"seeds must be a non-empty sequence of ints >= 0, got {seeds!r:.60}")
    seeds = [check_int(f"seeds[{i}]", s, 0) for i, s in enumerate(seeds)]
    _check_callable("progress", progress)
    jobs = [(data, t, s, t in keep_models, kwargs) for t in techniques for s in seeds]
    dev = get_device() if kwargs.get("device") is None else _device(kwargs["device"])
    kwargs["device"] = dev
    workers = min(4, os.cpu_count() or 1) if workers is None else check_int("workers", workers)
    workers = 1 if dev.type != "cpu" else workers
    data.lab, data.fda_variants, data.elastic_variants  # noqa: B018  (computed once, before the workers start)
    if workers == 1:
        results = map(_run_one, jobs)
        return list(progress(results, total=len(jobs)) if progress else results)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_one_thread) as pool:
        results = pool.map(_run_one, jobs)
        return list(progress(results, total=len(jobs)) if progress else results)


def transfer_curve(data: ShiftData, init: nn.Module | None, *, n_labeled: int = 30, epochs: int = 20,
                   seed: int = 0, lr: float = 3e-3) -> list[float]:
    """C23: train on ``n_labeled`` labeled target pool images, from ``init`` (a copy of a model trained elsewhere,
    e.g. the source-only model) or from scratch (``None``), and return the target test accuracy after each epoch."""
    _check_data(data)
    if init is not None:
        _check_model("init", init)
    n_labeled = check_int("n_labeled", n_labeled, 3)
    epochs, seed, lr = check_int("epochs", epochs), check_int("seed", seed, 0), check_float("lr", lr, 0.0,
                                                                                            low_open=True)
    if n_labeled > len(data.pool):
        raise ValueError(f"n_labeled must be <= the pool size {len(data.pool)}, got {n_labeled}")
    stats = domain_stats(list(data.pool))
    dev = next(init.parameters()).device if init is not None else get_device()
    xp, xt = _tensor(data.pool[:n_labeled], stats).to(dev), _tensor(data.test, stats).to(dev)
    yp, yt = torch.from_numpy(data.pool_labels[:n_labeled]).to(dev), torch.from_numpy(data.test_labels).to(dev)
    torch.manual_seed(check_int("seed", seed, 0))
    model = (_model("source only", 1) if init is None else copy.deepcopy(init)).to(dev)
    curve: list[float] = []
    train(model, xp, yp, epochs=epochs, seed=seed, lr=lr, on_epoch=lambda e, m: curve.append(accuracy(m, xt, yt)))
    return curve


def gap_recovered(accuracy_: float, source_only: float, oracle: float) -> float:
    """Share of the source-only-to-oracle gap that ``accuracy_`` recovers: (acc - source) / (oracle - source);
    above 1 beats the oracle; NaN when the gap is smaller than 0.01 (nothing to recover)."""
    accuracy_ = check_float("accuracy_", accuracy_)
    source_only, oracle = check_float("source_only", source_only), check_float("oracle", oracle)
    gap = oracle - source_only
    return float("nan") if gap < 0.01 else (accuracy_ - source_only) / gap


def summarize(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per technique (in order of appearance): mean and std of accuracy over seeds, seeds, mean seconds,
    and the share of the gap between the ``source only`` and ``oracle`` means it recovers (if both were run)."""
    if isinstance(results, str | bytes) or not isinstance(results, Sequence) or not all(
            isinstance(r, RunResult) for r in results):
        raise TypeError(f"results must be a sequence of RunResult (from run / run_table), got {results!r:.80}")
    names = list(dict.fromkeys(r.technique for r in results))
    acc = {t: np.array([r.accuracy for r in results if r.technique == t]) for t in names}
    rows = []
    for t in names:
        secs = np.mean([r.seconds for r in results if r.technique == t])
        gap = (gap_recovered(acc[t].mean(), acc["source only"].mean(), acc["oracle"].mean())
               if {"source only", "oracle"} <= acc.keys() else float("nan"))
        rows.append({"technique": t, "mean": float(acc[t].mean()), "std": float(acc[t].std()),
                     "seeds": len(acc[t]), "gap_recovered": gap, "seconds": float(secs)})
    return rows
