"""hrlib.augment.monitor's calibration path (lesson 02, C9): ratios and check look without recording, calibrate
turns healthy ratios into thresholds with the declared false-alarm budget, and a separate detail threshold works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrlib.augment.monitor import RATIO_KEYS, BatchStatsMonitor, calibrate


def noise(seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * scale + shift


def fed(window: int = 5, **kwargs) -> BatchStatsMonitor:
    mon = BatchStatsMonitor(every=1, window=window, warn=False, **kwargs)
    for step in range(window):
        mon.observe(step, noise(step))
    return mon


def test_ratios_and_check_do_not_record() -> None:
    mon = fed()
    before = len(mon.records)
    r = mon.ratios(noise(99, scale=0.3))
    assert set(r) == set(RATIO_KEYS) and r["std_low"] < 0.4 and r["std_high"] < 0.4
    assert {f.stat for f in mon.check(noise(99, scale=0.3))} >= {"std"}
    assert all(f.step == -1 for f in mon.check(noise(99, scale=0.3)))
    assert len(mon.records) == before and mon.flags == []


def test_ratios_are_none_until_the_window_is_full() -> None:
    mon = BatchStatsMonitor(every=1, window=3, warn=False)
    mon.observe(0, noise(0))
    assert mon.ratios(noise(1)) is None and mon.check(noise(1)) == []


def test_check_agrees_with_observe() -> None:
    mon = fed()
    x = noise(50, scale=3.0, shift=1.0)
    expected = [(f.channel, f.stat) for f in mon.check(x)]
    assert expected and [(f.channel, f.stat) for f in mon.observe(5, x)] == expected


def test_mean_shift_ratio_is_in_reference_stds() -> None:
    mon = fed()
    assert mon.ratios(noise(7, shift=2.0))["mean_shift"] == pytest.approx(2.0, abs=0.3)


def test_detail_drop_is_separate_from_drop() -> None:
    smooth = torch.nn.functional.avg_pool2d(noise(9), 3, stride=1, padding=1) * 3  # std kept, detail lower
    strict, loose = fed(drop=0.1, detail_drop=0.9), fed(drop=0.1, detail_drop=0.05)
    assert any(f.stat == "detail" for f in strict.check(smooth))
    assert not any(f.stat == "detail" for f in loose.check(smooth))
    assert fed(drop=0.3).detail_drop == 0.3


def test_calibrate_keeps_the_false_alarm_budget_on_its_own_batches() -> None:
    rng = np.random.default_rng(0)
    healthy = [{"std_low": float(a), "std_high": float(b), "detail_low": float(c), "mean_shift": float(d)}
               for a, b, c, d in zip(rng.uniform(0.6, 1.0, 400), rng.uniform(1.0, 1.5, 400),
                                     rng.uniform(0.7, 1.0, 400), rng.uniform(0, 0.5, 400), strict=True)]
    thr = calibrate(healthy, false_alarm=0.04)
    assert set(thr) == {"drop", "detail_drop", "rise", "shift"}
    alarms = np.mean([r["std_low"] < thr["drop"] or r["std_high"] > thr["rise"] or r["mean_shift"] > thr["shift"]
                      or r["detail_low"] < thr["detail_drop"] for r in healthy])
    assert alarms <= 0.04
    assert 0.6 <= thr["drop"] < 0.62 and 1.48 < thr["rise"] <= 1.5
    BatchStatsMonitor(**thr)  # valid arguments


def test_calibrate_on_monitor_ratios() -> None:
    mon = fed()
    healthy = []
    for step in range(5, 40):
        healthy.append(mon.ratios(noise(step)))
        mon.observe(step, noise(step))
    thr = calibrate(healthy, false_alarm=0.01)
    assert thr["drop"] < 1 < thr["rise"] and thr["shift"] > 0


@pytest.mark.parametrize(("healthy", "false_alarm", "error"), [
    ([{"std_low": 1.0}] * 30, 0.01, TypeError),
    ([{k: 1.0 for k in RATIO_KEYS}] * 5, 0.01, ValueError),
    ([{k: float("nan") for k in RATIO_KEYS}] * 30, 0.01, ValueError),
    ([{k: 1.0 for k in RATIO_KEYS}] * 30, 0.0, ValueError),
    ({"std_low": 1.0}, 0.01, ValueError),
])
def test_calibrate_rejects_bad_input(healthy, false_alarm, error) -> None:
    with pytest.raises(error, match="healthy|false_alarm"):
        calibrate(healthy, false_alarm=false_alarm)


@pytest.mark.parametrize("bad", [0.0, 1.0, float("nan"), "0.5"])
def test_bad_detail_drop_raises_naming_it(bad) -> None:
    with pytest.raises((TypeError, ValueError), match="detail_drop"):
        BatchStatsMonitor(detail_drop=bad)
