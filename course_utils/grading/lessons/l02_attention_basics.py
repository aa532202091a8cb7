"""Checks for exercises/02_attention_basics.ipynb: a stable masked softmax written without torch's softmax,
the additive (Bahdanau) score, batched scaled dot-product attention, and predictions made before measuring.

Every check calls the learner's code on at least two sizes in every free dimension, on copies of its inputs
(the references are computed first, and the originals are compared afterwards: a changed input is its own
failed part), on large and mixed-scale scores where a softmax is involved (rows in the thousands, rows of
very different scales in one tensor, so a naive or a globally shifted softmax fails), accepts answers as
tensors of any floating dtype, NumPy arrays or lists, and says where a wrong answer first differs. A crash
on one input costs only the part that input tests, and where one part builds on another (the mask, the
leading dimensions) it is judged against the learner's own unmasked or 3-D answer, so one mistake costs
one part. While a check runs, the course's finished versions (``course_utils.models.attention``) are
switched off, and for exercise 1 so are torch's softmax functions.
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


_MUTATED = "your function changed one of its input tensors in place (for example with masked_fill_, " \
           "unsqueeze_, `/=` or an assignment into it); work on a copy or use out-of-place operations"


class _Inputs:
    """Hands copies of each input to the learner's code and remembers whether every original survived."""

    def __init__(self):
        self.kept = True

    def call(self, t, fn, *args, **kwargs):
        """(raw result, crash message) of fn on copies of args and kwargs."""
        copies, kw_copies = _copies(*args), dict(zip(kwargs, _copies(*kwargs.values())))
        raw, crash = t.attempt(fn, *copies, **kw_copies)
        self.kept &= _unchanged(args, copies) and _unchanged(tuple(kwargs.values()), tuple(kw_copies.values()))
        return raw, crash


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


def _first_index(bad: torch.Tensor):
    """The first index (a tuple) where a boolean tensor is True."""
    return tuple(int(i) for i in bad.nonzero()[0])


# --------------------------------------------------------------------------- exercise 1


@register("02.stable_masked_softmax", title="softmax that is stable, masked, and safe on empty rows",
          exercise_set=SET, points=8)
def check_stable_masked_softmax(t, stable_masked_softmax):
    with _switched_off(no_softmax=True):
        _check_stable_masked_softmax(t, stable_masked_softmax)


def _softmax_case(t, inputs, fn, scores, mask, dim=-1):
    """(got as float64 or None, want, raw answer, crash); want is computed before the call."""
    want = _ref_masked_softmax(scores, mask, dim)
    raw, crash = inputs.call(t, fn, scores, mask, **({} if dim == -1 else {"dim": dim}))
    return _as_tensor(raw), want, raw, crash


def _shown(got, want, raw) -> str:
    return where_differs(got, want) if got is not None and got.shape == want.shape else \
        f"expected shape {tuple(want.shape)}, got {_describe(raw)}"


