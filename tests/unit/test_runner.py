"""hrlib.train.runner and hrlib.train.config: config loading and validation (errors name the key path and the
value), the CLI entry points, and a single-process run's outputs (generator and tile-store data)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from hrlib.analysis.runs import read_runs
from hrlib.train import ConfigError, load_config, main, run_config, validate_config

ROOT = Path(__file__).resolve().parents[2]


def tiny(**sections) -> dict:
    """A config that trains in about a second: 12 slides of 32 px, two stages, a 2-stage DSConvNet."""
    cfg = {"data": {"source": "generator", "n": 12, "n_val": 6, "size": 32},
           "schedule": {"stages": [{"name": "low", "resolution": 16, "num_epochs": 1, "policy": "warmup"},
                                   {"name": "full", "resolution": 32, "num_epochs": 1, "policy": "finetune"}]},
           "model": {"name": "dsconvnet", "kwargs": {"widths": [4, 8]}},
           "train": {"batch_size": 4, "seed": 3, "device": "cpu"},
           "output": {"progress": False}}
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


@pytest.mark.parametrize(("path", "value", "message"), [
    (("schedule", "stages", 1, "resolution"), "big", r"^schedule\.stages\[1\]\.resolution must be an int >= 8, "
                                                     r"got 'big'"),
    (("schedule", "stages", 0, "resolution"), 4, r"^schedule\.stages\[0\]\.resolution must be an int >= 8, got 4"),
    (("schedule", "stages", 1, "resolution"), 64, r"^schedule\.stages\[1\]\.resolution must be <= "
                                                  r"schedule\.source_size \(32 px\).*got 64"),
    (("schedule", "stages", 0, "policy"), "heavy", r"^schedule\.stages\[0\]\.policy must be one of .*got 'heavy'"),
    (("schedule", "stages", 0, "num_epochs"), 0, r"^schedule\.stages\[0\]\.num_epochs must be an int >= 1, got 0"),
    (("schedule", "stages", 1, "speed"), 2, r"^schedule\.stages\[1\]\.speed is not a known key .*got 2"),
    (("train", "lr"), -1.0, r"^train\.lr must be a number > 0, got -1\.0"),
    (("train", "batch_size"), 2.5, r"^train\.batch_size must be an int >= 1, got 2\.5"),
    (("train", "amp"), "yes", r"^train\.amp must be true or false, got 'yes'"),
    (("train", "lr_schedule"), "linear", r"^train\.lr_schedule must be one of .*got 'linear'"),
    (("train", "epochs"), 3, r"^train\.epochs is not a known key \(known: lr, .*\), got 3"),
    (("data", "sites"), ["Z"], r"^data\.sites must be a non-empty list of site names .*got \['Z'\]"),
    (("data", "source"), "s3", r"^data\.source must be one of 'generator', 'store', got 's3'"),
    (("data", "path"), "x", r"^data\.path is not a known key .*got 'x'"),  # a store key in a generator source
    (("model", "name"), "resnet", r"^model\.name must be one of .*got 'resnet'"),
    (("model", "kwargs", "widths"), [4, 0], r"^model\.kwargs\.widths\[1\] must be an int >= 1, got 0"),
    (("model", "kwargs", "depth"), 3, r"^model\.kwargs\.depth is not a parameter of dsconvnet .*got 3"),
    (("model", "kwargs", "num_classes"), 5, r"^model\.kwargs\.num_classes is set by hrlib train from the data"),
    (("diagnostics", "grad_clip"), {"max_norm": -1}, r"^diagnostics\.grad_clip\.max_norm must be a finite float > 0"),
    (("diagnostics", "grad_clip"), {"norm": 1}, r"^diagnostics\.grad_clip\.norm is not a parameter of GradClipper"),
    (("diagnostics", "tensorboard"), True, r"^diagnostics\.tensorboard is not a known key"),
    (("output", "keep_last"), 0, r"^output\.keep_last must be an int >= 1, got 0"),
    (("trainer",), {}, r"^trainer is not a known section \(known: data, schedule"),
])
def test_a_bad_config_names_the_key_path_and_the_value(path, value, message):
    cfg = tiny()
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_missing_required_keys_and_sections_are_named():
    cfg = tiny()
    del cfg["schedule"]["stages"][0]["name"]
    with pytest.raises(ConfigError, match=r"^schedule\.stages\[0\]\.name is required"):
        validate_config(cfg)
    with pytest.raises(ConfigError, match=r"^schedule is required"):
        validate_config({"data": {}})
    with pytest.raises(ConfigError, match=r"^data\.path is required"):
        validate_config({**tiny(), "data": {"source": "store"}})


def test_validation_fills_defaults_and_is_idempotent():
    cfg = validate_config(tiny())
    assert cfg["train"]["lr"] == 3e-3 and cfg["schedule"]["source_size"] == 32 and cfg["output"]["keep_last"] == 2
    assert cfg["diagnostics"] == {"grad_norm": None, "divergence": None, "grad_clip": None, "overfit": None}
    assert validate_config(copy.deepcopy(cfg)) == cfg


def test_the_toml_and_yaml_examples_are_the_same_valid_config(tmp_path):
    toml, yaml = load_config(ROOT / "examples/train_fast.toml"), load_config(ROOT / "examples/train_fast.yaml")
    assert toml == yaml
    assert [s["resolution"] for s in toml["schedule"]["stages"]] == [32, 64]
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = \n")
    with pytest.raises(ConfigError, match=r"^config .*bad\.toml is not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"^config must be a \.toml, \.yaml or \.yml file, got '.*cfg\.json'"):
        load_config(tmp_path / "cfg.json")


def test_cli_reports_a_bad_config_with_exit_code_2(tmp_path, capsys):
    file = tmp_path / "c.yaml"
    file.write_text("schedule:\n  stages:\n    - {name: a, resolution: big, num_epochs: 1}\n")
    assert main(["--config", str(file)]) == 2
    err = capsys.readouterr().err
    assert "schedule.stages[0].resolution must be an int >= 8, got 'big'" in err and "Traceback" not in err


@pytest.mark.usefixtures("one_thread")
def test_a_run_writes_history_checkpoints_model_and_one_run_record(tmp_path):
    out = tmp_path / "run"
    history = run_config(tiny(output={"keep_last": 1}, diagnostics={"grad_clip": {"max_norm": 1.0}}), out=out)
    assert [r["stage"] for r in history.rows] == ["low", "full"] and history.column("samples").tolist() == [12, 12]
    assert np.isfinite(history.column("val_acc")).all() and "clip_rate" in history.rows[0]  # callback columns
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["epoch_0001.pt"]  # keep_last = 1
    assert json.loads((out / "history.json").read_text())["rows"][1]["resolution"] == 32
    (record,) = read_runs(out / "runs.jsonl")
    assert record["metrics"]["finished"] and record["metrics"]["world_size"] == 1 and record["seed"] == 3
    assert record["params"]["schedule"]["stages"][1]["name"] == "full"
    assert record["dataset"]["params"]["n"] == 18  # 12 training + 6 validation slides, one generator
    weights = torch.load(out / "model.pt", weights_only=True)
    assert set(weights) >= {"head.2.weight"}


@pytest.mark.usefixtures("one_thread")
def test_store_source_trains_on_labelled_regions(tmp_path):
    from hrlib.data.slides import make_slide
    from hrlib.pipeline.store import write_store

    images = {f"s{i}": make_slide(96, label=i % 2, seed=i).image for i in range(4)}
    write_store(tmp_path / "store", images, tile=32, levels=2)
    (tmp_path / "labels.csv").write_text("image_id,label\n" + "".join(f"s{i},{i % 2}\n" for i in range(4)))
    data = {"source": "store", "path": str(tmp_path / "store"), "region": 32, "n_samples": 8, "n_val": 4,
            "labels": str(tmp_path / "labels.csv")}
    cfg = tiny()
    cfg["data"] = data
    history = run_config(cfg, out=tmp_path / "run")
    assert validate_config(cfg)["data"]["num_classes"] == 2
    assert history.column("samples").tolist() == [8, 8] and np.isfinite(history.column("val_loss")).all()
    from hrlib.train.runner import _datasets

    train_set, val_set, _ = _datasets(validate_config(cfg))  # validation regions come from held-out images
    train_ids = {train_set.region(i)[0] for i in range(len(train_set))}
    val_ids = {val_set.region(i)[0] for i in range(len(val_set))}
    assert train_ids and val_ids and not train_ids & val_ids and train_ids | val_ids <= set(images)
    assert len(val_set) == 4 and len(train_set) == 8
    (tmp_path / "labels.csv").write_text("image_id,label\ns0,0\n")
    with pytest.raises(ConfigError, match=r"^data\.labels must give a class for every image .*'s1'"):
        validate_config(cfg)
    with pytest.raises(ConfigError, match=r"^data\.region must be <= the smallest image side .*got 128"):
        validate_config({**cfg, "data": {**data, "region": 128}})


def test_hrlib_train_subcommand_and_python_m_entry_point_share_the_options(capsys):
    from hrlib.__main__ import main as hrlib_main
    from hrlib.train import main as train_main

    for entry in (hrlib_main, train_main):
        with pytest.raises(SystemExit):
            entry((["train"] if entry is hrlib_main else []) + ["--help"])
        assert re.search(r"--config FILE.*--resume.*--out DIR", capsys.readouterr().out, re.S)
