"""Lesson 01's GRU encoder-decoder with Bahdanau (additive) attention: lesson 03's model.

At every decoder step the previous decoder state s_{t-1} scores each encoder state h_i,

    e_{t,i} = v^T tanh(W_s s_{t-1} + W_h h_i),    alpha_t = softmax_i(e_t)  (padding masked),
    c_t = sum_i alpha_{t,i} h_i,
    s_t = GRU([E y_{t-1}; c_t], s_{t-1}),         logits_t = W_o [s_t; c_t] + b_o.

The decoder starts from the encoder's last real state, s_0 = h_S, as lesson 01's did. W_h h_i does not
depend on t: ``encode`` computes it once per sentence and every decoder step reuses it.

Every tensor is made on the device of the inputs it meets, so the model also runs with its parameters
and inputs on torch's ``meta`` device (shapes only; the value checks on lengths are skipped there).

Shapes: B batch, S source length, T target length, E embedding size, H hidden size, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .masks import padding_mask
from .seq2seq import GRUEncoder


def check_source(src: torch.Tensor, src_len: torch.Tensor) -> None:
    """Raise a clear error unless src is (B, S) integer ids and src_len (B,) integer lengths in 1..S."""
    if not isinstance(src, torch.Tensor) or src.dim() != 2:
        raise ValueError(f"src must be a (batch, source length) tensor of ids, got "
                         f"{tuple(src.shape) if isinstance(src, torch.Tensor) else type(src).__name__}")
    if src.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"src must hold integer token ids, got {src.dtype}")
    if not isinstance(src_len, torch.Tensor) or src_len.dim() != 1 or src_len.shape[0] != src.shape[0]:
        raise ValueError(f"src_len must be ({src.shape[0]},): one length per source row, got "
                         f"{tuple(src_len.shape) if isinstance(src_len, torch.Tensor) else type(src_len).__name__}")
    if src_len.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"src_len must be an integer tensor, got {src_len.dtype}")
    if src_len.device.type == "meta":  # shapes only: there are no values to check
        return
    if int(src_len.min()) < 1 or int(src_len.max()) > src.shape[1]:
        raise ValueError(f"src_len must lie in 1..{src.shape[1]} (the padded source length), got {src_len.tolist()}")


def check_teacher_forcing_inputs(src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> None:
    """check_source, and tgt_in must be (B, T) ids with as many rows as src."""
    check_source(src, src_len)
    if not isinstance(tgt_in, torch.Tensor) or tgt_in.dim() != 2:
        raise ValueError(f"tgt_in must be a (batch, target length) tensor of ids, got "
                         f"{tuple(tgt_in.shape) if isinstance(tgt_in, torch.Tensor) else type(tgt_in).__name__}")
    if tgt_in.shape[0] != src.shape[0]:
        raise ValueError(f"src has {src.shape[0]} rows but tgt_in has {tgt_in.shape[0]}; they must match")


class AdditiveAttention(nn.Module):
    """Bahdanau scoring: e_i = v^T tanh(W_s s + W_h h_i); masked softmax; weighted sum of the h_i."""

    def __init__(self, query_size: int, key_size: int, attn_size: int):
        super().__init__()
        self.W_s = nn.Linear(query_size, attn_size, bias=False)
        self.W_h = nn.Linear(key_size, attn_size, bias=True)
        self.v = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys (B, S, H) -> W_h h_i (B, S, A); computed once per sentence, reused at every step."""
        return self.W_h(keys)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                projected_keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, H_s), keys (B, S, H), mask (B, S) True = real token -> context (B, H), weights (B, S)."""
        if projected_keys is None:
            projected_keys = self.project_keys(keys)                                  # (B, S, A)
        scores = self.v(torch.tanh(self.W_s(query).unsqueeze(1) + projected_keys))   # (B, S, 1)
        scores = scores.squeeze(-1).masked_fill(~mask, float("-inf"))                 # (B, S)
        weights = torch.softmax(scores, dim=-1)                                       # (B, S), padding gets 0
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)                    # (B, H)
        return context, weights


class AttentionDecoder(nn.Module):
    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=0)
        self.attention = AdditiveAttention(hidden_size, hidden_size, hidden_size)
        self.rnn = nn.GRUCell(emb_size + hidden_size, hidden_size)
        self.out = nn.Linear(2 * hidden_size, vocab_size)

    def step(self, token: torch.Tensor, state: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
             projected_keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One decoding step.

        token (B,) previous word ids, state (B, H) s_{t-1}, keys (B, S, H) encoder states, mask (B, S)
        -> logits (B, V), new state s_t (B, H), attention weights alpha_t (B, S).
        """
        context, weights = self.attention(state, keys, mask, projected_keys)  # (B, H), (B, S)
        rnn_input = torch.cat([self.embed(token), context], dim=-1)            # (B, E + H)
        state = self.rnn(rnn_input, state)                                     # (B, H)
        logits = self.out(torch.cat([state, context], dim=-1))                 # (B, V)
        return logits, state, weights


