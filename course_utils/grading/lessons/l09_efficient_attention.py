"""Checks for exercises/09_efficient_attention.ipynb: a sliding-window mask, one step of the online softmax,
tiled attention that returns the output and the log-sum-exp, and a prediction made before measuring.

Every check computes its references first (in float64), then calls the learner's code on copies of its
inputs (inside ``t.call``) and has a part that says whether the code changed them. It calls the code on
several sizes in every free dimension (sequence length, window, batch and head dimensions, block sizes that
do not divide the lengths, blocks larger than the sequence), in float32 and float64, and on large and
mixed-scale scores where a softmax is involved (scores in the thousands, batch rows whose scales differ a
thousandfold, a running maximum that starts at -inf). Answers may be tensors of any dtype, NumPy arrays or
lists; hints say where a wrong answer first differs. While a check runs, the course's finished versions in
``course_utils.models.efficient_attention`` are switched off.
"""

from __future__ import annotations

import math

import torch

from ..core import register
from ..tensor_checks import (UNCHANGED, why_wrong as _why, expect_unchanged as _expect_unchanged, OnCopies,
                             as_number as _as_number, as_tensor as _as_tensor, close as _same, describe as _describe,
                             disabled, where_differs as _where)

SET = "09_efficient_attention"
_UNCHANGED = UNCHANGED


def _finished_versions_off():
    from ...models import efficient_attention as finished

    return disabled(finished.sliding_window_mask, finished.online_softmax_update, finished.online_softmax_stats, finished.online_logsumexp,
                    finished.online_softmax, finished.flash_attention_forward, finished.attention_with_lse,
                    finished.banded_attention,
                    why="the course's finished version in course_utils.models.efficient_attention is not available "
                        "to this exercise: write it yourself")


def _Calls(t, fn, fn_name, names, changed):
    """The learner's function on copies of its inputs, with the finished versions off (see OnCopies)."""
    return OnCopies(t, fn, fn_name, names, changed, switched_off=_finished_versions_off)


def _ref_window(n, window):
    i, j = torch.arange(n).unsqueeze(1), torch.arange(n).unsqueeze(0)
    return (j <= i) & (i - j < window)


def _as_mask(raw):
    """A bool tensor from a bool/0-1 answer (tensor, array, list); None when it is not one."""
    got = _as_tensor(raw)
    if got is None or not bool(((got == 0) | (got == 1)).all()):
        return None
    return got.bool()


def _window_hint(got, n, window):
    want = _ref_window(n, window)
    if torch.equal(got, _ref_window(n, window + 1)):
        return (f"your window holds window + 1 keys: query i should see keys i - window + 1 .. i, exactly `window` of "
                f"them (itself included); with n = {n}, window = {window}, row {n - 1} should have {min(n, window)} "
                f"True entries, yours has {int(got[-1].sum())}")
    if torch.equal(got, _ref_window(n, window - 1)):
        return "your window holds window - 1 keys: query i sees itself and the window - 1 keys before it"
    if bool((got & ~torch.ones(n, n, dtype=torch.bool).tril()).any()):
        return "your mask lets a query see later keys (True above the diagonal): the window is causal, j <= i"
    if torch.equal(got, want.T):
        return "your mask is transposed: row i is the query, column j the key, and True means i may attend to j"
    if torch.equal(got, ~want):
        return "True means 'may attend' in this course: your mask marks the keys to hide instead"
    bad = (got != want).nonzero()[0].tolist()
    return (f"with n = {n}, window = {window}: at (query {bad[0]}, key {bad[1]}) expected {bool(want[bad[0], bad[1]])}, "
            f"got {bool(got[bad[0], bad[1]])}")


@register("09.sliding_window_mask", title="a causal sliding-window mask", exercise_set=SET, points=3)
def check_sliding_window_mask(t, sliding_window_mask):
    n, window = 8, 3
    cases = [(1, 1), (5, 1), (6, 6), (7, 20), (13, 4), (20, 7)]
    with _finished_versions_off():
        raw = t.call(sliding_window_mask, n, window)
    got = _as_mask(raw)
    shape_ok = got is not None and tuple(got.shape) == (n, n)
    if not shape_ok:
        t.require(False, 1, "returns an (n, n) mask of True/False",
                  f"sliding_window_mask(8, 3) should return an (8, 8) bool tensor; got {_describe(raw)}"
                  + ("" if got is not None or _as_tensor(raw) is None else " holding values other than 0 and 1"))
    t.expect(True, 1, "returns an (n, n) mask of True/False")
    t.expect(torch.equal(got, _ref_window(n, window)), 1,
             "query i may attend to keys i - window + 1 .. i (n = 8, window = 3)", _window_hint(got, n, window)
             if not torch.equal(got, _ref_window(n, window)) else "")
    fails = []
    for n2, w2 in cases:
        with _finished_versions_off():
            raw2, crash = t.attempt(sliding_window_mask, n2, w2)
        got2 = _as_mask(raw2)
        if crash or got2 is None or tuple(got2.shape) != (n2, n2) or not torch.equal(got2, _ref_window(n2, w2)):
            if crash:
                fails.append(f"n = {n2}, window = {w2}: your code raised {crash}")
            elif got2 is None or tuple(got2.shape) != (n2, n2):
                fails.append(f"n = {n2}, window = {w2}: expected an ({n2}, {n2}) mask, got {_describe(raw2)}")
            else:
                extra = " (a window longer than the sequence is the causal mask)" if w2 >= n2 else ""
                fails.append(_window_hint(got2, n2, w2) + extra)
    t.expect(not fails, 1, "other sizes: window 1 (the diagonal), window = n and window > n (the causal mask)",
             fails[0] if fails else "")


