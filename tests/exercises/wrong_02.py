"""Plausible wrong answers for exercise 02: {exercise id: [(wrong function, a word its rejection must contain)]}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WRONG: dict[str, list[tuple[Callable[..., Any], str]]] = {}
