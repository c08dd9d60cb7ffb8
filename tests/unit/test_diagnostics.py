"""hrlib.diagnostics.monitors and .curves: gradient norms, the norm monitor, divergence and overfit detectors,
clipping, learning-rate and live plots."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrlib.diagnostics.curves import LivePlot, is_overfitting, plot_lr
from hrlib.diagnostics.monitors import (
    DivergenceDetector,
    GradClipper,
    GradNormMonitor,
    OverfitDetector,
    grad_norms,
    total_grad_norm,
)
from hrlib.models import build_model
from hrlib.train import Callback, History, TrainState, fit

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


@dataclass(frozen=True)
class Stage:
    name: str
    resolution: int


class ToTensor:
    """albumentations-style: ``t(image=uint8 HWC)["image"]`` is a normalized float32 CHW tensor (no resizing)."""

    def __call__(self, *, image: np.ndarray) -> dict[str, torch.Tensor]:
        return {"image": (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - 0.5) / 0.25}


@dataclass
class FakeSchedule:
    """The schedule protocol of hrlib.train.engine at one resolution, 16 px, for ``num_epochs`` epochs."""

    num_epochs: int = 2

    def stage_at(self, epoch: int) -> Stage:
        return Stage("all", 16)

    def resolution_at(self, epoch: int) -> int:
        return 16

    def train_transform(self, epoch: int) -> ToTensor:
        return TRANSFORM


TRANSFORM = ToTensor()
QUIET = {"progress": False, "device": "cpu", "count_macs": False, "batch_size": 4}


def tiny_data(n: int = 16, seed: int = 0) -> list[tuple[np.ndarray, int, None]]:
    """``n`` 16x16 images; label 1 is brighter. With batch_size 4: n / 4 steps per epoch."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(100 + 50 * (i % 2), 30, (16, 16, 3)).clip(0, 255).astype(np.uint8), i % 2, None)
            for i in range(n)]


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("dsconvnet", num_classes=2, widths=(8, 16))


def model_with_grads(seed: int = 0) -> nn.Module:
    model = tiny_model(seed)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
    F.cross_entropy(model(x), y).backward()
    return model


def test_grad_norms_equal_a_manual_sum_of_squares_per_module() -> None:
    model = model_with_grads()
    model.head[2].bias.grad = None  # a parameter without grad is skipped; its module keeps the weight's norm
    model.features[0][0].weight.grad = None  # a module without any grad is absent
    expected: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            module = name.rsplit(".", 1)[0]
            expected[module] = expected.get(module, 0.0) + float((p.grad.double() ** 2).sum())
    norms = grad_norms(model)
    assert list(norms) == list(expected)  # model order
    assert "features.0.0" not in norms and "head.2" in norms
    for module, sq in expected.items():
        assert norms[module] == pytest.approx(math.sqrt(sq), rel=1e-5)


def test_total_grad_norm_equals_clip_grad_norm() -> None:
    model = model_with_grads()
    ours = total_grad_norm(model)
    assert ours == pytest.approx(math.sqrt(sum(v ** 2 for v in grad_norms(model).values())), rel=1e-5)
    assert ours == pytest.approx(float(nn.utils.clip_grad_norm_(model.parameters(), 1e9)), rel=1e-6)
    assert total_grad_norm(tiny_model()) == 0.0


def test_grad_norm_monitor_records_every_n_steps_in_fit_and_plots() -> None:
    model, monitor = tiny_model(), GradNormMonitor(every_n_steps=3)
    fit(model, tiny_data(), FakeSchedule(2), callbacks=[monitor], **QUIET)  # 4 steps per epoch: steps 1..8
    assert monitor.steps == [1, 4, 7]
    layers, values = monitor.as_array()
    assert layers == list(grad_norms(model)) and values.shape == (3, len(layers))
    assert np.isfinite(values).all() and (values > 0).all()
    fig = monitor.plot()
    ax, cbar_ax = fig.axes  # the heatmap and its colorbar
    assert ax.get_xlabel() and ax.get_ylabel() and cbar_ax.get_ylabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == layers
    plt.close(fig)
    for module in model.modules():  # it only read .grad: no hooks left behind
        assert not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                    or module._backward_pre_hooks)
    assert all(not p._backward_hooks for p in model.parameters())


