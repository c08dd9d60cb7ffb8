"""Audit cases of Helper A's modules: analysis, augment (explore, monitor, presets, spectral, stain), cam, domain
(color, crops, norm, shift, sync), qa, synth and viz (see ``harness.py``)."""

from __future__ import annotations

import pathlib
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import BAD_IMAGES, Case, image_u8  # noqa: E402,F401

SPECS: dict[str, Case] = {}
EXEMPT: dict[str, str] = {}
_TMP = pathlib.Path(tempfile.mkdtemp(prefix="hrlib_audit_a_"))

# ---- hrlib.analysis.errors -------------------------------------------------------------------------------------------

_LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2]
_PREDS = [0, 2, 0, 1, 0, 2, 2, 0, 1]
_BAD_CLASSES = [None, [0.5] * 9, np.zeros((3, 3), np.int64), [0, 1], [5] * 9, [np.nan] * 9, "abc"]


def _failure_set():
    from hrlib.analysis.failures import FailureSet

    labels = np.arange(12) % 3
    preds = labels.copy()
    preds[[1, 4, 7, 2, 5, 8]] = [0, 0, 0, 0, 1, 1]
    return FailureSet.select(np.arange(12), preds, labels, 4)


EXEMPT.update({
    "hrlib.analysis.errors.ErrorModes": "result record returned by error_modes, not built by users",
    "hrlib.analysis.failures.FailureCase": "result record held by a FailureSet (built by FailureSet.select / load)",
    "hrlib.analysis.failures.FailureDiff": "result record returned by diff, not built by users",
    "hrlib.analysis.failures.FailureSet": "built by FailureSet.select / FailureSet.load (both audited)",
})
SPECS.update({
    "hrlib.analysis.errors.error_modes": Case(
        valid=lambda: {"preds": _PREDS, "labels": _LABELS},
        bad={"preds": _BAD_CLASSES, "labels": [None, [0.5] * 9, np.zeros((3, 3), np.int64), [5] * 9, "abc"],
             "class_names": [None, ["a"], "abc", 5, ["a", "a", "b"]],
             "positive": ["tumour", 5, -1, 1.5, None]}),
    "hrlib.analysis.errors.breakdown": Case(
        valid=lambda: {"preds": _PREDS, "labels": _LABELS, "groups": list("ABABABABA")},
        bad={"preds": [None, [0.5] * 9, np.zeros((3, 3), np.int64), [0, 1], "abc"], "labels": [None, [0.5] * 9, "abc"],
             "groups": [None, list("AB"), 5, "ABABABABA", np.zeros((9, 2))],
             "order": [5, ["A"], "AB"]}),
    "hrlib.analysis.errors.size_bucket_labels": Case(
        valid=lambda: {"edges": (8, 16, 32)},
        bad={"edges": [None, (), (16, 8), (-1, 4), (8, np.nan), "abc", 8]}),
    "hrlib.analysis.errors.size_bucket": Case(
        valid=lambda: {"boxes": np.array([[0, 0, 7.9, 3]]), "edges": (8, 16, 32)},
        bad={"boxes": ["abc", np.zeros(3), np.zeros((2, 5)), np.full((1, 4), np.nan), [[0, 0, 1]], 5],
             "edges": [None, (), (16, 8), "abc"]}),
    "hrlib.analysis.failures.FailureSet.select": Case(
        fn=lambda **kw: __import__("hrlib.analysis.failures", fromlist=["FailureSet"]).FailureSet.select(**kw),
        valid=lambda: {"ids": np.arange(9), "preds": _PREDS, "labels": _LABELS, "max_cases": 4},
        bad={"ids": [None, [0] * 9, np.arange(3), np.zeros(9), "abc"], "preds": _BAD_CLASSES,
             "labels": [None, [5] * 9, "abc"], "max_cases": [0, 1.5, None, "3"],
             "dataset": ["slides", 5], "class_names": [None, ["a"], "abc"], "meta": ["x", 5, [1, 2]]}),
    "hrlib.analysis.failures.FailureSet.load": Case(
        fn=lambda **kw: __import__("hrlib.analysis.failures", fromlist=["FailureSet"]).FailureSet.load(**kw),
        valid=lambda: {"path": _failure_set().save(_TMP / "failures.json")},
        bad={"path": [None, 5, _TMP / "nothing.json", _TMP]}),
    "hrlib.analysis.failures.FailureSet.save": Case(
        fn=lambda **kw: _failure_set().save(**kw),
        valid=lambda: {"path": _TMP / "saved.json"},
        bad={"path": [None, 5, _TMP / "no_dir" / "f.json", _TMP]}),
    "hrlib.analysis.failures.FailureSet.render": Case(
        fn=lambda **kw: _failure_set().render(**kw),
        valid=lambda: {"case": __import__("hrlib.analysis.failures", fromlist=["FailureCase"]).FailureCase(
            0, 0, 0, 1, 32, "A")},
        bad={"case": [None, 3, "case"]}),
    "hrlib.analysis.failures.diff": Case(
        valid=lambda: {"failures": _failure_set(), "preds": np.arange(12) % 3, "labels": np.arange(12) % 3},
        bad={"failures": [None, [1, 2], "failures.json"],
             "preds": [None, np.arange(4) % 3, np.full(12, 7), np.zeros(12), "abc", np.zeros((12, 2), np.int64)],
             "labels": [np.arange(4) % 3, (np.arange(12) + 1) % 3, np.full(12, 7), "abc"],
             "ids": [np.arange(4), np.zeros(12), "abc", [0] * 12]}),
})

# ---- hrlib.augment.explore -----------------------------------------------------------------------------------------


