"""Checks for exercises/01_bottleneck.ipynb: the context vector, accuracy by length, the reversed source,
and path lengths predicted before training (feeding the source twice).

Every check calls the learner's code on at least two inputs that differ in every size the exercise leaves
free (batch, sequence length, hidden size), with lengths at the edges (1 and the full length) and in the
middle, on copies of its inputs (the references are computed first, and the originals are compared
afterwards: a changed input is its own failed part), accepts answers as tensors of any dtype, NumPy arrays or
lists, and says where a wrong answer first differs. A crash on one input costs only the part that input
tests. While a check runs, the course's finished versions of the same functions are switched off, so an
exercise cannot be passed by calling them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core import register
from ..tensor_checks import (as_number, as_tensor as _as_tensor, close, copies, describe as _describe, disabled,
                             first_difference, unchanged)

SET = "01_bottleneck"
FEEDS = ("forward", "reversed", "twice")
ORDERS = ("aligned", "mirror")


# --------------------------------------------------------------------------- helpers


def _finished_versions_off():
    """Make the course's own implementations of these exercises raise while a check runs."""
    from ...data import source_transforms
    from ...models import seq2seq
    from ... import training

    return disabled(seq2seq.final_hidden_state, training.accuracy_by_length, source_transforms.transform_source,
                    why="the course's finished implementation cannot be used for this exercise: write the function "
                        "yourself")


def _first_row_difference(got, want):
    """The first row (along dim 0) where got and want differ, or None."""
    idx = first_difference(got, want)
    return None if idx is None else idx[0]


def _fmt(v) -> str:
    return "[" + ", ".join(f"{float(x):.3f}" for x in v) + "]"


# --------------------------------------------------------------------------- exercise 1


def _case_final_state(seed, B, S, H, lengths, dtype):
    g = torch.Generator().manual_seed(seed)
    outputs = torch.randn(B, S, H, generator=g).to(dtype)  # (B, S, H)
    lengths = torch.tensor(lengths)
    want = torch.stack([outputs[b, int(n) - 1] for b, n in enumerate(lengths)]).to(torch.float64)  # (B, H)
    return outputs, lengths, want


@register("01.final_state", title="the context vector, padding handled", exercise_set=SET, points=4)
def check_final_state(t, final_state):
    with _finished_versions_off():
        _check_final_state(t, final_state)


def _final_state_hint(got, raw, crash, outputs, lengths, want):
    """What is wrong with one padded case, or ''."""
    shape = f"outputs of shape {tuple(outputs.shape)} with lengths {lengths.tolist()}"
    if crash:
        return f"{shape}: your code raised {crash}"
    if got is None or got.shape != want.shape:
        return f"{shape} should give shape {tuple(want.shape)}, got {_describe(raw)}"
    row = _first_row_difference(got, want)
    if row is None:
        return ""
    if close(got, outputs[:, -1]):
        return "you returned outputs[:, -1] for every row; padded rows need the state at index length - 1"
    n = int(lengths[row])
    return f"{shape}: row {row} should be outputs[{row}, {n - 1}] = {_fmt(want[row])}, got {_fmt(got[row])}"


def _check_final_state(t, final_state):
    outputs, full, want = _case_final_state(0, 3, 5, 4, [5, 5, 5], torch.float32)
    out_copy, len_copy = copies(outputs, full)
    raw = t.call(final_state, out_copy, len_copy)
    kept = unchanged((outputs, full), (out_copy, len_copy))
    got = _as_tensor(raw)
    t.require(got is not None and tuple(got.shape) == (3, 4), 1, "returns a (batch, hidden) tensor",
              f"outputs of shape (3, 5, 4) should give shape (3, 4), got {_describe(raw)}")
    row = _first_row_difference(got, want)
    t.expect(row is None, 1, "full-length sequences: the state after the last token",
             "when every length is 5, row b should be outputs[b, 4]" + (
                 "" if row is None else f"; row {row}: expected {_fmt(want[row])}, got {_fmt(got[row])}"))

    # padded rows (lengths 1, the full length and in between), every size different, float32 and float64
    cases = [_case_final_state(1, 3, 5, 4, [5, 2, 1], torch.float32),
             _case_final_state(2, 5, 7, 3, [3, 7, 1, 6, 4], torch.float64)]
    hint = ""
    for outputs, lengths, want in cases:
        out_copy, len_copy = copies(outputs, lengths)
        raw, crash = t.attempt(final_state, out_copy, len_copy)
        kept &= unchanged((outputs, lengths), (out_copy, len_copy))
        hint = hint or _final_state_hint(_as_tensor(raw), raw, crash, outputs, lengths, want)
    t.expect(not hint, 1, "padded sequences, two sizes: the state at each sequence's last real token", hint)
    t.expect(kept, 1, "leaves outputs and lengths unchanged",
             "your function changed its inputs in place (for example `lengths -= 1`); compute `lengths - 1` "
             "into a new tensor instead")


