"""Answers to the checks of exercises/00_orientation.ipynb: right ones written differently from the solution,
wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from . import right, wrong


def _validate(scores):
    if any(s < 0 for s in scores):
        raise ValueError(f"negative scores have no weights: {scores}")
    if not any(scores):
        raise ValueError("all scores are zero: the weights are undefined")


# --------------------------------------------------------------------------- exercise 1: normalise


def normalise_numpy(scores):
    """A float64 NumPy array returned."""
    s = np.asarray(scores, dtype=np.float64)
    if (s < 0).any() or s.sum() == 0:
        raise ValueError(f"no weights for {scores}: scores must be non-negative and not all zero")
    return s / s.sum()


def normalise_fractions_tuple(scores):
    """Exact fractions inside, floats returned as a tuple."""
    _validate(scores)
    total = sum(Fraction(s) for s in scores)
    return tuple(float(Fraction(s) / total) for s in scores)


def normalise_tensor(scores):
    """A float32 tensor, math.fsum for the total."""
    _validate(scores)
    return torch.tensor(scores) / math.fsum(scores)


def normalise_first_three(scores):
    """The total of the example's three scores, hard-coded."""
    _validate(scores)
    total = scores[0] + scores[1] + scores[2]
    return [s / total for s in scores]


def normalise_in_place(scores):
    """Overwrites the caller's list and returns it."""
    _validate(scores)
    total = sum(scores)
    for i, s in enumerate(scores):
        scores[i] = s / total
    return scores


def normalise_no_zero_check(scores):
    """Rejects negative scores, but all zeros end in ZeroDivisionError instead of ValueError."""
    if any(s < 0 for s in scores):
        raise ValueError("negative score")
    return [s / sum(scores) for s in scores]


def normalise_no_negative_check(scores):
    """Rejects all zeros, but negative scores give negative 'weights'."""
    total = sum(scores)
    if total == 0:
        raise ValueError("all zero")
    return [s / total for s in scores]


def normalise_softmax(scores):
    """The softmax of the scores: weights that sum to one, but not the shares of the total."""
    _validate(scores)
    e = [math.exp(s) for s in scores]
    return [x / sum(e) for x in e]


def normalise_rejects_a_zero(scores):
    """Treats any zero score as invalid, although one zero among positive scores is fine."""
    if any(s <= 0 for s in scores):
        raise ValueError("scores must be positive")
    return [s / sum(scores) for s in scores]


def normalise_by_max(scores):
    """Divides by the largest score instead of the sum."""
    _validate(scores)
    return [s / max(scores) for s in scores]


# --------------------------------------------------------------------------- exercise 2: top_word


def _same_length(weights, words):
    if len(weights) != len(words):
        raise ValueError(f"{len(weights)} weights but {len(words)} words")


def top_word_argmax(weights, words):
    """np.argmax (the first maximum on a tie)."""
    _same_length(weights, words)
    return words[int(np.argmax(weights))]


def top_word_numpy_str(weights, words):
    """A NumPy string returned, from a tensor argmax over the first maximum."""
    _same_length(weights, words)
    w = torch.tensor(weights)
    first = int((w == w.max()).nonzero()[0, 0])
    return np.array(words)[first]


def top_word_loop(weights, words):
    """A plain loop with a strict comparison."""
    _same_length(weights, words)
    best = 0
    for i in range(1, len(words)):
        if weights[i] > weights[best]:
            best = i
    return words[best]


def top_word_last_on_tie(weights, words):
    """`>=` keeps the last of the tied words."""
    _same_length(weights, words)
    best = 0
    for i in range(len(words)):
        if weights[i] >= weights[best]:
            best = i
    return words[best]


def top_word_first_three(weights, words):
    """Looks at the example's three words only."""
    _same_length(weights, words)
    return words[max(range(3), key=lambda i: weights[i])]


def top_word_skips_last(weights, words):
    """Off by one: the last word is never considered."""
    _same_length(weights, words)
    return words[max(range(len(words) - 1), key=lambda i: weights[i])]


