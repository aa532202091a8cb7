"""Unit tests of course_utils.models.AttentionSeq2Seq (lesson 03's model)."""

from __future__ import annotations

import pytest
import torch

from course_utils.models import AttentionSeq2Seq
from course_utils.models.attention_seq2seq import AdditiveAttention
from course_utils.models.masks import padding_mask

SRC_V, TGT_V, E, H = 9, 11, 4, 6


@pytest.fixture
def model():
    torch.manual_seed(0)
    return AttentionSeq2Seq(SRC_V, TGT_V, emb_size=E, hidden_size=H).eval()


def test_forward_shapes(model, batch):
    src, src_len, tgt_in = batch
    logits = model(src, src_len, tgt_in)
    assert logits.shape == (3, 4, TGT_V)
    logits2, weights = model(src, src_len, tgt_in, return_attention=True)
    assert torch.equal(logits, logits2)
    assert weights.shape == (3, 4, 5)
    assert model.attention_weights(src, src_len, tgt_in).shape == (3, 4, 5)


def test_weights_sum_to_one_and_padding_gets_zero(model, batch):
    src, src_len, tgt_in = batch
    _, weights = model(src, src_len, tgt_in, return_attention=True)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4), atol=1e-6)
    assert (weights >= 0).all()
    assert (weights[1, :, 3:] == 0).all() and (weights[2, :, 1:] == 0).all()
    assert torch.allclose(weights[2, :, 0], torch.ones(4))  # a one-word source: all attention on it


def test_padding_content_does_not_matter(model, batch):
    src, src_len, tgt_in = batch
    other = src.clone()
    other[1, 3:] = 7  # junk where the padding was; the lengths say it is not part of the sentence
    assert torch.allclose(model(src, src_len, tgt_in), model(other, src_len, tgt_in), atol=1e-6)


def test_greedy_decode(model, batch):
    src, src_len, _ = batch
    ids = model.greedy_decode(src, src_len, max_len=7)
    assert ids.shape == (3, 7) and ids.dtype == torch.long
    ids2, weights = model.greedy_decode(src, src_len, max_len=7, return_attention=True)
    assert torch.equal(ids, ids2)
    assert weights.shape == (3, 7, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 7), atol=1e-6)
    assert (weights[1, :, 3:] == 0).all()


def test_greedy_equals_teacher_forcing_on_its_own_predictions(model, batch):
    src, src_len, _ = batch
    ids, weights = model.greedy_decode(src, src_len, max_len=6, return_attention=True)
    tgt_in = torch.cat([torch.ones(3, 1, dtype=torch.long), ids[:, :-1]], dim=1)  # <bos> then its own words
    logits, tf_weights = model(src, src_len, tgt_in, return_attention=True)
    assert torch.equal(logits.argmax(-1), ids)
    assert torch.allclose(weights, tf_weights, atol=1e-6)


def test_additive_attention_matches_formula():
    torch.manual_seed(1)
    att = AdditiveAttention(3, 5, 4)
    q, k = torch.randn(2, 3), torch.randn(2, 6, 5)
    mask = padding_mask(torch.tensor([6, 2]), 6)
    context, w = att(q, k, mask)
    scores = att.v(torch.tanh(att.W_s(q)[:, None] + att.W_h(k))).squeeze(-1)
    want = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
    assert torch.allclose(w, want) and torch.allclose(context, torch.einsum("bs,bsh->bh", want, k))
    assert mask.tolist()[1] == [True, True, False, False, False, False]


def test_gradients_reach_every_parameter(model, batch):
    src, src_len, tgt_in = batch
    model(src, src_len, tgt_in).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_greedy_bad_max_len(model, batch):
    src, src_len, _ = batch
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="max_len must be a positive int"):
            model.greedy_decode(src, src_len, max_len=bad)
