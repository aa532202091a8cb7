"""Cheaper attention as lesson 09 builds it: sliding windows, linear attention, the online softmax, a
FlashAttention-style tiled forward pass, and the KV cache for autoregressive decoding.

Every function here computes something that ``attention.scaled_dot_product_attention`` also computes
(exactly, or for a stated subset of keys), with less memory or less work; tests/test_efficient_attention.py
proves each equal to the exact version where it should be.

Shapes: ... any leading (batch, head) dimensions, n positions (queries = keys in self-attention), m
queries and n keys where they may differ, d key size, d_v value size, w window, r feature size of a
kernel feature map. Masks are boolean, True = may attend (the course's convention).

Causal masks with m queries and n >= m keys are aligned at the end ("bottom right"): query i is the
token at position i + (n - m) and may attend to keys 0 .. i + (n - m). With m = n that is the usual
causal mask; with m = 1 it is one new token that sees every cached key (decoding with a KV cache).
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .attention import masked_softmax, scaled_dot_product_attention
from .masks import causal_mask
from .multihead_attention import MultiHeadAttention, merge_heads, split_heads


def _check_qkv(q, k, v) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"{name} must be a tensor (..., length, features), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"q (..., m, d), k (..., n, d), v (..., n, d_v) expected, got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- exact attention, with its log-sum-exp


def end_aligned_causal_mask(m: int, n: int, device=None) -> torch.Tensor:
    """(m, n) bool: query i (the token at position i + n - m) may attend to keys 0 .. i + n - m.

    Shapes: m queries, n >= m keys. With m = n this is ``masks.causal_mask(n)``.
    """
    if n < m:
        raise ValueError(f"a causal mask needs at least as many keys as queries, got m = {m}, n = {n}")
    i = torch.arange(m, device=device).unsqueeze(1)
    j = torch.arange(n, device=device).unsqueeze(0)
    return j <= i + (n - m)


def attention_with_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (naive) attention that also returns the log-sum-exp of each query's scaled scores.

    Shapes: q (..., m, d), k (..., n, d), v (..., n, d_v) -> out (..., m, d_v), lse (..., m), where
    lse_i = log sum_j exp(q_i . k_j / sqrt(d)) over the keys query i may see. The whole (m, n) score
    matrix is materialised: this is the version whose memory grows as n^2.
    """
    _check_qkv(q, k, v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])                  # (..., m, n)
    if causal:
        scores = scores.masked_fill(~end_aligned_causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)                                       # (..., m)
    return torch.exp(scores - lse.unsqueeze(-1)) @ v, lse


# --------------------------------------------------------------------------- sliding-window (local) attention


def sliding_window_mask(n: int, window: int, causal: bool = True, device=None) -> torch.Tensor:
    """(n, n) bool mask of a sliding window, True = may attend.

    causal=True: query i sees the ``window`` most recent keys i - window + 1 .. i (itself included).
    causal=False: query i sees keys j with |i - j| < window (2 window - 1 keys away from the edges).
    A window of n or more covers the whole sequence: the causal mask, or every key.
    Shapes: -> (n, n).
    """
    n, window = _positive_int("n", n), _positive_int("window", window)
    i = torch.arange(n, device=device).unsqueeze(1)
    j = torch.arange(n, device=device).unsqueeze(0)
    near = (i - j).abs() < window
    return near & (j <= i) if causal else near


