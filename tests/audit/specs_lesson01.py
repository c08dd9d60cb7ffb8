"""Audit cases added with lesson 01's re-measurement: ``Schedule.target_px`` and ``three_stage``'s final policy
(see ``harness.py``)."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import Case  # noqa: E402

SPECS: dict[str, Case] = {}
EXEMPT: dict[str, str] = {}


def _schedule():
    from hrlib.staging import Schedule

    return Schedule.three_stage(64, 5, fractions=(0.5, 0.75, 1.0), final_policy="finetune_local")


SPECS.update({
    "hrlib.staging.schedule.Schedule.target_px": Case(
        fn=lambda **kw: _schedule().target_px(**kw), valid=lambda: {"target_frac": 0.04},
        bad={"target_frac": [0, -0.1, 1.5, float("nan"), None, "0.04"]}),
})