def test_grad_norm_monitor_in_a_plain_loop() -> None:
    monitor, model = GradNormMonitor(every_n_steps=2), model_with_grads()
    with pytest.raises(ValueError, match="no gradient norms"):
        monitor.plot()
    assert [monitor.record(model, step) for step in range(1, 6)] == [True, False, True, False, True]
    assert monitor.steps == [1, 3, 5] and all(len(v) == 3 for v in monitor.norms.values())
    model.head[2].weight.grad = model.head[2].bias.grad = None  # a layer without grad: NaN at that step
    monitor.record(model, 7)
    assert math.isnan(monitor.norms["head.2"][-1]) and not math.isnan(monitor.norms["head.2"][0])


def test_divergence_detector_names_a_planted_nan_or_inf_gradient() -> None:
    model = model_with_grads()
    model.features[1][0][3].weight.grad[0, 0] = math.nan
    model.head[2].weight.grad[0, 0] = math.inf  # later in model order: not the one named
    detector = DivergenceDetector()
    with pytest.warns(RuntimeWarning, match="features.1.0.3"):
        report = detector.check(model, 0.7, step=12, epoch=2)
    assert report is not None and report == detector.report
    assert (report.kind, report.layer, report.step, report.epoch) == ("nan_grad", "features.1.0.3", 12, 2)
    model.features[1][0][3].weight.grad.zero_()
    later = detector.check(model, 0.7, step=13)
    assert later is not None and (later.kind, later.layer) == ("inf_grad", "head.2")
    assert detector.report == report  # the first problem is kept


@pytest.mark.parametrize(("loss", "kind"), [(math.nan, "nan_loss"), (math.inf, "inf_loss")])
def test_divergence_detector_flags_a_non_finite_loss(loss: float, kind: str) -> None:
    model, detector = model_with_grads(), DivergenceDetector()
    with pytest.warns(RuntimeWarning):
        report = detector.check(model, torch.tensor(loss), step=3)
    norms = grad_norms(model)
    assert report is not None and report.kind == kind and report.layer == max(norms, key=norms.get)