def banded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal sliding-window attention that computes only the scores inside the band: O(n w) work and memory.

    Query i attends to keys i - window + 1 .. i, exactly as ``scaled_dot_product_attention`` with
    ``sliding_window_mask(n, window)`` does, but without the n x n score matrix: the positions are cut
    into blocks of ``window`` queries, and each block scores only its own block of keys and the one
    before it (2 window keys), so the work is about 2 n window scores instead of n^2.

    Shapes: q (..., n, d), k (..., n, d), v (..., n, d_v) -> (..., n, d_v).
    """
    _check_qkv(q, k, v)
    n, d = q.shape[-2], q.shape[-1]
    if k.shape[-2] != n:
        raise ValueError(f"banded (self-)attention needs as many keys as queries, got {n} and {k.shape[-2]}")
    w = min(_positive_int("window", window), n)
    blocks = -(-n // w)                                                          # ceil(n / w)
    pad = blocks * w - n
    q = F.pad(q, (0, 0, 0, pad))                                                 # (..., blocks*w, d)
    k = F.pad(k, (0, 0, w, pad))                                                 # one empty block in front
    v = F.pad(v, (0, 0, w, pad))
    lead = q.shape[:-2]
    qb = q.reshape(*lead, blocks, w, d)                                          # (..., blocks, w, d)
    kb = k.reshape(*lead, blocks + 1, w, d)
    vb = v.reshape(*lead, blocks + 1, w, v.shape[-1])
    k2 = torch.cat([kb[..., :-1, :, :], kb[..., 1:, :, :]], dim=-2)             # (..., blocks, 2w, d): previous, own
    v2 = torch.cat([vb[..., :-1, :, :], vb[..., 1:, :, :]], dim=-2)             # (..., blocks, 2w, d_v)
    scores = qb @ k2.transpose(-2, -1) / math.sqrt(d)                           # (..., blocks, w, 2w)
    r = torch.arange(w, device=q.device).unsqueeze(1)                            # query's place in its block
    c = torch.arange(2 * w, device=q.device).unsqueeze(0)                        # key's place in the 2w keys
    band = (c > r) & (c <= r + w)                                                # (w, 2w): i - j in 0 .. w - 1
    first = torch.arange(blocks, device=q.device).view(blocks, 1, 1) == 0
    mask = band & ~(first & (c < w))                                             # (blocks, w, 2w): no keys before 0
    out = masked_softmax(scores, mask) @ v2                                      # (..., blocks, w, d_v)
    return out.reshape(*lead, blocks * w, v.shape[-1])[..., :n, :]


# --------------------------------------------------------------------------- linear attention


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1 (Katharopoulos et al., 2020): positive, so phi(q) . phi(k) can act as a weight.

    Shapes: (..., d) -> (..., d).
    """
    return F.elu(x) + 1


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, feature_map=elu_feature_map,
                     eps: float = 1e-6) -> torch.Tensor:
    """Non-causal linear attention: out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / phi(q_i)^T (sum_j phi(k_j)).

    The sums over the keys are computed once, (r, d_v) and (r,), so the cost is O(n r d_v), linear in n.
    Shapes: q (..., m, d), k (..., n, d), v (..., n, d_v) -> (..., m, d_v).
    """
    _check_qkv(q, k, v)
    fq, fk = feature_map(q), feature_map(k)                                      # (..., m, r), (..., n, r)
    kv = fk.transpose(-2, -1) @ v                                                # (..., r, d_v)
    z = fk.sum(dim=-2)                                                           # (..., r)
    return (fq @ kv) / ((fq @ z.unsqueeze(-1)) + eps)                            # (..., m, d_v)


def linear_attention_weights(q: torch.Tensor, k: torch.Tensor, feature_map=elu_feature_map,
                             causal: bool = False) -> torch.Tensor:
    """The attention weights that linear attention uses implicitly, phi(q_i).phi(k_j) / sum_j' phi(q_i).phi(k_j').

    Materialises the (m, n) matrix (O(n^2)): for looking at, and as the reference that the fast forms
    must equal. Shapes: q (..., m, d), k (..., n, d) -> (..., m, n), rows summing to 1.
    """
    sim = feature_map(q) @ feature_map(k).transpose(-2, -1)                      # (..., m, n), all > 0
    if causal:
        sim = sim * end_aligned_causal_mask(q.shape[-2], k.shape[-2], q.device)
    return sim / sim.sum(dim=-1, keepdim=True)


