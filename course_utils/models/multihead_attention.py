"""Multi-head attention as lesson 06 builds it; later lessons (graph attention, NTM, efficient attention) import it.

    head_i = Attention(Q W_q^i, K W_k^i, V W_v^i),    MultiHead(Q, K, V) = [head_1; ...; head_h] W_o

The h projections of size d_model -> d_head (d_head = d_model / h) are stored side by side in one
(d_model, d_model) linear layer each for queries, keys and values; ``split_heads`` cuts their output
into h slices and ``merge_heads`` glues the heads' outputs back together.

Shapes: B batch, h heads, m queries, n keys, d = d_model, d_head = d / h.
Masks are boolean, True = may attend (the course's convention; torch.nn.MultiheadAttention uses the
opposite). There are two, as in torch:

- ``key_padding_mask`` (B, n): which keys of each sentence are real, exactly the shape that
  ``masks.padding_mask(lengths, n)`` returns;
- ``mask``: any mask that broadcasts against the (B, h, m, n) scores: (m, n) shared by the batch
  (a causal mask), or 4-D, e.g. (B, 1, m, n), (B, 1, 1, n), (1, h, m, n).

Shapes that could be read two ways are refused rather than guessed: a 3-D mask ((B, m, n) would
broadcast as (1, B, m, n), i.e. against the heads), and a 2-D ``mask`` whose first size equals the
batch size B > 1 (with B = m, a (B, n) padding mask and an (m, n) per-query mask look alike; pass
the first as ``key_padding_mask``, the second as ``mask[None, None]``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention import require_bool_mask, scaled_dot_product_attention


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, n, d) -> (B, h, n, d / h): head i gets features i * d_head ... (i + 1) * d_head - 1."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"split_heads expects a (batch, length, d_model) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(n_heads, int) or isinstance(n_heads, bool) or n_heads < 1:
        raise ValueError(f"n_heads must be a positive int, got {n_heads!r}")
    B, n, d = x.shape
    if d % n_heads:
        raise ValueError(f"d_model = {d} is not divisible by n_heads = {n_heads}")
    return x.view(B, n, n_heads, d // n_heads).transpose(1, 2)   # (B, n, h, d_head) -> (B, h, n, d_head)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, h, n, d_head) -> (B, n, h * d_head), the inverse of split_heads."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"merge_heads expects a (batch, heads, length, d_head) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    B, h, n, d_head = x.shape
    return x.transpose(1, 2).reshape(B, n, h * d_head)            # (B, n, h, d_head) -> (B, n, d)


def _combine_masks(mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
                   B: int, m: int, n: int) -> torch.Tensor | None:
    """Check both masks against (B, h, m, n) scores and return one mask that broadcasts against them."""
    if mask is not None:
        require_bool_mask(mask)
        if mask.dim() == 3:
            raise ValueError(f"a 3-D mask {tuple(mask.shape)} is ambiguous: (B, m, n) would broadcast against the "
                             f"heads, not the batch; add the head dimension with mask[:, None] -> (B, 1, m, n)")
        if mask.dim() not in (2, 4):
            raise ValueError(f"mask must be (m, n) or (B or 1, h or 1, m or 1, n), got shape {tuple(mask.shape)}")
        if mask.dim() == 2:
            if mask.shape[0] not in (1, m) or mask.shape[1] != n:
                hint = (" A (B, n) padding mask goes in key_padding_mask=." if tuple(mask.shape) == (B, n) else "")
                raise ValueError(f"a 2-D mask is one (m, n) = ({m}, {n}) mask shared by the batch, got shape "
                                 f"{tuple(mask.shape)}.{hint}")
            if mask.shape[0] == B > 1:
                raise ValueError(f"a 2-D mask of shape {tuple(mask.shape)} is ambiguous here because the batch size "
                                 f"equals the number of queries ({B}): it could be a (B, n) key padding mask or an "
                                 f"(m, n) mask shared by the batch. Pass a padding mask as key_padding_mask=..., a "
                                 f"shared (m, n) mask as mask[None, None] (shape (1, 1, m, n))")
    if key_padding_mask is not None:
        require_bool_mask(key_padding_mask)
        if tuple(key_padding_mask.shape) != (B, n):
            raise ValueError(f"key_padding_mask must be (B, n) = ({B}, {n}), True at the real keys, got shape "
                             f"{tuple(key_padding_mask.shape)}")
        keys = key_padding_mask[:, None, None, :]                      # (B, 1, 1, n): broadcast over heads, queries
        mask = keys if mask is None else mask & keys
    return mask


class MultiHeadAttention(nn.Module):
    """h scaled dot-product attentions over learned projections, concatenated and projected back.

    forward(query (B, m, d), key (B, n, d), value (B, n, d), mask=None, key_padding_mask=None)
    -> (out (B, m, d), weights (B, h, m, n)). Both masks are bool, True = may attend:
    ``key_padding_mask`` (B, n) marks the real keys of each sentence (``padding_mask(lengths, n)``);
    ``mask`` is (m, n) shared by the batch, or 4-D broadcastable to (B, h, m, n). A key is attended
    to where both allow it. The weights are the softmax before dropout (dropout acts on them only in
    training mode).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model < 1 or n_heads < 1 or d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a positive multiple of n_heads ({n_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        for name, x in (("query", query), ("key", key), ("value", value)):
            if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model:
                raise ValueError(f"{name} must be (batch, length, {self.d_model}), got "
                                 f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"query {tuple(query.shape)}, key {tuple(key.shape)} and value {tuple(value.shape)} "
                             f"must share the batch size, and key and value the length")
        mask = _combine_masks(mask, key_padding_mask, query.shape[0], query.shape[1], key.shape[1])
        q = split_heads(self.W_q(query), self.n_heads)   # (B, h, m, d_head)
        k = split_heads(self.W_k(key), self.n_heads)     # (B, h, n, d_head)
        v = split_heads(self.W_v(value), self.n_heads)   # (B, h, n, d_head)
        if self.training and self.dropout.p > 0:
            _, weights = scaled_dot_product_attention(q, k, v, mask)    # (B, h, m, n)
            heads = self.dropout(weights) @ v                           # (B, h, m, d_head)
        else:
            heads, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(merge_heads(heads)), weights    # (B, m, d), (B, h, m, n)


def to_torch_multihead(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """A torch.nn.MultiheadAttention (batch_first=True) holding the same weights as ``mha``.

    torch keeps the three input projections stacked in one (3d, d) matrix ``in_proj_weight`` (queries,
    then keys, then values) and the output projection in ``out_proj``.
    """
    if not isinstance(mha, MultiHeadAttention):
        raise TypeError(f"expected a course MultiHeadAttention, got {type(mha).__name__}")
    bias = mha.W_q.bias is not None
    ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, dropout=mha.dropout.p, bias=bias, batch_first=True)
    ref = ref.to(device=mha.W_q.weight.device, dtype=mha.W_q.weight.dtype)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.W_q.weight, mha.W_k.weight, mha.W_v.weight]))
        ref.out_proj.weight.copy_(mha.W_o.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([mha.W_q.bias, mha.W_k.bias, mha.W_v.bias]))
            ref.out_proj.bias.copy_(mha.W_o.bias)
    return ref.train(mha.training)
