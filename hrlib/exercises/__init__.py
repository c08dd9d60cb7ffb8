"""Self-checking exercises of every lesson (00-08): ``check("00.conv_macs", conv_macs)`` prints PASS or a hint,
and never raises.

A check is a function ``(answer) -> str`` registered with :func:`register`. It returns a short description of
what passed (e.g. ``"matches the reference (6 cases)"``) or raises :class:`NotYet` with a helpful message.
:func:`call_answer` calls the learner's function and turns its exceptions into :class:`NotYet`.
Lesson modules (``hrlib.exercises.ex00``, ...) are imported at the bottom of this file so that their checks
are registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckResult", "NotYet", "call_answer", "check", "describe_value", "list_checks", "register"]

CheckFn = Callable[[Any], str]

_REGISTRY: dict[str, CheckFn] = {}

PASS_MARK = "\u2713 PASS"
FAIL_MARK = "\u2717 NOT YET"
NOT_IMPLEMENTED_MSG = "not implemented yet: replace the `raise NotImplementedError(...)` line with your code"
_MAX_SHOWN = 160


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`check`; truthy when the answer passed.

    Args:
        exercise_id: the exercise, e.g. ``"06.first_divergence"``.
        passed: whether the answer passed.
        message: what passed, or why not (with a hint).
        printed: :func:`check` already printed the line, so a check call ending a notebook cell does not show it
            a second time.
    """

    exercise_id: str
    passed: bool
    message: str
    printed: bool = field(default=False, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.passed

    def line(self) -> str:
        """The one line that :func:`check` prints.

        Returns:
            ``"✓ PASS <id>: <message>"`` or ``"✗ NOT YET <id>: <message>"``.
        """
        return f"{PASS_MARK if self.passed else FAIL_MARK} {self.exercise_id}: {self.message}"

    def __repr__(self) -> str:
        return f"<CheckResult {self.line()}>"

    def _ipython_display_(self) -> None:
        """In Jupyter, show the line once: nothing when ``check`` printed it already."""
        if not self.printed:
            print(self.line())


class NotYet(Exception):
    """Raised by a check to reject an answer; the message is shown to the learner as is."""


def register(exercise_id: str) -> Callable[[CheckFn], CheckFn]:
    """Decorator registering ``fn(answer) -> pass message`` as the check of an exercise.

    Args:
        exercise_id: the exercise, ``"<lesson>.<name>"``; each may be registered once.

    Returns:
        The decorator; it returns ``fn`` unchanged.

    Raises:
        ValueError: ``exercise_id`` is already registered (when decorating).
    """

    def decorator(fn: CheckFn) -> CheckFn:
        if exercise_id in _REGISTRY:
            raise ValueError(f"exercise {exercise_id!r} is already registered")
        _REGISTRY[exercise_id] = fn
        return fn

    return decorator


def list_checks() -> list[str]:
    """The registered exercises.

    Returns:
        Their ids, sorted.
    """
    return sorted(_REGISTRY)


def shorten(text: str, limit: int = _MAX_SHOWN) -> str:
    """A text for a one-line message.

    Args:
        text: any text.
        limit: the most characters to keep.

    Returns:
        ``text`` on one line, cut to ``limit`` characters (ending in ``...`` when cut).
    """
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def describe_value(value: Any) -> str:
    """A short description of a returned value for messages.

    Args:
        value: anything a learner's function returned.

    Returns:
        Its type, and shape and dtype for arrays (else a shortened repr).
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(value).__name__} {shorten(repr(value), 60)}"


def call_answer(answer: Callable[..., Any], shown: str, /, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function.

    Args:
        answer: the learner's function.
        shown: the call as messages show it, e.g. ``"first_divergence(<a clean run>)"``.
        *args: its positional arguments.
        **kwargs: its keyword arguments.

    Returns:
        What ``answer`` returned.

    Raises:
        NotImplementedError: the exercise is not done yet (``check`` reports it).
        NotYet: ``answer`` raised anything else (the message names it).
    """
    try:
        return answer(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as exc:  # the learner's code may raise anything
        detail = shorten(str(exc)) or "(no message)"
        raise NotYet(f"{shown} raised {type(exc).__name__}: {detail}") from None


def _answer_name(answer: Any) -> str:
    return getattr(answer, "__name__", None) or type(answer).__name__


def _precheck(exercise_id: str, answer: Any) -> str | None:
    """A NOT YET message for answers that are not functions, else None."""
    example = f'check("{exercise_id}", my_function)'
    if answer is None:
        return f"no answer given (got None): pass your function itself, e.g. {example}"
    if not callable(answer):
        return (
            f"expected a function, got {describe_value(answer)}: pass the function itself, "
            f"without calling it (no parentheses), e.g. {example}"
        )
    return None


def check(exercise_id: str, answer: Any, *, quiet: bool = False) -> CheckResult:
    """Check an answer and print one PASS / NOT YET line; never raises for a wrong answer.

    Args:
        exercise_id: the exercise, e.g. ``"06.first_divergence"``.
        answer: the learner's function itself (not called).
        quiet: print nothing.

    Returns:
        The outcome (truthy when passed).

    Raises:
        ValueError: unknown ``exercise_id``.
    """
    if exercise_id not in _REGISTRY:
        raise ValueError(f"unknown exercise id {exercise_id!r}; known ids: {', '.join(list_checks())}")
    message = _precheck(exercise_id, answer)
    passed = False
    if message is None:
        try:
            message = _REGISTRY[exercise_id](answer)
            passed = True
        except NotYet as exc:
            message = str(exc)
        except NotImplementedError:
            message = NOT_IMPLEMENTED_MSG
        except Exception as exc:  # a returned object that misbehaves, or a bug in the check itself
            message = (
                f"could not check {_answer_name(answer)}: {type(exc).__name__}: {shorten(str(exc))} "
                "(look at what your function returns)"
            )
    result = CheckResult(exercise_id, passed, message or ("correct" if passed else "wrong answer"), not quiet)
    if not quiet:
        print(result.line())
    return result


# Lesson modules register their checks on import; keep these imports at the bottom.
from hrlib.exercises import ex00, ex01, ex02, ex03, ex04, ex05, ex06, ex07  # noqa: E402, F401, I001
