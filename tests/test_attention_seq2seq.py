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


# ---- the model on torch's meta device: every tensor it makes must follow its inputs' device

def test_runs_on_the_meta_device():
    torch.manual_seed(0)
    model = AttentionSeq2Seq(SRC_V, TGT_V, emb_size=E, hidden_size=H).to("meta")
    src = torch.empty(3, 5, dtype=torch.long, device="meta")
    src_len = torch.empty(3, dtype=torch.long, device="meta")
    tgt_in = torch.empty(3, 4, dtype=torch.long, device="meta")
    logits, weights = model(src, src_len, tgt_in, return_attention=True)
    assert logits.device.type == "meta" and logits.shape == (3, 4, TGT_V) and weights.shape == (3, 4, 5)
    ids, weights = model.greedy_decode(src, src_len, max_len=6, return_attention=True)
    assert ids.device.type == "meta" and ids.shape == (3, 6) and weights.shape == (3, 6, 5)


def test_key_projection_runs_once_per_sentence(model, batch):
    src, src_len, tgt_in = batch
    calls = []
    handle = model.decoder.attention.W_h.register_forward_hook(lambda *_: calls.append(1))
    model(src, src_len, tgt_in)
    model.greedy_decode(src, src_len, max_len=7)
    handle.remove()
    assert len(calls) == 2  # once for the teacher-forced pass (4 steps), once for greedy decoding (7 steps)


def test_encode_matches_the_gru_encoder(model, batch):
    src, src_len, _ = batch
    keys, state, mask, projected = model.encode(src, src_len)
    want_keys, want_state = model.encoder(src, src_len)
    assert torch.equal(keys, want_keys) and torch.equal(state, want_state)
    assert torch.equal(mask, padding_mask(src_len, src.shape[1]))
    assert torch.allclose(projected, model.decoder.attention.W_h(keys))


# ---- the graded checks of exercises/03: right answers in other forms pass, shortcuts and common slips fail

import numpy as np  # noqa: E402

from course_utils.grading import run_check  # noqa: E402


def _additive(query, keys, mask, W_q, W_k, v):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def _result(check_id, fn):
    r = run_check(check_id, fn)
    return r.points, r.max_points, r.feedback()


def test_additive_check_accepts_float64_and_lists():
    def as_float64(*args):
        return tuple(x.double() for x in _additive(*args))

    def as_lists(*args):
        return tuple(x.tolist() for x in _additive(*args))

    for fn in (_additive, as_float64, as_lists):
        points, top, text = _result("03.additive_attention", fn)
        assert points == top, text


def test_additive_check_rejects_the_old_convention_and_an_unstable_softmax():
    def old_convention(query, keys, mask, W_q, W_k, v):   # W s: the column-vector convention of the old exercise
        scores = torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
        return torch.einsum("bs,bsh->bh", weights, keys), weights

    points, _, text = _result("03.additive_attention", old_convention)
    assert points == 0, text

    def naive_softmax(query, keys, mask, W_q, W_k, v):
        scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
        e = torch.exp(scores) * mask
        weights = e / e.sum(-1, keepdim=True)
        return torch.einsum("bs,bsh->bh", weights, keys), weights

    points, top, text = _result("03.additive_attention", naive_softmax)
    assert points == top - 1 and "exp overflows" in text, text


def test_decoder_step_check_refuses_the_finished_step():
    points, _, text = _result("03.decoder_step", lambda decoder, *args: decoder.step(*args))
    assert points == 0 and "unavailable" in text, text


def test_greedy_check_refuses_the_finished_decoder_and_needs_bos_id():
    def finished(model, src, src_len, max_len, bos_id=1):
        return model.greedy_decode(src, src_len, max_len, bos_id=bos_id, return_attention=True)

    points, _, text = _result("03.greedy_decode", finished)
    assert points == 0 and "unavailable" in text, text

    @torch.no_grad()
    def always_one(model, src, src_len, max_len, bos_id=1):   # ignores bos_id
        keys, state, mask, _ = model.encode(src, src_len)
        token = torch.ones(src.shape[0], dtype=torch.long)
        ids, ws = [], []
        for _ in range(max_len):
            logits, state, w = model.decoder.step(token, state, keys, mask)
            token = logits.argmax(-1)
            ids.append(token)
            ws.append(w)
        return torch.stack(ids, 1).numpy(), torch.stack(ws, 1).double()   # NumPy ids, float64 weights

    points, top, text = _result("03.greedy_decode", always_one)
    assert 0 < points < top and "bos_id" in text, text


def test_alignment_check_accepts_numpy_scalars():
    def numpy_answer(weights, true, tgt_len):
        counted = torch.arange(weights.shape[1]).unsqueeze(0) < tgt_len.unsqueeze(1)
        hits = (weights.argmax(-1) == true)[counted].double().numpy()
        mass = weights.gather(-1, true.unsqueeze(-1)).squeeze(-1)[counted].double().numpy()
        return np.mean(hits), torch.tensor(mass.mean())

    points, top, text = _result("03.alignment_scores", numpy_answer)
    assert points == top, text


def test_extra_parameters_check():
    right = lambda E, H, V: 5 * H * H + 2 * H + H * V
    points, top, text = _result("03.extra_parameters", right)
    assert points == top, text
    points, _, text = _result("03.extra_parameters", lambda E, H, V: 5 * H * H + 2 * H)
    assert points == 2 and "output layer" in text, text   # a whole number that is a formula of the sizes
    points, _, text = _result("03.extra_parameters", lambda E, H, V: right(E, H, V) + 3 * E * H - 3 * 32 * 64)
    assert points == 3, text   # right at the lesson's sizes only
    points, _, text = _result("03.extra_parameters", lambda E, H, V: right(E, H, V) + E * H)
    assert points == 2 and "changes with E" in text, text

    def measured(E, H, V):   # counting the course's models is not a prediction
        from course_utils.models import BottleneckSeq2Seq
        count = lambda m: sum(p.numel() for p in m.parameters())
        return count(AttentionSeq2Seq(V, V, E, H)) - count(BottleneckSeq2Seq(V, V, E, H))

    points, _, text = _result("03.extra_parameters", measured)
    assert points == 0 and "prediction" in text, text
    assert AttentionSeq2Seq(5, 5, 2, 3) is not None   # the models build again after the check
