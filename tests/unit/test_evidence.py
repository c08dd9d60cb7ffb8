"""hrlib.evidence: interval coverage on simulated data, the verdict rule at its boundaries, per-seed values."""

from __future__ import annotations

import dataclasses
import math

import matplotlib
import numpy as np
import pytest

from hrlib.evidence import VERDICTS, Claim, Comparison, compare, describe_times, exact, plot_per_seed, verdict_table
from hrlib.evidence.compare import MDE_FACTOR, mde_factor, variance_components

matplotlib.use("Agg")


def _simulate(rng: np.random.Generator, n_seeds: int, n_items: int, seed_sd: float, item_sd: float,
              effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Paired 0/1 correctness of two arms: item difficulty shared, a random skill per seed and arm, an item-level
    effect that varies around ``effect`` (logit scale)."""
    difficulty = rng.normal(0, 1, n_items)
    item_effect = rng.normal(0, item_sd, n_items)
    skill_a, skill_b = rng.normal(0, seed_sd, n_seeds), rng.normal(0, seed_sd, n_seeds)
    pa = 1 / (1 + np.exp(-(1 + difficulty[None] + skill_a[:, None])))
    pb = 1 / (1 + np.exp(-(1 + difficulty[None] + skill_b[:, None] + effect + item_effect[None])))
    return (rng.random(pa.shape) < pa).astype(float), (rng.random(pb.shape) < pb).astype(float)


def _true_effect(seed_sd: float, item_sd: float, effect: float) -> float:
    """The population effect (expected B - A accuracy over new items and new seeds), by a huge simulation."""
    rng = np.random.default_rng(12345)
    n = 400_000
    d, ie = rng.normal(0, 1, n), rng.normal(0, item_sd, n)
    sa, sb = rng.normal(0, seed_sd, n), rng.normal(0, seed_sd, n)
    return float(np.mean(1 / (1 + np.exp(-(1 + d + sb + effect + ie))) - 1 / (1 + np.exp(-(1 + d + sa)))))


@pytest.mark.parametrize(("n_seeds", "n_items", "seed_sd", "item_sd"), [(5, 300, 0.5, 0.3), (5, 300, 1.0, 0.0),
                                                                        (10, 200, 0.3, 0.6)])
def test_interval_covers_the_true_effect_about_95_percent_of_the_time(n_seeds, n_items, seed_sd, item_sd):
    truth = _true_effect(seed_sd, item_sd, 0.4)
    rng = np.random.default_rng(7)
    runs = 200
    hits = sum(c.low <= truth <= c.high for c in
               (compare(*_simulate(rng, n_seeds, n_items, seed_sd, item_sd, 0.4), n_boot=500, seed=k)
                for k in range(runs)))
    # binomial sd at 95 % over 200 runs is 1.5 points: 0.90-0.99 is about +-3 sd around 0.95
    assert 0.90 <= hits / runs <= 0.99, f"coverage {hits / runs:.3f}"


def test_interval_is_conservative_not_too_narrow_without_seed_variation():
    truth = _true_effect(0.0, 0.0, 0.4)
    rng = np.random.default_rng(3)
    hits = sum(c.low <= truth <= c.high for c in
               (compare(*_simulate(rng, 5, 300, 0.0, 0.0, 0.4), n_boot=500, seed=k) for k in range(150)))
    assert hits / 150 >= 0.93


def test_a_plain_bootstrap_would_be_too_narrow_with_few_seeds():
    """The correction matters: with 3 seeds that differ a lot, the interval is wider than the raw bootstrap's."""
    rng = np.random.default_rng(0)
    a, b = _simulate(rng, 3, 300, 1.0, 0.0, 0.3)
    c = compare(a, b, n_boot=2000)
    seed_means = (b - a).mean(axis=1)
    naive_se = seed_means.std() / math.sqrt(3)  # population std, as mean_spread used
    assert c.se > naive_se
    assert c.high - c.low > 2 * 1.96 * naive_se


def test_standard_error_matches_the_analytic_one_for_independent_noise():
    """Never too small on average; a little conservative when the seeds do not differ at all (a negative seed
    variance estimate counts as zero, so the estimate never falls below the residual's share)."""
    rng = np.random.default_rng(1)
    runs = [compare(rng.normal(0, 1, (5, 400)), rng.normal(0.1, 1, (5, 400)), n_boot=200, seed=k) for k in range(60)]
    assert 0.95 <= np.mean([c.se**2 for c in runs]) / (2 / 2000) <= 1.4
    c = runs[0]
    assert c.mde == pytest.approx(mde_factor(c.df) * c.se) and mde_factor(math.inf) == MDE_FACTOR
    assert MDE_FACTOR == pytest.approx(1.96 + 0.8416, abs=1e-3)


def test_variance_components_recover_seed_and_item_variance():
    rng = np.random.default_rng(2)
    table = (rng.normal(0, 2, (40, 1))[:, [0] * 300] + rng.normal(0, 1, (1, 300))[[0] * 40]
             + rng.normal(0, 0.5, (40, 300)))
    seed, item, res, df = variance_components(table)
    assert seed == pytest.approx(4, rel=0.5)
    assert item == pytest.approx(1, rel=0.25)
    assert res == pytest.approx(0.25, rel=0.1)
    assert df >= 30


def test_one_seed_and_one_item_designs():
    one_seed = compare(np.zeros(50), np.r_[np.ones(30), np.zeros(20)], n_boot=300)
    assert one_seed.n_seeds == 1 and one_seed.n_items == 50 and one_seed.low > 0
    per_seed_only = compare(np.zeros((6, 1)), np.array([[1.0], [0.9], [1.1], [1.0], [0.95], [1.05]]), n_boot=300)
    assert per_seed_only.n_items == 1 and per_seed_only.low > 0.9 and per_seed_only.high < 1.1
    constant = compare(np.zeros((3, 4)), np.ones((3, 4)), n_boot=300)
    assert constant.low == constant.high == constant.effect == 1.0


def test_scalar_reference_arm():
    c = compare(0.5, np.full((5, 100), 0.6), n_boot=300, arms=("chance", "model"))
    assert c.effect == pytest.approx(0.1) and c.mean_a == pytest.approx(0.5)


def test_per_seed_values_show_a_collapsed_seed():
    rng = np.random.default_rng(4)
    a = (rng.random((5, 300)) < 0.9).astype(float)
    b = (rng.random((5, 300)) < 0.95).astype(float)
    b[3] = (rng.random(300) < 0.6).astype(float)  # one seed collapses a class
    c = compare(a, b, seeds=[10, 11, 12, 13, 14], n_boot=1000)
    effects = np.array(c.per_seed_effect)
    assert effects[3] < -0.2 and (np.delete(effects, 3) > 0).all()
    assert c.effect > -0.1  # the mean alone would hide it ...
    row = verdict_table([Claim("C35", "b helps", "accuracy").judge(c)], "02").to_markdown().splitlines()[2]
    assert f"{effects[3]:+.2f}" in row  # ... the table shows it
    ax = plot_per_seed(c)
    assert len(ax.lines) == 5 and "seed 13" in [t.get_text() for t in ax.texts]
    assert ax.lines[3].get_color() == "#D55E00"  # the falling seed is drawn in the other colour


def _cmp(low: float, high: float, effect: float | None = None) -> Comparison:
    base = compare(np.zeros((3, 10)), np.ones((3, 10)), n_boot=300)
    return dataclasses.replace(base, low=low, high=high, effect=(low + high) / 2 if effect is None else effect,
                               se=0.01, mde=0.028)


@pytest.mark.parametrize(("direction", "margin", "low", "high", "expected"), [
    ("greater", 0.0, 0.001, 0.2, "supported"),
    ("greater", 0.0, 0.0, 0.2, "inconclusive"),  # touching zero is not excluding it
    ("greater", 0.0, -0.2, -0.001, "refuted"),
    ("greater", 0.0, -0.2, 0.0, "inconclusive"),
    ("greater", 0.05, -0.049, 0.049, "refuted"),  # inside the margin of no practical effect
    ("greater", 0.05, -0.05, 0.049, "inconclusive"),  # touching the margin is not inside it
    ("greater", 0.05, 0.01, 0.04, "refuted"),  # excludes zero, but too small to matter
    ("greater", 0.05, 0.01, 0.06, "supported"),
    ("less", 0.0, -0.2, -0.001, "supported"),
    ("less", 0.0, 0.001, 0.2, "refuted"),
    ("less", 0.02, -0.01, 0.01, "refuted"),
])
def test_verdict_rule_is_exact(direction, margin, low, high, expected):
    v = Claim("C1", "claim", "accuracy", direction=direction, margin=margin).judge(_cmp(low, high))
    assert v.verdict == expected


def test_every_verdict_is_reachable_and_explained():
    claim = Claim("C9", "monitor catches bugs", "detection rate", margin=0.01)
    got = {claim.judge(_cmp(0.1, 0.2)).verdict, claim.judge(_cmp(-0.2, -0.1)).verdict,
           claim.judge(_cmp(-0.1, 0.1)).verdict,
           claim.judge(None, precondition=False, why_not="no bug happened").verdict}
    assert got == set(VERDICTS)
    inconclusive = claim.judge(_cmp(-0.1, 0.1, effect=0.03))
    assert "to settle it" in inconclusive.reason
    untestable = claim.judge(None, precondition=False, why_not="no run overfitted")
    assert untestable.reason == "no run overfitted"
    with pytest.raises(ValueError, match="why_not"):
        claim.judge(None, precondition=False)
    with pytest.raises(TypeError, match="comparison"):
        claim.judge(None)


def test_needed_for_names_the_dimension_that_dominates():
    rng = np.random.default_rng(5)
    seeds_dominate = compare(np.zeros((3, 200)), rng.normal(0.02, 0.05, (3, 1)) + rng.normal(0, 0.01, (3, 200)),
                             n_boot=500)
    text = seeds_dominate.needed_for(0.02)
    assert "seeds" in text
    items_dominate = compare(np.zeros((5, 40)), rng.normal(0.05, 1.0, (1, 40)).repeat(5, 0) +
                             rng.normal(0, 0.01, (5, 40)), n_boot=500)
    assert "test items" in items_dominate.needed_for(0.2)
    assert "already has 80 % power" in items_dominate.needed_for(100.0)
    assert "zero" in items_dominate.needed_for(0.0)


def test_exact_comparison_has_no_interval():
    c = exact(1_000_000, 4_000_000, metric="MACs", arms=("64 px", "128 px"), fmt="+,.0f")
    assert c.exact and c.low == c.high == c.effect == 3_000_000 and c.mde == 0
    assert c.effect_text() == "+3,000,000" and c.n_text().startswith("exact")
    v = Claim("C21", "parameters grow with resolution", "parameters", margin=0.5).judge(exact(120, 120))
    assert v.verdict == "refuted" and "margin" in v.reason


def test_describe_times_reports_median_and_range():
    assert describe_times([0.003, 0.001, 0.002]) == "median 2.00 ms (range 1.00-3.00, 3 repeats)"
    assert describe_times([12.0, 14.0], unit="s") == "median 13 s (range 12-14, 2 repeats)"


def test_compare_refuses_mismatched_arms():
    with pytest.raises(ValueError, match="same seeds and items"):
        compare(np.zeros((3, 10)), np.zeros((3, 11)))
    with pytest.raises(ValueError, match="NaN"):
        compare(np.zeros((3, 10)), np.full((3, 10), np.nan))
    with pytest.raises(ValueError, match="seeds"):
        compare(np.zeros((3, 10)), np.zeros((3, 10)), seeds=[1, 2])


def test_verdict_table_carries_a_machine_readable_copy():
    v = Claim("C21a", "GAP head: parameters do not grow", "parameters", margin=0.5).judge(exact(10, 10))
    table = verdict_table([v], "00")
    bundle = table._repr_mimebundle_()
    record = bundle["application/vnd.hrlib.verdicts+json"]["verdicts"][0]
    assert record["id"] == "C21a" and record["verdict"] == "refuted" and record["lesson"] == "00"
    assert "**refuted**" in bundle["text/markdown"]


def test_interval_stays_within_what_the_scores_allow():
    """A detection rate of 29/30 against a fixed 0 cannot have an interval above +1."""
    rates = np.ones((5, 30))
    rates[0, 0] = 0
    c = compare(0.0, rates, n_boot=500)
    assert c.high <= 1.0 and c.low < 1.0


def test_mde_uses_the_same_t_quantiles_as_the_interval():
    """With 3 seeds the detectable effect is more than 2.8 standard errors, and a design 'with 80 % power' for an
    effect is never one whose interval would include that effect's zero."""
    rng = np.random.default_rng(8)
    c = compare(np.zeros((3, 100)), rng.normal(0, 0.05, (3, 1)) + rng.normal(0, 0.3, (3, 100)), n_boot=500)
    assert c.df < 30 and c.mde > MDE_FACTOR * c.se
    assert c.mde > (c.high - c.low) / 2
    text = c.needed_for(c.mde / 2)
    assert "seeds" in text and "now 3 seeds x 100 items" in text
