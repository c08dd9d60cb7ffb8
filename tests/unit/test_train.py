"""hrlib.train.engine: learning, history rows and MACs, determinism, callbacks, lr schedules, evaluate, errors."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrlib.models import build_model, count_cost
from hrlib.train import Callback, EvalResult, History, TrainState, evaluate, fit


@dataclass(frozen=True)
class Stage:
    name: str
    resolution: int


@dataclass(frozen=True)
class ResizeNormalize:
    """albumentations-style: ``t(image=uint8 HWC)["image"]`` is a normalized float32 CHW tensor at ``size`` px."""

    size: int

    def __call__(self, *, image: np.ndarray) -> dict[str, torch.Tensor]:
        x = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return {"image": (torch.from_numpy(x).permute(2, 0, 1).float() / 255 - 0.5) / 0.25}


@dataclass
class FakeSchedule:
    """The schedule protocol of hrlib.train.engine: one resolution per epoch, stage ``low`` below the largest."""

    resolutions: tuple[int, ...] = (32, 32, 48)

    @property
    def num_epochs(self) -> int:
        return len(self.resolutions)

    def stage_at(self, epoch: int) -> Stage:
        r = self.resolutions[epoch]
        return Stage("high" if r == max(self.resolutions) else "low", r)

    def resolution_at(self, epoch: int) -> int:
        return self.resolutions[epoch]

    def train_transform(self, epoch: int) -> ResizeNormalize:
        return ResizeNormalize(self.resolutions[epoch])


def bright_dark(n: int, size: int = 40, seed: int = 0) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """``n`` noisy images; label 1 is bright (mean ~150), label 0 dark (mean ~100): separable by brightness."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        label = i % 2
        image = rng.normal(100 + 50 * label, 30, (size, size, 3)).clip(0, 255).astype(np.uint8)
        items.append((image, label, np.zeros((0, 4), np.float32)))
    return items


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("dsconvnet", num_classes=2, widths=(8, 16))


