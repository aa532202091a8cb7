"""Small helpers that lesson checks share to inspect what learner code returned (tensors, their shapes,
their values) and to quote it back in feedback."""

from __future__ import annotations

import torch


def is_tensor(x, shape=None) -> bool:
    """Whether ``x`` is a tensor (of exactly ``shape``, if given)."""
    return isinstance(x, torch.Tensor) and (shape is None or tuple(x.shape) == tuple(shape))


def describe(x) -> str:
    """'shape (2, 3)' for a tensor, else the type's name: what feedback says was returned."""
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def close(got, want: torch.Tensor, atol: float = 1e-5) -> bool:
    """Whether ``got`` is a finite floating tensor of ``want``'s shape and within ``atol`` of it."""
    return (is_tensor(got, want.shape) and got.dtype.is_floating_point and bool(torch.isfinite(got).all())
            and torch.allclose(got.detach().cpu().float(), want.float(), atol=atol))


def rounded(x, nd: int = 3) -> list[float]:
    """The values of a 1-D tensor (or sequence) rounded for quoting in feedback."""
    return [round(float(v), nd) for v in x]
