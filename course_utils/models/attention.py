"""Attention's three steps as lesson 02 builds them: score, normalise (a stable masked softmax), aggregate.

Later lessons import these finished versions; tests/test_attention.py checks that they agree with
torch's own functions and with the definitions written in lesson 02.

Shapes: ... any leading (batch, head) dimensions, m queries, n keys, d key size, d_v value size.
Masks are boolean and True means "may attend" (keep); they broadcast against the (..., m, n) scores.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def _require_tensor(name: str, x, min_dim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(x.shape)}")


def require_bool_mask(mask) -> None:
    """Raise a TypeError unless mask is a bool tensor (the course's masks: True = may attend)."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor (True = may attend), got {got}")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """Softmax of `scores` along `dim` over the entries where `mask` is True.

    The maximum is subtracted first, so large scores cannot overflow. A slice whose entries are all
    masked gets weights of 0 everywhere (rather than the NaN that exp(-inf)/0 would give).
    """
    _require_tensor("scores", scores, 1)
    if mask is None:
        return torch.softmax(scores, dim=dim)
    require_bool_mask(mask)
    try:
        filled = scores.masked_fill(~mask, float("-inf"))
    except RuntimeError as err:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast against scores of shape "
                         f"{tuple(scores.shape)}") from err
    top = filled.amax(dim=dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))   # all-masked slice: subtract 0
    e = torch.exp(filled - top)                                          # masked entries: exp(-inf) = 0
    return e / e.sum(dim=dim, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """q (..., m, d), k (..., n, d), v (..., n, d_v), mask broadcastable to (..., m, n), True = keep.

    Returns (output (..., m, d_v), weights (..., m, n)). A query whose keys are all masked gets an
    output of zeros.
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        _require_tensor(name, x, 2)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share their last (feature) size, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of positions (dim -2), got k {tuple(k.shape)} "
                         f"and v {tuple(v.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (..., m, n)
    weights = masked_softmax(scores, mask, dim=-1)              # (..., m, n)
    return weights @ v, weights                                 # (..., m, d_v)


class DotScore(nn.Module):
    """score(q, k) = q . k"""

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:   # (..., m, d), (..., n, d) -> (..., m, n)
        return q @ k.transpose(-2, -1)


class ScaledDotScore(nn.Module):
    """score(q, k) = q . k / sqrt(d)"""

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])


class GeneralScore(nn.Module):
    """Luong's general (bilinear) score: q^T W k."""

    def __init__(self, d_q: int, d_k: int):
        super().__init__()
        self.W = nn.Parameter(torch.randn(d_q, d_k) / math.sqrt(d_q))

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return q @ self.W @ k.transpose(-2, -1)


class AdditiveScore(nn.Module):
    """Bahdanau's additive score: v^T tanh(W_q q + W_k k)."""

    def __init__(self, d_q: int, d_k: int, hidden: int):
        super().__init__()
        self.W_q = nn.Linear(d_q, hidden, bias=False)
        self.W_k = nn.Linear(d_k, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        # (..., m, 1, h) + (..., 1, n, h) -> (..., m, n, h): every query paired with every key
        pair = torch.tanh(self.W_q(q).unsqueeze(-2) + self.W_k(k).unsqueeze(-3))
        return self.v(pair).squeeze(-1)                                     # (..., m, n)