def top_word_max_of_pairs(weights, words):
    """max over (weight, word) pairs: a tie goes to the alphabetically last word."""
    _same_length(weights, words)
    return max(zip(weights, words))[1]


def top_word_one_direction(weights, words):
    """Raises only when there are more weights than words (more words: the extra ones are ignored)."""
    if len(weights) > len(words):
        raise ValueError(f"{len(weights)} weights but {len(words)} words")
    return words[int(np.argmax(weights))]


def top_word_zip(weights, words):
    """zip silently drops the extra entries: no error at all."""
    pairs = list(zip(weights, words))
    return max(pairs, key=lambda p: p[0])[1]


def top_word_vague_error(weights, words):
    """Raises ValueError, but the message does not give the lengths."""
    if len(weights) != len(words):
        raise ValueError("weights and words must have the same length")
    return words[int(np.argmax(weights))]


def top_word_returns_index(weights, words):
    """The index of the word, not the word."""
    _same_length(weights, words)
    return int(np.argmax(weights))


ANSWERS = {
    "00.normalise": [
        right("float64 NumPy array", normalise_numpy),
        right("exact fractions in a tuple", normalise_fractions_tuple),
        right("float32 tensor", normalise_tensor),
        wrong("total of the first three scores", normalise_first_three,
              breaks="weights are the scores divided by their sum"),
        wrong("normalises the caller's list in place", normalise_in_place,
              breaks="leaves the list it is given unchanged"),
        wrong("all zeros raise ZeroDivisionError", normalise_no_zero_check,
              breaks="rejects negative scores and an all-zero"),
        wrong("negative scores accepted", normalise_no_negative_check,
              breaks="rejects negative scores and an all-zero"),
        wrong("softmax instead of shares", normalise_softmax, breaks="weights are the scores divided by their sum"),
        wrong("a single zero score rejected", normalise_rejects_a_zero,
              breaks="weights are the scores divided by their sum"),
        wrong("divided by the largest score", normalise_by_max, breaks="weights are the scores divided by their sum"),
    ],
    "00.top_word": [
        right("np.argmax", top_word_argmax),
        right("NumPy string from a tensor argmax", top_word_numpy_str),
        right("a loop with a strict comparison", top_word_loop),
        wrong("last word on a tie", top_word_last_on_tie, breaks="the first one on a tie"),
        wrong("only the first three words", top_word_first_three, breaks="picks the word whose weight is largest"),
        wrong("never the last word", top_word_skips_last, breaks="picks the word whose weight is largest"),
        wrong("max of (weight, word) pairs", top_word_max_of_pairs, breaks="the first one on a tie"),
        wrong("raises only for more weights than words", top_word_one_direction, breaks="different lengths"),
        wrong("zip, no error", top_word_zip, breaks="different lengths"),
        wrong("error without the lengths", top_word_vague_error, breaks="different lengths"),
        wrong("the index, not the word", top_word_returns_index, breaks="picks the word whose weight is largest"),
    ],
    "00.predict": [
        right("NumPy scalars", lambda: np.float32(0.75), lambda: np.int64(2)),
        right("tensors", lambda: torch.tensor(6 / 8, dtype=torch.float64), lambda: torch.tensor([2])),
        right("the arithmetic itself", lambda: 6 / (1 + 6 + 1), lambda: 2),
        wrong("forgot one of the other words", lambda: 6 / 7, lambda: 2.0, breaks="cat's weight when its score is 6"),
        wrong("a percentage", lambda: 75, lambda: 2.0, breaks="cat's weight when its score is 6"),
        wrong("half of one other score", lambda: 0.75, lambda: 1.0, breaks="exactly half of the weight"),
        wrong("the weight, not the score", lambda: 0.75, lambda: 0.5, breaks="exactly half of the weight"),
        wrong("True instead of a number", lambda: True, lambda: 2.0, breaks="cat's weight when its score is 6"),
        wrong("a one-element list", lambda: [0.75], lambda: [2.0], breaks="exactly half of the weight"),
    ],
}
