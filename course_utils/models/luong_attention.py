"""Luong attention (Luong, Pham and Manning, 2015): global and local windows, lesson 04's model.

The decoder runs its GRU first and attends with its CURRENT state h_t (Bahdanau's, lesson 03, attends
with the previous one):

    h_t  = GRU(E y_{t-1}, h_{t-1}),                h_0 = the encoder's last real state
    a_t  = align(h_t, hbar_s) over a window of source positions s
    c_t  = sum_s a_t(s) hbar_s
    h~_t = tanh(W_c [c_t; h_t]),                   logits_t = W_o h~_t + b_o

Scores (course_utils.models.attention has the three modules):
    dot      h_t . hbar_s
    general  h_t^T W_a hbar_s
    concat   v_a^T tanh(W_a [h_t; hbar_s])  (= Bahdanau's additive score, W_a split in two halves)

Windows (positions are 0-based, D is the half-width, a window holds 2D + 1 positions):
    global   every real source position: S scores per target step
    local-m  monotonic: centre p_t = t, window t-D .. t+D, softmax over the positions inside the sentence
    local-p  predictive: p_t = S_b * sigmoid(v_p^T tanh(W_p h_t)), window round(p_t)-D .. round(p_t)+D;
             the softmax weights are multiplied by exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D / 2
             (so they no longer sum to one, as in the paper)

Local attention gathers the 2D + 1 keys of its window and scores only those: (2D + 1) x T scores per
sentence instead of S x T. ``LuongAttention.scores_computed`` counts the scores it really computed.
There is no input feeding (Luong's option of feeding h~_{t-1} back into the GRU), so under teacher
forcing the decoder GRU and the attention run over all T steps at once.

Shapes: B batch, S source length, T target length, W = 2D + 1 window, E embedding, H hidden, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention import AdditiveScore, DotScore, GeneralScore, masked_softmax
from .attention_seq2seq import check_source, check_teacher_forcing_inputs
from .masks import padding_mask
from .seq2seq import GRUEncoder

SCORES = ("dot", "general", "concat")
WINDOWS = ("global", "local-m", "local-p")


def make_score(kind: str, hidden_size: int) -> nn.Module:
    """Luong's score by name: 'dot', 'general' or 'concat'."""
    if kind == "dot":
        return DotScore()
    if kind == "general":
        return GeneralScore(hidden_size, hidden_size)
    if kind == "concat":
        return AdditiveScore(hidden_size, hidden_size, hidden_size)
    raise ValueError(f"score must be one of {SCORES}, got {kind!r}")


def window_positions(centres: torch.Tensor, D: int) -> torch.Tensor:
    """(B, T) integer centres -> (B, T, 2D + 1) source positions centre-D .. centre+D (may fall outside)."""
    return centres.unsqueeze(-1) + torch.arange(-D, D + 1, device=centres.device)