# --------------------------------------------------------------------------- exercise 2


@register("01.accuracy_by_length", title="exact-match accuracy by input length", exercise_set=SET, points=4)
def check_accuracy_by_length(t, accuracy_by_length):
    with _finished_versions_off():
        _check_accuracy_by_length(t, accuracy_by_length)


def _reference_accuracy(correct, lengths):
    totals, hits = {}, {}
    for ok, n in zip(correct, lengths):
        totals[int(n)] = totals.get(int(n), 0) + 1
        hits[int(n)] = hits.get(int(n), 0) + int(bool(ok))
    return {n: hits[n] / totals[n] for n in sorted(totals)}


def _as_accuracy_dict(got):
    """{int length: float or None} from a learner's dict (keys may be NumPy ints, values NumPy or 0-d tensors);
    keys that are not whole numbers are kept as they are."""
    out = {}
    for k, v in got.items():
        key = as_number(k)
        key = int(key) if key is not None and math.isfinite(key) and key == int(key) else k
        out[key] = as_number(v)
    return out


def _shown_keys(keys) -> list:
    """Keys sorted for feedback: whole numbers first, in order, then anything else."""
    return sorted(keys, key=lambda k: (0, k, "") if isinstance(k, int) else (1, 0, str(k)))


def _check_accuracy_by_length(t, accuracy_by_length):
    correct = [True, False, True, True, False, False]
    lengths = [3, 3, 5, 3, 5, 8]
    rng = np.random.default_rng(1)
    big_lengths = rng.integers(2, 13, size=40)                      # lengths 9..12 as well: none hard-coded
    big_correct = rng.random(40) < 0.6
    cases = [(correct, lengths),
             (big_correct.tolist()[:17], big_lengths.tolist()[:17]),  # another size
             (big_correct, big_lengths)]                              # and NumPy arrays (np.bool_, np.int64)
    results, kept = [], True
    for i, (c, n) in enumerate(cases):
        want = _reference_accuracy(list(c), list(n))                # the reference first, the learner gets copies
        c_copy, n_copy = copies(c, n)
        got, crash = (t.call(accuracy_by_length, c_copy, n_copy), "") if i == 0 else \
            t.attempt(accuracy_by_length, c_copy, n_copy)
        kept &= unchanged((c, n), (c_copy, n_copy))
        results.append((c, want, got, crash))

    what = "returns a dict with one entry per length that occurs (two sizes, lengths 2 to 12)"
    if not isinstance(results[0][2], dict):
        t.require(False, 1, what, f"expected a dict {{length: accuracy}}, got {_describe(results[0][2])}")
    keys_hint = values_hint = ""
    for c, want, got, crash in results:
        given = f"{len(c)} examples given as {'NumPy arrays' if isinstance(c, np.ndarray) else 'lists'}"
        if crash:
            values_hint = values_hint or f"with {given}, your code raised {crash}"
            continue
        if not isinstance(got, dict):
            keys_hint = keys_hint or f"with {given}: expected a dict, got {_describe(got)}"
            continue
        got = _as_accuracy_dict(got)
        if set(got) != set(want) and not keys_hint:
            keys_hint = f"with {given}: the keys should be exactly the lengths that occur, {sorted(want)}; " \
                        f"got {_shown_keys(got)}"
        for key, value in want.items():
            if key in got and not values_hint and (got[key] is None or abs(got[key] - value) > 1e-6):
                values_hint = f"with {given}: length {key} should have accuracy {value:.6g} (the share of the " \
                              f"examples of that length that are correct), got " + \
                              ("no number" if got[key] is None else f"{got[key]:.6g}")
    t.expect(not keys_hint, 1, what, keys_hint)
    t.expect(not values_hint, 1, "each value is the share of correct examples of that length (two sizes, lists "
                                 "and NumPy arrays)", values_hint)
    t.expect(kept, 1, "leaves correct and lengths unchanged",
             "your function changed `correct` or `lengths` in place (sorting them, say); work on copies")

    wrong = []
    for c, n in (([True, False, True], [3, 4]), ([True, False], [3, 4, 5, 6])):
        names, message = t.error_of(accuracy_by_length, list(c), list(n))
        counts = all(str(k) in message for k in (len(c), len(n)))
        if "ValueError" not in names or not counts:
            wrong.append(f"{len(c)} results with {len(n)} lengths " +
                         (f"should raise ValueError, not {names[0]}" if names and "ValueError" not in names else
                          "should raise ValueError, not give a silent answer" if not names else
                          f"raised ValueError({message!r}), which should give both counts"))
    t.expect(not wrong, 1, "mismatched inputs raise a ValueError naming both counts (either list longer)",
             "; ".join(wrong))


