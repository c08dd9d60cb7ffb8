"""Paired comparison of two arms over seeds and test items, with a hierarchical bootstrap interval.

Both arms are scored on the same test items with the same seeds (seed ``s`` of arm A and seed ``s`` of arm B share
their data order and initial weights where the experiment allows it). ``a`` and ``b`` hold one score per seed and item
(1/0 for correct/wrong, a loss, a ratio, ...); the effect is ``mean(b) - mean(a)``.

The interval resamples seeds, then items (the two-way "pigeonhole" bootstrap of a crossed design: every seed sees
every item), so it carries both the run-to-run variation of training and the sampling of the test set. Two
corrections make its coverage close to 95 % with 3-10 seeds (tested on simulated data): the bootstrap's spread is
rescaled to the variance of a two-way ANOVA (resampling both factors counts the seed-by-item noise twice; a negative
component counts as zero), and its quantiles are widened from normal to Student-t with Satterthwaite's degrees of
freedom (a plain bootstrap over 5 seeds is too narrow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Comparison", "compare", "describe_times", "exact"]

Z_975 = 1.959963984540054
Z_80 = 0.8416212335729143
MDE_FACTOR = Z_975 + Z_80  # two-sided 5 % test at 80 % power: 2.80 standard errors


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of arm B against arm A (``effect = B - A``).

    Attributes:
        metric: what one score is, e.g. ``"accuracy"`` (used in tables).
        arms: the two arms' names, ``(A, B)``.
        effect: mean of B minus mean of A over all seeds and items.
        low, high: the confidence interval of the effect (``low == high`` for an exact count).
        level: the interval's confidence level (0.95).
        per_seed_a, per_seed_b: each seed's mean score per arm (bimodal outcomes show here, not in the mean).
        seeds: the seed of each row.
        n_items: test items per seed.
        se: the effect's standard error (from the bootstrap; 0 for an exact count).
        seed_share: the fraction of the effect's variance that comes from seeds (the rest from the items).
        mde: the smallest effect this design detects with 80 % power in a two-sided 5 % test:
            ``(t_0.975 + t_0.80) * se`` with the interval's degrees of freedom (2.80 standard errors for a large
            design, more with few seeds).
        exact: True for a deterministic measurement (a count, a parameter number): no sampling error.
        fmt: format of effects and scores in text, e.g. ``"+.3f"``.
        components: the seed, item and residual variance of the per-item differences (two-way ANOVA), from which
            the standard error of any other design follows.
        df: the degrees of freedom of the interval's t quantiles (Satterthwaite).
    """

    metric: str
    arms: tuple[str, str]
    effect: float
    low: float
    high: float
    level: float
    per_seed_a: tuple[float, ...]
    per_seed_b: tuple[float, ...]
    seeds: tuple[int, ...]
    n_items: int
    se: float
    seed_share: float
    mde: float
    exact: bool = False
    fmt: str = "+.3f"
    components: tuple[float, float, float] = (0.0, 0.0, 0.0)
    df: float = math.inf

    @property
    def n_seeds(self) -> int:
        """Number of seeds (rows)."""
        return len(self.seeds)

    @property
    def per_seed_effect(self) -> tuple[float, ...]:
        """Each seed's effect, B - A."""
        return tuple(b - a for a, b in zip(self.per_seed_a, self.per_seed_b, strict=True))

    @property
    def mean_a(self) -> float:
        """Arm A's mean score."""
        return float(np.mean(self.per_seed_a))

    @property
    def mean_b(self) -> float:
        """Arm B's mean score."""
        return float(np.mean(self.per_seed_b))

    def n_text(self) -> str:
        """``"5 seeds x 300 items"`` (or ``"exact"``)."""
        if self.exact:
            return "exact (deterministic)"
        return f"{self.n_seeds} seed{'s' * (self.n_seeds != 1)} x {self.n_items} item{'s' * (self.n_items != 1)}"

    def effect_text(self) -> str:
        """``"+0.052 [+0.031, +0.074]"``, the effect and its interval."""
        if self.exact:
            return format(self.effect, self.fmt)
        return f"{format(self.effect, self.fmt)} [{format(self.low, self.fmt)}, {format(self.high, self.fmt)}]"

    def per_seed_text(self) -> str:
        """Each seed's effect, e.g. ``"+0.04, +0.06, -0.31"`` (a collapsed seed stands out)."""
        if self.exact:
            return "-"
        return ", ".join(format(e, self.fmt.replace(".3", ".2")) for e in self.per_seed_effect)

    def needed_for(self, effect: float | None = None) -> str:
        """What design would detect ``effect`` (default: the measured one) with 80 % power, in words."""
        target = abs(self.effect if effect is None else effect)
        if self.exact:
            return "exact: no more data needed"
        if target <= 1e-12:
            return "an effect of zero cannot be detected by any design; declare a margin of no practical effect"
        if self.mde <= target:
            return (f"this design already has 80 % power for an effect of {format(target, self.fmt)}; "
                    "only a larger one would narrow the interval")
        grows = {"seeds": (2, 1), "test items": (1, 2), "both": (2, 2)}
        options = []
        for what, (gs, gi) in grows.items():
            for k in (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 100):
                n_seeds, n_items = self.n_seeds * k ** (gs - 1), self.n_items * k ** (gi - 1)
                df = min(self.df * k, 1e6)  # the degrees of freedom grow about with the design
                if mde_factor(df) * math.sqrt(_variance((*self.components, 0.0), n_seeds, n_items)) <= target:
                    options.append(f"about {n_seeds} seeds x {n_items} test items")
                    break
            if options and what != "both":
                break
        if not options:
            return f"more than 100x the seeds and items of this design ({self.n_text()}) for an effect of " \
                   f"{format(target, self.fmt)}"
        return options[0] + f" (now {self.n_text()})"


