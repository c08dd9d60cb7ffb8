"""hrlib.staging additions for lesson 01: the lossless "dihedral" policy, three_stage's final policy, target sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrlib.augment.local import GridMask
from hrlib.staging import Schedule, stage_transform


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _d4(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations by multiples of 90 degrees and flips of a CHW tensor."""
    return [torch.rot90(t, k, (1, 2)) for t in (x, x.flip(-1)) for k in range(4)]


def test_dihedral_is_lossless_and_random(image):
    plain = stage_transform("none", 64, source_size=64)(image=image)["image"]
    t = stage_transform("dihedral", 64, source_size=64, seed=0)
    seen = set()
    for _ in range(40):
        x = t(image=image)["image"]
        matches = [i for i, y in enumerate(_d4(plain)) if torch.equal(x, y)]
        assert len(matches) == 1, "every output is exactly one rotation/flip of the input: no resampling"
        seen.add(matches[0])
    assert len(seen) >= 6, f"the 8 orientations are drawn at random, saw only {sorted(seen)}"


def test_dihedral_keeps_every_pixel_value_after_a_resize(image):
    small = stage_transform("none", 32, source_size=64)(image=image)["image"]
    x = stage_transform("dihedral", 32, source_size=64, seed=3)(image=image)["image"]
    assert x.shape == (3, 32, 32)
    assert torch.equal(torch.sort(x.flatten())[0], torch.sort(small.flatten())[0])


def test_dihedral_same_seed_same_draws(image):
    t1, t2 = (stage_transform("dihedral", 64, source_size=64, seed=5) for _ in range(2))
    assert all(torch.equal(t1(image=image)["image"], t2(image=image)["image"]) for _ in range(6))


def test_three_stage_final_policy_and_default():
    default = Schedule.three_stage(256, 10)
    assert [s.policy for s in default.stages] == ["warmup", "scale_jitter", "finetune"]
    local = Schedule.three_stage(256, 10, fractions=(0.5, 0.75, 1.0), final_policy="finetune_local")
    assert [s.policy for s in local.stages] == ["warmup", "scale_jitter", "finetune_local"]
    assert [s.resolution for s in local.stages] == [128, 192, 256]
    assert local.relative_cost() == pytest.approx((4 * 0.25 + 4 * 0.5625 + 2) / 10)
    assert any(isinstance(t, GridMask) for t in local.train_transform(9).transforms)


def test_three_stage_rejects_unknown_final_policy():
    with pytest.raises(ValueError, match="final_policy"):
        Schedule.three_stage(256, 10, final_policy="gridmask")


def test_target_px_per_stage():
    s = Schedule.three_stage(256, 10)
    assert s.target_px() == pytest.approx([2.56, 5.12, 10.24])
    assert Schedule.fixed(1024, 3).target_px(0.04) == pytest.approx([40.96])
    with pytest.raises(ValueError, match="target_frac"):
        s.target_px(0.0)
