"""Single-head self-attention, as lesson 05 builds it; later lessons import it.

A sequence attends over itself: the queries, keys and values are three learned linear maps of the
same token vectors x (B, n, d_model),

    Q = x W_q,  K = x W_k,  V = x W_v,   out = softmax(Q K^T / sqrt(d_k)) V.

Without position information the layer is permutation equivariant (permuting the tokens permutes
the outputs), so order must be added: to the inputs (``positional.py``) or, for
``RotarySelfAttention``, by rotating queries and keys (``rotary.py``).

Masks are boolean, True = may attend. There are two, as in torch:

- ``key_padding_mask`` (B, n): the real tokens of each sequence, exactly what
  ``masks.padding_mask(lengths, n)`` returns;
- ``mask``: a 2-D (n, n) mask shared by the whole batch (e.g. ``masks.causal_mask(n)``), or a 3-D
  (B or 1, n or 1, n) one, e.g. a padding mask with a query dimension ``padding_mask(lengths, n)[:, None, :]``.

A key is attended to where both allow it. A 2-D ``mask`` is refused when the batch size equals n > 1,
since a (B, n) padding mask would then look exactly like an (n, n) one: pass it as
``key_padding_mask``, or a shared mask as ``mask[None]``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention import require_bool_mask, scaled_dot_product_attention
from .rotary import apply_rotary


def _combine_masks(mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
                   B: int, n: int) -> torch.Tensor | None:
    """Check both masks against (B, n, n) scores; return one mask that broadcasts against them."""
    if mask is not None:
        require_bool_mask(mask)
        if mask.dim() == 2:
            ok = tuple(mask.shape) == (n, n)
        elif mask.dim() == 3:
            ok = mask.shape[0] in (1, B) and mask.shape[1] in (1, n) and mask.shape[2] == n
        else:
            ok = False
        if not ok:
            raise ValueError(f"mask must be ({n}, {n}) (shared by the batch) or ({B} or 1, {n} or 1, {n}) for "
                             f"x of shape ({B}, {n}, ...); got {tuple(mask.shape)}. A padding mask (B, n) on the "
                             f"keys goes in key_padding_mask= (or needs a query dimension: mask[:, None, :])")
        if mask.dim() == 2 and B == n > 1:
            raise ValueError(f"a 2-D mask of shape {tuple(mask.shape)} is ambiguous here because the batch size "
                             f"equals the length ({n}): it could be a (B, n) key padding mask or an (n, n) mask "
                             f"shared by the batch. Pass a padding mask as key_padding_mask=..., a shared mask as "
                             f"mask[None] (shape (1, n, n))")
    if key_padding_mask is not None:
        require_bool_mask(key_padding_mask)
        if tuple(key_padding_mask.shape) != (B, n):
            raise ValueError(f"key_padding_mask must be (B, n) = ({B}, {n}), True at the real tokens, got shape "
                             f"{tuple(key_padding_mask.shape)}")
        keys = key_padding_mask[:, None, :]                            # (B, 1, n): the same for every query
        mask = keys if mask is None else mask & keys
    return mask


class SelfAttention(nn.Module):
    """x (B, n, d_model) -> (out (B, n, d_v), weights (B, n, n)); d_k and d_v default to d_model.

    forward(x, mask=None, key_padding_mask=None): both masks bool, True = may attend;
    ``key_padding_mask`` (B, n) marks the real tokens, ``mask`` is (n, n) or (B or 1, n or 1, n).
    """

    def __init__(self, d_model: int, d_k: int | None = None, d_v: int | None = None, bias: bool = False):
        super().__init__()
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        for name, value in (("d_model", d_model), ("d_k", d_k), ("d_v", d_v)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.d_model, self.d_k, self.d_v = d_model, d_k, d_v
        self.W_q = nn.Linear(d_model, d_k, bias=bias)
        self.W_k = nn.Linear(d_model, d_k, bias=bias)
        self.W_v = nn.Linear(d_model, d_v, bias=bias)

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where position enters the scores; plain self-attention leaves q and k alone."""
        return q, k

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be (batch, length, d_model={self.d_model}), got {got}")
        B, n, _ = x.shape
        mask = _combine_masks(mask, key_padding_mask, B, n)
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)     # (B, n, d_k), (B, n, d_k), (B, n, d_v)
        q, k = self.rotate(q, k)
        return scaled_dot_product_attention(q, k, v, mask)  # (B, n, d_v), (B, n, n)


class RotarySelfAttention(SelfAttention):
    """Self-attention with rotary position embeddings: queries and keys are rotated by their positions
    (``rotary.apply_rotary``) before scoring, so the scores depend on the offset between positions."""

    def __init__(self, d_model: int, d_k: int | None = None, d_v: int | None = None, bias: bool = False,
                 base: float = 10000.0):
        super().__init__(d_model, d_k, d_v, bias)
        if self.d_k % 2:
            raise ValueError(f"rotary attention rotates feature pairs: d_k must be even, got {self.d_k}")
        self.base = float(base)

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return apply_rotary(q, base=self.base), apply_rotary(k, base=self.base)
