"""Answers to every graded check, written to test the checks themselves (see tests/test_check_answers.py).

Each module ``lNN_<set>.py`` here defines ``ANSWERS``: check id -> a list of ``right(...)`` and
``wrong(...)`` answers. An answer holds what a learner's notebook would pass to ``check(check_id, ...)``
after the id: the learner's functions (and values, for predictions), in that order.

- ``right(name, *objects)``: a correct answer written differently from the solution (float64 inside,
  NumPy or lists returned, a list where the solution returns a tuple, another algorithm). It must earn
  every point.
- ``wrong(name, *objects, breaks=...)``: a plausible mistake of a kind a learner makes (a size taken
  from the example instead of the argument, a naive or globally shifted softmax, only the edge cases
  right, raising on one kind of mismatch only, changing an input in place, ...). It must not earn full
  marks, and ``breaks`` is a piece of text from the ``what`` of a part that must fail (or of the
  message, when the check cannot grade the answer at all): the check names the property the mistake
  breaks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    name: str
    objects: tuple
    breaks: str | None = None  # None: a correct answer

    @property
    def correct(self) -> bool:
        return self.breaks is None


def right(name: str, *objects) -> Answer:
    return Answer(name, objects)


def wrong(name: str, *objects, breaks: str) -> Answer:
    if not breaks:
        raise ValueError(f"wrong answer {name!r}: say which property it breaks (breaks=...)")
    return Answer(name, objects, breaks)
