"""Exercise 01's budget task: the check accepts schedules that keep the evidence visible, refuses the warm-up that
lesson 01 measured teaching nothing, and wants None where no schedule can meet the budget."""

from __future__ import annotations

from hrlib.exercises import check
from hrlib.exercises.ex01 import BUDGET_CASES, feasible, min_resolution, reference_relative_cost


def _lesson_recipe(s: int, e: int, b: float) -> list[tuple[int, int]] | None:
    """The lesson's staged-from-1/2 shape where it fits, else a valid two-stage fallback (or None)."""
    if not feasible(s, e, b):
        return None
    if (s, e, b) == (256, 10, 0.55):
        return [(128, 4), (192, 4), (256, 2)]
    low = min_resolution(s)
    while low + 16 < s and reference_relative_cost([(low + 16, e - 1), (s, 1)], s) <= b:
        low += 16
    return [(low, e - 1), (s, 1)] if low < s else [(s, e)]


def test_cases_include_an_infeasible_budget_and_the_lesson_recipe_fits():
    assert any(not feasible(*case) for case in BUDGET_CASES)
    assert feasible(256, 10, 0.55) and reference_relative_cost([(128, 4), (192, 4), (256, 2)], 256) <= 0.55
    assert min_resolution(256) == 128 and min_resolution(1024) == 128


def test_a_different_valid_design_passes(capsys):
    assert check("01.budget_schedule", _lesson_recipe, quiet=True).passed


def test_warmup_at_a_quarter_is_refused_in_the_fast_profile():
    def quarter_warmup(s, e, b):
        if (s, e, b) == (256, 10, 0.55):  # uses the budget (cost 0.494) but starts at 64 px
            return [(64, 4), (192, 3), (256, 3)]
        return _lesson_recipe(s, e, b)

    result = check("01.budget_schedule", quarter_warmup, quiet=True)
    assert not result.passed and "2.6 px" in result.message and "below 5 px" in result.message


def test_a_schedule_where_none_is_due_is_refused_with_the_hint():
    def never_none(s, e, b):
        got = _lesson_recipe(s, e, b)
        return got if got is not None else [(112, e - 1), (s, 1)]

    result = check("01.budget_schedule", never_none, quiet=True)
    assert not result.passed and "return None" in result.message


def test_none_for_a_feasible_budget_is_refused():
    result = check("01.budget_schedule", lambda s, e, b: None, quiet=True)
    assert not result.passed and "a schedule exists" in result.message
