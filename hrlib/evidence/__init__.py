"""Evidence (every lesson): paired comparisons with intervals, claims judged by rules declared before the run.

- ``hrlib.evidence.compare``: :func:`compare` (two arms over seeds and test items, hierarchical bootstrap interval,
  minimum detectable effect), :func:`exact` (a deterministic count), :func:`describe_times` (timings with their range);
- ``hrlib.evidence.verdict``: :class:`Claim` (the rule, declared first) and its :class:`Verdict`;
- ``hrlib.evidence.table``: :func:`verdict_table` (the table that ends each lesson), :func:`plot_per_seed`;
- ``hrlib.evidence.claims``: the course's claims and the claims page ``CLAIMS.md``.

Typical use::

    c1 = Claim("C1", "thumbnail training loses accuracy at full resolution", "accuracy at full resolution",
               direction="greater", margin=0.02)               # before the experiment
    ...
    result = compare(acc_thumbnail, acc_full, seeds=SEEDS, metric="accuracy", arms=("trained 1/4", "trained full"))
    verdict_table([c1.judge(result)], lesson="01")
"""

from hrlib.evidence.claims import CLAIMS
from hrlib.evidence.compare import Comparison, compare, describe_times, exact
from hrlib.evidence.table import VerdictTable, plot_per_seed, verdict_table
from hrlib.evidence.verdict import VERDICTS, Claim, Verdict

__all__ = ["CLAIMS", "VERDICTS", "Claim", "Comparison", "Verdict", "VerdictTable", "compare", "describe_times",
           "exact", "plot_per_seed", "verdict_table"]
