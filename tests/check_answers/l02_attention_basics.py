"""Answers to the checks of exercises/02_attention_basics.ipynb: right ones written differently from the solution,
wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import right, wrong


# --------------------------------------------------------------------------- exercise 1: stable_masked_softmax


def softmax_float64(scores, mask, dim=-1):
    """Everything in float64, returned in float64."""
    s = scores.double().masked_fill(~mask, float("-inf"))
    top = s.amax(dim, keepdim=True).nan_to_num(neginf=0.0)
    e = torch.exp(s - top)
    total = e.sum(dim, keepdim=True)
    return torch.where(total > 0, e / total.clamp_min(1e-300), torch.zeros_like(e))


def softmax_logsumexp(scores, mask, dim=-1):
    """exp(s - logsumexp(s)) over the kept entries; empty slices set to 0 afterwards."""
    s = scores.masked_fill(~mask, float("-inf"))
    w = torch.exp(s - torch.logsumexp(s, dim, keepdim=True))
    return torch.nan_to_num(w, nan=0.0)


def softmax_numpy(scores, mask, dim=-1):
    """NumPy in float64, a NumPy array returned."""
    s = np.where(np.broadcast_to(mask.numpy(), scores.shape), scores.double().numpy(), -np.inf)
    top = s.max(axis=dim, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(s - top)
    total = e.sum(axis=dim, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


def _masked(scores, mask):
    return scores.masked_fill(~mask, float("-inf"))


def _normalise(e, dim):
    return e / e.sum(dim, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def softmax_naive(scores, mask, dim=-1):
    """No maximum subtracted: exp overflows for scores in the thousands."""
    return _normalise(torch.exp(_masked(scores, mask)), dim)


def softmax_global_max(scores, mask, dim=-1):
    """One maximum for the whole tensor: rows far below it underflow."""
    s = _masked(scores, mask)
    top = s.max()
    top = top if torch.isfinite(top) else torch.zeros_like(top)
    return _normalise(torch.exp(s - top), dim)


def softmax_max_of_all(scores, mask, dim=-1):
    """The maximum taken before masking, so a huge masked score pushes the kept ones to 0."""
    top = scores.amax(dim, keepdim=True)
    return _normalise(torch.exp(scores - top) * mask, dim)


def softmax_finite_fill(scores, mask, dim=-1):
    """-1e9 instead of -inf: an all-masked row comes out uniform."""
    s = scores.masked_fill(~mask, -1e9)
    e = torch.exp(s - s.amax(dim, keepdim=True))
    return e / e.sum(dim, keepdim=True)


def softmax_nan_rows(scores, mask, dim=-1):
    """No guard for all-masked slices: 0 / 0 = nan."""
    s = _masked(scores, mask)
    e = torch.exp(s - s.amax(dim, keepdim=True))
    return e / e.sum(dim, keepdim=True)


def softmax_last_dim_only(scores, mask, dim=-1):
    """Ignores `dim`: always the last dimension."""
    return softmax_float64(scores, mask).to(scores.dtype)


def softmax_inverted_mask(scores, mask, dim=-1):
    """True read as 'mask this out'."""
    return softmax_float64(scores, ~mask, dim).to(scores.dtype)


def softmax_in_place(scores, mask, dim=-1):
    """masked_fill_ on the caller's scores."""
    scores.masked_fill_(~mask, float("-inf"))
    top = scores.amax(dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return _normalise(torch.exp(scores - top), dim)


def softmax_then_mask(scores, mask, dim=-1):
    """A plain stable softmax, then the masked weights zeroed without renormalising."""
    e = torch.exp(scores - scores.amax(dim, keepdim=True))
    return e / e.sum(dim, keepdim=True) * mask


def softmax_mask_two_dims(scores, mask, dim=-1):
    """Assumes scores and mask have the same shape (no broadcasting): mask.view(scores.shape)."""
    return softmax_float64(scores, mask.reshape(scores.shape), dim)


# --------------------------------------------------------------------------- exercise 2: additive_score


def additive_float64(query, keys, W_q, W_k, v):
    """Computed in float64, cast back to the input dtype."""
    h = torch.tanh((query.double() @ W_q.double())[:, None, :] + keys.double() @ W_k.double())
    return (h @ v.double()).to(query.dtype)


def additive_einsum(query, keys, W_q, W_k, v):
    """einsum throughout."""
    q = torch.einsum("bd,dh->bh", query, W_q)
    k = torch.einsum("bnd,dh->bnh", keys, W_k)
    return torch.einsum("bnh,h->bn", torch.tanh(q[:, None] + k), v)


def additive_loop(query, keys, W_q, W_k, v):
    """One key at a time, stacked."""
    qW = query @ W_q                                                        # (B, h)
    return torch.stack([torch.tanh(qW + keys[:, i] @ W_k) @ v for i in range(keys.shape[1])], dim=1)


def additive_no_tanh(query, keys, W_q, W_k, v):
    return ((query @ W_q).unsqueeze(1) + keys @ W_k) @ v


def additive_tanh_apart(query, keys, W_q, W_k, v):
    return (torch.tanh(query @ W_q).unsqueeze(1) + torch.tanh(keys @ W_k)) @ v


def additive_sum_not_v(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k).sum(-1)


def additive_batch_two(query, keys, W_q, W_k, v):
    """The example's batch size, hard-coded in a reshape."""
    return torch.tanh((query @ W_q).view(2, 1, -1) + keys @ W_k) @ v


def additive_detached(query, keys, W_q, W_k, v):
    """Right values, but through NumPy: no gradients."""
    q, k, a, b, w = (x.detach().double().numpy() for x in (query, keys, W_q, W_k, v))
    return torch.tensor(np.tanh((q @ a)[:, None, :] + k @ b) @ w, dtype=query.dtype)


def additive_in_place(query, keys, W_q, W_k, v):
    """unsqueeze_ changes the caller's query."""
    query.unsqueeze_(1)
    return torch.tanh(query @ W_q + keys @ W_k) @ v


def additive_query_broadcast_wrong(query, keys, W_q, W_k, v):
    """The query part added along the keys instead of the hidden units (transposed)."""
    return torch.tanh((query @ W_q).sum(-1, keepdim=True) + keys @ W_k) @ v


# --------------------------------------------------------------------------- exercise 3: attention


def _softmax_last(scores):
    top = scores.amax(-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.exp(scores - top)
    return e / e.sum(-1, keepdim=True)


def sdpa_float64_list(q, k, v, mask=None):
    """float64 inside, returned as a list [output, weights]."""
    scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    return [w @ v.double(), w]


def sdpa_einsum_own_softmax(q, k, v, mask=None):
    """einsum over any leading dimensions, a hand-written stable softmax."""
    scores = torch.einsum("...md,...nd->...mn", q, k) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    w = _softmax_last(scores)
    return torch.einsum("...mn,...nd->...md", w, v), w


def sdpa_numpy(q, k, v, mask=None):
    """NumPy arrays returned."""
    qn, kn, vn = (x.double().numpy() for x in (q, k, v))
    scores = qn @ np.swapaxes(kn, -1, -2) / math.sqrt(qn.shape[-1])
    if mask is not None:
        scores = np.where(mask.numpy(), scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    w = e / e.sum(-1, keepdims=True)
    return w @ vn, w


def _sdpa(q, k, v, mask, scale, softmax=lambda s: torch.softmax(s, -1)):
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = softmax(scores)
    return w @ v, w


def sdpa_no_scale(q, k, v, mask=None):
    return _sdpa(q, k, v, mask, 1.0)


def sdpa_divide_by_d(q, k, v, mask=None):
    return _sdpa(q, k, v, mask, 1 / q.shape[-1])


def sdpa_d_four(q, k, v, mask=None):
    """The example's d = 4 hard-coded in the scale."""
    return _sdpa(q, k, v, mask, 1 / 2)


def sdpa_softmax_over_queries(q, k, v, mask=None):
    """softmax over dim=-2 (the queries)."""
    return _sdpa(q, k, v, mask, q.shape[-1] ** -0.5, lambda s: torch.softmax(s, -2).nan_to_num(0.0))


def sdpa_transpose_1_2(q, k, v, mask=None):
    """k.transpose(1, 2): right for 3-D tensors only."""
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, -1)
    return w @ v, w


def sdpa_mask_ignored(q, k, v, mask=None):
    return _sdpa(q, k, v, None, q.shape[-1] ** -0.5)


def sdpa_mask_inverted(q, k, v, mask=None):
    return _sdpa(q, k, v, None if mask is None else ~mask, q.shape[-1] ** -0.5)


def sdpa_naive_softmax(q, k, v, mask=None):
    """exp without subtracting the maximum."""
    def naive(s):
        e = torch.exp(s)
        return e / e.sum(-1, keepdim=True)
    return _sdpa(q, k, v, mask, q.shape[-1] ** -0.5, naive)


def sdpa_global_max(q, k, v, mask=None):
    """One maximum for the whole tensor of scores."""
    def shifted(s):
        e = torch.exp(s - s.max())
        return e / e.sum(-1, keepdim=True)
    return _sdpa(q, k, v, mask, q.shape[-1] ** -0.5, shifted)


def sdpa_scales_q_in_place(q, k, v, mask=None):
    """q /= sqrt(d) on the caller's tensor."""
    q /= math.sqrt(q.shape[-1])
    return _sdpa(q, k, v, mask, 1.0)


def sdpa_weights_times_keys(q, k, v, mask=None):
    """Aggregates the keys instead of the values (where the shapes allow)."""
    out, w = _sdpa(q, k, v, mask, q.shape[-1] ** -0.5)
    return (w @ k if k.shape[-1] == v.shape[-1] else out + 0.1), w


def sdpa_output_only(q, k, v, mask=None):
    """Returns only the output, not the pair."""
    return _sdpa(q, k, v, mask, q.shape[-1] ** -0.5)[0]


# --------------------------------------------------------------------------- exercise 4: predictions


ANSWERS = {
    "02.stable_masked_softmax": [
        right("float64 throughout", softmax_float64),
        right("logsumexp", softmax_logsumexp),
        right("NumPy", softmax_numpy),
        wrong("naive exp", softmax_naive, breaks="large and mixed-scale rows"),
        wrong("one max for the whole tensor", softmax_global_max, breaks="large and mixed-scale rows"),
        wrong("max taken before masking", softmax_max_of_all, breaks="a huge masked score"),
        wrong("-1e9 fill", softmax_finite_fill, breaks="every entry masked gives zeros"),
        wrong("0/0 on empty rows", softmax_nan_rows, breaks="every entry masked gives zeros"),
        wrong("dim ignored", softmax_last_dim_only, breaks="the `dim` argument"),
        wrong("mask inverted", softmax_inverted_mask, breaks="masked entries get 0"),
        wrong("masked_fill_ on the scores", softmax_in_place, breaks="leaves scores and mask unchanged"),
        wrong("masked after the softmax, not renormalised", softmax_then_mask, breaks="masked entries get 0"),
        wrong("mask reshaped, not broadcast", softmax_mask_two_dims, breaks="a mask that broadcasts"),
    ],
    "02.additive_score": [
        right("float64 inside", additive_float64),
        right("einsum", additive_einsum),
        right("a loop over the keys", additive_loop),
        wrong("no tanh", additive_no_tanh, breaks="the values v . tanh"),
        wrong("tanh of each part", additive_tanh_apart, breaks="the values v . tanh"),
        wrong("sum instead of v", additive_sum_not_v, breaks="the values v . tanh"),
        wrong("batch size 2 hard-coded", additive_batch_two, breaks="the values v . tanh"),
        wrong("through NumPy", additive_detached, breaks="gradients reach"),
        wrong("unsqueeze_ on the query", additive_in_place, breaks="leaves its inputs unchanged"),
        wrong("query part summed over the hidden units", additive_query_broadcast_wrong, breaks="the values v . tanh"),
    ],
    "02.scaled_dot_product_attention": [
        right("float64 inside, a list", sdpa_float64_list),
        right("einsum and an own softmax", sdpa_einsum_own_softmax),
        right("NumPy", sdpa_numpy),
        wrong("no scale", sdpa_no_scale, breaks="weights = softmax"),
        wrong("divided by d", sdpa_divide_by_d, breaks="weights = softmax"),
        wrong("d = 4 hard-coded", sdpa_d_four, breaks="weights = softmax"),
        wrong("softmax over the queries", sdpa_softmax_over_queries, breaks="weights = softmax"),
        wrong("transpose(1, 2)", sdpa_transpose_1_2, breaks="extra leading dimensions"),
        wrong("mask ignored", sdpa_mask_ignored, breaks="a boolean mask"),
        wrong("mask inverted", sdpa_mask_inverted, breaks="a boolean mask"),
        wrong("naive softmax", sdpa_naive_softmax, breaks="large and mixed-scale scores"),
        wrong("one max for all scores", sdpa_global_max, breaks="large and mixed-scale scores"),
        wrong("q scaled in place", sdpa_scales_q_in_place, breaks="leaves q, k, v and mask unchanged"),
        wrong("the keys aggregated", sdpa_weights_times_keys, breaks="output = weights @ v"),
        wrong("the output only", sdpa_output_only, breaks="returns (output, weights)"),
    ],
    "02.predict": [
        right("NumPy numbers, letters as strings", lambda d: (np.sqrt(d), np.float64(1.0)), lambda: ("ac", "eb")),
        right("a tensor pair, lists of letters", lambda d: torch.tensor([d ** 0.5, 1.0]),
              lambda: (["a", "c"], ["b", "e"])),
        right("a list, upper-case frozensets", lambda d: [math.sqrt(d), 1], lambda: [frozenset("AC"), frozenset("BE")]),
        wrong("the variance, not the standard deviation", lambda d: (d, 1.0), lambda: ({"a", "c"}, {"b", "e"}),
              breaks="the unscaled dot product's standard deviation"),
        wrong("scaled by sqrt(d) twice", lambda d: (math.sqrt(d), 1 / math.sqrt(d)), lambda: ({"a", "c"}, {"b", "e"}),
              breaks="the scaled dot product's standard deviation"),
        wrong("d = 16 hard-coded", lambda d: (4.0, 1.0), lambda: ({"a", "c"}, {"b", "e"}),
              breaks="the unscaled dot product's standard deviation"),
        wrong("temperature leaves the softmax unchanged", lambda d: (math.sqrt(d), 1.0),
              lambda: ({"a", "c", "e"}, {"b", "e"}), breaks="leave the softmax unchanged"),
        wrong("shift leaves the share unchanged", lambda d: (math.sqrt(d), 1.0), lambda: ({"a", "c"}, {"a", "b", "e"}),
              breaks="leave the share of the total unchanged"),
        wrong("one number, not a pair", lambda d: math.sqrt(d), lambda: ({"a", "c"}, {"b", "e"}),
              breaks="the unscaled dot product's standard deviation"),
        wrong("the sets swapped", lambda d: (math.sqrt(d), 1.0), lambda: ({"b", "e"}, {"a", "c"}),
              breaks="leave the softmax unchanged"),
    ],
}