def _check_stable_masked_softmax(t, stable_masked_softmax):
    g = torch.Generator().manual_seed(2)
    fn, inputs = stable_masked_softmax, _Inputs()

    # nothing masked: the plain softmax, on two sizes (the second in float64)
    what = "with nothing masked, equals the softmax (two sizes, float32 and float64)"
    hint = ""
    for i, scores in enumerate((torch.randn(3, 5, generator=g), torch.randn(4, 7, generator=g, dtype=torch.float64))):
        keep = torch.ones(scores.shape, dtype=torch.bool)
        got, want, raw, crash = _softmax_case(t, inputs, fn, scores, keep)
        if i == 0 and (got is None or got.shape != want.shape):
            t.require(False, 1, what, f"scores of shape (3, 5) with every entry kept: your code raised {crash}" if crash
                      else f"scores of shape (3, 5) should give weights of shape (3, 5), got {_describe(raw)}")
        if hint or close(got, want):
            continue
        if crash:
            hint = f"scores of shape {tuple(scores.shape)} ({scores.dtype}): your code raised {crash}"
        elif got is not None and got.shape == want.shape and close(got, _ref_masked_softmax(scores, keep, 0)):
            hint = "your weights sum to one down each column: with dim=-1 the softmax runs along the last dimension"
        elif got is not None and bool((got == 0).all()):
            hint = "every weight is 0 although the mask keeps every entry: is your mask inverted? True = keep"
        else:
            hint = f"with every entry kept, scores of shape {tuple(scores.shape)} ({scores.dtype}) should give the " \
                   f"plain softmax; {_shown(got, want, raw)}"
    t.expect(not hint, 1, what, hint)

    # large and mixed-scale rows: naive exp overflows, a max over the whole tensor underflows the other rows
    hint = ""
    for rows, n in ((3, 4), (6, 9)):
        scores = _mixed_scale_scores(g, rows, n)
        got, want, raw, crash = _softmax_case(t, inputs, fn, scores, torch.ones(rows, n, dtype=torch.bool))
        if hint or close(got, want, atol=1e-4):
            continue
        if crash:
            hint = f"scores of shape {(rows, n)} in the thousands: your code raised {crash}"
        elif got is not None and got.shape == want.shape and bool(torch.isfinite(got).all()) and \
                bool((got.sum(-1) < 0.5).any()) and not bool((got.sum(-1) < 0.5).all()):
            row = int((got.sum(-1) < 0.5).nonzero()[0])
            hint = f"scores of shape {(rows, n)}: row {row} (scores around {float(scores[row].mean()):.4g}) came out " \
                   "all zeros: it underflowed because you subtracted one maximum for the whole tensor; subtract " \
                   "each ROW's maximum (amax(dim, keepdim=True))"
        elif got is not None and got.shape == want.shape and not bool(torch.isfinite(got).all()):
            hint = f"rows of scores in the thousands (and rows of very different scales) gave " \
                   f"{float(got[_first_index(~torch.isfinite(got))])} at index {_first_index(~torch.isfinite(got))}: " \
                   "subtract each ROW's maximum (amax(dim, keepdim=True)), not one maximum for the whole tensor"
        else:
            shown = where_differs(got, want, 1e-4) if got is not None and got.shape == want.shape else _describe(raw)
            hint = f"scores of shape {(rows, n)} whose rows range from about -40000 to 3000 (subtract each row's own " \
                   f"maximum): {shown}"
    t.expect(not hint, 1, "large and mixed-scale rows (thousands, very different scales): finite and correct", hint)

    # masking, two sizes
    hint = ""
    cases = [(torch.tensor([[2.0, 1.0, 0.5, -1.0], [0.0, 3.0, 1.0, 1.0]]),
              torch.tensor([[True, True, False, False], [False, True, True, True]])),
             (torch.randn(5, 6, generator=g) * 10, torch.rand(5, 6, generator=g) > 0.4)]
    cases[1][1][:, 0] = True
    for scores, mask in cases:
        got, want, raw, crash = _softmax_case(t, inputs, fn, scores, mask)
        if hint or close(got, want):
            continue
        same_shape = got is not None and got.shape == want.shape
        if crash:
            hint = f"scores of shape {tuple(scores.shape)} with a mask: your code raised {crash}"
        elif same_shape and close(got, _ref_masked_softmax(scores, ~mask)):
            hint = "your mask is inverted: True means KEEP this entry, False means give it weight 0"
        elif same_shape and bool((got[~mask].abs() > 1e-7).any()):
            idx = _first_index(~mask & (got.abs() > 1e-7))
            hint = f"masked entries (mask False) must get weight exactly 0; at index {idx} the mask is False but " \
                   f"the weight is {float(got[idx]):.4g}. Fill their scores with -inf before exp"
        else:
            hint = "the kept entries should be renormalised to sum to one (a softmax over the kept entries " \
                   f"only); scores of shape {tuple(scores.shape)}: {_shown(got, want, raw)}"
    t.expect(not hint, 1, "masked entries get 0, the kept ones sum to one (two sizes)", hint)

    # a masked entry with a huge score must not take part in the max
    scores = torch.tensor([[1000.0, 0.0, 1.0], [2.0, -3000.0, 5000.0], [0.5, 1.5, 2000.0]])
    mask = torch.tensor([[False, True, True], [True, True, False], [True, True, False]])
    got, want, raw, crash = _softmax_case(t, inputs, fn, scores, mask)
    if crash:
        hint = f"scores [[1000, 0, 1], [2, -3000, 5000], ...] with the huge ones masked: your code raised {crash}"
    elif got is not None and got.shape == want.shape and not bool(torch.isfinite(got).all()):
        hint = "a masked score of 1000 (or 5000) made a row nan: you subtracted the max over ALL entries, so the " \
               "kept ones underflowed to exp(-1000) = 0. Apply the mask first, then take the max of what is left"
    else:
        hint = "scores [[1000, 0, 1], [2, -3000, 5000], [0.5, 1.5, 2000]] with 1000, 5000 and 2000 masked: the kept " \
               f"entries should be a softmax of the kept scores; {_shown(got, want, raw)}"
    t.expect(close(got, want), 1, "a huge masked score does not disturb the kept entries", hint)

    # slices with nothing kept
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.1, 0.2], [4.0, 4.0, 4.0], [-1.0, 0.0, 2.5]])
    mask = torch.tensor([[False, False, False], [True, False, True], [False, False, False], [False, True, False]])
    got, want, raw, crash = _softmax_case(t, inputs, fn, scores, mask)
    if crash:
        hint = f"a row with every entry masked: your code raised {crash}"
    elif got is not None and got.shape == want.shape and bool(torch.isnan(got[0]).any()):
        hint = "the all-masked row 0 came out nan (0/0); return zeros for a row where nothing is kept"
    elif got is not None and got.shape == want.shape and close(got[0], torch.full((3,), 1 / 3), atol=1e-4):
        hint = "the all-masked row came out uniform (1/3 each): a finite fill such as -1e9 spreads weight over " \
               "entries that should get none. It should be all zeros"
    else:
        hint = f"rows 0 and 2 have nothing kept and should be zeros: {_shown(got, want, raw)}"
    t.expect(close(got, want), 1, "a row with every entry masked gives zeros, not nan", hint)

    # dim: dim=0 of a matrix and dim=1 of a 3-D tensor
    hint = ""
    for shape, dim in (((4, 3), 0), ((3, 5, 4), 1)):
        scores = torch.randn(*shape, generator=g) * 5
        mask = torch.rand(*shape, generator=g) > 0.3
        mask.select(dim, 0).fill_(True)
        got, want, raw, crash = _softmax_case(t, inputs, fn, scores, mask, dim=dim)
        if hint or close(got, want):
            continue
        hint = f"scores of shape {shape} with dim={dim}: " + (
            f"your code raised {crash}" if crash else
            f"each slice along dimension {dim} should sum to one; use `dim` in every max and sum, with keepdim=True "
            f"so the shapes broadcast; {_shown(got, want, raw)}")
    t.expect(not hint, 1, "the `dim` argument picks the dimension that sums to one (dim=0 of a matrix, dim=1 of a 3-D "
                          "tensor)", hint)

    # a mask that broadcasts, two sizes
    hint = ""
    for B, m, n in ((2, 3, 4), (3, 5, 6)):
        scores = torch.randn(B, m, n, generator=g) * 3
        mask = torch.rand(B, 1, n, generator=g) > 0.4
        mask[..., 0] = True
        got, want, raw, crash = _softmax_case(t, inputs, fn, scores, mask)
        if hint or close(got, want):
            continue
        hint = f"a ({B}, 1, {n}) mask should apply to every row of its batch element of scores ({B}, {m}, {n}); " + (
            f"your code raised {crash}. Use operations that broadcast (masked_fill, torch.where)" if crash else
            _shown(got, want, raw))
    t.expect(not hint, 1, "a mask that broadcasts ((batch, 1, n) against (batch, m, n)) works (two sizes)", hint)
    t.expect(inputs.kept, 1, "leaves scores and mask unchanged", _MUTATED)


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


