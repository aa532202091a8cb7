"""Checks for exercises/05_self_attention.ipynb: the sinusoidal position table, padding and causal masks,
and a causal self-attention layer."""

from __future__ import annotations

import math

import torch

from ..core import register
from ..tensor_checks import (as_count as _as_int, close as _close, describe as _describe, is_tensor as _is_tensor,
                             rounded as _rounded)

SET = "05_self_attention"


def _bools(x) -> list:
    return [[int(v) for v in row] for row in x.tolist()]


# --------------------------------------------------------------------------- sinusoidal table


def _sinusoid(n, d, exponent=lambda i, d: 2 * i / d, layout="interleaved"):
    """The reference table, and the usual mistakes (another exponent, sines then cosines), in float64."""
    p = torch.arange(n, dtype=torch.float64)[:, None]                                      # (n, 1)
    i = torch.arange(d // 2, dtype=torch.float64)
    angle = p * 10000.0 ** (-exponent(i, d))                                                # (n, d/2)
    if layout == "interleaved":
        return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2).float()         # sin, cos, sin, cos...
    return torch.cat([angle.sin(), angle.cos()], dim=-1).float()                           # sin... cos...


@register("05.sinusoidal", title="the sinusoidal positional encoding table", exercise_set=SET, points=4)
def check_sinusoidal(t, sinusoidal_encoding):
    n, d = 50, 16
    got = t.call(sinusoidal_encoding, n, d)
    if _is_tensor(got, (d, n)):
        hint = f"you returned shape {(d, n)}: the table is (n_positions, d_model), one row per position"
    else:
        hint = f"sinusoidal_encoding(50, 16) should return a float tensor of shape (50, 16); got {_describe(got)}"
    t.require(_is_tensor(got, (n, d)) and got.dtype.is_floating_point, 1, "returns a (n_positions, d_model) float tensor",
              hint)
    got = got.detach().cpu().float()
    row0 = torch.tensor([0.0, 1.0] * (d // 2))
    if _close(got[0], torch.tensor([0.0] * (d // 2) + [1.0] * (d // 2))):
        hint = "your row 0 is all the sines, then all the cosines: interleave them, sin in the even columns 2i and " \
               "cos in the odd columns 2i+1 of the same pair"
    else:
        hint = f"at position 0 every angle is 0, so the row should be sin 0, cos 0, ... = {row0.int().tolist()}; " \
               f"got {_rounded(got[0], 2)}"
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
        p, c = 7, 5
        hint = f"PE[p, 2i] = sin(p / 10000^(2i/d)) and PE[p, 2i+1] = cos(same angle); e.g. PE[{p}, {c}] should be " \
               f"{float(want[p, c]):.4f}, got {float(got[p, c]):.4f}"
    table_ok = t.expect(_close(got, want, atol=1e-4), 1, "every entry is sin or cos of p / 10000^(2i/d)", hint)

    small = t.call(sinusoidal_encoding, 1, 2)
    other = t.call(sinusoidal_encoding, 9, 6)
    ok = _close(small, torch.tensor([[0.0, 1.0]])) and _close(other, _sinusoid(9, 6), atol=1e-4)
    if not table_ok:
        hint = "fix the (50, 16) table first; sinusoidal_encoding(1, 2) should be [[0., 1.]] and (9, 6) a 9 x 6 table"
    else:
        hint = f"sinusoidal_encoding(1, 2) should be [[0., 1.]] and sinusoidal_encoding(9, 6) a (9, 6) table; got " \
               f"{_describe(small)} and {_describe(other)}: use n_positions and d_model, do not assume 50 and 16"
    t.expect(ok, 1, "other sizes work too: (1, 2) and (9, 6)", hint)


# --------------------------------------------------------------------------- masks


@register("05.padding_mask", title="a padding mask from sequence lengths", exercise_set=SET, points=3)
def check_padding_mask(t, padding_mask):
    lengths = torch.tensor([3, 5, 1])
    got = t.call(padding_mask, lengths, 5)
    if _is_tensor(got, (3, 5)) and got.dtype != torch.bool:
        hint = f"the shape is right but the dtype is {got.dtype}: return a bool tensor (a comparison such as " \
               "positions < lengths gives one); masked_fill and ~mask need bool"
    else:
        hint = f"lengths of shape (3,) and n=5 should give a (3, 5) bool tensor; got {_describe(got)}"
    t.require(_is_tensor(got, (3, 5)) and got.dtype == torch.bool, 1, "returns a (batch, n) bool tensor", hint)
    want = torch.arange(5)[None, :] < lengths[:, None]
    if torch.equal(got, ~want):
        hint = "your mask is inverted: True marks a real token (may be attended to), False marks padding"
    elif torch.equal(got, torch.arange(5)[None, :] <= lengths[:, None]):
        hint = "one position too many: a sequence of length L has real tokens at positions 0 .. L-1 (use <, not <=)"
    else:
        hint = f"row b should be True at its first lengths[b] positions; expected {_bools(want)}, got {_bools(got)}"
    t.expect(torch.equal(got, want), 1, "True at the first lengths[b] positions of row b, False after", hint)
    edge = t.call(padding_mask, torch.tensor([0, 4]), 6)
    want = torch.tensor([[False] * 6, [True] * 4 + [False] * 2])
    if _is_tensor(edge) and edge.dim() == 2 and edge.shape[1] == 4:
        hint = f"padding_mask(tensor([0, 4]), 6) should be (2, 6): the width is n, not max(lengths); got {_describe(edge)}"
    else:
        hint = f"padding_mask(tensor([0, 4]), 6) should be {_bools(want)} (an empty sequence is all False); got " \
               f"{_bools(edge) if _is_tensor(edge, (2, 6)) else _describe(edge)}"
    t.expect(_is_tensor(edge, (2, 6)) and edge.dtype == torch.bool and torch.equal(edge, want), 1,
             "n longer than every sequence, and an empty sequence", hint)


@register("05.causal_mask", title="a causal mask: no position sees the future", exercise_set=SET, points=3)
def check_causal_mask(t, causal_mask):
    n = 5
    got = t.call(causal_mask, n)
    if _is_tensor(got, (n, n)) and got.dtype != torch.bool:
        hint = f"the shape is right but the dtype is {got.dtype}: return a bool tensor (True = may attend)"
    else:
        hint = f"causal_mask(5) should be a (5, 5) bool tensor; got {_describe(got)}"
    t.require(_is_tensor(got, (n, n)) and got.dtype == torch.bool, 1, "returns an (n, n) bool tensor", hint)
    want = torch.ones(n, n, dtype=torch.bool).tril()
    if torch.equal(got, want.T):
        hint = "your mask lets every position see the future: row i (the query) may attend to keys j <= i, the " \
               "lower triangle (tril), not the upper one"
    elif torch.equal(got, ~want):
        hint = "your mask is inverted: True must mark the keys a query MAY attend to (j <= i)"
    elif torch.equal(got, want.tril(-1)):
        hint = "you left out the diagonal: a position may attend to itself (j <= i, not j < i); otherwise " \
               "position 0 has nothing at all to attend to"
    else:
        hint = f"entry [i, j] should be True exactly when j <= i; expected {_bools(want)}, got {_bools(got)}"
    five_ok = t.expect(torch.equal(got, want), 1, "True where j <= i: each query sees itself and the past", hint)
    one, seven = t.call(causal_mask, 1), t.call(causal_mask, 7)
    ok = (_is_tensor(one, (1, 1)) and one.dtype == torch.bool and bool(one.all())
          and _is_tensor(seven, (7, 7)) and seven.dtype == torch.bool
          and torch.equal(seven, torch.ones(7, 7, dtype=torch.bool).tril()))
    hint = "fix causal_mask(5) first; then causal_mask(1) should be [[True]] and causal_mask(7) the 7 x 7 lower " \
           "triangle" if not five_ok else \
           f"causal_mask(1) should be [[True]] and causal_mask(7) the (7, 7) lower triangle; got {_describe(one)} " \
           f"and {_describe(seven)}: use n, do not assume 5"
    t.expect(ok, 1, "other sizes: n = 1 and n = 7", hint)


# --------------------------------------------------------------------------- causal self-attention


def _ref_causal(x, W_q, W_k, W_v, scale=None, causal=True):
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    n = x.shape[1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(scale or q.shape[-1])
    if causal:
        scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


@register("05.causal_self_attention", title="a causal self-attention layer", exercise_set=SET, points=5)
def check_causal_self_attention(t, causal_self_attention):
    g = torch.Generator().manual_seed(5)
    B, n, d_model, d_k, d_v = 2, 5, 6, 4, 3
    x = torch.randn(B, n, d_model, generator=g)
    W_q, W_k, W_v = (torch.randn(d_model, m, generator=g) / math.sqrt(d_model) for m in (d_k, d_k, d_v))
    got = t.call(causal_self_attention, x, W_q, W_k, W_v)
    pair = isinstance(got, (tuple, list)) and len(got) == 2
    t.require(pair and _is_tensor(got[0], (B, n, d_v)) and _is_tensor(got[1], (B, n, n)), 1,
              "returns (output, weights) of shapes (B, n, d_v) and (B, n, n)",
              f"x (2, 5, 6) with W_q, W_k (6, 4) and W_v (6, 3) should give output (2, 5, 3) and weights (2, 5, 5); "
              f"got {[_describe(v) for v in got] if pair else _describe(got)}")
    out, w = (v.detach().cpu().float() for v in got)
    want_out, want_w = _ref_causal(x, W_q, W_k, W_v)

    rows_ok = _close(w.sum(-1), torch.ones(B, n))
    if not rows_ok and _close(w.sum(-2), torch.ones(B, n)):
        hint = "your weights sum to one down each column: the softmax must run over the keys (dim=-1), so each " \
               "query's row sums to one"
    else:
        hint = f"each query's weights (one row) should sum to 1; row sums of sequence 0: {_rounded(w[0].sum(-1))}"
    t.expect(rows_ok, 1, "each query's weights form a distribution over the keys", hint)

    future = torch.ones(n, n, dtype=torch.bool).triu(1)
    x2 = x.clone()
    x2[:, -1] += 3.0                                      # change the last token only
    got2 = t.call(causal_self_attention, x2, W_q, W_k, W_v)
    out2 = got2[0].detach().cpu().float() if isinstance(got2, (tuple, list)) and _is_tensor(got2[0], (B, n, d_v)) else None
    above = bool((w[:, future].abs() >= 1e-7).any())
    changed = out2 is None or not _close(out2[:, :-1], out[:, :-1])
    if above:
        hint = f"query i may only attend to keys j <= i: fill the scores above the diagonal with -inf before the " \
               f"softmax (the causal mask, True = keep); row 0 of sequence 0 is {_rounded(w[0, 0])}, it should be " \
               f"[1, 0, 0, 0, 0]"
    else:
        hint = "the weights above the diagonal are 0, yet changing the last token changed the outputs of earlier " \
               "positions: the future leaks in some other way (is the softmax over the keys, dim=-1?)"
    t.expect(not above and not changed, 1, "no position sees the future (weights above the diagonal are 0)", hint)

    if _close(w, _ref_causal(x, W_q, W_k, W_v, causal=False)[1]):
        hint = "these are the weights of attention without a mask: apply the causal mask before the softmax"
    elif _close(w, _ref_causal(x, W_q, W_k, W_v, scale=1.0)[1]):
        hint = "your scores are not scaled: divide q . k by sqrt(d_k), d_k = W_q.shape[1] = 4"
    elif _close(w, _ref_causal(x, W_q, W_k, W_v, scale=d_model)[1]):
        hint = "you scaled by sqrt(d_model) = sqrt(6); scale by sqrt(d_k), the size of the queries and keys (4)"
    else:
        hint = f"weights = softmax(mask(q k^T / sqrt(d_k))) with q = x @ W_q, k = x @ W_k; row 2 of sequence 0 " \
               f"should be {_rounded(want_w[0, 2])}, got {_rounded(w[0, 2])}"
    t.expect(_close(w, want_w), 1, "weights are softmax(q k^T / sqrt(d_k)) under the causal mask", hint)
    t.expect(_close(out, want_out, atol=1e-4), 1, "the output is the weighted sum of the values, weights @ (x @ W_v)",
             "fix the weights first; then output = weights @ v with v = x @ W_v" if not _close(w, want_w) else
             f"your weights are right but the output is not: output[0, 2] should be {_rounded(want_out[0, 2])}, "
             f"got {_rounded(out[0, 2])}")


# --------------------------------------------------------------------------- exercise 5: predict, then count


def _allowed_pairs(lengths, n) -> int:
    """Query i of a sentence of length L (padded to n) may see keys j <= i with j < L: min(i + 1, L) keys."""
    return sum(min(i + 1, L) for L in lengths for i in range(n))


@register("05.allowed_pairs", title="predict, then count the pairs that padding and causal masks allow",
          exercise_set=SET, points=3)
def check_allowed_pairs(t, predicted_pairs, allowed_pairs):
    lengths, n = [12, 7, 3], 12
    guess = _as_int(t.call(predicted_pairs))
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
        hint = "predicted_pairs() should return your count, a whole number"
    else:
        hint = wrong.get(guess, "query i of a sentence of length L padded to n may see the keys j <= i with j < L, "
                                "that is min(i + 1, L) of them; add this up over i = 0 .. n-1 and over the sentences")
    t.expect(guess == want, 1, "the predicted number of allowed pairs for lengths [12, 7, 3] padded to 12", hint)

    cases = [([12, 7, 3], 12), ([5], 5), ([4, 0, 2], 6), ([1, 1], 3), ([9, 3, 6, 2], 10)]
    hint = ""
    for lens, width in cases:
        got = _as_int(t.call(allowed_pairs, torch.tensor(lens), width))
        if got != _allowed_pairs(lens, width):
            hint = (f"for lengths {lens} padded to n = {width} the masks allow {_allowed_pairs(lens, width)} "
                    f"(query, key) pairs, got {got}: combine padding_mask(lengths, n)[:, None, :] & causal_mask(n) "
                    f"and count its True entries")
            break
    t.expect(not hint, 2, "allowed_pairs(lengths, n) counts the True entries of the combined mask, for any "
                          "lengths and width", hint)
