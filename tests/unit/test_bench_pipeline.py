"""``python -m hrlib.bench pipeline`` on tiny sizes: it runs every comparison and writes valid JSON."""

from __future__ import annotations

import json

import pytest

from hrlib.bench import format_pipeline, main


def test_bench_pipeline_cli_writes_json_and_prints_ratios(tmp_path, capsys):
    out = tmp_path / "sub" / "pipeline.json"
    out.parent.mkdir()
    assert main(["pipeline", "--size", "256", "--region", "32", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert not [p for p in out.parent.iterdir() if p != out]  # atomic: no temporary file left
    names = {r["name"] for r in result["rows"]}
    assert {"read a region", "low-res stage (1/4 side)", "loader, 3 epochs", "augment 16 regions",
            "data-wait fraction of step", "epochs 2-3 of region reads"} <= names
    alternatives = {r["alternative"] for r in result["rows"]}
    assert {"zarr region", "LMDB region", "memmap (raw, reference)", "2 persistent workers",
            "batched tensor (cpu)", "shards (npy, memmap)", "cache on (0 workers)",
            "2 persistent (uint8 out)"} <= alternatives
    for r in result["rows"]:
        assert r["ratio"] > 0 and r["baseline_value"] >= 0 and r["alternative_value"] >= 0
    fractions = [r for r in result["rows"] if r["unit"] == "fraction"]
    assert all(0 <= r["baseline_value"] <= 1 and 0 <= r["alternative_value"] <= 1 for r in fractions)
    assert result["setup"]["size"] == 256 and result["setup"]["region"] == 32
    printed = capsys.readouterr().out
    assert "zarr region" in printed and "ratio = baseline / alternative" in printed
    assert format_pipeline(result) in printed


def test_bench_pipeline_cli_rejects_bad_sizes():
    with pytest.raises(SystemExit):
        main(["pipeline", "--size", "256", "--region", "128"])
    with pytest.raises(SystemExit):
        main(["pipeline", "--size", "32"])
