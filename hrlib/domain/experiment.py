"""Lesson 04's experiment: every technique of ``hrlib.domain`` trained and scored on the same shift, seeds and budget.

:func:`run` trains a fresh ``DSConvNet`` for one technique (a name in :data:`TECHNIQUES`) and seed on the tensors of a
:class:`hrlib.domain.shift.ShiftData` (with :func:`hrlib.domain.tensor_fit.fit_tensors`) and returns the target test
accuracy and each test image's correctness in a :class:`RunResult`; :func:`run_table` runs a grid of techniques and
seeds in processes, :func:`summarize` and :func:`gap_recovered` read the results, :func:`transfer_curve` measures
fine-tuning on a few labeled target images. Each run's randomness comes from its seed: the model's weights, the
batch draws and a separate generator for the model's random layers (MixStyle, StyleSwap).
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
from typing import Any

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from torch import Tensor, nn

from hrlib._checks import check_bool, check_callable, check_device, check_float, check_int, check_model
from hrlib.config import get_device
from hrlib.data.slides import CLASS_NAMES
from hrlib.domain.color import domain_stats
from hrlib.domain.crops import cam_crops
from hrlib.domain.norm import DomainSpecificBatchNorm, convert_batchnorm, set_domain
from hrlib.domain.shift import ShiftData
from hrlib.domain.style import StyleSwap, insert_mixstyle
from hrlib.domain.tensor_fit import fit_tensors, predict
from hrlib.models import DSConvNet

__all__ = ["TECHNIQUES", "RunResult", "gap_recovered", "run", "run_table", "source_transform", "summarize",
           "transfer_curve"]

TECHNIQUES: tuple[str, ...] = ("source only", "per-domain normalization", "LAB alignment", "FDA", "source elastic",
                               "MixStyle", "AdaIN", "Batch-Instance Norm", "per-domain BN", "CAM-guided crops",
                               "per-domain norm. + BN", "oracle")


@dataclass(frozen=True)
class RunResult:
    """One technique and seed, as :func:`run` returns it.

    Attributes:
        technique, seed: what was run.
        accuracy: target test accuracy, 0-1.
        seconds: wall time of the run.
        notes: technique-specific numbers (CAM-guided crops: ``kept``, the share of pool images confidently
            pseudo-labeled; ``pseudo_accuracy`` of their crops' pseudo-labels; ``crops <class>``, how many crops carry
            each pseudo-label).
        model: the trained model (on the CPU) when :func:`run_table` was asked to keep it.
        correct: 1.0 or 0.0 for each target test image, in ``data.test`` order (per-item scores for
            :func:`hrlib.evidence.compare`); empty for a result built by hand.
    """

    technique: str
    seed: int
    accuracy: float
    seconds: float
    notes: dict[str, float] = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False, compare=False)
    correct: tuple[float, ...] = field(default=(), repr=False)


def _check_data(data: object) -> ShiftData:
    if not isinstance(data, ShiftData):
        raise TypeError(f"data must be a ShiftData from make_shift, got {type(data).__name__}")
    return data


def _check_names(name: str, values: object, empty: bool = False) -> tuple[str, ...]:
    """A sequence of names from :data:`TECHNIQUES` (non-empty unless ``empty``), or raise naming ``name``."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or (not values and not empty):
        raise TypeError(f"{name} must be a {'' if empty else 'non-empty '}sequence of names from {TECHNIQUES}, got "
                        f"{values!r:.80}")
    unknown = [v for v in values if v not in TECHNIQUES]
    if unknown:
        raise ValueError(f"{name} must be names in TECHNIQUES {TECHNIQUES}, got {unknown[0]!r}")
    return tuple(values)


