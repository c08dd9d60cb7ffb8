"""Every lesson ends with a verdict table from hrlib.evidence, its claims declared before they are measured, and no
verdict written by hand or decided by a stopwatch (checked statically on the stored notebooks)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hrlib.evidence import VERDICTS
from hrlib.evidence.table import MIME_TYPE

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
HAND_WRITTEN = re.compile(r"\*\*(confirmed|not confirmed|supported|refuted|partly|qualified|inconclusive)", re.I)


def _code(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _tables(cells: list[dict]) -> list[tuple[int, dict]]:
    return [(i, out["data"][MIME_TYPE]) for i, c in enumerate(cells) for out in c.get("outputs", [])
            if MIME_TYPE in out.get("data", {})]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_ends_with_one_verdict_table_from_the_evidence_module(path):
    cells = _code(path)
    tables = _tables(cells)
    assert len(tables) == 1, f"{path.name} stores {len(tables)} verdict tables (expected one, at its end)"
    index, table = tables[0]
    assert index >= len(cells) - 2, f"{path.name}: the verdict table is not at the end (code cell {index})"
    assert table["lesson"] == path.name[:2]
    assert table["verdicts"] and all(v["verdict"] in VERDICTS for v in table["verdicts"])
    assert all(v["n"] != "" and v["effect_text"] for v in table["verdicts"])


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_claims_are_declared_before_they_are_measured_and_judged_by_the_rule(path):
    sources = ["".join(c["source"]) for c in _code(path)]
    declared = [i for i, s in enumerate(sources) if re.search(r"\bClaim\(", s)]
    measured = [i for i, s in enumerate(sources) if re.search(r"\b(compare|exact)\(", s)]
    assert declared, f"{path.name} declares no Claim"
    assert max(declared) < min(measured, default=len(sources)), \
        f"{path.name}: a Claim is declared after a measurement (cells {declared} vs {measured})"
    for i, s in enumerate(sources):
        assert not HAND_WRITTEN.search(s), f"{path.name} code cell {i} writes a verdict by hand"