# --------------------------------------------------------------------------- exercise 2: online softmax update


def _ref_update(m, s, block):
    m, s, block = m.double(), s.double(), block.double()
    new_m = torch.maximum(m, block.amax(-1))
    safe = torch.where(torch.isfinite(new_m), new_m, torch.zeros_like(new_m))
    return new_m, s * torch.exp(m - safe) + torch.exp(block - safe.unsqueeze(-1)).sum(-1)


def _pair(raw):
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        return _as_tensor(raw[0]), _as_tensor(raw[1])
    return None, None


def _update_cases(g):
    """(label, (m, s, block)) for running statistics in the middle of a stream, large and mixed-scale scores."""
    cases = []
    for rows, b, scale, dtype in (((3,), 5, 300.0, torch.float32), ((2, 4), 1, 1000.0, torch.float64),
                                    ((5,), 9, 50.0, torch.float64)):
        seen = torch.randn(*rows, 6, generator=g, dtype=torch.float64) * scale
        seen = seen * 10.0 ** torch.randint(-2, 2, (*rows, 1), generator=g).double()   # rows of very different scale
        block = torch.randn(*rows, b, generator=g, dtype=torch.float64) * scale + 2.0 * scale
        m = seen.amax(-1)
        s = torch.exp(seen - m.unsqueeze(-1)).sum(-1)
        label = f"running stats of shape {tuple(rows)}, a block of {b} scores up to about {3 * scale:g}, {str(dtype)[6:]}"
        cases.append((label, (m.to(dtype), s.to(dtype), block.to(dtype))))
    return cases