def window_mask(positions: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
    """(B, T, W) positions, (B,) lengths -> (B, T, W) bool: True where 0 <= position < S_b."""
    return (positions >= 0) & (positions < src_len.view(-1, 1, 1))


def predicted_position(query: torch.Tensor, src_len: torch.Tensor, W_p: nn.Linear, v_p: nn.Linear) -> torch.Tensor:
    """Local-p's centre: (B, T, H) states, (B,) lengths -> p_t = S_b * sigmoid(v_p^T tanh(W_p h_t)), (B, T)."""
    return src_len.view(-1, 1).to(query.dtype) * torch.sigmoid(v_p(torch.tanh(W_p(query)))).squeeze(-1)


def gaussian_window(positions: torch.Tensor, centre: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-(s - p_t)^2 / (2 sigma^2)) for (B, T, W) positions s around (B, T) real centres p_t."""
    return torch.exp(-(positions.to(centre.dtype) - centre.unsqueeze(-1)) ** 2 / (2 * sigma ** 2))


def spread_weights(weights: torch.Tensor, positions: torch.Tensor | None, src_len: int) -> torch.Tensor:
    """Window weights (B, T, W) at their positions -> full (B, T, S) weights (zeros outside the window)."""
    if positions is None:
        return weights
    inside = (positions >= 0) & (positions < src_len)
    full = weights.new_zeros(*weights.shape[:2], src_len)
    return full.scatter_add(-1, positions.clamp(0, src_len - 1), weights * inside)


class LuongAttention(nn.Module):
    """Luong's attention layer: a score ('dot', 'general', 'concat') over a window ('global', 'local-m', 'local-p').

    ``forward(query, keys, src_len, first_step=0)``: query (B, T, H) the decoder states h_t, keys
    (B, S, H) the encoder states, src_len (B,); ``first_step`` is the decoder step of query[:, 0]
    (local-m's centre is the step).
    Returns (context (B, T, H), weights, positions): global gives weights (B, T, S) and positions
    None; local windows give weights (B, T, 2D + 1) over the source positions (B, T, 2D + 1).
    """

    def __init__(self, hidden_size: int, score: str = "general", window: str = "global", D: int = 2):
        super().__init__()
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
        if not isinstance(D, int) or isinstance(D, bool) or D < 1:
            raise ValueError(f"D (the window's half-width) must be a positive int, got {D!r}")
        self.window, self.D = window, D
        self.score = make_score(score, hidden_size)
        if window == "local-p":
            self.W_p = nn.Linear(hidden_size, hidden_size, bias=False)
            self.v_p = nn.Linear(hidden_size, 1, bias=False)
        self.scores_computed = 0   # every score this layer has computed since it was made (or reset)

    @property
    def sigma(self) -> float:
        return self.D / 2

    def centres(self, query: torch.Tensor, src_len: torch.Tensor, first_step: int = 0) -> torch.Tensor:
        """The window centres p_t, (B, T): t for local-m (an int tensor), the predicted position for local-p."""
        B, T = query.shape[:2]
        if self.window == "local-m":
            return (first_step + torch.arange(T, device=query.device)).expand(B, T)
        if self.window == "local-p":
            return predicted_position(query, src_len, self.W_p, self.v_p)
        raise ValueError("global attention has no window centre")

    def window_scores(self, query: torch.Tensor, window_keys: torch.Tensor) -> torch.Tensor:
        """Score each query (B, T, H) against its own window's keys (B, T, W, H) -> (B, T, W).

        The same numbers as ``self.score(query.unsqueeze(-2), window_keys).squeeze(-2)``, written with
        elementwise products: thousands of 1 x W matrix products are slow on a CPU.
        """
        if isinstance(self.score, AdditiveScore):
            return self.score(query.unsqueeze(-2), window_keys).squeeze(-2)
        if isinstance(self.score, GeneralScore):
            query = query @ self.score.W
        return (query.unsqueeze(-2) * window_keys).sum(-1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, src_len: torch.Tensor, first_step: int = 0):
        if query.dim() != 3 or keys.dim() != 3 or query.shape[0] != keys.shape[0]:
            raise ValueError(f"expected query (B, T, H) and keys (B, S, H), got {tuple(query.shape)} and {tuple(keys.shape)}")
        B, S = keys.shape[:2]
        src_len = src_len.to(keys.device)
        if self.window == "global":
            scores = self.score(query, keys)                                   # (B, T, S)
            self.scores_computed += scores.numel()
            weights = masked_softmax(scores, padding_mask(src_len, S).unsqueeze(1))
            return weights @ keys, weights, None                               # (B, T, H)
        p = self.centres(query, src_len, first_step)                           # (B, T)
        positions = window_positions(p.round().long(), self.D)                 # (B, T, W)
        rows = torch.arange(B, device=keys.device).view(B, 1, 1)
        window_keys = keys[rows, positions.clamp(0, S - 1)]                    # (B, T, W, H): only the window
        scores = self.window_scores(query, window_keys)                        # (B, T, W)
        self.scores_computed += scores.numel()
        weights = masked_softmax(scores, window_mask(positions, src_len))      # (B, T, W)
        if self.window == "local-p":
            weights = weights * gaussian_window(positions, p, self.sigma)
        context = (weights.unsqueeze(-1) * window_keys).sum(-2)                # (B, T, H)
        return context, weights, positions


class LuongSeq2Seq(nn.Module):
    """Lesson 01's GRU encoder with a Luong decoder: attention after the GRU step, then h~_t = tanh(W_c [c_t; h_t]).

    ``forward(src, src_len, tgt_in)`` returns teacher-forced logits (B, T, V); with
    ``return_attention=True`` it returns (logits, weights (B, T, S)). ``greedy_decode(src, src_len,
    max_len)`` returns ids (B, max_len), with ``return_attention=True`` also weights (B, max_len, S).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, emb_size: int = 32, hidden_size: int = 64,
                 score: str = "general", window: str = "global", D: int = 2):
        super().__init__()
        self.encoder = GRUEncoder(src_vocab_size, emb_size, hidden_size)
        self.embed = nn.Embedding(tgt_vocab_size, emb_size, padding_idx=0)
        self.rnn = nn.GRU(emb_size, hidden_size, batch_first=True)
        self.attention = LuongAttention(hidden_size, score, window, D)
        self.W_c = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.out = nn.Linear(hidden_size, tgt_vocab_size)

    def decode(self, tokens: torch.Tensor, hidden: torch.Tensor, keys: torch.Tensor, src_len: torch.Tensor,
               first_step: int = 0):
        """Decoder steps first_step .. first_step + T - 1 for tokens (B, T) from GRU state hidden (B, H).

        -> logits (B, T, V), the last state (B, H), weights (B, T, S).
        """
        states, last = self.rnn(self.embed(tokens), hidden.unsqueeze(0).contiguous())   # h_t: (B, T, H)
        context, weights, positions = self.attention(states, keys, src_len, first_step)  # c_t: (B, T, H)
        attentional = torch.tanh(self.W_c(torch.cat([context, states], dim=-1)))      # h~_t: (B, T, H)
        return self.out(attentional), last.squeeze(0), spread_weights(weights, positions, keys.shape[1])

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor, return_attention: bool = False):
        check_teacher_forcing_inputs(src, src_len, tgt_in)
        keys, hidden = self.encoder(src, src_len)                                      # (B, S, H), (B, H)
        logits, _, weights = self.decode(tgt_in, hidden, keys, src_len)
        return (logits, weights) if return_attention else logits

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_len: torch.Tensor, max_len: int, bos_id: int = 1,
                      return_attention: bool = False):
        """Greedy decoding, one step at a time, feeding back the most likely word."""
        if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        check_source(src, src_len)
        keys, hidden = self.encoder(src, src_len)
        token = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)   # (B, 1)
        ids, all_weights = [], []
        for t in range(max_len):
            logits, hidden, weights = self.decode(token, hidden, keys, src_len, first_step=t)
            token = logits.argmax(-1)                                                   # (B, 1)
            ids.append(token)
            all_weights.append(weights)
        ids = torch.cat(ids, dim=1)                                                     # (B, max_len)
        return (ids, torch.cat(all_weights, dim=1)) if return_attention else ids