def _additive_hint(got, raw, crash, args, want) -> str:
    query, keys, W_q, W_k, v = (x.to(torch.float64) for x in args)
    shape = f"query {tuple(query.shape)}, keys {tuple(keys.shape)}, W_q {tuple(W_q.shape)}, W_k " \
            f"{tuple(W_k.shape)}, v {tuple(v.shape)}"
    if crash:
        return f"with {shape} your code raised {crash}"
    if got is None or got.shape != want.shape:
        return f"{shape} should give scores of shape {tuple(want.shape)}, one per key (the hidden dimension h is " \
               f"summed away by the dot product with v); got {_describe(raw)}"
    if close(got, ((query @ W_q).unsqueeze(-2) + keys @ W_k) @ v):
        return "you left out the tanh: score = v . tanh(q W_q + k W_k)"
    if close(got, (torch.tanh(query @ W_q) @ v).unsqueeze(-1) + torch.tanh(keys @ W_k) @ v):
        return "you applied tanh to the query and key parts separately; add q W_q + k W_k first, then tanh"
    if close(got, torch.tanh((query @ W_q).unsqueeze(-2) + keys @ W_k).sum(-1)):
        return "you summed over the hidden units instead of taking the dot product with v"
    return f"expected score[b, i] = v . tanh(query[b] @ W_q + keys[b, i] @ W_k) (rows: query @ W_q, W_q of shape " \
           f"(d_q, h)); with {shape}: {where_differs(got, want)}"


