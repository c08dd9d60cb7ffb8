"""Claims declared before the run, and the verdict their rule gives a measured comparison.

The rule, exactly (``effect = B - A``, interval ``[low, high]``, claimed direction ``+1`` for "B is higher"):

1. **not testable here** when the experiment's precondition did not happen (for example no run overfitted, or the
   model never learned the class the claim is about): the measurement cannot speak to the claim;
2. **refuted** when the interval excludes zero against the claimed direction, or lies entirely inside the declared
   margin of no practical effect ``(-margin, +margin)``;
3. **supported** when the interval excludes zero in the claimed direction (and does not lie inside the margin);
4. **inconclusive** otherwise, with the design that would settle it.

An exact (deterministic) comparison has a zero-width interval, so the same rule applies to a count.
"""

from __future__ import annotations

from dataclasses import dataclass

from hrlib.evidence.compare import Comparison

__all__ = ["VERDICTS", "Claim", "Verdict"]

VERDICTS = ("supported", "refuted", "inconclusive", "not testable here")
_DIRECTIONS = {"greater": 1, "less": -1}


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict and the comparison behind it.

    Attributes:
        claim: the claim, with its rule.
        comparison: the measurement (None when the claim was not testable and nothing was compared).
        verdict: one of :data:`VERDICTS`.
        reason: one sentence on why the rule gave this verdict.
    """

    claim: Claim
    comparison: Comparison | None
    verdict: str
    reason: str

    def measured_text(self) -> str:
        """What was measured: the two arms' means and the metric."""
        c = self.comparison
        if c is None:
            return self.claim.measure
        f = c.fmt.lstrip("+")
        return f"{self.claim.measure}: {c.arms[1]} {format(c.mean_b, f)} vs {c.arms[0]} {format(c.mean_a, f)}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready record (what the claims page collects from the notebooks)."""
        c = self.comparison
        return {"id": self.claim.id, "claim": self.claim.text, "measure": self.claim.measure,
                "measured": self.measured_text(), "verdict": self.verdict, "reason": self.reason,
                "effect": None if c is None else c.effect, "low": None if c is None else c.low,
                "high": None if c is None else c.high, "effect_text": "-" if c is None else c.effect_text(),
                "n": "-" if c is None else c.n_text(), "per_seed": "-" if c is None else c.per_seed_text(),
                "mde": None if c is None or c.exact else c.mde}


@dataclass(frozen=True)
class Claim:
    """A claim and the rule that will judge it, declared before the experiment runs.

    Attributes:
        id: the claim's id, e.g. ``"C1"`` or ``"C22a"`` for part of a claim.
        text: the claim in words, as the field states it (and as scoped here).
        measure: what is measured, e.g. ``"accuracy at full resolution, trained full (B) vs trained 1/4 (A)"``.
        direction: ``"greater"`` if the claim says B is higher than A, ``"less"`` if lower.
        margin: the largest effect of no practical importance, in the metric's units (>= 0): an interval inside
            ``(-margin, margin)`` refutes the claim.
    """

    id: str
    text: str
    measure: str
    direction: str = "greater"
    margin: float = 0.0

    def __post_init__(self) -> None:
        for name in ("id", "text", "measure"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'greater' or 'less', got {self.direction!r}")
        if isinstance(self.margin, bool) or not isinstance(self.margin, int | float) or not self.margin >= 0:
            raise ValueError(f"margin must be a number >= 0, got {self.margin!r}")

    def judge(self, comparison: Comparison | None, *, precondition: bool = True, why_not: str = "") -> Verdict:
        """The verdict of the declared rule on ``comparison``.

        Args:
            comparison: the measurement (B against A); may be None only when ``precondition`` is False.
            precondition: whether the condition the claim is about happened in the experiment.
            why_not: when ``precondition`` is False, what did not happen (shown as the reason).

        Returns:
            The :class:`Verdict`.

        Raises:
            TypeError, ValueError: no comparison for a testable claim, or no reason for an untestable one.
        """
        if not precondition:
            if not why_not.strip():
                raise ValueError("why_not must say which precondition did not happen")
            return Verdict(self, comparison, "not testable here", why_not.strip())
        if not isinstance(comparison, Comparison):
            raise TypeError(f"comparison must be a Comparison (from compare or exact), got {type(comparison).__name__}")
        sign = _DIRECTIONS[self.direction]
        low, high = sorted((sign * comparison.low, sign * comparison.high))  # in the claimed direction
        ci = f"{comparison.level:.0%} interval" if not comparison.exact else "exact value"
        if high < 0:
            return Verdict(self, comparison, "refuted", f"the {ci} excludes zero against the claimed direction")
        if self.margin > 0 and -self.margin < low and high < self.margin:
            return Verdict(self, comparison, "refuted",
                           f"the {ci} lies inside the margin of no practical effect (+-{self.margin:g})")
        if low > 0:
            return Verdict(self, comparison, "supported", f"the {ci} excludes zero in the claimed direction")
        return Verdict(self, comparison, "inconclusive",
                       f"the {ci} includes zero (detectable effect {comparison.mde:.3g}); to settle it: "
                       + comparison.needed_for(max(abs(comparison.effect), self.margin or 0.0) or None))
