"""Audit cases (helper B): bench, bundle, checkpoint, config, diagnostics, memory, models, pruning, runconfig, runner,
runs, train, shards. See ``harness.py`` for what a :class:`Case` means."""

from __future__ import annotations

import functools
import math
import pathlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import BAD_IMAGES, Case, image_u8  # noqa: E402, F401

SPECS: dict[str, Case] = {}
EXEMPT: dict[str, str] = {}

_TMP = Path(tempfile.mkdtemp(prefix="hrlib-audit-b-"))


def _tmp(name: str) -> Path:
    """A fresh path under this module's temporary folder (the file or folder does not exist yet)."""
    return Path(tempfile.mkdtemp(dir=_TMP)) / name


# ----------------------------------------------------------------------------------------------------- bench
_RESULT = {"setup": {"n_images": 1, "size": 64, "region": 16, "tile": 64, "profile": "fast", "cpus": 2,
                     "device": "cpu"},
           "rows": [{"name": "read", "baseline": "a", "baseline_value": 2.0, "alternative": "b",
                     "alternative_value": 1.0, "unit": "ms", "ratio": 2.0}]}

SPECS["hrlib.bench.time_it"] = Case(
    valid=lambda: {"fn": lambda: None, "repeats": 1, "warmup": 0},
    bad={"fn": [None, 3], "repeats": [0, -1, 1.5, "3", True], "warmup": [-1, 0.5, None]})
SPECS["hrlib.bench.bench_generator"] = Case(
    valid=lambda: {"sizes": (16,), "min_seconds": 0.0, "max_images": 1},
    bad={"sizes": [None, (), "16", (4,), (16.0,), [16, None]], "min_seconds": [-1.0, math.nan, "1", None],
         "max_images": [0, 2.5, None]})
SPECS["hrlib.bench.bench_pipeline"] = Case(
    valid=lambda: {"size": 256, "region": 32, "workdir": None, "log": lambda line: None},
    bad={"size": [None, 32, 256.0, "256"], "region": [4, 128, None, 32.5], "n_images": [0, 1.5, None],
         "seed": [-1, 0.5, None], "threads": [0, None, 2.5], "workdir": [3, b"dir"], "log": [None, "print"]},
    run_valid=False, why="writes JPEG/zarr/LMDB sources and times DataLoaders with workers: a minute at the "
                         "smallest size (tests/unit/test_bench_pipeline.py runs it)")
SPECS["hrlib.bench.format_pipeline"] = Case(
    valid=lambda: {"result": _RESULT},
    bad={"result": [None, [], {}, {"setup": {}, "rows": []}, {"setup": _RESULT["setup"]}, "result.json"]})
SPECS["hrlib.bench.main"] = Case(
    valid=lambda: {"argv": ["generator", "--sizes", "16", "--seconds", "0"]},
    bad={"argv": ["generator --sizes 16", [16], ("generator", 3)]})


# ----------------------------------------------------------------------------------------------------- bundle
@functools.cache
def _bundle() -> torch.nn.Module:
    from hrlib.analysis.bundle import BundledModel
    from hrlib.models import DSConvNet

    return BundledModel(DSConvNet(widths=(4,)), 16)


@functools.cache
def _bundle_file() -> Path:
    from hrlib.analysis.bundle import export_bundle

    return export_bundle(_bundle(), _tmp("bundle.pt2"))


def _junk_file(name: str = "junk.pt2", data: bytes = b"not a zip archive") -> Path:
    path = _tmp(name)
    path.write_bytes(data)
    return path


def _tiny_model() -> torch.nn.Module:
    from hrlib.models import DSConvNet

    return DSConvNet(num_classes=3, widths=(4, 8))


SPECS["hrlib.analysis.bundle.BundledModel"] = Case(
    valid=lambda: {"model": _tiny_model(), "resolution": 16},
    bad={"model": [None, lambda x: x, "dsconvnet"], "resolution": [0, 16.0, None, "16"],
         "mean": [None, 0.5, (0.5, 0.5), "rgb", (0.5, math.nan, 0.5), (124.0, 117.0, 104.0), ("a", "b", "c")],
         "std": [None, (0.2, 0.0, 0.2), (0.2, -0.1, 0.2), (58.0, 57.0, 57.0), (0.2, 0.2)],
         "crop_fraction": [0.0, 1.5, math.nan, "1", None], "class_names": [None, "abc", [1, 2, 3]]})
SPECS["hrlib.analysis.bundle.BundledModel.forward"] = Case(
    fn=lambda **kw: _bundle()(**kw),
    valid=lambda: {"images": torch.from_numpy(image_u8(16, 16)[None].repeat(2, 0))},
    bad={"images": [None, image_u8(16, 16)[None], torch.zeros(2, 16, 16, 3), torch.zeros(16, 16, 3, dtype=torch.uint8),
                    torch.zeros(2, 16, 16, 4, dtype=torch.uint8), torch.zeros(0, 16, 16, 3, dtype=torch.uint8),
                    torch.zeros(2, 3, 16, 16, dtype=torch.uint8)]})
SPECS["hrlib.analysis.bundle.export_bundle"] = Case(
    valid=lambda: {"bundle": _bundle(), "path": _tmp("bundle.pt2")},
    bad={"bundle": [None, _tiny_model(), "bundle.pt2"], "path": [None, 3, _TMP / "no" / "such" / "dir.pt2", _TMP],
         "example_size": [1, 0, 8.0, "64"]},
    run_valid=False, why="torch.export of even a tiny model takes 2-4 s; load_bundle's valid call exports one once")
SPECS["hrlib.analysis.bundle.load_bundle"] = Case(
    valid=lambda: {"path": _bundle_file()},
    bad={"path": [None, 3, _TMP / "missing.pt2", _TMP, _junk_file(), _junk_file("empty.pt2", b"")]})