def _check_additive_score(t, additive_score):
    g = torch.Generator().manual_seed(3)
    inputs = _Inputs()
    what = "the values v . tanh(q W_q + k_i W_k), shape (batch, n_keys), every dimension at two sizes, float32 and " \
           "float64"
    hint = ""
    sizes = [((2, 5, 3, 4, 6), torch.float32), ((3, 7, 5, 2, 4), torch.float64)]   # every dimension at two sizes
    for i, ((B, n, d_q, d_k, h), dtype) in enumerate(sizes):
        args = _additive_case(g, B, n, d_q, d_k, h, dtype)
        want = _ref_additive(*args)                       # the reference first, the learner gets copies
        raw, crash = inputs.call(t, additive_score, *args)
        got = _as_tensor(raw)
        if i == 0 and (crash or got is None or got.shape != want.shape):
            t.require(False, 2, what, _additive_hint(got, raw, crash, args, want))
        hint = hint or ("" if close(got, want) else _additive_hint(got, raw, crash, args, want))
    t.expect(not hint, 2, what, hint)
    t.expect(inputs.kept, 1, "leaves its inputs unchanged", _MUTATED)

    def gradients(query, keys, W_q, W_k, v):
        """The gradients of the summed scores with respect to W_q, W_k and v (None where none arrives)."""
        scores = additive_score(query, keys, W_q, W_k, v)
        if not isinstance(scores, torch.Tensor) or not scores.requires_grad:
            return None
        scores.sum().backward()
        return [W_q.grad, W_k.grad, v.grad]

    args = _additive_case(g, 2, 5, 3, 4, 6)               # the example's sizes: a size mistake costs the values part
    params = [p.clone().requires_grad_(True) for p in args[2:]]
    grads, crash = t.attempt(gradients, args[0].clone(), args[1].clone(), *params)
    missing = [name for name, grad in zip(("W_q", "W_k", "v"), grads or [None] * 3)
               if grad is None or not bool(torch.isfinite(grad).all()) or not bool(grad.abs().sum() > 0)]
    t.expect(not missing and not crash, 1, "gradients reach W_q, W_k and v (the score can be trained)",
             f"backpropagating through your score raised {crash}" if crash else
             f"no gradient reaches {', '.join(missing)}: build the score from torch operations on the parameters (no "
             "numpy, .detach(), .item() or torch.tensor(...) rewrapping), so backpropagation reaches W_q, W_k and v")


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


