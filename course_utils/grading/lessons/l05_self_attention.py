"""Checks for exercises/05_self_attention.ipynb: the sinusoidal position table, padding and causal masks,
a causal self-attention layer, and a count of the pairs both masks allow.

Every check calls the learner's code at two or more sizes that differ in every free dimension, on copies
of its inputs (references are computed first; a part says so when the inputs were changed in place), on
large and mixed-scale scores where a softmax is involved, and accepts tensors of any floating dtype,
NumPy arrays and lists. A mistake costs the part it breaks: a part judged after another one failed only
tests what that failure leaves testable. While a check runs the course's finished versions (which the
exercise says not to call) are switched off.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from ..core import register
from ..tensor_checks import (all_finite, as_count as _as_int, as_tensor as _as_tensor, close as _close,
                             copies as _copies, describe as _describe, disabled, first_difference, unchanged as _unchanged,
                             where_differs as _where_differs)

SET = "05_self_attention"

_MUTATED = "your function changed its input {name} in place (an in-place method such as unsqueeze_ or div_, or " \
           "an assignment into it): the caller's tensor must stay as it was; use out-of-place operations"


@contextlib.contextmanager
def _finished_off():
    """While active, the course's finished lesson-05 functions raise (the exercises ask for your own)."""
    from ...models import attention, masks, positional
    from ...models.self_attention import SelfAttention

    with disabled(positional.sinusoidal_encoding, masks.padding_mask, masks.causal_mask, masks.attention_mask,
                  attention.masked_softmax, attention.scaled_dot_product_attention, (SelfAttention, "forward"),
                  why="the exercises of lesson 05 ask for plain tensor operations, not the course's finished version"):
        yield


def _shape(x) -> tuple | None:
    return tuple(x.shape) if x is not None else None


def _bool_tensor(raw):
    """A bool torch tensor from a bool tensor or a NumPy bool array, else None."""
    if isinstance(raw, torch.Tensor) and raw.dtype == torch.bool:
        return raw.cpu()
    if isinstance(raw, np.ndarray) and raw.dtype == np.bool_:
        return torch.from_numpy(raw.copy())
    return None


def _dtype_of(raw) -> str:
    return str(raw.dtype) if isinstance(raw, (torch.Tensor, np.ndarray)) else type(raw).__name__


def _shape_then_bool(t, points, what, raw, shape, shape_hint, bool_hint) -> None:
    """One part: stop the check if ``raw`` is not numbers of ``shape`` (nothing else is testable), else score
    its dtype (a 0/1 mask of the right shape is still graded on its values)."""
    if _shape(_as_tensor(raw)) != shape:
        t.require(False, points, what, shape_hint)
    t.expect(_bool_tensor(raw) is not None, points, what,
             f"the shape is right but the dtype is {_dtype_of(raw)}: return a bool tensor {bool_hint}")


def _bools(x) -> list:
    return [[int(v) for v in row] for row in _as_tensor(x).tolist()]


# --------------------------------------------------------------------------- sinusoidal table


def _sinusoid(n, d, exponent=lambda i, d: 2 * i / d, layout="interleaved"):
    """The reference table, and the usual mistakes (another exponent, sines then cosines), in float64."""
    p = torch.arange(n, dtype=torch.float64)[:, None]                                      # (n, 1)
    i = torch.arange(d // 2, dtype=torch.float64)
    angle = p * 10000.0 ** (-exponent(i, d))                                                # (n, d/2)
    if layout == "interleaved":
        return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)                 # sin, cos, sin, cos...
    return torch.cat([angle.sin(), angle.cos()], dim=-1)                                   # sin... cos...


@register("05.sinusoidal", title="the sinusoidal positional encoding table", exercise_set=SET, points=4)
def check_sinusoidal(t, sinusoidal_encoding):
    with _finished_off():
        _check_sinusoidal(t, sinusoidal_encoding)