def mde_factor(df: float) -> float:
    """Standard errors between zero and the effect detected with 80 % power at the 5 % level (two-sided), for a t
    statistic with ``df`` degrees of freedom (2.80 for a large design)."""
    if math.isinf(df):
        return MDE_FACTOR
    return float(stats.t.ppf(0.975, df) + stats.t.ppf(0.80, df))


def _as_scores(name: str, value: object, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``value`` as a finite float (seeds, items) array; a 1-D input is one seed."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers (seeds x items), got {type(value).__name__}") from exc
    if arr.ndim == 0 and shape is not None:
        arr = np.full(shape, float(arr))
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (seeds x items), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has NaN or infinite scores; drop those items from both arms first")
    return arr


def _check_labels(metric: object, arms: object, fmt: object) -> None:
    """Validate the text arguments shared by :func:`compare` and :func:`exact`."""
    if not isinstance(metric, str) or not metric.strip():
        raise TypeError(f"metric must be a non-empty string, got {metric!r}")
    if (not isinstance(arms, tuple | list) or len(arms) != 2
            or not all(isinstance(x, str) and x.strip() for x in arms)):
        raise ValueError(f"arms must be two non-empty names (A, B), got {arms!r}")
    try:
        format(0.5, fmt)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fmt must be a number format spec such as '+.3f', got {fmt!r}") from exc


def _check_design(seeds: object, n_seeds: int, level: object, n_boot: object) -> tuple[int, ...]:
    """Validate :func:`compare`'s design arguments; returns the seeds as a tuple (default 0, 1, ...)."""
    if not isinstance(level, int | float) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 200:
        raise ValueError(f"n_boot must be an int >= 200, got {n_boot!r}")
    if seeds is None:
        return tuple(range(n_seeds))
    if isinstance(seeds, str | bytes) or not hasattr(seeds, "__iter__") or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) for s in seeds):
        raise TypeError(f"seeds must be a sequence of ints, one per row, got {seeds!r}")
    seeds = tuple(int(s) for s in seeds)
    if len(seeds) != n_seeds:
        raise ValueError(f"seeds names {len(seeds)} seeds but the scores have {n_seeds} rows")
    return seeds


