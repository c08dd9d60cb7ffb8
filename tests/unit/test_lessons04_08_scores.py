"""Per-item scores that lessons 04-08 hand to ``hrlib.evidence.compare``: lesson 04's harness returns each target
test image's correctness, and the transfer curve can return it per epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrlib.domain.experiment import run, transfer_curve
from hrlib.domain.shift import make_shift
from hrlib.domain.tensor_fit import accuracy, predict
from hrlib.models import DSConvNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return make_shift(32, n_source=6, n_pool=6, n_test=6, seed=3, variants=1)


def test_predict_agrees_with_accuracy_and_restores_the_mode():
    torch.manual_seed(0)
    model = DSConvNet(3, 3, (4, 8)).train()
    x, y = torch.randn(10, 3, 16, 16), torch.arange(10) % 3
    pred = predict(model, x)
    assert pred.shape == (10,) and pred.dtype == torch.int64 and model.training
    assert accuracy(model, x, y) == pytest.approx(float((pred == y).float().mean()))


def test_predict_rejects_a_bad_batch():
    with pytest.raises((TypeError, ValueError), match="x"):
        predict(DSConvNet(3, 3, (4, 8)), torch.randn(3, 16, 16))


def test_run_returns_one_score_per_test_image(tiny):
    result = run(tiny, "source only", 0, num_epochs=1, device="cpu")
    assert len(result.correct) == len(tiny.test) and set(result.correct) <= {0.0, 1.0}
    assert result.accuracy == pytest.approx(np.mean(result.correct))


def test_transfer_curve_per_item_matches_the_accuracy_curve(tiny):
    curve = transfer_curve(tiny, None, n_labeled=6, num_epochs=2, seed=0)
    items = transfer_curve(tiny, None, n_labeled=6, num_epochs=2, seed=0, per_item=True)
    assert len(items) == 2 and all(len(row) == len(tiny.test) for row in items)
    assert [float(np.mean(row)) for row in items] == pytest.approx(curve)
    with pytest.raises(TypeError, match="per_item"):
        transfer_curve(tiny, None, n_labeled=6, num_epochs=1, per_item="yes")
