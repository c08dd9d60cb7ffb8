"""hrlib.augment.qa: each finding kind (with its image id and index), plant_errors round trips, the report table,
errors."""

from __future__ import annotations

import numpy as np
import pytest

from hrlib.augment.qa import KINDS, Annotation, Finding, QAReport, annotations_from_slides, audit, plant_errors
from hrlib.data.slides import make_slide

H, W = 50, 60
GOOD = [[2, 3, 12, 13], [20, 20, 30, 35], [40, 5, 55, 45]]


def ann(boxes=GOOD, labels=(0, 1, 2), masks="fill", image_id="img", size=(H, W)) -> Annotation:
    """An annotation; ``masks="fill"`` fills each (clipped, integer) box."""
    boxes = np.asarray(boxes, dtype=np.float32) if isinstance(boxes, list) else boxes
    if isinstance(masks, str):
        masks = np.zeros((len(boxes), *size), dtype=bool)
        for m, (x0, y0, x1, y1) in zip(masks, GOOD * 3, strict=False):
            m[y0:y1, x0:x1] = True
    return Annotation(image_id, size, boxes, np.asarray(labels), masks)


def with_box(i: int, box, masks="fill") -> Annotation:
    boxes = np.array(GOOD, dtype=np.float32)
    boxes[i] = box
    return ann(boxes, masks=masks)


@pytest.fixture(scope="module")
def clean() -> list[Annotation]:
    return annotations_from_slides([make_slide(96, label=i % 3, seed=i) for i in range(24)])


def test_clean_annotations_give_an_empty_report(clean):
    report = audit([ann(), *clean], num_classes=3)
    assert report.ok and len(report) == 0 and report.keys() == set()
    assert report.counts() == dict.fromkeys(KINDS, 0)
    assert "no findings" in report.table()


@pytest.mark.parametrize(("box", "kind", "detail"), [
    ([np.nan, 20, 30, 35], "non_finite_box", "not all finite"),
    ([20, 20, np.inf, 35], "non_finite_box", "not all finite"),
    ([30, 20, 20, 35], "reversed_box", "x1 (20) < x0 (30)"),
    ([20, 35, 30, 20], "reversed_box", "y1 (20) < y0 (35)"),
    ([30, 20, 20, 20], "reversed_box", "x1 (20) < x0 (30)"),  # reversed and empty: reversed only
    ([70, 20, 65, 35], "reversed_box", "x1"),  # reversed and outside: reversed only
    ([20, 20, 20, 35], "empty_box", "zero width"),
    ([20, 20, 30, 20], "empty_box", "zero height"),
    ([70, 20, 70, 35], "empty_box", "zero width"),  # empty and outside: empty only
    ([50, 20, 61, 35], "box_out_of_image", "60x50 image"),
    ([-1, 20, 30, 35], "box_out_of_image", "60x50 image"),
    ([20, 40, 30, 51], "box_out_of_image", "60x50 image"),
    ([100, 100, 120, 120], "box_out_of_image", "60x50 image"),
])
def test_each_box_problem_is_one_finding_at_its_index(box, kind, detail):
    report = audit([ann(image_id="a"), with_box(1, box, masks=None)], num_classes=3)
    assert report.keys() == {("img", 1, kind)}
    assert detail in report.findings[0].detail


def test_boxes_on_the_image_border_are_inside():
    assert audit([with_box(1, [0, 0, W, H])], 3).ok


def test_degenerate_boxes_are_all_reported_never_dropped():
    boxes = [[np.nan] * 4, [5, 5, 1, 9], [5, 5, 5, 9], [5, 5, 9, 5], [-3, 5, 9, 9]]
    a = ann(boxes, labels=[0] * 5, masks=None)
    report = audit([a], 3)
    assert [(f.index, f.kind) for f in report.findings] == [
        (0, "non_finite_box"), (1, "reversed_box"), (2, "empty_box"), (3, "empty_box"), (4, "box_out_of_image")]
    assert len(a.boxes) == 5


@pytest.mark.parametrize("label", [3, -1, 99])
def test_label_out_of_range(label):
    report = audit([ann(labels=(0, label, 2))], num_classes=3)
    assert report.keys() == {("img", 1, "label_out_of_range")}
    assert f"label {label} not in 0..2" in report.findings[0].detail
    assert audit([ann(labels=(0, 2, 2))], num_classes=3).ok


def test_empty_mask():
    a = ann()
    a.masks[2] = False
    report = audit([ann(image_id="x"), a], 3)
    assert report.keys() == {("img", 2, "empty_mask")}


