"""hrlib._checks: the shared argument validation behind every public function's error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hrlib._checks import check_float, check_int


def test_check_int():
    assert check_int("n", np.int64(3)) == 3 and isinstance(check_int("n", np.int64(3)), int)
    with pytest.raises(TypeError, match=r"^n must be an int >= 1, got bool True$"):
        check_int("n", True)
    with pytest.raises(ValueError, match=r"^n must be an int >= 0, got -1$"):
        check_int("n", -1, 0)


@pytest.mark.parametrize(("kwargs", "value", "message"), [
    ({"low": 0.0, "low_open": True}, 0.0, r"^x must be a finite float > 0, got 0.0$"),
    ({"low": 0.0}, -1, r"^x must be a finite float >= 0, got -1$"),
    ({"high": 1.0, "high_open": True}, 1.0, r"^x must be a finite float < 1, got 1.0$"),
    ({"low": 0.0, "high": 0.25, "low_open": True, "hint": "a fraction"}, 0.5,
     r"^x must be a finite float in \(0, 0.25\] \(a fraction\), got 0.5$"),
    ({}, math.nan, r"^x must be a finite float, got nan$"),
])
def test_check_float_rejects_with_the_interval(kwargs, value, message):
    with pytest.raises(ValueError, match=message):
        check_float("x", value, **kwargs)


def test_check_float_accepts_and_types():
    assert check_float("x", np.float32(0.5), 0.0, 1.0) == 0.5 and check_float("x", 2, 0.0) == 2.0
    with pytest.raises(TypeError, match="^x must be a finite float"):
        check_float("x", "0.5", 0.0)
    with pytest.raises(TypeError, match="got bool"):
        check_float("x", False)
