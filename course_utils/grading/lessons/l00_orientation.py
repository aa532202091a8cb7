"""Checks for exercises/00_orientation.ipynb: two warm-up functions that show how grading works."""

from __future__ import annotations

import math

from ..core import register
from ..tensor_checks import as_number, copies, unchanged, where_differs

SET = "00_orientation"


def _floats(got):
    """A learner's weights (list, tuple, NumPy array, tensor) as a list of floats. Anything else raises, and
    the check reports that what the function returned could not be checked (a forgotten `return`, say)."""
    return [float(v) for v in got]


@register("00.normalise", title="turn scores into weights that sum to one", exercise_set=SET, points=3)
def check_normalise(t, normalise):
    cases = [[1.0, 3.0, 4.0], [2.0, 0.0, 6.0, 2.0, 10.0]]          # two sizes, one with a zero score
    results = []
    for scores in cases:
        want = [s / sum(scores) for s in scores]                    # the reference first, the learner gets a copy
        copy, = copies(scores)
        results.append((scores, want, _floats(t.call(normalise, copy)), unchanged((scores,), (copy,))))
    short = next(((s, v) for s, _, v, _ in results if len(v) != len(s)), None)
    t.require(short is None, 1, "returns one weight per score",
              "" if short is None else f"normalise({short[0]}) should give {len(short[0])} weights, got {len(short[1])}")
    hint = ""
    for scores, want, values, kept in results:
        where = where_differs(values, want, atol=1e-9, rtol=1e-9)
        if where:
            hint = f"normalise({scores}) should be {want}; {where}"
            break
        if not kept:
            hint = f"normalise({scores}) changed the list it was given; build a new list instead"
            break
    t.expect(not hint, 1, "weights are the scores divided by their sum (two sizes)", hint)
    raised = [t.raises(normalise, ValueError, bad) for bad in ([1.0, -2.0], [0.0, 0.0])]
    t.expect(all(raised), 1, "rejects negative scores and an all-zero list with ValueError",
             "normalise([1, -2]) and normalise([0, 0]) should raise ValueError: no valid weights exist")


@register("00.top_word", title="the word with the largest weight", exercise_set=SET, points=2)
def check_top_word(t, top_word):
    cases = [([0.1, 0.7, 0.2], ["the", "cat", "sat"], "cat"),
             ([0.3, 0.1, 0.9, 0.9, 0.2], ["a", "b", "c", "d", "e"], "c")]   # another size, and a tie: the first
    hint = ""
    for weights, words, want in cases:
        got = t.call(top_word, list(weights), list(words))
        if got != want:
            hint = f"top_word({weights}, {words}) should be {want!r}, got {got!r}" + \
                (" (on a tie, the first of the tied words)" if weights.count(max(weights)) > 1 else "")
            break
    t.expect(not hint, 1, "picks the word whose weight is largest, the first one on a tie (two sizes)", hint)
    t.expect(t.raises(top_word, ValueError, [0.5, 0.5, 0.0], ["a", "b"]), 1, "rejects weights and words of different lengths with ValueError",
             "3 weights for 2 words should raise ValueError that says both lengths")


@register("00.predict", title="predict the widget's weights before moving the slider", exercise_set=SET, points=2)
def check_predict(t, cat_weight_at_six, cat_score_for_half):
    questions = [(cat_weight_at_six, 0.75, 0.005, "cat's weight when its score is 6 (the others 1)",
                  "The weights are shares of the total: cat's score divided by the sum of all three"),
                 (cat_score_for_half, 2.0, 0.01, "the cat score that gives cat exactly half of the weight",
                  "Half the weight means cat's score equals the other two scores together")]
    for predict, want, tol, what, explanation in questions:
        got = t.call(predict)
        value = as_number(got)
        t.expect(value is not None and math.isclose(value, want, abs_tol=tol), 1, what,
                 f"you predicted {got!r}. {explanation}")
