"""Audit cases of lesson 03's additions to hrlib.augment (see ``harness.py``)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import BAD_IMAGES, Case, image_u8  # noqa: E402

SPECS: dict[str, Case] = {}
EXEMPT: dict[str, str] = {}


def _fn(module, name):
    import importlib

    return getattr(importlib.import_module(f"hrlib.augment.{module}"), name)


def _bands(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 0.6, (8, 8, 4)).astype(np.float32)


def _score_arms_kwargs():
    from torch.utils.data import Subset

    from hrlib.data.synth import SynthDataset

    preset = _fn("presets", "preset")
    t, v = preset("xray", 32, mean=(0.4,), std=(0.2,)), preset("xray", 32, train=False, mean=(0.4,), std=(0.2,))
    return {"arms": {"a": (t, v)}, "train_set": Subset(SynthDataset("xray", 4, 32, channels=1), range(4)),
            "val_set": Subset(SynthDataset("xray", 2, 32, seed=1, channels=1), range(2)), "seeds": [0],
            "resolution": 32, "num_epochs": 1, "num_classes": 2, "widths": (4, 8), "batch_size": 4}


SPECS.update({
    "hrlib.augment.stain.tissue_weight": Case(
        valid=lambda: {"image": image_u8(), "tissue_od": 0.05},
        bad={"image": [*BAD_IMAGES, image_u8(c=1), image_u8().astype(np.float32)],
             "tissue_od": [0, -0.1, np.nan, None, "0.05"]}),
    "hrlib.augment.spectral.index_error": Case(
        valid=lambda: {"clean": _bands(), "noisy": _bands(1), "mask": np.ones((8, 8), bool), "a": 3, "b": 2},
        bad={"clean": [None, np.zeros(4), np.full((8, 8, 4), np.nan)], "noisy": [None, _bands()[:4]],
             "mask": [np.zeros((8, 8), bool), np.ones((4, 4), bool), np.ones((8, 8))], "a": [9, None],
             "b": [-9, 1.5]}),
    "hrlib.augment.presets.score_arms": Case(
        valid=_score_arms_kwargs,
        bad={"arms": [None, {}, {"a": 3}], "seeds": [[], [-1], "01", None], "progress": [3, "tqdm"],
             "workers": [0, -1, 1.5, None, "2"]}),
})
