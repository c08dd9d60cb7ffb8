"""Properties of hrlib.staging's transforms for any image size, resolution, box and seed."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD
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


def _brighter(x: torch.Tensor, level: float) -> torch.Tensor:
    """Pixels whose every channel is above ``level``/255 after undoing Normalize, except occlusion holes (filled
    with the mean colour, which normalises to about 0 in every channel)."""
    return (((x * STD + MEAN) * 255).amin(dim=0) > level) & (x.abs().amax(dim=0) > 0.02)


def _extent(mask: torch.Tensor) -> np.ndarray:
    ys, xs = np.nonzero(mask.numpy())
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


@FAST
@given(data=st.data(), policy=st.sampled_from(POLICIES), seed=st.integers(0, 2**31 - 1))
def test_boxes_follow_the_pixels(data, policy, seed):
    # warmup: 16 % margin, so a 15-degree rotation's reflected corners never mirror the rectangle into view;
    # elsewhere the rectangle may touch the border, so scale_jitter's crop cuts or removes it
    image, boxes, r = data.draw(scenes(0.16 if policy == "warmup" else 0.0))
    out = stage_transform(policy, r, source_size=image.shape[0], with_boxes=True, seed=seed)(
        image=image, bboxes=boxes, box_labels=[7])
    # The rectangle (10 -> 250) is resized with area averaging, so an edge pixel's value tells how much of it the
    # rectangle covers. Under occlusion holes a box keeps the pixels it covers by more than half (value 130), and a
    # hole can leave a partly covered edge row or column as the only visible part of a long stretch of the box.
    # One threshold T != 130 then disagrees with the box along that whole stretch whenever the row's coverage lies
    # between 50 % and T's (the former single threshold 160 failed on a column 58 % covered: 8 px), and T = 130
    # itself is a coin toss for rows covered exactly half (common at 2x and 4x). Hence two thresholds around 130:
    # pixels above 160 (covered > 62 %) are surely the object's and must lie in the box; the box must not reach
    # beyond the pixels above 100 (covered > 37 %).
    inside, maybe = _brighter(out["image"], 160), _brighter(out["image"], 100)
    if len(out["bboxes"]) == 0:  # removed only when nothing of it is left (cropped away or under holes)
        assert not inside.any()
        return
    assert list(out["box_labels"]) == [7]
    box = np.asarray(out["bboxes"][0], dtype=float)
    tol = 1.5 + 0.02 * r
    if not maybe.any():  # a sliver thinner than a pixel
        assert min(box[2] - box[0], box[3] - box[1]) <= tol
        return
    outer = _extent(maybe)
    assert (box[:2] >= outer[:2] - tol).all() and (box[2:] <= outer[2:] + tol).all(), (policy, r, outer, box)
    if inside.any():
        inner = _extent(inside)
        assert (box[:2] <= inner[:2] + tol).all() and (box[2:] >= inner[2:] - tol).all(), (policy, r, inner, box)


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
