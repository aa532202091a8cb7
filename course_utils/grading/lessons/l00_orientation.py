"""Checks for exercises/00_orientation.ipynb: two warm-up functions that show how grading works.

Each function is called on inputs of two sizes, on copies (the reference is computed first and the originals
compared afterwards), with the largest weight at the start, in the middle and at the end; both kinds of bad
input (and both kinds of length mismatch) must raise. A crash on one input costs only the part it tests.
"""

from __future__ import annotations

import math

from ..core import register
from ..tensor_checks import as_number, copies, describe, unchanged, where_differs

SET = "00_orientation"


# --------------------------------------------------------------------------- exercise 1


def _floats(got):
    """A learner's weights (list, tuple, NumPy array, tensor) as a list of floats. Anything else raises, and
    the check reports that what the function returned could not be checked (a forgotten `return`, say)."""
    return [float(v) for v in got]


@register("00.normalise", title="turn scores into weights that sum to one", exercise_set=SET, points=3)
def check_normalise(t, normalise):
    # two sizes; a zero score among positive ones (valid: its weight is 0)
    cases = [[1.0, 3.0, 4.0], [2.0, 0.0, 6.0, 2.0, 10.0, 5.0]]
    hint, kept_all = "", True
    for scores in cases:
        want = [s / sum(scores) for s in scores]                    # the reference first, the learner gets a copy
        copy, = copies(scores)
        got, crash = t.attempt(normalise, copy)
        kept_all &= unchanged((scores,), (copy,))
        if hint:
            continue
        if crash:
            hint = f"normalise({scores}) raised {crash}; " + \
                ("a zero score is allowed when another one is positive (its weight is 0)" if 0.0 in scores else
                 "these scores are valid")
            continue
        values = _floats(got)
        where = where_differs(values, want, atol=1e-6, rtol=1e-6)
        if where:
            hint = f"normalise({scores}) should be {[round(w, 4) for w in want]} (each score divided by the sum, " \
                   f"{sum(scores):g}); {where}"
    t.expect(not hint, 1, "weights are the scores divided by their sum (two sizes, a zero score allowed)", hint)
    t.expect(kept_all, 1, "leaves the list it is given unchanged",
             "normalise changed the list it was given (the caller's scores are gone); build and return a new list")
    bad_inputs = {"a negative score has no weight": [1.0, -2.0, 3.0],
                  "all-zero scores have no weights, since 0 / 0 is undefined": [0.0, 0.0]}
    missing = [f"normalise({bad}) should raise ValueError: {why}" for why, bad in bad_inputs.items()
               if not t.raises(normalise, ValueError, list(bad))]
    t.expect(not missing, 1, "rejects negative scores and an all-zero list with ValueError", "; ".join(missing))


# --------------------------------------------------------------------------- exercise 2


@register("00.top_word", title="the word with the largest weight", exercise_set=SET, points=2)
def check_top_word(t, top_word):
    cases = [([0.1, 0.7, 0.2], ["the", "cat", "sat"], "cat"),                              # the example, middle
             ([0.2, 0.1, 0.3, 0.9, 0.9, 0.4], ["a", "b", "c", "d", "e", "f"], "d"),        # a tie past index 2
             ([0.9, 0.2, 0.4, 0.1], ["w", "x", "y", "z"], "w"),                            # the first word
             ([0.1, 0.3, 0.2, 0.05, 0.6], ["p", "q", "r", "s", "t"], "t")]                 # the last word
    hint = ""
    for weights, words, want in cases:
        got, crash = t.attempt(top_word, list(weights), list(words))
        if hint:
            continue
        if crash:
            hint = f"top_word({weights}, {words}) raised {crash}"
        elif got != want:
            tie = weights.count(max(weights)) > 1
            hint = f"top_word({weights}, {words}) should be {want!r} " + \
                ("(on a tie, the first of the tied words)" if tie else f"(the largest weight is at index "
                                                                       f"{weights.index(max(weights))})") + \
                f", got {got!r}" + (f" ({describe(got)})" if not isinstance(got, str) else "")
    t.expect(not hint, 1, "picks the word whose weight is largest, the first one on a tie (4 lists, 3 to 6 words)",
             hint)
    wrong = []
    for weights, words in (([0.5, 0.5, 0.0], ["a", "b"]), ([0.2, 0.8], ["a", "b", "c"])):
        names, message = t.error_of(top_word, list(weights), list(words))
        gives_lengths = all(str(n) in message for n in (len(weights), len(words)))
        if "ValueError" not in names or not gives_lengths:
            wrong.append(f"{len(weights)} weights for {len(words)} words " +
                         (f"should raise ValueError, not {names[0]}" if names and "ValueError" not in names else
                          "should raise ValueError" if not names else
                          f"raised ValueError({message!r}), which should give both lengths"))
    t.expect(not wrong, 1, "rejects weights and words of different lengths (either one longer) with a ValueError "
                           "that gives both lengths", "; ".join(wrong))


# --------------------------------------------------------------------------- exercise 3


@register("00.predict", title="predict the widget's weights before moving the slider", exercise_set=SET, points=2)
def check_predict(t, cat_weight_at_six, cat_score_for_half):
    questions = [(cat_weight_at_six, 0.75, 0.005, "cat's weight when its score is 6 (the others 1)",
                  "The weights are shares of the total: cat's score divided by the sum of all three"),
                 (cat_score_for_half, 2.0, 0.01, "the cat score that gives cat exactly half of the weight",
                  "Half the weight means cat's score equals the other two scores together")]
    for predict, want, tol, what, explanation in questions:
        got, crash = t.attempt(predict)
        value = as_number(got)
        t.expect(value is not None and math.isclose(value, want, abs_tol=tol), 1, what,
                 f"your function raised {crash}" if crash else
                 f"you predicted {got!r}" + ("" if value is not None else f" ({describe(got)}, not a number)") +
                 f". {explanation}")
