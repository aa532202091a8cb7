"""Checks for exercises/01_bottleneck.ipynb: the context vector, accuracy by length, the reversed source,
and path lengths predicted before training (feeding the source twice).

Every check calls the learner's code on at least two sizes, on copies of its inputs (the references are
computed first, and the originals are compared afterwards), accepts answers as tensors of any dtype,
NumPy arrays or lists, and says where a wrong answer first differs. While a check runs, the course's
finished versions of the same functions are switched off, so an exercise cannot be passed by calling them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core import register
from ..tensor_checks import (as_tensor as _as_tensor, copies, describe as _describe, disabled, first_difference,
                             unchanged)

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


def _check_final_state(t, final_state):
    outputs, full, want = _case_final_state(0, 3, 5, 4, [5, 5, 5], torch.float32)
    got = _as_tensor(t.call(final_state, outputs.clone(), full.clone()))
    t.require(got is not None and tuple(got.shape) == (3, 4), 1, "returns a (batch, hidden) tensor",
              f"outputs of shape (3, 5, 4) should give shape (3, 4), got {_describe(got)}")
    row = _first_row_difference(got, want)
    t.expect(row is None, 1, "full-length sequences: the state after the last token",
             "when every length is 5, row b should be outputs[b, 4]" + (
                 "" if row is None else f"; row {row}: expected {_fmt(want[row])}, got {_fmt(got[row])}"))

    cases = [_case_final_state(1, 3, 5, 4, [5, 2, 1], torch.float32),       # padded rows
             _case_final_state(2, 4, 7, 3, [3, 7, 1, 6], torch.float64)]    # another size, float64 states
    ok_all, hint = True, ""
    for outputs, lengths, want in cases:
        out_copy, len_copy = copies(outputs, lengths)
        got = _as_tensor(t.call(final_state, out_copy, len_copy))
        if got is None or got.shape != want.shape:
            ok_all, hint = False, (f"outputs of shape {tuple(outputs.shape)} should give shape {tuple(want.shape)}, "
                                   f"got {_describe(got)}")
            break
        row = _first_row_difference(got, want)
        if row is not None:
            ok_all = False
            n = int(lengths[row])
            if torch.allclose(got, outputs[:, -1].to(torch.float64)):
                hint = "you returned outputs[:, -1] for every row; padded rows need the state at index length - 1"
            else:
                hint = (f"outputs of shape {tuple(outputs.shape)} with lengths {lengths.tolist()}: row {row} should be "
                        f"outputs[{row}, {n - 1}] = {_fmt(want[row])}, got {_fmt(got[row])}")
            break
        if not unchanged((outputs, lengths), (out_copy, len_copy)):
            ok_all, hint = False, "your function changed its inputs (outputs or lengths); work on copies"
            break
    t.expect(ok_all, 2, "padded sequences, two sizes: the state at each sequence's last real token", hint)


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


def _check_accuracy_by_length(t, accuracy_by_length):
    correct = [True, False, True, True, False, False]
    lengths = [3, 3, 5, 3, 5, 8]
    got = t.call(accuracy_by_length, list(correct), list(lengths))
    t.require(isinstance(got, dict), 1, "returns a dict {length: accuracy}", f"got {type(got).__name__}")
    t.expect(sorted(int(k) for k in got) == [3, 5, 8], 1, "one entry per length that occurs",
             f"lengths [3, 3, 5, 3, 5, 8] should give keys [3, 5, 8], got {sorted(got)}")

    rng = np.random.default_rng(1)
    big_lengths = rng.integers(2, 11, size=40)
    big_correct = rng.random(40) < 0.6
    cases = [(list(correct), list(lengths)),
             (big_correct.tolist()[:17], big_lengths.tolist()[:17]),  # another size
             (big_correct, big_lengths)]                              # and NumPy arrays (np.bool_, np.int64)
    ok_all, hint = True, ""
    for c, n in cases:
        want = _reference_accuracy(list(c.tolist() if hasattr(c, "tolist") else c),
                                   list(n.tolist() if hasattr(n, "tolist") else n))
        c_copy, n_copy = copies(c, n)
        got = t.call(accuracy_by_length, c_copy, n_copy)
        if not isinstance(got, dict):
            ok_all, hint = False, f"with {len(want)} lengths as {type(c).__name__}s: expected a dict, got {type(got).__name__}"
            break
        got_keys = {}
        for k, v in got.items():
            try:
                got_keys[int(k)] = float(v)
            except (TypeError, ValueError):
                got_keys[k] = v
        for key, value in want.items():
            if key not in got_keys or not isinstance(got_keys[key], float) or not math.isclose(got_keys[key], value, abs_tol=1e-9):
                ok_all = False
                hint = (f"with {len(c)} examples given as {type(c).__name__}s: length {key} should have accuracy "
                        f"{value:.3f} (share of correct examples of that length), got "
                        f"{got_keys.get(key, 'no entry')}")
                break
        if ok_all and sorted(k for k in got_keys if isinstance(k, int)) != sorted(want):
            ok_all, hint = False, f"keys should be exactly the lengths that occur, {sorted(want)}; got {sorted(got_keys, key=str)}"
        if ok_all and not unchanged((c, n), (c_copy, n_copy)):
            ok_all, hint = False, "your function changed its inputs; leave `correct` and `lengths` as they were"
        if not ok_all:
            break
    t.expect(ok_all, 1, "each value is the share of correct examples of that length (two sizes, lists and NumPy arrays)", hint)

    raised = False
    message = ""
    try:
        accuracy_by_length([True, False, True], [3, 4])
    except ValueError as err:
        raised, message = True, str(err)
    except Exception:  # noqa: BLE001 - any other error is the wrong kind
        raised = False
    t.expect(raised and "3" in message and "2" in message, 1, "mismatched inputs raise a ValueError naming both counts",
             "3 results with 2 lengths should raise ValueError whose message gives both counts (3 and 2), "
             "not a silent answer" if not raised else f"the ValueError should give both counts (3 and 2); it said {message!r}")


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


def _check_reverse_source(t, reverse_source):
    src = torch.tensor([[4, 5, 6, 7], [8, 9, 0, 0], [3, 0, 0, 0]])
    lengths = torch.tensor([4, 2, 1])
    want = _reference_reverse(src, lengths)
    src_copy, = copies(src)
    got = _as_tensor(t.call(reverse_source, src_copy, lengths.clone()))
    t.require(got is not None and tuple(got.shape) == tuple(src.shape), 1, "returns a batch of the same shape",
              f"expected shape {tuple(src.shape)}, got {_describe(got)}")
    t.expect(got[0].tolist() == [7.0, 6.0, 5.0, 4.0], 1, "a full-length row is reversed",
             f"[4, 5, 6, 7] should become [7, 6, 5, 4], got {[int(v) for v in got[0].tolist()]}")

    g = torch.Generator().manual_seed(5)
    lengths2 = torch.tensor([6, 3, 5, 1])
    src2 = torch.randint(3, 13, (4, 6), generator=g)
    src2[torch.arange(6).expand(4, 6) >= lengths2[:, None]] = 0  # right padding
    ok_all, hint = True, ""
    for s, n in ((src, lengths), (src2, lengths2)):
        want = _reference_reverse(s, n)
        got = _as_tensor(t.call(reverse_source, s.clone(), n.clone()))
        if got is None or got.shape != want.shape:
            ok_all, hint = False, f"a batch of shape {tuple(s.shape)} should give shape {tuple(s.shape)}, got {_describe(got)}"
            break
        row = _first_row_difference(got, want.to(torch.float64))
        if row is not None:
            ok_all = False
            as_ints = [int(v) for v in got[row].tolist()]
            if as_ints == s[row].flip(0).tolist():
                hint = (f"row {row} {s[row].tolist()} (length {int(n[row])}): you flipped the padding too; reverse only "
                        f"the first `length` tokens, padding stays at the end: expected {want[row].tolist()}")
            else:
                hint = (f"row {row} {s[row].tolist()} (length {int(n[row])}) should become {want[row].tolist()}, "
                        f"got {as_ints}")
            break
    t.expect(ok_all, 1, "padded rows, two sizes: real tokens reversed, padding stays at the end", hint)
    t.expect(unchanged((src,), (src_copy,)), 1, "the input tensor is left unchanged",
             "reverse_source modified its input in place; work on a copy (src.clone())")


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


@register("01.path_lengths", title="path lengths predicted before training (doubled source)", exercise_set=SET,
          points=4)
def check_path_lengths(t, path_lengths, doubling_shortens_a_path):
    sizes = (1, 4, 7)
    wrong = None
    for feed in FEEDS:
        for order in ORDERS:
            for S in sizes:
                want = reference_path_lengths(S, order, feed)
                got = t.call(path_lengths, S, order, feed)
                got_t = _as_tensor(got)
                if got_t is None or got_t.dim() != 1 or got_t.shape[0] != S:
                    wrong = (feed, f"path_lengths({S}, {order!r}, {feed!r}) should return {S} numbers, one per target "
                                   f"word, got {_describe(got)}")
                elif not torch.equal(got_t, torch.tensor(want, dtype=torch.float64)):
                    k = int((got_t != torch.tensor(want, dtype=torch.float64)).nonzero()[0, 0])
                    wrong = (feed, f"path_lengths({S}, {order!r}, {feed!r}): target word t={k + 1} (index {k}) should be "
                                   f"{want[k]} steps, got {got_t[k].item():g}; full answer {want}")
                if wrong:
                    break
            if wrong:
                break
        if wrong:
            break
    bad_feed = wrong[0] if wrong else None
    hint = wrong[1] if wrong else ""
    once_ok = bad_feed not in ("forward", "reversed")
    t.expect(once_ok, 1, "forward and reversed sources, both orders, S = 1, 4, 7", hint if not once_ok else "")
    if bad_feed == "twice" and "twice" in hint:
        hint += ("; the encoder reads 2S tokens and the word's most recent reading is in the second copy, at "
                 "position S + i")
    t.expect(bad_feed is None, 2, "the doubled source, both orders, S = 1, 4, 7 (counted from the second copy)",
             hint if once_ok else "fix the forward and reversed counts first")
    verdict = t.call(doubling_shortens_a_path)
    shortens = any(a < b for S in sizes for o in ORDERS
                   for a, b in zip(reference_path_lengths(S, o, "twice"), reference_path_lengths(S, o, "forward")))
    ok = isinstance(verdict, (bool, np.bool_)) and bool(verdict) == shortens
    t.expect(ok, 1, "the prediction: does the doubled source shorten any path compared with forward?",
             f"answer True or False (got {verdict!r}); compare your path_lengths(S, order, 'twice') with "
             f"path_lengths(S, order, 'forward') for both orders"
             if not isinstance(verdict, (bool, np.bool_)) else
             "compare your path_lengths(S, order, 'twice') with path_lengths(S, order, 'forward') for both orders")