def _closing(fn):
    """Call ``fn`` and close the matplotlib figure it returns (the audit makes many)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    def call(**kw):
        out = fn(**kw)
        if isinstance(out, Figure):
            plt.close(out)
        return out
    return call


def _explore(name):
    import hrlib.augment.explore as explore

    return getattr(explore, name)


_BAD_STRENGTHS = [None, {"twirl": 1.0}, {"rotate": -1}, {"rotate": 500}, {"rotate": np.nan}, [("rotate", 15)],
                  {"rotate": "15"}]
_BAD_SIZES = [0, -1.0, np.nan, None, "2"]
SPECS.update({
    "hrlib.augment.explore.strength_pipeline": Case(
        valid=lambda: {"strengths": {"rotate": 15, "cutout": 2}, "resolution": 32, "seed": 0},
        bad={"strengths": _BAD_STRENGTHS, "resolution": [4, 1.5, None, "32"], "seed": [-1, 1.5, None]}),
    "hrlib.augment.explore.strength_grid": Case(
        fn=_closing(lambda **kw: _explore("strength_grid")(**kw)),
        valid=lambda: {"image": image_u8(), "strengths": {"rotate": 15}, "n": 1, "seed": 0, "size": 1.0},
        bad={"image": [*BAD_IMAGES, image_u8(c=1), image_u8(c=None), image_u8().astype(np.float32)],
             "strengths": _BAD_STRENGTHS, "n": [0, 1.5, None], "seed": [-1, None], "size": _BAD_SIZES}),
    "hrlib.augment.explore.strength_sweep": Case(
        fn=_closing(lambda **kw: _explore("strength_sweep")(**kw)),
        valid=lambda: {"image": image_u8(), "levels": (0.0, 1.0), "seed": 0, "size": 1.0},
        bad={"image": [*BAD_IMAGES, image_u8(c=4)], "levels": [None, (), (2.0,), (np.nan,), 5, (-0.1, 0.5)],
             "seed": [-1, None], "size": _BAD_SIZES}),
    "hrlib.augment.explore.explorer": Case(
        fn=_closing(lambda **kw: _explore("explorer")(**kw)),
        valid=lambda: {"image": image_u8(), "n": 1, "seed": 0, "static": True},
        bad={"image": [*BAD_IMAGES, image_u8(c=None)], "n": [0, 1.5, None], "seed": [-1, None],
             "static": ["yes", 1.5]}),
    "hrlib.augment.explore.strength_stack": Case(
        valid=lambda: {"resolution": 32}, bad={"resolution": [4, 1.5, None, "32"]}),
})

# ---- hrlib.augment.monitor -----------------------------------------------------------------------------------------


def _monitor(**kw):
    from hrlib.augment.monitor import BatchStatsMonitor

    return BatchStatsMonitor(**kw)


def _batch(n=2, c=3, h=8, w=8):
    import torch

    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(0))


def _fed_monitor():
    m = _monitor(every=1, window=1, warn=False)
    for step in range(3):
        m.observe(step, _batch())
    return m


def _bad_batches():
    import torch

    return [None, np.zeros((2, 3, 8, 8), np.float32), torch.zeros(3, 8, 8), torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
            torch.zeros(2, 3, 1, 8), torch.zeros(0, 3, 8, 8), torch.full((2, 3, 8, 8), float("nan"))]


EXEMPT["hrlib.augment.monitor.StatsFlag"] = "result record appended to BatchStatsMonitor.flags, not built by users"
SPECS.update({
    "hrlib.augment.monitor.BatchStatsMonitor": Case(
        valid=lambda: {"every": 2, "window": 3, "drop": 0.5, "rise": 2.0, "shift": 3.0, "warn": False},
        bad={"every": [0, 1.5, None], "window": [0, "5"], "drop": [0.0, 1.0, np.nan, None], "rise": [1.0, 0.5, "2"],
             "shift": [0.0, -1.0, np.inf], "warn": ["no", None, 2]}),
    "hrlib.augment.monitor.BatchStatsMonitor.observe": Case(
        fn=lambda **kw: _monitor(every=1, warn=False).observe(**kw),
        valid=lambda: {"step": 0, "x": _batch()},
        bad={"step": [-1, 1.5, None, "0"], "x": _bad_batches()}),
    "hrlib.augment.monitor.BatchStatsMonitor.watch": Case(
        fn=lambda **kw: list(_monitor(every=1, warn=False).watch(**kw)),
        valid=lambda: {"loader": [(_batch(), 0), _batch()], "start": 0},
        bad={"loader": [None, 5], "start": [-1, 0.5, None]}),
    "hrlib.augment.monitor.BatchStatsMonitor.plot": Case(
        fn=_closing(lambda **kw: _fed_monitor().plot(**kw)),
        valid=lambda: {"ax": None},
        bad={"ax": ["axes", 5, [], [None]]}),
})

# ---- hrlib.augment.presets -----------------------------------------------------------------------------------------


def _presets(name):
    import hrlib.augment.presets as presets

    return getattr(presets, name)


def _xray_sets():
    from torch.utils.data import Subset

    from hrlib.data.synth import SynthDataset

    return Subset(SynthDataset("xray", 4, 32, channels=1), range(4)), Subset(SynthDataset("xray", 2, 32, seed=1,
                                                                                           channels=1), range(2))


def _train_and_evaluate_kwargs():
    train_set, val_set = _xray_sets()
    preset = _presets("preset")
    return {"train_set": train_set, "val_set": val_set, "transform": preset("xray", 32, mean=(0.4,), std=(0.2,)),
            "val_transform": preset("xray", 32, train=False, mean=(0.4,), std=(0.2,)), "resolution": 32,
            "num_epochs": 1, "num_classes": 2, "in_channels": 1, "widths": (4, 8), "batch_size": 4, "lr": 3e-3,
            "seed": 0}


_BAD_FILLS = ["white", np.nan, None, (0, np.nan, 0), [], [[0, 0]]]
_BAD_STATS = [None, (), (np.nan, 0.5, 0.5), "abc", 0.5, (0.5, 0.5)]
SPECS.update({
    "hrlib.augment.presets.imagenet_stats": Case(
        valid=lambda: {"channels": 1}, bad={"channels": [2, 0, 1.5, None, "3"]}),
    "hrlib.augment.presets.dataset_stats": Case(
        valid=lambda: {"images": [image_u8(), image_u8(8, 12, seed=1)], "max_value": 255.0},
        bad={"images": [None, 5, [], [np.zeros(5)], [np.full((4, 4, 3), np.nan)], [image_u8(), image_u8(c=1)],
                        [np.array([["a"]])], [None]],
             "max_value": [0, -1, np.nan, None, "255"]}),
    "hrlib.augment.presets.resize_steps": Case(
        valid=lambda: {"size": 32, "resize": "letterbox", "fill": 0},
        bad={"size": [0, 1.5, None], "resize": ["crop", None, 3], "fill": _BAD_FILLS}),
    "hrlib.augment.presets.letterbox": Case(
        valid=lambda: {"image": image_u8(16, 24), "size": 32, "fill": (255, 0, 0)},
        bad={"image": BAD_IMAGES, "size": [0, 1.5, None], "fill": [*_BAD_FILLS, (255, 0)]}),
    "hrlib.augment.presets.preset": Case(
        valid=lambda: {"domain": "pathology", "resolution": 32, "seed": 0},
        bad={"domain": ["satellite", None, 3], "resolution": [0, 32.0, None], "train": ["yes", None],
             "mean": _BAD_STATS, "std": [(0.0, 0.2, 0.2), (-1.0, 1.0, 1.0), None, (np.nan,) * 3, (0.2,)],
             "rotation": ["any", 15], "rotation_limit": [-1, 90, np.nan, None], "flips": ["up", True],
             "resize": ["crop", 1], "brightness_contrast": [-0.1, 1.5, np.nan], "hed_strength": [-1.0, np.nan, None],
             "fill": [-1, 300, np.nan, "white"], "seed": [-1, 1.5, "0"]}),
    "hrlib.augment.presets.train_and_evaluate": Case(
        valid=_train_and_evaluate_kwargs,
        bad={"train_set": [None, [1, 2], "data"], "val_set": [None, 5], "transform": [None, "preset"],
             "val_transform": [None, 3], "resolution": [0, 1.5], "num_epochs": [0, 1.5], "num_classes": [1, 2.0],
             "in_channels": [0, 3.0], "widths": [(), (0, 8), "8", None], "batch_size": [0, 1.5],
             "lr": [0, -1.0, np.nan], "seed": [-1, 0.5]}),
})

# ---- hrlib.augment.spectral ----------------------------------------------------------------------------------------


def _bands(h=8, w=8, b=4):
    return np.random.default_rng(0).random((h, w, b)).astype(np.float32)


_BAD_BANDS = [*BAD_IMAGES, image_u8(c=None), np.zeros((8, 8, 4), np.int32), np.zeros((8, 8, 0), np.float32)]
SPECS.update({
    "hrlib.augment.spectral.band_noise": Case(
        valid=lambda: {"image": _bands(), "sigma": 0.05, "mode": "shared", "rng": np.random.default_rng(0),
                       "bands": 4, "scale": (1.0, 1.0, 0.5, 0.5), "clip": True},
        bad={"image": _BAD_BANDS, "sigma": [-0.1, np.nan, None, "0.1"], "mode": ["gaussian", None],
             "rng": [None, 0, np.random.RandomState(0)], "bands": [3, 0, 2.5],
             "scale": [(1.0, 1.0), (1.0, np.nan, 1.0, 1.0), "abcd", ("a", "b", "c", "d")], "clip": ["yes", None]}),
    "hrlib.augment.spectral.normalized_difference": Case(
        valid=lambda: {"image": _bands(), "a": 3, "b": 2, "eps": 1e-6},
        bad={"image": _BAD_BANDS, "a": [4, -5, 1.5, None, True], "b": [7, "2"], "eps": [0, -1, np.nan, None]}),
    "hrlib.augment.spectral.band_correlation": Case(
        valid=lambda: {"image": _bands()}, bad={"image": _BAD_BANDS}),
})

# ---- hrlib.augment.stain -------------------------------------------------------------------------------------------


def _stain(name):
    import hrlib.augment.stain as stain

    return getattr(stain, name)


_BAD_RGB = [*BAD_IMAGES, image_u8(c=1), image_u8(c=4), image_u8(c=None), image_u8().astype(np.float32)]
_BAD_TRIPLES = [np.nan, "a", (1.0, 2.0), None, [[1.0, 1.0, 1.0]]]
SPECS.update({
    "hrlib.augment.stain.hed_adjust": Case(
        valid=lambda: {"image": image_u8(), "alpha": 1.1, "beta": (0.0, 0.01, 0.0), "units": "paper",
                       "nonnegative": True},
        bad={"image": _BAD_RGB, "alpha": _BAD_TRIPLES, "beta": _BAD_TRIPLES, "units": ["od", None],
             "nonnegative": ["yes", None]}),
    "hrlib.augment.stain.hed_jitter": Case(
        valid=lambda: {"image": image_u8(), "sigma": 0.05, "bias": 0.05, "rng": np.random.default_rng(0)},
        bad={"image": _BAD_RGB, "sigma": [-0.1, 1.0, np.nan, None], "bias": [-0.1, np.inf, "0.05"],
             "rng": [None, 0], "units": ["od", 1], "nonnegative": ["no", 2]}),
    "hrlib.augment.stain.paper_hed_jitter": Case(
        valid=lambda: {"image": image_u8(), "alpha": (1.0, 1.1, 1.0), "beta": (0.0, 0.05, 0.0), "background": 255.0},
        bad={"image": _BAD_RGB, "alpha": _BAD_TRIPLES, "beta": _BAD_TRIPLES, "background": [0, -1, np.nan, None]}),
    "hrlib.augment.stain.HEDJitter": Case(
        valid=lambda: {"sigma": 0.05, "bias": 0.05, "units": "paper", "nonnegative": True, "seed": 0, "p": 0.5},
        bad={"sigma": [-0.1, 1.0, np.nan], "bias": [-1, None], "units": ["od", None], "nonnegative": ["yes", 1.5],
             "seed": [-1, 1.5, "0"], "p": [-0.1, 1.5, np.nan, None]}),
    "hrlib.augment.stain.od_residual_map": Case(
        valid=lambda: {"image": image_u8(), "stains": "HE", "background": 255.0},
        bad={"image": _BAD_RGB, "stains": ["HX", "", "HH", None, 3], "background": [0, -1, np.nan, None]}),
    "hrlib.augment.stain.od_residual": Case(
        valid=lambda: {"image": image_u8(), "stains": "HED", "background": 240.0},
        bad={"image": _BAD_RGB, "stains": ["XYZ", None], "background": [0, np.inf, "255"]}),
    "hrlib.augment.stain.calibration_table": Case(
        valid=lambda: {"images": [image_u8(8, 8)], "strengths": (0.05,), "draws": 1, "seed": 0},
        bad={"images": [None, [], [image_u8(c=1)], image_u8(), "image.png"],
             "strengths": [None, (1.5,), (np.nan,), (), 0.05], "draws": [0, 1.5, None], "seed": [-1, 0.5, None]}),
})

# ---- hrlib.analysis.cam ----------------------------------------------------------------------------------------------


def _tiny_model(num_classes=3, in_channels=3):
    import torch

    from hrlib.models import DSConvNet

    torch.manual_seed(0)
    return DSConvNet(num_classes, in_channels, (4, 8))


def _x(n=2, c=3, s=16):
    import torch

    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(0))


def _bad_x():
    import torch

    return [None, np.zeros((2, 3, 16, 16), np.float32), torch.zeros(3, 16, 16), torch.zeros(2, 3, 16, 16,
            dtype=torch.uint8), torch.zeros(0, 3, 16, 16), torch.full((2, 3, 16, 16), float("nan"))]


def _cam_map(h=16, w=16):
    return np.random.default_rng(0).random((h, w)).astype(np.float32)


_BAD_CAMS = [None, "cam", np.zeros(16), np.zeros((2, 16, 16)), np.zeros((0, 16)), np.full((16, 16), np.nan),
             -np.ones((16, 16))]
_BAD_BOXES = ["boxes", np.zeros((2, 3)), np.array([[5.0, 5.0, 1.0, 1.0]]), np.array([[0, 0, np.nan, 4]]), 5]
_BAD_CLASS_IDX = [3, -1, 1.5, [0, 1, 2], "target", np.array([0.0, 1.0])]
EXEMPT["hrlib.analysis.heatmaps.CamScores"] = "result record returned by score_cams, not built by users"
SPECS.update({
    "hrlib.analysis.cam.grad_cam": Case(
        valid=lambda: {"model": _tiny_model(), "x": _x(), "class_idx": [0, 2], "layer": None},
        bad={"model": [None, "dsconvnet", lambda x: x], "x": _bad_x(), "class_idx": _BAD_CLASS_IDX,
             "layer": ["features", __import__("torch").nn.Conv2d(3, 4, 3)]}),
    "hrlib.analysis.cam.score_cam": Case(
        valid=lambda: {"model": _tiny_model(), "x": _x(), "class_idx": 1, "batch_size": 8, "top_k": 4},
        bad={"model": [None, "dsconvnet"], "x": _bad_x(), "class_idx": _BAD_CLASS_IDX,
             "layer": ["features", 3], "batch_size": [0, 1.5, None], "top_k": [0, 2.5, "4"]}),
    "hrlib.analysis.heatmaps.pointing_game": Case(
        valid=lambda: {"cam": _cam_map(), "boxes": np.array([[2.0, 2.0, 6.0, 6.0]]), "tolerance": 4.0},
        bad={"cam": _BAD_CAMS, "boxes": _BAD_BOXES, "tolerance": [-1.0, np.nan, None, "4"]}),
    "hrlib.analysis.heatmaps.energy_in_boxes": Case(
        valid=lambda: {"cam": _cam_map(), "boxes": np.array([[2.0, 2.0, 6.0, 6.0]])},
        bad={"cam": _BAD_CAMS, "boxes": _BAD_BOXES}),
    "hrlib.analysis.heatmaps.score_cams": Case(
        valid=lambda: {"cams": np.stack([_cam_map(), _cam_map()]), "boxes_list": [np.array([[2, 2, 6, 6]]), None],
                       "tolerance": 4.0},
        bad={"cams": [None, 5, np.zeros((2, 16)), [_cam_map(), "cam"], np.full((2, 16, 16), np.nan),
                      [_cam_map()]],
             "boxes_list": [None, 5, [None], [np.zeros((1, 3)), None], "ab"],
             "tolerance": [-1.0, np.nan, None]}),
    "hrlib.analysis.heatmaps.overlay": Case(
        valid=lambda: {"image": image_u8(), "cam": _cam_map(8, 8), "alpha": 0.45, "cmap": "jet"},
        bad={"image": [*BAD_IMAGES, image_u8(c=4), image_u8().astype(np.float32)], "cam": _BAD_CAMS,
             "alpha": [-0.1, 1.5, np.nan, None], "cmap": ["jets", None, 3]}),
    "hrlib.analysis.heatmaps.show_cams": Case(
        fn=_closing(lambda **kw: __import__("hrlib.analysis.heatmaps", fromlist=["show_cams"]).show_cams(**kw)),
        valid=lambda: {"images": [image_u8(), image_u8(seed=1)], "cams": [_cam_map(), _cam_map()],
                       "titles": ["a", "b"], "boxes": [np.array([[2, 2, 6, 6]]), None], "ncols": 2,
                       "alpha": 0.5, "cmap": "jet", "size": 1.0},
        bad={"images": [None, 5, [image_u8()], [image_u8(), None], [image_u8(), image_u8(c=4)]],
             "cams": [None, [_cam_map()], [_cam_map(), None], [_cam_map(), np.full((16, 16), np.nan)]],
             "titles": [["a"], 5, "ab", [None, 3]], "boxes": [[None], [np.zeros((1, 3)), None], 5],
             "ncols": [0, 1.5, None], "alpha": [2.0, None], "cmap": ["nope", None], "size": _BAD_SIZES}),
})

# ---- hrlib.domain.color --------------------------------------------------------------------------------------------


def _color(name):
    import hrlib.domain.color as color

    return getattr(color, name)


_STATS = ((0.5, 0.4, 0.6), (0.2, 0.2, 0.2))
_BAD_STATS_PAIR = [None, (1, 2), ((0.5,) * 3, (0.0,) * 3), ((0.5, 0.5), (0.2, 0.2)), ((np.nan,) * 3, (0.2,) * 3),
                   "stats"]
_BAD_RGB_LISTS = [None, 5, [], [image_u8(c=1)], [None], image_u8(), "image.png"]


def _slide_set():
    from hrlib.data.slides import SlideDataset

    return SlideDataset(4, 16, seed=0, sites=("A", "B"))


EXEMPT["hrlib.domain.color.LabReference"] = "result record returned by lab_reference, not built by users"
SPECS.update({
    "hrlib.domain.color.domain_stats": Case(
        valid=lambda: {"images": [image_u8(), image_u8(seed=1)]}, bad={"images": _BAD_RGB_LISTS}),
    "hrlib.domain.color.PerDomainNormalize": Case(
        valid=lambda: {"stats": {"A": _STATS}, "p": 1.0},
        bad={"stats": [None, {}, [("A", _STATS)], *({"A": s} for s in _BAD_STATS_PAIR)], "p": [-0.1, 1.5, None]}),
    "hrlib.domain.color.PerDomainNormalize.__call__": Case(
        fn=lambda **kw: _color("PerDomainNormalize")({"A": _STATS})(**kw),
        valid=lambda: {"image": image_u8(), "domain": "A"},
        bad={"domain": ["C", None, 3]}),
    "hrlib.domain.color.PerDomainDataset": Case(
        valid=lambda: {"dataset": _slide_set(), "stats": {"A": _STATS, "B": _STATS}, "reference": _STATS},
        bad={"dataset": [None, 5, "slides", [1, 2]], "stats": [None, {"A": _STATS}, {"A": _STATS, "B": (1, 2)}, 5],
             "reference": _BAD_STATS_PAIR, "domains": [["A"], 5, "AAAA", [["A"], ["B"], ["A"], ["B"]]]}),
    "hrlib.domain.color.lab_reference": Case(
        valid=lambda: {"images": [image_u8(8, 8)]}, bad={"images": _BAD_RGB_LISTS}),
    "hrlib.domain.color.lab_align": Case(
        valid=lambda: {"image": image_u8(8, 8), "reference": image_u8(8, 8, seed=1), "l_mode": "clahe",
                       "clip_limit": 0.01},
        bad={"image": [*BAD_IMAGES, image_u8(c=1)], "reference": [None, image_u8(c=1), "ref.png", [image_u8()]],
             "l_mode": ["equalize", None], "clip_limit": [0, 1.5, np.nan, None]}),
    "hrlib.domain.color.LabAlign": Case(
        valid=lambda: {"reference": image_u8(8, 8), "l_mode": "histogram", "p": 1.0},
        bad={"reference": [None, image_u8(c=4), 3], "l_mode": ["x", 1], "p": [2.0, None]}),
    "hrlib.domain.color.ReferenceCompose": Case(
        valid=lambda: {"transforms": [__import__("albumentations").NoOp()], "metadata": {"m": [image_u8()]},
                       "seed": 0},
        bad={"transforms": [None, 5, ["flip"]], "metadata": [None, "x", [1, 2], {3: []}], "seed": [-1, 1.5, "0"]}),
    "hrlib.domain.color.histogram_matching": Case(
        valid=lambda: {"reference_images": [image_u8(8, 8)], "blend_ratio": (0.5, 1.0), "p": 1.0, "seed": 0},
        bad={"reference_images": _BAD_RGB_LISTS, "blend_ratio": [(1.0, 0.5), (0, 2), None, (np.nan, 1.0), (0.5,)],
             "p": [-0.1, 1.5, None], "after": [None, 5, ["x"]], "seed": [-1, 1.5]}),
    "hrlib.domain.color.fda": Case(
        valid=lambda: {"reference_images": [image_u8(8, 8)], "beta_limit": (0.02, 0.05), "p": 1.0, "seed": 0},
        bad={"reference_images": _BAD_RGB_LISTS, "beta_limit": [(0.05, 0.02), 0.6, (0, 0.7), np.nan, None, "x"],
             "p": [2, None], "after": [5, [None]], "seed": [-1, "0"]}),
    "hrlib.domain.color.source_elastic": Case(
        valid=lambda: {"alpha": 50.0, "sigma": 5.0, "p": 0.5, "seed": 0},
        bad={"alpha": [-1, np.nan, None], "sigma": [0, -1, "5"], "p": [1.5, None], "seed": [-1, 1.5, "0"]}),
    "hrlib.domain.color.elastic_rms_displacement": Case(
        valid=lambda: {"alpha": 50.0, "sigma": 5.0, "size": 16, "draws": 1, "seed": 0},
        bad={"alpha": [-1, np.nan, None], "sigma": [0, -1, None], "size": [0, 1.5], "draws": [0, None],
             "seed": [-1, 1.5, None]}),
})

# ---- hrlib.domain.crops --------------------------------------------------------------------------------------------


def _eval_transform():
    import albumentations as A

    return A.Compose([A.Normalize(), A.ToTensorV2()])


EXEMPT["hrlib.domain.crops.CamCrop"] = "result record returned by cam_crops, not built by users"
SPECS.update({
    "hrlib.domain.crops.find_peaks": Case(
        valid=lambda: {"cam": _cam_map(), "k": 2, "min_distance": 2},
        bad={"cam": [None, "cam", np.zeros(16), np.zeros((0, 4)), np.full((4, 4), np.nan), np.zeros((2, 4, 4))],
             "k": [0, 1.5, None], "min_distance": [0, 2.5, "2"]}),
    "hrlib.domain.crops.crop_box": Case(
        valid=lambda: {"cx": 8.0, "cy": 4.5, "side": 6, "width": 16, "height": 12},
        bad={"cx": [np.nan, None, "8"], "cy": [np.inf, None], "side": [0, 6.5, None], "width": [0, 16.0],
             "height": [-1, None]}),
    "hrlib.domain.crops.cam_crops": Case(
        valid=lambda: {"model": _tiny_model(), "images": [image_u8(), image_u8(seed=1)], "transform": _eval_transform(),
                       "k": 2, "scale": (0.5, 1.0), "min_confidence": 0.0, "min_distance": 0.25, "seed": 0,
                       "batch_size": 2},
        bad={"model": [None, "model"], "images": [None, image_u8(), [image_u8(), None], [np.zeros((0, 4, 3))], "x"],
             "transform": [None, "normalize", lambda image: {"image": image}], "k": [0, 1.5],
             "scale": [(0.0, 1.0), (0.9, 0.5), (0.5, 1.5), 0.5, None, (np.nan, 1.0)],
             "min_confidence": [-0.1, 1.5, np.nan], "min_distance": [0, 1.5, None], "seed": [-1, 0.5],
             "cam_fn": [None, "grad_cam", lambda model, x, idx: np.zeros((5,))], "batch_size": [0, None]}),
})

# ---- hrlib.domain.style and hrlib.domain.norm ---------------------------------------------------------------------


def _norm(name):
    import hrlib.domain.norm as norm

    return getattr(norm, name)


def _style(name):
    import hrlib.domain.style as style

    return getattr(style, name)


def _t(*shape, seed=0):
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _bad_feats():
    import torch

    return [None, np.zeros((2, 4, 4, 4), np.float32), torch.zeros(4, 4, 4), torch.zeros(2, 4, 4, 4, dtype=torch.int64),
            torch.zeros(2, 4, 1, 1)]


def _tensor_list(*values):
    import torch

    return [torch.tensor(v) for v in values]


def _dsbn_model():
    from hrlib.domain.norm import convert_batchnorm

    return convert_batchnorm(_tiny_model(), "dsbn", num_domains=2)


_BAD_DOMAINS = [-1, 1.5, "A", *_tensor_list([0.0, 1.0], [[0, 1]], [True, False], [0, -1])]
_BAD_GENERATORS = [7, "seed", np.random.default_rng(0)]
_NO_FORWARD_CHECKS = "per-batch path: no validation and no device sync in forward (issue 16); the constructor checks"
EXEMPT.update({
    "hrlib.domain.style.MixStyle.forward": _NO_FORWARD_CHECKS,
    "hrlib.domain.style.AdaIN.forward": _NO_FORWARD_CHECKS + " (adain is the checked functional form)",
    "hrlib.domain.style.StyleSwap.forward": _NO_FORWARD_CHECKS,
    "hrlib.domain.norm.BatchInstanceNorm.forward": _NO_FORWARD_CHECKS,
    "hrlib.domain.norm.DomainSpecificBatchNorm.forward": _NO_FORWARD_CHECKS + " (set_domain checks the ids)",
})
SPECS.update({
    "hrlib.domain.style.mixstyle": Case(
        valid=lambda: {"x": _t(2, 4, 4, 4), "lam": _tensor_list([0.3, 0.9])[0], "partner": _tensor_list([1, 0])[0],
                       "eps": 1e-6},
        bad={"x": _bad_feats(), "lam": [None, 0.5, *_tensor_list([0.3], [0.3, 1.5], [0.3, float("nan")])],
             "partner": [None, [1, 0], *_tensor_list([1, 2], [1.0, 0.0], [1])], "eps": [0, -1, np.nan, None]}),
    "hrlib.domain.style.MixStyle": Case(
        valid=lambda: {"p": 0.5, "alpha": 0.1, "eps": 1e-6, "mix": "crossdomain",
                       "generator": __import__("torch").Generator().manual_seed(0)},
        bad={"p": [-0.1, 1.5, None], "alpha": [0, -1, np.nan], "eps": [0, "1e-6"], "mix": ["half", None],
             "generator": _BAD_GENERATORS}),
    "hrlib.domain.style.MixStyle.set_domain": Case(
        fn=lambda **kw: _style("MixStyle")(mix="crossdomain").set_domain(**kw),
        valid=lambda: {"domain": _tensor_list([0, 1, 1])[0]}, bad={"domain": _BAD_DOMAINS}),
    "hrlib.domain.style.MixStyle.partners": Case(
        fn=lambda **kw: _style("MixStyle")(mix="crossdomain").partners(**kw),
        valid=lambda: {"n": 4}, bad={"n": [0, -1, 1.5, None]}),
    "hrlib.domain.style.MixStyle.randomize": Case(
        fn=lambda **kw: _style("MixStyle")(p=1.0).randomize(**kw),
        valid=lambda: {"n": 4}, bad={"n": [0, -1, 1.5, None]}),
    "hrlib.domain.style.insert_mixstyle": Case(
        valid=lambda: {"model": _tiny_model(), "stages": (0,), "p": 0.5},
        bad={"model": [None, __import__("torch").nn.Linear(2, 2)], "stages": [(), (1,), (-1,), 0, "0", (0.5,)],
             "p": [2.0, None], "mix": ["any"], "generator": [7]}),
    "hrlib.domain.style.adain": Case(
        valid=lambda: {"content": _t(2, 4, 4, 4), "style": _t(1, 4, 8, 8, seed=1), "eps": 1e-5},
        bad={"content": _bad_feats(), "style": [*_bad_feats(), _t(2, 3, 4, 4), _t(3, 4, 4, 4)],
             "eps": [0, -1, np.nan, None]}),
    "hrlib.domain.style.AdaIN": Case(valid=lambda: {"eps": 1e-5}, bad={"eps": [0, -1e-5, np.inf, "1e-5"]}),
    "hrlib.domain.style.StyleSwap": Case(
        valid=lambda: {"p": 0.5, "eps": 1e-5, "generator": __import__("torch").Generator().manual_seed(0)},
        bad={"p": [-0.1, 1.5, None], "eps": [0, np.nan], "generator": _BAD_GENERATORS}),
    "hrlib.domain.norm.BatchInstanceNorm": Case(
        valid=lambda: {"num_features": 4, "eps": 1e-5, "momentum": None, "track_running_stats": True},
        bad={"num_features": [0, 4.0, None], "eps": [0, np.nan], "momentum": [-0.1, 1.5, "0.1"],
             "track_running_stats": ["yes", None]}),
    "hrlib.domain.norm.clip_gates_": Case(
        valid=lambda: {"model": _norm("BatchInstanceNorm")(4)}, bad={"model": [None, "model", [1]]}),
    "hrlib.domain.norm.DomainSpecificBatchNorm": Case(
        valid=lambda: {"num_features": 4, "num_domains": 2, "eps": 1e-5, "momentum": 0.1, "affine": True},
        bad={"num_features": [0, None], "num_domains": [0, 2.0, None], "eps": [0, None], "momentum": [2.0, np.nan],
             "affine": ["no", None]}),
    "hrlib.domain.norm.DomainSpecificBatchNorm.from_batchnorm": Case(
        fn=lambda **kw: _norm("DomainSpecificBatchNorm").from_batchnorm(**kw),
        valid=lambda: {"bn": __import__("torch").nn.BatchNorm2d(4), "num_domains": 2},
        bad={"bn": [None, __import__("torch").nn.Linear(2, 2), "bn"], "num_domains": [0, 1.5]}),
    "hrlib.domain.norm.DomainSpecificBatchNorm.set_domain": Case(
        fn=lambda **kw: _norm("DomainSpecificBatchNorm")(4, 2).set_domain(**kw),
        valid=lambda: {"domain": 1}, bad={"domain": [*_BAD_DOMAINS, 2, *_tensor_list([0, 2])]}),
    "hrlib.domain.norm.convert_batchnorm": Case(
        valid=lambda: {"model": _tiny_model(), "kind": "dsbn", "num_domains": 2},
        bad={"model": [None, "model", __import__("torch").nn.Linear(2, 2)], "kind": ["in", None],
             "num_domains": [0, 1.5, None]}),
    "hrlib.domain.norm.set_domain": Case(
        valid=lambda: {"model": _dsbn_model(), "domain": 1},
        bad={"model": [None, __import__("torch").nn.Linear(2, 2)], "domain": [*_BAD_DOMAINS, 2]}),
    "hrlib.domain.norm.domain_batchnorm_summary": Case(
        valid=lambda: {"model": _dsbn_model()}, bad={"model": [None, "model", _tiny_model()]}),
})

# ---- hrlib.domain.shift, tensor_fit, experiment ----------------------------------------------------------------

_SHIFT: dict[str, object] = {}


def _shift_data():
    from hrlib.domain.shift import make_shift

    if "data" not in _SHIFT:
        _SHIFT["data"] = make_shift(32, n_source=3, n_pool=3, n_test=3, variants=1)
    return _SHIFT["data"]


def _shift_tensors(n=4):
    import torch

    return _t(n, 3, 16, 16), torch.arange(n) % 3


def _result(technique="source only", seed=0, acc=0.5):
    from hrlib.domain.experiment import RunResult

    return RunResult(technique, seed, acc, 1.0)


EXEMPT.update({
    "hrlib.domain.shift.ShiftData": "data record returned by make_shift (audited), not built by users",
    "hrlib.domain.experiment.RunResult": "result record returned by run / run_table, not built by users",
})
SPECS.update({
    "hrlib.domain.shift.make_shift": Case(
        valid=lambda: {"size": 32, "n_source": 1, "n_pool": 1, "n_test": 1, "source": ("A",), "target": "B",
                       "seed": 0, "target_frac": 0.1, "variants": 1},
        bad={"size": [16, 32.0, None], "n_source": [0, 1.5], "n_pool": [0, None], "n_test": [-1, "3"],
             "source": ["A", (), None, ("Z",), ("B",), 5], "target": ["Z", None, 3], "seed": [-1, 0.5],
             "target_frac": [0, -0.1, 1.5, np.nan, None], "variants": [0, 1.5], "progress": ["tqdm", 5]}),
    "hrlib.domain.tensor_fit.fit_tensors": Case(
        valid=lambda: {"model": _tiny_model(), "x": _shift_tensors()[0], "y": _shift_tensors()[1], "num_epochs": 1,
                       "seed": 0, "batch_size": 2, "lr": 1e-3},
        bad={"model": [None, "model"], "x": [None, np.zeros((4, 3, 16, 16), np.float32), _t(4, 16, 16),
                                            _t(3, 3, 16, 16), _t(4, 3, 16, 16) * float("nan")],
             "y": [None, [0, 1, 2, 0], _t(4), *_tensor_list([0, 1, 2], [0, 1, 2, 5])], "num_epochs": [0, 1.5],
             "seed": [-1, None], "domains": [[0, 1, 0, 1], *_tensor_list([0, 1], [0.0, 1.0, 0.0, 1.0])],
             "style": ["target", _t(2, 3, 8, 8)], "batch_size": [0, 2.5], "lr": [0, -1, np.nan],
             "on_epoch": ["print", 5]}),
    "hrlib.domain.tensor_fit.accuracy": Case(
        valid=lambda: {"model": _tiny_model(), "x": _shift_tensors()[0], "y": _shift_tensors()[1]},
        bad={"model": [None, "model"], "x": [None, _t(4, 16, 16), _t(3, 3, 16, 16), np.zeros((4, 3, 16, 16))],
             "y": [None, _t(4), *_tensor_list([0, 1])], "domain": [-1, 1.5, "A"]}),
    "hrlib.domain.experiment.run": Case(
        valid=lambda: {"data": _shift_data(), "technique": "source only", "seed": 0, "num_epochs": 1,
                       "device": "cpu"},
        bad={"data": [None, "data"], "technique": ["magic", None], "seed": [-1, 0.5], "num_epochs": [0, 1.5],
             "num_finetune_epochs": [0, None], "device": ["gpu0", 5], "return_model": ["yes", None]}),
    "hrlib.domain.experiment.source_transform": Case(
        valid=lambda: {"data": _shift_data()}, bad={"data": [None, "data", 5]}),
    "hrlib.domain.experiment.run_table": Case(
        valid=lambda: {"data": _shift_data(), "techniques": ("source only",), "seeds": (0,), "num_workers": 1,
                       "num_epochs": 1, "device": "cpu"},
        bad={"data": [None, "data"], "techniques": ["source only", ("magic",), (), None], "seeds": [(-1,), (0.5,), 0,
             (), None], "num_workers": [0, 1.5], "progress": ["tqdm"], "keep_models": ["source only", ("magic",), 5],
             "num_epochs": [0]}),
    "hrlib.domain.experiment.transfer_curve": Case(
        valid=lambda: {"data": _shift_data(), "init": None, "n_labeled": 3, "num_epochs": 1, "seed": 0, "lr": 1e-3},
        bad={"data": [None, "data"], "init": ["model", 5], "n_labeled": [2, 10, 3.5], "num_epochs": [0, None],
             "seed": [-1, None], "lr": [0, np.nan, None]}),
    "hrlib.domain.experiment.gap_recovered": Case(
        valid=lambda: {"technique_accuracy": 0.6, "source_only": 0.5, "oracle": 0.9},
        bad={"technique_accuracy": [None, np.nan, "0.6"], "source_only": [None, np.inf],
             "oracle": [None, np.nan, [0.9]]}),
    "hrlib.domain.experiment.summarize": Case(
        valid=lambda: {"results": [_result(), _result("oracle", acc=0.9), _result(seed=1, acc=0.6)]},
        bad={"results": [None, 5, [1, 2], [None], "results"]}),
})

# ---- hrlib.domain.sync ---------------------------------------------------------------------------------------------

EXEMPT["hrlib.domain.sync.SyncDemo"] = "result record returned by syncbn_demo, not built by users"
SPECS["hrlib.domain.sync.syncbn_demo"] = Case(
    valid=lambda: {"batches": [_t(2, 4, 4, 4), _t(2, 4, 4, 4, seed=1)]},
    bad={"batches": [None, _t(2, 4, 4, 4), [_t(2, 4, 4, 4)], [_t(2, 4, 4, 4), None], [_t(2, 4, 4, 4), _t(2, 3, 4, 4)],
                     [_t(2, 4, 4, 4), _t(4, 4, 4)], [_t(2, 4, 4, 4), _t(0, 4, 4, 4)],
                     [_t(2, 4, 4, 4), _t(2, 4, 4, 4) * float("nan")],
                     [_t(2, 4, 4, 4), __import__("torch").zeros(2, 4, 4, 4, dtype=__import__("torch").int64)]]},
    run_valid=False, why="starts one process per batch (a few seconds); tests/unit covers the valid call")

# ---- hrlib.augment.qa ------------------------------------------------------------------------------------------------


def _qa(name):
    import hrlib.augment.qa as qa

    return getattr(qa, name)


def _annotations():
    from hrlib.data.slides import make_slide

    return _qa("annotations_from_slides")([make_slide(32, label=2, seed=s, target_frac=0.2) for s in range(3)])


def _ann(**fields):
    base = {"image_id": "a", "image_size": (16, 16), "boxes": np.array([[1.0, 1.0, 5.0, 5.0]]),
            "labels": np.array([0]), "masks": None}
    return _qa("Annotation")(**{**base, **fields})


_BAD_ANNOTATIONS = [None, "a.json", [None], [_ann(image_size=(0, 16))], [_ann(boxes=np.zeros((1, 3)))],
                    [_ann(labels=np.array([0.5]))], [_ann(masks=np.zeros((1, 16, 16), np.uint8))], [_ann(), _ann()],
                    [_ann(image_id=3)]]
EXEMPT.update({
    "hrlib.augment.qa.Annotation": "a plain record users fill; audit / plant_errors validate its fields, naming "
                           "annotations[k].<field> (audited there)",
    "hrlib.augment.qa.Finding": "result record held by a QAReport, not built by users",
    "hrlib.augment.qa.QAReport": "result record returned by audit, not built by users (QAReport.table is audited)",
})
SPECS.update({
    "hrlib.augment.qa.audit": Case(
        valid=lambda: {"annotations": _annotations(), "num_classes": 3, "duplicate_iou": 0.9,
                       "mask_tolerance_px": 2.0},
        bad={"annotations": _BAD_ANNOTATIONS, "num_classes": [0, 2.5, None], "duplicate_iou": [0, 1.5, np.nan],
             "mask_tolerance_px": [-1, np.inf, None]}),
    "hrlib.augment.qa.plant_errors": Case(
        valid=lambda: {"annotations": _annotations(), "kinds": ["reversed_box", "mask_shape"], "seed": 0,
                       "num_classes": 3},
        bad={"annotations": _BAD_ANNOTATIONS, "kinds": ["reversed_box", ["typo"], None, 5],
             "seed": [-1, 0.5, None], "num_classes": [0, 1.5]}),
    "hrlib.augment.qa.annotations_from_slides": Case(
        valid=lambda: {"slides": [__import__("hrlib.data.slides", fromlist=["make_slide"]).make_slide(16, seed=0)],
                       "image_ids": ["s0"]},
        bad={"slides": [None, 5, [None], "slides"], "image_ids": [["a", "b"], [3], "s", 5]}),
    "hrlib.augment.qa.QAReport.table": Case(
        fn=lambda **kw: _qa("QAReport")([_qa("Finding")("a", 0, "empty_box", "zero width")]).table(**kw),
        valid=lambda: {"max_rows": 5}, bad={"max_rows": [0, 1.5, None, "5"]}),
})

# ---- hrlib.data.synth ------------------------------------------------------------------------------------------------


def _synth(name):
    import hrlib.data.synth as synth

    return getattr(synth, name)


_BAD_GEN = {"size": [16, 32.0, "64", -1], "label": [-1, 9, 1.5, "crop"], "seed": [-1, 0.5, None]}
SPECS.update({
    "hrlib.data.synth.make_multispectral": Case(
        valid=lambda: {"size": 32, "label": 1, "seed": 0, "noise": 0.004},
        bad={**_BAD_GEN, "noise": [-0.1, 0.6, np.nan, None]}),
    "hrlib.data.synth.make_scratch": Case(
        valid=lambda: {"size": 32, "label": 2, "seed": 0, "grain": 1.0},
        bad={**_BAD_GEN, "grain": [-1, 11, np.nan, "1"]}),
    "hrlib.data.synth.make_xray": Case(valid=lambda: {"size": 32, "label": 0, "seed": 0}, bad=_BAD_GEN),
    "hrlib.data.documents.make_document": Case(
        valid=lambda: {"height": 32, "aspect": 2.0, "label": 1, "seed": 0, "aspect_range": (1.0, 2.0)},
        bad={"height": [16, 32.0, "32"], "label": [2, -1], "seed": [-1], "aspect": [0.1, 9, np.nan, "2"],
             "aspect_range": [(2.0, 1.0), (0.1, 2.0), 2.0, None, (np.nan, 2.0), (1.0, 2.0, 3.0)]}),
    "hrlib.data.synth.ndvi": Case(
        valid=lambda: {"image": _bands(), "red": 2, "nir": 3},
        bad={"image": [None, "x", np.zeros((8, 8)), np.zeros((8, 8, 4), bool), np.full((8, 8, 4), np.nan)],
             "red": [-1, 4, 1.5, None], "nir": [7, "3"]}),
    "hrlib.data.synth.SynthDataset": Case(
        valid=lambda: {"kind": "xray", "n": 2, "size": 32, "seed": 0, "channels": 3, "in_memory": True},
        bad={"kind": ["satellite", None], "n": [0, 1.5], "size": [16, 32.5], "seed": [-1], "channels": [2, 3.0, "3"],
             "transform": ["resize", 5], "in_memory": ["yes", None]}),
    "hrlib.data.synth.SynthDataset.sample": Case(
        fn=lambda **kw: _synth("SynthDataset")("xray", 2, 32).sample(**kw),
        valid=lambda: {"i": 1}, bad={"i": [2, -3, 1.5, None, "0"]}),
    "hrlib.data.synth.SynthDataset.__getitem__": Case(
        fn=lambda **kw: _synth("SynthDataset")("xray", 2, 32).__getitem__(**kw),
        valid=lambda: {"i": 0}, bad={"i": [2, 0.5, None]}),
    "hrlib.data.synth.SynthDataset.item_seed": Case(
        fn=lambda **kw: _synth("SynthDataset")("xray", 2, 32).item_seed(**kw),
        valid=lambda: {"i": 1}, bad={"i": [-1, 1.5, None]}),
})

# ---- hrlib.viz -----------------------------------------------------------------------------------------------------


def _viz(name):
    import hrlib.viz as viz

    return getattr(viz, name)


def _draw_boxes(**kw):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        return _viz("draw_boxes")(**{"ax": ax, **kw})
    finally:
        plt.close(fig)


_BAD_VIZ_IMAGES = [*BAD_IMAGES, image_u8(c=2), np.zeros((4, 4), object)]
SPECS.update({
    "hrlib.viz.crop_box": Case(
        valid=lambda: {"image": image_u8(), "box": (2, 2, 8, 6), "pad": 0.5},
        bad={"image": _BAD_VIZ_IMAGES, "box": [None, (1, 2, 3), "abcd", (0, 0, np.nan, 4)],
             "pad": [-1.0, np.nan, None]}),
    "hrlib.viz.format_table": Case(
        valid=lambda: {"headers": ("a", "b"), "rows": [(1, 0.5), ("x", 2.0)], "floatfmt": ".2f"},
        bad={"headers": [None, "ab", 5], "rows": [None, [(1,)], [5], "ab"], "floatfmt": ["zz", 3, None]}),
    "hrlib.viz.mean_spread": Case(
        valid=lambda: {"values": [0.9, 0.92], "fmt": ".2f"},
        bad={"values": [None, [], "abc", [[0.1, 0.2], [0.3, 0.4]], ["a", "b"]], "fmt": ["zz", None]}),
    "hrlib.viz.draw_boxes": Case(
        fn=lambda **kw: _draw_boxes(**kw) if "ax" not in kw else _viz("draw_boxes")(**kw),
        valid=lambda: {"boxes": np.array([[1, 1, 4, 4]]), "color": "lime", "label": "target", "linewidth": 1.5},
        bad={"ax": [None, "axes"], "boxes": ["abc", np.zeros((2, 3)), np.array([[0, 0, np.nan, 1]])],
             "color": ["notacolor", 5], "label": [5], "linewidth": [-1, np.nan, None]}),
    "hrlib.viz.show_images": Case(
        fn=_closing(lambda **kw: _viz("show_images")(**kw)),
        valid=lambda: {"images": [image_u8(), image_u8(c=None)], "titles": ["a", "b"], "ncols": 2,
                       "boxes": [np.array([[1, 1, 4, 4]]), None], "size": 1.0, "suptitle": "x"},
        bad={"images": [None, [], [None], [image_u8(c=2)], "image.png", [np.full((4, 4), np.nan)]],
             "titles": [["a"], "ab", 5], "ncols": [0, 1.5, None], "boxes": [[None], 5],
             "box_color": ["notacolor"], "size": _BAD_SIZES, "cmap": ["nope", 3]}),
    "hrlib.viz.compare_resolutions": Case(
        fn=_closing(lambda **kw: _viz("compare_resolutions")(**kw)),
        valid=lambda: {"image": image_u8(), "factors": (1, 2), "box": (2, 2, 8, 8), "pad": 0.5, "size": 1.0},
        bad={"image": _BAD_VIZ_IMAGES, "factors": [(), (0,), (1.5,), None, 2, "12"],
             "box": [(1, 2), "abcd", (0, 0, np.inf, 1)], "pad": [-1, np.nan], "size": _BAD_SIZES}),
    "hrlib.viz.resolution_slider": Case(
        fn=_closing(lambda **kw: _viz("resolution_slider")(**kw)),
        valid=lambda: {"image": image_u8(), "factors": (1, 2), "static": True},
        bad={"image": _BAD_VIZ_IMAGES, "factors": [(), (0,), (2.5,), None], "box": [(1, 2)], "pad": [-1.0],
             "static": ["yes", 1]}),
    "hrlib.viz.interactive_widgets": Case(valid=lambda: {"static": True}, bad={"static": ["yes", 1]}),
})
