"""Tests for hrlib.analysis: error modes, failure sets, run records, determinism, and the exported bundle."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from hrlib.analysis import (
    BundledModel,
    FailureSet,
    breakdown,
    dataset_fingerprint,
    diff,
    error_modes,
    export_bundle,
    load_bundle,
    read_runs,
    record_run,
    size_bucket,
    size_bucket_labels,
)
from hrlib.data import SLIDE_STD, SlideDataset, make_slide
from hrlib.models import DSConvNet
from hrlib.staging import Schedule, val_transform
from hrlib.train import evaluate, fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py

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


# ---- run records ---------------------------------------------------------------------------------------------------

def test_record_run_appends_json_lines_with_everything_needed(tmp_path) -> None:
    log, dataset = tmp_path / "runs.jsonl", SlideDataset(6, 32, seed=2)
    params = {"lr": np.float64(3e-3), "widths": (8, 16), "out": tmp_path / "model.pt", "amp": False}
    metrics = {"accuracy": np.float32(0.5), "per_class": np.array([1.0, 0.5, 0.0]), "val_loss": math.nan,
               "steps": np.int64(12), "logits": torch.tensor([0.25, -1.0])}
    record = record_run(log, params=params, metrics=metrics, seed=7, dataset=dataset, repo=tmp_path)
    assert set(record) == {"timestamp", "seed", "params", "metrics", "dataset", "git", "versions"}
    assert record["params"] == {"lr": 3e-3, "widths": [8, 16], "out": str(tmp_path / "model.pt"), "amp": False}
    assert record["metrics"] == {"accuracy": 0.5, "per_class": [1.0, 0.5, 0.0], "val_loss": None, "steps": 12,
                                 "logits": [0.25, -1.0]}
    assert type(record["metrics"]["steps"]) is int and type(record["params"]["lr"]) is float
    assert record["dataset"]["fingerprint"] == dataset_fingerprint(dataset)
    assert record["dataset"]["params"]["seed"] == 2 and record["git"] == {"commit": None, "dirty": None}
    assert set(record["versions"]) == {"python", "torch", "torchvision", "numpy", "albumentations", "hrlib"}
    assert record["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    record_run(log, params={}, metrics={"accuracy": 0.75}, seed=8, dataset=record["dataset"]["fingerprint"])
    runs = read_runs(log)
    assert runs[0] == record and [r["seed"] for r in runs] == [7, 8] and len(log.read_text().splitlines()) == 2


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_record_run_stores_the_commit_and_dirty_flag(tmp_path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    clean = record_run(tmp_path / "runs.jsonl", params={}, metrics={}, seed=0, dataset={"n": 1}, repo=tmp_path)
    (tmp_path / "a.txt").write_text("2")
    dirty = record_run(tmp_path / "runs.jsonl", params={}, metrics={}, seed=0, dataset={"n": 1}, repo=tmp_path)
    assert clean["git"] == {"commit": head, "dirty": False} and dirty["git"] == {"commit": head, "dirty": True}


def test_record_run_rejects_what_json_cannot_hold_naming_the_key(tmp_path) -> None:
    log = tmp_path / "runs.jsonl"
    with pytest.raises(TypeError, match=r"^params\['model'\] must be JSON-serializable"):
        record_run(log, params={"model": nn.Linear(1, 1)}, metrics={}, seed=0, dataset={"n": 1})
    with pytest.raises(TypeError, match=r"^metrics\['names'\]\[1\] "):
        record_run(log, params={}, metrics={"names": ["a", {1, 2}]}, seed=0, dataset={"n": 1})
    with pytest.raises(ValueError, match="^dataset "):
        record_run(log, params={}, metrics={}, seed=0, dataset="not-a-fingerprint")
    with pytest.raises(ValueError, match="^seed "):
        record_run(log, params={}, metrics={}, seed=-1, dataset={"n": 1})
    assert not log.exists()  # nothing half-written


def test_read_runs_names_the_file_and_line_of_a_corrupt_record(tmp_path) -> None:
    log = tmp_path / "runs.jsonl"
    record_run(log, params={}, metrics={"a": 1}, seed=0, dataset={"n": 1})
    with open(log, "a") as fh:
        fh.write('\n{"seed": 1, "metr\n')
    with pytest.raises(ValueError, match=r"runs.jsonl, line 3 is not valid JSON"):
        read_runs(log)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_runs(tmp_path / "missing.jsonl")


def test_dataset_fingerprint_follows_parameters_and_file_contents(tmp_path) -> None:
    a = SlideDataset(6, 32, seed=1)
    assert dataset_fingerprint(a) == dataset_fingerprint(SlideDataset(6, 32, seed=1))
    for other in (SlideDataset(6, 32, seed=2), SlideDataset(6, 64, seed=1), SlideDataset(6, 32, seed=1, density=2)):
        assert dataset_fingerprint(other) != dataset_fingerprint(a)
    assert dataset_fingerprint({"seed": 1, "n": 6}) == dataset_fingerprint({"n": 6, "seed": np.int64(1)})
    (tmp_path / "sub").mkdir()
    for name, data in (("x.bin", b"one"), ("y.bin", b"two"), ("sub/z.bin", b"one")):
        (tmp_path / name).write_bytes(data)
    x, y, z = (tmp_path / n for n in ("x.bin", "y.bin", "sub/z.bin"))
    assert dataset_fingerprint([x, y]) == dataset_fingerprint([y, str(z)])  # contents, in any order or place
    assert dataset_fingerprint([x, y]) != dataset_fingerprint([x])
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        dataset_fingerprint([tmp_path / "nope.bin"])
    with pytest.raises(TypeError, match="^source "):
        dataset_fingerprint(42)


# ---- determinism and the bundle --------------------------------------------------------------------------------

RES = 64


def train_tiny(seed: int = 0) -> tuple[nn.Module, dict[str, float]]:
    """A DSConvNet after 1 epoch on 12 slides of 64 px, and its evaluation on 6 others."""
    torch.manual_seed(123)  # the initial weights; fit's seed fixes everything after
    model = DSConvNet(widths=(8, 16))
    fit(model, SlideDataset(12, RES, seed=1), Schedule.fixed(RES, 1, policy="warmup"), lr=1e-2, batch_size=4,
        seed=seed, device="cpu", progress=False, count_macs=False)
    result = evaluate(model, SlideDataset(6, RES, seed=2), val_transform(RES, source_size=RES), batch_size=3)
    return model, {"loss": result.loss, "accuracy": result.accuracy, "logits": result.logits}


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, dict[str, float]]:
    return train_tiny()


def test_the_same_seed_gives_identical_metrics_on_cpu(trained, tmp_path) -> None:
    _, first = trained
    _, second = train_tiny()
    log = tmp_path / "runs.jsonl"
    for metrics in (first, second):
        record_run(log, params={"lr": 1e-2}, metrics=metrics, seed=0, dataset=SlideDataset(12, RES, seed=1))
    a, b = read_runs(log)
    assert a["metrics"] == b["metrics"] and a["dataset"] == b["dataset"]  # exact, not approximate
    assert np.array_equal(first["logits"], second["logits"])


def slides(side: int, n: int = 6, shape: tuple[int, int] | None = None) -> list[np.ndarray]:
    images = [make_slide(side, seed=40 + i).image for i in range(n)]
    return images if shape is None else [im[:shape[0], :shape[1]].copy() for im in images]


@pytest.mark.parametrize(("side", "shape", "crop_fraction"), [
    (64, None, 1.0),  # the training size: identity
    (96, None, 1.0),  # shrink by 1.5: area averaging
    (128, None, 1.0),  # shrink by 2
    (48, None, 1.0),  # enlarge: bilinear
    (120, (80, 120), 0.875),  # not square: short side to 73 px, centre crop
    (130, (130, 97), 1.0),
])
def test_bundle_matches_the_val_transform_path(trained, side, shape, crop_fraction) -> None:
    model, _ = trained
    images = slides(side, shape=shape)
    transform = val_transform(RES, source_size=side, crop_fraction=crop_fraction, allow_upsample=True)
    expected = torch.stack([transform(image=im)["image"] for im in images])
    bundle = BundledModel(model, RES, crop_fraction=crop_fraction)
    batch = torch.from_numpy(np.stack(images))
    with torch.no_grad():
        x, logits = bundle.preprocess(batch), bundle(batch)
    # at most one 0-255 level per pixel (OpenCV's fixed-point rounding), on few pixels
    assert (x - expected).abs().max() <= 1 / 255 / min(SLIDE_STD) + 1e-4
    assert (x - expected).abs().mean() < 0.005
    with torch.no_grad():
        torch.testing.assert_close(logits, model(expected), atol=0.02, rtol=0)
    assert not model.training and not bundle.training


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> tuple[BundledModel, nn.Module, nn.Module]:
    model, _ = trained
    bundle = BundledModel(model, RES)
    bundle.model.head.train()  # a mixed mode: export runs in eval mode and restores each module's own
    modes = {m: m.training for m in bundle.modules()}
    path = export_bundle(bundle, tmp_path_factory.mktemp("bundle") / "model.pt2")
    assert {m: m.training for m in bundle.modules()} == modes
    bundle.eval()
    return bundle, load_bundle(path), torch.export.load(path).module()


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 96, 96), (2, 80, 120), (1, 130, 97), (2, 40, 41)])
def test_exported_bundle_equals_the_eager_bundle(exported, shape) -> None:
    bundle, loaded, _ = exported
    images = torch.randint(0, 256, (*shape, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), bundle(images), atol=1e-5, rtol=1e-5)
    assert loaded.kind == "export" and loaded.resolution == RES and loaded.class_names == bundle.class_names


BAD_INPUTS = [  # (images, error, message, whether the raw exported program refuses them too)
    (torch.zeros(2, 64, 64, 3), ValueError, "dtype torch.uint8", True),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), ValueError, r"shape \(N, H, W, 3\)", True),
    (torch.zeros(64, 64, 3, dtype=torch.uint8), ValueError, r"shape \(N, H, W, 3\)", True),
    (torch.zeros(2, 64, 64, 4, dtype=torch.uint8), ValueError, r"shape \(N, H, W, 3\)", True),
    (torch.zeros(2, 1, 64, 3, dtype=torch.uint8), ValueError, "H, W >= 2", False),
    (np.zeros((2, 64, 64, 3), np.uint8), TypeError, "torch.from_numpy", False),
]


@pytest.mark.parametrize(("images", "error", "message", "raw_refuses"), BAD_INPUTS)
def test_bundles_reject_wrong_inputs_with_a_clear_error(exported, images, error, message, raw_refuses) -> None:
    bundle, loaded, raw = exported
    for module in (bundle, loaded):
        with pytest.raises(error, match=f"^images .*{message}"):
            module(images)
    if raw_refuses:  # the raw exported program refuses too, with torch's own guard errors
        with pytest.raises((RuntimeError, AssertionError, IndexError)):
            raw(images)


def test_torchscript_fallback_when_export_fails(trained, tmp_path, monkeypatch) -> None:
    bundle = BundledModel(trained[0], RES)

    def fail(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.export, "export", fail)
    with pytest.warns(RuntimeWarning, match="TorchScript trace, which only accepts 64x64"):
        path = export_bundle(bundle, tmp_path / "model.pt")
    loaded = load_bundle(path)
    images = torch.from_numpy(np.stack(slides(64, 3)))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), bundle(images), atol=1e-5, rtol=1e-5)
    assert loaded.kind == "torchscript" and os.listdir(tmp_path) == ["model.pt"]
    with pytest.raises(ValueError, match="^images "):
        loaded(images.float())


def test_load_bundle_names_a_missing_or_corrupt_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="none.pt2"):
        load_bundle(tmp_path / "none.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="junk.pt2 is not a bundle"):
        load_bundle(tmp_path / "junk.pt2")
    with pytest.raises(TypeError, match="^bundle "):
        export_bundle(DSConvNet(widths=(8,)), tmp_path / "x.pt2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^crop_fraction "):
        BundledModel(DSConvNet(widths=(8,)), RES, crop_fraction=0.0)
