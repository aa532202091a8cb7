"""Batched beam search with length normalisation, over any step function: lesson 07.

A decoder is described by one function, ``step(tokens, state) -> (log_probs, state)``: it reads the
previous token of N running hypotheses (N,) and their state (a tensor, or a tuple / list / dict of
tensors, each with N rows) and returns the next token's log-probabilities (N, V) and the new state.
Beam search keeps, for each of the B sentences, the K most probable prefixes ("beams"):

1. every live beam is extended by every token, and the candidates are ranked by the sum of their
   log-probabilities;
2. the best ``width`` candidates are kept (``width`` starts at K): a candidate that ends with ``<eos>``
   is finished (it goes to the sentence's finished list, once, and leaves the beam, so the width
   shrinks by one), the others are the live beams of the next step;
3. a sentence is done when its width reaches 0, i.e. K hypotheses have finished (or at ``max_len``,
   where the live beams are finished as they are); its answer is the finished hypothesis with the best
   *normalised* score

       score(y) = log p(y | x) / |y| ** alpha        (|y| counts the <eos>; alpha = 0: no normalisation).

Sentences are independent: the result for one sentence does not depend on the others in the batch.
With K = 1 this is greedy decoding; with K at least V ** max_len it is exhaustive search (tests prove
both). The three classic bugs it avoids: stopping a sentence as soon as its best beam ends (a longer
hypothesis may still win once normalised), letting a finished hypothesis stay among the beams (it would
be extended past its <eos> or picked again), and one "done" flag for the whole batch (results that change
with the batch).

Shapes: B sentences, K beam size, V vocabulary, N = B * K rows of the step function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

Step = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


@dataclass
class BeamResult:
    """The best hypothesis of each sentence.

    tokens: (B, max_len) ids, ending with ``<eos>`` where the hypothesis finished, then ``pad_id``;
    lengths: (B,) tokens of each hypothesis (the ``<eos>`` included); log_prob: (B,) its log-probability;
    score: (B,) its normalised score, log_prob / lengths ** alpha.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    log_prob: torch.Tensor
    score: torch.Tensor


def normalised_score(log_prob, length, alpha: float):
    """log_prob / length ** alpha: alpha = 0 leaves the log-probability, alpha = 1 is the mean per token."""
    return log_prob / (length ** alpha)