def _part(raw, i):
    return raw[i] if isinstance(raw, (tuple, list)) and len(raw) == 2 else raw


@register("02.scaled_dot_product_attention", title="batched scaled dot-product attention",
          exercise_set=SET, points=7)
def check_sdpa(t, scaled_dot_product_attention):
    with _switched_off(no_torch_sdpa=True):
        _check_sdpa(t, scaled_dot_product_attention)


def _sdpa_call(t, inputs, fn, q, k, v, mask=None):
    """(out, w, want_out, want_w, raw, crash): the reference is computed first, the learner gets copies."""
    want_out, want_w = _ref_sdpa(q, k, v, mask)
    raw, crash = inputs.call(t, fn, *((q, k, v) if mask is None else (q, k, v, mask)))
    out, w = _pair(raw)
    return out, w, want_out, want_w, raw, crash


def _shape_ok(x, want) -> bool:
    return x is not None and x.shape == want.shape


def _weights_hint(q, k, w, want_w, raw, crash) -> str:
    """What is wrong with the weights for q, k (float64 references), or ''."""
    if close(w, want_w):
        return ""
    shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)} ({q.dtype})"
    if crash:
        return f"{shapes}: your code raised {crash}"
    if not _shape_ok(w, want_w):
        return f"{shapes}: the weights should have shape {tuple(want_w.shape)}, got {_describe(_part(raw, 1))}"
    sums = w.sum(-1)
    if not close(sums, torch.ones_like(sums)) or bool((w < 0).any()):
        bad = ~torch.isclose(sums, torch.ones_like(sums), atol=1e-5)
        where = f"; the weights at {_first_index(bad)} sum to {float(sums[_first_index(bad)]):.4g}" if bool(bad.any()) \
            else "; a weight is negative"
        return "each query's weights must be non-negative and sum to one: the softmax runs over the keys, dim=-1 " \
               "(the last dimension of q @ k^T)" + where
    scores = q.to(torch.float64) @ k.to(torch.float64).transpose(-2, -1)
    d = q.shape[-1]
    if close(w, torch.softmax(scores, -1)):
        return "you forgot the scale: divide q @ k^T by sqrt(d_k) before the softmax"
    if close(w, torch.softmax(scores / d, -1)):
        return "you divided by d_k; divide by its square root, sqrt(d_k)"
    if close(w, torch.softmax(scores * math.sqrt(d), -1)):
        return "you multiplied by sqrt(d_k); divide by it"
    return f"weights should be softmax(q @ k^T / sqrt(d_k)) over the last dimension, d_k = {d} here; {shapes}: " \
           f"{where_differs(w, want_w)}"


