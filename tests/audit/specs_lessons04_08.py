"""Audit cases of the public functions added for lessons 04-08's per-item scores (see ``harness.py``)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import Case  # noqa: E402, F401

EXEMPT: dict[str, str] = {}


def _model():
    from hrlib.models import DSConvNet

    return DSConvNet(3, 3, (4, 8))


def _x(*shape):
    import torch

    return torch.randn(*shape)


SPECS: dict[str, Case] = {
    "hrlib.domain.tensor_fit.predict": Case(
        valid=lambda: {"model": _model(), "x": _x(4, 3, 16, 16)},
        bad={"model": [None, "model"], "x": [None, _x(4, 16, 16), np.zeros((4, 3, 16, 16))],
             "domain": [-1, 1.5, "A"]}),
}