# ----------------------------------------------------------------------------------------------------- checkpoint
@functools.cache
def _checkpoint_file() -> Path:
    from hrlib.train.checkpoint import save_checkpoint

    return save_checkpoint(_tmp("epoch_0000.pt"), {"epoch": 0, "w": torch.zeros(2)})


def _rng() -> dict:
    from hrlib.train.checkpoint import rng_state

    return rng_state()


EXEMPT["hrlib.train.checkpoint.rng_state"] = "takes no arguments"
SPECS["hrlib.train.checkpoint.checkpoint_path"] = Case(
    valid=lambda: {"folder": _TMP, "epoch": 3},
    bad={"folder": [None, 3], "epoch": [-1, 1.5, "3", None]})
SPECS["hrlib.train.checkpoint.latest_checkpoint"] = Case(
    valid=lambda: {"folder": _TMP}, bad={"folder": [None, 3, ["runs"]]})
SPECS["hrlib.train.checkpoint.save_checkpoint"] = Case(
    valid=lambda: {"path": _tmp("epoch_0001.pt"), "checkpoint": {"epoch": 1, "w": torch.ones(2)}},
    bad={"path": [None, 3], "checkpoint": [None, [("epoch", 1)], torch.zeros(2)], "keep_last": [0, 1.5, "2"]})
SPECS["hrlib.train.checkpoint.load_checkpoint"] = Case(
    valid=lambda: {"path": _checkpoint_file()},
    bad={"path": [None, 3, _TMP / "missing.pt", _TMP, _junk_file("junk.pt"), _junk_file("empty.pt", b"")],
         "map_location": [None, 3, "gpu", "cuda:0" if not torch.cuda.is_available() else "tpu"]})
SPECS["hrlib.train.checkpoint.restore_rng_state"] = Case(
    valid=lambda: {"state": _rng()},
    bad={"state": [None, {}, {"python": {}}, {**_rng(), "numpy": None}, {**_rng(), "torch": torch.zeros(3)},
                   {**_rng(), "python": {"version": 3, "words": torch.zeros(3), "gauss": None}}, [1, 2]]})


# ----------------------------------------------------------------------------------------------------- config
EXEMPT["hrlib.config.Profile"] = "result record: get_profile() builds it from the environment"
EXEMPT["hrlib.config.seed_transform"] = "engine hook: any object is accepted, one without a seed is left alone"
EXEMPT["hrlib.config.seed_worker"] = "a DataLoader worker_init_fn: torch calls it with the worker id"
EXEMPT["hrlib.config.get_profile"] = "takes no arguments (HRLIB_PROFILE is checked and named in its error)"
SPECS["hrlib.config.get_device"] = Case(valid=lambda: {"prefer": "cpu"},
                                        bad={"prefer": [3, "gpu", "tpu", ["cpu"]] + ([] if torch.cuda.is_available()
                                                                                    else ["cuda"])})
SPECS["hrlib.config.seed_everything"] = Case(
    valid=lambda: {"seed": 0}, bad={"seed": [-1, 1.5, "0", None, True], "deterministic": ["yes", None, 1]})
SPECS["hrlib.config.describe"] = Case(valid=lambda: {"seed": 3}, bad={"seed": [-1, 1.5, "0"]})


# ----------------------------------------------------------------------------------------------------- diagnostics
def _model_with_grads() -> torch.nn.Module:
    model = _tiny_model()
    torch.nn.functional.cross_entropy(model(torch.rand(2, 3, 16, 16)), torch.tensor([0, 1])).backward()
    return model


def _history(rows: int = 2):
    from hrlib.train import History

    return History([{"epoch": e, "lr": 0.1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5}
                    for e in range(rows)])


_NOT_MODELS = [None, "model", lambda x: x, torch.zeros(2)]
_BAD_BOOLS = ["no", None, 2]

EXEMPT["hrlib.diagnostics.monitors.DivergenceReport"] = "result record: DivergenceDetector.check builds it"
SPECS["hrlib.diagnostics.monitors.grad_norms"] = Case(valid=lambda: {"model": _model_with_grads()},
                                                     bad={"model": _NOT_MODELS})
SPECS["hrlib.diagnostics.monitors.total_grad_norm"] = Case(valid=lambda: {"model": _model_with_grads()},
                                                  bad={"model": _NOT_MODELS})
SPECS["hrlib.diagnostics.monitors.GradNormMonitor"] = Case(valid=lambda: {"every_n_steps": 2},
                                                  bad={"every_n_steps": [0, 1.5, "2", None]})
SPECS["hrlib.diagnostics.monitors.GradNormMonitor.record"] = Case(
    fn=lambda **kw: __import__("hrlib.diagnostics.monitors", fromlist=["_"]).GradNormMonitor(1).record(**kw),
    valid=lambda: {"model": _model_with_grads(), "step": 1},
    bad={"model": _NOT_MODELS, "step": [0, -1, 1.5, None]})
SPECS["hrlib.diagnostics.monitors.GradNormMonitor.plot"] = Case(
    fn=lambda **kw: _recorded_monitor().plot(**kw), valid=lambda: {"ax": None}, bad={"ax": ["ax", 3]})
SPECS["hrlib.diagnostics.monitors.DivergenceDetector"] = Case(
    valid=lambda: {"spike_factor": 5.0, "window": 5},
    bad={"spike_factor": [1.0, 0.5, math.nan, "10", None], "window": [4, 5.5, None], "stop": _BAD_BOOLS,
         "warn": _BAD_BOOLS})
