"""hrlib.train.checkpoint and resume: atomic saves, weights_only loading, random states, and a run stopped after epoch 1
and resumed ending with bit-identical weights."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import hrlib.train.checkpoint as ckpt_mod
from hrlib.train import ConfigError, run_config
from hrlib.train.checkpoint import latest_checkpoint, load_checkpoint, restore_rng_state, rng_state, save_checkpoint


def tiny(seed: int = 5, **train_options) -> dict:
    """Three epochs over two stages with random augmentation, a callback and the onecycle LR: about a second."""
    return {"data": {"source": "generator", "n": 12, "n_val": 4, "size": 32},
            "schedule": {"stages": [{"name": "low", "resolution": 16, "num_epochs": 2, "policy": "warmup"},
                                    {"name": "full", "resolution": 32, "num_epochs": 1, "policy": "scale_jitter"}]},
            "model": {"name": "dsconvnet", "kwargs": {"widths": [4, 8]}},
            "train": {"batch_size": 4, "seed": seed, "device": "cpu", **train_options},
            "diagnostics": {"grad_clip": {"max_norm": 0.5}}, "output": {"progress": False, "keep_last": 5}}


def test_rng_state_round_trips_python_numpy_and_torch():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)  # noqa: NPY002
    random.gauss(0, 1)  # a cached gaussian is part of Python's state
    state = rng_state()
    first = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3))  # noqa: NPY002
    random.seed(9), np.random.seed(9), torch.manual_seed(9)  # noqa: NPY002
    restore_rng_state(state)
    again = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3))  # noqa: NPY002
    assert first[:3] == again[:3] and torch.equal(first[3], again[3])


def test_checkpoint_loads_with_weights_only(tmp_path):
    state = {"epoch": 2, "model": torch.nn.Linear(2, 3).state_dict(), "rng": [rng_state()], "config": {"a": [1.5]}}
    path = save_checkpoint(tmp_path / "c" / "epoch_0002.pt", state)
    loaded = torch.load(path, weights_only=True)  # no pickled classes: the safe loader accepts it
    assert loaded["epoch"] == 2 and torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert torch.equal(load_checkpoint(path)["rng"][0]["torch"], state["rng"][0]["torch"])


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "epoch_0000.pt"
    save_checkpoint(path, {"epoch": 0, "w": torch.ones(3)})
    before = path.read_bytes()

    def crash(obj, fh):  # a full disk or a kill in the middle of the write
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", crash)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"epoch": 1, "w": torch.zeros(3)})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["epoch_0000.pt"]  # no temp left
    assert load_checkpoint(path)["epoch"] == 0


def test_load_checkpoint_rejects_missing_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    path = save_checkpoint(tmp_path / "epoch_0001.pt", {"epoch": 1, "w": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"is not a readable hrlib checkpoint"):
        load_checkpoint(path)


def test_keep_last_and_latest_follow_the_epoch_number(tmp_path):
    folder = tmp_path / "checkpoints"
    for epoch in (8, 9, 10, 11):
        save_checkpoint(folder / f"epoch_{epoch:04d}.pt", {"epoch": epoch}, keep_last=2)
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_0010.pt", "epoch_0011.pt"]
    assert latest_checkpoint(tmp_path).name == "epoch_0011.pt" and latest_checkpoint(tmp_path / "x") is None


@pytest.mark.usefixtures("one_thread")
def test_a_stopped_and_resumed_run_ends_with_bit_identical_weights(tmp_path):
    whole = run_config(tiny(), out=tmp_path / "whole")
    part = run_config(tiny(), out=tmp_path / "part", stop_after=1)  # "interrupted" after epoch 1
    assert len(part) == 1 and not (tmp_path / "part/model.pt").exists()
    resumed = run_config(tiny(), out=tmp_path / "part", resume=True)
    a = torch.load(tmp_path / "whole/model.pt", weights_only=True)
    b = torch.load(tmp_path / "part/model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.column("train_loss").tolist() == whole.column("train_loss").tolist()
    ck = load_checkpoint(latest_checkpoint(tmp_path / "part"))
    assert ck["epoch"] == 2 and ck["step"] == 9 and len(ck["history"]) == 3
    other = run_config(tiny(seed=6), out=tmp_path / "other")  # the comparison can fail: another seed differs
    assert other.column("train_loss").tolist() != whole.column("train_loss").tolist()


@pytest.mark.usefixtures("one_thread")
def test_resume_refuses_a_changed_config_or_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume needs a checkpoint in"):
        run_config(tiny(), out=tmp_path / "none", resume=True)
    run_config(tiny(), out=tmp_path / "run", stop_after=1)
    with pytest.raises(ConfigError, match=r"config must match the checkpoint's .* first train\.lr: checkpoint "
                                          r"0\.003, config 0\.01"):
        run_config(tiny(lr=0.01), out=tmp_path / "run", resume=True)