@register("09.online_softmax", title="one step of the online (streaming) softmax", exercise_set=SET, points=5)
def check_online_softmax(t, online_softmax_update):
    g = torch.Generator().manual_seed(9)
    m0 = torch.tensor([2.0, 0.0])
    s0 = torch.tensor([1.5, 3.0])
    block0 = torch.tensor([[1.0, 4.0, 0.5], [-1.0, -2.0, -0.5]])  # row 0 brings a larger max, row 1 does not
    want0 = _ref_update(m0, s0, block0)
    start = (torch.full((3,), float("-inf")), torch.zeros(3),
             torch.tensor([[800.0, 3.0], [-5.0, -700.0], [float("-inf"), float("-inf")]]))   # row 2: all masked
    want_start = _ref_update(*start)
    others = _update_cases(g)
    wants = [_ref_update(*inputs) for _, inputs in others]
    stream = torch.randn(2, 23, generator=g, dtype=torch.float64) * 400.0
    stream[1] = stream[1] / 100.0
    want_lse = torch.logsumexp(stream, -1)

    changed = []
    call = _Calls(t, online_softmax_update, "online_softmax_update", ("running_max", "running_sum", "block"), changed)
    raw = call(m0, s0, block0)
    gm, gs = _pair(raw)
    shape_ok = gm is not None and gs is not None and tuple(gm.shape) == (2,) and tuple(gs.shape) == (2,)
    if not shape_ok:
        t.require(False, 1, "returns (new max, new sum), one of each per row",
                  f"running_max (2,), running_sum (2,) and block (2, 3) should give two tensors of shape (2,); got "
                  f"{[_describe(x) for x in raw] if isinstance(raw, (tuple, list)) else _describe(raw)}")
    t.expect(True, 1, "returns (new max, new sum), one of each per row")
    if _same(gm, want0[0]) and _same(gs, want0[1]):
        hint = ""
    elif not _same(gm, want0[0]):
        hint = "the new maximum is the larger of the running maximum and the block's own maximum; " + _where(gm, want0[0])
    elif _same(gs, s0.double() + torch.exp(block0.double() - want0[0].unsqueeze(-1)).sum(-1)):
        hint = ("row 0's block brought a larger maximum, so the old sum (measured against the old maximum 2) must be "
                "rescaled by exp(old max - new max) before the block's exps are added")
    else:
        hint = "new sum = old sum * exp(old max - new max) + sum over the block of exp(x - new max); " + _where(gs, want0[1])
    t.expect(not hint, 1, "rescales the old sum when the maximum grows (a small case)", hint)

    fails = []
    for (label, inputs), want in zip(others, wants):
        raw2, crash = call.attempt(*inputs)
        g2m, g2s = _pair(raw2)
        if crash or g2m is None or not (_same(g2m, want[0]) and _same(g2s, want[1], atol=1e-6, rtol=1e-4)):
            bad = g2m if g2m is not None and not _same(g2m, want[0]) else g2s
            fails.append(_why(bad, want[0] if bad is g2m else want[1], crash, label))
    raw3, crash3 = call.attempt(*start)
    g3m, g3s = _pair(raw3)
    if crash3 or g3m is None or g3s is None or tuple(g3m.shape) != (3,) or tuple(g3s.shape) != (3,):
        fails.insert(0, _why(g3m, want_start[0], crash3, "the first block (running_max = -inf, running_sum = 0)"))
    elif not bool(torch.isfinite(g3s).all()):
        fails.insert(0, "starting from running_max = -inf and running_sum = 0, your sum is nan or inf where the block's "
                        "scores are all -inf (a masked block): exp(-inf - (-inf)) is nan; when the new maximum is -inf, "
                        "subtract a finite stand-in (0) instead, so that every exp is exp(-inf) = 0")
    elif not (_same(g3m[:2], want_start[0][:2]) and _same(g3s[:2], want_start[1][:2]) and float(g3m[2]) == float("-inf")
              and float(g3s[2]) == 0.0):
        fails.insert(0, "the first block (running_max = -inf, running_sum = 0), scores up to 800, and a row whose block "
                        "is all -inf (it should stay max -inf, sum 0): expected max "
                        f"{want_start[0].tolist()} and sum {[round(x, 4) for x in want_start[1].tolist()]}, got max "
                        f"{g3m.tolist()} and sum {[round(x, 4) for x in g3s.tolist()]}")
    t.expect(not fails, 1, "the first block (max -inf), other sizes, float64, scores in the thousands",
             fails[0] if fails else "")

    def fold():
        m = torch.full((2,), float("-inf"), dtype=torch.float64)
        s = torch.zeros(2, dtype=torch.float64)
        for begin in range(0, stream.shape[-1], 5):
            m, s = online_softmax_update(m, s, stream[:, begin:begin + 5].clone())
            m, s = _as_tensor(m), _as_tensor(s)                                 # NumPy or lists back to tensors
        return m + torch.log(s)

    with _finished_versions_off():
        raw4, crash4 = t.attempt(fold)
    got4 = _as_tensor(raw4)
    t.expect(not crash4 and _same(got4, want_lse, atol=1e-6), 1,
             "folding a stream of 23 scores in blocks of 5 (the last block shorter) gives max + log(sum) = logsumexp",
             _why(got4, want_lse, crash4, "max + log(sum) after the whole stream, one row scaled by 1/100", 1e-6))
    _expect_unchanged(t, changed, "block -= running_max")


# --------------------------------------------------------------------------- exercise 3: tiled attention


def _ref_attention(q, k, v):
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    lse = torch.logsumexp(scores, -1)
    return torch.exp(scores - lse.unsqueeze(-1)) @ v, lse