SPECS["hrlib.diagnostics.monitors.DivergenceDetector.check"] = Case(
    fn=lambda **kw: __import__("hrlib.diagnostics.monitors", fromlist=["_"]).DivergenceDetector(warn=False).check(**kw),
    valid=lambda: {"model": _model_with_grads(), "loss": 1.0, "step": 1},
    bad={"model": _NOT_MODELS, "loss": [None, "1.0", [1.0]], "step": [-1, 1.5, None], "epoch": [-1, 0.5, "0"]})
SPECS["hrlib.diagnostics.monitors.GradClipper"] = Case(valid=lambda: {"max_norm": 1.0},
                                              bad={"max_norm": [0.0, -1.0, math.nan, math.inf, "1", None]})
SPECS["hrlib.diagnostics.monitors.GradClipper.clip"] = Case(
    fn=lambda **kw: __import__("hrlib.diagnostics.monitors", fromlist=["_"]).GradClipper().clip(**kw),
    valid=lambda: {"model": _model_with_grads()}, bad={"model": _NOT_MODELS})
SPECS["hrlib.diagnostics.curves.is_overfitting"] = Case(
    valid=lambda: {"train_losses": [1.0, 0.8, 0.6, 0.5], "val_losses": [1.0, 0.9, 0.95, 0.97], "patience": 2},
    bad={"train_losses": [None, 1.0, "1.0", [1.0, 0.8, 0.6], [1.0, None, 0.6, 0.5]],
         "val_losses": [None, 0.5, [1.0, 0.9], ["a", "b", "c", "d"]], "patience": [0, 1.5, None],
         "min_delta": [-0.1, math.nan, "0"]})
SPECS["hrlib.diagnostics.monitors.OverfitDetector"] = Case(
    valid=lambda: {"patience": 2}, bad={"patience": [0, 2.5, None], "min_delta": [-1.0, math.inf, None],
                                         "stop": _BAD_BOOLS})
SPECS["hrlib.diagnostics.monitors.OverfitDetector.update"] = Case(
    fn=lambda **kw: __import__("hrlib.diagnostics.monitors", fromlist=["_"]).OverfitDetector().update(**kw),
    valid=lambda: {"epoch": 0, "train_loss": 1.0, "val_loss": 0.9},
    bad={"epoch": [-1, 0.5, None], "train_loss": [None, "1.0"], "val_loss": [None, "0.9", math.nan, math.inf]})
SPECS["hrlib.diagnostics.curves.plot_lr"] = Case(
    valid=lambda: {"history": _history()}, bad={"history": [None, [{"epoch": 0, "lr": 0.1}], _history(0)],
                                                "ax": ["ax", 3]})
SPECS["hrlib.diagnostics.curves.LivePlot"] = Case(valid=lambda: {"title": "curves", "live": False},
                                         bad={"title": [None, 3], "live": _BAD_BOOLS[:1] + [2]})


def _recorded_monitor():
    from hrlib.diagnostics.monitors import GradNormMonitor

    monitor = GradNormMonitor(1)
    monitor.record(_model_with_grads(), 1)
    return monitor


# ----------------------------------------------------------------------------------------------------- memory
_BAD_DEVICES = [3, "gpu", "tpu"] + ([] if torch.cuda.is_available() else ["cuda"])
_STEP_BAD = {"model": [None, "dsconvnet", torch.nn.Linear(4, 3)], "batch_size": [0, 2.5, None, "2"],
             "image_size": [0, -16, 16.0, None], "mode": ["fp16", None, "AMP", 3], "num_classes": [0, 1.5, "3"],
             "repeats": [0, 1.5, None], "device": _BAD_DEVICES}

EXEMPT["hrlib.diagnostics.memory.StepProfile"] = "result record: profile_step builds it"
SPECS["hrlib.diagnostics.memory.Checkpointed"] = Case(valid=lambda: {"model": _tiny_model()},
                                          bad={"model": [None, torch.nn.Linear(4, 3), torch.nn.Sequential()]})
SPECS["hrlib.diagnostics.memory.profile_step"] = Case(
    valid=lambda: {"model": _tiny_model(), "batch_size": 2, "image_size": 16, "repeats": 1, "device": "cpu"},
    bad={**_STEP_BAD, "mode": _STEP_BAD["mode"]})
SPECS["hrlib.diagnostics.memory.compare_modes"] = Case(
    valid=lambda: {"model": _tiny_model(), "batch_size": 2, "image_size": 16, "modes": ("fp32", "checkpoint"),
                   "repeats": 1, "device": "cpu"},
    bad={**{k: v for k, v in _STEP_BAD.items() if k != "mode"}, "modes": [None, "fp32", (), ("fp32", "fp16")]},
    names={"modes": "modes"})
SPECS["hrlib.diagnostics.memory.largest_batch"] = Case(
    valid=lambda: {"model": _tiny_model(), "image_size": 16, "budget_bytes": 10**6, "max_batch": 4, "device": "cpu"},
    bad={"model": _STEP_BAD["model"], "image_size": _STEP_BAD["image_size"], "budget_bytes": [0, 1e6, None, "1"],
         "mode": _STEP_BAD["mode"], "max_batch": [0, 2.5, None], "num_classes": _STEP_BAD["num_classes"],
         "device": _BAD_DEVICES})


# ----------------------------------------------------------------------------------------------------- models
_BAD_COUNTS = [0, -1, 2.5, "3", None, True]

EXEMPT["hrlib.models.cost.Cost"] = "result record: count_cost builds it"
SPECS["hrlib.models.networks.eval_mode"] = Case(fn=lambda **kw: __import__("hrlib.models", fromlist=["eval_mode"])
                                                .eval_mode(**kw).__enter__(),
                                                valid=lambda: {"model": _tiny_model()}, bad={"model": [None, "model"]})
SPECS["hrlib.models.networks.bare_copy"] = Case(valid=lambda: {"module": _tiny_model()},
                                                bad={"module": [None, "model", torch.zeros(2)]})
