"""A batch statistics monitor (lesson 02, claim C9): catch a preprocessing bug from the numbers the model sees.

Every ``every`` batches :class:`BatchStatsMonitor` records, per channel of the NCHW batch, the mean, the std and
the *detail* (RMS difference between neighbouring pixels, the fine texture that a blur removes), and compares them
with the median of its previous ``window`` records of the same shape (a resolution change starts a new reference).
A channel is flagged when its std or detail falls below ``drop`` x the reference (over-blurring: a Gaussian blur of
sigma 3 px takes the detail of normalized slides to about 0.1-0.3x but their std only to about 0.6-0.75x, so the
detail is what catches it), when its std rises above ``rise`` x the reference (normalizing twice, or a forgotten
``/ 255``), or when its mean moves by more than ``shift`` reference stds. A change that persists stays flagged
until it makes up most of the window: the first flag marks where it began. A bug present from the first batch
is not seen: the monitor compares a stream with itself. The default thresholds are a starting point: augmented
batches vary, so set them from healthy batches with :func:`calibrate` (each test gets a share of a declared
false-alarm budget), then measure the false-alarm rate on other healthy batches.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hrlib._checks import check_batch, check_bool, check_float, check_int
from hrlib.train.history import Callback, TrainState

__all__ = ["BatchStatsMonitor", "StatsFlag", "calibrate"]


@dataclass(frozen=True)
class StatsFlag:
    """A flagged channel.

    Attributes:
        step: the batch's step.
        channel: the channel's index.
        stat: ``"std"``, ``"mean"`` or ``"detail"``.
        value: what this batch had.
        reference: the median of the previous records.
        reason: a sentence naming the likely bug.
    """

    step: int
    channel: int
    stat: str
    value: float
    reference: float
    reason: str


def batch_stats(x: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-channel statistics of a batch.

    Args:
        x: NCHW float tensor (trusted: :meth:`BatchStatsMonitor.observe` checks it).

    Returns:
        ``{"mean", "std", "detail"}``: (C,) float64 arrays.
    """
    x = x.detach().float()
    dx, dy = x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]
    detail = ((dx.square().mean(dim=(0, 2, 3)) + dy.square().mean(dim=(0, 2, 3))) / 2).sqrt()
    return {"mean": x.mean(dim=(0, 2, 3)).cpu().double().numpy(),
            "std": x.std(dim=(0, 2, 3), correction=0).cpu().double().numpy(), "detail": detail.cpu().double().numpy()}


