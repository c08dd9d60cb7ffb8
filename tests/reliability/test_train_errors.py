"""``hrlib train`` and the training functions against bad input: an output path that is a file, a foreign file
among the checkpoints, a model too large to build, and tensors without data (the meta device). Each must end in a
one-line error that names the argument or the file, never a traceback or a blown memory limit."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from limits import run_limited  # noqa: E402

from hrlib.train import load_checkpoint, main, run_config  # noqa: E402


def tiny(batch_size: int = 4, **model_kwargs) -> dict:
    """8 slides of 32 px, one 2-epoch stage, a 2-stage DSConvNet: about a second."""
    return {"data": {"source": "generator", "n": 8, "size": 32},
            "schedule": {"stages": [{"name": "s", "resolution": 16, "num_epochs": 2, "policy": "warmup"}]},
            "model": {"name": "dsconvnet", "kwargs": {"widths": [4, 8], **model_kwargs}},
            "train": {"batch_size": batch_size, "seed": 1, "device": "cpu"}, "output": {"progress": False}}


@pytest.fixture()
def config_file(tmp_path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny()))
    return path


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_an_output_path_that_is_a_file_is_a_one_line_error(tmp_path, config_file):
    target = tmp_path / "notes.txt"
    target.write_text("precious")
    out = subprocess.run([sys.executable, "-m", "hrlib", "train", "--config", str(config_file), "--out",
                          str(target), "--quiet"], capture_output=True, text=True, timeout=180,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = _one_line_error(out.stderr)
    assert out.returncode in (1, 2) and "--out" in line and str(target) in line and "folder" in line, line
    assert target.read_text() == "precious"


def _foreign(path: Path, kind: str) -> None:
    if kind == "not a checkpoint":
        torch.save({"a": 1}, path)
    elif kind == "random bytes":
        path.write_bytes(os.urandom(4096))
    elif kind == "pickled object":  # torch.load(weights_only=True) refuses it
        torch.save({"epoch": 0, "model": Fraction(1, 3)}, path)
    else:  # an epoch and nothing else
        torch.save({"epoch": 0}, path)


@pytest.mark.parametrize("kind", ["not a checkpoint", "random bytes", "pickled object", "epoch only"])
def test_resume_on_a_foreign_checkpoint_is_a_one_line_error(tmp_path, config_file, capsys, kind):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    planted = out / "checkpoints" / "epoch_0000.pt"
    _foreign(planted, kind)
    code = main(["--config", str(config_file), "--out", str(out), "--resume", "--quiet"])
    line = _one_line_error(capsys.readouterr().err)
    assert code in (1, 2) and str(planted) in line and "hrlib checkpoint" in line, line
    assert not (out / "model.pt").exists()


@pytest.mark.parametrize(("widths", "batch_size", "key"), [([10**9], 4, "parameters"),
                                                          ([10**6], 64, "train.batch_size")],
                         ids=["a billion channels: 27 G parameters", "a million channels: 50 GB of activations"])
def test_a_model_too_large_to_build_is_a_config_error(widths, batch_size, key):
    out = run_limited("""
        from hrlib.train import validate_config
        validate_config(config)
    """, timeout=120, config=tiny(batch_size, widths=widths))
    assert out.status == "error" and out.error == "ConfigError", out
    assert out.message.startswith("model.kwargs") and key in out.message, out.message


def test_a_model_on_the_meta_device_is_a_value_error_naming_it():
    from hrlib.data.slides import SlideDataset
    from hrlib.models import build_model, count_cost
    from hrlib.staging import Schedule, Stage
    from hrlib.train import fit

    with torch.device("meta"):
        model = build_model("dsconvnet", 3, widths=[4, 8])
    with pytest.raises(ValueError, match=r"^model .*meta"):
        fit(model, SlideDataset(4, 32, seed=0, in_memory=True), Schedule([Stage("s", 16, 1, "warmup")], 32),
            device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"^model .*meta"):
        count_cost(model, 32)


def test_a_checkpoint_of_meta_tensors_is_a_value_error_naming_the_file(tmp_path):
    run_config(tiny(), out=tmp_path / "run", stop_after=1)
    path = tmp_path / "run" / "checkpoints" / "epoch_0000.pt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"] = {k: v.to("meta") for k, v in checkpoint["model"].items()}
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=rf"{path.name}.*meta"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=rf"{path.name}.*meta"):
        run_config(tiny(), out=tmp_path / "run", resume=True)