SPECS["hrlib.models.networks.DepthwiseSeparableConv"] = Case(
    valid=lambda: {"c_in": 4, "c_out": 8, "stride": 2},
    bad={"c_in": _BAD_COUNTS, "c_out": _BAD_COUNTS, "stride": [0, 3, 1.0, None]})
SPECS["hrlib.models.networks.DSConvNet"] = Case(
    valid=lambda: {"num_classes": 3, "in_channels": 3, "widths": (4, 8)},
    bad={"num_classes": _BAD_COUNTS, "in_channels": _BAD_COUNTS, "widths": [None, (), 8, "48", (4, 0), (4, 8.0)]})
SPECS["hrlib.models.networks.LayerNorm2d"] = Case(valid=lambda: {"num_channels": 4},
                                         bad={"num_channels": _BAD_COUNTS, "eps": [0.0, -1e-6, math.nan, "1e-6", None]})
SPECS["hrlib.models.networks.ConvNeXtBlock"] = Case(
    valid=lambda: {"dim": 4, "kernel_size": 3},
    bad={"dim": _BAD_COUNTS, "kernel_size": [4, 0, 3.0, None], "expansion": _BAD_COUNTS,
         "layer_scale_init": [0.0, -1.0, math.nan, "1e-6", None]})
SPECS["hrlib.models.networks.TinyConvNeXt"] = Case(
    valid=lambda: {"dims": (4, 8), "depths": (1, 1)},
    bad={"num_classes": _BAD_COUNTS, "in_channels": _BAD_COUNTS, "dims": [None, (), (4, 8, 16), (4, 0), "48"],
         "depths": [None, (1,), (1, 0), 1], "layer_scale_init": [0.0, math.nan, None]})
SPECS["hrlib.models.networks.build_model"] = Case(
    valid=lambda: {"name": "dsconvnet", "widths": (4,)},
    bad={"name": [None, "resnet50", 3, ""], "num_classes": [0, 2.5, None], "in_channels": [0, "3"]})
SPECS["hrlib.models.networks.add_dropblock"] = Case(
    valid=lambda: {"model": _tiny_model(), "p": 0.1, "block_size": 3},
    bad={"model": [None, torch.nn.Conv2d(3, 4, 3), "dsconvnet"], "p": [-0.1, 1.0, math.nan, "0.1", None],
         "block_size": [0, 4, 3.0, None], "stages": [None, (), (5,), (-9,), "1", (1.0,)]})
SPECS["hrlib.models.cost.conv2d_params"] = Case(
    valid=lambda: {"c_in": 4, "c_out": 8, "kernel": 3},
    bad={"c_in": _BAD_COUNTS, "c_out": _BAD_COUNTS, "kernel": [0, (3,), (3, 0), (3, 3, 3), None, "3"],
         "groups": [0, 3, 1.5, None], "bias": ["yes", None, 1]})
SPECS["hrlib.models.cost.conv2d_macs"] = Case(
    valid=lambda: {"c_in": 4, "c_out": 8, "kernel": (3, 1), "out_h": 8, "out_w": 8},
    bad={"c_in": _BAD_COUNTS, "kernel": [0, (3,), None], "out_h": _BAD_COUNTS, "out_w": [0, 8.0, None],
         "groups": [0, 3]})
SPECS["hrlib.models.cost.SavedBytes"] = Case(
    valid=lambda: {"module": _tiny_model(), "exclude": (torch.zeros(2),)},
    bad={"module": [None, "model", torch.zeros(2)], "exclude": [None, torch.zeros(2), [None], "x"]})
SPECS["hrlib.models.cost.count_cost"] = Case(
    valid=lambda: {"model": _tiny_model(), "image_size": 16},
    bad={"model": [None, "dsconvnet", torch.zeros(2)], "image_size": [0, (16,), (16, 0), 16.0, None],
         "batch_size": [0, 1.5, None], "in_channels": [0, 4, 1.5, "3"]})
SPECS["hrlib.models.cost.receptive_field"] = Case(
    valid=lambda: {"layers": [torch.nn.Conv2d(1, 1, 3), torch.nn.Conv2d(1, 1, 3, stride=2)]},
    bad={"layers": [None, 3, "conv", [torch.nn.Linear(2, 2)], [torch.nn.Conv2d(1, 1, (3, 1))]]})
SPECS["hrlib.models.cost.measure_receptive_field"] = Case(
    valid=lambda: {"module": torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3), torch.nn.ReLU()), "image_size": 16},
    bad={"module": [None, torch.nn.Linear(2, 2), "conv"], "image_size": [0, (16,), 16.0, None, 1]})


# ----------------------------------------------------------------------------------------------------- pruning
_BAD_AMOUNTS = [-0.1, 1.0, math.nan, "0.5", None]

SPECS["hrlib.diagnostics.pruning.sparsity"] = Case(valid=lambda: {"model": _tiny_model()},
                                       bad={"model": [None, "model", torch.nn.ReLU(), torch.zeros(2)]})
SPECS["hrlib.diagnostics.pruning.magnitude_prune"] = Case(
    valid=lambda: {"model": _tiny_model(), "amount": 0.5},
    bad={"model": [None, "model", torch.nn.ReLU()], "amount": _BAD_AMOUNTS, "inplace": ["yes", None, 1]})
SPECS["hrlib.diagnostics.pruning.prune_channels"] = Case(
    valid=lambda: {"model": _tiny_model(), "amount": 0.5},
    bad={"model": [None, torch.nn.Conv2d(3, 4, 3), __import__("hrlib.models", fromlist=["_"]).add_dropblock(_tiny_model(),  # noqa: E501
                                                                                                 stages=(1,))],
         "amount": _BAD_AMOUNTS})