def _check_sdpa(t, scaled_dot_product_attention):
    fn, inputs = scaled_dot_product_attention, _Inputs()
    g = torch.Generator().manual_seed(4)
    # two sizes in every dimension (B, m, n, d, d_v), the second in float64
    cases = [(torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 6, generator=g)),
             tuple(torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 6, 7), (3, 2, 7), (3, 2, 3)))]
    results = [_sdpa_call(t, inputs, fn, *c) for c in cases]

    out, w, want_out, want_w, raw, crash = results[0]
    t.require(_shape_ok(out, want_out) and _shape_ok(w, want_w), 1,
              "returns (output, weights) with shapes (..., m, d_v) and (..., m, n)",
              f"q (2, 3, 4), k (2, 5, 4), v (2, 5, 6): your code raised {crash}" if crash else
              "q (2, 3, 4), k (2, 5, 4), v (2, 5, 6) should give output (2, 3, 6) and weights (2, 3, 5); got "
              f"{_describe(raw[0])} and {_describe(raw[1])}" if isinstance(raw, (tuple, list)) and len(raw) == 2
              else f"return a tuple (output, weights); got {_describe(raw)}")

    hint = next((h for h in (_weights_hint(q, k, w, want_w, raw, crash)
                             for (q, k, v), (out, w, want_out, want_w, raw, crash) in zip(cases, results)) if h), "")
    weights_ok = not hint
    t.expect(weights_ok, 1, "weights = softmax(q k^T / sqrt(d_k)) over the keys (two sizes, float32 and float64)", hint)

    masked = _sdpa_masked_calls(t, inputs, fn, torch.Generator().manual_seed(5))
    hint = ""
    for (q, k, v, *_), (out, w, want_out, want_w, raw, crash) in \
            list(zip(cases, results)) + [(m[:4], m[5]) for m in masked]:
        if hint or crash or close(out, want_out) or (_shape_ok(w, want_w) and close(out, w @ v.to(torch.float64))):
            continue                                          # a crash is reported where the weights are
        aggregated = w @ v.to(torch.float64) if _shape_ok(w, want_w) else want_out
        hint = f"the output should have shape {tuple(want_out.shape)}, got {_describe(_part(raw, 0))}" \
            if not _shape_ok(out, want_out) else \
            f"the output is the weighted sum of the VALUES, your weights @ v (q {tuple(q.shape)}); " \
            f"{where_differs(out, aggregated)}"
    t.expect(not hint, 1, "output = weights @ v (two sizes, with and without a mask)", hint)

    g = torch.Generator().manual_seed(6)
    _score_sdpa_mask(t, masked)
    _check_sdpa_leading_dims(t, inputs, fn, g)
    _check_sdpa_large(t, inputs, fn, g, weights_ok)
    t.expect(inputs.kept, 1, "leaves q, k, v and mask unchanged", _MUTATED)


def _sdpa_masked_calls(t, inputs, fn, g):
    """Two sizes, each called without and with a boolean mask: [(q, k, v, mask, unmasked result, masked result)]."""
    calls = []
    for B, m, n, d, d_v in ((2, 3, 5, 4, 2), (3, 4, 7, 6, 3)):
        q, k = torch.randn(B, m, d, generator=g), torch.randn(B, n, d, generator=g)
        v = torch.randn(B, n, d_v, generator=g)
        mask = torch.rand(B, m, n, generator=g) > 0.4
        mask[..., 1] = True
        mask[0, 1] = torch.arange(n) == 0          # a query that may attend to one key only
        calls.append((q, k, v, mask, _sdpa_call(t, inputs, fn, q, k, v), _sdpa_call(t, inputs, fn, q, k, v, mask)))
    return calls


def _score_sdpa_mask(t, masked):
    """The masked weights against the learner's own unmasked weights renormalised over the kept keys (so a wrong
    scale costs the weights part only, and wrong outputs the output part)."""
    hint = ""
    for q, k, v, mask, (_, w0, _, _, _, crash0), (out, w, want_out, want_w, raw, crash) in masked:
        shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)} with a boolean mask (True = keep)"
        if hint or crash0:
            continue                               # an unmasked crash is reported where the weights are
        if crash:
            hint = f"{shapes}: your code raised {crash}"
        elif not (_shape_ok(w, want_w) and _shape_ok(w0, want_w)):
            hint = f"{shapes}: expected weights of shape {tuple(want_w.shape)}, got {_describe(_part(raw, 1))}"
        elif bool((w[~mask].abs() > 1e-7).any()):
            idx = _first_index(~mask & (w.abs() > 1e-7))
            hint = "keys whose mask is False must get weight exactly 0 (True = may attend, as in torch's " \
                   f"attn_mask); at index {idx} the mask is False but the weight is {float(w[idx]):.4g}"
        else:
            kept = w0 * mask
            expected = kept / kept.sum(-1, keepdim=True)
            if not close(w, expected):
                hint = f"{shapes}: the kept keys' weights should be your unmasked weights renormalised over the kept " \
                       f"keys (fill masked scores with -inf before the softmax); {where_differs(w, expected)}"
    t.expect(not hint, 1, "a boolean mask (True = keep) removes keys, as torch's attn_mask does (two sizes)", hint)


