"""Audit cases of hrlib.evidence (see ``harness.py``)."""

from __future__ import annotations

import pathlib
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import Case  # noqa: E402

_TMP = pathlib.Path(tempfile.mkdtemp(prefix="hrlib_audit_evidence_"))


def _scores(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((3, 40)) < 0.7).astype(float)


def _verdict():
    from hrlib.evidence import Claim, exact

    return Claim("C21", "parameters grow with resolution", "parameters", margin=1).judge(exact(10, 10))


def _lessons() -> pathlib.Path:
    folder = _TMP / "lessons"
    folder.mkdir(exist_ok=True)
    return folder


SPECS: dict[str, Case] = {
    "hrlib.evidence.compare.compare": Case(
        valid=lambda: {"a": _scores(0), "b": _scores(1), "seeds": [4, 5, 6], "n_boot": 200},
        bad={"a": [None, "x", np.zeros((3, 5)), [[np.nan] * 40] * 3],
             "b": [None, np.zeros((0, 3)), np.zeros((2, 2, 2))],
             "seeds": [[1, 2], ["a", "b", "c"], 3, "abc"], "level": [0, 1.5], "n_boot": [10, 2.5, True],
             "metric": ["", None], "arms": [("A",), ("A", ""), "AB"], "fmt": ["q", 3]}),
    "hrlib.evidence.compare.exact": Case(
        valid=lambda: {"a": 3, "b": 5.5},
        bad={"a": [None, "3", float("nan"), True], "b": [float("inf"), [1]], "metric": [""], "arms": [("A",)],
             "fmt": ["q"]}),
    "hrlib.evidence.compare.describe_times": Case(
        valid=lambda: {"seconds": [0.001, 0.002, 0.0015]},
        bad={"seconds": [[], [np.nan]], "unit": ["min", None]}),
    "hrlib.evidence.verdict.Claim": Case(
        valid=lambda: {"id": "C1", "text": "a claim", "measure": "accuracy", "direction": "less", "margin": 0.01},
        bad={"id": ["", None], "text": [" ", 3], "measure": [""], "direction": ["up", None],
             "margin": [-1, "0.1", True, float("nan")]}),
    "hrlib.evidence.table.verdict_table": Case(
        valid=lambda: {"verdicts": [_verdict()], "lesson": "00"},
        bad={"verdicts": [[], ["C1"], [_verdict(), _verdict()]], "lesson": ["0", "ab", 1, "001"]}),
    "hrlib.evidence.table.plot_per_seed": Case(
        valid=lambda: {"comparison": __import__("hrlib.evidence", fromlist=["x"]).compare(_scores(0), _scores(1),
                                                                                            n_boot=200)},
        bad={"comparison": [None, "C1", _scores(0)]}),
    "hrlib.evidence.claims.collect": Case(
        valid=lambda: {"lessons": _lessons()},
        bad={"lessons": [_TMP / "missing"]}),
}

EXEMPT: dict[str, str] = {
    "hrlib.evidence.compare.Comparison": "result record returned by compare/exact, not built by users",
    "hrlib.evidence.verdict.Verdict": "result record returned by Claim.judge",
    "hrlib.evidence.table.VerdictTable": "built by verdict_table (audited)",
    "hrlib.evidence.claims.render": "renders records returned by collect (audited); tested in tests/unit",
    "hrlib.evidence.claims.main": "command line; tested in tests/unit/test_claims_page.py",
}
