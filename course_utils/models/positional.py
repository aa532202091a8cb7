"""Position information for attention, which by itself ignores order. Lesson 05 builds these."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def sinusoidal_encoding(n_positions: int, d_model: int) -> torch.Tensor:
    """(n_positions, d_model) table: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same angle)."""
    if int(d_model) < 2 or int(d_model) % 2:
        raise ValueError(f"d_model must be a positive even number (sines and cosines come in pairs), got {d_model}")
    if int(n_positions) < 1:
        raise ValueError(f"n_positions must be positive, got {n_positions}")
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)           # (n, 1)
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2) / d_model)  # (d/2,)
    angle = position * inv_freq                                                       # (n, d/2)
    pe = torch.empty(n_positions, d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table to (B, n, d) embeddings (then dropout)."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.pe.shape[1]:
            raise ValueError(f"expected (batch, length, {self.pe.shape[1]}) embeddings, got {tuple(x.shape)}")
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"sequence of length {x.shape[1]} is longer than max_len={self.pe.shape[0]}")
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))


class LearnedPositionalEncoding(nn.Module):
    """Adds a trained embedding of each position 0..max_len-1 to (B, n, d) embeddings (then dropout)."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.embedding.embedding_dim:
            raise ValueError(f"expected (batch, length, {self.embedding.embedding_dim}) embeddings, got {tuple(x.shape)}")
        if x.shape[1] > self.embedding.num_embeddings:
            raise ValueError(f"sequence of length {x.shape[1]} is longer than max_len={self.embedding.num_embeddings}")
        positions = torch.arange(x.shape[1], device=x.device)
        return self.dropout(x + self.embedding(positions))
