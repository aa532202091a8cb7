"""Answers to the checks of exercises/11_memory_networks.ipynb: right ones written differently from the solution,
wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.models.attention import masked_softmax

from . import right, wrong


# --------------------------------------------------------------------------- exercise 1: content addressing


def _cosine(memory, key):
    dot = (memory @ key.unsqueeze(-1)).squeeze(-1)                          # (B, N)
    return dot / (memory.norm(dim=-1) * key.norm(dim=-1, keepdim=True))


def content_numpy(memory, key, beta):
    """float64 NumPy with a stable softmax, a NumPy array returned."""
    memory, key, beta = (np.asarray(x, dtype=np.float64) for x in (memory, key, beta))
    cos = np.einsum("bnm,bm->bn", memory, key) / (np.linalg.norm(memory, axis=-1)
                                                  * np.linalg.norm(key, axis=-1)[:, None])
    scores = beta[:, None] * cos
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def content_torch_cosine(memory, key, beta):
    """torch's cosine_similarity and log_softmax, nested lists returned."""
    cos = F.cosine_similarity(memory.double(), key.double().unsqueeze(1), dim=-1)   # (B, N)
    return torch.log_softmax(beta.double().unsqueeze(-1) * cos, -1).exp().tolist()


def content_normalised_first(memory, key, beta):
    """Unit rows and a unit key first, then a dot product; float32 stays float32."""
    unit_m = memory / memory.norm(dim=-1, keepdim=True)
    unit_k = key / key.norm(dim=-1, keepdim=True)
    return torch.softmax(beta[:, None] * torch.einsum("bnm,bm->bn", unit_m, unit_k), dim=-1)


def content_dot_product(memory, key, beta):
    return torch.softmax(beta[:, None] * (memory @ key.unsqueeze(-1)).squeeze(-1), -1)


def content_no_beta(memory, key, beta):
    return torch.softmax(_cosine(memory, key), -1)


def content_first_beta(memory, key, beta):
    return torch.softmax(beta[0] * _cosine(memory, key), -1)              # one strength for the whole batch


def content_naive_exp(memory, key, beta):
    e = torch.exp(beta[:, None] * _cosine(memory, key))
    return e / e.sum(-1, keepdim=True)


def content_global_max(memory, key, beta):
    scores = beta[:, None] * _cosine(memory, key)
    e = torch.exp(scores - scores.max())                                    # one max for the whole batch
    return e / e.sum(-1, keepdim=True)


def content_over_batch(memory, key, beta):
    return torch.softmax(beta[:, None] * _cosine(memory, key), 0)


def content_example_size(memory, key, beta):
    scores = beta[:, None] * _cosine(memory, key)
    return torch.softmax(scores.reshape(2, 5), -1)                         # the example's B and N


def content_normalises_in_place(memory, key, beta):
    memory /= memory.norm(dim=-1, keepdim=True)                             # the caller's memory changes
    key /= key.norm(dim=-1, keepdim=True)
    return torch.softmax(beta[:, None] * (memory @ key.unsqueeze(-1)).squeeze(-1), -1)


def content_eps_too_large(memory, key, beta):
    dot = (memory @ key.unsqueeze(-1)).squeeze(-1)
    cos = dot / (memory.norm(dim=-1) * key.norm(dim=-1, keepdim=True) + 1e-3)   # "for safety": wrong for small rows
    return torch.softmax(beta[:, None] * cos, -1)


# --------------------------------------------------------------------------- exercise 2: shift and sharpen


def shift_roll(w, shift):
    r = shift.shape[-1] // 2
    return sum(shift[:, j:j + 1] * torch.roll(w, k, -1) for j, k in enumerate(range(-r, r + 1)))


def sharpen_scaled(w, gamma):
    p = (w / w.amax(-1, keepdim=True)) ** gamma[:, None]
    return p / p.sum(-1, keepdim=True)


