"""Properties of hrlib.evidence.compare: the interval holds the effect, shifts with it and flips with the arms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrlib.evidence import Claim, compare

tables = st.tuples(st.integers(1, 6), st.integers(1, 30), st.integers(0, 2**31 - 1))


def _arms(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    n_seeds, n_items, seed = shape
    rng = np.random.default_rng(seed)
    return (rng.random((n_seeds, n_items)) < 0.7).astype(float), rng.normal(0.7, 0.3, (n_seeds, n_items))


@settings(max_examples=40, deadline=None)
@given(tables)
def test_interval_holds_the_effect(shape):
    a, b = _arms(shape)
    c = compare(a, b, n_boot=200)
    assert c.low <= c.effect + 1e-12 and c.effect <= c.high + 1e-12
    assert c.effect == pytest.approx(b.mean() - a.mean())
    assert len(c.per_seed_effect) == shape[0]


@settings(max_examples=30, deadline=None)
@given(tables, st.floats(-5, 5))
def test_shifting_arm_b_shifts_effect_and_interval(shape, shift):
    a, b = _arms(shape)
    c, d = compare(a, b, n_boot=200, seed=1), compare(a, b + shift, n_boot=200, seed=1)
    assert d.effect == pytest.approx(c.effect + shift, abs=1e-9)
    assert d.low == pytest.approx(c.low + shift, abs=1e-9) and d.high == pytest.approx(c.high + shift, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(tables)
def test_swapping_the_arms_mirrors_effect_and_verdict(shape):
    a, b = _arms(shape)
    c, d = compare(a, b, n_boot=200, seed=2), compare(b, a, n_boot=200, seed=2)
    assert d.effect == pytest.approx(-c.effect)
    assert d.low == pytest.approx(-c.high, abs=1e-9) and d.high == pytest.approx(-c.low, abs=1e-9)
    up, down = Claim("C1", "B higher", "score"), Claim("C1", "B lower", "score", direction="less")
    assert up.judge(c).verdict == down.judge(d).verdict