def causal_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, feature_map=elu_feature_map,
                            chunk: int = 64, eps: float = 1e-6) -> torch.Tensor:
    """Causal linear attention with running sums, S_i = sum_{j<=i} phi(k_j) v_j^T and z_i = sum_{j<=i} phi(k_j):
    out_i = phi(q_i)^T S_i / phi(q_i)^T z_i.

    The running sums are carried from chunk to chunk (``chunk`` positions at a time: inside a chunk the
    few pairs are scored directly, which keeps the work in matrix products), so time and memory grow
    linearly in n: O(n (chunk + d_v) r).
    Shapes: q (..., n, d), k (..., n, d), v (..., n, d_v) -> (..., n, d_v).
    """
    _check_qkv(q, k, v)
    n = q.shape[-2]
    if k.shape[-2] != n:
        raise ValueError(f"causal linear attention needs as many keys as queries, got {n} and {k.shape[-2]}")
    c = min(_positive_int("chunk", chunk), n)
    chunks = -(-n // c)
    pad = chunks * c - n
    fq = F.pad(feature_map(q), (0, 0, 0, pad))                                   # padded keys get phi = 0
    fk = F.pad(feature_map(k), (0, 0, 0, pad))
    v = F.pad(v, (0, 0, 0, pad))
    lead, r, dv = fq.shape[:-2], fq.shape[-1], v.shape[-1]
    fq, fk = fq.reshape(*lead, chunks, c, r), fk.reshape(*lead, chunks, c, r)
    vc = v.reshape(*lead, chunks, c, dv)
    inside = (fq @ fk.transpose(-2, -1)) * causal_mask(c, device=q.device)      # (..., chunks, c, c)
    kv = fk.transpose(-2, -1) @ vc                                               # (..., chunks, r, d_v)
    S = torch.cumsum(kv, dim=-3) - kv                                            # sums over the earlier chunks
    z_chunk = fk.sum(dim=-2)                                                     # (..., chunks, r)
    z = torch.cumsum(z_chunk, dim=-2) - z_chunk
    num = inside @ vc + fq @ S                                                   # (..., chunks, c, d_v)
    den = inside.sum(dim=-1) + (fq @ z.unsqueeze(-1)).squeeze(-1)               # (..., chunks, c)
    out = num / (den.unsqueeze(-1) + eps)
    return out.reshape(*lead, chunks * c, dv)[..., :n, :]


def causal_linear_attention_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                      feature_map=elu_feature_map, eps: float = 1e-6) -> torch.Tensor:
    """The same as ``causal_linear_attention``, one position at a time, as a recurrent network would run it:
    a state (S, z) of fixed size (r, d_v) and (r,), updated by each token. Slow in Python; it shows why
    decoding with linear attention needs no cache that grows with the length.
    Shapes: q (..., n, d), k (..., n, d), v (..., n, d_v) -> (..., n, d_v).
    """
    _check_qkv(q, k, v)
    fq, fk = feature_map(q), feature_map(k)
    S = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], v.shape[-1])                 # (..., r, d_v)
    z = fq.new_zeros(*fq.shape[:-2], fq.shape[-1])                               # (..., r)
    outs = []
    for i in range(q.shape[-2]):
        S = S + fk[..., i, :].unsqueeze(-1) * v[..., i, :].unsqueeze(-2)
        z = z + fk[..., i, :]
        num = (fq[..., i, :].unsqueeze(-2) @ S).squeeze(-2)                      # (..., d_v)
        outs.append(num / ((fq[..., i, :] * z).sum(-1, keepdim=True) + eps))
    return torch.stack(outs, dim=-2)


# --------------------------------------------------------------------------- the online softmax


