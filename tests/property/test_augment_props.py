"""Properties of hrlib.augment.local, .aligned and .mixup: holes never overlap and stay inside; boxes, masks and
keypoints stay aligned under every geometric transform of the course's policies; the same seed gives the same
output; zero strength is the identity; MixUp/CutMix give soft labels that sum to 1 and mix exactly what they say."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hrlib.augment.aligned import aligned, alignment_error
from hrlib.augment.local import NonOverlappingCutout, nonoverlapping_holes, occlusion_policy
from hrlib.augment.mixup import mixing
from hrlib.staging import stage_transform

FAST = settings(max_examples=40, deadline=None)
PER_TRANSFORM = settings(max_examples=10, deadline=None)  # x 8 transforms


@FAST
@given(data=st.data(), height=st.integers(1, 120), width=st.integers(1, 120), seed=st.integers(0, 2**32 - 1))
def test_holes_never_overlap_and_stay_inside(data, height, width, seed):
    h, w = data.draw(st.integers(1, height)), data.draw(st.integers(1, width))
    cap = (height // h) * (width // w)
    n = data.draw(st.integers(0, min(cap + 2, 40)))
    if n > cap:
        with pytest.raises(ValueError, match="^num_holes="):
            nonoverlapping_holes(height, width, n, (h, w), rng=np.random.default_rng(seed))
        return
    holes = nonoverlapping_holes(height, width, n, (h, w), rng=np.random.default_rng(seed))
    assert holes.shape == (n, 4)
    assert (holes[:, 2] - holes[:, 0] == w).all() and (holes[:, 3] - holes[:, 1] == h).all()
    assert (holes[:, :2] >= 0).all() and (holes[:, 2] <= width).all() and (holes[:, 3] <= height).all()
    cover = np.zeros((height, width), int)
    for x0, y0, x1, y1 in holes:
        cover[y0:y1, x0:x1] += 1
    assert cover.max(initial=0) <= 1  # no pixel in two holes (touching edges is allowed)
    assert np.array_equal(holes, nonoverlapping_holes(height, width, n, (h, w), rng=np.random.default_rng(seed)))


@FAST
@given(size=st.integers(24, 96), hole=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_cutout_area_is_the_sum_of_its_holes_and_repeats(size, hole, seed):
    image = np.zeros((size, size, 3), np.uint8)
    outs = []
    for _ in range(2):
        t = A.Compose([NonOverlappingCutout(num_holes_range=(1, 8), hole_height_range=(hole, hole),
                                            hole_width_range=(hole, hole), fill=200, p=1.0)], seed=seed)
        outs.append(t(image=image)["image"])
    assert np.array_equal(outs[0], outs[1])
    filled = int((outs[0] == 200).all(axis=2).sum())
    assert filled % (hole * hole) == 0 and 1 <= filled // (hole * hole) <= 8


def _scene(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray]:
    """Rectangles in the central half of a square image: no rotation, scaling or shear here moves them out."""
    size = draw(st.integers(64, 160))
    lo, hi, n = size // 4, size - size // 4, draw(st.integers(1, 3))
    boxes, masks = [], np.zeros((n, size, size), bool)
    for i in range(n):
        x0, y0 = draw(st.integers(lo, hi - 4)), draw(st.integers(lo, hi - 4))
        x1, y1 = draw(st.integers(x0 + 4, hi)), draw(st.integers(y0 + 4, hi))
        boxes.append((x0, y0, x1, y1))
        masks[i, y0:y1, x0:x1] = True
    return size, np.asarray(boxes, float), masks


scenes = st.composite(_scene)


def _policy_geometry(policy: str, size: int) -> list[A.BasicTransform]:
    """The geometric steps of a course policy at full resolution (Normalize, ToTensor and colour removed)."""
    steps = stage_transform(policy, size, source_size=size).transforms
    return [t for t in steps if not isinstance(t, A.Normalize | A.ToTensorV2 | A.ColorJitter)]


# name -> (transforms for a side of `size` px, box tolerance px, keypoint tolerance px). Flips are exact. A warp
# resamples the mask with nearest neighbour: each mask edge lands within half an output pixel of the exact edge,
# and a box (pixel edges) against the extent of mask pixels (pixel centres) differs by up to another half: 1 px.
# Keypoints: the 3x3 marker's centroid moves up to half a pixel per axis (0.71 px); a resize adds OpenCV's
# INTER_NEAREST offset (it is not centre-aligned: up to half an output pixel more), and albumentations scales
# keypoints about pixel corners (x * s, not (x + 0.5) * s - 0.5: 0.5 |s - 1| more); 1.5 px covers one resample
# at scales within [0.7, 1.3]; an elastic field also varies across the marker (2 px). Scale jitter resamples
# twice and its last resize enlarges the first one's error 1.2x: boxes 1.2 + 1 = 2.2 px, keypoints 2.2 px per
# axis, 3.1 px in all.
GEOMETRY = {
    "hflip": (lambda s: [A.HorizontalFlip(p=1.0)], 0.0, 0.0),
    "vflip": (lambda s: [A.VerticalFlip(p=1.0)], 0.0, 0.0),
    "warmup policy": (lambda s: [*_policy_geometry("warmup", s)[1:]], 1.0, 1.5),
    "rotate 90, largest_box": (lambda s: [A.Rotate(limit=90, p=1.0)], 1.0, 1.5),
    "affine": (lambda s: [A.Affine(scale=(0.8, 1.2), rotate=(-30, 30), shear=(-10, 10), p=1.0)], 1.0, 1.5),
    "elastic": (lambda s: [A.ElasticTransform(alpha=60, sigma=8, p=1.0)], 1.0, 2.0),
    "random scale": (lambda s: [A.RandomScale(scale_limit=0.3, p=1.0)], 1.0, 1.5),
    "scale_jitter policy": (lambda s: _policy_geometry("scale_jitter", s), 2.2, 3.1),
}


@pytest.mark.parametrize("name", sorted(GEOMETRY))
@PER_TRANSFORM
@given(scene=scenes(), seed=st.integers(0, 2**31 - 1))
def test_boxes_masks_keypoints_stay_aligned(name, scene, seed):
    size, boxes, masks = scene
    make, box_tol, kp_tol = GEOMETRY[name]
    out = alignment_error(size, boxes, masks, make(size), repeats=2, seed=seed)
    if name != "scale_jitter policy":  # its crop may cut an object to a sliver thinner than a pixel
        assert out.lost == 0 and out.mismatched == 0 and len(out.box_px) == 2 * len(boxes)
    assert out.box_px.max(initial=0) <= box_tol + 1e-4, (name, out.box_px)
    assert out.keypoint_px.max(initial=0) <= kp_tol + 1e-4, (name, out.keypoint_px)


@FAST
@given(scene=scenes(), seed=st.integers(0, 2**31 - 1), strength=st.floats(0.0, 1.0))
def test_occlusion_never_moves_masks_and_repeats_under_a_seed(scene, seed, strength):
    size, boxes, masks = scene
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    outs = []
    for _ in range(2):
        t = aligned(occlusion_policy(size, strength=strength, p=1.0), seed=seed)
        outs.append(t(image=image, masks=list(masks.astype(np.uint8)), bboxes=boxes,
                      box_labels=list(range(len(boxes)))))
    assert np.array_equal(outs[0]["image"], outs[1]["image"])
    assert all(np.array_equal(m, n) for m, n in zip(outs[0]["masks"], masks.astype(np.uint8), strict=True))
    if strength == 0:  # zero strength is the identity
        assert np.array_equal(outs[0]["image"], image) and np.allclose(outs[0]["bboxes"], boxes)


@FAST
@given(kind=st.sampled_from(["mixup", "cutmix", "both"]), n=st.integers(2, 8), k=st.integers(2, 5),
       alpha=st.floats(0.1, 4.0), seed=st.integers(0, 2**31 - 1))
def test_mixing_mixes_exactly_what_its_labels_say(kind, n, k, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, 3, 12, 12, generator=g), torch.randint(0, k, (n,), generator=g)
    torch.manual_seed(seed)
    xm, ym = mixing(kind, k, alpha)(x, y)
    torch.manual_seed(seed)
    xm2, ym2 = mixing(kind, k, alpha)(x, y)
    assert torch.equal(xm, xm2) and torch.equal(ym, ym2)  # deterministic under torch.manual_seed
    assert ym.shape == (n, k) and torch.allclose(ym.sum(1), torch.ones(n)) and (ym >= 0).all()
    if y[0] == y[-1]:
        return  # the label cannot tell the mixing weight when both images share a class
    lam, partner = float(ym[0, y[0]]), x.roll(1, 0)  # torchvision mixes each image with the previous one
    from_self, from_partner = (xm[0] == x[0]).all(dim=0), (xm[0] == partner[0]).all(dim=0)
    if bool((from_self | from_partner).all()):  # CutMix (or MixUp at a weight of exactly 0 or 1): a pasted box
        assert float(from_self.float().mean()) == pytest.approx(lam, abs=1e-5)
    else:  # MixUp: a convex combination with the label's weight
        assert torch.allclose(xm[0], lam * x[0] + (1 - lam) * partner[0], atol=1e-5)
