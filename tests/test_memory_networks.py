"""Lesson 11's pieces: addressing (content and location), the NTM, MemN2N, the bAbI-style stories, the copy
task, the stored checkpoint, and the graded checks (solutions pass, finished versions are refused)."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.data.babi import BabiTask, Story, babi_vocab, make_babi_batch
from course_utils.data.copy_task import bit_accuracy, copy_batch, copy_loss, sample_copy_batch, sequence_accuracy
from course_utils.grading.core import run_check
from course_utils.models import memory
from course_utils.models.attention import masked_softmax
from course_utils.models.memory_checkpoint import (CONFIG, build_models, checkpoint_path, copy_report, load_checkpoint,
                                                   save_checkpoint, write_shifts)

META = torch.device("meta")


# --------------------------------------------------------------------------- addressing


def test_content_addressing_is_masked_softmax_of_scaled_cosine():
    g = torch.Generator().manual_seed(0)
    mem, key, beta = torch.randn(3, 7, 5, generator=g), torch.randn(3, 5, generator=g), torch.tensor([0.5, 4.0, 300.0])
    cos = torch.nn.functional.cosine_similarity(mem, key[:, None, :], dim=-1)
    assert torch.allclose(memory.cosine_similarity(mem, key), cos, atol=1e-6)
    w = memory.content_addressing(mem, key, beta)
    assert torch.allclose(w, masked_softmax(beta[:, None] * cos), atol=1e-6)
    assert torch.isfinite(w).all() and torch.allclose(w.sum(-1), torch.ones(3))
    # scale invariance of cosine: a row scaled by 1000 keeps its weight
    big = mem.clone()
    big[:, 2] *= 1000
    assert torch.allclose(memory.content_addressing(big, key, beta), w, atol=1e-5)
    # a mask removes slots
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[:, 0] = False
    assert (memory.content_addressing(mem, key, beta, keep)[:, 0] == 0).all()


def test_zero_rows_give_finite_weights_and_gradients():
    mem = torch.zeros(2, 4, 3, requires_grad=True)
    key = torch.randn(2, 3, requires_grad=True)
    w = memory.content_addressing(mem, key, torch.tensor([1.0, 2.0]))
    assert torch.allclose(w, torch.full((2, 4), 0.25))
    w[:, 0].sum().backward()
    assert torch.isfinite(mem.grad).all() and torch.isfinite(key.grad).all()


def test_circular_shift_moves_forward_and_wraps():
    w = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    assert torch.equal(memory.circular_shift(w, torch.tensor([[0.0, 0.0, 1.0]])), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert torch.equal(memory.circular_shift(w, torch.tensor([[1.0, 0.0, 0.0]])), torch.tensor([[0.0, 0.0, 1.0, 0.0]]))
    five = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]])       # offsets -2..2
    assert torch.equal(memory.circular_shift(w, five), torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="odd"):
        memory.circular_shift(w, torch.ones(1, 2) / 2)


def test_sharpen_is_stable_for_large_gamma():
    w = torch.tensor([[0.3, 0.2, 0.1, 0.4 - 1e-3, 1e-3]])
    out = memory.sharpen(w, torch.tensor([80.0]))
    assert torch.isfinite(out).all() and out[0, 3] > 0.99
    assert torch.allclose(memory.sharpen(w, torch.tensor([1.0])), w / w.sum())
    ref = w.double() ** 2 / (w.double() ** 2).sum()
    assert torch.allclose(memory.sharpen(w, torch.tensor([2.0])).double(), ref, atol=1e-6)


def test_interpolate_read_write():
    wc, wp = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.allclose(memory.interpolate(wc, wp, torch.tensor([0.25])), torch.tensor([[0.25, 0.75]]))
    mem = torch.arange(6.0).view(1, 3, 2)
    w = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.equal(memory.read_memory(mem, w), torch.tensor([[2.0, 3.0]]))
    new = memory.write_memory(mem, w, erase=torch.ones(1, 2), add=torch.tensor([[7.0, 8.0]]))
    assert torch.equal(new[0, 1], torch.tensor([7.0, 8.0])) and torch.equal(new[0, [0, 2]], mem[0, [0, 2]])
    assert torch.equal(mem, torch.arange(6.0).view(1, 3, 2)), "write_memory must not change its input"


# --------------------------------------------------------------------------- models


def test_ntm_shapes_weights_and_ablation():
    torch.manual_seed(0)
    x = copy_batch(3, 4, 6, seed=1).inputs
    for location in (True, False):
        ntm = memory.NTM(7, 6, hidden=16, slots=10, width=5, location=location)
        logits, weights = ntm(x, return_weights=True)
        assert logits.shape == (3, 9, 6) and weights["read"].shape == weights["write"].shape == (3, 9, 10)
        assert torch.allclose(weights["write"].sum(-1), torch.ones(3, 9), atol=1e-5)
        assert torch.equal(ntm(x), logits)


def test_memn2n_attention_is_masked_and_sums_to_one():
    task = BabiTask(2)
    batch = task.batch(8, seed=3)
    model = memory.MemN2N(len(task.vocab), dim=16, hops=3, max_sentences=task.max_sentences)
    logits, att = model(batch.story, batch.question)
    L = batch.story.shape[1]
    assert logits.shape == (8, len(task.vocab)) and att.shape == (8, 3, L)
    real = torch.arange(L)[None, :] < batch.n_sentences[:, None]
    assert torch.allclose(att.sum(-1), torch.ones(8, 3), atol=1e-6)
    assert (att.masked_select(~real[:, None, :].expand_as(att)) == 0).all()
    with pytest.raises(ValueError, match="at most"):
        memory.MemN2N(len(task.vocab), dim=8, hops=1, max_sentences=3)(batch.story, batch.question)


def test_models_run_on_meta():
    x = copy_batch(2, 3, 6).inputs.to(META)
    for model in (memory.NTM(7, 6, hidden=8, slots=6, width=4), memory.NTM(7, 6, hidden=8, slots=6, width=4,
                                                                           location=False)):
        logits, weights = model.to(META)(x, return_weights=True)
        assert logits.device == META and weights["write"].shape == (2, 7, 6)
    assert memory.CopyLSTM(7, 6, hidden=8).to(META)(x).device == META
    batch = BabiTask(1).batch(4, seed=0).to(META)
    logits, att = memory.MemN2N(len(babi_vocab()), dim=8, hops=2, max_sentences=12).to(META)(batch.story, batch.question)
    assert logits.device == META and att.device == META
    assert memory.position_encoding(5, 8, device=META).device == META
    mem, key = torch.randn(2, 5, 3, device=META), torch.randn(2, 3, device=META)
    assert memory.content_addressing(mem, key, torch.ones(2, device=META)).device == META


# --------------------------------------------------------------------------- data


def test_babi_stories_are_seeded_and_answers_follow_from_supporting_facts():
    for task in (1, 2):
        gen = BabiTask(task)
        a, b = gen.sample(50, seed=4), gen.sample(50, seed=4)
        assert [str(s) for s in a] == [str(s) for s in b]
        assert [str(s) for s in gen.sample(50, seed=5)] != [str(s) for s in a]
        for s in a:
            assert len(s.supporting) == task and all(0 <= i < len(s.sentences) for i in s.supporting)
            assert s.supporting == sorted(s.supporting)
            # the answer place is named by a supporting sentence; and the asked-about entity is too
            assert any(s.answer in s.sentences[i] for i in s.supporting)
            assert any(s.question[-1] in s.sentences[i] for i in s.supporting)
            assert gen.min_sentences <= len(s.sentences) <= gen.max_sentences


def test_babi_task1_answer_is_the_persons_last_move():
    for s in BabiTask(1).sample(100, seed=0):
        person = s.question[-1]
        moves = [i for i, words in enumerate(s.sentences) if words[0] == person]
        assert s.supporting == [moves[-1]] and s.sentences[moves[-1]][-1] == s.answer


def test_babi_batch():
    stories = BabiTask(2).sample(5, seed=1)
    vocab = babi_vocab()
    batch = make_babi_batch(stories, vocab, max_sentences=12)
    assert batch.story.shape[:2] == (5, 12) and batch.question.shape[0] == 5
    for b, s in enumerate(stories):
        assert vocab.decode(batch.story[b, 0].tolist()) == s.sentences[0]
        assert vocab.itos[int(batch.answer[b])] == s.answer
        assert batch.supporting[b].nonzero().flatten().tolist() == s.supporting
        assert int(batch.n_sentences[b]) == len(s.sentences)
        assert (batch.story[b, len(s.sentences):] == 0).all()
    with pytest.raises(ValueError):
        make_babi_batch(stories, vocab, max_sentences=2)
    with pytest.raises(ValueError):
        BabiTask(3)


def test_copy_task_layout_and_metrics():
    b = copy_batch(4, 3, 5, seed=0)
    assert b.inputs.shape == (4, 7, 6) and b.targets.shape == (4, 7, 5) and b.mask.tolist() == [False] * 4 + [True] * 3
    assert torch.equal(b.targets[:, 4:], b.inputs[:, :3, :5]) and (b.inputs[:, 3, 5] == 1).all()
    assert torch.equal(copy_batch(4, 3, 5, seed=0).inputs, b.inputs)
    perfect = torch.where(b.targets > 0, 10.0, -10.0)
    assert bit_accuracy(perfect, b) == 1.0 and sequence_accuracy(perfect, b) == 1.0
    assert copy_loss(perfect, b) < 1e-3
    g = torch.Generator().manual_seed(0)
    lengths = {sample_copy_batch(2, 1, 3, generator=g).length for _ in range(30)}
    assert lengths == {1, 2, 3}


def test_write_shifts():
    w = torch.zeros(1, 5, 6)
    for t, slot in enumerate([0, 1, 2, 4, 5]):
        w[0, t, slot] = 1
    assert write_shifts(w, 5).tolist() == [[1, 1, 2, 1]]
    w2 = torch.zeros(1, 3, 4)
    w2[0, 0, 3], w2[0, 1, 0], w2[0, 2, 1] = 1, 1, 1
    assert write_shifts(w2, 3).tolist() == [[1, 1]], "a move from the last slot to slot 0 is one step"


# --------------------------------------------------------------------------- checkpoint


def test_shipped_checkpoint_loads_and_is_small(tmp_path):
    path = checkpoint_path(0)
    assert path.exists(), "run python -m course_utils.models.memory_checkpoint --seed 0"
    assert path.stat().st_size < 100_000
    models, meta = load_checkpoint(0)
    assert meta["seed"] == 0 and set(models) == {"ntm", "content_only", "lstm"}
    report = copy_report(models, n=20)
    assert report["ntm"][f"bits@{CONFIG['test_length']}"] > 0.95
    # saving and loading round-trips (float16 parameters)
    save_checkpoint(models, tmp_path / "c.pt", seed=0)
    again, _ = load_checkpoint(path=tmp_path / "c.pt")
    x = copy_batch(2, 3, CONFIG["bits"]).inputs
    assert torch.equal(again["ntm"](x), models["ntm"](x))
    assert set(build_models()) == set(models)


# --------------------------------------------------------------------------- checks


def _wrong_content(memory_, key, beta):       # dot product instead of cosine
    return torch.softmax(beta[:, None] * (memory_ @ key[..., None]).squeeze(-1), -1)


def _naive_sharpen(w, gamma):
    p = w ** gamma[:, None]
    return p / p.sum(-1, keepdim=True)


def test_checks_refuse_finished_versions_and_name_mistakes():
    res = run_check("11.content_addressing", memory.content_addressing)
    assert res.points == 0 and "switched off" in res.message
    res = run_check("11.content_addressing", _wrong_content)
    assert 0 < res.points < res.max_points and "cosine" in res.feedback()
    res = run_check("11.shift_sharpen", memory.circular_shift, _naive_sharpen)
    assert res.points == 0
    ok_shift = lambda w, s: sum(s[:, j:j + 1] * torch.roll(w, k, -1) for j, k in enumerate(range(-(s.shape[-1] // 2),
                                                                                           s.shape[-1] // 2 + 1)))
    res = run_check("11.shift_sharpen", ok_shift, _naive_sharpen)
    assert res.points == res.max_points - 1 and "maximum" in res.feedback()
    # still works after a check ran: the finished code is restored
    assert memory.content_addressing(torch.randn(1, 3, 2), torch.randn(1, 2), torch.tensor([1.0])).shape == (1, 3)


def test_memory_hop_check_finds_missing_mask_and_residual():
    def no_mask(u, m, c, mask):
        p = torch.softmax((m @ u[..., None]).squeeze(-1), -1)
        return u + (p[:, None] @ c).squeeze(1), p

    def no_residual(u, m, c, mask):
        p = masked_softmax((m @ u[..., None]).squeeze(-1), mask)
        return (p[:, None] @ c).squeeze(1), p

    res = run_check("11.memory_hop", no_mask)
    assert res.points < res.max_points and "-inf" in res.feedback()
    res = run_check("11.memory_hop", no_residual)
    assert res.points == res.max_points - 1 and "u + o" in res.feedback()
    res = run_check("11.predict", lambda: (0.5, 0.5))
    assert res.points == 1
    assert math.isclose(0.25 / 0.38, 0.6578947, rel_tol=1e-6)
