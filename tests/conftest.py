"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture
def batch():
    """A right-padded batch for the seq2seq models: src (B=3, S=5) with lengths 5, 3, 1, and tgt_in (B=3, T=4)."""
    src = torch.tensor([[3, 4, 5, 6, 7], [8, 3, 4, 0, 0], [5, 0, 0, 0, 0]])
    src_len = torch.tensor([5, 3, 1])
    tgt_in = torch.tensor([[1, 4, 5, 6], [1, 7, 0, 0], [1, 3, 9, 0]])
    return src, src_len, tgt_in
