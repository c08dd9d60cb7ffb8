"""``hrlib train`` stopped, resumed and rerun: an early stop after a resume comes at the same epoch, resuming a
finished run changes nothing, a fresh run never takes over (or prunes) another run's checkpoints, and the
DataLoader worker count does not change the weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from limits import run_limited  # noqa: E402

from hrlib.train import load_checkpoint, run_config, save_checkpoint  # noqa: E402

EARLY_STOP = {"overfit": {"patience": 2, "min_delta": 100.0, "stop": True}}  # flags once the train loss falls


def tiny(epochs: int = 3, seed: int = 5, diagnostics: dict | None = None, **train) -> dict:
    """12 slides of 32 px, two stages with random augmentation, a 2-stage DSConvNet: a second or two per run."""
    return {"data": {"source": "generator", "n": 12, "n_val": 4, "size": 32},
            "schedule": {"stages": [{"name": "low", "resolution": 16, "num_epochs": 2, "policy": "warmup"},
                                    {"name": "full", "resolution": 32, "num_epochs": epochs - 2,
                                     "policy": "scale_jitter"}]},
            "model": {"name": "dsconvnet", "kwargs": {"widths": [4, 8]}},
            "train": {"batch_size": 4, "seed": seed, "device": "cpu", **train},
            "diagnostics": {"grad_clip": {"max_norm": 0.5}, **(diagnostics or {})},
            "output": {"progress": False, "keep_last": 10}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_an_early_stop_after_a_resume_comes_at_the_same_epoch_with_the_same_weights(tmp_path):
    cfg = tiny(epochs=8, diagnostics=EARLY_STOP)
    whole = run_config(cfg, out=tmp_path / "whole")
    assert 2 <= len(whole) < 8, "the detector must stop the uninterrupted run early for this test to mean much"
    run_config(cfg, out=tmp_path / "part", stop_after=len(whole) - 1)  # interrupted just before the stop
    resumed = run_config(cfg, out=tmp_path / "part", resume=True)
    assert len(resumed) == len(whole), f"stopped after {len(resumed)} epochs, uninterrupted after {len(whole)}"
    assert resumed.as_rows()[-1]["overfitting"] and resumed.column("train_loss").tolist() == \
        whole.column("train_loss").tolist()
    assert _same_weights(tmp_path / "whole/model.pt", tmp_path / "part/model.pt")


@pytest.mark.parametrize("early", [False, True], ids=["all epochs", "stopped early"])
def test_resuming_a_finished_run_changes_no_file(tmp_path, early):
    cfg = tiny(epochs=8, diagnostics=EARLY_STOP) if early else tiny()
    done = run_config(cfg, out=tmp_path / "run")
    assert (len(done) < 8) if early else len(done) == 3
    before = _snapshot(tmp_path / "run")
    again = run_config(cfg, out=tmp_path / "run", resume=True)
    assert _snapshot(tmp_path / "run") == before  # model.pt, checkpoints, history and the run record untouched
    assert again.column("train_loss").tolist() == done.column("train_loss").tolist()


def test_a_fresh_run_into_a_folder_holding_another_run_is_refused(tmp_path):
    out = tmp_path / "run"
    run_config(tiny(epochs=4), out=out)  # four checkpoints kept
    before = _snapshot(out)
    with pytest.raises(FileExistsError, match=rf"{out.name}.*--resume.*another --out"):
        run_config(tiny(epochs=3, seed=6), out=out, stop_after=1)
    assert _snapshot(out) == before
    run_config(tiny(epochs=3, seed=6), out=tmp_path / "other", stop_after=1)  # an empty folder is fine
    assert run_config(tiny(epochs=3, seed=6), out=tmp_path / "other", resume=True).rows[-1]["epoch"] == 2


def test_keep_last_never_deletes_a_checkpoint_of_another_run(tmp_path):
    folder = tmp_path / "checkpoints"
    for epoch in range(5, 10):  # an older, longer run
        save_checkpoint(folder / f"epoch_{epoch:04d}.pt", {"epoch": epoch, "run_id": "old"}, keep_last=10)
    for epoch in range(3):  # a new run keeping its newest checkpoint only
        save_checkpoint(folder / f"epoch_{epoch:04d}.pt", {"epoch": epoch, "run_id": "new"}, keep_last=1)
    owners = {p.name: load_checkpoint(p)["run_id"] for p in sorted(folder.iterdir())}
    assert owners == {"epoch_0002.pt": "new", **{f"epoch_{e:04d}.pt": "old" for e in range(5, 10)}}, owners


def test_the_worker_count_does_not_change_the_weights(tmp_path):
    out = run_limited("""
        import torch
        from hrlib.train import run_config
        torch.set_num_threads(1)
        for workers in (0, 2):
            cfg = dict(config, train={**config["train"], "num_workers": workers})
            run_config(cfg, out=f"{folder}/w{workers}")
        a, b = (torch.load(f"{folder}/w{w}/model.pt", weights_only=True) for w in (0, 2))
        return [k for k in a if not torch.equal(a[k], b[k])]
    """, timeout=300, config=tiny(), folder=str(tmp_path))
    assert out.status == "ok" and out.value == [], out
