"""Audit cases of lesson 02's additions to hrlib.augment.monitor (see ``harness.py``)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import Case  # noqa: E402

SPECS: dict[str, Case] = {}
EXEMPT: dict[str, str] = {}


def _fed():
    import torch

    from hrlib.augment.monitor import BatchStatsMonitor

    m = BatchStatsMonitor(every=1, window=2, warn=False)
    for step in range(2):
        m.observe(step, torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(step)))
    return m


def _batch():
    import torch

    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))


def _bad_batches():
    import torch

    return [None, np.zeros((2, 3, 8, 8), np.float32), torch.zeros(3, 8, 8), torch.zeros(2, 3, 1, 8),
            torch.full((2, 3, 8, 8), float("nan"))]


_RATIOS = [{"std_low": 0.9, "std_high": 1.1, "detail_low": 0.9, "mean_shift": 0.1}] * 25

SPECS.update({
    "hrlib.augment.monitor.calibrate": Case(
        valid=lambda: {"healthy": _RATIOS, "false_alarm": 0.01},
        bad={"healthy": [None, _RATIOS[:3], "abc", [{"std_low": 1.0}] * 25, {"std_low": 1.0}],
             "false_alarm": [0.0, 0.5, -1, np.nan, "0.01", None]}),
    "hrlib.augment.monitor.BatchStatsMonitor.check": Case(
        fn=lambda **kw: _fed().check(**kw), valid=lambda: {"x": _batch()}, bad={"x": _bad_batches()}),
    "hrlib.augment.monitor.BatchStatsMonitor.ratios": Case(
        fn=lambda **kw: _fed().ratios(**kw), valid=lambda: {"x": _batch()}, bad={"x": _bad_batches()}),
})
