"""Tests for hrlib.analysis.runs: run records, dataset fingerprints, and identical metrics from the same seed on CPU."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from hrlib.analysis.runs import dataset_fingerprint, read_runs, record_run
from hrlib.data.slides import SlideDataset
from hrlib.models import DSConvNet
from hrlib.staging import Schedule, val_transform
from hrlib.train import evaluate, fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


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


# ---- determinism ----------------------------------------------------------------------------------------------------

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
