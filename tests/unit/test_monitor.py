"""hrlib.augment.monitor: flags over-blurring and normalization bugs at the step they start, stays quiet on clean
augmented batches, works as a fit callback, warns only when asked, plots."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from hrlib.augment.monitor import BatchStatsMonitor, StatsFlag, batch_stats
from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD, SlideDataset
from hrlib.models import build_model
from hrlib.staging import Schedule, Stage, stage_transform
from hrlib.train import fit

matplotlib.use("Agg")
MEAN, STD = torch.tensor(SLIDE_MEAN).view(3, 1, 1), torch.tensor(SLIDE_STD).view(3, 1, 1)
BUG_AT = 8


class Augmented(torch.utils.data.Dataset):
    def __init__(self, n: int, size: int, transform) -> None:
        self.data, self.transform = SlideDataset(n, size, in_memory=True), transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(image=self.data[i][0])["image"]


@pytest.fixture(scope="module")
def batches(one_thread) -> list[torch.Tensor]:
    """Normally augmented, normalized slide batches: 3 epochs of 32 slides (128 px) at 64 px, 8 per batch."""
    data = Augmented(32, 128, stage_transform("warmup", 64, source_size=128, seed=0))
    return [x for epoch in range(3) for x in DataLoader(data, batch_size=8, shuffle=True,
                                                        generator=torch.Generator().manual_seed(epoch))]


def run(batches, bug=None, start: int = BUG_AT, **kwargs) -> BatchStatsMonitor:
    mon = BatchStatsMonitor(every=1, warn=False, **kwargs)
    for step, x in enumerate(batches):
        mon.observe(step, bug(x) if bug is not None and step >= start else x)
    return mon


def blur(x: torch.Tensor) -> torch.Tensor:
    return TF.gaussian_blur(x, kernel_size=[19, 19], sigma=[3.0, 3.0])


def normalize_again(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN) / STD


def forgot_255(x: torch.Tensor) -> torch.Tensor:
    return ((x * STD + MEAN) * 255 - MEAN) / STD


def test_clean_augmented_batches_raise_no_flag(batches):
    mon = run(batches)
    assert len(mon.records) == len(batches) == 12 and mon.flags == []


def test_over_blurring_is_flagged_where_it_starts(batches):
    mon = run(batches, blur)
    assert min(f.step for f in mon.flags) == BUG_AT
    first = [f for f in mon.flags if f.step == BUG_AT]
    assert {f.channel for f in first if f.stat == "detail"} == {0, 1, 2}
    assert all(f.value < 0.5 * f.reference and "blur" in f.reason for f in first)
    assert not any(f.stat == "mean" for f in mon.flags)


@pytest.mark.parametrize("bug", [normalize_again, forgot_255])
def test_normalization_bugs_are_flagged_where_they_start(batches, bug):
    mon = run(batches, bug)
    first = [f for f in mon.flags if f.step == BUG_AT]
    assert min(f.step for f in mon.flags) == BUG_AT
    assert {f.channel for f in first if f.stat == "std"} == {0, 1, 2}
    assert {f.channel for f in first if f.stat == "mean"} >= {0, 2}  # channel 1 moves by about 3 stds: borderline
    assert all(f.value > 2 * f.reference for f in first if f.stat == "std")


def test_a_persistent_change_is_flagged_until_it_fills_the_window(batches):
    mon = run(batches, normalize_again)
    assert sorted({f.step for f in mon.flags}) == [BUG_AT, BUG_AT + 1, BUG_AT + 2]  # median of 5 taken over


def test_no_flags_before_the_window_is_full(batches):
    mon = run(batches, normalize_again, start=3)
    assert min(f.step for f in mon.flags) == 5  # steps 3, 4 are part of the reference the bug is judged against


def test_thresholds_are_used(batches):
    assert run(batches, blur, drop=0.05).flags == []
    assert run(batches, normalize_again, rise=20.0, shift=20.0).flags == []


def test_a_resolution_change_starts_a_new_reference(batches):
    mon = BatchStatsMonitor(every=1, warn=False)
    large = [torch.nn.functional.interpolate(x, size=192, mode="bilinear") for x in batches[:6]]
    for step, x in enumerate(batches[:6] + large):  # 3x upsampling: about 3x less detail per pixel
        mon.observe(step, x)
    assert mon.flags == [] and [r["shape"] for r in mon.records[5:7]] == [(3, 64, 64), (3, 192, 192)]


def test_warn_on_and_off(batches):
    mon = BatchStatsMonitor(every=1, warn=True)
    with pytest.warns(UserWarning) as caught:
        for step, x in enumerate(batches):
            mon.observe(step, normalize_again(x) if step >= BUG_AT else x)
    messages = [str(w.message) for w in caught if "batch statistics" in str(w.message)]
    assert len(messages) == len(mon.flags) > 0
    assert messages[0].startswith(f"batch statistics at step {BUG_AT}, channel 0: ")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(batches, normalize_again).flags  # warn=False: silent


def test_every_and_watch(batches):
    mon = BatchStatsMonitor(every=3, warn=False)
    seen = list(mon.watch(((x, 0) for x in batches), start=1))
    assert len(seen) == len(batches) and seen[4][0] is batches[4]
    assert [r["step"] for r in mon.records] == [3, 6, 9, 12]
    assert mon.observe(4, batches[0]) == [] and len(mon.records) == 4


def test_batch_stats_values():
    x = torch.zeros(2, 2, 4, 4)
    x[:, 1, :, ::2] = 1.0  # channel 1: stripes
    stats = batch_stats(x)
    np.testing.assert_allclose(stats["mean"], [0, 0.5])
    np.testing.assert_allclose(stats["std"], [0, 0.5])
    np.testing.assert_allclose(stats["detail"], [0, np.sqrt(0.5)])


def test_works_as_a_fit_callback(one_thread):
    calls = []

    def late_double_normalization(x, y):  # the bug starts at the 9th optimizer step
        calls.append(1)
        return (normalize_again(x) if len(calls) >= 9 else x), y

    def train(monitor, batch_transform=None):
        schedule = Schedule([Stage("low", 32, 3, "warmup"), Stage("high", 64, 1, "warmup")], source_size=64)
        fit(build_model("dsconvnet", widths=(8, 16)), SlideDataset(16, 64, in_memory=True), schedule, batch_size=4,
            callbacks=[monitor], progress=False, device="cpu", count_macs=False, batch_transform=batch_transform)
        return monitor

    mon = train(BatchStatsMonitor(every=1, warn=False), late_double_normalization)
    assert [r["step"] for r in mon.records] == list(range(1, 17))
    assert [r["shape"] for r in mon.records] == [(3, 32, 32)] * 12 + [(3, 64, 64)] * 4
    assert min(f.step for f in mon.flags) == 9
    assert {f.stat for f in mon.flags if f.step == 9} == {"std", "mean"}
    clean = train(BatchStatsMonitor(every=2, window=3, warn=False))
    assert [r["step"] for r in clean.records] == list(range(2, 17, 2)) and clean.flags == []


def test_plot(batches):
    mon = run(batches, blur)
    fig = mon.plot()
    top, middle, bottom = fig.axes[:3]
    assert "Batch statistics" in top.get_title() and "step" in bottom.get_xlabel()
    assert "std" in top.get_ylabel() and "detail" in middle.get_ylabel() and "mean" in bottom.get_ylabel()
    assert len(middle.collections) == 1  # the flagged detail values
    assert len(top.lines) == 3 + len({f.step for f in mon.flags})  # 3 channels + a line per flagged step
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert mon.plot(ax).axes == [ax]
    plt.close("all")


def test_bad_arguments_raise_naming_the_argument(batches):
    mon = BatchStatsMonitor(warn=False)
    for bad in (batches[0][0], batches[0].to(torch.uint8), batches[0].numpy(), batches[0][..., :1]):
        with pytest.raises((TypeError, ValueError), match=r"^x must be a.* float tensor"):
            mon.observe(0, bad)
    with pytest.raises(ValueError, match=r"^step "):
        mon.observe(-1, batches[0])
    for kwargs, name in [({"every": 0}, "every"), ({"window": 0}, "window"), ({"drop": 1.5}, "drop"),
                         ({"rise": 0.5}, "rise"), ({"shift": 0.0}, "shift")]:
        with pytest.raises(ValueError, match=f"^{name} "):
            BatchStatsMonitor(**kwargs)
    assert isinstance(StatsFlag(1, 0, "std", 0.1, 1.0, "x"), StatsFlag)
