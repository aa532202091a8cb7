"""Graded checks: a registry of checks with points, run in a learner's notebook for instant feedback.

A check is a function ``(checker, *learner_objects)`` registered under an id such as
``"01.final_state"``. It calls the learner's code through ``checker.call`` and scores each property
it tests with ``checker.expect(condition, points, what, hint)``, so partial answers earn partial
credit and every failure says what was wrong and what was expected.

In a notebook, a check cell is one line::

    check("01.final_state", final_state)

It prints the feedback. Every call into learner code is recorded (see ``record``): its result comes
back to the check as plain data, the same in the notebook and in the grader. When the instructor's
grader runs the notebook it sets ``COURSE_GRADING_RECORDS`` to a folder; each check cell then also
saves its record there, and the grader replays the record in its own process (``replay_check``) to
compute the points: nothing the notebook prints, writes or patches is taken as a verdict.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Callable

from . import record as _record

RECORDS_ENV = "COURSE_GRADING_RECORDS"


class _LearnerCodeFailed(Exception):
    """Raised inside a check when the learner's code raised; ends the check."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


LearnerCodeFailed = _LearnerCodeFailed  # for checks that call learner code through their own wrappers


class _CheckStopped(Exception):
    """Raised by ``Checker.require`` when later parts cannot be tested."""


class _RecordMismatch(Exception):
    """In the grader: the check asked for a call that the record does not hold (other inputs, other order)."""


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
    status: str = "graded"  # graded | not_attempted | crashed | bad_result | bad_record
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
        if self.status == "bad_record":
            return f"[x] {head}\n    the grader could not use this check's record: {self.message}"
        mark = "[ok]" if self.points == self.max_points else "[x]"
        lines = [f"{mark} {head}"]
        for p in self.parts:
            sign = "ok  " if p.earned == p.points else "FAIL"
            lines.append(f"    {sign} {p.what} ({p.earned:g}/{p.points:g})")
            if p.earned < p.points and p.message:
                lines.append(f"         -> {p.message}")
        return "\n".join(lines)


class Checker:
    """Collects the scored parts of one check, and the record of its calls into learner code.

    Live (in the notebook) it runs learner code and writes down each call; replaying (in the grader,
    ``replay`` set to a record's calls) it runs no learner code: each call returns what the record
    says the learner's code returned, after checking that the grader's arguments are the notebook's.
    Either way the check sees ``record.round_trip`` of the result: plain data only.
    """

    def __init__(self, replay: list | None = None):
        self.parts: list[Part] = []
        self.calls: list[dict] = []
        self._replay = None if replay is None else iter(replay)

    def _next(self, kind: str, args: tuple, kwargs: dict) -> dict:
        entry = next(self._replay, None)
        if type(entry) is not dict or entry.get("kind") != kind:
            raise _RecordMismatch(f"the record has no {kind} here")
        if entry.get("args") != _record.fingerprint(args, kwargs):
            raise _RecordMismatch("the record was made on other inputs than the grader's")
        if type(entry.get("changed", {})) is not dict:
            raise _RecordMismatch("the record's note of changed arguments is not readable")
        _record.apply_changes(args, kwargs, entry.get("changed", {}))
        return entry

    def call(self, fn: Callable, *args, **kwargs):
        """Call learner code and return its result as plain data; if it raises, the check ends and the error is
        reported. Anything a check does with learner code (or with what it returned beyond its values, such as
        ``backward()``) must happen inside one ``call``: wrap it in a closure."""
        if not callable(fn):
            raise _LearnerCodeFailed(f"expected a function, got {type(fn).__name__} {fn!r:.60}")
        if self._replay is not None:
            entry = self._next("call", args, kwargs)
            if entry.get("not_implemented"):
                raise NotImplementedError
            if "raised" in entry:
                raise _LearnerCodeFailed(str(entry["raised"]))
            return _record.decode(entry.get("result"))
        entry = {"kind": "call", "args": _record.fingerprint(args, kwargs)}
        before = _record.snapshot(args, kwargs)
        self.calls.append(entry)
        try:
            result = fn(*args, **kwargs)
        except NotImplementedError:
            entry["not_implemented"] = True
            raise
        except Exception as err:  # the learner's bug, reported not raised
            entry["raised"] = f"{type(err).__name__}: {err}"[:2000]
            raise _LearnerCodeFailed(entry["raised"]) from err
        finally:
            entry["changed"] = _record.changes(args, kwargs, before)
        entry["result"] = _record.encode(result)
        return _record.decode(entry["result"])

    def raises(self, fn: Callable, exception: type[BaseException], *args, **kwargs) -> bool:
        """Whether learner code raises ``exception`` for these arguments (returning, or raising anything else,
        counts as not raising it)."""
        if self._replay is not None:
            names = self._next("raises", args, kwargs).get("raised") or []
            return exception.__name__ in names
        entry = {"kind": "raises", "args": _record.fingerprint(args, kwargs), "raised": None}
        before = _record.snapshot(args, kwargs)
        self.calls.append(entry)
        try:
            fn(*args, **kwargs)
        except Exception as err:  # its class and base classes' names: the grader asks for one of them
            entry["raised"] = [c.__name__ for c in type(err).__mro__]
        finally:
            entry["changed"] = _record.changes(args, kwargs, before)
        return exception.__name__ in (entry["raised"] or [])

    def attempt(self, fn: Callable, *args, **kwargs) -> tuple:
        """Like ``call``, but when the learner's code raises, return ``(None, "ErrorType: message")`` instead of
        ending the check: a crash on one input costs the part that input tests, not the parts already earned.
        Returns ``(result, "")`` otherwise."""
        try:
            return self.call(fn, *args, **kwargs), ""
        except _LearnerCodeFailed as err:
            return None, err.message

    def error_of(self, fn: Callable, *args, **kwargs) -> tuple[list[str], str]:
        """What learner code raises for these arguments: (the error's class names, base classes included, and its
        message), or ``([], "")`` when it returns. For exercises whose error message must say something."""
        def run(*inputs, **named):
            try:
                fn(*inputs, **named)
            except NotImplementedError:
                raise
            except Exception as err:  # noqa: BLE001  (which error, if any, is what a check tests)
                return [c.__name__ for c in type(err).__mro__], str(err)
            return [], ""

        names, message = self.call(run, *args, **kwargs)
        return list(names), str(message)

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