def _bootstrap(diff: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of ``diff.mean()``: resample seeds, then items (the same items for every seed)."""
    n_seeds, n_items = diff.shape
    item_w = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=n_boot) / n_items  # (B, I)
    seed_w = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot) / n_seeds  # (B, S)
    return ((item_w @ diff.T) * seed_w).sum(axis=1)


def _mean_squares(diff: np.ndarray) -> tuple[float, float, float]:
    """Mean squares of seeds, items and residual of a (seeds >= 2, items >= 2) table (two-way, no replication)."""
    n_seeds, n_items = diff.shape
    grand, rows, cols = diff.mean(), diff.mean(axis=1), diff.mean(axis=0)
    ms_seed = n_items * float(((rows - grand) ** 2).sum()) / (n_seeds - 1)
    ms_item = n_seeds * float(((cols - grand) ** 2).sum()) / (n_items - 1)
    ms_res = float(((diff - rows[:, None] - cols[None, :] + grand) ** 2).sum()) / ((n_seeds - 1) * (n_items - 1))
    return ms_seed, ms_item, ms_res


def variance_components(diff: np.ndarray) -> tuple[float, float, float, float]:
    """Two-way crossed ANOVA of a (seeds, items) table: ``(seed, item, residual variance, degrees of freedom)``.

    The variance of the grand mean is ``seed / S + item / I + residual / (S I)``; the degrees of freedom are
    Satterthwaite's for that sum. Negative component estimates are set to zero.
    """
    n_seeds, n_items = diff.shape
    if n_seeds == 1 or n_items == 1:  # one factor only: its variance carries the residual too
        n = n_items if n_seeds == 1 else n_seeds
        var = float(diff.var(ddof=1)) if n > 1 else 0.0
        return (0.0, var, 0.0, n - 1.0) if n_seeds == 1 else (var, 0.0, 0.0, n - 1.0)
    ms_seed, ms_item, ms_res = _mean_squares(diff)
    seed, item = max(ms_seed - ms_res, 0.0) / n_items, max(ms_item - ms_res, 0.0) / n_seeds
    terms = [(ms_seed, n_seeds - 1), (ms_item, n_items - 1), (-ms_res, (n_seeds - 1) * (n_items - 1))]
    total = sum(ms for ms, _ in terms)
    df = total**2 / sum(ms**2 / d for ms, d in terms) if total > 0 else float(n_seeds - 1)
    return seed, item, ms_res, float(max(df, 1.0))


def _mean_variance(diff: np.ndarray, components: tuple[float, float, float, float]) -> float:
    """Variance of ``diff.mean()``: the unbiased ANOVA estimate, never below the residual's share."""
    n_seeds, n_items = diff.shape
    if n_seeds == 1 or n_items == 1:
        return _variance(components, n_seeds, n_items)
    ms_seed, ms_item, ms_res = _mean_squares(diff)
    return max(ms_seed + ms_item - ms_res, ms_res) / (n_seeds * n_items)


def _variance(components: tuple[float, float, float, float], n_seeds: int, n_items: int) -> float:
    """Variance of the grand mean of an ``n_seeds`` x ``n_items`` design with these components."""
    seed, item, res, _ = components
    return seed / n_seeds + item / n_items + res / (n_seeds * n_items)


def compare(a: object, b: object, *, seeds: Sequence[int] | None = None, metric: str = "score",
            arms: tuple[str, str] = ("A", "B"), n_boot: int = 4000, level: float = 0.95, seed: int = 0,
            fmt: str = "+.3f") -> Comparison:
    """Compare arm B with arm A, paired over seeds and items.

    The interval is a hierarchical bootstrap (seeds, then items) whose spread is rescaled to the unbiased variance
    of the crossed design and widened from normal to Student-t quantiles (Satterthwaite degrees of freedom): with 3-10
    seeds a plain bootstrap is too narrow, and resampling both seeds and items counts the seed-by-item noise twice.

    Args:
        a, b: (seeds, items) scores of the two arms on the same items (a 1-D array is one seed; ``a`` may be a single
            number, a fixed reference such as chance level).
        seeds: the seed of each row, for the per-seed values; default 0, 1, ...
        metric: what one score is, e.g. ``"accuracy"``.
        arms: the two arms' names, A first.
        n_boot: bootstrap replicates (>= 200).
        level: confidence level of the interval, in (0, 1).
        seed: the bootstrap's own seed (the interval is reproducible).
        fmt: format spec of effects in text.

    Returns:
        The :class:`Comparison`.

    Raises:
        TypeError, ValueError: arrays of different shapes, NaN scores, a bad level or ``n_boot``.
    """
    _check_labels(metric, arms, fmt)
    b_arr = _as_scores("b", b)
    a_arr = _as_scores("a", a, shape=b_arr.shape)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must score the same seeds and items: a has shape {a_arr.shape}, b {b_arr.shape}")
    n_seeds, n_items = b_arr.shape
    seeds = _check_design(seeds, n_seeds, level, n_boot)
    diff = b_arr - a_arr
    effect = float(diff.mean())
    components = variance_components(diff)
    var = _mean_variance(diff, components)
    reps = _bootstrap(diff, n_boot, np.random.default_rng(seed))
    low = high = effect
    if var > 0 and reps.var() > 0:
        quant = float(stats.t.ppf(0.5 + level / 2, components[3]) / stats.norm.ppf(0.5 + level / 2))
        dev = np.quantile(reps - reps.mean(), [(1 - level) / 2, (1 + level) / 2]) * math.sqrt(var / reps.var())
        low, high = effect + float(dev[0]) * quant, effect + float(dev[1]) * quant
        # no wider than the effect can be: a rate difference stays within [-1, 1]
        low, high = max(low, float(b_arr.min() - a_arr.max())), min(high, float(b_arr.max() - a_arr.min()))
    se = math.sqrt(var)
    return Comparison(metric=metric, arms=(str(arms[0]), str(arms[1])), effect=effect, low=low, high=high,
                      level=level, per_seed_a=tuple(float(v) for v in a_arr.mean(axis=1)),
                      per_seed_b=tuple(float(v) for v in b_arr.mean(axis=1)), seeds=seeds, n_items=n_items, se=se,
                      seed_share=components[0] / n_seeds / var if var > 0 else 0.0,
                      mde=mde_factor(components[3]) * se, fmt=fmt, df=components[3],
                      components=components[:3])


def exact(a: float, b: float, *, metric: str = "count", arms: tuple[str, str] = ("A", "B"),
          fmt: str = "+.3g") -> Comparison:
    """A deterministic comparison (a parameter count, multiply-accumulates): the interval is the value itself.

    Args:
        a, b: the two arms' values.
        metric: what the values are.
        arms: the two arms' names, A first.
        fmt: format spec of the effect in text.

    Returns:
        The :class:`Comparison`, with ``exact=True``.

    Raises:
        TypeError: a value that is not a finite number.
    """
    _check_labels(metric, arms, fmt)
    values = []
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not math.isfinite(v):
            raise TypeError(f"{name} must be a finite number, got {v!r}")
        values.append(float(v))
    effect = values[1] - values[0]
    return Comparison(metric=metric, arms=(str(arms[0]), str(arms[1])), effect=effect, low=effect, high=effect,
                      level=1.0, per_seed_a=(values[0],), per_seed_b=(values[1],), seeds=(0,), n_items=1, se=0.0,
                      seed_share=0.0, mde=0.0, exact=True, fmt=fmt)


def describe_times(seconds: Sequence[float], unit: str = "ms") -> str:
    """A timing as it should be reported: ``"median 3.1 ms (range 2.8-3.5, 7 repeats)"``.

    Wall-clock times vary with machine load, so they are reported with their run-to-run range and never decide a
    verdict.

    Args:
        seconds: repeated measurements, in seconds.
        unit: ``"s"``, ``"ms"`` or ``"us"``.

    Returns:
        The text.

    Raises:
        ValueError: no measurements or an unknown unit.
    """
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}
    if unit not in scale:
        raise ValueError(f"unit must be one of {sorted(scale)}, got {unit!r}")
    arr = np.asarray(seconds, dtype=float).ravel() * scale[unit]
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError("seconds must hold at least one finite measurement")
    digits = 3 if np.median(arr) < 10 else 0
    f = f".{2 if digits else 0}f"
    return (f"median {format(np.median(arr), f)} {unit} (range {format(arr.min(), f)}-{format(arr.max(), f)}, "
            f"{arr.size} repeat{'s' * (arr.size != 1)})")
