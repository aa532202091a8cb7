"""Turning (source, target) token pairs into padded tensors for sequence-to-sequence models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .vocab import Vocab, pad_batch


@dataclass
class Seq2SeqBatch:
    """A padded batch. Shapes: src (B, S), src_len (B,), tgt_in / tgt_out (B, T), tgt_len (B,).

    ``tgt_in`` starts with ``<bos>`` (the decoder's inputs under teacher forcing); ``tgt_out``
    ends with ``<eos>`` (what the decoder must predict). Both are padded with ``<pad>`` (id 0).
    """

    src: torch.Tensor
    src_len: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_len: torch.Tensor

    def to(self, device) -> "Seq2SeqBatch":
        return Seq2SeqBatch(*(t.to(device) for t in (self.src, self.src_len, self.tgt_in, self.tgt_out, self.tgt_len)))

    def __len__(self) -> int:
        return self.src.shape[0]


def make_batch(pairs: Sequence[tuple[Sequence[str], Sequence[str]]], src_vocab: Vocab, tgt_vocab: Vocab,
               *, reverse_source: bool = False) -> Seq2SeqBatch:
    """Encode and pad a list of (source tokens, target tokens) pairs.

    With ``reverse_source`` each source is fed backwards (the trick of Sutskever et al., 2014);
    padding stays at the end.
    """
    if len(pairs) == 0:
        raise ValueError("make_batch needs at least one (source, target) pair")
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"pair {i} should be (source tokens, target tokens), got {len(pair)} items")
    srcs = [src_vocab.encode(list(s)[::-1] if reverse_source else list(s)) for s, _ in pairs]
    tgts = [tgt_vocab.encode(list(t)) for _, t in pairs]
    src, src_len = pad_batch(srcs, src_vocab.pad_id)
    tgt_in, _ = pad_batch([[tgt_vocab.bos_id] + t for t in tgts], tgt_vocab.pad_id)
    tgt_out, tgt_len = pad_batch([t + [tgt_vocab.eos_id] for t in tgts], tgt_vocab.pad_id)
    return Seq2SeqBatch(src, src_len, tgt_in, tgt_out, tgt_len)


def iterate_batches(pairs, src_vocab: Vocab, tgt_vocab: Vocab, batch_size: int, *, seed: int | None = None,
                    reverse_source: bool = False) -> Iterator[Seq2SeqBatch]:
    """Yield batches over ``pairs`` once, shuffled when a ``seed`` is given."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = np.arange(len(pairs))
    if seed is not None:
        np.random.default_rng(seed).shuffle(order)
    for start in range(0, len(order), batch_size):
        chunk = [pairs[i] for i in order[start : start + batch_size]]
        yield make_batch(chunk, src_vocab, tgt_vocab, reverse_source=reverse_source)
