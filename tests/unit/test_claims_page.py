"""CLAIMS.md: generated from the executed lessons, in sync with them, and covering every claim of the course."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrlib.evidence import Claim, compare, exact, verdict_table
from hrlib.evidence.claims import CLAIMS, collect, main, render
from hrlib.evidence.table import MIME_TYPE

ROOT = Path(__file__).resolve().parents[2]


def _notebook(path: Path, table) -> None:
    bundle = table._repr_mimebundle_()
    out = {"output_type": "display_data", "metadata": {}, "data": {k: v for k, v in bundle.items()}}
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x", "outputs": [out]}], "metadata": {},
                                "nbformat": 4, "nbformat_minor": 5}))


def test_claims_page_is_in_sync_with_the_lessons():
    """Fails when a lesson's stored verdicts changed without `make claims`."""
    assert main(["--lessons", str(ROOT / "lessons"), "--out", str(ROOT / "CLAIMS.md"), "--check"]) == 0


def test_every_claim_of_the_course_is_measured_by_a_lesson():
    records = collect(ROOT / "lessons")
    measured = {str(r["id"]).rstrip("abcdefghij") for r in records}
    assert set(CLAIMS) <= measured, f"claims without a verdict: {sorted(set(CLAIMS) - measured)}"
    for r in records:  # each claim in its own lesson; the capstone re-tests claims of any lesson
        if "capstone" not in str(r["notebook"]):
            assert r["notebook"][:2] in CLAIMS[str(r["id"]).rstrip("abcdefghij")][0], f"{r['id']} in {r['notebook']}"


def test_readme_links_the_claims_page_not_internal_notes():
    readme = (ROOT / "README.md").read_text()
    assert "(CLAIMS.md)" in readme
    assert "design notes" not in readme and "ledger" not in readme.lower()


def test_page_lists_all_claims_and_catches_a_stale_page(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    v = Claim("C21a", "GAP head: parameters do not grow", "parameters", margin=0.5).judge(exact(10, 10))
    w = Claim("C1", "thumbnails lose accuracy", "accuracy").judge(compare([[0.0, 1.0, 0.0]] * 3, [[1.0, 1.0, 1.0]] * 3,
                                                                          n_boot=200))
    _notebook(lessons / "00_x.ipynb", verdict_table([v], "00"))
    _notebook(lessons / "01_y.ipynb", verdict_table([w], "01"))
    page = render(collect(lessons))
    for cid in CLAIMS:
        assert f"| {cid} |" in page
    assert "**refuted**" in page and "not measured" in page and "C21a" in page
    out = tmp_path / "CLAIMS.md"
    assert main(["--lessons", str(lessons), "--out", str(out)]) == 0
    assert main(["--lessons", str(lessons), "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("refuted", "supported"))
    assert main(["--lessons", str(lessons), "--out", str(out), "--check"]) == 1


def test_unknown_claim_id_is_refused(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    v = Claim("C99", "not a claim of the course", "x").judge(exact(1, 2))
    _notebook(lessons / "03_z.ipynb", verdict_table([v], "03"))
    with pytest.raises(ValueError, match="C99"):
        collect(lessons)
    (lessons / "03_z.ipynb").write_text("{not json")
    with pytest.raises(ValueError, match="03_z.ipynb"):
        collect(lessons)
    assert MIME_TYPE.startswith("application/")