def online_softmax_update(running_max: torch.Tensor, running_sum: torch.Tensor, block: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the streaming softmax: fold a new block of scores into (max, sum of exp(x - max)).

    Start from running_max = -inf and running_sum = 0. The old sum was taken relative to the old maximum,
    so it is rescaled by exp(old max - new max) before the block's own exps are added. When both maxima
    are -inf (nothing seen yet, or only masked scores) the sum stays 0 instead of becoming nan.
    Shapes: running_max (...), running_sum (...), block (..., b) -> (new max (...), new sum (...)).
    """
    new_max = torch.maximum(running_max, block.amax(dim=-1))
    safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
    new_sum = running_sum * torch.exp(running_max - safe) + torch.exp(block - safe.unsqueeze(-1)).sum(dim=-1)
    return new_max, new_sum


def online_softmax_stats(x: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(max, sum of exp(x - max)) along the last dimension, in one pass over blocks of ``block`` columns.

    Shapes: (..., n) -> ((...), (...)).
    """
    block = _positive_int("block", block)
    m = x.new_full(x.shape[:-1], float("-inf"))
    s = x.new_zeros(x.shape[:-1])
    for start in range(0, x.shape[-1], block):
        m, s = online_softmax_update(m, s, x[..., start:start + block])
    return m, s


def online_logsumexp(x: torch.Tensor, block: int) -> torch.Tensor:
    """log sum exp(x) along the last dimension in one pass over blocks of ``block`` columns.

    Shapes: (..., n) -> (...).
    """
    m, s = online_softmax_stats(x, block)
    return m + torch.log(s)


def online_softmax(x: torch.Tensor, block: int) -> torch.Tensor:
    """softmax(x) along the last dimension: one streaming pass for the max and the sum, one to normalise.

    exp(x - max) / sum rather than exp(x - logsumexp): x - max is exact, while subtracting a large
    log-sum-exp in float32 loses digits. Shapes: (..., n) -> (..., n).
    """
    m, s = online_softmax_stats(x, block)
    return torch.exp(x - m.unsqueeze(-1)) / s.unsqueeze(-1)


# --------------------------------------------------------------------------- FlashAttention-style tiling


def flash_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_q: int = 64,
                            block_k: int = 64, causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact attention computed tile by tile, as FlashAttention's forward pass does (Dao et al., 2022).

    For each block of ``block_q`` queries, the keys and values are read in blocks of ``block_k``; a
    running maximum, a running sum of exps and an unnormalised output are rescaled whenever the
    maximum grows (the online softmax), and divided by the sum at the end. No tensor larger than
    (block_q, block_k) scores is ever made, so the memory beyond q, k, v and the output is O(block_q
    block_k), not O(m n). The log-sum-exp of each query's scores is returned too: it is what the
    backward pass needs to recompute the weights, exp(score - lse).

    causal=True uses the end-aligned causal mask (see the module docstring) and skips the key blocks
    that lie entirely in a query block's future.
    Shapes: q (..., m, d), k (..., n, d), v (..., n, d_v) -> out (..., m, d_v), lse (..., m).
    """
    _check_qkv(q, k, v)
    block_q, block_k = _positive_int("block_q", block_q), _positive_int("block_k", block_k)
    m, n, d = q.shape[-2], k.shape[-2], q.shape[-1]
    if causal and n < m:
        raise ValueError(f"causal attention needs at least as many keys as queries, got m = {m}, n = {n}")
    shift = n - m
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    lse = q.new_empty(q.shape[:-1])
    for qs in range(0, m, block_q):
        qe = min(qs + block_q, m)
        qb = q[..., qs:qe, :] / math.sqrt(d)                                     # (..., bq, d)
        row_max = qb.new_full(qb.shape[:-1], float("-inf"))                      # (..., bq)
        row_sum = qb.new_zeros(qb.shape[:-1])
        acc = qb.new_zeros(*qb.shape[:-1], v.shape[-1])                          # (..., bq, d_v)
        k_end = min(n, qe + shift) if causal else n                              # later keys: all in the future
        for ks in range(0, k_end, block_k):
            ke = min(ks + block_k, k_end)
            s = qb @ k[..., ks:ke, :].transpose(-2, -1)                          # (..., bq, bk): one tile
            if causal and ke - 1 > qs + shift:                                   # the tile crosses the diagonal
                i = torch.arange(qs, qe, device=q.device).unsqueeze(1)
                j = torch.arange(ks, ke, device=q.device).unsqueeze(0)
                s = s.masked_fill(j > i + shift, float("-inf"))
            new_max = torch.maximum(row_max, s.amax(dim=-1))
            safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
            p = torch.exp(s - safe.unsqueeze(-1))                                # (..., bq, bk)
            scale = torch.exp(row_max - safe)                                    # rescales what came before
            row_sum = row_sum * scale + p.sum(dim=-1)
            acc = acc * scale.unsqueeze(-1) + p @ v[..., ks:ke, :]
            row_max = new_max
        out[..., qs:qe, :] = acc / row_sum.unsqueeze(-1)
        lse[..., qs:qe] = row_max + torch.log(row_sum)
    return out, lse


class TensorMemoryMeter(TorchDispatchMode):
    """Counts the memory of the tensors that torch operations create while the meter is on.

    ``with TensorMemoryMeter() as meter: ...`` then read ``meter.peak_bytes`` (the most bytes alive at
    once among the tensors made inside the block, inputs not counted), ``meter.largest_bytes`` (the
    largest single tensor) and ``meter.total_bytes`` (everything allocated). It sees every operation's
    output on any device, but not the scratch memory a fused kernel uses inside itself. On a GPU,
    ``torch.cuda.max_memory_allocated`` measures the allocator's true peak as well.
    """

    def __init__(self):
        super().__init__()
        self.live_bytes = self.peak_bytes = self.largest_bytes = self.total_bytes = 0
        self._alive: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self._alive:                                  # a view of a tensor already counted
                continue
            self._alive[key] = size
            self.live_bytes += size
            self.total_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            self.largest_bytes = max(self.largest_bytes, size)
            weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.live_bytes -= self._alive.pop(key, 0)


def loglog_slope(sizes, values) -> float:
    """The slope of the least-squares line through (log size, log value): 2 for values that grow as size^2."""
    x = torch.log(torch.as_tensor(sizes, dtype=torch.float64))
    y = torch.log(torch.as_tensor(values, dtype=torch.float64))
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x * x).sum())


# --------------------------------------------------------------------------- the KV cache


class KVCache:
    """The keys and values of the tokens generated so far, kept for the next decoding steps.

    Memory for ``max_len`` positions is allocated at the first ``append`` (no copying as it grows);
    ``append`` writes the new keys and values after the old ones and returns views of everything
    stored. Shapes: append(k (B, h, t, d_head), v (B, h, t, d_v)) -> (k (B, h, length, d_head),
    v (B, h, length, d_v)).
    """

    def __init__(self, max_len: int):
        self.max_len = _positive_int("max_len", max_len)
        self.length = 0
        self.k = self.v = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = k.shape[-2]
        if self.length + t > self.max_len:
            raise ValueError(f"the cache holds at most {self.max_len} positions; {self.length} + {t} do not fit")
        if self.k is None:
            self.k = k.new_empty(*k.shape[:-2], self.max_len, k.shape[-1])
            self.v = v.new_empty(*v.shape[:-2], self.max_len, v.shape[-1])
        self.k[..., self.length:self.length + t, :] = k
        self.v[..., self.length:self.length + t, :] = v
        self.length += t
        return self.k[..., :self.length, :], self.v[..., :self.length, :]


def cached_self_attention(mha: MultiHeadAttention, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Causal self-attention of t new tokens over the cached ones and themselves, with mha's weights.

    Only the new tokens are projected; their keys and values are appended to the cache, and each new
    token attends to every earlier token and to the new ones up to itself (the end-aligned causal mask).
    Shapes: x (B, t, d_model) -> (B, t, d_model).
    """
    q = split_heads(mha.W_q(x), mha.n_heads)                                     # (B, h, t, d_head)
    k, v = cache.append(split_heads(mha.W_k(x), mha.n_heads), split_heads(mha.W_v(x), mha.n_heads))
    mask = end_aligned_causal_mask(x.shape[1], k.shape[-2], x.device)            # (t, length)
    heads, _ = scaled_dot_product_attention(q, k, v, mask)                       # (B, h, t, d_head)
    return mha.W_o(merge_heads(heads))


class TinyDecoder(nn.Module):
    """A small decoder-only Transformer (pre-norm blocks of the course's MultiHeadAttention and a
    feed-forward layer) that can run with or without a KV cache.

    forward(ids (B, t), caches=None) -> logits (B, t, vocab). Without caches the t tokens are the whole
    sequence (causal mask); with ``caches`` (one KVCache per layer, from ``new_caches``) they are the
    next t tokens after the ones already cached.
    """

    def __init__(self, vocab: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2, max_len: int = 1024):
        super().__init__()
        self.max_len = max_len
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(max_len, d_model)
        self.attn = nn.ModuleList(MultiHeadAttention(d_model, n_heads) for _ in range(n_layers))
        self.norm1 = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.norm2 = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.ffn = nn.ModuleList(nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                               nn.Linear(4 * d_model, d_model)) for _ in range(n_layers))
        self.norm_out = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def new_caches(self) -> list[KVCache]:
        return [KVCache(self.max_len) for _ in self.attn]

    def forward(self, ids: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        start = caches[0].length if caches else 0
        t = ids.shape[1]
        if start + t > self.max_len:
            raise ValueError(f"at most {self.max_len} positions, got {start + t}")
        x = self.embed(ids) + self.position(torch.arange(start, start + t, device=ids.device))
        for i, attn in enumerate(self.attn):
            h = self.norm1[i](x)
            if caches is None:
                a, _ = attn(h, h, h, mask=causal_mask(t, device=ids.device))
            else:
                a = cached_self_attention(attn, h, caches[i])
            x = x + a
            x = x + self.ffn[i](self.norm2[i](x))
        return self.head(self.norm_out(x))

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, steps: int, use_cache: bool = True) -> torch.Tensor:
        """Greedy decoding: prompt (B, t) -> (B, t + steps). Without the cache every step runs the whole
        sequence again; with it, every step runs one token."""
        ids = prompt
        caches = self.new_caches() if use_cache else None
        step_input = prompt
        for _ in range(steps):
            logits = self(step_input, caches) if use_cache else self(ids)
            nxt = logits[:, -1].argmax(dim=-1, keepdim=True)                     # (B, 1)
            ids = torch.cat([ids, nxt], dim=1)
            step_input = nxt
        return ids


