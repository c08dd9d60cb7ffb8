"""Tests for hrlib.analysis.errors and .failures: error modes, breakdowns, size buckets, failure sets and their
diff."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import hrlib.analysis as analysis
from hrlib.analysis.errors import breakdown, error_modes, size_bucket, size_bucket_labels
from hrlib.analysis.failures import FailureSet, diff
from hrlib.data.slides import SlideDataset

# ---- error modes ---------------------------------------------------------------------------------------------------

LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2]
PREDS = [0, 2, 0, 1, 0, 2, 2, 0, 1]  # one false alarm (0 -> 2), two missed targets (2 -> 0, 2 -> 1)


def test_error_modes_counts_misses_and_false_alarms() -> None:
    modes = error_modes(PREDS, LABELS)
    np.testing.assert_array_equal(modes.confusion, [[2, 0, 1], [1, 1, 0], [1, 1, 2]])
    np.testing.assert_allclose(modes.per_class_accuracy, [2 / 3, 1 / 2, 2 / 4])
    np.testing.assert_allclose(modes.precision, [2 / 4, 1 / 2, 2 / 3])
    assert modes.accuracy == pytest.approx(5 / 9)
    assert (modes.positive, modes.missed, modes.false_alarms) == (2, 2, 1)
    assert modes.missed_rate == pytest.approx(2 / 4) and modes.false_alarm_rate == pytest.approx(1 / 5)
    assert modes.table()[2] == ("target", 4, 0.5, pytest.approx(2 / 3))
    lesion = error_modes(PREDS, LABELS, positive=1)  # by index
    assert (lesion.missed, lesion.false_alarms) == (1, 1)


def test_error_modes_marks_classes_never_seen_or_predicted_with_nan() -> None:
    modes = error_modes([0, 0, 1], [0, 1, 1], positive="target")
    assert math.isnan(modes.per_class_accuracy[2]) and math.isnan(modes.precision[2])
    assert modes.missed == 0 and math.isnan(modes.missed_rate) and modes.false_alarm_rate == 0.0
    with pytest.raises(ValueError, match="^positive "):
        error_modes(PREDS, LABELS, positive="tumour")
    with pytest.raises(ValueError, match="^preds "):
        error_modes(PREDS[:-1], LABELS)
    with pytest.raises(ValueError, match="^labels "):
        error_modes(PREDS, [3] * len(PREDS))


def test_breakdown_gives_accuracy_per_group_in_order() -> None:
    sites = ["B", "A", "A", "B", "A", "A", "B", "B", "A"]
    rows = breakdown(PREDS, LABELS, sites)
    assert rows == [("A", 5, pytest.approx(2 / 5)), ("B", 4, pytest.approx(3 / 4))]
    rows = breakdown(PREDS, LABELS, sites, order=["B", "A", "C"])
    assert [r[:2] for r in rows] == [("B", 4), ("A", 5), ("C", 0)] and math.isnan(rows[2][2])
    with pytest.raises(ValueError, match="^order "):
        breakdown(PREDS, LABELS, sites, order=["A"])
    with pytest.raises(ValueError, match="^groups "):
        breakdown(PREDS, LABELS, sites[:3])


def test_size_bucket_uses_the_largest_target_side() -> None:
    assert size_bucket_labels() == ["<8 px", "8-16 px", "16-32 px", ">=32 px", "no target"]
    assert size_bucket(np.array([[0, 0, 7.9, 3]])) == "<8 px"
    assert size_bucket(np.array([[0, 0, 4, 8]])) == "8-16 px"  # the taller side counts; edges belong above
    assert size_bucket(np.array([[0, 0, 3, 3], [10, 10, 30, 12]])) == "16-32 px"  # the largest box counts
    assert size_bucket(np.array([[0, 0, 32, 1]])) == ">=32 px"
    assert size_bucket(np.zeros((0, 4))) == size_bucket(None) == "no target"
    assert size_bucket(np.array([[0, 0, 5, 5]]), edges=(4,)) == ">=4 px"
    with pytest.raises(ValueError, match="^edges "):
        size_bucket(None, edges=(16, 8))


# ---- failure sets --------------------------------------------------------------------------------------------------

def failing_set(dataset: SlideDataset | None = None, max_cases: int = 4) -> FailureSet:
    labels = np.arange(12) % 3
    preds = labels.copy()
    preds[[1, 4, 7, 2, 5, 8]] = [0, 0, 0, 0, 1, 1]  # errors (1 -> 0) x3, (2 -> 0) x1, (2 -> 1) x2
    return FailureSet.select(np.arange(12), preds, labels, max_cases, dataset=dataset, meta={"model": "tiny"})


def test_select_is_deterministic_and_covers_every_error_type() -> None:
    fs = failing_set()
    assert [(c.id, c.label, c.pred) for c in fs.cases] == [(1, 1, 0), (2, 2, 0), (4, 1, 0), (5, 2, 1)]
    assert fs.failing == {1, 2, 4, 5, 7, 8} and fs.evaluated == set(range(12))
    order = np.random.default_rng(0).permutation(12)  # the same samples in another order: the same set
    labels, preds = np.arange(12) % 3, np.arange(12) % 3
    preds[[1, 4, 7, 2, 5, 8]] = [0, 0, 0, 0, 1, 1]
    assert FailureSet.select(order, preds[order], labels[order], 4).cases == fs.cases
    assert len(FailureSet.select(np.arange(12), preds, labels, 20).cases) == 6
    assert fs.table()[0] == (1, "lesion", "normal", None, None) and len(fs.HEADERS) == len(fs.table()[0])


def test_cases_carry_what_re_renders_them() -> None:
    dataset = SlideDataset(12, 32, seed=3, sites=("A", "B"), target_frac=0.1)
    fs = failing_set(dataset)
    case = fs.cases[-1]
    assert (case.seed, case.size, case.site) == (dataset.item_seed(case.id), 32, dataset.sites[case.id % 2])
    assert np.array_equal(fs.render(case).image, dataset.slide(case.id).image)
    with pytest.raises(ValueError, match="^case 1 has no seed"):
        failing_set().render(failing_set().cases[0])
    with pytest.raises(ValueError, match="^dataset must be the one evaluated"):
        failing_set(SlideDataset(12, 32, labels=[0] * 12))


def test_failure_set_round_trips_through_json(tmp_path) -> None:
    fs = failing_set(SlideDataset(12, 32, seed=3, target_frac=0.1))
    path = fs.save(tmp_path / "failures.json")
    assert FailureSet.load(path) == fs
    assert json.loads(path.read_text())["evaluated"] == [[0, 12]]


def test_loading_a_missing_or_corrupt_file_names_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        FailureSet.load(tmp_path / "nothing.json")
    path = failing_set().save(tmp_path / "cut.json")
    path.write_text(path.read_text()[:-40])
    with pytest.raises(ValueError, match="cut.json is corrupt"):
        FailureSet.load(path)
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="other.json .*format"):
        FailureSet.load(tmp_path / "other.json")


def test_save_is_atomic(tmp_path, monkeypatch) -> None:
    path = failing_set().save(tmp_path / "failures.json")
    before = path.read_bytes()

    def half_then_fail(doc, fh, **kwargs) -> None:
        fh.write(json.dumps(doc)[:50])
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        failing_set(max_cases=2).save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["failures.json"]  # no temp file left
    with pytest.raises(OSError, match="disk full"):
        failing_set().save(tmp_path / "new.json")  # a failed first save leaves no file at all
    assert os.listdir(tmp_path) == ["failures.json"]


def test_save_names_what_json_cannot_hold(tmp_path) -> None:
    bad = FailureSet.select(np.arange(3), [1, 1, 1], [0, 1, 2], meta={"model": object(), "acc": np.float32(0.5)})
    with pytest.raises(TypeError, match=r"^meta\['model'\] "):
        bad.save(tmp_path / "f.json")
    assert os.listdir(tmp_path) == []


def test_diff_reports_fixed_still_failing_and_newly_failing() -> None:
    fs = failing_set()  # cases 1, 2, 4, 5; 7 and 8 failed too but were not kept
    labels = np.arange(14) % 3  # 12 and 13 were not evaluated at selection
    now = labels.copy()
    now[[2, 5, 7, 8]] = [1, 1, 0, 1]  # 1 and 4 fixed; 2 wrong in a new way; 5, 7, 8 still wrong
    now[[0, 3, 13]] = [1, 2, 0]  # 0 and 3 newly wrong; 13 wrong but not evaluated before
    report = diff(fs, now, labels)
    assert (report.fixed, report.still_failing, report.newly_failing) == ((1, 4), (2, 5), (0, 3))
    assert report.table() == [(1, "lesion", "normal", "lesion", "fixed"), (2, "target", "normal", "lesion",
                              "still failing"), (4, "lesion", "normal", "lesion", "fixed"),
                              (5, "target", "lesion", "lesion", "still failing"),
                              (0, "normal", "normal", "lesion", "newly failing"),
                              (3, "normal", "normal", "target", "newly failing")]
    assert report.markdown().splitlines()[0] == "| id | label | before | now | status |"
    assert diff(fs, now).newly_failing is None  # without labels, only the set is re-checked
    subset = diff(fs, now[[5, 4, 2, 1]], ids=[5, 4, 2, 1])  # predictions for the set's ids only
    assert (subset.fixed, subset.still_failing) == ((1, 4), (2, 5))


def test_diff_refuses_incomplete_predictions_or_other_labels() -> None:
    fs, labels = failing_set(), np.arange(12) % 3
    with pytest.raises(ValueError, match=r"^preds must cover .* \[4, 5\]"):
        diff(fs, labels[:4])
    with pytest.raises(ValueError, match="^labels must agree"):
        diff(fs, labels, (labels + 1) % 3)
    with pytest.raises(TypeError, match="^failures "):
        diff([1, 2], labels)  # type: ignore[arg-type]


def test_run_records_and_the_bundle_are_re_exported_from_analysis() -> None:
    import hrlib.analysis.bundle
    import hrlib.analysis.runs

    for name in ("record_run", "read_runs", "dataset_fingerprint", "git_state", "package_versions"):
        assert getattr(analysis, name) is getattr(hrlib.analysis.runs, name) and name in analysis.__all__
    for name in ("BundledModel", "export_bundle", "load_bundle"):
        assert getattr(analysis, name) is getattr(hrlib.analysis.bundle, name) and name in analysis.__all__
