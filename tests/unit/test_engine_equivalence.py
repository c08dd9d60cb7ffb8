"""One training engine: ``hrlib train`` on one process and ``fit`` with the same model, data, schedule, seed, batch
size and LR schedule end with bit-identical weights on the CPU (both run ``hrlib.train.loop.EpochLoop``)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset

from hrlib.config import seed_everything
from hrlib.data.slides import SlideDataset
from hrlib.models import build_model
from hrlib.staging import Schedule, Stage, val_transform
from hrlib.train import build_callbacks, fit, run_config, validate_config

SEED = 7
CONFIG = {
    "data": {"source": "generator", "n": 16, "n_val": 4, "size": 48, "sites": ["A"], "seed": 0},
    "schedule": {"stages": [{"name": "low", "resolution": 32, "num_epochs": 2, "policy": "warmup"},
                            {"name": "full", "resolution": 48, "num_epochs": 1, "policy": "scale_jitter"}]},
    "model": {"name": "dsconvnet", "kwargs": {"widths": [4, 8]}},
    "train": {"lr": 3e-3, "weight_decay": 1e-4, "batch_size": 4, "seed": SEED, "device": "cpu",
              "lr_schedule": "onecycle"},
    "diagnostics": {"grad_clip": {"max_norm": 1.0}},
    "output": {"progress": False},
}


def fit_the_config(seed: int = SEED):
    """``fit`` with what the config describes: the model built right after seeding, the same slides and stages
    (random flips, rotations and scale jitter), batch size, AdamW, onecycle and callbacks."""
    cfg = validate_config(CONFIG)
    seed_everything(seed)
    model = build_model("dsconvnet", 3, widths=[4, 8])
    slides = SlideDataset(20, 48, seed=0, sites=["A"], in_memory=True)
    schedule = Schedule([Stage("low", 32, 2, "warmup"), Stage("full", 48, 1, "scale_jitter")], 48)
    history = fit(model, Subset(slides, range(16)), schedule, val_set=Subset(slides, range(16, 20)),
                  val_transform=val_transform(48, source_size=48), lr=3e-3, weight_decay=1e-4, batch_size=4,
                  lr_schedule="onecycle", seed=seed, device="cpu", progress=False,
                  callbacks=build_callbacks(cfg["diagnostics"]))
    return model, history


@pytest.mark.usefixtures("one_thread")
def test_hrlib_train_on_one_process_ends_with_fits_weights(tmp_path):
    history = run_config(CONFIG, out=tmp_path / "run")
    trained = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    model, fitted = fit_the_config()
    weights = model.state_dict()
    assert trained.keys() == weights.keys()
    different = [k for k in weights if not torch.equal(trained[k], weights[k])]
    assert different == [], f"{len(different)} of {len(weights)} tensors differ, first {different[:3]}"
    assert history.column("train_loss").tolist() == fitted.column("train_loss").tolist()
    assert history.column("lr").tolist() == fitted.column("lr").tolist()
    seed_everything(SEED)
    untrained = build_model("dsconvnet", 3, widths=[4, 8]).state_dict()
    assert not all(torch.equal(untrained[k], weights[k]) for k in weights)  # training moved the weights
