"""Boolean attention masks, True = may attend. Lesson 05 builds them; later lessons import them."""

from __future__ import annotations

import torch


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) integer lengths -> (B, n) bool, True at the first lengths[b] positions of row b."""
    if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1:
        raise ValueError(f"lengths must be a 1-D tensor with one length per sequence, got "
                         f"{tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    on_meta = lengths.device.type == "meta"            # shapes only, no values: nothing to check
    if max_len is None and on_meta:
        raise ValueError("lengths on the meta device have no values: pass max_len")
    n = int(lengths.max()) if max_len is None else int(max_len)
    if lengths.numel() and not on_meta and (int(lengths.min()) < 0 or int(lengths.max()) > n):
        raise ValueError(f"lengths must lie in 0..{n}, got {lengths.tolist()}")
    return torch.arange(n, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)   # (B, n)


def causal_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, n) bool, True on and below the diagonal: position i may attend to positions 0..i."""
    if int(n) < 1:
        raise ValueError(f"n must be a positive number of positions, got {n}")
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def attention_mask(key_lengths: torch.Tensor, n_queries: int, n_keys: int | None = None, *,
                   causal: bool = False) -> torch.Tensor:
    """Combine padding (on the keys) and, optionally, causality into one (B, 1, m, n) mask.

    The singleton dimension is the head dimension, so the mask broadcasts over heads.
    """
    keys = padding_mask(key_lengths, n_keys)[:, None, None, :]                 # (B, 1, 1, n)
    if not causal:
        return keys.expand(-1, 1, n_queries, -1)                              # (B, 1, m, n)
    if n_queries != keys.shape[-1]:
        raise ValueError(f"a causal mask needs as many queries as keys, got {n_queries} and {keys.shape[-1]}")
    return keys & causal_mask(n_queries, device=key_lengths.device)            # (B, 1, n, n)