def _attention_case(g, lead, m, n, d, dv, scale=1.0, dtype=torch.float64, mixed=False):
    q = torch.randn(*lead, m, d, generator=g, dtype=torch.float64) * scale
    if mixed:   # batch elements (first dim) whose scores differ a thousandfold
        q = q * 10.0 ** torch.arange(lead[0], dtype=torch.float64).view(-1, *([1] * (len(lead) + 1))) / 10.0
    k = torch.randn(*lead, n, d, generator=g, dtype=torch.float64)
    v = torch.randn(*lead, n, dv, generator=g, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


@register("09.tiled_attention", title="tiled attention with the online softmax: output and log-sum-exp",
          exercise_set=SET, points=5)
def check_tiled_attention(t, tiled_attention):
    g = torch.Generator().manual_seed(19)
    q, k, v = _attention_case(g, (2,), 6, 10, 4, 3, dtype=torch.float32)
    want_out, want_lse = _ref_attention(q, k, v)
    unscaled = _ref_attention(q * math.sqrt(4), k, v)
    others = [("q (3, 2, 9, 8), k and v 25 keys, d_v 5, blocks of 4, float64, scores in the hundreds",
               _attention_case(g, (3, 2), 9, 25, 8, 5, scale=60.0), 4),
              ("q (3, 7, 16) with 40 keys, batch rows scaled 10, 100 and 1000 (scores in the thousands), blocks of 16",
               _attention_case(g, (3,), 7, 40, 16, 2, scale=100.0, mixed=True), 16),
              ("one query, 5 keys, a block of 64 (larger than the sequence), float32, scores in the hundreds",
               _attention_case(g, (1,), 1, 5, 6, 4, scale=80.0, dtype=torch.float32), 64)]
    other_wants = [_ref_attention(*inputs) for _, inputs, _ in others]

    changed = []
    call = _Calls(t, tiled_attention, "tiled_attention", ("q", "k", "v", "block"), changed)
    raw = call(q, k, v, 4)
    out, lse = _pair(raw)
    shape_ok = out is not None and lse is not None and tuple(out.shape) == (2, 6, 3) and tuple(lse.shape) == (2, 6)
    if not shape_ok:
        t.require(False, 1, "returns (output (..., m, d_v), lse (..., m))",
                  f"q (2, 6, 4), k (2, 10, 4), v (2, 10, 3), block 4 should give output (2, 6, 3) and lse (2, 6); got "
                  f"{[_describe(x) for x in raw] if isinstance(raw, (tuple, list)) else _describe(raw)}")
    t.expect(True, 1, "returns (output (..., m, d_v), lse (..., m))")
    if _same(out, want_out):
        hint = ""
    elif _same(out, unscaled[0]):
        hint = "divide the scores by sqrt(d) (scaled dot-product attention)"
    else:
        hint = ("the output should equal softmax(q k^T / sqrt(d)) v; blocks of 4 keys: 10 keys make blocks of 4, 4 and "
                "2 (keep the last, shorter block); " + _where(out, want_out))
    t.expect(not hint, 1, "the output equals exact attention (block of 4 keys, 10 keys)", hint)
    if _same(lse, want_lse):
        hint = ""
    elif out is not None and _same(lse, torch.logsumexp(q.double() @ k.double().transpose(-2, -1), -1)):
        hint = "the log-sum-exp is of the scaled scores q . k / sqrt(d)"
    else:
        hint = "lse_i = log sum_j exp(q_i . k_j / sqrt(d)) = running max + log(running sum); " + _where(lse, want_lse)
    t.expect(not hint, 1, "the log-sum-exp of each query's scaled scores", hint)

    fails = []
    for (label, inputs, block), (w_out, w_lse) in zip(others, other_wants):
        raw2, crash = call.attempt(*inputs, block)
        o2, l2 = _pair(raw2)
        if crash or o2 is None:
            fails.append(_why(None, w_out, crash or "no (output, lse) pair", label))
        elif not _same(o2, w_out, atol=1e-5) or not _same(l2, w_lse, atol=1e-4):
            if o2.shape == w_out.shape and not bool(torch.isfinite(o2).all()):
                fails.append(f"{label}: nan or inf in your output: exp of scores in the thousands overflows; keep a "
                             f"running maximum per query and rescale the running sum and output when it grows")
            elif not _same(o2, w_out, atol=1e-5):
                fails.append(_why(o2, w_out, "", label + ", output"))
            else:
                fails.append(_why(l2, w_lse, "", label + ", log-sum-exp", 1e-4))
    t.expect(not fails, 1, "other sizes and blocks, leading dimensions, float64, scores in the thousands",
             fails[0] if fails else "")
    _expect_unchanged(t, changed, "q /= math.sqrt(d)")


# --------------------------------------------------------------------------- exercise 4: predict


@register("09.predict", title="predict before you measure: memory of the score matrix", exercise_set=SET, points=2)
def check_predict(t, predicted_mib):
    raw = t.call(predicted_mib)
    values = raw if isinstance(raw, (tuple, list)) else None
    numbers = [_as_number(x) for x in values] if values is not None and len(values) == 2 else None
    if numbers is None or None in numbers:
        t.require(False, 1, "predicted_mib() returns two numbers",
                  f"return a pair (MiB of the scores for one head at n = 8192, MiB of a 64 x 64 tile); got {_describe(raw)}")
    full, tile = numbers
    t.expect(abs(full - 256.0) < 1.0, 1, "the score matrix of one head at n = 8192, float32",
             f"you said {full:g} MiB: the matrix has 8192 x 8192 numbers of 4 bytes each; 1 MiB = 2^20 bytes")
    t.expect(abs(tile - 1 / 64) < 1e-3, 1, "one 64 x 64 tile of scores, float32",
             f"you said {tile:g} MiB: a tile holds 64 x 64 numbers of 4 bytes, 16 KiB = 1/64 MiB")
