"""A pointer-generator (copy) attention decoder beside the plain attention decoder: lesson 07.

Lesson 03's Bahdanau decoder can only write words of its vocabulary. A pointer-generator (See, Liu &
Manning 2017) also points: at step t its attention weights a_t over the source positions are a second
distribution, over the words of the source, and a gate p_gen in (0, 1) mixes the two,

    P(w) = p_gen * P_vocab(w) + (1 - p_gen) * sum_{i : x_i = w} a_{t,i},

over the *extended* vocabulary: the V known words plus the article's own unknown words (ids V .. V + n - 1),
so a name the model never saw in training can be written by copying it. ``copy=False`` gives the plain
attention decoder (P = P_vocab, no gate) with the same encoder and attention, for a fair comparison.

Shapes: B batch, S source length, T target length, V vocabulary, n extended ids of the batch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention_seq2seq import AdditiveAttention, check_source
from .masks import padding_mask
from .seq2seq import GRUEncoder


def copy_distribution(p_vocab: torch.Tensor, attention: torch.Tensor, src_ext: torch.Tensor, p_gen: torch.Tensor,
                      n_extended: int) -> torch.Tensor:
    """Mix the vocabulary distribution with the copy distribution.

    p_vocab (B, V), attention (B, S) over source positions, src_ext (B, S) extended ids of the source words,
    p_gen (B, 1) or (B,) -> (B, V + n_extended): p_gen * p_vocab (zero on the extended ids) plus
    (1 - p_gen) times the attention summed over the positions holding each word.
    """
    p_gen = p_gen.reshape(-1, 1)
    B, V = p_vocab.shape
    mixed = torch.zeros(B, V + n_extended, dtype=p_vocab.dtype, device=p_vocab.device)
    mixed[:, :V] = p_gen * p_vocab
    return mixed.scatter_add(1, src_ext, (1 - p_gen) * attention.to(p_vocab.dtype))


class PointerSeq2Seq(nn.Module):
    """GRU encoder, additive attention, GRU decoder; with ``copy=True`` a pointer-generator.

    ``forward(src, src_ext, src_len, tgt_in, n_extended)`` returns teacher-forced log-probabilities
    (B, T, V + n_extended) (and the attention (B, T, S) and p_gen (B, T) with ``return_details``).
    ``step_function(src, src_ext, src_len, n_extended)`` returns a step and a state for ``beam_search``.
    ``unk_id`` is the id read in place of an extended id (the decoder reads only known words).
    """

    def __init__(self, vocab_size: int, emb_size: int = 32, hidden_size: int = 64, copy: bool = True,
                 unk_id: int = 3):
        super().__init__()
        self.vocab_size, self.copy, self.unk_id = vocab_size, copy, unk_id
        self.encoder = GRUEncoder(vocab_size, emb_size, hidden_size)
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=0)
        self.attention = AdditiveAttention(hidden_size, hidden_size, hidden_size)
        self.rnn = nn.GRUCell(emb_size + hidden_size, hidden_size)
        self.out = nn.Linear(2 * hidden_size, vocab_size)
        self.gate = nn.Linear(2 * hidden_size + emb_size, 1)

    def encode(self, src, src_len):
        check_source(src, src_len)
        keys, state = self.encoder(src, src_len)
        mask = padding_mask(src_len.to(src.device), src.shape[1])
        return keys, state, mask, self.attention.project_keys(keys)

    def step(self, token, state, keys, mask, projected, src_ext, n_extended: int):
        """-> log-probabilities (B, V + n_extended), new state (B, H), attention (B, S), p_gen (B,)."""
        token = token.masked_fill(token >= self.vocab_size, self.unk_id)       # extended ids are read as <unk>
        emb = self.embed(token)
        context, weights = self.attention(state, keys, mask, projected)        # (B, H), (B, S)
        state = self.rnn(torch.cat([emb, context], dim=-1), state)
        p_vocab = torch.softmax(self.out(torch.cat([state, context], dim=-1)), dim=-1)
        if self.copy:
            p_gen = torch.sigmoid(self.gate(torch.cat([state, context, emb], dim=-1)))   # (B, 1)
            probs = copy_distribution(p_vocab, weights, src_ext, p_gen, n_extended)
        else:
            p_gen = torch.ones(token.shape[0], 1, device=token.device)
            probs = torch.cat([p_vocab, p_vocab.new_zeros(p_vocab.shape[0], n_extended)], dim=-1)
        return torch.log(probs.clamp_min(1e-12)), state, weights, p_gen.squeeze(-1)

    def forward(self, src, src_ext, src_len, tgt_in, n_extended: int, return_details: bool = False):
        keys, state, mask, projected = self.encode(src, src_len)
        outs, weights, gates = [], [], []
        for t in range(tgt_in.shape[1]):
            log_probs, state, w, g = self.step(tgt_in[:, t], state, keys, mask, projected, src_ext, n_extended)
            outs.append(log_probs), weights.append(w), gates.append(g)
        log_probs = torch.stack(outs, dim=1)                                    # (B, T, V + n)
        if return_details:
            return log_probs, torch.stack(weights, dim=1), torch.stack(gates, dim=1)
        return log_probs

    def step_function(self, src, src_ext, src_len, n_extended: int):
        """(step, state) for ``beam_search``: decoding in the extended vocabulary."""
        keys, state, mask, projected = self.encode(src, src_len)

        def step(tokens, st):
            h, keys, mask, projected, src_ext = st
            log_probs, h, _, _ = self.step(tokens, h, keys, mask, projected, src_ext, n_extended)
            return log_probs, (h, keys, mask, projected, src_ext)

        return step, (state, keys, mask, projected, src_ext)

    @torch.no_grad()
    def greedy_decode(self, src, src_ext, src_len, n_extended: int, max_len: int, bos_id: int = 1,
                      return_attention: bool = False):
        """Greedy decoding in the extended vocabulary -> ids (B, max_len) [, attention (B, max_len, S)]."""
        keys, state, mask, projected = self.encode(src, src_len)
        token = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)
        ids, weights = [], []
        for _ in range(max_len):
            log_probs, state, w, _ = self.step(token, state, keys, mask, projected, src_ext, n_extended)
            token = log_probs.argmax(-1)
            ids.append(token), weights.append(w)
        ids = torch.stack(ids, dim=1)
        return (ids, torch.stack(weights, dim=1)) if return_attention else ids


def pointer_loss(model: PointerSeq2Seq, batch) -> torch.Tensor:
    """Mean negative log-likelihood of the summary's tokens (padding ignored): the extended targets for a
    copying model, the known-word targets (unknown words as <unk>) for the plain one."""
    log_probs = model(batch.src, batch.src_ext, batch.src_len, batch.tgt_in, batch.n_extended)
    target = batch.tgt_out_ext if model.copy else batch.tgt_out
    return nn.functional.nll_loss(log_probs.flatten(0, 1), target.flatten(), ignore_index=0)