def test_divergence_detector_flags_a_spike_only_once_it_knows_five_losses() -> None:
    model = model_with_grads()
    early = DivergenceDetector(spike_factor=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [early.check(model, v, step=i + 1) for i, v in enumerate([1.0] * 4 + [50.0])] == [None] * 5
    detector = DivergenceDetector(spike_factor=10.0, window=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(detector.check(model, 1.0, step=i + 1) is None for i in range(10))
        assert detector.check(model, 9.9, step=11) is None  # below 10 x the median
    with pytest.warns(RuntimeWarning, match="running median"):
        report = detector.check(model, 50.0, step=12, epoch=1)
    norms = grad_norms(model)
    assert report is not None and (report.kind, report.step, report.loss) == ("spike", 12, 50.0)
    assert report.layer == max(norms, key=norms.get)


def test_divergence_detector_is_silent_on_a_clean_run() -> None:
    detector = DivergenceDetector()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = fit(tiny_model(), tiny_data(), FakeSchedule(3), lr=1e-2, callbacks=[detector], **QUIET)
    assert detector.report is None and len(history) == 3


class PlantNaN(Callback):
    """Poison one gradient at ``step``, before the detector sees it (callbacks run in order)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_after_backward(self, state: TrainState) -> None:
        if state.step == self.step:
            state.model.head[2].bias.grad[0] = math.nan


def test_divergence_detector_stops_fit_on_a_planted_nan() -> None:
    detector = DivergenceDetector()
    with pytest.warns(RuntimeWarning):
        history = fit(tiny_model(), tiny_data(), FakeSchedule(3), callbacks=[PlantNaN(3), detector], **QUIET)
    assert detector.report is not None and (detector.report.kind, detector.report.layer) == ("nan_grad", "head.2")
    assert (detector.report.step, detector.report.epoch) == (3, 0)
    assert len(history) == 1  # stopped after the epoch it fired in


def test_divergence_detector_stops_a_run_with_a_huge_lr() -> None:
    model, detector = tiny_model(), DivergenceDetector()
    with pytest.warns(RuntimeWarning):
        history = fit(model, tiny_data(), FakeSchedule(3), lr=1e3, lr_schedule="constant",
                      optimizer=torch.optim.SGD(model.parameters(), lr=1e3), callbacks=[detector], **QUIET)
    assert detector.report is not None and detector.report.kind in DivergenceDetector.KINDS
    assert len(history) < 3


def test_grad_clipper_clips_to_max_norm() -> None:
    model, clipper = model_with_grads(), GradClipper(max_norm=0.01)
    before = total_grad_norm(model)
    assert before > 0.01
    assert clipper.clip(model) == pytest.approx(before, rel=1e-6)
    assert total_grad_norm(model) <= 0.01 + 1e-6 and clipper.clipped == 1


@pytest.mark.parametrize(("max_norm", "rate"), [(1e-6, 1.0), (1e9, 0.0)])
def test_grad_clipper_reports_clip_rate_per_epoch(max_norm: float, rate: float) -> None:
    clipper = GradClipper(max_norm=max_norm)
    history = fit(tiny_model(), tiny_data(), FakeSchedule(2), callbacks=[clipper], **QUIET)
    assert history.column("clip_rate").tolist() == [rate, rate]
    medians = history.column("grad_norm_median")
    assert np.isfinite(medians).all() and (medians > 0).all() and len(clipper.norms) == 8


def test_grad_clipper_sees_unscaled_gradients_under_a_grad_scaler(monkeypatch: pytest.MonkeyPatch) -> None:
    """fit unscales before the callbacks: with a loss scale of 1024 the clipper must see the same norms as
    without one (clipping scaled gradients would compare max_norm with norms 1024x too large)."""
    plain = GradClipper(max_norm=1e9)
    fit(tiny_model(), tiny_data(), FakeSchedule(1), callbacks=[plain], **QUIET)
    real = torch.amp.GradScaler
    scalers = []

    def always_on(device: str, enabled: bool = True) -> torch.amp.GradScaler:
        scalers.append(real(device, init_scale=1024.0, enabled=True))  # a CPU scaler, normally only made for CUDA
        return scalers[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", always_on)
    scaled = GradClipper(max_norm=1e9)
    fit(tiny_model(), tiny_data(), FakeSchedule(1), callbacks=[scaled], **QUIET)
    assert scalers and scalers[0].get_scale() == 1024.0  # it really scaled the loss (no overflow, no growth yet)
    np.testing.assert_allclose(scaled.norms, plain.norms, rtol=1e-4)


def test_grad_clipper_rate_is_a_fraction() -> None:
    clipper = GradClipper(max_norm=1.0)
    fit(tiny_model(), tiny_data(), FakeSchedule(1), callbacks=[clipper], **QUIET)
    clipper.on_epoch_end(state := SimpleNamespace(row={}))
    assert 0.0 <= state.row["clip_rate"] <= 1.0
    assert state.row["clip_rate"] == sum(n > 1.0 for n in clipper.norms) / len(clipper.norms)


TRAIN = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
VAL_RISING = [1.0, 0.8, 0.7, 0.75, 0.8, 0.9, 1.0]  # best at epoch 2; 3 evaluations later: epoch 5
VAL_FALLING = [1.0, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5]


def test_overfit_detector_flags_rising_val_loss_at_the_right_epoch() -> None:
    detector = OverfitDetector(patience=3, stop=True)
    states = [SimpleNamespace(epoch=e, row={"train_loss": t, "val_loss": v}, stop_training=False)
              for e, (t, v) in enumerate(zip(TRAIN, VAL_RISING, strict=True))]
    for state in states:
        detector.on_epoch_end(state)
    assert detector.flagged_epoch == 5
    assert [s.row["overfitting"] for s in states] == [False] * 5 + [True] * 2
    assert [s.stop_training for s in states] == [False] * 5 + [True] * 2
    skipped = SimpleNamespace(epoch=7, row={"train_loss": 0.1, "val_loss": math.nan}, stop_training=False)
    detector.on_epoch_end(skipped)  # an epoch without validation is not an evaluation
    assert "overfitting" not in skipped.row and len(detector.val_losses) == 7


def test_overfit_detector_is_silent_while_val_improves() -> None:
    detector = OverfitDetector(patience=3)
    assert not any(detector.update(e, t, v) for e, (t, v) in enumerate(zip(TRAIN, VAL_FALLING, strict=True)))
    assert detector.flagged_epoch is None
    # improvements smaller than min_delta do not count as improvements
    assert is_overfitting(TRAIN, VAL_FALLING, patience=3, min_delta=0.2)
    assert not is_overfitting([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 2.0, 2.0], patience=3)  # train did not fall


def test_overfit_detector_in_fit_adds_the_column() -> None:
    history = fit(tiny_model(), tiny_data(), FakeSchedule(2), val_set=tiny_data(4, seed=1), val_transform=TRANSFORM,
                  callbacks=[OverfitDetector(patience=1)], **QUIET)
    assert all(isinstance(v, bool) for v in history.column("overfitting").tolist())


def test_plot_lr_draws_lr_and_momentum_per_epoch() -> None:
    rows = [{"epoch": e, "lr": lr} for e, lr in enumerate([1e-3, 3e-3, 1e-4])]
    fig = plot_lr(History(rows))
    (ax,) = fig.axes
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel()
    assert ax.lines[0].get_ydata().tolist() == [1e-3, 3e-3, 1e-4]
    plt.close(fig)
    fig = plot_lr(History([dict(r, momentum=0.9) for r in rows]))
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "momentum"
    plt.close(fig)
    with pytest.raises(ValueError, match="^history "):
        plot_lr(History())


@pytest.mark.parametrize(("make", "name"), [
    (lambda: GradClipper(max_norm=0.0), "max_norm"),
    (lambda: GradClipper(max_norm=-1.0), "max_norm"),
    (lambda: GradNormMonitor(every_n_steps=0), "every_n_steps"),
    (lambda: DivergenceDetector(spike_factor=1.0), "spike_factor"),
    (lambda: DivergenceDetector(spike_factor=0.5), "spike_factor"),
    (lambda: DivergenceDetector(window=4), "window"),
    (lambda: OverfitDetector(patience=0), "patience"),
    (lambda: OverfitDetector(min_delta=-0.1), "min_delta"),
    (lambda: is_overfitting([1.0], [1.0, 2.0]), "train_losses"),
])
def test_bad_arguments_raise_naming_the_argument(make, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} "):
        make()


def test_bad_types_raise_type_errors() -> None:
    with pytest.raises(TypeError, match="^model "):
        grad_norms("not a model")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^loss "):
        DivergenceDetector().check(model_with_grads(), "1.0", step=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^every_n_steps "):
        GradNormMonitor(every_n_steps=2.5)  # type: ignore[arg-type]


def test_live_plot_draws_once_headless_with_both_curves() -> None:
    live = LivePlot(title="run", live=False)
    fit(tiny_model(), tiny_data(), FakeSchedule(3), callbacks=[live], **QUIET)
    loss_ax, acc_ax = live.figure.axes
    assert [len(line.get_xdata()) for line in loss_ax.lines] == [3]  # no validation set: train only
    assert acc_ax.get_ylabel() == "accuracy (0-1)" and live.figure._suptitle.get_text() == "run"


def test_live_plot_updates_the_display_every_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    updates = []
    handle = SimpleNamespace(update=lambda fig: updates.append(len(fig.axes[0].lines[0].get_xdata())))
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: handle)
    live = LivePlot(live=True)
    fit(tiny_model(), tiny_data(), FakeSchedule(3), callbacks=[live], **QUIET)
    assert updates == [1, 2, 3, 3]  # after each epoch, then the final drawing


def test_divergence_detector_can_stay_quiet() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector = DivergenceDetector(warn=False)
        report = detector.check(model_with_grads(), math.nan, step=3)
    assert report is not None and detector.report is report and report.kind == "nan_loss"
