"""Exercise 00, task 2: the check states how far the stage-output formula falls below real training memory."""

from __future__ import annotations

import re

import torch

from hrlib.exercises import check
from hrlib.exercises.ex00 import TRAINING_CASE, activation_bytes, training_activation_bytes
from hrlib.models import DSConvNet, count_cost


def _solution(widths: list[int], image_size: int, batch_size: int = 1, bytes_per_value: int = 4) -> int:
    return sum(batch_size * w * (image_size // 2 ** (i + 1)) ** 2 * bytes_per_value for i, w in enumerate(widths))


def test_pass_message_states_the_ratio_to_count_cost() -> None:
    result = check("00.activation_memory", _solution, quiet=True)
    assert result.passed
    widths, side = TRAINING_CASE
    measured = count_cost(DSConvNet(widths=widths), side).activation_bytes
    ratio = measured / _solution(list(widths), side)
    shown = re.search(r"keeps x([\d.]+) as much", result.message)
    assert shown is not None, result.message
    assert float(shown.group(1)) == round(ratio, 1)
    assert 3 < ratio < 20, "training keeps every layer's output, several times the stage outputs"


def test_training_bytes_match_the_formula_and_count_cost() -> None:
    stage_outputs, measured = training_activation_bytes((8, 16), 64)
    assert stage_outputs == activation_bytes((8, 16), 64) == _solution([8, 16], 64)
    assert measured == count_cost(DSConvNet(widths=(8, 16)), 64).activation_bytes
    assert measured > stage_outputs


def test_check_leaves_the_global_random_state_alone() -> None:
    training_activation_bytes.cache_clear()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check("00.activation_memory", _solution, quiet=True)
    assert torch.equal(torch.rand(3), expected)


def test_wrong_answer_gets_no_ratio() -> None:
    result = check("00.activation_memory", lambda w, s, b=1, n=4: _solution(w, s, b, n) + 1, quiet=True)
    assert not result.passed and "count_cost" not in result.message
