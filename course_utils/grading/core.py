"""Graded checks: a registry of checks with points, run in a learner's notebook for instant feedback.

A check is a function ``(checker, *learner_objects)`` registered under an id such as
``"01.final_state"``. It calls the learner's code through ``checker.call`` and scores each property
it tests with ``checker.expect(condition, points, what, hint)``, so partial answers earn partial
credit and every failure says what was wrong and what was expected.

In a notebook, a check cell is one line::

    check("01.final_state", final_state)

It prints the feedback. When the instructor's grader runs the notebook it sets the environment
variable ``COURSE_GRADING_RESULTS``; each check then also appends its result to that file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable

RESULTS_ENV = "COURSE_GRADING_RESULTS"


class _LearnerCodeFailed(Exception):
    """Raised inside a check when the learner's code raised; ends the check."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _CheckStopped(Exception):
    """Raised by ``Checker.require`` when later parts cannot be tested."""


@dataclass
class Part:
    what: str
    points: float
    earned: float
    message: str = ""


@dataclass
class CheckResult:
    check_id: str
    title: str
    max_points: float
    parts: list[Part] = field(default_factory=list)
    status: str = "graded"  # graded | not_attempted | crashed | bad_result
    message: str = ""

    @property
    def points(self) -> float:
        return float(sum(p.earned for p in self.parts)) if self.status == "graded" else 0.0

    def feedback(self) -> str:
        head = f"{self.check_id} ({self.title}): {self.points:g}/{self.max_points:g} points"
        if self.status == "not_attempted":
            return f"[ ] {head}\n    not attempted yet: {self.message}"
        if self.status == "crashed":
            return f"[x] {head}\n    your code raised an error: {self.message}"
        if self.status == "bad_result":
            return f"[x] {head}\n    what your code returned could not be checked: {self.message}"
        mark = "[ok]" if self.points == self.max_points else "[x]"
        lines = [f"{mark} {head}"]
        for p in self.parts:
            sign = "ok  " if p.earned == p.points else "FAIL"
            lines.append(f"    {sign} {p.what} ({p.earned:g}/{p.points:g})")
            if p.earned < p.points and p.message:
                lines.append(f"         -> {p.message}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        data = asdict(self)
        data["points"] = self.points
        return data


class Checker:
    """Collects the scored parts of one check."""

    def __init__(self):
        self.parts: list[Part] = []

    def call(self, fn: Callable, *args, **kwargs):
        """Call learner code; if it raises, the check ends and the error is reported."""
        if not callable(fn):
            raise _LearnerCodeFailed(f"expected a function, got {type(fn).__name__} {fn!r:.60}")
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as err:  # the learner's bug, reported not raised
            raise _LearnerCodeFailed(f"{type(err).__name__}: {err}") from err

    @staticmethod
    def raises(fn: Callable, exception: type[BaseException], *args, **kwargs) -> bool:
        """Whether learner code raises ``exception`` for these arguments (returning, or raising
        anything else, counts as not raising it)."""
        try:
            fn(*args, **kwargs)
        except exception:
            return True
        except Exception:
            return False
        return False

    def expect(self, ok, points: float, what: str, hint: str = "") -> bool:
        """Score one property: ``points`` if ``ok`` is true, else 0 with ``hint`` as the feedback."""
        ok = bool(ok)
        self.parts.append(Part(what, float(points), float(points) if ok else 0.0, "" if ok else hint))
        return ok

    def require(self, ok, points: float, what: str, hint: str = "") -> None:
        """Like ``expect``, but stop the check on failure (later parts would only repeat the error)."""
        if not self.expect(ok, points, what, hint):
            raise _CheckStopped


@dataclass
class Check:
    check_id: str
    title: str
    exercise_set: str
    max_points: float
    fn: Callable


_REGISTRY: dict[str, Check] = {}


def register(check_id: str, *, title: str, exercise_set: str, points: float):
    """Decorator that adds a check to the registry. ``points`` is the check's total."""

    def wrap(fn):
        if check_id in _REGISTRY:
            raise ValueError(f"check {check_id!r} is registered twice")
        _REGISTRY[check_id] = Check(check_id, title, exercise_set, float(points), fn)
        return fn

    return wrap


def _load_lessons() -> None:
    from . import lessons  # noqa: F401  (importing registers every lesson's checks)


def get_check(check_id: str) -> Check:
    _load_lessons()
    if check_id not in _REGISTRY:
        raise KeyError(f"no check named {check_id!r}; known checks: {sorted(_REGISTRY)}")
    return _REGISTRY[check_id]


def checks_for(exercise_set: str) -> list[Check]:
    """The checks of one exercise set (e.g. '01_bottleneck'), in registration order."""
    _load_lessons()
    found = [c for c in _REGISTRY.values() if c.exercise_set == exercise_set]
    if not found:
        sets = sorted({c.exercise_set for c in _REGISTRY.values()})
        raise KeyError(f"no checks for exercise set {exercise_set!r}; known sets: {sets}")
    return found


def run_check(check_id: str, *learner_objects) -> CheckResult:
    """Run a check against the learner's objects and return its result (nothing printed)."""
    chk = get_check(check_id)
    checker = Checker()
    result = CheckResult(chk.check_id, chk.title, chk.max_points)
    try:
        chk.fn(checker, *learner_objects)
    except NotImplementedError:
        result.status = "not_attempted"
        result.message = "the function still raises NotImplementedError; replace that line with your code"
    except _LearnerCodeFailed as err:
        result.status = "crashed"
        result.message = err.message
    except _CheckStopped:
        pass
    except Exception as err:  # the check choked on the learner's return value (e.g. None: a missing `return`)
        result.status = "bad_result"
        result.message = f"{type(err).__name__}: {err} (does it return what the exercise asks for?)"
    result.parts = checker.parts
    if result.status == "graded":
        total = sum(p.points for p in result.parts)
        missing = chk.max_points - total
        if missing > 1e-9:  # parts skipped after a failed requirement still count in the total
            result.parts.append(Part("remaining properties (not tested until the failure above is fixed)", missing, 0.0,
                                     "fix the failure above; the rest of this check runs after that"))
        elif missing < -1e-9:
            raise RuntimeError(f"check {check_id!r} awarded {total} points but is worth {chk.max_points}: a bug in the check")
    return result


def check(check_id: str, *learner_objects) -> None:
    """The check cell's function: run the check, print feedback, record it for the grader."""
    result = run_check(check_id, *learner_objects)
    print(result.feedback())
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result.to_json()) + "\n")