# --------------------------------------------------------------------------- exercise 3


@register("01.reverse_source", title="feed the source backwards, padding kept at the end", exercise_set=SET, points=4)
def check_reverse_source(t, reverse_source):
    with _finished_versions_off():
        _check_reverse_source(t, reverse_source)


def _reference_reverse(src, lengths):
    out = src.clone()
    for b, n in enumerate(lengths.tolist()):
        out[b, :n] = src[b, :n].flip(0)
    return out


def _padded_batch(seed, lengths, S):
    """Right-padded ids (B, S) in 3..12, 0 after each row's length."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    src = torch.randint(3, 13, (len(lengths), S), generator=g)
    src[torch.arange(S).expand(len(lengths), S) >= lengths[:, None]] = 0
    return src, lengths


def _reverse_hint(got, raw, crash, s, n, want):
    """What is wrong with one padded batch, or ''."""
    if crash:
        return f"a batch of shape {tuple(s.shape)} with lengths {n.tolist()}: your code raised {crash}"
    if got is None or got.shape != want.shape:
        return f"a batch of shape {tuple(s.shape)} should give shape {tuple(s.shape)}, got {_describe(raw)}"
    row = _first_row_difference(got, want.to(torch.float64))
    if row is None:
        return ""
    as_ints = [int(v) for v in got[row].tolist()]
    if as_ints == s[row].flip(0).tolist():
        return (f"row {row} {s[row].tolist()} (length {int(n[row])}): you flipped the padding too; reverse only "
                f"the first `length` tokens, padding stays at the end: expected {want[row].tolist()}")
    return f"row {row} {s[row].tolist()} (length {int(n[row])}) should become {want[row].tolist()}, got {as_ints}"


def _check_reverse_source(t, reverse_source):
    # the example, then another batch size and length: full rows, a row of one token, rows in between,
    # the last row of the larger batch longer than one token
    cases = [(torch.tensor([[4, 5, 6, 7], [8, 9, 0, 0], [3, 0, 0, 0]]), torch.tensor([4, 2, 1])),
             _padded_batch(5, [3, 6, 1, 4, 5], 6)]
    results, kept = [], True
    for i, (s, n) in enumerate(cases):
        want = _reference_reverse(s, n)                       # the reference first, the learner gets copies
        s_copy, n_copy = copies(s, n)
        raw, crash = (t.call(reverse_source, s_copy, n_copy), "") if i == 0 else \
            t.attempt(reverse_source, s_copy, n_copy)
        kept &= unchanged((s, n), (s_copy, n_copy))
        results.append((s, n, want, raw, _as_tensor(raw), crash))

    s, n, want, raw, got, _ = results[0]
    t.require(got is not None and got.shape == s.shape, 1, "returns a batch of the same shape",
              f"expected shape {tuple(s.shape)}, got {_describe(raw)}")
    full_hint = ""
    for s, n, want, raw, got, crash in results:
        if got is None or got.shape != s.shape:
            continue                                          # the padded part reports it
        for b in (n == s.shape[1]).nonzero().flatten().tolist():
            if not full_hint and got[b].tolist() != want[b].tolist():
                full_hint = f"the full-length row {b} {s[b].tolist()} should become {want[b].tolist()}, " \
                            f"got {[int(v) for v in got[b].tolist()]}"
    t.expect(not full_hint, 1, "a full-length row is reversed", full_hint)
    hint = next((h for h in (_reverse_hint(got, raw, crash, s, n, want)
                             for s, n, want, raw, got, crash in results) if h), "")
    t.expect(not hint, 1, "padded rows, two sizes: real tokens reversed, padding stays at the end", hint)
    t.expect(kept, 1, "the input tensors are left unchanged",
             "reverse_source modified src (or lengths) in place; work on a copy (src.clone())")


# --------------------------------------------------------------------------- exercise 4


def reference_path_lengths(S: int, order: str, feed: str) -> list[int]:
    """Recurrent steps between the encoder's last reading of the source word that target word t translates
    and the decoder writing t (t = 1..S). The encoder reads S tokens (2S when fed twice); the decoder writes
    target word t at its t-th step."""
    read = 2 * S if feed == "twice" else S
    out = []
    for t in range(1, S + 1):
        i = t if order == "aligned" else S - t + 1      # the source word target t translates
        if feed == "reversed":
            position = S - i + 1
        elif feed == "twice":
            position = S + i                            # its second, most recent reading
        else:
            position = i
        out.append(read - position + t)
    return out


def _first_wrong_path(t, path_lengths, feed, sizes):
    """The feedback for the first (order, S) where path_lengths(S, order, feed) is wrong, or ''."""
    for order in ORDERS:
        for S in sizes:
            want = reference_path_lengths(S, order, feed)
            got, crash = t.attempt(path_lengths, S, order, feed)
            call = f"path_lengths({S}, {order!r}, {feed!r})"
            if crash:
                return f"{call} raised {crash}"
            got_t = _as_tensor(got)
            if got_t is None or got_t.dim() != 1 or got_t.shape[0] != S:
                return f"{call} should return {S} numbers, one per target word, got {_describe(got)}"
            k = first_difference(got_t, torch.tensor(want, dtype=torch.float64), atol=1e-9, rtol=0)
            if k is not None:
                k = k[0]
                return f"{call}: target word t={k + 1} (index {k}) should be {want[k]} steps, got " \
                       f"{float(got_t[k]):g}; full answer {want}"
    return ""


@register("01.path_lengths", title="path lengths predicted before training (doubled source)", exercise_set=SET,
          points=4)
def check_path_lengths(t, path_lengths, doubling_shortens_a_path):
    sizes = (1, 4, 7)
    once = _first_wrong_path(t, path_lengths, "forward", sizes) or _first_wrong_path(t, path_lengths, "reversed", sizes)
    t.expect(not once, 1, "forward and reversed sources, both orders, S = 1, 4, 7", once)
    twice = _first_wrong_path(t, path_lengths, "twice", sizes)
    if twice and "twice" in twice:
        twice += ("; the encoder reads 2S tokens and the word's most recent reading is in the second copy, at "
                  "position S + i")
    t.expect(not twice, 2, "the doubled source, both orders, S = 1, 4, 7 (counted from the second copy)", twice)
    verdict, crash = t.attempt(doubling_shortens_a_path)
    shortens = any(a < b for S in sizes for o in ORDERS
                   for a, b in zip(reference_path_lengths(S, o, "twice"), reference_path_lengths(S, o, "forward")))
    is_bool = isinstance(verdict, (bool, np.bool_))
    compare = "compare path_lengths(S, order, 'twice') with path_lengths(S, order, 'forward') for both orders"
    t.expect(is_bool and bool(verdict) == shortens, 1,
             "the prediction: does the doubled source shorten any path compared with forward?",
             f"doubling_shortens_a_path() raised {crash}" if crash else
             f"answer True or False (got {verdict!r}, {_describe(verdict)}); {compare}" if not is_bool else
             f"you answered {bool(verdict)}; {compare}")