QUIET = {"progress": False, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


class Recorder(Callback):
    def __init__(self, stop_after: int | None = None) -> None:
        self.events: list[tuple[str, int]] = []
        self.lrs: list[float] = []
        self.stop_after = stop_after

    def on_fit_start(self, state: TrainState) -> None:
        self.events.append(("fit_start", state.epoch))

    def on_epoch_start(self, state: TrainState) -> None:
        self.events.append(("epoch_start", state.epoch))

    def on_after_backward(self, state: TrainState) -> None:
        assert all(p.grad is not None for p in state.model.parameters())
        self.events.append(("after_backward", state.epoch))

    def on_batch_end(self, state: TrainState) -> None:
        assert math.isfinite(state.loss) and state.batch_size > 0 and state.model.training
        assert state.lr == state.optimizer.param_groups[0]["lr"]
        self.events.append(("batch_end", state.epoch))
        self.lrs.append(state.lr)

    def on_epoch_end(self, state: TrainState) -> None:
        assert state.row["epoch"] == state.epoch
        state.row["twice_epoch"] = 2 * state.epoch  # a callback may add a column
        self.events.append(("epoch_end", state.epoch))
        if self.stop_after is not None and state.epoch + 1 >= self.stop_after:
            state.stop_training = True

    def on_fit_end(self, state: TrainState) -> None:
        self.events.append(("fit_end", state.epoch))


@pytest.fixture(scope="module")
def run() -> tuple[nn.Module, History, list]:
    """One 3-epoch run with validation every 2 epochs, shared by the history tests."""
    model, data = tiny_model(), bright_dark(20)
    history = fit(model, data, FakeSchedule(), val_set=bright_dark(6, seed=1), val_transform=ResizeNormalize(48),
                  epochs_per_eval=2, batch_size=8, **QUIET)
    return model, history, data


def test_fit_learns_an_easy_task() -> None:
    model, data = tiny_model(), bright_dark(64)
    history = fit(model, data, FakeSchedule((32,) * 4), lr=1e-2, **QUIET)
    losses = history.column("train_loss")
    assert losses[-1] < 0.5 * losses[0]
    assert history.last("train_acc") > 0.9
    assert evaluate(model, data, ResizeNormalize(32)).accuracy > 0.9


def test_history_rows_follow_the_schedule(run: tuple[nn.Module, History, list]) -> None:
    model, history, data = run
    rows = history.as_rows()
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert [r["resolution"] for r in rows] == [32, 32, 48]
    assert [r["stage"] for r in rows] == ["low", "low", "high"]
    assert all(set(r) == set(History.KEYS) for r in rows)
    for r in rows:
        assert math.isfinite(r["train_loss"]) and 0 <= r["train_acc"] <= 1 and r["seconds"] > 0
        assert r["samples"] == len(data)
        assert r["train_macs"] == 3 * count_cost(model, r["resolution"]).macs * len(data) > 0
    assert math.isnan(rows[0]["val_loss"]) and all(math.isfinite(r["val_loss"]) for r in rows[1:])
    np.testing.assert_array_equal(history.cumulative("train_macs"), np.cumsum([r["train_macs"] for r in rows]))
    assert history.best("train_loss")["train_loss"] == min(r["train_loss"] for r in rows)
    assert history.best("val_acc")["epoch"] in (1, 2)


def test_count_macs_off_gives_zero() -> None:
    history = fit(tiny_model(), bright_dark(8), FakeSchedule((32,)), count_macs=False, **QUIET)
    assert history.last("train_macs") == 0


def _run(seed: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    model = tiny_model(0)
    history = fit(model, bright_dark(24), FakeSchedule((32, 32)), batch_size=8, seed=seed, **QUIET)
    return list(history.column("train_loss")), model.state_dict()


def test_same_seed_same_run_different_seed_different_run() -> None:
    (loss_a, weights_a), (loss_b, weights_b), (loss_c, weights_c) = _run(0), _run(0), _run(1)
    assert loss_a == loss_b
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert loss_a != loss_c
    assert not all(torch.equal(weights_a[k], weights_c[k]) for k in weights_a)


def test_callbacks_are_called_in_order_with_the_right_counts() -> None:
    rec = Recorder()
    history = fit(tiny_model(), bright_dark(20), FakeSchedule(), batch_size=8, callbacks=[rec], **QUIET)
    names = [e for e, _ in rec.events]
    assert names[0] == "fit_start" and names[-1] == "fit_end"
    counts = {n: names.count(n) for n in set(names)}
    assert counts == {"fit_start": 1, "epoch_start": 3, "after_backward": 3 * 3, "batch_end": 3 * 3,
                      "epoch_end": 3, "fit_end": 1}
    per_epoch = ["epoch_start", *["after_backward", "batch_end"] * 3, "epoch_end"]
    assert names[1:-1] == per_epoch * 3
    assert [ep for n, ep in rec.events if n == "epoch_start"] == [0, 1, 2]
    np.testing.assert_array_equal(history.column("twice_epoch"), [0, 2, 4])


def test_stop_training_ends_after_the_current_epoch() -> None:
    rec = Recorder(stop_after=1)
    history = fit(tiny_model(), bright_dark(8), FakeSchedule((32, 32, 32, 32)), batch_size=4, callbacks=[rec],
                  **QUIET)
    assert len(history) == 1
    assert [e for e, _ in rec.events].count("batch_end") == 2
    assert rec.events[-2] == ("epoch_end", 0)
    assert rec.events[-1] == ("fit_end", 0)


@pytest.mark.parametrize("lr_schedule", ["onecycle", "constant", "cosine", "step"])
def test_lr_schedules(lr_schedule: str) -> None:
    rec = Recorder()
    history = fit(tiny_model(), bright_dark(16), FakeSchedule((32,) * 4), batch_size=4, lr=1e-2,
                  lr_schedule=lr_schedule, callbacks=[rec], **QUIET)
    lrs = np.array(rec.lrs)
    assert len(lrs) == 16 and history.last("lr") == lrs[-1]
    if lr_schedule == "constant":
        np.testing.assert_array_equal(lrs, 1e-2)
    elif lr_schedule == "cosine":
        assert lrs[0] == pytest.approx(1e-2) and np.all(np.diff(lrs) < 0)
    elif lr_schedule == "step":  # 4 epochs of 4 batches: x0.1 after epoch 2 and after epoch 3
        np.testing.assert_allclose(lrs, [1e-2] * 8 + [1e-3] * 4 + [1e-4] * 4)
    else:
        peak = int(np.argmax(lrs))
        assert 0 < peak < len(lrs) - 1 and lrs[peak] == pytest.approx(1e-2, rel=0.05)
        assert np.all(np.diff(lrs[: peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
        assert lrs[0] < 0.1 * lrs[peak] and lrs[-1] < 0.01 * lrs[peak]


def test_history_records_momentum() -> None:
    history = fit(tiny_model(), bright_dark(16), FakeSchedule((32,) * 4), batch_size=4, lr=1e-2, **QUIET)
    betas = history.column("momentum")  # AdamW's beta1, cycled by OneCycleLR from 0.95 down to 0.85 and back
    assert betas.min() >= 0.85 - 1e-9 and betas.max() <= 0.95 + 1e-9 and np.ptp(betas) > 0.01
    model = tiny_model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = fit(model, bright_dark(8), FakeSchedule((32,)), batch_size=4, optimizer=sgd, lr_schedule="constant",
                  **QUIET)
    assert history.last("momentum") == 0.9


def test_a_given_optimizer_is_used_with_its_lr() -> None:
    model, rec = tiny_model(), Recorder()
    sgd = torch.optim.SGD(model.parameters(), lr=0.05)
    fit(model, bright_dark(8), FakeSchedule((32,)), batch_size=4, optimizer=sgd, lr_schedule="constant",
        callbacks=[rec], **QUIET)
    assert rec.lrs == [0.05, 0.05]


def test_amp_runs_on_cpu_in_bfloat16() -> None:
    model, dtypes = tiny_model(), []
    model.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    history = fit(model, bright_dark(8), FakeSchedule((32,)), amp=True, **QUIET)
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert math.isfinite(history.last("train_loss"))


class Oracle(nn.Module):
    """Predicts the class written in the image's first pixel, with logits 5 for it and 0 for the others."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes, self.scale = num_classes, nn.Parameter(torch.tensor(5.0))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return F.one_hot(x[:, 0, 0, 0].round().long(), self.num_classes).float() * self.scale


def to_tensor(*, image: np.ndarray) -> dict[str, torch.Tensor]:
    return {"image": torch.from_numpy(image).permute(2, 0, 1).float()}


def test_evaluate_on_known_outputs() -> None:
    labels, preds = [0, 0, 1, 1, 1], [0, 1, 1, 1, 0]
    data = [(np.full((4, 4, 3), p, np.uint8), y, None) for p, y in zip(preds, labels, strict=True)]
    model = Oracle().train()
    result = evaluate(model, data, to_tensor, batch_size=2)
    assert isinstance(result, EvalResult)
    assert model.training and model.modes == [False] * 3
    np.testing.assert_array_equal(result.confusion, [[1, 1, 0], [1, 2, 0], [0, 0, 0]])
    np.testing.assert_allclose(result.per_class_accuracy, [0.5, 2 / 3, np.nan])
    assert result.accuracy == pytest.approx(3 / 5)
    np.testing.assert_array_equal(result.predictions, preds)
    np.testing.assert_array_equal(result.labels, labels)
    expected = F.cross_entropy(F.one_hot(torch.tensor(preds), 3).float() * 5, torch.tensor(labels)).item()
    assert result.loss == pytest.approx(expected)
    assert evaluate(model.eval(), data, to_tensor, num_classes=4).confusion.shape == (4, 4)
    assert not model.training


def test_history_json_round_trip(run: tuple[nn.Module, History, list], tmp_path) -> None:
    _, history, _ = run
    path = history.to_json(tmp_path / "history.json")
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]
    back = History.from_json(path)
    assert len(back) == len(history)
    for a, b in zip(history.as_rows(), back.as_rows(), strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])), k


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"weight_decay": -1e-4}, "weight_decay"),
    ({"batch_size": 0}, "batch_size"),
    ({"epochs_per_eval": 0}, "epochs_per_eval"),
    ({"seed": -1}, "seed"),
    ({"lr_schedule": "exponential"}, "lr_schedule"),
    ({"val_set": bright_dark(2)}, "val_transform"),
    ({"callbacks": [object()]}, "callbacks[0]"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"schedule": object()}, "schedule"),
    ({"train_set": []}, "train_set"),
    ({"model": "dsconvnet"}, "model"),
    ({"batch_transform": "mixup"}, "batch_transform"),
])
def test_fit_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    args = {"model": tiny_model(), "train_set": bright_dark(4), "schedule": FakeSchedule((32,)), **kwargs}
    with pytest.raises((ValueError, TypeError), match=rf"^{re.escape(name)} "):
        fit(args.pop("model"), args.pop("train_set"), args.pop("schedule"), **args, **QUIET)


def test_evaluate_rejects_bad_arguments() -> None:
    data = [(np.full((4, 4, 3), 1, np.uint8), 2, None)]
    with pytest.raises(ValueError, match="^num_classes "):
        evaluate(Oracle(2), data, to_tensor)
    with pytest.raises(ValueError, match="^num_classes "):
        evaluate(Oracle(3), data, to_tensor, num_classes=2)
    with pytest.raises(TypeError, match="transform"):
        evaluate(Oracle(), data, "to_tensor")
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(Oracle(), data, to_tensor, batch_size=0)


def test_fit_is_deterministic_with_albumentations_schedules():
    """albumentations pipelines draw from their own generator: fit must seed it, or runs differ."""
    from hrlib.data.slides import SlideDataset
    from hrlib.staging import Schedule

    data = SlideDataset(12, 48, seed=3, in_memory=True)
    sched = Schedule.three_stage(48, 3)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)  # same initial weights
        model = build_model("dsconvnet", num_classes=3, widths=(8, 16))
        runs.append(fit(model, data, sched, batch_size=4, seed=5, progress=False, count_macs=False))
    assert [r["train_loss"] for r in runs[0].rows] == [r["train_loss"] for r in runs[1].rows]


def test_fit_with_worker_processes_is_reproducible():
    from hrlib.data.slides import SlideDataset
    from hrlib.staging import Schedule

    data = SlideDataset(8, 32, seed=2)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("dsconvnet", num_classes=3, widths=(8, 16))
        history = fit(model, data, Schedule.fixed(32, 2), batch_size=4, seed=1, num_workers=2, progress=False,
                      count_macs=False)
        losses.append(history.column("train_loss").tolist())
    assert losses[0] == losses[1]


def test_evaluating_does_not_change_the_training_run() -> None:
    """Validation every epoch or only at the end: the same final weights (dropout draws from the global RNG)."""
    def run(every: int) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(tiny_model(), nn.Dropout(0.5), nn.Linear(2, 2))
        fit(model, bright_dark(8), FakeSchedule((32,) * 3), val_set=bright_dark(4), val_transform=ResizeNormalize(32),
            epochs_per_eval=every, batch_size=4, **QUIET)
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(run(1), run(3), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class InputsRecorder(Callback):
    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def on_after_backward(self, state: TrainState) -> None:
        self.inputs.append(state.inputs.clone())


def test_batch_transform_sees_each_batch_and_soft_labels_train() -> None:
    """A batch transform runs before the forward pass (callbacks see its output) and may return soft labels."""
    calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def soft_negate(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append((tuple(x.shape), tuple(y.shape)))
        return -x, F.one_hot(y, 2).float() * 0.9 + 0.05

    rec = InputsRecorder()
    data = bright_dark(16)
    history = fit(tiny_model(), data, FakeSchedule((32, 32)), batch_size=8, lr=1e-2, batch_transform=soft_negate,
                  callbacks=[rec], **QUIET)
    assert calls == [((8, 3, 32, 32), (8,))] * 4
    plain = [ResizeNormalize(32)(image=data[i][0])["image"] for i in range(16)]
    assert all(any(torch.allclose(-x, p) for p in plain) for x in rec.inputs[0])  # the negated images
    assert all(math.isfinite(v) for v in history.column("train_loss"))
    assert 0.0 <= history.last("train_acc") <= 1.0
