"""hrlib train under torchrun: two gloo processes on the CPU with DistributedDataParallel and DistributedSampler.

One real ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m hrlib.train`` run (a few seconds);
``output.debug_ranks`` makes each rank write the sample indices it trained on and its final parameters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from hrlib.analysis.runs import read_runs

CONFIG = """
[data]
source = "generator"
n = 16
size = 32
[[schedule.stages]]
name = "low"
resolution = 16
num_epochs = 1
policy = "warmup"
[[schedule.stages]]
name = "full"
resolution = 32
num_epochs = 1
policy = "finetune"
[model]
kwargs = { widths = [4, 8] }
[train]
batch_size = 4
seed = 1
device = "cpu"
[output]
debug_ranks = true
"""


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "c.toml").write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "hrlib.train",
           "--config", str(tmp / "c.toml"), "--out", str(tmp / "out"), "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "out", done.stdout


def test_parameters_are_identical_across_ranks_after_training(ddp_run):
    """Weights (DDP averages the gradients) and BatchNorm statistics (rank 0's, broadcast) are the same."""
    out, _ = ddp_run
    p0 = torch.load(out / "debug/rank0_params.pt", weights_only=True)
    p1 = torch.load(out / "debug/rank1_params.pt", weights_only=True)
    assert p0.keys() == p1.keys() and all(torch.equal(p0[k], p1[k]) for k in p0)
    init = torch.load(out / "checkpoints/epoch_0001.pt", weights_only=True)["model"]
    assert all(torch.equal(init[k], p0[k]) for k in p0)  # rank 0's checkpoint holds the shared weights


def test_each_rank_trains_on_a_disjoint_half_and_set_epoch_reshuffles(ddp_run):
    out, _ = ddp_run
    ranks = [json.loads((out / f"debug/rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    for epoch in ("0", "1"):
        a, b = ranks[0]["indices"][epoch], ranks[1]["indices"][epoch]
        assert len(a) == len(b) == 8 and not set(a) & set(b) and sorted(a + b) == list(range(16))
    assert ranks[0]["indices"]["0"] != ranks[0]["indices"]["1"]  # a new order each epoch


def test_only_rank_0_logs_checkpoints_and_records_the_run(ddp_run):
    out, stdout = ddp_run
    (record,) = read_runs(out / "runs.jsonl")  # one record, not one per rank
    assert record["metrics"]["world_size"] == 2 and record["metrics"]["finished"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_0000.pt", "epoch_0001.pt"]
    history = json.loads((out / "history.json").read_text())["rows"]
    assert [r["samples"] for r in history] == [16, 16]  # global count: both ranks' samples
    assert stdout.count("trained 2 epochs on 2 process(es)") == 1