def _check_sdpa_leading_dims(t, inputs, fn, g):
    """(batch, heads, m, d) with a broadcast mask, judged against the learner's own answer on the 3-D batch."""
    q4, k4, v4 = torch.randn(2, 3, 4, 8, generator=g), torch.randn(2, 3, 7, 8, generator=g), \
        torch.randn(2, 3, 7, 5, generator=g)
    mask4 = torch.tensor([True] * 5 + [False] * 2).view(1, 1, 1, 7)
    out3, w3, _, _, _, crash3 = _sdpa_call(t, inputs, fn, q4.reshape(6, 4, 8), k4.reshape(6, 7, 8),
                                           v4.reshape(6, 7, 5), mask4.view(1, 1, 7))
    out, w, want_out, want_w, raw, crash = _sdpa_call(t, inputs, fn, q4, k4, v4, mask4)
    shapes_ok = not crash and _shape_ok(out, want_out) and _shape_ok(w, want_w)
    own = not crash3 and out3 is not None and w3 is not None and out3.numel() == out.numel() and \
        w3.numel() == w.numel() if shapes_ok else False
    if own:                                        # the same as your own answer on the batch flattened to 3-D
        ok = close(out.reshape(out3.shape), out3) and close(w.reshape(w3.shape), w3)
        where = f"your answer differs from your own answer on the same batch flattened to 3-D: " \
                f"{where_differs(out.reshape(out3.shape), out3) or where_differs(w.reshape(w3.shape), w3)}"
    else:
        ok = shapes_ok and close(out, want_out) and close(w, want_w)
        where = where_differs(out, want_out) or where_differs(w, want_w) if shapes_ok else ""
    general = "use k.transpose(-2, -1) and @ (torch.matmul), which work for any number of leading dimensions; " \
              "torch.bmm and transpose(1, 2) only work for 3-D tensors; "
    if crash:
        hint = general + f"your code raised {crash}"
    elif not shapes_ok:
        hint = general + f"expected output (2, 3, 4, 5) and weights (2, 3, 4, 7), got {_describe(_part(raw, 0))} and " \
                         f"{_describe(_part(raw, 1))}"
    else:
        hint = f"q (2, 3, 4, 8) with a (1, 1, 1, 7) mask: the shapes are right but {where}"
    t.expect(ok, 1, "extra leading dimensions (batch, heads, m, d) and a broadcast mask", hint)


def _check_sdpa_large(t, inputs, fn, g, weights_ok):
    """Queries scaled so rows of scores range from ~0.01 to the thousands: finite results, and (when the weights
    part passed, so a wrong scale is not charged twice) weights that sum to one and equal the reference."""
    hint = ""
    for B, m, n, d, d_v in ((2, 3, 5, 4, 3), (3, 6, 4, 6, 2)):
        scale = torch.tensor([1.0, 1000.0, 0.01, 300.0, 5.0, 3000.0][:m]).view(1, m, 1)
        q = torch.randn(B, m, d, generator=g) * scale
        k, v = torch.randn(B, n, d, generator=g), torch.randn(B, n, d_v, generator=g)
        out, w, want_out, want_w, raw, crash = _sdpa_call(t, inputs, fn, q, k, v)
        if hint:
            continue
        shapes = f"queries scaled by up to 3000 (rows of very different scales), q {tuple(q.shape)}"
        sums = w.sum(-1) if w is not None else None
        if crash:
            hint = f"{shapes}: your code raised {crash}"
        elif not (_shape_ok(out, want_out) and _shape_ok(w, want_w)):
            hint = f"{shapes}: expected output {tuple(want_out.shape)} and weights {tuple(want_w.shape)}, got " \
                   f"{_describe(_part(raw, 0))} and {_describe(_part(raw, 1))}"
        elif not bool(torch.isfinite(w).all() & torch.isfinite(out).all()):
            hint = f"{shapes}: scores in the thousands gave nan or inf: exp() overflowed, or a row underflowed to " \
                   "0/0. Subtract each ROW's maximum before exp (torch.softmax or your stable_masked_softmax do)"
        elif weights_ok and not close(sums, torch.ones_like(sums)):
            idx = _first_index(~torch.isclose(sums, torch.ones_like(sums), atol=1e-5))
            hint = f"{shapes}: the weights of query {idx} sum to {float(sums[idx]):.4g}, not 1; a maximum taken " \
                   "over the whole tensor underflows rows far below it: subtract each ROW's maximum"
        elif weights_ok and not close(w, want_w, atol=1e-4):
            hint = f"{shapes}: the weights are off {where_differs(w, want_w, 1e-4)}"
    t.expect(not hint, 1, "large and mixed-scale scores (rows in the thousands beside rows near 0) stay finite and "
                          "correct", hint)


