"""Checks for exercises/00_orientation.ipynb: two warm-up functions that show how grading works."""

from __future__ import annotations

import math

from ..core import register

SET = "00_orientation"


@register("00.normalise", title="turn scores into weights that sum to one", exercise_set=SET, points=3)
def check_normalise(t, normalise):
    got = t.call(normalise, [1.0, 3.0, 4.0])
    values = [float(v) for v in got]
    t.require(len(values) == 3, 1, "returns one weight per score", f"expected 3 weights for 3 scores, got {len(values)}")
    t.expect(math.isclose(sum(values), 1.0, abs_tol=1e-9) and values == sorted(values)
             and all(math.isclose(v, e) for v, e in zip(values, [0.125, 0.375, 0.5])), 1,
             "weights are the scores divided by their sum",
             f"normalise([1, 3, 4]) should be [0.125, 0.375, 0.5], got {values}")
    raised = [t.raises(normalise, ValueError, bad) for bad in ([1.0, -2.0], [0.0, 0.0])]
    t.expect(all(raised), 1, "rejects negative scores and an all-zero list with ValueError",
             "normalise([1, -2]) and normalise([0, 0]) should raise ValueError: no valid weights exist")


@register("00.top_word", title="the word with the largest weight", exercise_set=SET, points=2)
def check_top_word(t, top_word):
    got = t.call(top_word, [0.1, 0.7, 0.2], ["the", "cat", "sat"])
    t.expect(got == "cat", 1, "picks the word whose weight is largest",
             f"top_word([0.1, 0.7, 0.2], ['the', 'cat', 'sat']) should be 'cat', got {got!r}")
    t.expect(t.raises(top_word, ValueError, [0.5, 0.5, 0.0], ["a", "b"]), 1, "rejects weights and words of different lengths with ValueError",
             "3 weights for 2 words should raise ValueError that says both lengths")