# ----------------------------------------------------------------------------------------------------- runconfig
_STAGES = {"stages": [{"name": "low", "resolution": 16, "num_epochs": 1}]}


def _config(**sections: object) -> dict:
    """A complete small config (generated slides, one 16 px stage, one epoch) with ``sections`` replaced."""
    return {"data": {"n": 4, "size": 32}, "schedule": _STAGES, "model": {"kwargs": {"widths": [4, 8]}},
            "train": {"batch_size": 2}, "output": {"dir": str(_tmp("run")), "progress": False}, **sections}


def _config_file(name: str, text: str | bytes) -> Path:
    path = _tmp(name)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


EXEMPT["hrlib.train.schema.ConfigError"] = "exception class (a ValueError with the key path; never called by users)"
for _section in ("GeneratorData", "StoreData", "Stage", "ScheduleSection", "ModelSection", "TrainSection",
                 "DiagnosticsSection", "OutputSection", "TrainConfig"):
    EXEMPT[f"hrlib.train.schema.{_section}"] = ("pydantic schema model; validate_config (audited below) is its front "
                                                "door and turns its errors into ConfigError with key paths")
SPECS["hrlib.train.config.validate_config"] = Case(
    valid=lambda: {"config": _config()}, bad={"config": [None, [], "train.toml", 3]})
# each section of TrainConfig (via validate_config) names its key path ("train.lr must be a number > 0, got -1")
SPECS["hrlib.train.schema.TrainConfig.sections"] = Case(
    fn=lambda **kw: __import__("hrlib.train.config", fromlist=["_"]).validate_config(_config(**kw)),
    valid=lambda: {},
    bad={"data": [None, {"n": 0}, {"size": 4}, {"source": "web"}, {"sites": []}, {"sites": ["Z"]}, {"seed": -1},
                  {"source": "store"}, {"bogus": 1}],
         "schedule": [None, {}, {"stages": []}, {"stages": [{"name": "a", "resolution": 7, "num_epochs": 1}]},
                      {"stages": [{"name": "a", "resolution": 64, "num_epochs": 1}]},
                      {"stages": [{"name": "a", "resolution": 16, "num_epochs": 0}]},
                      {"stages": [{"name": "a", "resolution": 16, "epochs": 1}]},
                      {"stages": [{"name": "a", "resolution": 16, "num_epochs": 1, "policy": "bogus"}]}],
         "model": [None, {"name": "resnet"}, {"kwargs": {"widths": "abc"}}, {"kwargs": {"num_classes": 3}},
                   {"kwargs": {"bogus": 1}}],
         "train": [None, {"lr": -1.0}, {"lr": math.nan}, {"batch_size": 0}, {"lr_schedule": "linear"},
                   {"device": "tpu"}, {"amp": "yes"}, {"weight_decay": "0"}, {"workers": 0}, {"num_workers": -1}],
         "diagnostics": [None, {"grad_clip": {"max_norm": -1.0}}, {"bogus": True}, {"overfit": {"bogus": 1}},
                         {"divergence": 3}],
         "output": [None, {"dir": ""}, {"keep_last": 0}, {"progress": 1}]})
SPECS["hrlib.train.config.load_config"] = Case(
    valid=lambda: {"path": _config_file("ok.toml", '[schedule]\nstages = [{name = "a", resolution = 16, '
                                                   'num_epochs = 1}]\n')},
    bad={"path": [None, 3, _TMP / "missing.toml", _config_file("cfg.json", "{}"), _config_file("bad.toml", "= ="),
                  _config_file("bad.yaml", "a: [1,"), _config_file("latin.toml", b"\xff\xfe[schedule]"),
                  _config_file("list.yaml", "- 1\n- 2\n")]},
    names={"path": "config"})


# ----------------------------------------------------------------------------------------------------- runner
SPECS["hrlib.train.runner.run_config"] = Case(
    valid=lambda: {"config": _config(), "progress": False},
    bad={"config": [None, [], "config.toml"], "out": [3, ["runs"]], "resume": ["yes", None, 1],
         "stop_after": [0, 1.5, "1"], "progress": ["no", 1]})
EXEMPT["hrlib.train.runner.run_cli"] = "runs the options add_arguments parsed; main(argv) is its audited entry"
SPECS["hrlib.train.config.build_callbacks"] = Case(
    valid=lambda: {"diagnostics": {"grad_clip": {"max_norm": 1.0}, "divergence": True}},
    bad={"diagnostics": [None, [], {"bogus": True}, {"grad_clip": {"max_norm": -1.0}}, {"overfit": 3}]})
SPECS["hrlib.train.schema.read_labels"] = Case(
    valid=lambda: {"path": _config_file("labels.csv", "image_id,label\ns0,0\ns1,1\n")},
    bad={"path": [None, 3, _TMP / "missing.csv", _config_file("bad.json", "{oops"),
                  _config_file("list.json", "[1, 2]"), _config_file("neg.csv", "s0,-1\n"),
                  _config_file("text.csv", "s0,0\ns1,cat\n")]},
    names={"path": "data.labels"})
SPECS["hrlib.train.runner.add_arguments"] = Case(valid=lambda: {"parser": __import__("argparse").ArgumentParser()},
                                           bad={"parser": [None, "parser", {}]})
SPECS["hrlib.train.runner.main"] = Case(
    valid=lambda: {"argv": ["--config", str(SPECS["hrlib.train.config.load_config"].valid()["path"]), "--quiet",
                            "--out", str(_tmp("run"))]},
    bad={"argv": ["--config x.toml", [3], ("--config", None)]})