class AttentionSeq2Seq(nn.Module):
    """Encoder-decoder with additive attention: the decoder looks back at every encoder state.

    ``forward(src, src_len, tgt_in)`` returns teacher-forced logits (B, T, V); with
    ``return_attention=True`` it returns (logits, weights) with weights (B, T, S).
    ``greedy_decode(src, src_len, max_len)`` returns ids (B, max_len); with
    ``return_attention=True`` also the weights (B, max_len, S).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, emb_size: int = 32, hidden_size: int = 64):
        super().__init__()
        self.encoder = GRUEncoder(src_vocab_size, emb_size, hidden_size)
        self.decoder = AttentionDecoder(tgt_vocab_size, emb_size, hidden_size)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor):
        """-> encoder states (B, S, H), initial decoder state s_0 (B, H), mask (B, S), projected keys (B, S, H)."""
        check_source(src, src_len)
        src_len = src_len.to(src.device)
        keys, state = self.encoder(src, src_len)                                   # (B, S, H), s_0 = h_{S_b} (B, H)
        mask = padding_mask(src_len, src.shape[1])                                 # (B, S)
        return keys, state, mask, self.decoder.attention.project_keys(keys)        # W_h h_i: once per sentence

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor, return_attention: bool = False):
        """Teacher forcing: the decoder reads the true previous words tgt_in (B, T)."""
        check_teacher_forcing_inputs(src, src_len, tgt_in)
        keys, state, mask, projected = self.encode(src, src_len)
        all_logits, all_weights = [], []
        for t in range(tgt_in.shape[1]):
            logits, state, weights = self.decoder.step(tgt_in[:, t], state, keys, mask, projected)
            all_logits.append(logits)
            all_weights.append(weights)
        logits = torch.stack(all_logits, dim=1)   # (B, T, V)
        if return_attention:
            return logits, torch.stack(all_weights, dim=1)  # (B, T, S)
        return logits

    def attention_weights(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced attention weights (B, T, S)."""
        with torch.no_grad():
            return self.forward(src, src_len, tgt_in, return_attention=True)[1]

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_len: torch.Tensor, max_len: int, bos_id: int = 1,
                      return_attention: bool = False):
        """Greedy decoding: feed back the most likely word. -> ids (B, max_len) [, weights (B, max_len, S)]."""
        if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        keys, state, mask, projected = self.encode(src, src_len)
        token = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)  # (B,)
        ids, all_weights = [], []
        for _ in range(max_len):
            logits, state, weights = self.decoder.step(token, state, keys, mask, projected)
            token = logits.argmax(-1)  # (B,)
            ids.append(token)
            all_weights.append(weights)
        ids = torch.stack(ids, dim=1)  # (B, max_len)
        if return_attention:
            return ids, torch.stack(all_weights, dim=1)  # (B, max_len, S)
        return ids
