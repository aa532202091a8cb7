"""A key-value lookup task for hard versus soft attention (lesson 04).

Each example is a small table of ``n_pairs`` (key, value) pairs and a query: "which value sits at the
key that matches the query?" The keys of one table are distinct symbols, the values are drawn
freely (they may repeat), and the query is one of the table's keys, so exactly one position holds
the answer. Attention that lands on that position solves the task; attention anywhere else reads a
value that is right only by chance (1 in ``n_values``).

Example (n_pairs=4)::

    keys   k7 k2 k11 k5      values  v3 v8 v3 v0      query k11   ->   answer v3 (position 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class LookupBatch:
    """keys (B, n) and values (B, n) ids, query (B,) id, target (B,) the answer's value id,
    position (B,) where the matching key sits."""

    keys: torch.Tensor
    values: torch.Tensor
    query: torch.Tensor
    target: torch.Tensor
    position: torch.Tensor

    def to(self, device) -> "LookupBatch":
        return LookupBatch(*(t.to(device) for t in (self.keys, self.values, self.query, self.target, self.position)))

    def __len__(self) -> int:
        return self.keys.shape[0]


@dataclass
class LookupTask:
    """Seeded generator of lookup tables: ``n_pairs`` pairs with keys from ``n_keys`` symbols (distinct
    within a table) and values from ``n_values`` symbols."""

    n_pairs: int = 8
    n_keys: int = 16
    n_values: int = 10

    def __post_init__(self):
        if self.n_pairs < 1:
            raise ValueError(f"n_pairs must be positive, got {self.n_pairs}")
        if self.n_keys < self.n_pairs:
            raise ValueError(f"the {self.n_pairs} keys of a table must be distinct: need n_keys >= n_pairs, "
                             f"got n_keys={self.n_keys}")
        if self.n_values < 2:
            raise ValueError(f"n_values must be at least 2, got {self.n_values}")

    def sample(self, batch_size: int, seed: int) -> LookupBatch:
        """``batch_size`` seeded tables with their queries and answers."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        rng = np.random.default_rng(seed)
        keys = np.argsort(rng.random((batch_size, self.n_keys)), axis=1)[:, : self.n_pairs]   # distinct per row
        values = rng.integers(0, self.n_values, size=(batch_size, self.n_pairs))
        position = rng.integers(0, self.n_pairs, size=batch_size)
        rows = np.arange(batch_size)
        as_long = lambda a: torch.as_tensor(a, dtype=torch.long)
        return LookupBatch(as_long(keys), as_long(values), as_long(keys[rows, position]),
                           as_long(values[rows, position]), as_long(position))
