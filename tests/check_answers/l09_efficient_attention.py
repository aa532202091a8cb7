"""Answers to the checks of exercises/09_efficient_attention.ipynb: right ones written differently from the
solution, wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import right, wrong


# --------------------------------------------------------------------------- exercise 1: sliding-window mask


def window_tril_triu(n, window):
    """tril minus what lies window or more below the diagonal."""
    ones = torch.ones(n, n, dtype=torch.bool)
    return ones.tril() & ~ones.tril(-window)


def window_numpy_ints(n, window):
    """A NumPy array of 0/1 ints from a double loop."""
    out = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(max(0, i - window + 1), i + 1):
            out[i, j] = 1
    return out


def window_one_too_many(n, window):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j <= i) & (i - j <= window)


def window_not_causal(n, window):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (i - j).abs() < window


def window_transposed(n, window):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return ((j <= i) & (i - j < window)).T


def window_inverted(n, window):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return ~((j <= i) & (i - j < window))


def window_example_size(n, window):
    i, j = torch.arange(8)[:, None], torch.arange(8)[None, :]
    return (j <= i) & (i - j < window)


def window_clamped_wrong(n, window):
    """Breaks when the window is longer than the sequence (an empty band from tril(-window) with window > n is fine,
    but this version uses window % n)."""
    w = window % n if window > n else window
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j <= i) & (i - j < w)


# --------------------------------------------------------------------------- exercise 2: online softmax update


def update_numpy(m, s, block):
    """float64 NumPy, with np.errstate and the -inf case handled by where."""
    m, s, block = (np.asarray(x, dtype=np.float64) for x in (m, s, block))
    new_m = np.maximum(m, block.max(-1))
    shift = np.where(np.isneginf(new_m), 0.0, new_m)
    return new_m, s * np.exp(m - shift) + np.exp(block - shift[..., None]).sum(-1)


def update_logaddexp(m, s, block):
    """In log space: log l' = logaddexp(log l + m, logsumexp(block)) - m'; lists returned."""
    m, s, block = m.double(), s.double(), block.double()
    new_m = torch.maximum(m, block.amax(-1))
    log_total = torch.logaddexp(torch.log(s) + m, torch.logsumexp(block, -1))
    total = torch.where(torch.isinf(new_m), torch.zeros_like(s), torch.exp(log_total - new_m))
    return [new_m.tolist(), total.tolist()]


def update_no_rescale(m, s, block):
    new_m = torch.maximum(m, block.amax(-1))
    return new_m, s + torch.exp(block - new_m.unsqueeze(-1)).sum(-1)


def update_nan_at_start(m, s, block):
    new_m = torch.maximum(m, block.amax(-1))                             # no guard for a maximum of -inf
    return new_m, s * torch.exp(m - new_m) + torch.exp(block - new_m.unsqueeze(-1)).sum(-1)


def update_block_max_only(m, s, block):
    """Uses the block's own max, forgetting the running one."""
    bm = block.amax(-1)
    safe = torch.where(torch.isinf(m), bm, m)
    return bm, s * torch.exp(safe - bm) + torch.exp(block - bm.unsqueeze(-1)).sum(-1)


def update_naive_exp(m, s, block):
    """Sums plain exps: overflows for large scores."""
    new_m = torch.maximum(m, block.amax(-1))
    total = torch.where(torch.isinf(m), torch.zeros_like(s), s * torch.exp(m)) + torch.exp(block).sum(-1)
    return new_m, total / torch.exp(new_m)


def update_global_max(m, s, block):
    """One maximum for all rows."""
    new_m = torch.maximum(m, block.amax(-1))
    top = new_m.max()
    scale = torch.where(torch.isinf(m), torch.zeros_like(m), torch.exp(m - top))
    return new_m, (s * scale + torch.exp(block - top).sum(-1)) * torch.exp(top - new_m)


def update_in_place(m, s, block):
    new_m = torch.maximum(m, block.amax(-1))
    safe = torch.where(torch.isinf(new_m), torch.zeros_like(new_m), new_m)
    block -= safe.unsqueeze(-1)                                           # the caller's block changes
    return new_m, s * torch.exp(m - safe) + torch.exp(block).sum(-1)


# --------------------------------------------------------------------------- exercise 3: tiled attention


def tiled_float64_numpy(q, k, v, block):
    """float64 inside, NumPy arrays returned, a list instead of a tuple."""
    q, k, v = q.double() / math.sqrt(q.shape[-1]), k.double(), v.double()
    m = torch.full(q.shape[:-1], float("-inf"), dtype=torch.float64)
    s = torch.zeros(q.shape[:-1], dtype=torch.float64)
    acc = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=torch.float64)
    for start in range(0, k.shape[-2], block):
        sc = q @ k[..., start:start + block, :].transpose(-2, -1)
        new_m = torch.maximum(m, sc.amax(-1))
        scale = torch.exp(m - new_m)
        p = torch.exp(sc - new_m.unsqueeze(-1))
        s, acc, m = s * scale + p.sum(-1), acc * scale.unsqueeze(-1) + p @ v[..., start:start + block, :], new_m
    return [(acc / s.unsqueeze(-1)).numpy(), (m + torch.log(s)).numpy()]


