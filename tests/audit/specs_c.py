"""Audit cases of hrlib.staging and hrlib.augment.local, .mixup and .aligned (see ``harness.py``)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import BAD_IMAGES, Case, image_u8  # noqa: E402,F401

SPECS: dict[str, Case] = {}
EXEMPT: dict[str, str] = {}

_NAN = float("nan")
_BAD_STATS = [None, (0.5, 0.5), "abc", 0.5, (0.5, _NAN, 0.5), ("a", "b", "c"), (0.5, np.inf, 0.5)]
_BAD_STD = [*_BAD_STATS, (0.2, 0.0, 0.2), (0.2, -0.1, 0.2)]
_BAD_FLAGS = [None, "no", 2, 0.5]
_BAD_SIZES = [None, 0, -8, 1.5, "64", True]


# ---- hrlib.staging ---------------------------------------------------------------------------------------------

def _tiny_bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2))


def _schedule():
    from hrlib.staging import Schedule

    return Schedule.three_stage(32, 3)


def _val32():
    from hrlib.staging import val_transform

    return val_transform(32, source_size=32)


def _fixed():
    from hrlib.staging import FixedSchedule

    return FixedSchedule(_val32(), 32, 2)


def _images(n: int = 4, side: int = 32) -> list[np.ndarray]:
    return [image_u8(side, side, seed=i) for i in range(n)]


_BAD_IMAGE_LISTS = [None, [], "abc", image_u8(32, 32), [image_u8(32, 32, c=None)], [image_u8(32, 32, c=4)],
                    [image_u8(32, 32).astype(np.float32)], [np.full((32, 32, 3), _NAN, np.float32)]]

SPECS.update({
    "hrlib.staging.transforms.stage_transform": Case(
        valid=lambda: {"policy": "finetune_local", "resolution": 32, "source_size": 64, "with_boxes": True, "seed": 0},
        bad={"policy": [None, "bogus", 5, "Warmup"], "resolution": [*_BAD_SIZES, 100],
             "source_size": _BAD_SIZES, "mean": _BAD_STATS, "std": _BAD_STD, "with_boxes": _BAD_FLAGS,
             "seed": [-1, 1.5, "0"], "allow_upsample": _BAD_FLAGS, "occlusion": _BAD_FLAGS}),
    "hrlib.staging.transforms.val_transform": Case(
        valid=lambda: {"resolution": 32, "source_size": 64, "crop_fraction": 0.875},
        bad={"resolution": [*_BAD_SIZES, 100], "source_size": _BAD_SIZES, "mean": _BAD_STATS, "std": _BAD_STD,
             "crop_fraction": [0, 1.5, -0.5, _NAN, "0.9", None], "allow_upsample": _BAD_FLAGS}),
    "hrlib.staging.schedule.Stage": Case(
        valid=lambda: {"name": "warm", "resolution": 32, "num_epochs": 2, "policy": "warmup"},
        bad={"name": [None, "", 5], "resolution": _BAD_SIZES, "num_epochs": [0, -1, 1.5, None, "2"],
             "policy": ["bogus", 3]}),
    "hrlib.staging.schedule.Schedule": Case(
        valid=lambda: {"stages": [__import__("hrlib.staging", fromlist=["Stage"]).Stage("a", 32, 1, "warmup")],
                       "source_size": 64},
        bad={"stages": [None, [], "abc", [1], 5,
                        [__import__("hrlib.staging", fromlist=["Stage"]).Stage("a", 128, 1, "warmup")],
                        [__import__("hrlib.staging", fromlist=["Stage"]).Stage("a", 32, 1, None)]],
             "source_size": _BAD_SIZES, "allow_upsample": _BAD_FLAGS, "mean": _BAD_STATS, "std": _BAD_STD}),
    "hrlib.staging.schedule.Schedule.stage_at": Case(
        fn=lambda **kw: _schedule().stage_at(**kw), valid=lambda: {"epoch": 2},
        bad={"epoch": [-1, 3, 1.5, None, "0", True]}),
    "hrlib.staging.schedule.Schedule.resolution_at": Case(
        fn=lambda **kw: _schedule().resolution_at(**kw), valid=lambda: {"epoch": 0},
        bad={"epoch": [-1, 3, 1.5, None, "0"]}),
    "hrlib.staging.schedule.Schedule.train_transform": Case(
        fn=lambda **kw: _schedule().train_transform(**kw), valid=lambda: {"epoch": 0, "with_boxes": True, "seed": 1},
        bad={"epoch": [-1, 3, 1.5, None], "with_boxes": _BAD_FLAGS, "seed": [-1, 1.5, "0"],
             "occlusion": _BAD_FLAGS}),
    "hrlib.staging.schedule.Schedule.fixed": Case(
        fn=lambda **kw: __import__("hrlib.staging", fromlist=["Schedule"]).Schedule.fixed(**kw),
        valid=lambda: {"source_size": 64, "num_epochs": 2, "resolution": 32, "policy": "finetune"},
        bad={"source_size": _BAD_SIZES, "num_epochs": [0, -1, 1.5, None, "2"], "resolution": [0, 100, 1.5, "32"],
             "policy": [None, "bogus", 3]}),
    "hrlib.staging.schedule.Schedule.three_stage": Case(
        fn=lambda **kw: __import__("hrlib.staging", fromlist=["Schedule"]).Schedule.three_stage(**kw),
        valid=lambda: {"source_size": 64, "num_epochs": 5},
        bad={"source_size": _BAD_SIZES, "num_epochs": [2, 0, 1.5, None, "5"],
             "fractions": [None, (0.25, 0.5), (0.25, 0.5, 2.0), (0.25, _NAN, 1.0), (0.0, 0.5, 1.0), "abc"],
             "epoch_shares": [None, (0.4, 0.6), (0.4, _NAN, 0.2), (0.4, -0.4, 0.2), (0.4, np.inf, 0.2)]}),
    "hrlib.staging.schedule.Schedule.linear_ramp": Case(
        fn=lambda **kw: __import__("hrlib.staging", fromlist=["Schedule"]).Schedule.linear_ramp(**kw),
        valid=lambda: {"source_size": 64, "num_epochs": 4, "start": 0.25, "end": 1.0, "multiple": 16},
        bad={"source_size": _BAD_SIZES, "num_epochs": [0, 1.5, None], "start": [0, -0.5, _NAN, 1.5, "0.2", None],
             "end": [0.1, 1.5, _NAN, None], "multiple": [0, -16, 1.5, None], "policy": [None, "bogus"]}),
    "hrlib.staging.schedule.FixedSchedule": Case(
        valid=lambda: {"transform": _val32(), "resolution": 32, "num_epochs": 2, "name": "fixed"},
        bad={"transform": ["resize", None], "resolution": [0, 1.5, None], "num_epochs": [0, 1.5, None],
             "name": [None, 5, ""]}),
    "hrlib.staging.schedule.FixedSchedule.from_steps": Case(
        fn=lambda **kw: __import__("hrlib.staging", fromlist=["FixedSchedule"]).FixedSchedule.from_steps(**kw),
        valid=lambda: {"steps": [__import__("albumentations").HorizontalFlip(p=0.5)], "resolution": 32,
                       "num_epochs": 2},
        bad={"steps": [None, [1, 2], "rotate", [None]], "resolution": [0, 1.5, None], "num_epochs": [0, 2.5, None],
             "mean": [None, (), (_NAN, 0.5, 0.5), "abc", 0.5], "std": [(0.0, 0.2, 0.2), (-1.0, 1.0, 1.0), None],
             "name": [None, 3]}),
    "hrlib.staging.schedule.FixedSchedule.stage_at": Case(
        fn=lambda **kw: _fixed().stage_at(**kw), valid=lambda: {"epoch": 1}, bad={"epoch": [-1, 2, 1.5, None, "0"]}),
    "hrlib.staging.schedule.FixedSchedule.train_transform": Case(
        fn=lambda **kw: _fixed().train_transform(**kw), valid=lambda: {"epoch": 0}, bad={"epoch": [-1, 2, "0"]}),
    "hrlib.staging.fixres.recalibrate_bn": Case(
        valid=lambda: {"model": _tiny_bn_model(), "images": [torch.rand(2, 3, 8, 8) for _ in range(2)],
                       "num_batches": 2},
        bad={"model": [None, "resnet", lambda x: x],
             "images": [None, [], 5, [torch.rand(3, 8, 8)], [np.zeros((2, 3, 8, 8), np.float32)],
                        [torch.zeros(2, 3, 8, 8, dtype=torch.uint8)], [torch.full((2, 3, 8, 8), _NAN)]],
             "num_batches": [0, -1, 1.5, "2"]}),
    "hrlib.staging.fixres.evaluate_at_resolutions": Case(
        valid=lambda: {"model": _tiny_bn_model(), "images": _images(), "labels": [0, 1, 0, 1], "resolutions": [16, 32],
                       "source_size": 32, "batch_size": 2, "recalibrate": True},
        bad={"model": [None, "resnet"], "images": _BAD_IMAGE_LISTS,
             "labels": [None, [0, 1], [0, 1, 0, -1], [0, 1, 0, 1.5], "abcd", 5],
             "resolutions": [None, [], "abc", [0], [64], [16.5], 16],
             "source_size": _BAD_SIZES, "batch_size": [0, -1, 1.5, None], "recalibrate": _BAD_FLAGS,
             "calib_images": _BAD_IMAGE_LISTS[2:], "device": ["gpu7", "cuda:abc", "cuda:99"],
             "mean": _BAD_STATS, "std": _BAD_STD}),
})


# ---- hrlib.augment.local ---------------------------------------------------------------------------------------

def _mix():
    from hrlib.augment.mixup import mixing

    return mixing("mixup", 3)


def _alignment_args() -> dict:
    mask = np.zeros((32, 32), bool)
    mask[4:12, 6:20] = True
    import albumentations as A

    return {"image_size": 32, "boxes": np.array([[6, 4, 20, 12]], float), "mask": mask,
            "transform": A.HorizontalFlip(p=1.0), "repeats": 1}


_HOLES = {"num_holes_range": (2, 3), "hole_height_range": (0.1, 0.2), "hole_width_range": (0.1, 0.2), "p": 1.0}
_BAD_P = [-0.1, 1.5, None, _NAN]  # albumentations' pydantic schema coerces "0.5" to 0.5: not a bad value

EXEMPT.update({
    "hrlib.augment.aligned.Alignment": "result record returned by alignment_error, not built by users",
})
SPECS.update({
    "hrlib.augment.local.mean_fill": Case(
        valid=lambda: {"mean": (0.8, 0.5, 0.85)},
        bad={"mean": [None, "abc", (), (0.5, _NAN, 0.5), (0.5, 1.5, 0.5), (-0.1, 0.5, 0.5), 0.5, ("a", "b", "c")]}),
    "hrlib.augment.local.nonoverlapping_holes": Case(
        valid=lambda: {"height": 32, "width": 32, "num_holes": 3, "hole_size": (4, 4), "rng": np.random.default_rng(0)},
        bad={"height": _BAD_SIZES, "width": _BAD_SIZES, "num_holes": [-1, 1.5, None, 100],
             "hole_size": [None, (0, 3), (0.5, 2), (1.5, 0.2), (4,), "ab", (_NAN, 0.5), 4, (40, 40)],
             "rng": [None, 0, np.random.RandomState(0)], "max_tries": [0, -1, 1.5, None]}),
    "hrlib.augment.local.NonOverlappingCutout": Case(
        valid=lambda: dict(_HOLES),
        bad={"num_holes_range": [None, (3, 2), (-1, 2), "ab"], "hole_height_range": [None, (0.2, 0.1), (-1, 2)],
             "hole_width_range": [None, (0.2, 0.1), (-1, 2)], "p": _BAD_P, "fill": [None, "red", (1, 2, "x")]}),
    "hrlib.augment.local.Cutout": Case(
        valid=lambda: dict(_HOLES),
        bad={"num_holes_range": [None, (3, 2), (-1, 2)], "hole_height_range": [None, (0.2, 0.1)],
             "hole_width_range": [None, (0.2, 0.1)], "p": _BAD_P, "fill": [None, "red"]}),
    "hrlib.augment.local.GridMask": Case(
        valid=lambda: {"ratio": 0.3, "unit_size_range": (4, 8), "fill": 0, "p": 1.0},
        bad={"ratio": [0, 1.5, -0.3, None], "unit_size_range": [(8, 4), (0, 4), "ab"], "p": _BAD_P,
             "fill": [None, "red"]}),
    "hrlib.augment.local.RandomErasing": Case(
        valid=lambda: {"scale": (0.02, 0.1), "ratio": (0.5, 2.0), "fill": 0, "p": 1.0},
        bad={"scale": [(0.1, 0.02), (-0.1, 0.2), None, "ab"], "ratio": [(2.0, 0.5), (-1, 2), None], "p": _BAD_P,
             "fill": [None, "red"]}),
    "hrlib.augment.local.occlusion_policy": Case(
        valid=lambda: {"resolution": 32, "fill": (200, 130, 220), "strength": 0.5, "p": 0.5, "max_aspect": 2.0},
        bad={"resolution": [*_BAD_SIZES, 4], "gridmask": _BAD_FLAGS, "cutout": _BAD_FLAGS, "erasing": _BAD_FLAGS,
             "fill": ["red", (0, 300, 0), (), (0, _NAN, 0), -1, True],
             "strength": [-0.1, 1.5, _NAN, None, "1"], "p": _BAD_P, "max_aspect": [0.5, 0, _NAN, None, "2"]}),
    "hrlib.augment.mixup.mixing": Case(
        valid=lambda: {"kind": "both", "num_classes": 3, "alpha": 0.4, "generator": torch.Generator().manual_seed(0)},
        bad={"kind": [None, "mixmatch", 3], "num_classes": [1, 0, 2.5, None, "3"],
             "alpha": [0, -1, _NAN, None, "1"], "generator": [0, "seed", np.random.default_rng(0)]}),
    "hrlib.augment.mixup.BatchMix": Case(
        valid=lambda: {"kind": "cutmix", "num_classes": 3, "generator": torch.Generator().manual_seed(0)},
        bad={"kind": [None, "mixmatch"], "num_classes": [1, 2.5], "alpha": [0, _NAN], "generator": [0, "seed"]}),
    "hrlib.augment.mixup.BatchMix.draw": Case(
        fn=lambda **kw: _mix().draw(**kw), valid=lambda: {"height": 8, "width": 8},
        bad={"height": [0, 1.5, None], "width": [-1, "8"]}),
    "hrlib.augment.mixup.BatchMix.__call__": Case(
        fn=lambda **kw: _mix()(**kw), valid=lambda: {"x": torch.rand(4, 3, 8, 8), "y": torch.tensor([0, 1, 2, 0])},
        bad={"x": [None, torch.rand(4, 3, 8), np.zeros((4, 3, 8, 8), np.float32), torch.zeros(4, 3, 8, 8,
                                                                                               dtype=torch.uint8)],
             "y": [None, torch.tensor([0.0, 1.0, 2.0, 0.0]), torch.tensor([0, 1]), torch.tensor([0, 1, 3, 0]),
                   torch.tensor([0, 1, -1, 0]), [0, 1, 2, 0]]}),
    "hrlib.augment.aligned.aligned": Case(
        valid=lambda: {"transforms": [__import__("albumentations").HorizontalFlip(p=1.0)], "keypoints": True,
                       "seed": 0},
        bad={"transforms": [None, "abc", 5, [lambda image: image]], "boxes": _BAD_FLAGS, "masks": _BAD_FLAGS,
             "keypoints": _BAD_FLAGS, "seed": [-1, 1.5, "0"]}),
    "hrlib.augment.aligned.alignment_error": Case(
        valid=_alignment_args,
        bad={"image_size": [None, 0, (32,), "abc", 1.5, (32, 0), (32, 32, 3)],
             "boxes": [None, "abc", np.zeros((0, 4)), np.zeros(4), np.full((1, 4), _NAN), [[0, 0, 1]]],
             "mask": [None, np.zeros((16, 16), bool), np.zeros((2, 32, 32), bool), "abc",
                      np.full((32, 32), _NAN)],
             "transform": [None, "flip", [lambda image: image]], "repeats": [0, 1.5, None],
             "seed": [-1, 1.5, "0"]}),
})