def test_mask_outside_box_respects_the_tolerance():
    def with_stray(col: int) -> Annotation:
        a = ann()
        a.masks[0, 5, col] = True  # box 0 spans columns 2..12
        return a

    assert audit([with_stray(12)], 3).ok  # pixel [12, 13): 0-1 px outside
    assert audit([with_stray(13)], 3).ok  # pixel [13, 14): 1-2 px outside, within 2 px
    report = audit([with_stray(14)], 3)  # pixel [14, 15): 2-3 px outside
    assert report.keys() == {("img", 0, "mask_outside_box")} and "1 mask pixels" in report.findings[0].detail
    assert audit([with_stray(16)], 3, mask_tolerance_px=5).ok
    assert audit([with_stray(12)], 3, mask_tolerance_px=0).keys() == {("img", 0, "mask_outside_box")}


def test_mask_shape_is_an_image_level_finding():
    masks = np.ones((3, H, W + 1), dtype=bool)
    report = audit([ann(image_id="ok"), ann(masks=masks)], 3)
    assert report.keys() == {("img", None, "mask_shape")}
    assert "(3, 50, 61)" in report.findings[0].detail
    assert audit([ann(masks=np.ones((2, H, W), dtype=bool))], 3).keys() == {("img", None, "mask_shape")}


def test_masks_are_not_compared_with_broken_boxes():
    for box, kind in [([5, 5, 1, 9], "reversed_box"), ([5, 5, 5, 9], "empty_box"), ([np.nan, 5, 9, 9],
                                                                                      "non_finite_box")]:
        assert audit([with_box(0, box)], 3).keys() == {("img", 0, kind)}  # not also mask_outside_box
    assert audit([with_box(0, [5, 30, 9, 60])], 3).keys() == {("img", 0, "box_out_of_image"),
                                                              ("img", 0, "mask_outside_box")}


def test_duplicates_are_reported_on_the_later_index():
    boxes = [*GOOD, [20.5, 20, 30, 35.5], GOOD[0]]
    report = audit([ann(boxes, labels=(0, 1, 2, 1, 0), masks=None)], 3)
    assert report.keys() == {("img", 3, "duplicate"), ("img", 4, "duplicate")}
    assert "with object 1" in report.findings[0].detail
    assert audit([ann(boxes, labels=(0, 1, 2, 2, 1), masks=None)], 3).ok  # other labels: not duplicates


def test_duplicate_iou_threshold():
    boxes = [[0, 0, 10, 10], [0, 0, 10, 8]]  # IoU 0.8
    a = ann(boxes, labels=(1, 1), masks=None)
    assert audit([a], 3).ok
    assert audit([a], 3, duplicate_iou=0.75).keys() == {("img", 1, "duplicate")}


def test_findings_are_ordered_and_carry_their_image_id():
    a = ann(labels=(5, 1, 2), image_id="first")
    b = ann([GOOD[0], [9, 9, 3, 3], GOOD[2]], image_id="second", masks=np.ones((3, H, W + 1), dtype=bool))
    report = audit([a, b], 3)
    assert [(f.image_id, f.index, f.kind) for f in report.findings] == [
        ("first", 0, "label_out_of_range"), ("second", None, "mask_shape"), ("second", 1, "reversed_box")]
    assert report.counts()["reversed_box"] == 1 and sum(report.counts().values()) == 3


def test_table_lists_findings_and_truncates():
    report = QAReport([Finding(f"im{i}", i, "empty_box", f"detail {i}") for i in range(5)]
                      + [Finding("whole", None, "mask_shape", "bad")])
    table = report.table()
    lines = table.splitlines()
    assert lines[0] == "| image_id | index | kind | detail |" and len(lines) == 2 + 6
    assert "| im3 | 3 | empty_box | detail 3 |" in lines and "| whole | - | mask_shape | bad |" in lines
    short = report.table(max_rows=2).splitlines()
    assert len(short) == 2 + 3 and "4 more findings" in short[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_plant_errors_round_trip_for_each_kind(clean, kind):
    corrupted, planted = plant_errors(clean, [kind], seed=3)
    assert len(planted) == 1 and next(iter(planted))[2] == kind
    assert audit(corrupted, 3).keys() == planted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plant_errors_round_trip_for_combinations(clean, seed):
    kinds = [*KINDS, *KINDS[:5], "duplicate", "mask_outside_box"]
    corrupted, planted = plant_errors(clean, kinds, seed=seed, num_classes=3)
    assert len(planted) == len(kinds)
    assert sorted(k[2] for k in planted) == sorted(kinds)
    objects = [(i, idx) for i, idx, kind in planted if idx is not None]
    assert len(objects) == len(set(objects))  # each on a different object
    assert audit(corrupted, 3).keys() == planted


def test_plant_errors_is_deterministic_and_leaves_inputs_untouched(clean):
    before = [(a.boxes.copy(), a.labels.copy(), a.masks.copy()) for a in clean]
    first = plant_errors(clean, list(KINDS), seed=5)
    again = plant_errors(clean, list(KINDS), seed=5)
    other = plant_errors(clean, list(KINDS), seed=6)
    assert first[1] == again[1] and first[1] != other[1]
    for x, y in zip(first[0], again[0], strict=True):
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.masks, y.masks)
    for a, (boxes, labels, masks) in zip(clean, before, strict=True):
        np.testing.assert_array_equal(a.boxes, boxes)
        np.testing.assert_array_equal(a.labels, labels)
        np.testing.assert_array_equal(a.masks, masks)


