"""Checks for lesson 01, "resolution staging": a schedule's compute, a budgeted schedule, validation preprocessing.

Expected values come from the definitions (compute grows with the pixel count, i.e. the side squared) and, for the
validation transform, from ``hrlib.staging.val_transform``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hrlib.exercises import NotYet, call_answer, describe_value, register

# ------------------------------------------------------------------------------------------- relative cost

COST_CASES: tuple[tuple[tuple[tuple[int, int], ...], int], ...] = (
    (((256, 10),), 256),  # always full resolution: 1.0
    (((64, 4), (128, 4), (256, 2)), 256),  # the three-stage schedule
    (((128, 3), (512, 1)), 512),
    (((96, 5), (160, 5), (224, 2), (224, 2)), 224),
)


def reference_relative_cost(stages: Sequence[tuple[int, int]], source_size: int) -> float:
    """The reference: training compute of a schedule relative to every epoch at full resolution.

    Args:
        stages: ``(resolution, num_epochs)`` pairs.
        source_size: the full resolution in px.

    Returns:
        ``sum(epochs * (resolution / source_size) ** 2) / sum(epochs)``.
    """
    epochs = sum(e for _, e in stages)
    return sum(e * (r / source_size) ** 2 for r, e in stages) / epochs


def _cost_hint(stages: Sequence[tuple[int, int]], source: int, got: float) -> str:
    epochs = sum(e for _, e in stages)
    if math.isclose(got, sum(e * r / source for r, e in stages) / epochs, rel_tol=1e-6):
        return "compute grows with the number of pixels: use (resolution / source_size) ** 2, not the ratio itself"
    if math.isclose(got, sum((r / source) ** 2 for r, _ in stages) / len(stages), rel_tol=1e-6):
        return "weight each stage by its number of epochs: a long low-resolution stage saves more"
    if math.isclose(got, sum(e * (r / source) ** 2 for r, e in stages), rel_tol=1e-6):
        return "divide by the total number of epochs, so that training at full resolution throughout gives 1.0"
    return "relative cost = sum(epochs * (resolution / source_size) ** 2) / sum(epochs)"


@register("01.relative_cost")
def check_relative_cost(answer: Callable[..., Any]) -> str:
    """Check a learner's training compute relative to full resolution throughout.

    Args:
        answer: ``answer(stages, source_size) -> float``.

    Returns:
        The PASS message: cost right for every schedule case.

    Raises:
        NotYet: a wrong cost, with a hint (epochs not weighted, not divided, ...).
    """
    name = getattr(answer, "__name__", "relative_cost")
    for stages, source in COST_CASES:
        shown = f"{name}({list(stages)}, {source})"
        got = call_answer(answer, shown, list(stages), source)
        if got is None:
            raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            raise NotYet(f"{shown} returned {describe_value(got)}; expected a float")
        expected = reference_relative_cost(stages, source)
        if not math.isclose(float(got), expected, rel_tol=1e-6, abs_tol=1e-9):
            raise NotYet(f"{shown} returned {float(got):.4f} but expected {expected:.4f}. Hint: "
                         f"{_cost_hint(stages, source, float(got))}")
    return f"compute grows with the pixel count, weighted by epochs ({len(COST_CASES)} cases)"


# ---------------------------------------------------------------------------------------- budget schedule

# (source_size, num_epochs, budget): the first is the fast profile, where lesson 01's recipe with a warm-up at 1/2
# (128 -> 192 -> 256 px over 4, 4, 2 epochs, relative cost 0.525) fits; the last has no schedule that keeps every
# target visible within the budget, and the answer is None.
BUDGET_CASES: tuple[tuple[int, int, float], ...] = ((256, 10, 0.55), (512, 12, 0.5), (1024, 20, 0.3), (256, 8, 1.0),
                                                    (256, 10, 0.3))
MULTIPLE = 16
SLACK = 0.15  # the schedule must use the budget: cost within SLACK below it
TARGET_FRAC = 0.04  # the course's targets: 4 % of the slide's side
MIN_TARGET_PX = 5.0  # lesson 00: below about 5 px across, a target's granules are gone


def min_resolution(source_size: int) -> int:
    """The lowest multiple of ``MULTIPLE`` where a target spans >= ``MIN_TARGET_PX`` px (at most ``source_size``)."""
    return min(source_size, math.ceil(MIN_TARGET_PX / TARGET_FRAC / MULTIPLE) * MULTIPLE)


def feasible(source_size: int, num_epochs: int, budget: float) -> bool:
    """Whether any schedule meets the rules: the cheapest is one epoch at full size, the rest at the lowest
    resolution that keeps targets visible."""
    low = min_resolution(source_size)
    return reference_relative_cost([(low, num_epochs - 1), (source_size, 1)] if num_epochs > 1
                                   else [(source_size, 1)], source_size) <= budget + 1e-9


@register("01.budget_schedule")
def check_budget_schedule(answer: Callable[..., Any]) -> str:
    """Check a learner's schedule for a compute budget (the rules are in ``_check_schedule_rules``).

    Args:
        answer: ``answer(source_size, num_epochs, budget) -> [(resolution, num_epochs), ...]``, or None when no
            schedule keeps every target visible within the budget.

    Returns:
        The PASS message: every budget case met.

    Raises:
        NotYet: a schedule that breaks a rule (epochs, multiples, order, budget, visible targets), with a hint.
    """
    name = getattr(answer, "__name__", "schedule_for_budget")
    for source, num_epochs, budget in BUDGET_CASES:
        shown = f"{name}({source}, {num_epochs}, {budget})"
        got = call_answer(answer, shown, source, num_epochs, budget)
        possible = feasible(source, num_epochs, budget)
        if got is None:
            if possible:
                raise NotYet(f"{shown} returned None, but a schedule exists here: did you forget the `return` "
                             f"statement? At {min_resolution(source)} px targets are already "
                             f"{TARGET_FRAC * min_resolution(source):.1f} px across")
            continue
        try:
            stages = [(int(r), int(e)) for r, e in got]
            exact = all(int(r) == r and int(e) == e for r, e in got)
        except (TypeError, ValueError):
            raise NotYet(f"{shown} returned {describe_value(got)}; expected a list of (resolution, epochs) "
                         "pairs of ints, or None") from None
        if not stages or not exact:
            raise NotYet(f"{shown} returned {got!r}; expected a non-empty list of (resolution, epochs) int pairs")
        _check_schedule_rules(shown, stages, source, num_epochs, budget)
        _check_visible(shown, stages, possible)
    return (f"every schedule ends at full resolution, keeps targets >= {MIN_TARGET_PX:g} px and uses its budget; "
            f"None where no schedule can ({len(BUDGET_CASES)} cases)")


def _check_visible(shown: str, stages: list[tuple[int, int]], possible: bool) -> None:
    low = min(r for r, _ in stages)
    if TARGET_FRAC * low < MIN_TARGET_PX:
        hint = ("" if possible else " No schedule keeps every target visible within this budget: return None "
                "and say so, rather than spend epochs that cannot see the evidence.")
        raise NotYet(f"{shown} trains at {low} px, where a target ({TARGET_FRAC:.0%} of the side) is "
                     f"{TARGET_FRAC * low:.1f} px across, below {MIN_TARGET_PX:g} px: those epochs cost compute but "
                     f"show no granules, so they cannot teach a target from a decoy (lesson 01 measured what such "
                     f"a warm-up gives).{hint}")


def _check_schedule_rules(shown: str, stages: list[tuple[int, int]], source: int, num_epochs: int,
                          budget: float) -> None:
    if sum(e for _, e in stages) != num_epochs or any(e < 1 for _, e in stages):
        raise NotYet(f"{shown} gave {stages}: the epochs must be >= 1 per stage and add up to {num_epochs}")
    res = [r for r, _ in stages]
    if any(r % MULTIPLE or not MULTIPLE <= r <= source for r in res):
        raise NotYet(f"{shown} gave resolutions {res}: each must be a multiple of {MULTIPLE} between {MULTIPLE} "
                     f"and the source size {source}")
    if res != sorted(res):
        raise NotYet(f"{shown} gave resolutions {res}: they must never decrease (low resolution first)")
    if res[-1] != source:
        raise NotYet(f"{shown} ends at {res[-1]} px: finish with at least one epoch at full resolution "
                     f"({source} px), where the small evidence is visible (claim C2's fine-tune stage)")
    cost = reference_relative_cost(stages, source)
    if cost > budget + 1e-9:
        raise NotYet(f"{shown} gave {stages}, relative cost {cost:.3f}, over the budget {budget}. Hint: "
                     "lower the resolution of the early stages (cost grows with resolution squared), or return "
                     "None if targets would then be too small to see")
    if cost < budget - SLACK:
        raise NotYet(f"{shown} gave {stages}, relative cost {cost:.3f}: well under the budget {budget}. Use it: "
                     f"raise the early resolutions until the cost is within {SLACK} of the budget")


# ------------------------------------------------------------------------------------ validation transform

VAL_CASES: tuple[tuple[int, int], ...] = ((64, 256), (128, 256), (256, 256))


def _slide_image(size: int) -> np.ndarray:
    from hrlib.data.slides import make_slide

    return make_slide(size, label=2, seed=11).image


@register("01.val_transform")
def check_val_transform(answer: Callable[..., Any]) -> str:
    """Check a learner's validation transform: deterministic and normalized like ``hrlib.staging.val_transform``.

    Args:
        answer: ``answer(resolution) -> transform``; ``transform(image=img)`` gives a float32 (3, r, r) tensor
            (or albumentations' ``{"image": tensor}``).

    Returns:
        The PASS message: shape, determinism and normalization right.

    Raises:
        NotYet: a random, wrongly sized or wrongly normalized output, with a hint.
    """
    import torch

    from hrlib.staging import val_transform

    name = getattr(answer, "__name__", "make_val_transform")
    for resolution, source in VAL_CASES:
        image = _slide_image(source)
        transform = call_answer(answer, f"{name}({resolution})", resolution)
        if not callable(transform):
            raise NotYet(f"{name}({resolution}) returned {describe_value(transform)}; expected a function that "
                         "takes an image and returns a tensor")
        shown = f"{name}({resolution})(image=image)"
        outs = [call_answer(transform, shown, image=image.copy()) for _ in range(3)]
        outs = [o["image"] if isinstance(o, dict) and "image" in o else o for o in outs]
        if not all(isinstance(o, torch.Tensor) for o in outs):
            raise NotYet(f"{shown} returned {describe_value(outs[0])}; expected a torch.Tensor "
                         "(end with albumentations' ToTensorV2, or torch.from_numpy(...).permute(2, 0, 1))")
        if tuple(outs[0].shape) != (3, resolution, resolution):
            raise NotYet(f"{shown} returned shape {tuple(outs[0].shape)}; expected (3, {resolution}, {resolution}) "
                         "(channels first, exactly the resolution)")
        if not all(torch.equal(outs[0], o) for o in outs[1:]):
            raise NotYet(f"{shown} gave different tensors for the same image: validation must be deterministic "
                         "(claim C8). Remove random crops, flips and colour jitter; use a resize and a center crop")
        expected = val_transform(resolution, source_size=source)(image=image)["image"]
        got = outs[0].float()
        if (float(got.min()) >= 0.0 and float(got.max()) <= 1.0 + 1e-6) or float(got.max()) > 50:
            raise NotYet(f"{shown} is not normalized (values {float(got.min()):.2f}..{float(got.max()):.2f}): "
                         "subtract SLIDE_MEAN and divide by SLIDE_STD on the 0-1 scale")
        err = float((got - expected).abs().mean())
        if err > 0.05:
            raise NotYet(f"{shown} differs from the reference by {err:.3f} on average (normalized units). Hint: "
                         "shrink with area interpolation, center-crop, normalize with SLIDE_MEAN / SLIDE_STD")
    return f"deterministic, normalized and the right size at every resolution ({len(VAL_CASES)} cases)"
