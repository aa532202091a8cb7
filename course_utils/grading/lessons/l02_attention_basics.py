"""Checks for exercises/02_attention_basics.ipynb: a stable masked softmax written without torch's softmax,
the additive (Bahdanau) score, batched scaled dot-product attention, and predictions made before measuring.

Every check calls the learner's code on at least two sizes in every free dimension, on copies of its inputs
(the references are computed first, and the originals are compared afterwards), on large and mixed-scale
scores where a softmax is involved (rows in the thousands, rows of very different scales in one tensor, so
a naive or a globally shifted softmax fails), accepts answers as tensors of any floating dtype, NumPy arrays
or lists, and says where a wrong answer first differs. While a check runs, the course's finished versions
(``course_utils.models.attention``) are switched off, and for exercise 1 so are torch's softmax functions.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ..core import register
from ..tensor_checks import (as_tensor as _as_tensor, close, copies as _copies, describe as _describe, disabled,
                             unchanged as _unchanged, where_differs)

SET = "02_attention_basics"


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _switched_off(no_softmax: bool = False, no_torch_sdpa: bool = False):
    """Make the course's finished attention (and, if asked, torch's softmax / attention) raise; restore after."""
    from ...models import attention as finished

    softmaxes = [(owner, name) for name in ("softmax", "log_softmax")
                 for owner in (torch, F, torch.Tensor, torch.special)] if no_softmax else []
    sdpa = [(F, "scaled_dot_product_attention")] if no_torch_sdpa else []
    with disabled((finished, "masked_softmax"), (finished, "scaled_dot_product_attention"),
                  (finished.AdditiveScore, "forward"), (finished.ScaledDotScore, "forward"),
                  why="the course's finished version cannot be used for this exercise: write it yourself"), \
            disabled(*softmaxes, why="exercise 1 asks for a softmax built from torch.exp and a sum"), \
            disabled(*sdpa, why="exercise 3 asks you to write attention yourself"):
        yield


_MUTATED = "your function changed one of its input tensors in place (for example with masked_fill_ or " \
           "an assignment into it); work on a copy or use out-of-place operations"


def _ref_masked_softmax(scores, mask, dim=-1):
    """The reference, in float64: masked entries get exactly 0; a slice with nothing kept gets all zeros."""
    scores = scores.to(torch.float64)
    filled = scores.masked_fill(~mask, float("-inf"))
    top = filled.amax(dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.exp(filled - top)
    return e / e.sum(dim, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def _mixed_scale_scores(g, rows, n, dtype=torch.float32):
    """Rows of very different scales and offsets in one tensor: near 0, in the thousands, large negative."""
    base = torch.randn(rows, n, generator=g, dtype=torch.float64)
    scale = torch.tensor([1.0, 1000.0, 3.0, 50.0, 0.01, 200.0][:rows], dtype=torch.float64).unsqueeze(1)
    offset = torch.tensor([0.0, 3000.0, -5000.0, 800.0, -2.0, -40000.0][:rows], dtype=torch.float64).unsqueeze(1)
    return (base * scale + offset).to(dtype)


# --------------------------------------------------------------------------- exercise 1


@register("02.stable_masked_softmax", title="softmax that is stable, masked, and safe on empty rows",
          exercise_set=SET, points=8)
def check_stable_masked_softmax(t, stable_masked_softmax):
    with _switched_off(no_softmax=True):
        _check_stable_masked_softmax(t, stable_masked_softmax)


def _softmax_case(t, fn, scores, mask, dim=-1):
    """(got as float64 or None, want, raw answer, inputs unchanged?); want is computed before the call."""
    want = _ref_masked_softmax(scores, mask, dim)
    s_copy, m_copy = _copies(scores, mask)
    raw = t.call(fn, s_copy, m_copy, dim=dim) if dim != -1 else t.call(fn, s_copy, m_copy)
    return _as_tensor(raw), want, raw, _unchanged((scores, mask), (s_copy, m_copy))


def _check_stable_masked_softmax(t, stable_masked_softmax):
    g = torch.Generator().manual_seed(2)
    fn = stable_masked_softmax

    scores = torch.randn(3, 5, generator=g)
    got, want, raw, kept = _softmax_case(t, fn, scores, torch.ones(3, 5, dtype=torch.bool))
    t.require(got is not None and tuple(got.shape) == (3, 5), 1, "returns weights with the shape of `scores`",
              f"scores of shape (3, 5) should give weights of shape (3, 5), got {_describe(raw)}")

    # nothing masked: the plain softmax, on two sizes (the second in float64)
    ok, hint = True, ""
    for scores in (torch.randn(3, 5, generator=g), torch.randn(4, 7, generator=g, dtype=torch.float64)):
        keep = torch.ones(scores.shape, dtype=torch.bool)
        got, want, raw, kept = _softmax_case(t, fn, scores, keep)
        if not close(got, want):
            ok = False
            if got is not None and got.shape == want.shape and close(got, _ref_masked_softmax(scores, keep, 0)):
                hint = "your weights sum to one down each column: with dim=-1 the softmax runs along the last dimension"
            elif got is not None and bool((got == 0).all()):
                hint = "every weight is 0 although the mask keeps every entry: is your mask inverted? True = keep"
            elif got is None or got.shape != want.shape:
                hint = f"scores of shape {tuple(scores.shape)} should give that shape, got {_describe(raw)}"
            else:
                hint = f"with every entry kept, scores of shape {tuple(scores.shape)} ({scores.dtype}) should give " \
                       f"the plain softmax; {where_differs(got, want)}"
            break
        if not kept:
            ok, hint = False, _MUTATED
            break
    t.expect(ok, 1, "with nothing masked, equals the softmax (two sizes, float32 and float64)", hint)

    # large and mixed-scale rows: naive exp overflows, a max over the whole tensor underflows the other rows
    ok, hint = True, ""
    for rows, n in ((3, 4), (6, 9)):
        scores = _mixed_scale_scores(g, rows, n)
        keep = torch.ones(rows, n, dtype=torch.bool)
        got, want, raw, kept = _softmax_case(t, fn, scores, keep)
        if not close(got, want, atol=1e-4):
            ok = False
            if got is not None and got.shape == want.shape and bool(torch.isnan(got).any()):
                idx = tuple(int(i) for i in torch.isnan(got).nonzero()[0])
                hint = f"rows of scores in the thousands (and rows of very different scales) gave nan at index {idx}: " \
                       "subtract each ROW's maximum (amax(dim, keepdim=True)), not one maximum for the whole tensor"
            else:
                hint = f"scores of shape {tuple(scores.shape)} whose rows range from about -40000 to 3000: " \
                       f"{where_differs(got, want, 1e-4) if got is not None and got.shape == want.shape else _describe(raw)}"
            break
        if not kept:
            ok, hint = False, _MUTATED
            break
    t.expect(ok, 1, "large and mixed-scale rows (thousands, very different scales): finite and correct", hint)

    # masking, two sizes
    ok, hint = True, ""
    cases = [(torch.tensor([[2.0, 1.0, 0.5, -1.0], [0.0, 3.0, 1.0, 1.0]]),
              torch.tensor([[True, True, False, False], [False, True, True, True]])),
             (torch.randn(5, 6, generator=g) * 10, torch.rand(5, 6, generator=g) > 0.4)]
    cases[1][1][:, 0] = True
    for scores, mask in cases:
        got, want, raw, kept = _softmax_case(t, fn, scores, mask)
        if not close(got, want):
            ok = False
            if got is not None and got.shape == want.shape and close(got, _ref_masked_softmax(scores, ~mask)):
                hint = "your mask is inverted: True means KEEP this entry, False means give it weight 0"
            elif got is not None and got.shape == want.shape and bool((got[~mask].abs() > 1e-7).any()):
                idx = tuple(int(i) for i in (~mask & (got.abs() > 1e-7)).nonzero()[0])
                hint = f"masked entries (mask False) must get weight exactly 0; at index {idx} the mask is False but " \
                       f"the weight is {float(got[idx]):.4g}. Fill their scores with -inf before exp"
            else:
                hint = "the kept entries should be renormalised to sum to one (a softmax over the kept entries " \
                       f"only); scores of shape {tuple(scores.shape)}: " + \
                       (where_differs(got, want) if got is not None and got.shape == want.shape else _describe(raw))
            break
        if not kept:
            ok, hint = False, _MUTATED
            break
    t.expect(ok, 1, "masked entries get 0, the kept ones sum to one (two sizes)", hint)

    # a masked entry with a huge score must not take part in the max
    scores, mask = torch.tensor([[1000.0, 0.0, 1.0], [2.0, -3000.0, 5000.0]]), \
        torch.tensor([[False, True, True], [True, True, False]])
    got, want, raw, kept = _softmax_case(t, fn, scores, mask)
    if got is not None and got.shape == want.shape and bool(torch.isnan(got).any()):
        hint = "a masked score of 1000 (or 5000) made a row nan: you subtracted the max over ALL entries, so the " \
               "kept ones underflowed to exp(-1000) = 0. Apply the mask first, then take the max of what is left"
    elif not kept:
        hint = _MUTATED
    else:
        hint = "scores [[1000, 0, 1], [2, -3000, 5000]] with the 1000 and the 5000 masked: " + \
               (where_differs(got, want) if got is not None and got.shape == want.shape else _describe(raw))
    t.expect(close(got, want) and kept, 1, "a huge masked score does not disturb the kept entries", hint)

    # a slice with nothing kept
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.1, 0.2], [4.0, 4.0, 4.0]])
    mask = torch.tensor([[False, False, False], [True, False, True], [False, False, False]])
    got, want, raw, kept = _softmax_case(t, fn, scores, mask)
    if got is not None and got.shape == want.shape and bool(torch.isnan(got[0]).any()):
        hint = "the all-masked row 0 came out nan (0/0); return zeros for a row where nothing is kept"
    elif got is not None and got.shape == want.shape and torch.allclose(got[0], torch.full((3,), 1 / 3,
                                                                                           dtype=got.dtype), atol=1e-4):
        hint = "the all-masked row came out uniform (1/3 each): a finite fill such as -1e9 spreads weight over " \
               "entries that should get none. It should be all zeros"
    elif not kept:
        hint = _MUTATED
    else:
        hint = "rows 0 and 2 have nothing kept and should be zeros: " + \
               (where_differs(got, want) if got is not None and got.shape == want.shape else _describe(raw))
    t.expect(close(got, want) and kept, 1, "a row with every entry masked gives zeros, not nan", hint)

    # dim=0, two sizes
    ok, hint = True, ""
    for rows, cols in ((4, 3), (6, 5)):
        scores = torch.randn(rows, cols, generator=g) * 5
        mask = torch.rand(rows, cols, generator=g) > 0.3
        mask[0] = True
        got, want, raw, kept = _softmax_case(t, fn, scores, mask, dim=0)
        if not (close(got, want) and kept):
            ok = False
            hint = _MUTATED if close(got, want) else \
                f"with dim=0 each COLUMN should sum to one (scores of shape {(rows, cols)}); use `dim` in every " \
                "max and sum, with keepdim=True so the shapes broadcast" + \
                (f"; {where_differs(got, want)}" if got is not None and got.shape == want.shape else f"; got {_describe(raw)}")
            break
    t.expect(ok, 1, "the `dim` argument picks the dimension that sums to one (two sizes)", hint)

    # a mask that broadcasts, two sizes
    ok, hint = True, ""
    for B, m, n in ((2, 3, 4), (3, 5, 6)):
        scores = torch.randn(B, m, n, generator=g) * 3
        mask = torch.rand(B, 1, n, generator=g) > 0.4
        mask[..., 0] = True
        got, want, raw, kept = _softmax_case(t, fn, scores, mask)
        if not (close(got, want) and kept):
            ok = False
            hint = _MUTATED if close(got, want) else \
                f"a ({B}, 1, {n}) mask should apply to every row of its batch element of scores ({B}, {m}, {n}); " + \
                (where_differs(got, want) if got is not None and got.shape == want.shape else
                 f"got {_describe(raw)}, expected shape {(B, m, n)}. Use operations that broadcast (masked_fill, torch.where)")
            break
    t.expect(ok, 1, "a mask that broadcasts ((batch, 1, n) against (batch, m, n)) works (two sizes)", hint)


# --------------------------------------------------------------------------- exercise 2


def _ref_additive(query, keys, W_q, W_k, v):
    query, keys, W_q, W_k, v = (x.to(torch.float64) for x in (query, keys, W_q, W_k, v))
    return torch.tanh((query @ W_q).unsqueeze(-2) + keys @ W_k) @ v


def _additive_case(g, B, n, d_q, d_k, h, dtype=torch.float32):
    return (torch.randn(B, d_q, generator=g, dtype=dtype), torch.randn(B, n, d_k, generator=g, dtype=dtype),
            torch.randn(d_q, h, generator=g, dtype=dtype), torch.randn(d_k, h, generator=g, dtype=dtype),
            torch.randn(h, generator=g, dtype=dtype))


@register("02.additive_score", title="the additive (Bahdanau) score", exercise_set=SET, points=4)
def check_additive_score(t, additive_score):
    with _switched_off():
        _check_additive_score(t, additive_score)


def _check_additive_score(t, additive_score):
    g = torch.Generator().manual_seed(3)
    args = _additive_case(g, 2, 5, 3, 4, 6)
    raw = t.call(additive_score, *_copies(*args))
    got = _as_tensor(raw)
    t.require(got is not None and tuple(got.shape) == (2, 5), 1, "returns scores of shape (batch, n_keys)",
              f"query (2, 3) and keys (2, 5, 4) should give (2, 5): one score per key; got {_describe(raw)}. "
              "The hidden dimension h must be summed away by the dot product with v")

    ok, hint = True, ""
    sizes = [((2, 5, 3, 4, 6), torch.float32), ((3, 7, 5, 2, 4), torch.float64)]   # every dimension at two sizes
    for (B, n, d_q, d_k, h), dtype in sizes:
        args = _additive_case(g, B, n, d_q, d_k, h, dtype)
        want = _ref_additive(*args)                       # the reference first, the learner gets copies
        copies = _copies(*args)
        raw = t.call(additive_score, *copies)
        got = _as_tensor(raw)
        if close(got, want):
            if not _unchanged(args, copies):
                ok, hint = False, _MUTATED
                break
            continue
        ok = False
        query, keys, W_q, W_k, v = (x.to(torch.float64) for x in args)
        shape = f"query {tuple(query.shape)}, keys {tuple(keys.shape)}, W_q {tuple(W_q.shape)}, W_k " \
                f"{tuple(W_k.shape)}, v {tuple(v.shape)}"
        if got is None or got.shape != want.shape:
            hint = f"{shape} should give scores of shape {(B, n)}, got {_describe(raw)}"
        elif close(got, ((query @ W_q).unsqueeze(-2) + keys @ W_k) @ v):
            hint = "you left out the tanh: score = v . tanh(q W_q + k W_k)"
        elif close(got, (torch.tanh(query @ W_q) @ v).unsqueeze(-1) + torch.tanh(keys @ W_k) @ v):
            hint = "you applied tanh to the query and key parts separately; add q W_q + k W_k first, then tanh"
        elif close(got, torch.tanh((query @ W_q).unsqueeze(-2) + keys @ W_k).sum(-1)):
            hint = "you summed over the hidden units instead of taking the dot product with v"
        else:
            hint = f"expected score[b, i] = v . tanh(query[b] @ W_q + keys[b, i] @ W_k) (rows: query @ W_q, " \
                   f"W_q of shape (d_q, h)); with {shape}: {where_differs(got, want)}"
        break
    t.expect(ok, 2, "the values v . tanh(q W_q + k_i W_k), every dimension at two sizes, float32 and float64", hint)

    params = [p.clone().requires_grad_(True) for p in args[2:]]
    raw = t.call(additive_score, args[0].clone(), args[1].clone(), *params)
    ok = isinstance(raw, torch.Tensor) and raw.requires_grad
    if ok:
        raw.sum().backward()
        ok = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) and p.grad.abs().sum() > 0 for p in params)
    t.expect(ok, 1, "gradients reach W_q, W_k and v (the score can be trained)",
             "build the score from torch operations on the parameters (no numpy, .detach(), .item() or "
             "torch.tensor(...) rewrapping), so backpropagation reaches W_q, W_k and v")


# --------------------------------------------------------------------------- exercise 3


def _ref_sdpa(q, k, v, mask=None):
    q, k, v = (x.to(torch.float64) for x in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    return w @ v, w


def _pair(raw):
    """(output, weights) as float64 tensors, or (None, None) if the answer is not a pair."""
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        return _as_tensor(raw[0]), _as_tensor(raw[1])
    return None, None


@register("02.scaled_dot_product_attention", title="batched scaled dot-product attention",
          exercise_set=SET, points=7)
def check_sdpa(t, scaled_dot_product_attention):
    with _switched_off(no_torch_sdpa=True):
        _check_sdpa(t, scaled_dot_product_attention)


def _sdpa_call(t, fn, q, k, v, mask=None):
    """Call with copies (the reference is computed first); return (out, w, want_out, want_w, raw, inputs kept)."""
    want_out, want_w = _ref_sdpa(q, k, v, mask)
    args = (q, k, v) if mask is None else (q, k, v, mask)
    copies = _copies(*args)
    raw = t.call(fn, *copies)
    out, w = _pair(raw)
    return out, w, want_out, want_w, raw, _unchanged(args, copies)


def _check_sdpa(t, scaled_dot_product_attention):
    fn = scaled_dot_product_attention
    g = torch.Generator().manual_seed(4)
    q, k, v = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 6, generator=g)
    out, w, want_out, want_w, raw, kept = _sdpa_call(t, fn, q, k, v)
    ok = out is not None and tuple(out.shape) == (2, 3, 6) and w is not None and tuple(w.shape) == (2, 3, 5)
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        hint = f"q (2, 3, 4), k (2, 5, 4), v (2, 5, 6) should give output (2, 3, 6) and weights (2, 3, 5); " \
               f"got {_describe(raw[0])} and {_describe(raw[1])}"
    else:
        hint = f"return a tuple (output, weights); got {type(raw).__name__}"
    t.require(ok, 1, "returns (output, weights) with shapes (..., m, d_v) and (..., m, n)", hint)

    # two sizes in every dimension (B, m, n, d, d_v), the second in float64
    cases = [(torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 6, generator=g)),
             tuple(torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 6, 7), (3, 2, 7), (3, 2, 3)))]
    results = [_sdpa_call(t, fn, *c) for c in cases]

    ok, hint = True, ""
    for (q, k, v), (out, w, want_out, want_w, raw, kept) in zip(cases, results):
        if w is None or w.shape != want_w.shape:
            ok, hint = False, f"q {tuple(q.shape)}, k {tuple(k.shape)}: weights should have shape " \
                              f"{tuple(want_w.shape)}, got {_describe(raw[1] if isinstance(raw, (tuple, list)) else raw)}"
            break
        sums = w.sum(-1)
        if not (bool((w >= 0).all()) and torch.allclose(sums, torch.ones_like(sums), atol=1e-5)):
            idx = tuple(int(i) for i in (~torch.isclose(sums, torch.ones_like(sums), atol=1e-5)).nonzero()[0]) \
                if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5) else None
            ok, hint = False, "the softmax must run over the keys, dim=-1 (the last dimension of q @ k^T)" + \
                (f"; the weights at {idx} sum to {float(sums[idx]):.4g}" if idx is not None else "; a weight is negative")
            break
    t.expect(ok, 1, "each query's weights are non-negative and sum to one (two sizes)", hint)

    ok, hint = True, ""
    for (q, k, v), (out, w, want_out, want_w, raw, kept) in zip(cases, results):
        if close(w, want_w):
            if not kept:
                ok, hint = False, _MUTATED
                break
            continue
        ok = False
        scores = (q @ k.transpose(-2, -1)).to(torch.float64)
        d = q.shape[-1]
        if w is None or w.shape != want_w.shape:
            hint = f"weights should have shape {tuple(want_w.shape)}, got {_describe(raw)}"
        elif close(w, torch.softmax(scores, -1)):
            hint = "you forgot the scale: divide q @ k^T by sqrt(d_k) before the softmax"
        elif close(w, torch.softmax(scores / d, -1)):
            hint = "you divided by d_k; divide by its square root, sqrt(d_k)"
        elif close(w, torch.softmax(scores * math.sqrt(d), -1)):
            hint = "you multiplied by sqrt(d_k); divide by it"
        else:
            hint = f"weights should be softmax(q @ k^T / sqrt(d_k)) over the last dimension; q {tuple(q.shape)}, " \
                   f"k {tuple(k.shape)} ({q.dtype}): {where_differs(w, want_w)}"
        break
    t.expect(ok, 1, "weights = softmax(q k^T / sqrt(d_k)) (two sizes, float32 and float64)", hint)

    ok, hint = True, ""
    for (q, k, v), (out, w, want_out, want_w, raw, kept) in zip(cases, results):
        if close(out, want_out):
            continue
        ok = False
        if out is not None and w is not None and out.shape == want_out.shape and w.shape == want_w.shape and \
                close(out, w @ v.to(torch.float64)):
            hint = "your output is your weights @ v, which is right; the weights are off: fix the failure above"
        elif out is None or out.shape != want_out.shape:
            hint = f"the output should have shape {tuple(want_out.shape)}, got " \
                   f"{_describe(raw[0] if isinstance(raw, (tuple, list)) else raw)}"
        else:
            hint = f"the output is the weighted sum of the VALUES, weights @ v; {where_differs(out, want_out)}"
        break
    t.expect(ok, 1, "output = weights @ v, equal to torch's scaled_dot_product_attention (two sizes)", hint)

    # a boolean mask, two sizes
    ok, hint = True, ""
    g2 = torch.Generator().manual_seed(5)
    for B, m, n, d in ((2, 3, 5, 4), (3, 4, 7, 6)):
        q, k, v = torch.randn(B, m, d, generator=g2), torch.randn(B, n, d, generator=g2), torch.randn(B, n, 2, generator=g2)
        mask = torch.rand(B, m, n, generator=g2) > 0.4
        mask[..., 1] = True
        mask[0, 1] = torch.arange(n) == 0          # a query that may attend to one key only
        out, w, want_out, want_w, raw, kept = _sdpa_call(t, fn, q, k, v, mask)
        if close(w, want_w) and close(out, want_out) and kept:
            continue
        ok = False
        if w is not None and w.shape == want_w.shape and bool((w[~mask].abs() > 1e-7).any()):
            idx = tuple(int(i) for i in (~mask & (w.abs() > 1e-7)).nonzero()[0])
            hint = f"keys whose mask is False must get weight exactly 0 (True = may attend, as in torch's attn_mask); " \
                   f"at index {idx} the mask is False but the weight is {float(w[idx]):.4g}"
        elif not kept and close(w, want_w):
            hint = _MUTATED
        else:
            hint = f"with a boolean mask (True = keep), q {tuple(q.shape)}, k {tuple(k.shape)}: " + \
                   (where_differs(w, want_w) if w is not None and w.shape == want_w.shape else f"got {_describe(raw)}") + \
                   " (if an earlier part failed, fix it first)"
        break
    t.expect(ok, 1, "a boolean mask (True = keep) removes keys, as torch's attn_mask does (two sizes)", hint)

    # extra leading dimensions and a broadcast mask
    q4, k4, v4 = torch.randn(2, 3, 4, 8, generator=g2), torch.randn(2, 3, 7, 8, generator=g2), \
        torch.randn(2, 3, 7, 5, generator=g2)
    mask4 = torch.tensor([True] * 5 + [False] * 2).view(1, 1, 1, 7)
    try:
        out, w, want_out, want_w, raw, kept = _sdpa_call(t, fn, q4, k4, v4, mask4)
        crash = ""
    except NotImplementedError:
        raise
    except Exception as err:  # a crash here should not cost the parts already earned
        out, w, raw, kept, crash = None, None, None, True, getattr(err, "message", str(err))
        want_out, want_w = _ref_sdpa(q4, k4, v4, mask4)
    if crash or out is None or out.shape != want_out.shape:
        hint = "use k.transpose(-2, -1) and @ (torch.matmul), which work for any number of leading dimensions; " \
               "torch.bmm and transpose(1, 2) only work for 3-D tensors; " + \
               (f"your code raised {crash}" if crash else f"expected output shape (2, 3, 4, 5), got {_describe(raw)}")
    elif not kept:
        hint = _MUTATED
    else:
        hint = f"q (2, 3, 4, 8) with a (1, 1, 1, 7) mask: the shape is right but {where_differs(out, want_out)}"
    t.expect(close(out, want_out) and kept, 1, "extra leading dimensions (batch, heads, m, d) and a broadcast mask",
             hint)

    # large and mixed-scale rows: queries scaled so that rows of scores range from ~1 to the thousands
    ok, hint = True, ""
    for B, m, n in ((2, 3, 5), (3, 6, 4)):
        q = torch.randn(B, m, 4, generator=g2) * torch.tensor([1.0, 1000.0, 0.01, 300.0, 5.0, 3000.0][:m]).view(1, m, 1)
        k, v = torch.randn(B, n, 4, generator=g2), torch.randn(B, n, 3, generator=g2)
        out, w, want_out, want_w, raw, kept = _sdpa_call(t, fn, q, k, v)
        if close(out, want_out, atol=1e-4) and kept:
            continue
        ok = False
        if out is not None and out.shape == want_out.shape and bool(torch.isnan(out).any()):
            hint = "scores in the thousands gave nan: exp() overflowed. Subtract each row's maximum before exp " \
                   "(torch.softmax or your stable_masked_softmax do)"
        elif not kept:
            hint = _MUTATED
        else:
            hint = f"queries scaled by up to 3000 (rows of very different scales), q {tuple(q.shape)}: " + \
                   (where_differs(out, want_out, 1e-4) if out is not None and out.shape == want_out.shape else _describe(raw))
        break
    t.expect(ok, 1, "large and mixed-scale scores (rows in the thousands beside rows near 0) stay finite and correct",
             hint)


# --------------------------------------------------------------------------- exercise 4


LETTERS = "abcde"


def _letters(x):
    """A set of letters from a set, list, tuple or string such as 'ac'; None if that is impossible."""
    if isinstance(x, str):
        x = [c for c in x if c.strip() and c not in ",;"]
    try:
        return {str(c).strip().lower() for c in x}
    except TypeError:
        return None


@register("02.predict", title="predict before you measure: score sizes and what leaves the weights unchanged",
          exercise_set=SET, points=4)
def check_predict(t, predicted_std, unchanged_by):
    with _switched_off():
        ok_un, ok_sc, got_pairs = True, True, []
        for d in (16, 400):
            raw = t.call(predicted_std, d)
            try:
                un, sc = (float(x) for x in raw)
            except (TypeError, ValueError):
                t.require(False, 1, "predicted_std(d) returns a pair (unscaled, scaled)",
                          f"predicted_std({d}) should return two numbers, got {type(raw).__name__}")
            got_pairs.append((d, un, sc))
            ok_un &= math.isclose(un, math.sqrt(d), rel_tol=0.05)
            ok_sc &= math.isclose(sc, 1.0, rel_tol=0.05)
        quoted = "; ".join(f"predicted_std({d}) = ({un:.3g}, {sc:.3g})" for d, un, sc in got_pairs)
        t.expect(ok_un, 1, "the unscaled dot product's standard deviation, for d = 16 and d = 400",
                 f"{quoted}. The variance of q.k is a sum of d terms of variance 1 each; the standard deviation is "
                 "the square root of the variance")
        t.expect(ok_sc, 1, "the scaled dot product's standard deviation, for d = 16 and d = 400",
                 f"{quoted}. Dividing by sqrt(d) divides the standard deviation by sqrt(d)")

        raw = t.call(unchanged_by)
        ok = isinstance(raw, (tuple, list)) and len(raw) == 2
        soft, share = (_letters(raw[0]), _letters(raw[1])) if ok else (None, None)
        if not (soft is not None and share is not None and soft <= set(LETTERS) and share <= set(LETTERS)):
            t.require(False, 2, "unchanged_by() returns two sets of letters from 'abcde'",
                      f"return a pair (letters for the softmax, letters for the share), e.g. ({{'a'}}, {{'b'}}); got {raw!r:.80}")
        t.expect(soft == {"a", "c"}, 1, "transformations that leave the softmax unchanged",
                 f"you chose {sorted(soft)}. The softmax depends only on the differences between scores: which "
                 "transformations keep every difference s_i - s_j?")
        t.expect(share == {"b", "e"}, 1, "transformations that leave the share of the total unchanged",
                 f"you chose {sorted(share)}. The share depends only on the ratios between scores: which "
                 "transformations keep every ratio s_i / s_j?")
