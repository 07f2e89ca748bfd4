"""Checked exercises for the notebook series: `check(name, answer)` says what passed and what not.
Sits at the top of the stack, beside the notebooks; `build` makes the student notebooks.

Each exercise is a function registered under a name such as ``"03.top3"``. It receives the
learner's answer and raises `Wrong` with a message naming what is still wrong (or `NotYet` when
nothing was answered); it returns the lines that passed. `check` never lets a traceback reach
the learner: a failing answer, or learner code that raises, comes back as a `Result` that prints
as a short report.
"""

from __future__ import annotations

import functools
import operator
import site
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "EXERCISES",
    "Exercise",
    "NotYet",
    "Result",
    "Wrong",
    "check",
    "exercise",
    "whole_number",
]


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


def whole_number(value: object) -> int | None:
    """`value` as an int when it is a whole number of any integer type (int, numpy's, a 0-d
    integer tensor): a right value is right whatever its type; None for anything else."""
    if isinstance(value, bool):
        return None
    if type(value).__name__ == "Tensor":  # torch without importing it here
        return int(value) if value.numel() == 1 and not value.is_floating_point() else None
    try:
        return operator.index(value)
    except TypeError:
        return None


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
    """A learner's exception as two readable lines: what, and the line of *their* code it came from.

    Only the learner's own code is quoted (a notebook cell, their handler file, a script of
    theirs): never a line of handlerkit's check or of a library it called. When no frame is
    theirs, the error happened while the check used their answer, and the message says so.
    """
    frames = traceback.extract_tb(error.__traceback__)
    mine = [frame for frame in frames if learners(frame.filename)]
    what = f"{type(error).__name__}: {error}"
    if not mine:
        return [
            f"the check could not use your answer ({what})",
            "look at its types: plain ints, floats, lists and dicts, as the exercise asks",
        ]
    lines = [f"your code raised {what}"]
    if mine[-1].line:
        lines.append(f"at: {mine[-1].line.strip()}")
    return lines


def learners(filename: str) -> bool:
    """True for a frame of the learner's code: not handlerkit, Python's library or a package."""
    name = filename.replace("\\", "/")
    if name.startswith("<ipython-input-") or "/ipykernel_" in name:
        return True  # a notebook cell
    if name in ("<string>", "<stdin>"):
        return True  # code the learner exec'd or typed
    if name.startswith("<"):
        return False  # <frozen importlib._bootstrap> and the like
    path = Path(name).resolve()
    return not any(path.is_relative_to(root) for root in _library_roots())


@functools.cache
def _library_roots() -> tuple[Path, ...]:
    """Folders whose code is not the learner's: handlerkit, the standard library, packages."""
    paths = sysconfig.get_paths()
    roots = [Path(__file__).resolve().parents[1]]  # the handlerkit package
    roots += [Path(paths[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    roots += [Path(p).resolve() for p in site.getsitepackages() if Path(p).exists()]
    return tuple(dict.fromkeys(roots))