def _check_sinusoidal(t, sinusoidal_encoding):
    n, d = 50, 16
    raw = t.call(sinusoidal_encoding, n, d)
    got = _as_tensor(raw)
    if _shape(got) == (d, n):
        hint = f"you returned shape {(d, n)}: the table is (n_positions, d_model), one row per position"
    else:
        hint = f"sinusoidal_encoding(50, 16) should return a table of shape (50, 16); got {_describe(raw)}"
    t.require(_shape(got) == (n, d), 1, "returns an (n_positions, d_model) table", hint)

    row0 = torch.tensor([0.0, 1.0] * (d // 2))
    if _close(got[0], torch.tensor([0.0] * (d // 2) + [1.0] * (d // 2))):
        hint = "your row 0 is all the sines, then all the cosines: interleave them, sin in the even columns 2i and " \
               "cos in the odd columns 2i+1 of the same pair"
    else:
        hint = f"at position 0 every angle is 0, so the row is sin 0, cos 0, ... = 0, 1, 0, 1, ...; row 0 " \
               f"{_where_differs(got[0], row0)}"
    t.expect(_close(got[0], row0), 1, "position 0 is (sin 0, cos 0, sin 0, cos 0, ...)", hint)

    want = _sinusoid(n, d)
    mistakes = {
        "your frequencies use 10000^(-i/d): the exponent is 2i/d, with i the index of the (sin, cos) pair "
        "(equivalently, column index 2i over d)": _sinusoid(n, d, lambda i, d: i / d),
        "your frequencies grow instead of shrinking: the angle is p / 10000^(2i/d), so divide by the power":
            _sinusoid(n, d, lambda i, d: -2 * i / d),
        "you put all the sines first, then all the cosines: interleave them, (sin, cos) of the same angle in "
        "columns 2i and 2i+1": _sinusoid(n, d, layout="halves"),
    }
    hint = next((h for h, table in mistakes.items() if _close(got, table, atol=1e-4)), None)
    if hint is None:
        p, c = first_difference(got, want, atol=1e-4) or (0, 0)
        hint = f"PE[p, 2i] = sin(p / 10000^(2i/d)) and PE[p, 2i+1] = cos(same angle); PE[{p}, {c}] should be " \
               f"{float(want[p, c]):.4f}, got {float(got[p, c]):.4f}"
    table_ok = t.expect(_close(got, want, atol=1e-4), 1, "every entry is sin or cos of p / 10000^(2i/d)", hint)

    # other sizes: fewer and more positions, narrower and wider tables than the example's (50, 16)
    ok, hint = True, ""
    for m, e in ((1, 2), (9, 6), (64, 24)):
        raw = t.call(sinusoidal_encoding, m, e)
        other = _as_tensor(raw)
        if _shape(other) != (m, e):
            ok, hint = False, f"sinusoidal_encoding({m}, {e}) should have shape ({m}, {e}), got {_describe(raw)}: " \
                              f"use n_positions and d_model, do not assume 50 and 16"
            break
        if table_ok and not _close(other, _sinusoid(m, e), atol=1e-4):
            p, c = first_difference(other, _sinusoid(m, e), atol=1e-4)
            ok, hint = False, f"the (50, 16) table is right but sinusoidal_encoding({m}, {e}) is not: PE[{p}, {c}] " \
                              f"should be {float(_sinusoid(m, e)[p, c]):.4f}, got {float(other[p, c]):.4f}; use " \
                              f"d_model in the exponent, do not assume 50 and 16"
            break
    t.expect(ok, 1, "other sizes work too: (1, 2), (9, 6) and (64, 24)" + ("" if table_ok else " (shapes only, "
                                                                            "until the table is right)"), hint)


# --------------------------------------------------------------------------- masks


def _want_padding(lengths, n):
    return torch.arange(n)[None, :] < torch.as_tensor(lengths)[:, None]                    # (B, n)


def _mask_call(t, fn, lengths, n):
    """(raw, bool mask or None, lengths unchanged?) with the learner given a copy of lengths."""
    lengths = torch.tensor(lengths)
    (copy,) = _copies(lengths)
    raw = t.call(fn, copy, n)
    return raw, _bool_tensor(raw), _unchanged((lengths,), (copy,))


@register("05.padding_mask", title="a padding mask from sequence lengths", exercise_set=SET, points=3)
def check_padding_mask(t, padding_mask):
    with _finished_off():
        _check_padding_mask(t, padding_mask)


def _check_padding_mask(t, padding_mask):
    lengths, n = [3, 5, 1], 5
    raw, _, kept = _mask_call(t, padding_mask, lengths, n)
    values = _as_tensor(raw)
    _shape_then_bool(t, 0.5, "returns a (batch, n) bool tensor", raw, (3, 5),
                     f"lengths of shape (3,) and n=5 should give a (3, 5) bool tensor; got {_describe(raw)}",
                     "(a comparison such as positions < lengths gives one); masked_fill and ~mask need bool")
    all_kept = kept

    want = _want_padding(lengths, n)
    if _close(values, ~want):
        hint = "your mask is inverted: True marks a real token (may be attended to), False marks padding"
    elif _close(values, torch.arange(n)[None, :] <= torch.tensor(lengths)[:, None]):
        hint = "one position too many: a sequence of length L has real tokens at positions 0 .. L-1 (use <, not <=)"
    else:
        hint = f"row b should be True at its first lengths[b] positions; expected {_bools(want)}, got {_bools(values)}"
    values_ok = t.expect(_close(values, want), 1, "True at the first lengths[b] positions of row b, False after", hint)

    # other batch sizes and widths: n longer than every sequence, an empty sequence, a full one
    ok, hint = True, ""
    for lengths, n in (([0, 4], 6), ([2, 7, 7, 0, 1], 9)):
        raw, _, kept = _mask_call(t, padding_mask, lengths, n)
        all_kept = all_kept and kept
        other, want = _as_tensor(raw), _want_padding(lengths, n)
        if _shape(other) != tuple(want.shape):
            ok = False
            if other is not None and other.dim() == 2 and other.shape[1] == max(lengths):
                hint = f"padding_mask(tensor({lengths}), {n}) should be {tuple(want.shape)}: the width is n, not " \
                       f"max(lengths); got {_describe(raw)}"
            else:
                hint = f"padding_mask(tensor({lengths}), {n}) should have shape {tuple(want.shape)} (batch, n), got " \
                       f"{_describe(raw)}: take the batch size from lengths and the width from n"
            break
        if values_ok and not _close(other, want):
            ok, hint = False, f"padding_mask(tensor({lengths}), {n}) should be {_bools(want)} (an empty sequence is " \
                              f"all False); got {_bools(other)}"
            break
    t.expect(ok, 1, "other batch sizes, n longer than every sequence, and an empty sequence", hint)
    t.expect(all_kept, 0.5, "leaves `lengths` unchanged", _MUTATED.format(name="lengths"))


@register("05.causal_mask", title="a causal mask: no position sees the future", exercise_set=SET, points=3)
def check_causal_mask(t, causal_mask):
    with _finished_off():
        _check_causal_mask(t, causal_mask)


def _check_causal_mask(t, causal_mask):
    n = 5
    raw = t.call(causal_mask, n)
    values = _as_tensor(raw)
    _shape_then_bool(t, 1, "returns an (n, n) bool tensor", raw, (n, n),
                     f"causal_mask(5) should be a (5, 5) bool tensor; got {_describe(raw)}", "(True = may attend)")
    want = torch.ones(n, n, dtype=torch.bool).tril()
    if _close(values, want.T):
        hint = "your mask lets every position see the future: row i (the query) may attend to keys j <= i, the " \
               "lower triangle (tril), not the upper one"
    elif _close(values, ~want):
        hint = "your mask is inverted: True must mark the keys a query MAY attend to (j <= i)"
    elif _close(values, want.tril(-1)):
        hint = "you left out the diagonal: a position may attend to itself (j <= i, not j < i); otherwise " \
               "position 0 has nothing at all to attend to"
    else:
        hint = f"entry [i, j] should be True exactly when j <= i; expected {_bools(want)}, got {_bools(values)}"
    five_ok = t.expect(_close(values, want), 1, "True where j <= i: each query sees itself and the past", hint)

    ok, hint = True, ""
    for m in (1, 2, 7, 12):
        raw = t.call(causal_mask, m)
        other = _as_tensor(raw)
        if _shape(other) != (m, m):
            ok, hint = False, f"causal_mask({m}) should have shape ({m}, {m}), got {_describe(raw)}: use n, do not " \
                              f"assume 5"
            break
        if five_ok and not _close(other, torch.ones(m, m).tril()):
            ok, hint = False, f"causal_mask({m}) should be the ({m}, {m}) lower triangle; " \
                              f"{_where_differs(other, torch.ones(m, m).tril())}: use n, do not assume 5"
            break
    t.expect(ok, 1, "other sizes: n = 1, 2, 7 and 12" + ("" if five_ok else " (shapes only, until n = 5 is right)"),
             hint)


# --------------------------------------------------------------------------- causal self-attention


def _ref_causal(x, W_q, W_k, W_v, scale=None, causal=True):
    """(output, weights) in float64; ``scale`` replaces d_k under the square root (the usual mistakes)."""
    x, W_q, W_k, W_v = (a.to(torch.float64) for a in (x, W_q, W_k, W_v))
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    n = x.shape[1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(scale or q.shape[-1])                    # (B, n, n)
    if causal:
        scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


def _attention_case(seed, B, n, d_model, d_k, d_v, token_scale=None, w_scale=1.0):
    """x (B, n, d_model), W_q, W_k (d_model, d_k), W_v (d_model, d_v); token_scale (B, n) multiplies each token,
    w_scale the query and key projections (to make the scores large)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, d_model, generator=g)
    if token_scale is not None:
        x = x * torch.tensor(token_scale)[..., None]
    W_q, W_k = (torch.randn(d_model, d_k, generator=g) * w_scale / math.sqrt(d_model) for _ in range(2))
    W_v = torch.randn(d_model, d_v, generator=g) / math.sqrt(d_model)
    return x, W_q, W_k, W_v


def _attention_call(t, fn, args):
    """(output, weights) as float64 (None where not numbers), the raw answer, and whether the inputs were kept."""
    copies = _copies(*args)
    raw = t.call(fn, *copies)
    pair = isinstance(raw, (tuple, list)) and len(raw) == 2
    out, w = (_as_tensor(raw[0]), _as_tensor(raw[1])) if pair else (None, None)
    return out, w, raw, _unchanged(args, copies)


def _close_or_same_nan(got, want, atol) -> bool:
    """close, where nan in ``want`` (from the learner's own nan weights) must be nan in ``got`` too."""
    if got is None or got.shape != want.shape or not torch.equal(got.isnan(), want.isnan()):
        return False
    return _close(got.nan_to_num(0.0), want.nan_to_num(0.0), atol=atol)


def _pair_described(raw) -> str:
    if isinstance(raw, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in raw) + ")"
    return _describe(raw)


def _sizes(x, W_q, W_v) -> str:
    return f"x {tuple(x.shape)}, W_q and W_k {tuple(W_q.shape)}, W_v {tuple(W_v.shape)}"


# every free dimension differs between the two: (B, n, d_model, d_k, d_v)
_SIZE_1, _SIZE_2 = (2, 5, 6, 4, 3), (3, 7, 5, 2, 6)
# batch 0: tokens of very different norms, scores up to thousands; batch 1: tiny scores (mixed-scale rows)
_LARGE_TOKENS = [[0.2, 3.0, 0.1, 4.0, 0.05], [0.01, 0.02, 0.01, 0.03, 0.01]]


@register("05.causal_self_attention", title="a causal self-attention layer", exercise_set=SET, points=5)
def check_causal_self_attention(t, causal_self_attention):
    with _finished_off():
        _check_causal_self_attention(t, causal_self_attention)


def _check_causal_self_attention(t, causal_self_attention):
    fn = causal_self_attention
    B, n, d_model, d_k, d_v = _SIZE_1
    args = _attention_case(5, *_SIZE_1)
    x, W_q, W_k, W_v = args
    want_out, want_w = _ref_causal(*args)
    later = x.clone()
    later[:, -1] += 3.0                                                     # change the last token only
    args_2 = _attention_case(6, *_SIZE_2)
    want_2 = _ref_causal(*args_2)
    args_big = _attention_case(3, *_SIZE_1, token_scale=_LARGE_TOKENS, w_scale=30.0)
    want_big = _ref_causal(*args_big)

    out, w, raw, kept = _attention_call(t, fn, args)
    t.require(_shape(out) == (B, n, d_v) and _shape(w) == (B, n, n), 0.5,
              "returns (output, weights) of shapes (B, n, d_v) and (B, n, n)",
              f"x (2, 5, 6) with W_q, W_k (6, 4) and W_v (6, 3) should give output (2, 5, 3) and weights (2, 5, 5); "
              f"got {_pair_described(raw)}")
    all_kept = kept

    # 1. each row a distribution over the keys
    sums = w.sum(-1)
    rows_ok = bool((w >= -1e-7).all()) and _close(sums, torch.ones(B, n))
    if not rows_ok and _close(w.sum(-2), torch.ones(B, n)):
        hint = "your weights sum to one down each column: the softmax must run over the keys (dim=-1), so each " \
               "query's row sums to one"
    elif not rows_ok:
        idx = first_difference(sums, torch.ones(B, n))
        hint = "each query's weights (one row) should be non-negative and sum to 1; " + \
               (f"row {idx[1]} of sequence {idx[0]} sums to {float(sums[idx]):.4g}" if idx else "a weight is negative")
    else:
        hint = ""
    t.expect(rows_ok, 0.5, "each query's weights form a distribution over the keys", hint)

    own = w @ (x.to(torch.float64) @ W_v.to(torch.float64))               # the output the learner's weights give

    # 2. causality: weights above the diagonal are 0, and a change of the last token moves no earlier output
    out_later, _, _, kept = _attention_call(t, fn, (later, W_q, W_k, W_v))
    all_kept = all_kept and kept
    future = torch.ones(n, n, dtype=torch.bool).triu(1)
    above = bool((w[:, future].abs() >= 1e-7).any()) or not bool(torch.isfinite(w[:, future]).all())
    leaks = _shape(out_later) != (B, n, d_v) or not _close(out_later[:, :-1], out[:, :-1], atol=1e-5)
    if not bool(torch.isfinite(w[:, 0]).all()):
        hint = "query 0 came out nan: your mask hides the diagonal too, so position 0 has no key at all; a query " \
               "may attend to itself and the past, keys j <= i (tril(), not tril(-1))"
    elif above and _close(w, _ref_causal(*args, causal=False)[1]):
        hint = "these are the weights of attention without a mask: fill the scores of the keys j > i with -inf " \
               "before the softmax (the causal mask, True = keep)"
    elif above:
        i, j = next((i, j) for i in range(n) for j in range(i + 1, n) if bool((w[:, i, j].abs() >= 1e-7).any())
                    or not bool(torch.isfinite(w[:, i, j]).all()))
        hint = f"query i may only attend to keys j <= i: fill the scores above the diagonal with -inf before the " \
               f"softmax (filling them with 0 still gives them weight); query {i} gives key {j} weight " \
               f"{float(w[:, i, j].abs().max()):.4g}, it should be 0"
    elif leaks and _shape(out_later) == (B, n, d_v) and not _close_or_same_nan(out, own, atol=1e-4):
        hint = "the weights above the diagonal are 0, yet changing the last token changed the outputs of earlier " \
               "positions: your output mixes the positions in another way than weights @ v (query i's output is " \
               "row i of the weights times v)"
    elif leaks and _shape(out_later) == (B, n, d_v):
        hint = "the weights above the diagonal are 0, yet changing the last token changed the outputs of earlier " \
               "positions: the future leaks in some other way (is the softmax over the keys, dim=-1?)"
    else:
        hint = "changing the last token changed the outputs of earlier positions: no position may see the future"
    t.expect(not above and not leaks, 1, "no position sees the future (weights above the diagonal are 0)", hint)

    # 3. the weights on the visible keys, renormalised, so that a missing mask costs only the part above
    visible = w.masked_fill(future, 0.0)
    visible = visible / visible.sum(-1, keepdim=True)
    formula_ok = _close(visible, want_w)
    if formula_ok:
        hint = ""
    elif not rows_ok and _close(w.sum(-2), torch.ones(B, n)):
        hint = "the weights are normalised over the queries, not the keys (see the part above); fix that first"
    elif _close(visible, _ref_causal(*args, scale=1.0)[1]):
        hint = f"your scores are not scaled: divide q . k by sqrt(d_k), d_k = W_q.shape[1] = {d_k}"
    elif _close(visible, _ref_causal(*args, scale=d_model)[1]):
        hint = f"you scaled by sqrt(d_model) = sqrt({d_model}); scale by sqrt(d_k), the size of the queries and " \
               f"keys ({d_k})"
    elif _close(visible, _ref_causal(*args, scale=d_v)[1]):
        hint = f"you scaled by sqrt(d_v) = sqrt({d_v}); scale by sqrt(d_k) = sqrt({d_k}), the size of the queries " \
               f"and keys (W_q.shape[1])"
    elif _close(visible, _ref_causal(*args, scale=d_k ** 2)[1]):
        hint = "you divided by d_k; divide by its square root, sqrt(d_k)"
    else:
        idx = first_difference(visible, want_w)
        hint = "weights = softmax(mask(q k^T / sqrt(d_k))) with q = x @ W_q, k = x @ W_k; " + \
               (f"sequence {idx[0]}, query {idx[1]}, key {idx[2]}: expected {float(want_w[idx]):.4g}, got "
                f"{float(visible[idx]):.4g}" if idx else "your weights are not finite")
    t.expect(formula_ok, 1, "weights are softmax(q k^T / sqrt(d_k)) over the keys each query may see", hint)

    # 4. the output is the learner's own weights applied to the values
    out_ok = _close_or_same_nan(out, own, atol=1e-4)
    if out_ok:
        hint = ""
    elif _close(w, want_w):
        hint = f"your weights are right but the output is not: output = weights @ v with v = x @ W_v; " \
               f"{_where_differs(out, want_out, atol=1e-4)}"
    else:
        hint = f"the output should be your weights @ v, with v = x @ W_v; {_where_differs(out, own, atol=1e-4)}"
    t.expect(out_ok, 0.5, "the output is the weighted sum of the values, weights @ (x @ W_v)", hint)
    exact = _close(w, want_w) and _close(out, want_out, atol=1e-4)

    # 5. another size in every dimension
    out_2, w_2, raw_2, kept = _attention_call(t, fn, args_2)
    all_kept = all_kept and kept
    B2, n2, d_model2, d_k2, d_v2 = _SIZE_2
    sizes = _sizes(*args_2[:2], args_2[3])
    if _shape(out_2) != (B2, n2, d_v2) or _shape(w_2) != (B2, n2, n2):
        ok, hint = False, f"{sizes} should give output {(B2, n2, d_v2)} and weights {(B2, n2, n2)}, got " \
                          f"{_pair_described(raw_2)}: take every size from the arguments"
    elif not exact:
        ok, hint = True, ""                               # the values are judged once the first size is right
    else:
        ok = _close(w_2, want_2[1]) and _close(out_2, want_2[0], atol=1e-4)
        scale = next((s for s in (4, d_model2, d_v2, 6, 3, 1) if _close(w_2, _ref_causal(*args_2, scale=s)[1])), None)
        if ok:
            hint = ""
        elif scale is not None:
            hint = f"with {sizes} your weights are scaled by sqrt({scale}); d_k = W_q.shape[1] = {d_k2} here: take " \
                   f"d_k from the arguments, not from the first example"
        else:
            bad = w_2 if not _close(w_2, want_2[1]) else out_2
            ref = want_2[1] if bad is w_2 else want_2[0]
            hint = f"right at the first size, wrong at {sizes}: {'weights' if bad is w_2 else 'output'} " \
                   f"{_where_differs(bad, ref, atol=1e-4)}"
    t.expect(ok, 0.5, "other sizes: B, n, d_model, d_k and d_v all different" +
             ("" if exact else " (shapes only, until the first size is right)"), hint)

    # 6. scores in the thousands, rows of very different scales
    out_b, w_b, raw_b, kept = _attention_call(t, fn, args_big)
    all_kept = all_kept and kept
    finite = out_b is not None and w_b is not None and bool(torch.isfinite(out_b).all() and torch.isfinite(w_b).all())
    if _shape(out_b) != (B, n, d_v) or _shape(w_b) != (B, n, n):
        ok, hint = False, f"the same sizes with large scores should still give output {(B, n, d_v)} and weights " \
                          f"{(B, n, n)}, got {_pair_described(raw_b)}"
    elif not finite and not all_finite(w):
        ok, hint = True, ""                               # already not finite at the first size: judged there
    elif not finite:
        idx = tuple(int(i) for i in (~torch.isfinite(w_b)).nonzero()[0]) if not bool(torch.isfinite(w_b).all()) \
            else None
        ok, hint = False, "with scores in the thousands (sequence 0) next to scores near 0 (sequence 1) your " \
                          "weights are not finite" + (f" at index {idx}" if idx else "") + \
                          ": exp overflows, or a maximum subtracted over the whole tensor (or before masking) makes " \
                          "a row's exp underflow to 0/0. Subtract each row's own maximum after masking, or use " \
                          "torch.softmax"
    elif exact:
        ok = _close(w_b, want_big[1], atol=1e-4) and _close(out_b, want_big[0], atol=1e-4)
        hint = "" if ok else \
            "with scores in the thousands (sequence 0) next to scores near 0 (sequence 1) the weights are wrong: " + \
            _where_differs(w_b, want_big[1], atol=1e-4) + "; subtract each row's own maximum after masking"
    else:
        ok, hint = True, ""
    t.expect(ok, 0.5, "large and mixed-scale scores (thousands, rows of very different scales): finite and exact",
             hint)
    t.expect(all_kept, 0.5, "leaves x, W_q, W_k and W_v unchanged", _MUTATED.format(name="(x, W_q, W_k or W_v)"))


# --------------------------------------------------------------------------- exercise 5: predict, then count


def _allowed_pairs(lengths, n) -> int:
    """Query i of a sentence of length L (padded to n) may see keys j <= i with j < L: min(i + 1, L) keys."""
    return sum(min(i + 1, L) for L in lengths for i in range(n))


@register("05.allowed_pairs", title="predict, then count the pairs that padding and causal masks allow",
          exercise_set=SET, points=3)
def check_allowed_pairs(t, predicted_pairs, allowed_pairs):
    lengths, n = [12, 7, 3], 12
    raw = t.call(predicted_pairs)
    guess = _as_int(raw)
    want = _allowed_pairs(lengths, n)
    wrong = {
        n * n * len(lengths): "that is every (query, key) pair of the padded batch: the causal mask removes the keys "
                              "after each query, and the padding mask the padded keys",
        len(lengths) * n * (n + 1) // 2: "that is the causal mask alone (n(n+1)/2 per sentence): the padding mask also "
                                         "removes the keys j >= L of the shorter sentences",
        sum(L * (L + 1) // 2 for L in lengths): "that counts only the real queries: the padded queries (i >= L) are "
                                                "computed too, and each of them sees all L real keys",
        sum(L * n for L in lengths): "that is the padding mask alone: the causal mask also removes the keys after "
                                     "each query",
    }
    if guess is None:
        hint = f"predicted_pairs() should return your count, a whole number; got {_describe(raw)}"
    else:
        hint = wrong.get(guess, "query i of a sentence of length L padded to n may see the keys j <= i with j < L, "
                                "that is min(i + 1, L) of them; add this up over i = 0 .. n-1 and over the sentences")
    t.expect(guess == want, 1, "the predicted number of allowed pairs for lengths [12, 7, 3] padded to 12", hint)

    cases = [([12, 7, 3], 12), ([5], 5), ([4, 0, 2], 6), ([1, 1], 3), ([9, 3, 6, 2], 10)]
    hint = ""
    with _finished_off():
        for lens, width in cases:
            raw = t.call(allowed_pairs, torch.tensor(lens), width)
            got = _as_int(raw)
            if got != _allowed_pairs(lens, width):
                why = {sum(L * (L + 1) // 2 for L in lens): "that counts the real queries only; the padded queries "
                                                           "are computed too",
                       _allowed_pairs(lens, max(lens)): "that is the count for a width of max(lengths); use n",
                       len(lens) * width * (width + 1) // 2: "that is the causal mask alone",
                       sum(lens) * width: "that is the padding mask alone"}.get(got, "combine padding_mask(lengths, "
                                                                                  "n)[:, None, :] & causal_mask(n) "
                                                                                  "and count its True entries")
                hint = (f"for lengths {lens} padded to n = {width} the masks allow {_allowed_pairs(lens, width)} "
                        f"(query, key) pairs, got {got if got is not None else _describe(raw)}: {why}")
                break
    t.expect(not hint, 2, "allowed_pairs(lengths, n) counts the True entries of the combined mask, for any "
                          "lengths and width", hint)
