"""Properties of hrlib.staging's transforms for any image size, resolution, box and seed."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlib.data import SLIDE_MEAN, SLIDE_STD
from hrlib.staging import POLICIES, stage_transform

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEAN = torch.tensor(SLIDE_MEAN).view(3, 1, 1)
STD = torch.tensor(SLIDE_STD).view(3, 1, 1)


@st.composite
def scenes(draw: st.DrawFn, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """A bright rectangle on a dark background at least ``margin`` (fraction of the side) from the borders, its
    pixel box, and a target resolution."""
    size = draw(st.integers(96, 192))
    lo, hi = int(margin * size), size - int(margin * size)
    x0, y0 = draw(st.integers(lo, hi - 12)), draw(st.integers(lo, hi - 12))
    x1, y1 = draw(st.integers(x0 + 10, hi)), draw(st.integers(y0 + 10, hi))
    image = np.full((size, size, 3), 10, np.uint8)
    image[y0:y1, x0:x1] = 250
    r = max(32, round(size * draw(st.sampled_from([0.25, 0.5, 0.75, 1.0]))))
    return image, np.array([[x0, y0, x1, y1]], np.float32), r


def _bright(x: torch.Tensor) -> torch.Tensor:
    """Pixels whose every channel is above 160/255 after undoing Normalize, except occlusion holes (filled with
    the mean colour, which normalises to about 0 in every channel)."""
    return (((x * STD + MEAN) * 255).amin(dim=0) > 160) & (x.abs().amax(dim=0) > 0.02)


@FAST
@given(data=st.data(), policy=st.sampled_from(POLICIES), seed=st.integers(0, 2**31 - 1))
def test_boxes_follow_the_pixels(data, policy, seed):
    # warmup: 16 % margin, so a 15-degree rotation's reflected corners never mirror the rectangle into view;
    # elsewhere the rectangle may touch the border, so scale_jitter's crop cuts or removes it
    image, boxes, r = data.draw(scenes(0.16 if policy == "warmup" else 0.0))
    out = stage_transform(policy, r, source_size=image.shape[0], with_boxes=True, seed=seed)(
        image=image, bboxes=boxes, box_labels=[7])
    bright = _bright(out["image"])
    if len(out["bboxes"]) == 0:  # removed only when nothing of it is left (cropped away or under a hole)
        assert not bright.any()
        return
    assert list(out["box_labels"]) == [7]
    box = np.asarray(out["bboxes"][0], dtype=float)
    tol = 1.5 + 0.02 * r
    if not bright.any():  # a sliver thinner than a pixel
        assert min(box[2] - box[0], box[3] - box[1]) <= tol
        return
    ys, xs = np.nonzero(bright.numpy())
    seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)
    assert np.abs(seen - box).max() <= tol, (policy, r, seen, box)


@FAST
@given(scene=scenes(), policy=st.sampled_from(POLICIES), seed=st.integers(0, 2**31 - 1))
def test_same_seed_same_output(scene, policy, seed):
    image, boxes, r = scene
    runs = []
    for _ in range(2):
        t = stage_transform(policy, r, source_size=image.shape[0], with_boxes=True, seed=seed)
        runs.append([t(image=image, bboxes=boxes, box_labels=[0]) for _ in range(3)])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a["image"], b["image"]) and np.array_equal(a["bboxes"], b["bboxes"])


def test_different_seeds_usually_differ():
    image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    for policy in ("warmup", "scale_jitter", "finetune"):
        outs = [stage_transform(policy, 128, source_size=128, seed=s)(image=image)["image"] for s in range(8)]
        assert sum(not torch.equal(outs[0], o) for o in outs[1:]) >= 3, policy


@FAST
@given(size=st.integers(8, 160), seed=st.integers(0, 2**32 - 1))
def test_none_at_source_size_is_the_normalized_input(size, seed):
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    x = stage_transform("none", size, source_size=size)(image=image)["image"]
    expected = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - MEAN) / STD
    assert x.shape == (3, size, size) and torch.allclose(x, expected, rtol=0, atol=1e-5)