# ----------------------------------------------------------------------------------------------------- runs
@functools.cache
def _run_log() -> Path:
    from hrlib.analysis.runs import record_run

    path = _tmp("runs.jsonl")
    record_run(path, params={"lr": 0.1}, metrics={"acc": 0.5}, seed=0, dataset={"n": 4})
    return path


_FP = "0" * 64
EXEMPT["hrlib.analysis.runs.package_versions"] = "takes no arguments"
SPECS["hrlib.analysis.runs.to_jsonable"] = Case(
    valid=lambda: {"value": {"a": np.float32(1.5), "b": (1, 2), "c": torch.tensor([1.0])}, "key": "params"},
    bad={"value": [object(), {1: "a"}, np.array(["a"]), [lambda: 0], {"a": {2, 3}}], "key": [None, 3]},
    names={"value": "params"})
SPECS["hrlib.analysis.runs.dataset_fingerprint"] = Case(
    valid=lambda: {"source": {"n": 4, "seed": 0}},
    bad={"source": [None, 3, "data.csv", [], [_TMP / "missing.bin"], {"n": object()}, [_TMP]]})
SPECS["hrlib.analysis.runs.git_state"] = Case(valid=lambda: {"repo": None}, bad={"repo": [3, _TMP / "missing"]})
SPECS["hrlib.analysis.runs.record_run"] = Case(
    valid=lambda: {"path": _tmp("runs.jsonl"), "params": {"lr": 0.1}, "metrics": {"acc": np.float64(0.5)},
                   "seed": 0, "dataset": _FP},
    bad={"path": [None, 3, _TMP / "no" / "dir" / "runs.jsonl", _TMP], "params": [None, [("lr", 0.1)], {"f": print}],
         "metrics": [None, 0.5, {"x": object()}], "seed": [-1, 1.5, None], "dataset": [None, "abc", "0" * 63, 3]},
    names={"dataset": "dataset"})
SPECS["hrlib.analysis.runs.read_runs"] = Case(
    valid=lambda: {"path": _run_log()},
    bad={"path": [None, 3, _TMP / "missing.jsonl", _TMP, _junk_file("bad.jsonl", b'{"a": 1}\n{oops\n'),
                  _junk_file("list.jsonl", b"[1, 2]\n"), _junk_file("latin.jsonl", b"\xff\xfe{}\n")]})


# ----------------------------------------------------------------------------------------------------- train
def _samples(n: int = 4) -> list:
    return [(image_u8(16, 16, seed=i), i % 3) for i in range(n)]


def _schedule():
    from hrlib.staging import Schedule, Stage

    return Schedule([Stage("low", 16, 1, "warmup")], 16)


def _val_tf():
    from hrlib.staging import val_transform

    return val_transform(16, source_size=16)


@functools.cache
def _history_file() -> Path:
    return _history().to_json(_tmp("history.json"))


_BAD_SETS = [None, "images", {0: (image_u8(), 0)}, [], 3, np.zeros((4, 16, 16, 3), np.uint8)]

EXEMPT["hrlib.train.history.Callback"] = "base class with no arguments; subclasses override its hooks"
EXEMPT["hrlib.train.history.EvalResult"] = "result record: evaluate builds it"
EXEMPT["hrlib.train.engine.Schedule"] = "typing.Protocol describing what fit needs (fit checks the members)"
EXEMPT["hrlib.train.history.TrainState"] = "record that fit builds and passes to callbacks"
SPECS["hrlib.train.history.History"] = Case(valid=lambda: {"rows": [{"epoch": 0, "train_loss": 1.0}]},
                                    bad={"rows": [None, 3, "rows", {"epoch": 0}, [1, 2], [("epoch", 0)]]})
SPECS["hrlib.train.history.History.column"] = Case(fn=lambda **kw: _history().column(**kw), valid=lambda: {"key": "lr"},
                                           bad={"key": ["learning_rate", None, 3]})
SPECS["hrlib.train.history.History.to_json"] = Case(
    fn=lambda **kw: _history().to_json(**kw), valid=lambda: {"path": _tmp("history.json")},
    bad={"path": [None, 3, _TMP / "no" / "dir" / "h.json", _TMP]})
SPECS["hrlib.train.history.History.from_json"] = Case(
    fn=lambda **kw: __import__("hrlib.train", fromlist=["_"]).History.from_json(**kw), valid=lambda: {"path": _history_file()},  # noqa: E501
    bad={"path": [None, 3, _TMP / "missing.json", _TMP, _junk_file("h.json", b"{oops"),
                  _junk_file("norows.json", b'{"epochs": []}'), _junk_file("rows.json", b'{"rows": [1, 2]}')]})
SPECS["hrlib.train.fitting.evaluate"] = Case(
    valid=lambda: {"model": _tiny_model(), "dataset": _samples(), "transform": _val_tf(), "batch_size": 2},
    bad={"model": _NOT_MODELS, "dataset": _BAD_SETS, "transform": [None, "val"], "batch_size": [0, 2.5, None],
         "device": _BAD_DEVICES, "num_classes": [0, 2, 1.5, "3"], "num_workers": [-1, 0.5, None]})
SPECS["hrlib.train.fitting.fit"] = Case(
    valid=lambda: {"model": _tiny_model(), "train_set": _samples(), "schedule": _schedule(), "batch_size": 2,
                   "progress": False, "count_macs": False, "device": "cpu"},
    bad={"model": _NOT_MODELS, "train_set": _BAD_SETS, "schedule": [None, object(), 16, "staged"],
         "val_set": ["val", [], 3], "val_transform": ["val"], "epochs_per_eval": [0, 1.5, None],
         "lr": [0.0, -1.0, math.nan, math.inf, "3e-3", None], "weight_decay": [-1.0, math.nan, None],
         "batch_size": [0, 2.5, None, "2"], "lr_schedule": ["linear", None, 3], "optimizer": ["adam", 3],
         "device": _BAD_DEVICES, "amp": ["yes", None, 1], "callbacks": [None, 3, [object()], "cb"],
         "seed": [-1, 0.5, None], "num_workers": [-1, 1.5, None], "progress": ["no", None],
         "count_macs": ["yes", None], "batch_transform": ["mixup", 3]},
    names={"callbacks": "callbacks"})


