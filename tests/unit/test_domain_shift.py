"""hrlib.domain.shift, tensor_fit and experiment (lesson 04's data and harness) and hrlib.domain.sync (what
SyncBatchNorm synchronizes)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from hrlib.domain import DomainSpecificBatchNorm, convert_batchnorm
from hrlib.domain.experiment import (
    TECHNIQUES,
    RunResult,
    _adapt_target_bn,
    gap_recovered,
    run,
    run_table,
    summarize,
    transfer_curve,
)
from hrlib.domain.shift import make_shift
from hrlib.domain.sync import syncbn_demo
from hrlib.domain.tensor_fit import _batches, fit_tensors
from hrlib.models import DSConvNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return make_shift(32, n_source=6, n_pool=6, n_test=6, seed=3, variants=1)


def test_make_shift_splits_sites_and_balance(tiny):
    assert tiny.source.shape == (12, 32, 32, 3) and tiny.source.dtype == np.uint8
    assert tiny.pool.shape == (6, 32, 32, 3) and tiny.test.shape == (6, 32, 32, 3)
    assert tiny.source_sites == ("A", "C") and tiny.target_site == "B"
    assert np.array_equal(tiny.source_domains, np.repeat([0, 1], 6))
    for labels in (tiny.source_labels, tiny.pool_labels, tiny.test_labels):
        assert np.array_equal(np.bincount(labels, minlength=3), [len(labels) // 3] * 3)
    # the pool and the test set are different slides of the same site
    assert not np.array_equal(tiny.pool, tiny.test)


def test_make_shift_is_deterministic_and_seeded():
    a, b = make_shift(32, n_source=3, n_pool=3, n_test=3, seed=1), make_shift(32, n_source=3, n_pool=3, n_test=3,
                                                                           seed=1)
    c = make_shift(32, n_source=3, n_pool=3, n_test=3, seed=2)
    assert np.array_equal(a.source, b.source) and np.array_equal(a.test, b.test)
    assert not np.array_equal(a.source, c.source)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"target": "A"}, "^target must differ"), ({"source": "AC"}, "^source must be"), ({"size": 16}, "^size "),
    ({"n_pool": 0}, "^n_pool "), ({"target": "Z"}, "^target must be a site name: site must be one of")])
def test_make_shift_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shift(**{"size": 32, "n_source": 3, "n_pool": 3, "n_test": 3, **kwargs})


def test_one_domain_batches_cover_every_index_once():
    domains = torch.tensor([0, 1, 0, 2, 1, 0, 0, 2, 1, 1, 0])
    batches = _batches(len(domains), 3, torch.Generator().manual_seed(0), domains)
    assert sorted(torch.cat(batches).tolist()) == list(range(len(domains)))
    assert all(len(domains[b].unique()) == 1 and len(b) <= 3 for b in batches)
    mixed = _batches(len(domains), 3, torch.Generator().manual_seed(0), None)
    assert sorted(torch.cat(mixed).tolist()) == list(range(len(domains)))


def _plain_loop(model, x, y, num_epochs, seed, domains=None, batch_size=4, lr=3e-3):
    """What fit_tensors computes, written out: AdamW + OneCycle, the documented batch draws (no engine)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = num_epochs * len(_batches(len(y), batch_size, torch.Generator(), domains))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(num_epochs):
        for idx in _batches(len(y), batch_size, gen, domains):
            flip = torch.rand(len(idx), 2, generator=gen) < 0.5
            xb = torch.where(flip[:, 0, None, None, None], x[idx].flip(3), x[idx])
            xb = torch.where(flip[:, 1, None, None, None], xb.flip(2), xb)
            if domains is not None:
                for m in model.modules():
                    if isinstance(m, DomainSpecificBatchNorm):
                        m.set_domain(int(domains[idx[0]]))
            loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@pytest.mark.parametrize("dsbn", [False, True])
def test_fit_tensors_computes_what_a_plain_loop_does(dsbn):
    g = torch.Generator().manual_seed(0)
    x, y, domains = torch.randn(10, 3, 16, 16, generator=g), torch.arange(10) % 3, torch.arange(10) % 2
    torch.manual_seed(0)
    model = DSConvNet(3, 3, (4, 8))
    if dsbn:
        convert_batchnorm(model, "dsbn", num_domains=2)
    ref = _plain_loop(copy.deepcopy(model), x, y, 2, 5, domains if dsbn else None)
    fit_tensors(model, x, y, num_epochs=2, seed=5, batch_size=4, domains=domains if dsbn else None)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True))


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_every_technique_trains_and_scores(tiny, technique):
    result = run(tiny, technique, seed=0, num_epochs=1, num_finetune_epochs=1, device="cpu")
    assert isinstance(result, RunResult) and result.technique == technique and result.seed == 0
    assert 0.0 <= result.accuracy <= 1.0 and result.accuracy * 6 == pytest.approx(round(result.accuracy * 6))
    if technique == "CAM-guided crops":
        assert set(result.notes) >= {"kept", "pseudo_accuracy", "crops normal", "crops lesion", "crops target"}