def _tensor(images: np.ndarray, stats: tuple[Sequence[float], Sequence[float]]) -> Tensor:
    mean, std = (torch.tensor(s, dtype=torch.float32).view(1, 3, 1, 1) for s in stats)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def _model(technique: str, num_domains: int, seed: int) -> nn.Module:
    """The technique's DSConvNet (weights from ``seed``; its random layers' generator a stream of ``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DSConvNet(len(CLASS_NAMES), 3, (16, 32, 64))
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
    if technique == "MixStyle":
        insert_mixstyle(model, (0, 1), p=0.5, alpha=0.1, mix="crossdomain", generator=gen)
    elif technique == "AdaIN":
        model.features[0] = nn.Sequential(model.features[0], StyleSwap(generator=gen))
    elif technique == "Batch-Instance Norm":
        convert_batchnorm(model, "bin")
    elif technique in ("per-domain BN", "per-domain norm. + BN"):
        convert_batchnorm(model, "dsbn", num_domains=num_domains)
    return model


@torch.no_grad()
def _adapt_target_bn(model: nn.Module, target: Tensor, domain: int) -> None:
    """The target domain's BN statistics from unlabeled ``target`` images, the source domains' mean affine."""
    layers = [m for m in model.modules() if isinstance(m, DomainSpecificBatchNorm)]
    for m in layers:
        bn = m.bns[domain]
        bn.reset_running_stats()
        bn.momentum = None
        src = [b for d, b in enumerate(m.bns) if d != domain]
        bn.weight.copy_(torch.stack([b.weight for b in src]).mean(0))
        bn.bias.copy_(torch.stack([b.bias for b in src]).mean(0))
    model.train()  # training mode on purpose: the forward passes below update the running statistics
    set_domain(model, domain)
    for i in range(0, len(target), 32):
        model(target[i:i + 32])
    model.eval()


def _inputs(data: ShiftData, technique: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Source (``data.source`` order), pool and test tensors and source labels, normalized as the technique does."""
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


def _fit_technique(model: nn.Module, data: ShiftData, technique: str, tensors: tuple[Tensor, ...], seed: int,
                   num_epochs: int, num_finetune_epochs: int) -> tuple[Tensor, int | None, dict[str, float]]:
    """Train ``model`` as ``technique`` does; return the test tensor it is scored on, its DSBN domain and notes."""
    xs, xp, xt, y = tensors
    dev, kw, k = y.device, {"num_epochs": num_epochs, "seed": seed}, len(data.source_sites)
    if technique == "oracle":
        stats = domain_stats(list(data.pool))
        fit_tensors(model, _tensor(data.pool, stats).to(dev), torch.from_numpy(data.pool_labels).to(dev), **kw)
        return _tensor(data.test, stats).to(dev), None, {}
    if technique in ("FDA", "source elastic"):
        variants = data.fda_variants if technique == "FDA" else data.elastic_variants
        stats = domain_stats(list(data.source))
        xv = [xs] + [_tensor(v, stats).to(dev) for v in variants]
        fit_tensors(model, lambda e: xv[e % len(xv)], y, **kw)
    elif technique in ("MixStyle", "per-domain BN", "per-domain norm. + BN"):
        fit_tensors(model, xs, y, domains=torch.from_numpy(data.source_domains).to(dev), **kw)
        if technique == "MixStyle":
            set_domain(model, None)
        else:
            _adapt_target_bn(model, xp, k)
            return xt, k, {}
    elif technique == "AdaIN":
        fit_tensors(model, xs, y, style=xp, **kw)
    else:
        fit_tensors(model, xs, y, **kw)
        if technique == "CAM-guided crops":
            return xt, None, _cam_finetune(model, data, xs, y, seed, num_finetune_epochs)
    return xt, None, {}


def run(data: ShiftData, technique: str, seed: int = 0, *, num_epochs: int = 15, num_finetune_epochs: int = 4,
        device: str | torch.device | None = None, return_model: bool = False
        ) -> RunResult | tuple[RunResult, nn.Module]:
    """Train one ``technique`` with ``seed`` and score it on the target test set.

    All techniques share the model (``DSConvNet`` widths 16-32-64, BatchNorm), AdamW + OneCycle, ``num_epochs``,
    batch 16 and random flips; inputs are normalized with the pooled source statistics unless the technique
    normalizes otherwise. Target labels are used only by ``oracle`` (trained on the labeled pool) and for the score.
    ``CAM-guided crops`` trains the source-only model, then fine-tunes it on the source images plus crops around
    the CAM peaks of its confident pseudo-labels on the pool.

    Args:
        data: the shift, from :func:`hrlib.domain.shift.make_shift`.
        technique: a name in :data:`TECHNIQUES`.
        seed: the run's seed (weights, batches, the random layers' generator), >= 0.
        num_epochs: training epochs, >= 1.
        num_finetune_epochs: fine-tuning epochs of ``CAM-guided crops``, >= 1.
        device: where to train (default ``hrlib.config.get_device()``).
        return_model: also return the trained model.

    Returns:
        The :class:`RunResult`, or ``(result, model)`` with ``return_model``.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """
    _check_data(data)
    if technique not in TECHNIQUES:
        raise ValueError(f"technique must be one of {TECHNIQUES}, got {technique!r}")
    seed, num_epochs = check_int("seed", seed, 0), check_int("num_epochs", num_epochs)
    num_finetune_epochs = check_int("num_finetune_epochs", num_finetune_epochs)
    return_model, dev = check_bool("return_model", return_model), check_device("device", device)
    start = time.perf_counter()
    tensors = tuple(t.to(dev) for t in _inputs(data, technique))
    model = _model(technique, len(data.source_sites) + 1, seed).to(dev)
    xt, domain, notes = _fit_technique(model, data, technique, tensors, seed, num_epochs, num_finetune_epochs)
    correct = (predict(model, xt, domain=domain).cpu() == torch.from_numpy(data.test_labels)).float().tolist()
    result = RunResult(technique, seed, float(np.mean(correct)), time.perf_counter() - start, notes,
                       correct=tuple(correct))
    return (result, model) if return_model else result