def tiled_two_pass(q, k, v, block):
    """First pass over the blocks for the log-sum-exp, second pass for the output with the final weights."""
    q = q / math.sqrt(q.shape[-1])
    lse = torch.full(q.shape[:-1], float("-inf"), dtype=q.dtype)
    for start in range(0, k.shape[-2], block):
        lse = torch.logaddexp(lse, torch.logsumexp(q @ k[..., start:start + block, :].transpose(-2, -1), -1))
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for start in range(0, k.shape[-2], block):
        w = torch.exp(q @ k[..., start:start + block, :].transpose(-2, -1) - lse.unsqueeze(-1))
        out = out + w @ v[..., start:start + block, :]
    return out, lse


def tiled_unscaled(q, k, v, block):
    scores = q @ k.transpose(-2, -1)
    return torch.softmax(scores, -1) @ v, torch.logsumexp(scores, -1)


def tiled_lse_unscaled(q, k, v, block):
    scores = q @ k.transpose(-2, -1)
    return torch.softmax(scores / math.sqrt(q.shape[-1]), -1) @ v, torch.logsumexp(scores, -1)


def tiled_no_rescale(q, k, v, block):
    """Keeps a running max but forgets to rescale the output accumulated so far."""
    q = q / math.sqrt(q.shape[-1])
    m = torch.full(q.shape[:-1], float("-inf"), dtype=q.dtype)
    s = torch.zeros(q.shape[:-1], dtype=q.dtype)
    acc = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for start in range(0, k.shape[-2], block):
        sc = q @ k[..., start:start + block, :].transpose(-2, -1)
        new_m = torch.maximum(m, sc.amax(-1))
        scale = torch.exp(m - new_m)
        p = torch.exp(sc - new_m.unsqueeze(-1))
        s, acc, m = s * scale + p.sum(-1), acc + p @ v[..., start:start + block, :], new_m
    return acc / s.unsqueeze(-1), m + torch.log(s)


def tiled_naive_exp(q, k, v, block):
    """No running max at all: exps of the raw scores overflow."""
    q = q / math.sqrt(q.shape[-1])
    s = torch.zeros(q.shape[:-1], dtype=q.dtype)
    acc = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for start in range(0, k.shape[-2], block):
        p = torch.exp(q @ k[..., start:start + block, :].transpose(-2, -1))
        s, acc = s + p.sum(-1), acc + p @ v[..., start:start + block, :]
    return acc / s.unsqueeze(-1), torch.log(s)


def tiled_drops_last_block(q, k, v, block):
    """Only whole blocks: the last, shorter block of keys is lost."""
    n = (k.shape[-2] // block) * block or k.shape[-2]
    return tiled_two_pass(q, k[..., :n, :], v[..., :n, :], block)


def tiled_scales_in_place(q, k, v, block):
    q /= math.sqrt(q.shape[-1])                                             # the caller's q changes
    scores = q @ k.transpose(-2, -1)
    return torch.softmax(scores, -1) @ v, torch.logsumexp(scores, -1)


ANSWERS = {
    "09.sliding_window_mask": [
        right("tril and tril(-window)", window_tril_triu),
        right("NumPy 0/1 ints from loops", window_numpy_ints),
        wrong("window + 1 keys", window_one_too_many, breaks="query i may attend to keys"),
        wrong("not causal", window_not_causal, breaks="query i may attend to keys"),
        wrong("transposed", window_transposed, breaks="query i may attend to keys"),
        wrong("inverted", window_inverted, breaks="query i may attend to keys"),
        wrong("n hard-coded to 8", window_example_size, breaks="other sizes"),
        wrong("window taken modulo n", window_clamped_wrong, breaks="other sizes"),
    ],
    "09.online_softmax": [
        right("float64 NumPy", update_numpy),
        right("log space, lists", update_logaddexp),
        wrong("old sum not rescaled", update_no_rescale, breaks="rescales the old sum"),
        wrong("nan on the first block", update_nan_at_start, breaks="the first block"),
        wrong("the block's max only", update_block_max_only, breaks="rescales the old sum"),
        wrong("plain exps", update_naive_exp, breaks="scores in the thousands"),
        wrong("one max for all rows", update_global_max, breaks="scores in the thousands"),
        wrong("block shifted in place", update_in_place, breaks="leaves its inputs unchanged"),
    ],
    "09.tiled_attention": [
        right("float64 NumPy, a list", tiled_float64_numpy),
        right("two passes over the blocks", tiled_two_pass),
        wrong("no 1/sqrt(d)", tiled_unscaled, breaks="the output equals exact attention"),
        wrong("lse of the unscaled scores", tiled_lse_unscaled, breaks="the log-sum-exp of each query"),
        wrong("output not rescaled", tiled_no_rescale, breaks="the output equals exact attention"),
        wrong("no running max", tiled_naive_exp, breaks="scores in the thousands"),
        wrong("last block dropped", tiled_drops_last_block, breaks="the output equals exact attention"),
        wrong("q scaled in place", tiled_scales_in_place, breaks="leaves its inputs unchanged"),
    ],
    "09.predict": [
        right("a tuple of floats", lambda: (256.0, 1 / 64)),
        right("NumPy scalars in a list", lambda: [np.float64(256), np.float32(0.0156)]),
        wrong("bytes, not MiB", lambda: (8192 * 8192 * 4, 64 * 64 * 4), breaks="the score matrix of one head"),
        wrong("numbers, not bytes", lambda: (64.0, 1 / 256), breaks="the score matrix of one head"),
        wrong("tile in KiB", lambda: (256.0, 16.0), breaks="one 64 x 64 tile"),
        wrong("one number", lambda: 256.0, breaks="two numbers"),
    ],
}
