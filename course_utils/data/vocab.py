"""A token vocabulary with the three special tokens every lesson uses, and padding."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


class Vocab:
    """Maps tokens to ids and back. Ids 0, 1, 2 are always ``<pad>``, ``<bos>``, ``<eos>``."""

    def __init__(self, tokens: Iterable[str]):
        self.itos: list[str] = [PAD, BOS, EOS]
        for tok in tokens:
            if not isinstance(tok, str):
                raise TypeError(f"tokens must be strings, got {tok!r} ({type(tok).__name__})")
            if tok not in self.itos:
                self.itos.append(tok)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}

    pad_id, bos_id, eos_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        shown = ", ".join(self.itos[3:9])
        more = ", ..." if len(self) > 9 else ""
        return f"Vocab({len(self)} tokens: {PAD}, {BOS}, {EOS}, {shown}{more})"

    def encode(self, tokens: Sequence[str], *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token strings to ids; an unknown token raises a KeyError that names it."""
        unknown = [t for t in tokens if t not in self.stoi]
        if unknown:
            raise KeyError(f"tokens not in the vocabulary: {unknown[:5]} (vocabulary: {self.itos[3:]})")
        ids = [self.stoi[t] for t in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], *, strip: bool = True) -> list[str]:
        """Ids to token strings. With ``strip``, stop at the first ``<eos>`` and drop pad and bos."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self):
                raise IndexError(f"id {i} is outside the vocabulary of {len(self)} tokens")
            if strip and i == self.eos_id:
                break
            if strip and i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i])
        return out


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences into a (batch, max_len) LongTensor; return it with the lengths.

    Empty sequences are rejected: a recurrent encoder has no last state for them.
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    lengths = [len(s) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"sequence {lengths.index(0)} is empty; every sequence needs at least one token")
    out = torch.full((len(sequences), max(lengths)), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
    return out, torch.tensor(lengths, dtype=torch.long)