def _state():
    from hrlib.train import History, TrainState

    model = _tiny_model()
    return TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), _schedule(), History(), 1)


def _batches() -> list:
    return [(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))]


_NOT_SEEDS = [-1, 1.5, "0", None, True]
SPECS["hrlib.train.history.check_callbacks"] = Case(
    valid=lambda: {"name": "callbacks", "value": []}, bad={"value": [None, 3, "cb", [object()]]},
    names={"value": "callbacks"})
SPECS["hrlib.train.engine.check_schedule"] = Case(
    valid=lambda: {"name": "schedule", "schedule": _schedule()}, bad={"schedule": [None, object(), 16]})
SPECS["hrlib.train.engine.TransformedDataset"] = Case(
    valid=lambda: {"dataset": _samples(), "transform": _val_tf()},
    bad={"dataset": _BAD_SETS, "transform": [None, "val"]})
SPECS["hrlib.train.engine.epoch_seeds"] = Case(
    valid=lambda: {"seed": 0, "epoch": 2, "rank": 1}, bad={"seed": _NOT_SEEDS, "epoch": _NOT_SEEDS, "rank": _NOT_SEEDS})
SPECS["hrlib.train.engine.epoch_loader"] = Case(
    valid=lambda: {"dataset": _samples(), "transform": _val_tf(), "batch_size": 2, "order_seed": 3},
    bad={"dataset": _BAD_SETS, "transform": [None, "val"], "batch_size": [0, 2.5, None], "order_seed": _NOT_SEEDS,
         "num_workers": [-1, 0.5, None], "pin_memory": ["yes", None, 1], "sampler": [3, "random"]})
SPECS["hrlib.train.engine.lr_scheduler"] = Case(
    valid=lambda: {"optimizer": _state().optimizer, "kind": "onecycle", "steps_per_epoch": 2, "num_epochs": 3},
    bad={"optimizer": [None, "adam", _tiny_model()], "kind": ["linear", None, 3],
         "steps_per_epoch": [0, 1.5, None], "num_epochs": [0, 1.5, None]})
SPECS["hrlib.train.engine.train_epoch"] = Case(
    fn=lambda **kw: __import__("hrlib.train.engine", fromlist=["_"]).train_epoch(**kw),
    valid=lambda: {"state": _state(), "batches": _batches(), "device": "cpu"},
    bad={"state": [None, "state", {}], "batches": [[]], "device": _BAD_DEVICES, "callbacks": [None, [object()], 3]},
    names={"batches": "batches"})
SPECS["hrlib.train.loop.build_optimizer"] = Case(
    valid=lambda: {"model": _tiny_model(), "lr": 0.01, "weight_decay": 0.0, "lr_schedule": "cosine",
                   "steps_per_epoch": 2, "num_epochs": 2, "device": "cpu"},
    bad={"model": _NOT_MODELS, "lr": [0.0, math.nan, "0.1", None], "weight_decay": [-1.0, None],
         "lr_schedule": ["linear", None], "steps_per_epoch": [0, 1.5], "num_epochs": [0, None],
         "device": _BAD_DEVICES, "amp": ["yes", None, 1], "optimizer": ["adam", 3]})
SPECS["hrlib.train.loop.forward_macs"] = Case(
    valid=lambda: {"model": _tiny_model(), "schedule": _schedule()},
    bad={"model": _NOT_MODELS, "schedule": [None, object(), 16]})
SPECS["hrlib.train.loop.EpochLoop"] = Case(
    valid=lambda: {"train_set": _samples(), "batch_size": 2, "seed": 0, "device": "cpu"},
    bad={"train_set": _BAD_SETS, "batch_size": [0, 2.5, None], "seed": _NOT_SEEDS, "device": _BAD_DEVICES,
         "amp": ["yes", None], "callbacks": [None, [object()]], "batch_transform": ["mixup"],
         "num_workers": [-1, None], "validate": ["val"], "epochs_per_eval": [0, None], "rank": [-1, None],
         "reduce": ["sum"]})
SPECS["hrlib.train.loop.EpochLoop.run"] = Case(
    fn=lambda **kw: __import__("hrlib.train.loop", fromlist=["_"]).EpochLoop(_samples(), 2, 0, "cpu").run(**kw),
    valid=lambda: {"state": _state(), "epochs": range(1)}, bad={}, why="one epoch of 4 images at 16 px")


# ----------------------------------------------------------------------------------------------------- shards
def _image_file(name: str = "img.png", size: int = 32) -> Path:
    from PIL import Image

    path = _tmp(name)
    Image.fromarray(image_u8(size, size)).save(path)
    return path