def source_transform(data: ShiftData) -> A.Compose:
    """The source-only model's eval transform as an albumentations pipeline (what :func:`hrlib.domain.cam_crops`
    needs): resize to the data's side, normalize with the pooled source statistics, CHW tensor.

    Args:
        data: the shift, from :func:`hrlib.domain.shift.make_shift`.

    Returns:
        The transform, ``t(image=uint8 HWC)["image"]`` -> (3, H, W) float tensor.
    """
    _check_data(data)
    stats = domain_stats(list(data.source))
    return A.Compose([A.Resize(data.size, data.size), A.Normalize(*stats, max_pixel_value=255.0), ToTensorV2()])


def _cam_finetune(model: nn.Module, data: ShiftData, xs: Tensor, y: Tensor, seed: int, num_epochs: int
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
        fit_tensors(model, torch.cat([xs, xc]), torch.cat([y, yc]), num_epochs=num_epochs, seed=seed + 1000, lr=1e-3)
    return notes


_WORKER_DATA: list[ShiftData] = []  # the shift, sent once to each worker process by _start_worker


def _run_one(args: tuple[ShiftData | None, str, int, bool, dict[str, Any]]) -> RunResult:
    data, technique, seed, keep, kwargs = args
    data = _WORKER_DATA[0] if data is None else data
    if not keep:
        return run(data, technique, seed, **kwargs)  # type: ignore[return-value]
    result, model = run(data, technique, seed, return_model=True, **kwargs)  # type: ignore[misc]
    return dataclasses.replace(result, model=model.cpu())


def _start_worker(data: ShiftData) -> None:
    torch.set_num_threads(1)  # one process per core: tiny models run best single-threaded
    _WORKER_DATA[:] = [data]


def _worker_context() -> Any:
    """``forkserver`` (each worker forked from a clean server that imported torch and hrlib once), ``spawn`` where
    there is none (Windows); never ``fork``, which is unsafe after autograd has run here."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "hrlib.domain.experiment"])
    return ctx


def run_table(data: ShiftData, techniques: Sequence[str] = TECHNIQUES, seeds: Sequence[int] = (0, 1, 2), *,
              num_workers: int | None = None, progress: Callable | None = None, keep_models: Sequence[str] = (),
              **kwargs: Any) -> list[RunResult]:
    """:func:`run` for every technique and seed, in ``num_workers`` CPU processes of one thread each.

    Each run is deterministic given its seed (and its device), so the processes change nothing but the time. The
    workers start by ``forkserver`` (``spawn`` on Windows), never ``fork``: a fork after autograd has run in this
    process can fail, and the shift is sent to each worker once.

    Args:
        data: the shift, from :func:`hrlib.domain.shift.make_shift`.
        techniques: names in :data:`TECHNIQUES`.
        seeds: the seeds, each >= 0.
        num_workers: processes, >= 1 (default: the CPU count, at most 4); 1 runs here, and so does any run on a
            GPU (``device``, default ``hrlib.config.get_device()``).
        progress: optional wrapper for the result iterator, ``progress(iterable, total=...)`` (e.g. ``tqdm``).
        keep_models: techniques whose trained models are returned in ``RunResult.model`` (on the CPU).
        **kwargs: passed to :func:`run` (``num_epochs``, ``num_finetune_epochs``, ``device``).

    Returns:
        The results in (technique, seed) order.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """
    _check_data(data)
    techniques, keep_models = _check_names("techniques", techniques), _check_names("keep_models", keep_models, True)
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence) or not seeds:
        raise TypeError(f"seeds must be a non-empty sequence of ints >= 0, got {seeds!r:.60}")
    seeds = [check_int(f"seeds[{i}]", s, 0) for i, s in enumerate(seeds)]
    check_callable("progress", progress, allow_none=True, hint="progress(iterable, total=...)")
    kwargs["device"] = dev = check_device("device", kwargs.get("device"))
    jobs = [(None, t, s, t in keep_models, kwargs) for t in techniques for s in seeds]
    num_workers = min(4, os.cpu_count() or 1) if num_workers is None else check_int("num_workers", num_workers)
    num_workers = 1 if dev.type != "cpu" else num_workers
    data.lab, data.fda_variants, data.elastic_variants  # noqa: B018  (computed once, before the workers start)
    if num_workers == 1:
        results = map(_run_one, [(data, *job[1:]) for job in jobs])
        return list(progress(results, total=len(jobs)) if progress else results)
    with ProcessPoolExecutor(num_workers, mp_context=_worker_context(), initializer=_start_worker,
                             initargs=(data,)) as pool:
        results = pool.map(_run_one, jobs)
        return list(progress(results, total=len(jobs)) if progress else results)


def transfer_curve(data: ShiftData, init: nn.Module | None, *, n_labeled: int = 30, num_epochs: int = 20,
                   seed: int = 0, lr: float = 3e-3, per_item: bool = False) -> list[float] | list[list[float]]:
    """Claim C23: fine-tune on a few labeled target images, from a model trained elsewhere or from scratch.

    Args:
        data: the shift, from :func:`hrlib.domain.shift.make_shift`.
        init: the starting model (copied; e.g. the source-only model of :func:`run`), or None for a fresh one.
        n_labeled: labeled target pool images to train on, 3 to the pool size.
        num_epochs: epochs, >= 1.
        seed: >= 0; seeds the fresh model's weights and the batch draws.
        lr: the peak learning rate, > 0.
        per_item: return each target test image's correctness (1.0/0.0) after each epoch instead of the accuracy.

    Returns:
        The target test accuracy (0-1) after each epoch; with ``per_item``, one list of scores per epoch.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """
    _check_data(data)
    if init is not None:
        check_model("init", init)
    n_labeled, num_epochs = check_int("n_labeled", n_labeled, 3), check_int("num_epochs", num_epochs)
    seed, lr = check_int("seed", seed, 0), check_float("lr", lr, 0.0, low_open=True)
    per_item = check_bool("per_item", per_item)
    if n_labeled > len(data.pool):
        raise ValueError(f"n_labeled must be <= the pool size {len(data.pool)}, got {n_labeled}")
    stats = domain_stats(list(data.pool))
    dev = next(init.parameters()).device if init is not None else get_device()
    xp, xt = _tensor(data.pool[:n_labeled], stats).to(dev), _tensor(data.test, stats).to(dev)
    yp, yt = torch.from_numpy(data.pool_labels[:n_labeled]).to(dev), torch.from_numpy(data.test_labels).to(dev)
    model = (_model("source only", 1, seed) if init is None else copy.deepcopy(init)).to(dev)
    curve: list = []

    def score(_epoch: int, m: nn.Module) -> None:
        correct = (predict(m, xt) == yt).float()
        curve.append(correct.tolist() if per_item else float(correct.mean()))

    fit_tensors(model, xp, yp, num_epochs=num_epochs, seed=seed, lr=lr, on_epoch=score)
    return curve


def gap_recovered(technique_accuracy: float, source_only: float, oracle: float) -> float:
    """The share of the source-only-to-oracle gap that a technique recovers: (acc - source) / (oracle - source).

    Args:
        technique_accuracy: the technique's target accuracy, 0-1.
        source_only: the source-only model's target accuracy.
        oracle: the oracle's (trained on labeled target images) target accuracy.

    Returns:
        The share; above 1 beats the oracle; NaN when the gap is smaller than 0.01 (nothing to recover).
    """
    technique_accuracy = check_float("technique_accuracy", technique_accuracy)
    source_only, oracle = check_float("source_only", source_only), check_float("oracle", oracle)
    gap = oracle - source_only
    return float("nan") if gap < 0.01 else (technique_accuracy - source_only) / gap


def summarize(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per technique (in order of appearance) of :func:`run_table`'s results.

    Args:
        results: :class:`RunResult` of one or more seeds per technique.

    Returns:
        Rows with ``technique``, ``mean`` and ``std`` of the accuracy over seeds, ``seeds``, mean ``seconds``, and
        ``gap_recovered`` (:func:`gap_recovered` of the means, NaN unless ``source only`` and ``oracle`` were run).
    """
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