# --------------------------------------------------------------------------- exercise 4


LETTERS = "abcde"


def _letters(x):
    """A sorted list of letters from a set, list, tuple or string such as 'ac'; None if that is impossible."""
    if isinstance(x, str):
        x = [c for c in x if c.strip() and c not in ",;"]
    try:
        return sorted({str(c).strip().lower() for c in x})
    except TypeError:
        return None


def _std_pair(raw):
    """(unscaled, scaled) floats from a pair of numbers (tuple, list, array, tensor), or None."""
    try:
        un, sc = (float(x) for x in raw)
    except (TypeError, ValueError):
        return None
    return un, sc


@register("02.predict", title="predict before you measure: score sizes and what leaves the weights unchanged",
          exercise_set=SET, points=4)
def check_predict(t, predicted_std, unchanged_by):
    with _switched_off():
        _check_predict(t, predicted_std, unchanged_by)


def _check_predict(t, predicted_std, unchanged_by):
    ok_un, ok_sc, quoted = True, True, []
    for d in (16, 400):
        raw, crash = t.attempt(predicted_std, d)
        pair = _std_pair(raw)
        if pair is None:
            ok_un = ok_sc = False
            quoted.append(f"predicted_std({d}) raised {crash}" if crash else
                          f"predicted_std({d}) should return a pair of numbers (unscaled, scaled), got "
                          f"{_describe(raw)}")
            continue
        un, sc = pair
        quoted.append(f"predicted_std({d}) = ({un:.4g}, {sc:.4g})")
        ok_un &= math.isclose(un, math.sqrt(d), rel_tol=0.05)
        ok_sc &= math.isclose(sc, 1.0, rel_tol=0.05)
    quoted = "; ".join(quoted)
    t.expect(ok_un, 1, "the unscaled dot product's standard deviation, for d = 16 and d = 400",
             f"{quoted}. The variance of q.k is a sum of d terms of variance 1 each; the standard deviation is "
             "the square root of the variance")
    t.expect(ok_sc, 1, "the scaled dot product's standard deviation, for d = 16 and d = 400",
             f"{quoted}. Dividing by sqrt(d) divides the standard deviation by sqrt(d)")

    def letter_lists():
        """unchanged_by() as plain data: two sorted lists of letters (None where unreadable) and a short repr."""
        raw = unchanged_by()
        if isinstance(raw, (tuple, list)) and len(raw) == 2:
            return _letters(raw[0]), _letters(raw[1]), f"{raw!r:.80}"
        return None, None, f"{raw!r:.80}"

    soft, share, shown = t.call(letter_lists)
    if not (soft is not None and share is not None and set(soft) <= set(LETTERS) and set(share) <= set(LETTERS)):
        t.require(False, 2, "unchanged_by() returns two sets of letters from 'abcde'",
                  "return a pair (letters for the softmax, letters for the share), e.g. ({'a'}, {'b'}); "
                  f"got {shown}")
    t.expect(soft == ["a", "c"], 1, "transformations that leave the softmax unchanged",
             f"you chose {soft}. The softmax depends only on the differences between scores: which "
             "transformations keep every difference s_i - s_j?")
    t.expect(share == ["b", "e"], 1, "transformations that leave the share of the total unchanged",
             f"you chose {share}. The share depends only on the ratios between scores: which "
             "transformations keep every ratio s_i / s_j?")
