"""hrlib.staging: schedules (stage boundaries, cost, validation), stage/val transforms, FixRes helpers."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from torch import nn

from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD, make_slide
from hrlib.staging import (
    POLICIES,
    FixedSchedule,
    Schedule,
    Stage,
    evaluate_at_resolutions,
    recalibrate_bn,
    stage_transform,
    val_transform,
)


@pytest.fixture(scope="module")
def slide_image() -> np.ndarray:
    return make_slide(512, label=2, seed=3).image


def _normalize(image: np.ndarray) -> torch.Tensor:
    x = (image.astype(np.float32) / 255 - np.float32(SLIDE_MEAN)) / np.float32(SLIDE_STD)
    return torch.from_numpy(x.transpose(2, 0, 1))


# --- schedules -------------------------------------------------------------------------------------------------

def test_three_stage_boundaries():
    s = Schedule.three_stage(512, 10)
    assert [s.resolution_at(e) for e in range(10)] == [128] * 4 + [256] * 4 + [512] * 2
    assert [s.stage_at(e).policy for e in (0, 3, 4, 7, 8, 9)] == ["warmup"] * 2 + ["scale_jitter"] * 2 + [
        "finetune"] * 2
    assert s.rows()[4] == (4, "scale_jitter", 256, "scale_jitter") and len(s.rows()) == 10
    assert s.relative_cost() == pytest.approx((4 / 16 + 4 / 4 + 2) / 10) and s.relative_cost() < 1


@pytest.mark.parametrize("n", [3, 4, 5, 7, 11, 50])
def test_three_stage_epochs_sum_and_each_stage_runs(n):
    s = Schedule.three_stage(512, n)
    assert s.num_epochs == n and all(st.num_epochs >= 1 for st in s.stages) and len(s.stages) == 3


def test_three_stage_needs_three_epochs():
    with pytest.raises(ValueError, match="num_epochs"):
        Schedule.three_stage(512, 2)


def test_linear_ramp_endpoints_monotone_multiples():
    s = Schedule.linear_ramp(512, 8)
    res = [s.resolution_at(e) for e in range(8)]
    assert res[0] == 128 and res[-1] == 512 and res == sorted(res) and all(r % 16 == 0 for r in res)
    flat = Schedule.linear_ramp(512, 12, start=0.5, end=0.55)  # equal consecutive resolutions merge
    assert len(flat.stages) < 12 and flat.num_epochs == 12
    assert Schedule.linear_ramp(504, 5).resolution_at(4) == 504  # clipped to the source, not rounded above it
    assert Schedule.linear_ramp(512, 1).resolution_at(0) == 512


def test_fixed_schedule_cost():
    assert Schedule.fixed(512, 5).relative_cost() == 1.0
    assert Schedule.fixed(512, 4, resolution=256).relative_cost() == 0.25
    assert Schedule.fixed(512, 3).stage_at(2).resolution == 512


def test_fixed_schedule_is_one_given_transform_for_every_epoch():
    from hrlib.train.engine import Schedule as ScheduleProtocol

    transform = val_transform(32, source_size=64)
    s = FixedSchedule(transform, 32, 3, name="preset")
    assert isinstance(s, ScheduleProtocol) and isinstance(Schedule.fixed(64, 2), ScheduleProtocol)
    assert s.num_epochs == 3 and all(s.train_transform(e) is transform for e in range(3))
    assert s.stage_at(2) == Stage("preset", 32, 3, None) and s.stages == (s.stage_at(0),) and s.resolution_at(1) == 32
    for bad in (-1, 3):
        with pytest.raises(IndexError, match=r"^epoch must be in \[0, 3\)"):
            s.stage_at(bad)
    piped = FixedSchedule.from_steps([A.HorizontalFlip(p=1.0)], 16, 1)
    x = piped.train_transform(0)(image=np.zeros((16, 16, 3), np.uint8))["image"]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and piped.stage_at(0).name == "pipeline"
    with pytest.raises(ValueError, match=r"policy must be one of"):
        Schedule([Stage("given", 32, 1, None)], 64)  # a Schedule builds its transforms from policies


@pytest.mark.parametrize("make, match, exc", [
    (lambda: Stage("a", 128, 0, "warmup"), "epochs.*0", ValueError),
    (lambda: Stage("a", -64, 1, "warmup"), "resolution.*-64", ValueError),
    (lambda: Stage("a", 128.5, 1, "warmup"), "resolution.*128.5", TypeError),
    (lambda: Stage("a", 128, 1, "rotate90"), "policy.*rotate90", ValueError),
    (lambda: Schedule([], 512), "empty", ValueError),
    (lambda: Schedule([Stage("a", 128, 1, "warmup"), Stage("big", 1024, 1, "finetune")], 512),
     r"stages\[1\].*'big'.*1024.*allow_upsample", ValueError),
    (lambda: Schedule([("a", 128, 1, "warmup")], 512), r"stages\[0\] must be a Stage", TypeError),
    (lambda: Schedule.fixed(512, 3, resolution=0), "resolution", ValueError),
    (lambda: stage_transform("bogus", 64, source_size=512), "policy.*bogus", ValueError),
    (lambda: stage_transform("warmup", 640, source_size=512), "640.*allow_upsample", ValueError),
    (lambda: val_transform(64, source_size=512, crop_fraction=1.5), "crop_fraction", ValueError),
    (lambda: stage_transform("none", 64, source_size=512, std=(0.1, 0.0, 0.1)), "std", ValueError),
])
def test_invalid_inputs_raise_clear_messages(make, match, exc):
    with pytest.raises(exc, match=match):
        make()


def test_allow_upsample_and_epoch_out_of_range():
    s = Schedule([Stage("up", 96, 2, "none")], 64, allow_upsample=True)
    assert s.train_transform(1)(image=np.zeros((64, 64, 3), np.uint8))["image"].shape == (3, 96, 96)
    for bad in (-1, 2):
        with pytest.raises(IndexError, match=r"\[0, 2\).*" + str(bad)):
            s.stage_at(bad)
    with pytest.raises(TypeError, match="epoch"):
        s.stage_at(1.0)


# --- transforms ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("r", [64, 128, 512])
def test_every_policy_gives_exact_float_chw(slide_image, policy, r):
    x = stage_transform(policy, r, source_size=512, seed=0)(image=slide_image)["image"]
    assert x.shape == (3, r, r) and x.dtype == torch.float32 and torch.isfinite(x).all()


def test_policy_recipes():
    warm = stage_transform("warmup", 128, source_size=512).transforms
    jitter = next(t for t in warm if isinstance(t, A.ColorJitter))
    assert jitter.saturation == (1.0, 1.0) and jitter.hue == (0.0, 0.0) and jitter.brightness == (0.9, 1.1)
    assert next(t for t in warm if isinstance(t, A.Rotate)).limit == (-15.0, 15.0)
    sj = stage_transform("scale_jitter", 768, source_size=1024).transforms  # the recipe at its own scale
    sizes = [(type(t).__name__, t.height) for t in sj if isinstance(t, A.Resize | A.RandomCrop)]
    assert sizes == [("Resize", 800), ("RandomCrop", 640), ("Resize", 768)]


@pytest.mark.parametrize("r", [256, 512])
def test_finetune_has_no_global_geometry(r):
    image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    plain = stage_transform("none", r, source_size=512)(image=image)["image"]
    assert torch.equal(stage_transform("finetune", r, source_size=512, occlusion=False)(image=image)["image"], plain)
    fill = _normalize(np.full((1, 1, 3), [round(255 * m) for m in SLIDE_MEAN], np.uint8))[:, 0, 0]
    t, occluded = stage_transform("finetune", r, source_size=512, seed=1), 0
    for _ in range(12):
        x = t(image=image)["image"]
        changed = (x != plain).any(dim=0)
        occluded += bool(changed.any())
        assert changed.float().mean() <= 6 * 0.06**2 + 0.005  # only holes: at most 6 of at most 6 % of the side
        assert torch.allclose(x[:, changed], fill[:, None].expand(3, int(changed.sum())), atol=1e-5)
    assert 0 < occluded < 12  # holes with probability 0.5


def test_val_transform_deterministic_and_area_resized(slide_image):
    a = val_transform(128, source_size=512)(image=slide_image)["image"]
    t = val_transform(128, source_size=512)
    assert torch.equal(a, t(image=slide_image)["image"]) and torch.equal(a, t(image=slide_image)["image"])
    expected = _normalize(cv2.resize(slide_image, (128, 128), interpolation=cv2.INTER_AREA))
    assert torch.allclose(a, expected, atol=1e-4)
    half = val_transform(128, source_size=512, crop_fraction=0.5)(image=slide_image)["image"]
    centre = cv2.resize(slide_image, (256, 256), interpolation=cv2.INTER_AREA)[64:192, 64:192]
    assert torch.allclose(half, _normalize(centre), atol=1e-4)
    crop = val_transform(128, source_size=512, crop_fraction=0.875)(image=slide_image[:, :400])["image"]
    assert crop.shape == (3, 128, 128) and crop.dtype == torch.float32


def test_shrinking_resizes_average_areas(slide_image):
    x = stage_transform("none", 128, source_size=512)(image=slide_image)["image"]
    assert torch.allclose(x, _normalize(cv2.resize(slide_image, (128, 128), interpolation=cv2.INTER_AREA)), atol=1e-4)


# --- FixRes helpers --------------------------------------------------------------------------------------------

def _net(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Dropout(0.5), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


@pytest.mark.parametrize("train_mode", [False, True])
def test_recalibrate_bn_changes_running_stats_only(train_mode):
    model = _net().train(train_mode)
    params = {k: v.clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 3, 16, 16, generator=g) * 2 + 3 for _ in range(4)]
    recalibrate_bn(model, iter(batches), num_batches=3)
    bn = model[2]  # after a dropout, which must stay off while calibrating
    with torch.no_grad():
        expected = torch.stack([model[0](b).mean(dim=(0, 2, 3)) for b in batches[:3]]).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-5) and int(bn.num_batches_tracked) == 3
    assert all(torch.equal(v, params[k]) for k, v in model.named_parameters())
    assert all(m.training == train_mode for m in model.modules()) and bn.momentum == 0.1


def test_recalibrate_bn_with_no_batch_keeps_stats():
    model = _net()
    model[2].running_var.fill_(2.0)  # not the reset value
    before = model[2].running_var.clone()
    with pytest.raises(ValueError, match="no batch"):
        recalibrate_bn(model, [])
    assert torch.equal(model[2].running_var, before) and model[2].momentum == 0.1


class _Constant(nn.Module):
    def __init__(self, winner: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.nn.functional.one_hot(torch.tensor(winner), 3).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), 3)


def test_evaluate_at_resolutions():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(5)]
    labels = [1, 1, 1, 0, 2]
    acc = evaluate_at_resolutions(_Constant(1), images, labels, [32, 64], source_size=64, batch_size=2)
    assert acc == {32: 0.6, 64: 0.6}
    model = _net().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for recalibrate in (False, True):
        acc = evaluate_at_resolutions(model, images, labels, [16, 32, 64], source_size=64, batch_size=2,
                                      recalibrate=recalibrate, calib_images=images[:3] if recalibrate else None)
        assert list(acc) == [16, 32, 64] and all(0.0 <= a <= 1.0 for a in acc.values())
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()) and model.training
    with pytest.raises(ValueError, match="labels"):
        evaluate_at_resolutions(model, images, labels[:2], [32], source_size=64)


def test_recalibration_fixes_stale_statistics():
    # class 0 if channel 0 is brighter than BN's running mean says is average, else class 1
    model = nn.Sequential(nn.BatchNorm2d(3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        model[3].weight.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]))
        model[3].bias.zero_()
        model[0].running_mean.fill_(10.0)  # stale: from some other resolution or domain
    images = [np.full((32, 32, 3), v, np.uint8) for v in (220, 40, 230, 30)]
    labels = [0, 1, 0, 1]
    assert evaluate_at_resolutions(model, images, labels, [16], source_size=32) == {16: 0.5}
    assert evaluate_at_resolutions(model, images, labels, [16], source_size=32, recalibrate=True) == {16: 1.0}
    assert float(model[0].running_mean[0]) == 10.0
