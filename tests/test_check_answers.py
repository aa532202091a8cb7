"""Every graded check against answers written to fool it (tests/check_answers/).

For each check: every wrong answer loses points and the failing part names the property the mistake
breaks; every correct alternative (float64, NumPy, lists, another algorithm) earns every point; each
failed part's hint says something (never "expected X, got X" with equal numbers); and the verdict
the instructor's grader computes by replaying the notebook's record equals the notebook's own.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import check_answers
from course_utils.grading import core
from course_utils.grading.core import get_check, run_check

MIN_WRONG, MIN_RIGHT = 4, 2


def _all_answers() -> dict[str, list]:
    found: dict[str, list] = {}
    for info in pkgutil.iter_modules(check_answers.__path__):
        module = importlib.import_module(f"check_answers.{info.name}")
        for check_id, answers in module.ANSWERS.items():
            found.setdefault(check_id, []).extend(answers)
    return found


ANSWERS = _all_answers()
CASES = [pytest.param(check_id, a, id=f"{check_id}-{'right' if a.correct else 'wrong'}-{a.name}")
         for check_id, answers in sorted(ANSWERS.items()) for a in answers]


def test_every_check_has_enough_answers():
    core._load_lessons()
    short = {}
    for check_id in sorted(core._REGISTRY):
        answers = ANSWERS.get(check_id, [])
        n_wrong, n_right = sum(not a.correct for a in answers), sum(a.correct for a in answers)
        if n_wrong < MIN_WRONG or n_right < MIN_RIGHT:
            short[check_id] = f"{n_wrong} wrong, {n_right} right"
    assert not short, f"each check needs at least {MIN_WRONG} wrong answers and {MIN_RIGHT} correct alternatives: {short}"
    unknown = sorted(set(ANSWERS) - set(core._REGISTRY))
    assert not unknown, f"answers for checks that do not exist: {unknown}"


_SAME = re.compile(r"expected (-?[\w.+\-]+), got \1(?![\w.])")


def _failed_parts(result):
    return [p for p in result.parts if p.earned < p.points]


@pytest.mark.parametrize("check_id, answer", CASES)
def test_check_grades_the_answer(check_id, answer):
    result = run_check(check_id, *answer.objects)
    maximum = get_check(check_id).max_points
    if answer.correct:
        assert result.status == "graded" and result.points == maximum, \
            f"a correct answer lost points:\n{result.feedback()}"
        return
    assert result.points < maximum, f"a wrong answer ({answer.breaks}) got full marks:\n{result.feedback()}"
    failed = _failed_parts(result)
    named = [p.what for p in failed] if result.status == "graded" else [result.message]
    assert any(answer.breaks in text for text in named), \
        f"expected a failed part about {answer.breaks!r}; the check said:\n{result.feedback()}"
    for part in failed:
        if part.what.startswith("remaining properties"):
            continue
        assert part.message.strip(), f"part {part.what!r} failed without a hint"
        assert not _SAME.search(part.message), f"a hint quotes equal values as different: {part.message}"


@pytest.mark.parametrize("check_id, answer", CASES)
def test_the_graders_replay_agrees_with_the_notebook(check_id, answer):
    """What the notebook printed is what the instructor's grader computes from the notebook's record."""
    live, record = core.record_check(check_id, *answer.objects)
    replayed = core.replay_check(core.load_record(record))
    assert (replayed.status, replayed.points, replayed.feedback()) == (live.status, live.points, live.feedback())
