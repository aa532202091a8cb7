"""Rotary position embeddings (RoPE), as lesson 05 builds them.

Instead of adding a position vector to the token embeddings, RoPE rotates each query and key by an
angle proportional to its position. Features are taken in pairs (2i, 2i+1), the same layout as the
sinusoidal table of ``positional.py``; pair i at position p turns by the angle p * base^(-2i/d).
A query at position m and a key at position n then score q_m . k_n = f(q, k, m - n): only the offset
between them matters.
"""

from __future__ import annotations

import torch


def rotary_angles(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """(n,) positions -> (n, dim // 2) angles, angle[p, i] = positions[p] * base^(-2i/dim)."""
    if int(dim) < 2 or int(dim) % 2:
        raise ValueError(f"dim must be a positive even number (features are rotated in pairs), got {dim}")
    if not isinstance(positions, torch.Tensor) or positions.dim() != 1:
        got = tuple(positions.shape) if isinstance(positions, torch.Tensor) else type(positions).__name__
        raise ValueError(f"positions must be a 1-D tensor with one position per token, got {got}")
    if not float(base) > 1.0:
        raise ValueError(f"base must be greater than 1, got {base}")
    inv_freq = float(base) ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) / dim)  # (d/2,)
    return positions.to(torch.float32).unsqueeze(1) * inv_freq                                              # (n, d/2)


def apply_rotary(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0) -> torch.Tensor:
    """Rotate the feature pairs of x (..., n, d) by their positions' angles; returns the same shape.

    ``positions`` (n,) defaults to 0, 1, ..., n-1. Pair (x[2i], x[2i+1]) becomes
    (x[2i] cos a - x[2i+1] sin a,  x[2i] sin a + x[2i+1] cos a) with a = rotary_angles(...)[p, i].
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (..., n, d) with at least 2 dimensions, got {got}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    n, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(n, device=x.device)
    elif not isinstance(positions, torch.Tensor) or positions.dim() != 1 or positions.shape[0] != n:
        got = tuple(positions.shape) if isinstance(positions, torch.Tensor) else type(positions).__name__
        raise ValueError(f"positions must be a 1-D tensor of length n={n} (one per token), got {got}")
    angle = rotary_angles(positions.to(x.device), d, base)        # (n, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)  # (n, d/2)
    even, odd = x[..., 0::2], x[..., 1::2]                       # (..., n, d/2) each
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out
