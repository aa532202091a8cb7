"""The GRU encoder-decoder of lesson 01: the decoder sees only the encoder's last state.

Shapes: B batch, S source length, T target length, E embedding size, H hidden size, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def final_hidden_state(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence's hidden state at its last real token.

    outputs: (B, S, H) states of a unidirectional RNN run over right-padded inputs.
    lengths: (B,) number of real tokens per sequence, each in 1..S.
    Returns (B, H). ``outputs[:, -1]`` would be wrong: for short sequences it is a state
    reached after reading padding.
    """
    if outputs.dim() != 3:
        raise ValueError(f"outputs must be (batch, seq, hidden), got shape {tuple(outputs.shape)}")
    if lengths.dim() != 1 or lengths.shape[0] != outputs.shape[0]:
        raise ValueError(f"lengths must be ({outputs.shape[0]},) to match outputs, got shape {tuple(lengths.shape)}")
    if lengths.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    if lengths.device.type != "meta" and (int(lengths.min()) < 1 or int(lengths.max()) > outputs.shape[1]):
        raise ValueError(f"lengths must lie in 1..{outputs.shape[1]}, got {lengths.tolist()}")  # (meta: no values)
    index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])  # (B, 1, H)
    return outputs.gather(1, index).squeeze(1)  # (B, H)


class GRUEncoder(nn.Module):
    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=0)
        self.rnn = nn.GRU(emb_size, hidden_size, batch_first=True)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) ids -> all states (B, S, H) and the context vector (B, H)."""
        outputs, _ = self.rnn(self.embed(src))  # (B, S, H)
        return outputs, final_hidden_state(outputs, src_len)


class GRUDecoder(nn.Module):
    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=0)
        self.rnn = nn.GRU(emb_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)

    def forward(self, tgt_in: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tgt_in (B, T) ids, hidden (B, H) -> logits (B, T, V) and the last hidden state (B, H)."""
        outputs, h = self.rnn(self.embed(tgt_in), hidden.unsqueeze(0).contiguous())  # (B, T, H), (1, B, H)
        return self.out(outputs), h.squeeze(0)


class BottleneckSeq2Seq(nn.Module):
    """Encoder-decoder whose only link is one vector: the encoder's final hidden state."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, emb_size: int = 32, hidden_size: int = 64):
        super().__init__()
        self.encoder = GRUEncoder(src_vocab_size, emb_size, hidden_size)
        self.decoder = GRUDecoder(tgt_vocab_size, emb_size, hidden_size)

    def forward(self, src, src_len, tgt_in):
        """Teacher-forced logits (B, T, V)."""
        _, context = self.encoder(src, src_len)
        logits, _ = self.decoder(tgt_in, context)
        return logits

    @torch.no_grad()
    def greedy_decode(self, src, src_len, max_len: int, bos_id: int = 1) -> torch.Tensor:
        """Greedy decoding: (B, max_len) predicted ids (everything after ``<eos>`` is ignored by callers)."""
        _, hidden = self.encoder(src, src_len)
        token = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        steps = []
        for _ in range(max_len):
            logits, hidden = self.decoder(token, hidden)  # (B, 1, V)
            token = logits.argmax(-1)  # (B, 1)
            steps.append(token)
        return torch.cat(steps, dim=1)


def seq2seq_loss(logits: torch.Tensor, tgt_out: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Mean cross-entropy over real target tokens. logits (B, T, V), tgt_out (B, T)."""
    if logits.shape[:2] != tgt_out.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(tgt_out.shape)} disagree on (batch, length)")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=pad_id)