def _crafted_png(width: int, height: int) -> bytes:
    """A PNG header claiming width x height pixels, with no pixel data (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@functools.cache
def _bad_image_files() -> list[Path]:
    good = _image_file("good.jpg")
    truncated = _junk_file("truncated.jpg", good.read_bytes()[: good.stat().st_size // 2])
    return [truncated, _junk_file("garbage.png", b"\x89PNG\r\n\x1a\n" + bytes(range(200))),
            _junk_file("bomb.png", _crafted_png(100_000, 100_000)),
            _junk_file("large.png", _crafted_png(12_000, 12_000)), _junk_file("empty.png", b""), _TMP / "missing.png",
            _TMP]


def _samples_of(n: int = 3, c: int = 3) -> list:
    return [(image_u8(16, 16, c, seed=i), i) for i in range(n)]


@functools.cache
def _shard_dir() -> Path:
    from hrlib.pipeline.shards import write_shards

    return write_shards(_samples_of(), _tmp("shards"), shard_size=2)


@functools.cache
def _small_dir() -> Path:
    from hrlib.pipeline.shards import write_small_files

    return write_small_files(_samples_of(), _tmp("small"))


def _index_dir(text: str) -> Path:
    folder = _tmp("index")
    folder.mkdir()
    (folder / "index.json").write_text(text)
    return folder


_BAD_SAMPLES = [None, 3, "images", image_u8(16, 16)[None], [image_u8()], [(image_u8(), 0, 1)], [(image_u8(), "a")],
                [(image_u8(16, 16, None), 0)], [(np.zeros((16, 16, 3), np.float32), 0)], [(np.zeros((0, 16, 3),
                                                                                                   np.uint8), 0)],
                [(image_u8(16, 16), 0), (image_u8(8, 8), 1)], []]
_BAD_DIRS = [None, 3, _TMP / "missing", _TMP, _index_dir("{oops"), _index_dir('{"kind": "shards"}'),
             _index_dir("[1, 2]")]

EXEMPT["hrlib.pipeline.shards.Batch"] = "result record: collate_skipping builds it (a list with .skipped)"
EXEMPT["hrlib.pipeline.shards.SkippedSample"] = "result record: ImageFileDataset builds it under on_error='skip'"
SPECS["hrlib.pipeline.shards.to_tensor"] = Case(valid=lambda: {"image": image_u8(16, 16)},
                                       bad={"image": [*BAD_IMAGES, np.zeros((16, 16, 3), np.float32),
                                                      torch.zeros(16, 16, 3, dtype=torch.uint8)]})
SPECS["hrlib.pipeline.decode.decode_image"] = Case(
    valid=lambda: {"path": _image_file()},
    bad={"path": [None, 3, *_bad_image_files()], "max_pixels": [0, -1, 1.5, "1000", True]})
SPECS["hrlib.pipeline.shards.ImageFileDataset"] = Case(
    valid=lambda: {"files": [_image_file()], "size": 16},
    bad={"files": [None, [], "img.png", _image_file(), [None], [3]], "size": [0, 16.5, "16"],
         "n_samples": [0, 2.5, "3"], "labels": [[1, 2], "1", [None], [1.5]], "seed": [-1, 0.5, None],
         "max_pixels": [0, 1.5, "big"], "on_error": ["ignore", None, True], "transform": ["to_tensor", 3]})
SPECS["hrlib.pipeline.shards.ImageFileDataset.__getitem__"] = Case(
    fn=lambda **kw: __import__("hrlib.pipeline.shards", fromlist=["_"]).ImageFileDataset([_image_file()], 16).__getitem__(**kw),  # noqa: E501
    valid=lambda: {"i": 0}, bad={"i": [1, -5, 0.5, None, "0"]})
SPECS["hrlib.pipeline.shards.ImageFileDataset.files"] = Case(  # a bad file read by [0]: an error naming it
    fn=lambda path: __import__("hrlib.pipeline.shards", fromlist=["_"]).ImageFileDataset([path], 16)[0],
    valid=lambda: {"path": _image_file()}, bad={"path": _bad_image_files()[:-1] + [_image_file("tiny.png", 8)]})
SPECS["hrlib.pipeline.shards.write_shards"] = Case(
    valid=lambda: {"samples": _samples_of(), "dst": _tmp("shards"), "shard_size": 2},
    bad={"samples": _BAD_SAMPLES, "dst": [None, 3, _TMP], "shard_size": [0, 2.5, None, "2"],
         "force": ["yes", None]},
    names={"samples": "samples"})
SPECS["hrlib.pipeline.shards.write_small_files"] = Case(
    valid=lambda: {"samples": _samples_of(), "dst": _tmp("small"), "fmt": "png"},
    bad={"samples": [*_BAD_SAMPLES[:10], _BAD_SAMPLES[11], _samples_of(c=2)],  # mixed sizes are fine here
         "dst": [None, 3, _TMP], "fmt": ["jpg", None, "PNG"], "force": ["yes", 1]})
SPECS["hrlib.pipeline.shards.ShardDataset"] = Case(valid=lambda: {"path": _shard_dir()},
                                          bad={"path": [*_BAD_DIRS, _small_dir()]})
SPECS["hrlib.pipeline.shards.ShardDataset.__getitem__"] = Case(
    fn=lambda **kw: __import__("hrlib.pipeline.shards", fromlist=["_"]).ShardDataset(_shard_dir()).__getitem__(**kw),
    valid=lambda: {"i": 2}, bad={"i": [3, -1, 1.5, None, "0"]})
SPECS["hrlib.pipeline.shards.SmallFileDataset"] = Case(valid=lambda: {"path": _small_dir()},
                                              bad={"path": [*_BAD_DIRS, _shard_dir()]})
SPECS["hrlib.pipeline.shards.SmallFileDataset.__getitem__"] = Case(
    fn=lambda **kw: __import__("hrlib.pipeline.shards", fromlist=["_"]).SmallFileDataset(_small_dir()).__getitem__(**kw),  # noqa: E501
    valid=lambda: {"i": 2}, bad={"i": [3, -1, 1.5, None, "0"]})
SPECS["hrlib.pipeline.shards.collate_skipping"] = Case(
    valid=lambda: {"items": [(torch.zeros(3), 0), __import__("hrlib.pipeline", fromlist=["_"]).SkippedSample("x.png", "bad")]},  # noqa: E501
    bad={"items": [None, 3, "items", [(torch.zeros(3), 0), (torch.zeros(4), 1)], [object(), object()]]})