# --------------------------------------------------------------------------- a task that needs sharp attention


def recall_batch(batch: int, pairs: int, n_keys: int, n_values: int, generator: torch.Generator | None = None,
                 device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Associative recall: ``pairs`` (key, value) pairs with distinct keys, and a query that repeats one key;
    the answer is that key's value. Attention must put its weight on one pair out of ``pairs``.

    Shapes: -> keys (batch, pairs), values (batch, pairs), query (batch,), target (batch,), all int64.
    """
    keys = torch.rand(batch, n_keys, generator=generator).argsort(dim=-1)[:, :pairs]
    values = torch.randint(0, n_values, (batch, pairs), generator=generator)
    which = torch.randint(0, pairs, (batch, 1), generator=generator)
    out = keys, values, keys.gather(1, which).squeeze(1), values.gather(1, which).squeeze(1)
    return tuple(x.to(device) for x in out)


class RecallAttention(nn.Module):
    """One attention layer that answers ``recall_batch``: the query key's embedding attends over the pairs
    (keys from the key embeddings, values from the value embeddings), with softmax or linear attention.

    forward(keys (B, P), values (B, P), query (B,)) -> logits (B, n_values); ``weights(...)`` -> (B, P).
    """

    def __init__(self, n_keys: int, n_values: int, d: int, kind: str = "softmax"):
        super().__init__()
        if kind not in ("softmax", "linear"):
            raise ValueError(f"kind must be 'softmax' or 'linear', got {kind!r}")
        self.kind = kind
        self.key_embed, self.value_embed = nn.Embedding(n_keys, d), nn.Embedding(n_values, d)
        self.W_q, self.W_k, self.W_v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, n_values)

    def _qkv(self, keys, values, query):
        q = self.W_q(self.key_embed(query)).unsqueeze(1)                        # (B, 1, d)
        return q, self.W_k(self.key_embed(keys)), self.W_v(self.value_embed(values))   # (B, P, d) each

    def forward(self, keys, values, query):
        q, k, v = self._qkv(keys, values, query)
        o = scaled_dot_product_attention(q, k, v)[0] if self.kind == "softmax" else linear_attention(q, k, v)
        return self.out(o.squeeze(1))                                            # (B, n_values)

    def weights(self, keys, values, query):
        q, k, v = self._qkv(keys, values, query)
        if self.kind == "softmax":
            return scaled_dot_product_attention(q, k, v)[1].squeeze(1)
        return linear_attention_weights(q, k).squeeze(1)                         # (B, P)