class BatchStatsMonitor(Callback):
    """Record per-channel batch statistics every ``every`` batches and flag sudden changes.

    Use it as a ``hrlib.train.fit`` callback (it observes ``state.inputs`` after each batch, at ``state.step``),
    wrap a loader with :meth:`watch`, or call :meth:`observe` yourself. ``records``: one dict per recorded batch
    with ``step``, ``shape`` (C, H, W) and (C,) arrays ``mean``, ``std``, ``detail``; ``flags``: the
    :class:`StatsFlag` s so far. :meth:`ratios` and :meth:`check` look at a batch without recording it (to
    calibrate the thresholds on healthy batches with :func:`calibrate`, or to probe a suspect batch).

    Args:
        every: record every ``every``-th step (>= 1).
        window: records in the reference (>= 1); flags start once there are that many.
        drop: std ratio in (0, 1) below which a channel is flagged (and the detail ratio, unless ``detail_drop``).
        rise: std ratio (> 1) above which it is.
        shift: mean change, in reference stds (> 0), above which it is.
        warn: also ``warnings.warn`` once per flag (False keeps notebooks quiet).
        detail_drop: detail ratio in (0, 1) below which a channel is flagged; None: ``drop``.
    """

    def __init__(self, every: int = 10, *, window: int = 5, drop: float = 0.5, rise: float = 2.0,
                 shift: float = 3.0, warn: bool = True, detail_drop: float | None = None) -> None:
        self.every, self.window = check_int("every", every), check_int("window", window)
        self.drop = check_float("drop", drop, 0.0, 1.0, low_open=True, high_open=True)
        self.detail_drop = self.drop if detail_drop is None else check_float(
            "detail_drop", detail_drop, 0.0, 1.0, low_open=True, high_open=True)
        self.rise = check_float("rise", rise, 1.0, low_open=True)
        self.shift = check_float("shift", shift, 0.0, low_open=True)
        self.warn = check_bool("warn", warn)
        self.records: list[dict] = []
        self.flags: list[StatsFlag] = []

    def _record(self, step: int, x: object) -> dict:
        """``x`` checked and summarised (not stored)."""
        check_batch("x", x, finite=False)
        if x.shape[1] < 1 or min(x.shape[2:]) < 2:  # type: ignore[union-attr]
            raise ValueError(f"x must be an NCHW float tensor with N, C >= 1 and H, W >= 2, got shape "
                             f"{tuple(x.shape)}")  # type: ignore[union-attr]
        rec = {"step": step, "shape": tuple(x.shape[1:]), **batch_stats(x)}  # type: ignore[union-attr]
        if not all(np.isfinite(rec[k]).all() for k in ("mean", "std", "detail")):
            raise ValueError(f"x must be finite, got NaN or inf in the batch at step {step}")
        return rec

    def _reference(self, shape: tuple[int, ...]) -> dict[str, np.ndarray] | None:
        """Median of the last ``window`` records of this shape; None until there are that many."""
        past = [r for r in self.records if r["shape"] == shape][-self.window:]
        if len(past) < self.window:
            return None
        return {k: np.median([r[k] for r in past], axis=0) for k in ("mean", "std", "detail")}

    def _flags(self, rec: dict, ref: dict[str, np.ndarray]) -> list[StatsFlag]:
        tiny, step, new = 1e-12, rec["step"], []
        for c in range(len(rec["std"])):
            for stat, value, reference, bad, reason in [
                ("std", rec["std"][c], ref["std"][c], rec["std"][c] < self.drop * ref["std"][c],
                 "std fell to {r:.2f}x its recent median (over-blurring, a constant fill?)"),
                ("detail", rec["detail"][c], ref["detail"][c], rec["detail"][c] < self.detail_drop * ref["detail"][c],
                 "fine detail fell to {r:.2f}x its recent median (over-blurring?)"),
                ("std", rec["std"][c], ref["std"][c], rec["std"][c] > self.rise * ref["std"][c],
                 "std rose to {r:.2f}x its recent median (normalized twice, or a 0-255 vs 0-1 bug?)"),
                ("mean", rec["mean"][c], ref["mean"][c],
                 abs(rec["mean"][c] - ref["mean"][c]) > self.shift * max(ref["std"][c], tiny),
                 "mean moved by {s:.1f} reference stds (a normalization bug?)")]:
                if bad:
                    text = reason.format(r=value / max(reference, tiny),
                                         s=abs(value - reference) / max(ref["std"][c], tiny))
                    new.append(StatsFlag(step, c, stat, float(value), float(reference), text))
        return new

    def observe(self, step: int, x: torch.Tensor) -> list[StatsFlag]:
        """Record batch ``x`` if ``step`` is a multiple of ``every``, and compare it with the reference.

        Args:
            step: the batch's step (>= 0).
            x: NCHW float tensor with N, C >= 1 and H, W >= 2.

        Returns:
            The new flags (empty when nothing changed or the batch was not recorded).
        """
        step = check_int("step", step, 0)
        check_batch("x", x, finite=False)
        if step % self.every:
            return []
        rec = self._record(step, x)
        ref = self._reference(rec["shape"])
        self.records.append(rec)
        new = [] if ref is None else self._flags(rec, ref)
        self.flags.extend(new)
        if self.warn:
            for f in new:
                warnings.warn(f"batch statistics at step {f.step}, channel {f.channel}: {f.reason}", stacklevel=2)
        return new

    def check(self, x: torch.Tensor) -> list[StatsFlag]:
        """The flags batch ``x`` would get now, without recording it (``step`` of the flags: -1).

        Args:
            x: NCHW float tensor with N, C >= 1 and H, W >= 2.

        Returns:
            The flags (empty while the reference has fewer than ``window`` records of ``x``'s shape).
        """
        rec = self._record(-1, x)
        ref = self._reference(rec["shape"])
        return [] if ref is None else self._flags(rec, ref)

    def ratios(self, x: torch.Tensor) -> dict[str, float] | None:
        """How far batch ``x`` lies from the reference, without recording it (the numbers the thresholds cut).

        Args:
            x: NCHW float tensor with N, C >= 1 and H, W >= 2.

        Returns:
            ``{"std_low": min over channels of std / reference std, "std_high": the max, "detail_low": min of
            detail / reference detail, "mean_shift": max of |mean - reference mean| / reference std}``, or None
            while the reference has fewer than ``window`` records of ``x``'s shape.
        """
        rec = self._record(-1, x)
        ref = self._reference(rec["shape"])
        if ref is None:
            return None
        tiny = 1e-12
        std, detail = rec["std"] / np.maximum(ref["std"], tiny), rec["detail"] / np.maximum(ref["detail"], tiny)
        shift = np.abs(rec["mean"] - ref["mean"]) / np.maximum(ref["std"], tiny)
        return {"std_low": float(std.min()), "std_high": float(std.max()), "detail_low": float(detail.min()),
                "mean_shift": float(shift.max())}

    def watch(self, loader: Iterable, start: int = 0) -> Iterator:
        """Yield ``loader``'s batches unchanged, observing each one's images.

        Args:
            loader: an iterable of tensors, or of tuples whose first element is the images.
            start: the first batch's step (>= 0); steps then count up by one.

        Returns:
            An iterator over the batches.
        """
        start = check_int("start", start, 0)
        if not isinstance(loader, Iterable):
            raise TypeError(f"loader must be an iterable of batches, got {type(loader).__name__} {loader!r:.60}")
        return self._watch(loader, start)

    def _watch(self, loader: Iterable, start: int) -> Iterator:
        for step, batch in enumerate(loader, start=start):
            self.observe(step, batch if isinstance(batch, torch.Tensor) else batch[0])
            yield batch

    def on_batch_end(self, state: TrainState) -> None:
        """``fit``'s hook: observe ``state.inputs`` at ``state.step``."""
        if state.inputs is not None:
            self.observe(state.step, state.inputs)

    def plot(self, ax: Axes | Sequence[Axes] | None = None) -> Figure:
        """Per-channel std, detail and mean vs step; flagged steps as red dashed lines, flagged values as red
        crosses.

        Args:
            ax: the axes to draw on, in that order (one axes: std only); default a new figure.

        Returns:
            The figure.
        """
        if ax is None:
            fig, axes = plt.subplots(3, 1, figsize=(7, 6), sharex=True, constrained_layout=True)
        else:
            axes = [ax] if isinstance(ax, Axes) else list(ax) if isinstance(ax, Sequence | np.ndarray) else []
            if not axes or not all(isinstance(a, Axes) for a in axes):
                raise TypeError(f"ax must be a matplotlib Axes, a non-empty sequence of them, or None, got "
                                f"{type(ax).__name__} {ax!r:.60}")
            fig = axes[0].figure
        steps = [r["step"] for r in self.records]
        flagged = sorted({f.step for f in self.flags})
        for a, stat in zip(axes, ("std", "detail", "mean"), strict=False):
            values = np.array([r[stat] for r in self.records]).reshape(len(steps), -1)
            for c in range(values.shape[1]):
                a.plot(steps, values[:, c], marker=".", label=f"channel {c}")
            for i, s in enumerate(flagged):
                a.axvline(s, color="red", alpha=0.5, linestyle="--", label="flagged step" if i == 0 else None)
            hits = [(f.step, f.value) for f in self.flags if f.stat == stat]
            if hits:
                a.scatter(*zip(*hits, strict=True), color="red", marker="x", zorder=3, label=f"flagged {stat}")
            a.set_ylabel(f"batch {stat}\n(input units)")
            a.legend(fontsize=7, loc="best")
        axes[0].set_title(f"Batch statistics per channel ({len(self.flags)} flags at {len(flagged)} steps)")
        axes[-1].set_xlabel("step (batches)")
        return fig