def map_state(state, fn: Callable[[torch.Tensor], torch.Tensor]):
    """Apply ``fn`` to every tensor of a state (a tensor, None, or a tuple / list / dict of those)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(s, fn) for s in state)
    if isinstance(state, dict):
        return {k: map_state(v, fn) for k, v in state.items()}
    raise TypeError(f"a decoder state must be tensors in tuples, lists or dicts, got {type(state).__name__}")


def _first_tensor(state):
    if isinstance(state, torch.Tensor):
        return state
    items = state.values() if isinstance(state, dict) else state if isinstance(state, (tuple, list)) else ()
    for s in items:
        found = _first_tensor(s)
        if found is not None:
            return found
    return None


@torch.no_grad()
def beam_search(step: Step, state, *, beam_size: int, max_len: int, alpha: float = 0.0, bos_id: int = 1,
                eos_id: int = 2, pad_id: int = 0) -> BeamResult:
    """Beam search for every sentence of a batch at once (see the module's docstring).

    step: ``step(tokens (N,), state) -> (log_probs (N, V), state)``; state: the decoder's initial state
    for the B sentences (every tensor with B rows). Returns a ``BeamResult``.
    """
    if not isinstance(beam_size, int) or isinstance(beam_size, bool) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    first = _first_tensor(state)
    if first is None:
        raise ValueError("the state must hold at least one tensor with one row per sentence")
    B, K, device = first.shape[0], beam_size, first.device
    state = map_state(state, lambda s: s.repeat_interleave(K, dim=0))                   # (B * K, ...)
    scores = torch.full((B, K), -math.inf, device=device)
    scores[:, 0] = 0.0                           # one live beam at the start: K copies would be K duplicates
    last = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    history = torch.zeros(B, K, 0, dtype=torch.long)                                    # tokens so far (CPU)
    finished: list[list[tuple[float, float, list[int]]]] = [[] for _ in range(B)]      # (score, log p, tokens)
    width = [K] * B                                    # live beams of each sentence: K minus its finished ones
    for t in range(max_len):
        log_probs, state = step(last, state)                                             # (B * K, V)
        V = log_probs.shape[-1]
        candidates = (scores.unsqueeze(-1) + log_probs.float().view(B, K, V)).view(B, K * V)
        top_scores, top_index = candidates.topk(min(K, K * V), dim=-1)                  # (B, K), best first
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        new_scores = torch.full((B, K), -math.inf)
        new_beam = torch.zeros(B, K, dtype=torch.long)
        new_token = torch.full((B, K), pad_id, dtype=torch.long)
        for b in range(B):
            alive, ended = 0, 0
            for s, index in zip(top_scores[b][: width[b]], top_index[b][: width[b]]):   # the sentence's best `width`
                if s == -math.inf:
                    break
                beam, token = divmod(index, V)
                if token == eos_id:                            # a hypothesis ends: it leaves the beam for good
                    tokens = history[b, beam].tolist() + [eos_id]
                    finished[b].append((normalised_score(s, t + 1, alpha), s, tokens))
                    ended += 1
                else:
                    new_scores[b, alive], new_beam[b, alive], new_token[b, alive] = s, beam, token
                    alive += 1
            width[b] = width[b] - ended if alive else 0       # no live beam left: nothing more to extend
            if t == max_len - 1:                               # out of room: the live beams finish as they are
                for a in range(alive):
                    tokens = history[b, new_beam[b, a]].tolist() + [int(new_token[b, a])]
                    s = float(new_scores[b, a])
                    finished[b].append((normalised_score(s, max_len, alpha), s, tokens))
        if not any(width):
            break
        history = torch.cat([history.gather(1, new_beam.unsqueeze(-1).expand(-1, -1, history.shape[-1])),
                             new_token.unsqueeze(-1)], dim=-1)                          # (B, K, t + 1)
        rows = (torch.arange(B).unsqueeze(-1) * K + new_beam).view(-1).to(device)       # which beam each row extends
        state = map_state(state, lambda s: s.index_select(0, rows))
        scores = new_scores.to(device)
        last = new_token.view(-1).to(device)
    out = torch.full((B, max_len), pad_id, dtype=torch.long)
    lengths = torch.zeros(B, dtype=torch.long)
    log_prob, score = torch.zeros(B), torch.zeros(B)
    for b in range(B):
        if not finished[b]:
            raise ValueError(f"sentence {b} has no hypothesis: every candidate had log-probability -inf")
        best = max(finished[b], key=lambda f: f[0])                # ties: the first found (higher log-probability)
        out[b, : len(best[2])] = torch.tensor(best[2])
        lengths[b], score[b], log_prob[b] = len(best[2]), best[0], best[1]
    return BeamResult(out.to(device), lengths.to(device), log_prob.to(device), score.to(device))


def seq2seq_step(model, src: torch.Tensor, src_len: torch.Tensor) -> tuple[Step, tuple]:
    """The step function and initial state of lesson 03's ``AttentionSeq2Seq`` (or any model with its
    ``encode`` and ``decoder.step``) for the sources ``src`` (B, S): use with ``beam_search``."""
    keys, dec_state, mask, projected = model.encode(src, src_len)

    def step(tokens, state):
        h, keys, mask, projected = state
        logits, h, _ = model.decoder.step(tokens, h, keys, mask, projected)
        return torch.log_softmax(logits, dim=-1), (h, keys, mask, projected)

    return step, (dec_state, keys, mask, projected)


def exhaustive_search(step: Step, state, *, vocab_size: int, max_len: int, alpha: float = 0.0, bos_id: int = 1,
                      eos_id: int = 2) -> tuple[list[int], float, float]:
    """The best hypothesis of ONE sentence by trying every sequence (V ** max_len of them; tiny V only).

    The hypotheses are the ones beam search considers: ending in ``<eos>`` within ``max_len`` tokens, or
    ``max_len`` tokens without one. Returns (tokens, log-probability, normalised score).
    """
    best: list = [None, -math.inf, -math.inf]
    first = _first_tensor(state)
    device = first.device if first is not None else None

    def visit(prefix, token, log_p, state):
        log_probs, state = step(torch.tensor([token], device=device), state)
        row = log_probs[0].float().tolist()
        for v in range(vocab_size):
            s = log_p + row[v]
            tokens = prefix + [v]
            if v == eos_id or len(tokens) == max_len:
                score = normalised_score(s, len(tokens), alpha)
                if score > best[2]:
                    best[:] = [tokens, s, score]
            else:
                visit(tokens, v, s, state)

    visit([], bos_id, 0.0, state)
    return best[0], best[1], best[2]
