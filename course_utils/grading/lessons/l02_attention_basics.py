"""Checks for exercises/02_attention_basics.ipynb: a stable masked softmax, the additive (Bahdanau)
score, and batched scaled dot-product attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core import register
from ..tensor_checks import close as _close, describe as _describe, is_tensor as _is_tensor

SET = "02_attention_basics"


def _ref_masked_softmax(scores, mask, dim=-1):
    """The reference: masked entries get exactly 0; a row with nothing kept gets all zeros."""
    filled = scores.masked_fill(~mask, float("-inf"))
    top = filled.amax(dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.exp(filled - top)
    return e / e.sum(dim, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


@register("02.stable_masked_softmax", title="softmax that is stable, masked, and safe on empty rows",
          exercise_set=SET, points=8)
def check_stable_masked_softmax(t, stable_masked_softmax):
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 5, generator=g)
    keep_all = torch.ones(3, 5, dtype=torch.bool)
    got = t.call(stable_masked_softmax, scores, keep_all)
    t.require(_is_tensor(got, scores.shape), 1, "returns a tensor with the shape of `scores`",
              f"scores of shape (3, 5) should give weights of shape (3, 5), got {_describe(got)}")
    want = torch.softmax(scores, dim=-1)
    if _close(got, torch.softmax(scores, dim=0)):
        hint = "your weights sum to one down each column: with dim=-1 the softmax runs along the last dimension"
    elif bool((got == 0).all()):
        hint = "every weight is 0 although the mask keeps every entry: is your mask inverted? True = keep"
    elif bool(torch.isnan(got).any()):
        hint = "you got nan with every entry kept; check the normalisation (divide exp by its sum along `dim`)"
    else:
        hint = f"with every entry kept the result should equal torch.softmax(scores, dim=-1); row 0 should be " \
               f"{[round(x, 4) for x in want[0].tolist()]}, got {[round(x, 4) for x in got[0].tolist()]}"
    t.expect(_close(got, want), 1, "with nothing masked, equals torch.softmax", hint)

    big = torch.tensor([[1000.0, 1001.0, 1002.0]])
    got = t.call(stable_masked_softmax, big, torch.ones(1, 3, dtype=torch.bool))
    want = torch.softmax(torch.tensor([[0.0, 1.0, 2.0]]), dim=-1)
    t.expect(_close(got, want), 1, "large scores [1000, 1001, 1002]: finite and correct",
             "exp(1000) overflows to inf and inf/inf is nan; subtract each row's maximum before exp "
             f"(expected {[round(x, 4) for x in want[0].tolist()]}, got "
             f"{[round(x, 4) for x in got[0].tolist()] if _is_tensor(got) else _describe(got)})")

    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0], [0.0, 3.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, False, False], [False, True, True, True]])
    got = t.call(stable_masked_softmax, scores, mask)
    want = _ref_masked_softmax(scores, mask)
    inverted = _ref_masked_softmax(scores, ~mask)
    if _close(got, inverted):
        hint = "your mask is inverted: True means KEEP this entry, False means give it weight 0"
    elif _is_tensor(got, want.shape) and bool((got[~mask].abs() > 1e-7).any()):
        hint = "masked entries (mask False) must get weight exactly 0; fill their scores with -inf before the softmax"
    elif _is_tensor(got, want.shape) and torch.allclose(got.sum(-1), torch.ones(2), atol=1e-5):
        hint = f"masked entries are 0 and rows sum to one, but the values are off: expected {want.tolist()}"
    else:
        hint = "the kept entries should be renormalised to sum to one (a softmax over the kept entries only); " \
               f"expected {[[round(x, 4) for x in r] for r in want.tolist()]}"
    t.expect(_close(got, want), 1, "masked entries get 0, the kept ones sum to one", hint)

    # a masked entry with a huge score must not take part in the max
    scores = torch.tensor([[1000.0, 0.0, 1.0]])
    mask = torch.tensor([[False, True, True]])
    got = t.call(stable_masked_softmax, scores, mask)
    want = _ref_masked_softmax(scores, mask)
    if _is_tensor(got) and bool(torch.isnan(got).any()):
        hint = "a masked score of 1000 made your row nan: you subtracted the max over ALL entries, so the kept ones " \
               "underflowed to exp(-1000) = 0. Apply the mask first, then take the max of what is left"
    else:
        hint = f"scores [1000, 0, 1] with the 1000 masked should give {[round(x, 4) for x in want[0].tolist()]}"
    t.expect(_close(got, want), 1, "a huge masked score does not disturb the kept entries", hint)

    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.1, 0.2]])
    mask = torch.tensor([[False, False, False], [True, False, True]])
    got = t.call(stable_masked_softmax, scores, mask)
    want = _ref_masked_softmax(scores, mask)
    if _is_tensor(got, want.shape) and bool(torch.isnan(got[0]).any()):
        hint = "the all-masked row came out nan (0/0); return zeros for a row where nothing is kept"
    elif _is_tensor(got, want.shape) and torch.allclose(got[0], torch.full((3,), 1 / 3), atol=1e-4):
        hint = "the all-masked row came out uniform (1/3 each): a finite fill such as -1e9 spreads weight over " \
               "entries that should get none. It should be all zeros"
    else:
        hint = f"expected {[[round(x, 4) for x in r] for r in want.tolist()]} (row 0 has nothing kept: zeros)"
    t.expect(_close(got, want), 1, "a row with every entry masked gives zeros, not nan", hint)

    scores = torch.randn(4, 3, generator=g)
    mask = torch.tensor([[True, False, True], [True, True, False], [False, True, True], [True, True, True]])
    got = t.call(stable_masked_softmax, scores, mask, dim=0)
    want = _ref_masked_softmax(scores, mask, dim=0)
    t.expect(_close(got, want), 1, "the `dim` argument picks the dimension that sums to one",
             "with dim=0 each COLUMN should sum to one; use `dim` in every max, sum and softmax "
             "(and keepdim=True so the shapes broadcast)")

    scores = torch.randn(2, 3, 4, generator=g)
    mask = torch.tensor([[True, True, False, True], [True, False, False, True]]).unsqueeze(1)  # (2, 1, 4)
    got = t.call(stable_masked_softmax, scores, mask)
    want = _ref_masked_softmax(scores, mask.expand(2, 3, 4))
    t.expect(_close(got, want), 1, "a mask that broadcasts ((batch, 1, n) against (batch, m, n)) works",
             f"a (2, 1, 4) mask should apply to every row of its batch element; got {_describe(got)}, "
             "expected shape (2, 3, 4). Use operations that broadcast (masked_fill, torch.where)")


def _ref_additive(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_q).unsqueeze(-2) + keys @ W_k) @ v


@register("02.additive_score", title="the additive (Bahdanau) score", exercise_set=SET, points=4)
def check_additive_score(t, additive_score):
    g = torch.Generator().manual_seed(3)
    B, n, d_q, d_k, h = 2, 5, 3, 4, 6
    query, keys = torch.randn(B, d_q, generator=g), torch.randn(B, n, d_k, generator=g)
    W_q, W_k, v = torch.randn(d_q, h, generator=g), torch.randn(d_k, h, generator=g), torch.randn(h, generator=g)
    got = t.call(additive_score, query, keys, W_q, W_k, v)
    t.require(_is_tensor(got, (B, n)), 1, "returns scores of shape (batch, n_keys)",
              f"query (2, 3) and keys (2, 5, 4) should give (2, 5): one score per key; got {_describe(got)}. "
              "The hidden dimension h must be summed away by the dot product with v")
    want = _ref_additive(query, keys, W_q, W_k, v)
    if _close(got, ((query @ W_q).unsqueeze(-2) + keys @ W_k) @ v):
        hint = "you left out the tanh: score = v . tanh(q W_q + k W_k)"
    elif _close(got, (torch.tanh(query @ W_q) @ v).unsqueeze(-1) + torch.tanh(keys @ W_k) @ v):
        hint = "you applied tanh to the query and key parts separately; add q W_q + k W_k first, then tanh"
    elif _close(got, torch.tanh((query @ W_q).unsqueeze(-2) + keys @ W_k).sum(-1)):
        hint = "you summed over the hidden units instead of taking the dot product with v"
    else:
        hint = f"expected score[b, i] = v . tanh(query[b] @ W_q + keys[b, i] @ W_k); row 0 should be " \
               f"{[round(x, 4) for x in want[0].tolist()]}, got {[round(x, 4) for x in got[0].tolist()]}"
    t.expect(_close(got, want, atol=1e-5), 2, "the values: v . tanh(q W_q + k_i W_k)", hint)

    params = [p.clone().requires_grad_(True) for p in (W_q, W_k, v)]
    got = t.call(additive_score, query, keys, *params)
    ok = _is_tensor(got) and got.requires_grad
    if ok:
        got.sum().backward()
        ok = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) and p.grad.abs().sum() > 0 for p in params)
    t.expect(ok, 1, "gradients reach W_q, W_k and v (the score can be trained)",
             "build the score from torch operations on the parameters (no numpy, .detach(), .item() or "
             "torch.tensor(...) rewrapping), so backpropagation reaches W_q, W_k and v")


def _ref_sdpa(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    return w @ v, w


@register("02.scaled_dot_product_attention", title="batched scaled dot-product attention",
          exercise_set=SET, points=7)
def check_sdpa(t, scaled_dot_product_attention):
    g = torch.Generator().manual_seed(4)
    q, k, v = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 6, generator=g)
    got = t.call(scaled_dot_product_attention, q, k, v)
    ok = isinstance(got, tuple) and len(got) == 2 and _is_tensor(got[0], (2, 3, 6)) and _is_tensor(got[1], (2, 3, 5))
    if isinstance(got, tuple) and len(got) == 2:
        hint = f"q (2, 3, 4), k (2, 5, 4), v (2, 5, 6) should give output (2, 3, 6) and weights (2, 3, 5); " \
               f"got {_describe(got[0])} and {_describe(got[1])}"
    else:
        hint = f"return a tuple (output, weights); got {type(got).__name__}"
    t.require(ok, 1, "returns (output, weights) with shapes (..., m, d_v) and (..., m, n)", hint)
    out, w = got
    want_out, want_w = _ref_sdpa(q, k, v)
    rows_ok = bool((w >= 0).all()) and torch.allclose(w.sum(-1), torch.ones(2, 3), atol=1e-5)
    t.expect(rows_ok, 1, "each query's weights are non-negative and sum to one",
             "the softmax must run over the keys, dim=-1 (the last dimension of q @ k^T); "
             f"your rows sum to {[round(x, 3) for x in w.sum(-1).flatten().tolist()]}")
    scores = q @ k.transpose(-2, -1)
    if _close(w, torch.softmax(scores, -1)):
        hint = "you forgot the scale: divide q @ k^T by sqrt(d_k) before the softmax"
    elif _close(w, torch.softmax(scores / q.shape[-1], -1)):
        hint = "you divided by d_k; divide by its square root, sqrt(d_k)"
    elif _close(w, torch.softmax(scores * math.sqrt(q.shape[-1]), -1)):
        hint = "you multiplied by sqrt(d_k); divide by it"
    else:
        hint = "weights should be softmax(q @ k^T / sqrt(d_k)) over the last dimension"
    t.expect(_close(w, want_w), 1, "weights = softmax(q k^T / sqrt(d_k))", hint)
    if _is_tensor(out, (2, 3, 6)) and torch.allclose(out, w @ v, atol=1e-5):
        hint = "your output is your weights @ v, which is right; the weights are off: fix the failure above"
    else:
        hint = "the output is the weighted sum of the VALUES: weights @ v"
    t.expect(_close(out, F.scaled_dot_product_attention(q, k, v)), 1,
             "output equals torch.nn.functional.scaled_dot_product_attention", hint)

    mask = torch.tensor([[True, True, True, False, False]] * 3 + [[False, True, True, True, True]] * 3).view(2, 3, 5)
    mask[0, 1] = torch.tensor([True, False, False, False, False])
    got = t.call(scaled_dot_product_attention, q, k, v, mask)
    want_out, want_w = _ref_sdpa(q, k, v, mask)
    inv_out, inv_w = _ref_sdpa(q, k, v, ~mask)
    ok = isinstance(got, tuple) and len(got) == 2 and _close(got[1], want_w) and \
        _close(got[0], F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    if isinstance(got, tuple) and len(got) == 2 and _close(got[1], inv_w):
        hint = "your mask is inverted: True means the query MAY attend to that key (as in torch's attn_mask)"
    elif isinstance(got, tuple) and len(got) == 2 and _is_tensor(got[1], mask.shape) and \
            bool((got[1][~mask].abs() > 1e-7).any()):
        hint = "keys whose mask is False must get weight exactly 0: fill their scores with -inf before the softmax"
    else:
        hint = "with a boolean mask (True = keep) the result should equal " \
               "F.scaled_dot_product_attention(q, k, v, attn_mask=mask) (if an earlier part failed, fix it first)"
    t.expect(ok, 1, "a boolean mask (True = keep) removes keys, as torch's attn_mask does", hint)

    q4, k4, v4 = torch.randn(2, 3, 4, 8, generator=g), torch.randn(2, 3, 7, 8, generator=g), \
        torch.randn(2, 3, 7, 5, generator=g)
    mask4 = torch.tensor([True] * 5 + [False] * 2).view(1, 1, 1, 7)
    try:
        got = t.call(scaled_dot_product_attention, q4, k4, v4, mask4)
        crash = ""
    except NotImplementedError:
        raise
    except Exception as err:  # a crash here should not cost the parts already earned
        got, crash = None, getattr(err, "message", str(err))
    want = F.scaled_dot_product_attention(q4, k4, v4, attn_mask=mask4)
    if crash or not (isinstance(got, tuple) and len(got) == 2 and _is_tensor(got[0], want.shape)):
        hint = "use k.transpose(-2, -1) and @ (torch.matmul), which work for any number of leading dimensions; " \
               "torch.bmm and transpose(1, 2) only work for 3-D tensors; " + \
               (f"your code raised {crash}" if crash else f"expected output shape (2, 3, 4, 5), got {_describe(got)}")
    else:
        hint = "the shape is right but the values differ from torch's: fix the failures above first"
    t.expect(isinstance(got, tuple) and len(got) == 2 and _close(got[0], want), 1,
             "extra leading dimensions (batch, heads, m, d) and a broadcast mask", hint)

    big_q = q * 1000.0
    got = t.call(scaled_dot_product_attention, big_q, k, v)
    want = F.scaled_dot_product_attention(big_q, k, v)
    t.expect(isinstance(got, tuple) and len(got) == 2 and _close(got[0], want, atol=1e-4), 1,
             "large scores (queries times 1000) stay finite and correct",
             "with huge scores exp() overflows; use torch.softmax (or your stable_masked_softmax), "
             "which subtracts the maximum first")