def test_plant_label_uses_num_classes(clean):
    corrupted, planted = plant_errors(clean, ["label_out_of_range"], seed=0, num_classes=3)
    (image_id, index, _), = planted
    assert next(a for a in corrupted if a.image_id == image_id).labels[index] == 3


def test_annotations_from_slides():
    slides = [make_slide(128, label=label, seed=7) for label in (0, 1, 2)]
    anns = annotations_from_slides(slides, image_ids=["n", "l", "t"])
    assert [a.image_id for a in anns] == ["n", "l", "t"]
    assert anns[0].boxes.shape == (0, 4) and anns[0].masks.shape == (0, 128, 128)
    for a, s in zip(anns[1:], slides[1:], strict=True):
        assert a.image_size == (128, 128) and (a.labels == s.label).all()
        np.testing.assert_array_equal(a.boxes, s.boxes)
        np.testing.assert_array_equal(a.masks.any(axis=0), s.mask)  # the evidence lies inside its boxes
        assert all(m.any() for m in a.masks)


BAD = [
    (lambda: ann(np.zeros((3, 3))), r"^annotations\[1\]\.boxes must be an \(N, 4\)"),
    (lambda: ann(np.array(GOOD, dtype=object)), r"^annotations\[1\]\.boxes "),
    (lambda: ann(labels=(0, 1)), r"^annotations\[1\]\.labels must be a \(3,\) int array"),
    (lambda: ann(labels=(0.0, 1.0, 2.0)), r"^annotations\[1\]\.labels "),
    (lambda: ann(masks=np.ones((3, H, W), dtype=np.uint8)), r"^annotations\[1\]\.masks must be an"),
    (lambda: ann(masks=np.ones((H, W), dtype=bool)), r"^annotations\[1\]\.masks "),
    (lambda: ann(size=(0, 5), masks=None), r"^annotations\[1\]\.image_size "),
    (lambda: ann(size=(5.0, 5.0), masks=None), r"^annotations\[1\]\.image_size "),
    (lambda: ann(image_id="a"), r"^annotations\[1\]\.image_id must be a str unique"),
    (lambda: ann(image_id=3), r"^annotations\[1\]\.image_id "),
]


@pytest.mark.parametrize(("make", "match"), BAD)
def test_bad_annotations_raise_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        audit([ann(image_id="a"), make()], 3)
    with pytest.raises(ValueError, match=match):
        plant_errors([ann(image_id="a"), make()], ["empty_box"])


def test_bad_arguments_raise_naming_the_argument(clean):
    with pytest.raises(TypeError, match=r"^annotations\[0\] must be"):
        audit([("img", GOOD)], 3)
    with pytest.raises(TypeError, match=r"^annotations must be"):
        audit(ann(), 3)
    with pytest.raises(ValueError, match=r"^num_classes "):
        audit([ann()], 0)
    with pytest.raises(ValueError, match=r"^duplicate_iou "):
        audit([ann()], 3, duplicate_iou=0.0)
    with pytest.raises(ValueError, match=r"^mask_tolerance_px "):
        audit([ann()], 3, mask_tolerance_px=-1)
    with pytest.raises(ValueError, match=r"^kinds must be"):
        plant_errors(clean, ["bad_box"])
    with pytest.raises(ValueError, match=r"^kinds must be"):
        plant_errors(clean, "empty_box")
    with pytest.raises(ValueError, match=r"^kinds: no clean object left"):
        plant_errors(clean, ["empty_box"] * 1000)
    with pytest.raises(ValueError, match=r"^kinds: no clean object left to plant 'empty_mask'"):
        plant_errors([ann(masks=None)], ["empty_mask"])
    with pytest.raises(TypeError, match=r"^slides\[1\] must be a hrlib.data.slides.Slide"):
        annotations_from_slides([make_slide(32, seed=0), "slide"])
    with pytest.raises(ValueError, match=r"^image_ids must be 1 strings"):
        annotations_from_slides([make_slide(32, seed=0)], image_ids=["a", "b"])
