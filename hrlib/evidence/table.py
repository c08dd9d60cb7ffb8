"""The verdict table that ends every lesson, and a per-seed picture of a comparison."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from hrlib.evidence.compare import Comparison
from hrlib.evidence.verdict import Verdict
from hrlib.viz import format_table

__all__ = ["MIME_TYPE", "VerdictTable", "plot_per_seed", "verdict_table"]

MIME_TYPE = "application/vnd.hrlib.verdicts+json"
HEADERS = ("claim", "in words", "measured", "effect [95 % interval]", "n (seeds x items)", "per seed", "verdict")


def _cell(text: str) -> str:
    """Markdown-table-safe text."""
    return str(text).replace("|", "\\|").replace("\n", " ")


class VerdictTable:
    """Verdicts shown as a Markdown table in a notebook, with a machine-readable copy for the claims page.

    Displaying it stores two representations in the notebook: ``text/markdown`` (what the learner reads) and
    ``application/vnd.hrlib.verdicts+json`` (what ``make claims`` collects).

    Args:
        verdicts: the lesson's verdicts.
        lesson: the lesson's two-digit number.
    """

    def __init__(self, verdicts: Sequence[Verdict], lesson: str) -> None:
        self.verdicts = tuple(verdicts)
        self.lesson = lesson

    def records(self) -> list[dict[str, object]]:
        """One JSON-ready record per verdict, with the lesson."""
        return [{**v.as_dict(), "lesson": self.lesson} for v in self.verdicts]

    def to_markdown(self) -> str:
        """The table in Markdown, followed by each inconclusive or untestable verdict's reason."""
        rows, notes = [], []
        for v in self.verdicts:
            c = v.comparison
            row = (v.claim.id, v.claim.text, v.measured_text(), "-" if c is None else c.effect_text(),
                   "-" if c is None else c.n_text(), "-" if c is None else c.per_seed_text(), f"**{v.verdict}**")
            rows.append([_cell(x) for x in row])
            if v.verdict in ("inconclusive", "not testable here", "refuted"):
                notes.append(f"- **{v.claim.id}** {v.verdict}: {v.reason}.")
        return "\n".join([format_table(HEADERS, rows)] + ([""] + notes if notes else []))

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, object]:
        return {"text/markdown": self.to_markdown(), "text/plain": self.to_markdown(),
                MIME_TYPE: {"lesson": self.lesson, "verdicts": self.records()}}


def verdict_table(verdicts: Sequence[Verdict], lesson: str) -> VerdictTable:
    """The table of a lesson's verdicts (display it as a cell's last expression).

    Args:
        verdicts: the lesson's verdicts, in the order of its claims.
        lesson: the lesson's number, e.g. ``"01"``.

    Returns:
        The :class:`VerdictTable`.

    Raises:
        TypeError, ValueError: something that is not a Verdict, no verdicts, or a repeated claim id.
    """
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("verdicts must hold at least one Verdict")
    for i, v in enumerate(verdicts):
        if not isinstance(v, Verdict):
            raise TypeError(f"verdicts[{i}] must be a Verdict (from Claim.judge), got {type(v).__name__}")
    ids = [v.claim.id for v in verdicts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"verdicts must name each claim id once, got {ids}")
    if not isinstance(lesson, str) or not lesson.isdigit() or len(lesson) != 2:
        raise ValueError(f"lesson must be a two-digit string such as '01', got {lesson!r}")
    return VerdictTable(verdicts, lesson)


def plot_per_seed(comparison: Comparison, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Each seed's score in both arms, joined by a line: a collapsed seed stays visible instead of averaged away.

    Args:
        comparison: a comparison from :func:`hrlib.evidence.compare`.
        ax: where to draw; default a new figure.
        title: the axes title; default the metric and the effect with its interval.

    Returns:
        The axes.

    Raises:
        TypeError: not a Comparison.
    """
    if not isinstance(comparison, Comparison):
        raise TypeError(f"comparison must be a Comparison, got {type(comparison).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.2))
    a, b = np.array(comparison.per_seed_a), np.array(comparison.per_seed_b)
    for seed, ya, yb in zip(comparison.seeds, a, b, strict=True):
        ax.plot([0, 1], [ya, yb], "-o", color="#0072B2" if yb >= ya else "#D55E00", alpha=0.8, ms=4)
        ax.annotate(f"seed {seed}", (1, yb), xytext=(4, 0), textcoords="offset points", fontsize=7, va="center")
    ax.set_xticks([0, 1], comparison.arms)
    ax.set_xlim(-0.3, 1.5)
    ax.set_ylabel(f"{comparison.metric} (mean over {comparison.n_items} items)")
    ax.set_title(title or f"{comparison.metric}: {comparison.effect_text()}", fontsize=9)
    return ax