def shift_gather(w, shift):
    """An index matrix: out[b, i] = sum_j shift[b, j] w[b, (i - (j - r)) mod N], float64, NumPy returned."""
    n, s = w.shape[-1], shift.shape[-1]
    r = s // 2
    idx = (torch.arange(n)[:, None] - (torch.arange(s)[None, :] - r)) % n     # (N, S)
    return (w.double()[:, idx] * shift.double()[:, None, :]).sum(-1).numpy()


def sharpen_log_space(w, gamma):
    """softmax(gamma log w), nested lists returned."""
    return torch.softmax(gamma.double()[:, None] * torch.log(w.double()), -1).tolist()


def shift_numpy_loop(w, shift):
    """Plain loops over slots and offsets in NumPy, lists returned."""
    w, shift = np.asarray(w, dtype=np.float64), np.asarray(shift, dtype=np.float64)
    B, N = w.shape
    r = shift.shape[1] // 2
    out = np.zeros((B, N))
    for b in range(B):
        for i in range(N):
            out[b, i] = sum(shift[b, k + r] * w[b, (i - k) % N] for k in range(-r, r + 1))
    return out.tolist()


def sharpen_numpy(w, gamma):
    w, gamma = np.asarray(w, dtype=np.float64), np.asarray(gamma, dtype=np.float64)
    p = (w / w.max(-1, keepdims=True)) ** gamma[:, None]
    return p / p.sum(-1, keepdims=True)


def shift_backwards(w, shift):
    r = shift.shape[-1] // 2
    return sum(shift[:, j:j + 1] * torch.roll(w, -k, -1) for j, k in enumerate(range(-r, r + 1)))


def shift_no_wrap(w, shift):
    """Weight pushed past either end is lost (zero padding instead of wrapping)."""
    r = shift.shape[-1] // 2
    padded = F.pad(w, (r, r))
    n = w.shape[-1]
    return sum(shift[:, j:j + 1] * padded[:, r - k:r - k + n] for j, k in enumerate(range(-r, r + 1)))


def shift_three_offsets(w, shift):
    """Offsets -1, 0, +1 hard-coded (the example's S = 3)."""
    return shift[:, 0:1] * torch.roll(w, -1, -1) + shift[:, 1:2] * w + shift[:, 2:3] * torch.roll(w, 1, -1)


def shift_clamped(w, shift):
    """Indices clamped to the ends instead of taken modulo N: right in the middle, wrong at the edges."""
    n, s = w.shape[-1], shift.shape[-1]
    r = s // 2
    idx = (torch.arange(n)[:, None] - (torch.arange(s)[None, :] - r)).clamp(0, n - 1)
    return (w[:, idx] * shift[:, None, :]).sum(-1)


def shift_normalises_in_place(w, shift):
    shift /= shift.sum(-1, keepdim=True)                                    # the caller's shift changes
    return shift_roll(w, shift)


def sharpen_naive(w, gamma):
    p = w ** gamma[:, None]                                                  # underflows for large gamma
    return p / p.sum(-1, keepdim=True)


def sharpen_unnormalised(w, gamma):
    return w ** gamma[:, None]


def sharpen_first_gamma(w, gamma):
    p = (w / w.amax(-1, keepdim=True)) ** gamma[0]                          # one exponent for the whole batch
    return p / p.sum(-1, keepdim=True)


def sharpen_in_place(w, gamma):
    w /= w.amax(-1, keepdim=True)                                           # the caller's w changes
    p = w ** gamma[:, None]
    return p / p.sum(-1, keepdim=True)


def sharpen_global_max(w, gamma):
    p = (w / w.max()) ** gamma[:, None]                                     # one max for the whole batch
    return p / p.sum(-1, keepdim=True)


def sharpen_unwritten(w, gamma):
    raise NotImplementedError()


# --------------------------------------------------------------------------- exercise 3: memory hop


