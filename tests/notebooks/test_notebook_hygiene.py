"""What every lesson and solution notebook must have, checked statically (nbval executes them separately)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
NOTEBOOKS = LESSONS + SOLUTIONS + sorted((ROOT / "exercises").glob("*.ipynb"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
    assert LESSONS and SOLUTIONS
    assert [p.name for p in SOLUTIONS] == [p.name for p in sorted((ROOT / "exercises").glob("*.ipynb"))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_small_named_and_python3(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), "notebooks are named NN_topic.ipynb"
    assert path.stat().st_size < 3_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB (limit 3 MB)"
    nb = _load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stored_outputs_are_clean(path):
    """Stored outputs are what a learner sees first: no errors, no tracebacks, no machine paths."""
    nb = _load(path)
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell {i} of {path.name} stored an error"
            text = json.dumps(out)
            assert not re.search(r"/root/|/work/|/home/\w+/|/tmp/tmp", text), f"cell {i} shows a machine path"
    assert all(c.get("execution_count") is not None for c in nb["cells"] if c["cell_type"] == "code"), \
        f"{path.name} was not executed top to bottom before saving"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_cell_prints_profile_device_seed(path):
    first = _code(_load(path))[0]
    assert "describe(seed=" in first, "the first code cell prints hrlib.describe(seed=...)"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_structure(path):
    nb = _load(path)
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "## What we measured" in markdown and "## Try it" in markdown
    assert any(src.startswith("# NBVAL_CHECK_OUTPUT") for src in _code(nb)), "key numbers are checked by nbval"
    assert not any(re.search(r"[\"']cuda(:\d)?[\"']", src) for src in _code(nb)), "choose the device via hrlib"
    long_cells = [i for i, src in enumerate(_code(nb)) if len(src.splitlines()) > 30]
    assert not long_cells, f"code cells {long_cells} are long: move the logic into hrlib"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_check_themselves(path):
    code = _code(_load(path))
    checks = [src for src in code if re.search(r"^check\(\"\d\d\.", src, re.M)]
    assert len(checks) >= 2, "each exercise has at least two self-checked tasks"
    assert all(src.startswith("# NBVAL_CHECK_OUTPUT") for src in checks), "nbval verifies the PASS lines"