def test_run_is_deterministic_and_the_seed_matters(tiny):
    before = torch.random.get_rng_state()
    _, m1 = run(tiny, "MixStyle", seed=4, num_epochs=2, device="cpu", return_model=True)
    assert torch.equal(torch.random.get_rng_state(), before)  # neither drawn from nor reseeded
    torch.manual_seed(123)  # the run's randomness comes from its seed alone, not from torch's global RNG
    _, m2 = run(tiny, "MixStyle", seed=4, num_epochs=2, device="cpu", return_model=True)
    _, m3 = run(tiny, "MixStyle", seed=5, num_epochs=2, device="cpu", return_model=True)
    w = [next(m.parameters()).detach() for m in (m1, m2, m3)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_run_rejects_unknown_technique(tiny):
    with pytest.raises(ValueError, match="^technique must be one of"):
        run(tiny, "stain magic")
    with pytest.raises(TypeError, match="^data must be a ShiftData"):
        run(tiny.source, "source only")


def test_run_table_in_processes_equals_in_process(tiny):
    techniques = ("source only", "per-domain BN")
    here = run_table(tiny, techniques, (0, 1), num_workers=1, num_epochs=1, device="cpu")
    there = run_table(tiny, techniques, (0, 1), num_workers=2, num_epochs=1, device="cpu",
                      keep_models=("source only",))
    assert [(r.technique, r.seed) for r in here] == [(t, s) for t in techniques for s in (0, 1)]
    assert [r.accuracy for r in here] == [r.accuracy for r in there]
    assert all(r.model is None for r in here) and [r.model is not None for r in there] == [True, True, False, False]
    kept = there[1].model
    _, again = run(tiny, "source only", seed=1, num_epochs=1, device="cpu", return_model=True)
    assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), again.state_dict().values(), strict=True))


def test_adapt_target_bn_estimates_the_target_statistics():
    torch.manual_seed(0)
    model = convert_batchnorm(DSConvNet(3, 3, (4, 8)), "dsbn", num_domains=3)
    first = next(m for m in model.modules() if isinstance(m, DomainSpecificBatchNorm))
    with torch.no_grad():
        first.bns[0].weight.fill_(2.0)
        first.bns[1].weight.fill_(4.0)
    target = torch.randn(32, 3, 16, 16) * 2 + 5  # one batch: the cumulative average is the batch's statistics
    _adapt_target_bn(model, target, 2)
    conv_out = model.features[0][0](target)
    assert torch.allclose(first.bns[2].running_mean, conv_out.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(first.bns[2].weight, torch.full((4,), 3.0))  # the source domains' mean affine
    assert not model.training


def test_gap_recovered_and_summarize():
    assert gap_recovered(0.8, 0.6, 1.0) == pytest.approx(0.5)
    assert gap_recovered(1.2, 0.6, 1.0) == pytest.approx(1.5)
    assert math.isnan(gap_recovered(0.9, 0.9, 0.905))
    results = [RunResult("source only", s, a, 1.0) for s, a in ((0, 0.5), (1, 0.7))]
    results += [RunResult("oracle", s, 0.9, 1.0) for s in (0, 1)] + [RunResult("MixStyle", 0, 0.75, 2.0)]
    rows = {r["technique"]: r for r in summarize(results)}
    assert rows["source only"]["mean"] == pytest.approx(0.6) and rows["source only"]["std"] == pytest.approx(0.1)
    assert rows["MixStyle"]["gap_recovered"] == pytest.approx(0.5) and rows["MixStyle"]["seeds"] == 1


def test_transfer_curve_has_one_point_per_epoch(tiny):
    curve = transfer_curve(tiny, None, n_labeled=6, num_epochs=3, seed=0)
    assert len(curve) == 3 and all(0.0 <= a <= 1.0 for a in curve)
    with pytest.raises(ValueError, match="^n_labeled must be <="):
        transfer_curve(tiny, None, n_labeled=7)


def test_syncbn_demo_pools_statistics_across_processes():
    a, b = torch.randn(4, 3, 6, 6), torch.randn(6, 3, 6, 6) + 3.0
    demo = syncbn_demo([a, b])
    assert np.allclose(demo.local[0], a.mean(dim=(0, 2, 3)).numpy(), atol=1e-5)
    assert np.allclose(demo.local[1], b.mean(dim=(0, 2, 3)).numpy(), atol=1e-5)
    pooled = torch.cat([a, b]).mean(dim=(0, 2, 3)).numpy()
    assert np.allclose(demo.synced, pooled[None], atol=1e-5) and np.allclose(demo.pooled, pooled, atol=1e-5)
    assert "GPU" in demo.cpu_error  # SyncBatchNorm's training forward refuses CPU tensors with 2 processes


def test_syncbn_demo_rejects_bad_batches():
    with pytest.raises(ValueError, match="^batches must be a list of at least 2"):
        syncbn_demo([torch.zeros(2, 3, 4, 4)])
    with pytest.raises(ValueError, match="^batches must be float"):
        syncbn_demo([torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, 4)])
