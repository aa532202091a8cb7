"""Beam search (course_utils.models.beam_search) proven right: beam 1 is greedy decoding, a batch gives the same
answers as one sentence at a time, and a wide beam on a tiny vocabulary finds what exhaustive search finds."""

import math

import pytest
import torch
import torch.nn as nn

from course_utils.models.attention_seq2seq import AttentionSeq2Seq
from course_utils.models.beam_search import beam_search, exhaustive_search, normalised_score, seq2seq_step
from course_utils.training import strip_after_eos


class TinyDecoder(nn.Module):
    """A random recurrent decoder: each sentence's state starts from its own vector, so sentences differ."""

    def __init__(self, vocab_size=4, hidden=8, seed=0, sharpness=2.0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab_size, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.out = nn.Linear(hidden, vocab_size)
        self.sharpness = sharpness

    def step(self, tokens, state):
        h = self.cell(self.embed(tokens), state)
        return torch.log_softmax(self.sharpness * self.out(h), dim=-1), h


def _model(seed=0):
    torch.manual_seed(seed)
    return AttentionSeq2Seq(12, 9, emb_size=8, hidden_size=16).eval()


def _sources(B, seed=1):
    g = torch.Generator().manual_seed(seed)
    src_len = torch.randint(2, 8, (B,), generator=g)
    src = torch.randint(3, 12, (B, int(src_len.max())), generator=g)
    src[torch.arange(src.shape[1])[None, :] >= src_len[:, None]] = 0
    return src, src_len


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_beam_size_one_is_greedy_decoding(seed, alpha):
    model = _model(seed)
    src, src_len = _sources(16, seed)
    greedy = model.greedy_decode(src, src_len, max_len=7)
    step, state = seq2seq_step(model, src, src_len)
    beam = beam_search(step, state, beam_size=1, max_len=7, alpha=alpha)
    for g_row, b_row in zip(greedy.tolist(), beam.tokens.tolist()):
        assert strip_after_eos(g_row) == strip_after_eos(b_row)


def test_greedy_log_prob_is_the_sum_of_the_chosen_tokens_log_probs():
    model = _model(3)
    src, src_len = _sources(5, 3)
    step, state = seq2seq_step(model, src, src_len)
    beam = beam_search(step, state, beam_size=1, max_len=6)
    with torch.no_grad():
        tgt_in = torch.cat([torch.ones(5, 1, dtype=torch.long), beam.tokens[:, :-1]], dim=1)
        log_probs = torch.log_softmax(model(src, src_len, tgt_in), -1).gather(-1, beam.tokens.unsqueeze(-1))[..., 0]
    for b in range(5):
        n = int(beam.lengths[b])
        assert math.isclose(float(log_probs[b, :n].sum()), float(beam.log_prob[b]), rel_tol=1e-4, abs_tol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("beam_size", [2, 3, 5])
def test_a_batch_gives_the_same_answers_as_one_sentence_at_a_time(beam_size, alpha):
    model = _model(4)
    src, src_len = _sources(12, 5)
    step, state = seq2seq_step(model, src, src_len)
    batched = beam_search(step, state, beam_size=beam_size, max_len=8, alpha=alpha)
    for b in range(12):
        n = int(src_len[b])
        step1, state1 = seq2seq_step(model, src[b:b + 1, :n], src_len[b:b + 1])
        alone = beam_search(step1, state1, beam_size=beam_size, max_len=8, alpha=alpha)
        assert alone.tokens[0].tolist() == batched.tokens[b].tolist()
        assert math.isclose(float(alone.log_prob[0]), float(batched.log_prob[b]), abs_tol=1e-4)
        assert math.isclose(float(alone.score[0]), float(batched.score[b]), abs_tol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_a_wide_beam_finds_what_exhaustive_search_finds(seed, alpha):
    V, max_len = 4, 5                                  # <pad> <bos> <eos> and one word: 4 ** 5 sequences at most
    decoder = TinyDecoder(V, seed=seed).eval()
    g = torch.Generator().manual_seed(seed)
    h0 = torch.randn(6, 8, generator=g)
    with torch.no_grad():
        wide = beam_search(decoder.step, h0, beam_size=V ** max_len, max_len=max_len, alpha=alpha)
        for b in range(6):
            tokens, log_p, score = exhaustive_search(decoder.step, h0[b:b + 1], vocab_size=V, max_len=max_len,
                                                     alpha=alpha)
            assert wide.tokens[b, : len(tokens)].tolist() == tokens
            assert int(wide.lengths[b]) == len(tokens)
            assert math.isclose(float(wide.log_prob[b]), log_p, abs_tol=1e-4)
            assert math.isclose(float(wide.score[b]), score, abs_tol=1e-4)


def test_a_narrow_beam_can_miss_what_exhaustive_search_finds_and_never_beats_it():
    V, max_len = 4, 5
    missed = 0
    for seed in range(8):
        decoder = TinyDecoder(V, seed=seed, sharpness=0.7).eval()
        h0 = torch.randn(8, 8, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            narrow = beam_search(decoder.step, h0, beam_size=2, max_len=max_len, alpha=1.0)
            for b in range(8):
                _, _, best = exhaustive_search(decoder.step, h0[b:b + 1], vocab_size=V, max_len=max_len, alpha=1.0)
                assert float(narrow.score[b]) <= best + 1e-5
                missed += float(narrow.score[b]) < best - 1e-5
    assert missed > 0       # otherwise the exhaustive test above would prove nothing about the beam


def test_a_finished_hypothesis_is_never_picked_twice_and_the_best_beam_ending_does_not_stop_the_search():
    # a decoder whose <eos> is likeliest right away, but where a longer hypothesis wins once normalised
    def step(tokens, state):
        t = state
        lp = torch.full((tokens.shape[0], 4), -20.0)
        first = t == 0
        lp[first, 2], lp[first, 3] = math.log(0.55), math.log(0.45)          # <eos> 0.55, word 0.45
        lp[~first, 2], lp[~first, 3] = math.log(0.99), math.log(0.01)        # then <eos> almost surely
        return lp, t + 1

    state = torch.zeros(1)
    no_norm = beam_search(step, state, beam_size=2, max_len=4, alpha=0.0)
    assert no_norm.tokens[0, :1].tolist() == [2]
    normalised = beam_search(step, state, beam_size=2, max_len=4, alpha=1.0)
    assert normalised.tokens[0, :2].tolist() == [3, 2]                    # log(0.45 * 0.99) / 2 > log(0.55) / 1
    assert math.isclose(float(normalised.score[0]), math.log(0.45 * 0.99) / 2, rel_tol=1e-5)


def test_normalised_score_and_argument_errors():
    assert normalised_score(-6.0, 3, 0.0) == -6.0
    assert normalised_score(-6.0, 3, 1.0) == -2.0
    step = TinyDecoder().step
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(step, torch.zeros(1, 8), beam_size=0, max_len=3)
    with pytest.raises(ValueError, match="max_len"):
        beam_search(step, torch.zeros(1, 8), beam_size=2, max_len=0)
    with pytest.raises(ValueError, match="alpha"):
        beam_search(step, torch.zeros(1, 8), beam_size=2, max_len=3, alpha=-1.0)
    with pytest.raises(ValueError, match="state"):
        beam_search(step, (), beam_size=2, max_len=3)
    with pytest.raises(ValueError, match="no hypothesis"):
        beam_search(lambda tokens, h: (torch.full((tokens.shape[0], 4), -math.inf), h), torch.zeros(2, 8),
                    beam_size=2, max_len=3)