def _learner_objects(objects: tuple) -> list:
    """How the learner's objects are recorded: code as a marker, values as data."""
    return [{"__course__": "learner_code"} if callable(o) else _record.encode(o) for o in objects]


def _run(chk: Check, checker: Checker, objects) -> CheckResult:
    result = CheckResult(chk.check_id, chk.title, chk.max_points)
    try:
        chk.fn(checker, *objects)
        if checker._replay is not None and next(checker._replay, None) is not None:
            raise _RecordMismatch("the record holds calls that the check did not make")
    except NotImplementedError:
        result.status = "not_attempted"
        result.message = "the function still raises NotImplementedError; replace that line with your code"
    except _LearnerCodeFailed as err:
        result.status = "crashed"
        result.message = err.message
    except _CheckStopped:
        pass
    except (_RecordMismatch, _record.MalformedRecord) as err:
        checker.parts = []
        result.status = "bad_record"
        result.message = f"{err}; was the grading code changed in the notebook? Run the notebook as it was given"
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
            raise RuntimeError(f"check {chk.check_id!r} awarded {total} points but is worth {chk.max_points}: "
                               "a bug in the check")
    return result


def record_check(check_id: str, *learner_objects) -> tuple[CheckResult, dict]:
    """Run a check against the learner's objects (running their code); return its result and its record."""
    chk = get_check(check_id)
    checker = Checker()
    objects = [_record.round_trip(o) if not callable(o) else o for o in learner_objects]
    result = _run(chk, checker, objects)
    record = {"format": _record.FORMAT, "check_id": check_id, "objects": _learner_objects(learner_objects),
              "calls": checker.calls}
    return result, record


def run_check(check_id: str, *learner_objects) -> CheckResult:
    """Run a check against the learner's objects and return its result (nothing printed)."""
    return record_check(check_id, *learner_objects)[0]


def load_record(record) -> dict:
    """A record as the grader receives it: through bytes, loaded with weights_only (see ``record.loads``)."""
    return _record.loads(_record.dumps(record) if isinstance(record, dict) else record)


def replay_check(record: dict) -> CheckResult:
    """In the grader: the check's verdict from a notebook's record, running no learner code."""
    chk = get_check(record["check_id"])
    checker = Checker(replay=record["calls"])
    try:
        objects = [_record.LearnerCode(i) if type(o) is dict and o.get("__course__") == "learner_code"
                   else _record.decode(o) for i, o in enumerate(record["objects"])]
    except _record.MalformedRecord as err:
        result = CheckResult(chk.check_id, chk.title, chk.max_points, status="bad_record", message=str(err))
        return result
    return _run(chk, checker, objects)


_SEQUENCE = itertools.count(1)


def check(check_id: str, *learner_objects) -> None:
    """The check cell's function: run the check, print feedback, save its record for the grader."""
    result, record = record_check(check_id, *learner_objects)
    print(result.feedback())
    folder = os.environ.get(RECORDS_ENV)
    if folder:
        path = os.path.join(folder, f"{os.getpid()}-{next(_SEQUENCE):05d}.pt")
        with open(path + ".part", "wb") as fh:
            fh.write(_record.dumps(record))
        os.replace(path + ".part", path)
