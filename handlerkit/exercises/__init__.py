"""Checked exercises for the notebook series: `check(name, answer)` says what passed and what not.
Sits at the top of the stack, beside the notebooks; `build` makes the student notebooks.

Each exercise is a function registered under a name such as ``"03.top3"``. It receives the
learner's answer and raises `Wrong` with a message naming what is still wrong (or `NotYet` when
nothing was answered); it returns the lines that passed. `check` never lets a traceback reach
the learner: a failing answer, or learner code that raises, comes back as a `Result` that prints
as a short report.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["EXERCISES", "Exercise", "NotYet", "Result", "Wrong", "check", "exercise"]


class Wrong(Exception):
    """An answer the check looked at and found wrong; the message says what to change."""


class NotYet(Exception):
    """No answer yet (still `...` or None, or a function that returns None)."""


@dataclass(frozen=True)
class Exercise:
    """One checked exercise.

    Attributes:
        name: ``"NN.short_name"``, NN the notebook's number.
        title: What the learner is asked, in one line.
        check: Takes the answer; returns the lines that passed; raises `Wrong` or `NotYet`.
    """

    name: str
    title: str
    check: Callable[[object], list[str]]


@dataclass
class Result:
    """What `check` found: passed or not, and the lines that say why. Prints as a report."""

    name: str
    status: str  # "passed", "wrong" or "not yet"
    lines: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        mark = {"passed": "passed", "wrong": "still wrong", "not yet": "not yet"}[self.status]
        return "\n".join([f"{self.name}: {mark}"] + [f"  {line}" for line in self.lines])

    __repr__ = __str__


EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, title: str) -> Callable:
    """Register the decorated function as the check of exercise `name`."""

    def register(function: Callable) -> Callable:
        EXERCISES[name] = Exercise(name, title, function)
        return function

    return register


def unanswered(answer: object) -> bool:
    """True for the placeholders a student notebook starts with: `...` and None."""
    return answer is ... or answer is None


def check(name: str, answer: object) -> Result:
    """Check the learner's `answer` to exercise `name`; never raises for a wrong answer.

    Args:
        name: The exercise, e.g. ``"03.top3"`` (the notebook's cell names it).
        answer: A value, a function or a class, as the exercise asks; `...` means not answered.

    Returns:
        A `Result`: ``passed``, ``still wrong`` with what to change, or ``not yet``.
    """
    from . import checks  # noqa: F401  (registers every exercise on first use)

    if name not in EXERCISES:
        known = ", ".join(sorted(EXERCISES))
        return Result(name, "wrong", [f"there is no exercise {name!r}; the exercises: {known}"])
    task = EXERCISES[name]
    if unanswered(answer):
        return Result(name, "not yet", [f"{task.title}: replace the ... with your answer"])
    try:
        passed = task.check(answer)
    except NotYet as why:
        return Result(name, "not yet", [str(why) or task.title])
    except Wrong as why:
        return Result(name, "wrong", str(why).splitlines())
    except Exception as error:  # learner code that raised: name it, show where, no full dump
        return Result(name, "wrong", raised(error))
    return Result(name, "passed", list(passed))


def raised(error: BaseException) -> list[str]:
    """A learner's exception as two or three readable lines: what, and the line that raised."""
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if "handlerkit" not in f.filename.replace("\\", "/").split("/")[-2:]]
    where = mine[-1] if mine else (frames[-1] if frames else None)
    lines = [f"your code raised {type(error).__name__}: {error}"]
    if where is not None and where.line:
        lines.append(f"at: {where.line.strip()}")
    return lines