RATIO_KEYS = ("std_low", "std_high", "detail_low", "mean_shift")


def calibrate(healthy: Sequence[Mapping[str, float]], false_alarm: float = 0.01) -> dict[str, float]:
    """Thresholds for :class:`BatchStatsMonitor` from healthy batches' :meth:`BatchStatsMonitor.ratios`.

    The rule: each of the four tests (std drop, detail drop, std rise, mean shift) gets a quarter of the false-alarm
    budget, and its threshold is the matching quantile of the healthy ratios (so at most about ``false_alarm`` of
    these batches raise any flag). Check the rate on other healthy batches: a quantile of few batches is noisy.

    Args:
        healthy: one ``ratios`` dict per healthy batch (at least 20), e.g. from several seeds' augmented streams.
        false_alarm: the per-batch false-alarm budget, in (0, 0.5).

    Returns:
        ``{"drop", "detail_drop", "rise", "shift"}``: keyword arguments for :class:`BatchStatsMonitor`.

    Raises:
        TypeError, ValueError: too few batches, a dict without the four ratios, or a bad ``false_alarm``.
    """
    false_alarm = check_float("false_alarm", false_alarm, 0.0, 0.5, low_open=True, high_open=True)
    if isinstance(healthy, Mapping | str) or not isinstance(healthy, Sequence) or len(healthy) < 20:
        raise ValueError(f"healthy must be a sequence of at least 20 ratios dicts (BatchStatsMonitor.ratios), got "
                         f"{type(healthy).__name__} {healthy!r:.60}")
    try:
        values = {k: np.array([float(r[k]) for r in healthy]) for k in RATIO_KEYS}
    except (TypeError, KeyError, ValueError) as exc:
        raise TypeError(f"healthy must hold dicts with the numbers {RATIO_KEYS} (BatchStatsMonitor.ratios), "
                        f"got {healthy[0]!r:.80}") from exc
    if not all(np.isfinite(v).all() and (v >= 0).all() for v in values.values()):
        raise ValueError("healthy must hold finite ratios >= 0")
    q = false_alarm / 4
    low, high = 1e-6, 1 - 1e-6
    return {"drop": float(np.clip(np.quantile(values["std_low"], q, method="lower"), low, high)),
            "detail_drop": float(np.clip(np.quantile(values["detail_low"], q, method="lower"), low, high)),
            "rise": float(max(np.quantile(values["std_high"], 1 - q, method="higher"), 1 + 1e-6)),
            "shift": float(max(np.quantile(values["mean_shift"], 1 - q, method="higher"), 1e-6))}
