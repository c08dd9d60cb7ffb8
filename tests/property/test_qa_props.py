"""hrlib.augment.qa: valid annotations pass, any reversed box is found, planted errors are found exactly."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlib.augment.qa import KINDS, Annotation, annotations_from_slides, audit, plant_errors
from hrlib.data.slides import make_slide

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def valid_annotations(draw: st.DrawFn) -> Annotation:
    """1-6 boxes with positive area inside an image (float corners, on the border allowed), each with its own
    label (so none is a duplicate) and a mask filling the pixels it overlaps."""
    h, w = draw(st.integers(4, 80)), draw(st.integers(4, 80))
    n = draw(st.integers(1, 6))
    boxes = np.zeros((n, 4), dtype=np.float32)
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        x0, x1 = sorted(draw(st.lists(st.floats(0, w, width=32), min_size=2, max_size=2, unique=True)))
        y0, y1 = sorted(draw(st.lists(st.floats(0, h, width=32), min_size=2, max_size=2, unique=True)))
        boxes[i] = x0, y0, x1, y1
        masks[i, int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
    return Annotation("img", (h, w), boxes, np.arange(n), masks)


@FAST
@given(valid_annotations())
def test_valid_boxes_inside_the_image_give_no_findings(a):
    assert audit([a], num_classes=len(a.boxes), mask_tolerance_px=0.0).ok


@FAST
@given(a=valid_annotations(), data=st.data())
def test_a_reversed_copy_of_any_valid_box_is_found(a, data):
    i = data.draw(st.integers(0, len(a.boxes) - 1))
    axes = data.draw(st.sampled_from([[0], [1], [0, 1]]))
    boxes = a.boxes.copy()
    for ax in axes:
        boxes[i, [ax, ax + 2]] = boxes[i, [ax + 2, ax]]
    bad = Annotation(a.image_id, a.image_size, boxes, a.labels, a.masks)
    assert audit([bad], num_classes=len(boxes)).keys() == {("img", i, "reversed_box")}


@lru_cache(maxsize=1)
def clean() -> tuple[Annotation, ...]:
    return tuple(annotations_from_slides([make_slide(96, label=i % 3, seed=i) for i in range(24)]))


@FAST
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=10), seed=st.integers(0, 2**31 - 1))
def test_audit_finds_exactly_the_planted_errors(kinds, seed):
    corrupted, planted = plant_errors(clean(), kinds, seed=seed)
    assert len(planted) == len(kinds)
    assert audit(corrupted, num_classes=3).keys() == planted
