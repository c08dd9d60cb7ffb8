"""hrlib.diagnostics.memory: checkpointing is exact, what each mode saves, linearity, largest batch, errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrlib.diagnostics.memory import MODES, Checkpointed, StepProfile, compare_modes, largest_batch, profile_step
from hrlib.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


def _tiny() -> nn.Module:
    return build_model("dsconvnet", widths=(8, 16))


def _peak(mode: str, batch_size: int = 2, image_size: int = 32) -> int:
    return profile_step(_tiny(), batch_size=batch_size, image_size=image_size, mode=mode, repeats=1,
                        device="cpu").peak_bytes


def _saved(mode: str, batch_size: int = 2, image_size: int = 32) -> int:
    return profile_step(_tiny(), batch_size=batch_size, image_size=image_size, mode=mode, repeats=1,
                        device="cpu").saved_bytes


def test_checkpointed_matches_plain_loss_gradients_and_bn_stats() -> None:
    torch.manual_seed(0)
    plain = _tiny().train()
    wrapped = Checkpointed(copy.deepcopy(plain))
    x, y = torch.randn(4, 3, 48, 48), torch.tensor([0, 1, 2, 1])
    losses = []
    for net in (plain, wrapped):
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-7)
    ref, got = dict(plain.named_parameters()), dict(wrapped.model.named_parameters())
    assert max((ref[k].grad - got[k].grad).abs().max().item() for k in ref) < 1e-6
    # running statistics move once per step (the recompute in the backward must not update them again)
    ref_b, got_b = dict(plain.named_buffers()), dict(wrapped.model.named_buffers())
    assert all(torch.allclose(ref_b[k].float(), got_b[k].float(), atol=1e-7) for k in ref_b)
    assert all(m.track_running_stats for m in wrapped.modules() if isinstance(m, nn.BatchNorm2d))


def test_checkpointed_needs_features_and_head() -> None:
    with pytest.raises(TypeError, match="^model must"):
        Checkpointed(nn.Linear(2, 2))


def test_saved_bytes_per_mode() -> None:
    saved = {mode: _saved(mode) for mode in MODES}
    assert saved["checkpoint"] < saved["fp32"]
    assert saved["amp"] < 0.6 * saved["fp32"]  # bfloat16 autocast on the CPU about halves what is saved
    assert saved["amp+checkpoint"] <= min(saved["amp"], saved["checkpoint"])


@pytest.mark.parametrize("mode", ["fp32", "amp+checkpoint"])
def test_saved_bytes_double_with_the_batch(mode: str) -> None:
    ratio = _saved(mode, batch_size=4) / _saved(mode, batch_size=2)
    assert ratio == pytest.approx(2.0, rel=0.1)


def test_profile_fields_and_cpu_peak_is_saved_bytes() -> None:
    p = profile_step(_tiny(), batch_size=2, image_size=32, mode="amp", repeats=2, device="cpu")
    assert isinstance(p, StepProfile)
    assert (p.mode, p.batch_size, p.image_size, p.device) == ("amp", 2, 32, "cpu")
    assert p.peak_bytes == p.saved_bytes > 0
    assert p.seconds > 0 and math.isfinite(p.seconds)


def test_compare_modes_in_order() -> None:
    profiles = compare_modes(_tiny(), batch_size=2, image_size=32, modes=["checkpoint", "fp32"], repeats=1,
                             device="cpu")
    assert [p.mode for p in profiles] == ["checkpoint", "fp32"]
    assert profiles[0].saved_bytes < profiles[1].saved_bytes


@pytest.mark.parametrize("mode", ["fp32", "checkpoint"])
def test_largest_batch_fits_and_next_does_not(mode: str) -> None:
    model = _tiny()
    budget = (_peak(mode, batch_size=3) + _peak(mode, batch_size=4)) // 2  # largest_batch fits the peak
    b = largest_batch(model, image_size=32, budget_bytes=budget, mode=mode, device="cpu")
    assert b == 3
    assert _peak(mode, batch_size=b) <= budget < _peak(mode, batch_size=b + 1)


def test_largest_batch_limits() -> None:
    model = _tiny()
    assert largest_batch(model, image_size=32, budget_bytes=1, device="cpu") == 0
    assert largest_batch(model, image_size=32, budget_bytes=2**30, max_batch=5, device="cpu") == 5


def test_profile_leaves_the_model_alone() -> None:
    model = _tiny().eval()
    before = copy.deepcopy(model.state_dict())
    profile_step(model, batch_size=2, image_size=32, mode="amp+checkpoint", repeats=1, device="cpu")
    assert not model.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"mode": "fp16"}, ValueError, "mode"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"image_size": 32.0}, TypeError, "image_size"),
    ({"repeats": 0}, ValueError, "repeats"),
    ({"num_classes": 0}, ValueError, "num_classes"),
    ({"model": "dsconvnet"}, TypeError, "model"),
    ({"model": nn.Sequential(nn.Conv2d(3, 2, 1)), "mode": "checkpoint"}, TypeError, "model"),
])
def test_profile_step_bad_arguments(kwargs: dict, error: type[Exception], name: str) -> None:
    args = {"model": _tiny(), "batch_size": 2, "image_size": 32, "device": "cpu", **kwargs}
    with pytest.raises(error, match=f"^{name} "):
        profile_step(args.pop("model"), **args)


def test_other_bad_arguments() -> None:
    model = _tiny()
    with pytest.raises(ValueError, match=r"^modes\[1\] "):
        compare_modes(model, batch_size=2, image_size=32, modes=["fp32", "bf16"])
    with pytest.raises(TypeError, match="^modes "):
        compare_modes(model, batch_size=2, image_size=32, modes="fp32")
    with pytest.raises(ValueError, match="^budget_bytes "):
        largest_batch(model, image_size=32, budget_bytes=0)
    with pytest.raises(ValueError, match="^max_batch "):
        largest_batch(model, image_size=32, budget_bytes=10, max_batch=0)
    with pytest.raises(ValueError, match="^num_classes "):
        profile_step(nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten()), batch_size=2, image_size=8, device="cpu")


def test_checkpoint_peak_counts_the_recomputed_stage():
    """On CPU the peak of a checkpointed step is the stage inputs plus the largest stage rebuilt in the backward."""
    model = build_model("dsconvnet", widths=(8, 16))
    fp32 = profile_step(model, batch_size=2, image_size=48, mode="fp32", repeats=1)
    ckpt = profile_step(model, batch_size=2, image_size=48, mode="checkpoint", repeats=1)
    assert ckpt.saved_bytes < ckpt.peak_bytes <= fp32.peak_bytes
    assert fp32.peak_bytes == fp32.saved_bytes
