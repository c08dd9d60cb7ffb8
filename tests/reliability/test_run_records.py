"""Run records (``record_run``/``read_runs``) against a planted symlink, a cut-off last line and a full disk."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from limits import run_limited  # noqa: E402

from hrlib.analysis import read_runs, record_run  # noqa: E402

FINGERPRINT = "0" * 64


def _record(path: Path, lr: float) -> dict:
    return record_run(path, params={"lr": lr}, metrics={"acc": 0.5}, seed=0, dataset=FINGERPRINT, repo=path.parent)


def test_a_planted_symlink_is_refused_and_nothing_is_written_outside(tmp_path):
    out, outside = tmp_path / "run", tmp_path / "outside.jsonl"
    out.mkdir()
    outside.write_text("precious\n")
    (out / "runs.jsonl").symlink_to(outside)
    with pytest.raises(OSError, match="runs.jsonl"):
        _record(out / "runs.jsonl", 0.1)
    assert outside.read_text() == "precious\n"


def test_a_fifo_is_refused_without_hanging(tmp_path):
    import os

    os.mkfifo(tmp_path / "runs.jsonl")
    out = run_limited("""
        from hrlib.analysis import record_run
        record_run(path, params={}, metrics={}, seed=0, dataset="0" * 64, repo=folder)
    """, timeout=60, path=str(tmp_path / "runs.jsonl"), folder=str(tmp_path))
    assert out.status == "error" and out.error == "OSError" and "runs.jsonl" in out.message, out


def test_a_cut_off_last_line_is_moved_aside_and_the_log_stays_readable(tmp_path):
    log = tmp_path / "runs.jsonl"
    _record(log, 0.1)
    cut = b'{"timestamp": "2026-12-05T10:00:00+00:00", "seed": 0, "par'
    with open(log, "ab") as fh:
        fh.write(cut)
    with pytest.warns(RuntimeWarning, match="cut-off"):
        assert [r["params"]["lr"] for r in read_runs(log)] == [0.1]  # readable right after the crash
    with pytest.warns(RuntimeWarning, match="moved to"):
        _record(log, 0.2)
    assert [r["params"]["lr"] for r in read_runs(log)] == [0.1, 0.2]
    assert (tmp_path / "runs.jsonl.cut").read_bytes() == cut + b"\n"  # nothing lost


def test_a_full_disk_leaves_the_log_as_it_was(tmp_path):
    log = tmp_path / "runs.jsonl"
    _record(log, 0.1)
    before = log.read_bytes()
    out = run_limited("""
        import resource, signal
        from hrlib.analysis import record_run
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
        limit = len(open(path, "rb").read()) + 100  # room for part of a record, not all of it
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            record_run(path, params={"lr": 0.2}, metrics={}, seed=0, dataset="0" * 64, repo=folder)
        except OSError as e:
            return f"OSError: {e}"
        return "written"
    """, path=str(log), folder=str(tmp_path))
    assert out.status == "ok" and str(out.value).startswith("OSError"), out
    assert log.read_bytes() == before and len(read_runs(log)) == 1


def test_records_from_several_processes_are_whole_lines(tmp_path):
    log = tmp_path / "runs.jsonl"
    code = """
        from hrlib.analysis import record_run
        for i in range(20):
            record_run(path, params={"i": i, "pad": "x" * 5000}, metrics={}, seed=0, dataset="0" * 64, repo=folder)
    """
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda _: run_limited(code, path=str(log), folder=str(tmp_path)), range(3)))
    assert all(o.status == "ok" for o in outs), outs
    lines = log.read_text().splitlines()
    assert len(lines) == 60 and all(json.loads(line)["params"]["pad"] == "x" * 5000 for line in lines)