def hop_numpy_list(u, m, c, mask):
    """float64 NumPy, a list [u_next, p] instead of a tuple."""
    u, m, c, mask = (np.asarray(x) for x in (u, m, c, mask))
    scores = np.where(mask, np.einsum("bld,bd->bl", m.astype(np.float64), u.astype(np.float64)), -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    return [u + np.einsum("bl,bld->bd", p, c), p]


def hop_big_negative(u, m, c, mask):
    """-1e9 instead of -inf on padding, float64 inside."""
    scores = torch.einsum("bld,bd->bl", m.double(), u.double()).masked_fill(~mask, -1e9)
    p = torch.softmax(scores, -1)
    return u.double() + torch.einsum("bl,bld->bd", p, c.double()), p


def hop_logsumexp(u, m, c, mask):
    scores = (m @ u.unsqueeze(-1)).squeeze(-1).masked_fill(~mask, float("-inf"))
    p = torch.exp(scores - torch.logsumexp(scores, -1, keepdim=True))
    return u + (p.unsqueeze(-2) @ c).squeeze(-2), p


def _scores(u, m):
    return (m @ u.unsqueeze(-1)).squeeze(-1)


def _finish(u, c, p):
    return u + (p.unsqueeze(-2) @ c).squeeze(-2), p


def hop_no_mask(u, m, c, mask):
    return _finish(u, c, torch.softmax(_scores(u, m), -1))


def hop_scaled(u, m, c, mask):
    return _finish(u, c, masked_softmax(_scores(u, m) / m.shape[-1] ** 0.5, mask))


def hop_o_only(u, m, c, mask):
    p = masked_softmax(_scores(u, m), mask)
    return (p.unsqueeze(-2) @ c).squeeze(-2), p


def hop_naive_exp(u, m, c, mask):
    e = torch.exp(_scores(u, m).masked_fill(~mask, float("-inf")))
    return _finish(u, c, e / e.sum(-1, keepdim=True))


def hop_max_over_padding(u, m, c, mask):
    """Each row's max taken before masking: a padding score can be the max, and the real ones underflow."""
    s = _scores(u, m)
    e = torch.exp(s - s.amax(-1, keepdim=True)) * mask
    return _finish(u, c, e / e.sum(-1, keepdim=True))


def hop_global_max(u, m, c, mask):
    s = _scores(u, m).masked_fill(~mask, float("-inf"))
    e = torch.exp(s - s.max())                                              # one max for the whole batch
    return _finish(u, c, e / e.sum(-1, keepdim=True))


def hop_mask_after_softmax(u, m, c, mask):
    return _finish(u, c, torch.softmax(_scores(u, m), -1) * mask)


def hop_padding_zero_score(u, m, c, mask):
    return _finish(u, c, torch.softmax(_scores(u, m).masked_fill(~mask, 0.0), -1))


def hop_five_sentences(u, m, c, mask):
    p = masked_softmax(_scores(u, m).reshape(-1, 5), mask.reshape(-1, 5))   # the example's L
    return _finish(u, c, p.reshape(mask.shape))


def hop_masks_in_place(u, m, c, mask):
    c.masked_fill_(~mask.unsqueeze(-1), 0.0)                                # the caller's c changes
    return _finish(u, c, masked_softmax(_scores(u, m), mask))


def hop_swapped_roles(u, m, c, mask):
    return _finish(u, m, masked_softmax(_scores(u, c), mask))              # c as keys, m as values


ANSWERS = {
    "11.content_addressing": [
        right("float64 NumPy", content_numpy),
        right("F.cosine_similarity and log_softmax, lists", content_torch_cosine),
        right("unit vectors first", content_normalised_first),
        wrong("dot product, not cosine", content_dot_product, breaks="w = softmax(beta * cos(key, M_i))"),
        wrong("beta missing", content_no_beta, breaks="w = softmax(beta * cos(key, M_i))"),
        wrong("beta[0] for the whole batch", content_first_beta, breaks="w = softmax(beta * cos(key, M_i))"),
        wrong("naive exp", content_naive_exp, breaks="beta up to"),
        wrong("one max for the whole batch", content_global_max, breaks="beta up to"),
        wrong("softmax over the batch", content_over_batch, breaks="summing to one over the slots"),
        wrong("B and N hard-coded", content_example_size, breaks="other sizes"),
        wrong("memory normalised in place", content_normalises_in_place, breaks="leaves its inputs unchanged"),
        wrong("a large eps in the cosine", content_eps_too_large, breaks="rows of very different norms"),
    ],
    "11.shift_sharpen": [
        right("torch.roll and max-scaled power", shift_roll, sharpen_scaled),
        right("index matrix in float64, softmax of gamma log w", shift_gather, sharpen_log_space),
        right("NumPy loops", shift_numpy_loop, sharpen_numpy),
        wrong("shift backwards", shift_backwards, sharpen_scaled, breaks="offset +1 moves the focus"),
        wrong("no wrap-around", shift_no_wrap, sharpen_scaled, breaks="offset +1 moves the focus"),
        wrong("three offsets hard-coded", shift_three_offsets, sharpen_scaled, breaks="any distribution over 2r + 1"),
        wrong("indices clamped at the ends", shift_clamped, sharpen_scaled, breaks="offset +1 moves the focus"),
        wrong("shift normalised in place", shift_normalises_in_place, sharpen_scaled,
              breaks="leaves its inputs unchanged"),
        wrong("naive power", shift_roll, sharpen_naive, breaks="sharpen stays finite for large gamma"),
        wrong("not renormalised", shift_roll, sharpen_unnormalised, breaks="sharpen: w^gamma / sum w^gamma"),
        wrong("gamma[0] for the whole batch", shift_roll, sharpen_first_gamma, breaks="sharpen: w^gamma / sum w^gamma"),
        wrong("w scaled in place", shift_roll, sharpen_in_place, breaks="leaves its inputs unchanged"),
        wrong("one max for the whole batch", shift_roll, sharpen_global_max, breaks="sharpen stays finite"),
        wrong("sharpen not written yet", shift_roll, sharpen_unwritten, breaks="sharpen: w^gamma / sum w^gamma"),
    ],
    "11.memory_hop": [
        right("float64 NumPy, a list", hop_numpy_list),
        right("-1e9 on padding, float64", hop_big_negative),
        right("exp(s - logsumexp(s))", hop_logsumexp),
        wrong("no mask", hop_no_mask, breaks="p is a distribution over each story's real sentences"),
        wrong("divided by sqrt(d)", hop_scaled, breaks="p = softmax(u . m_i)"),
        wrong("o alone", hop_o_only, breaks="u_next = u + sum_i p_i c_i"),
        wrong("naive exp", hop_naive_exp, breaks="scores in the thousands"),
        wrong("row max over the padding too", hop_max_over_padding, breaks="scores in the thousands"),
        wrong("one max for the whole batch", hop_global_max, breaks="scores in the thousands"),
        wrong("mask applied after the softmax", hop_mask_after_softmax, breaks="p is a distribution"),
        wrong("padding scored 0", hop_padding_zero_score, breaks="p is a distribution"),
        wrong("L hard-coded to 5", hop_five_sentences, breaks="other sizes"),
        wrong("c masked in place", hop_masks_in_place, breaks="leaves its inputs unchanged"),
        wrong("m and c swapped", hop_swapped_roles, breaks="p = softmax(u . m_i)"),
    ],
    "11.predict": [
        right("a tuple of floats", lambda: (0.5, 0.25 / 0.38)),
        right("a list of NumPy scalars, two decimals", lambda: [np.float64(0.5), np.float32(0.66)]),
        right("a tensor", lambda: torch.tensor([0.5, 0.658])),
        wrong("shifted backwards", lambda: (0.2, 0.04 / 0.38), breaks="after the shift"),
        wrong("squares not renormalised", lambda: (0.5, 0.25), breaks="after sharpening"),
        wrong("gamma multiplies", lambda: (0.5, 1.0), breaks="after sharpening"),
        wrong("offset 0's weight", lambda: (0.3, 0.09 / 0.38), breaks="after the shift"),
        wrong("one number", lambda: 0.5, breaks="two numbers"),
    ],
}
