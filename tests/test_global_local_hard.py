"""Unit tests of lesson 04's pieces: Luong attention (course_utils.models.luong_attention), hard attention
and REINFORCE (course_utils.models.hard_attention), and the lookup task (course_utils.data.lookup)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import seed_everything
from course_utils.data import LookupTask
from course_utils.models import masked_softmax
from course_utils.models import hard_attention as hard
from course_utils.models.luong_attention import (SCORES, WINDOWS, LuongAttention, LuongSeq2Seq, gaussian_window,
                                                 spread_weights, window_mask, window_positions)
from course_utils.training import train

B, S, T, H = 3, 7, 5, 6
SRC_LEN = torch.tensor([7, 4, 2])


def _layer(window, score="general", D=2, seed=0):
    torch.manual_seed(seed)
    return LuongAttention(H, score, window, D)


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, H, generator=g), torch.randn(B, S, H, generator=g)


# --------------------------------------------------------------------------- windows


def test_window_positions_and_mask():
    positions = window_positions(torch.tensor([[0, 3]]), 1)
    assert positions.tolist() == [[[-1, 0, 1], [2, 3, 4]]]
    assert window_mask(positions, torch.tensor([4])).tolist() == [[[False, True, True], [True, True, False]]]


def test_gaussian_window_peaks_at_the_centre_with_sigma_d_over_2():
    positions = torch.arange(5).view(1, 1, 5)
    g = gaussian_window(positions, torch.tensor([[2.0]]), sigma=1.0)
    assert torch.allclose(g[0, 0], torch.exp(-torch.tensor([4.0, 1.0, 0.0, 1.0, 4.0]) / 2))
    assert _layer("local-p", D=4).sigma == 2.0


def test_spread_weights_puts_window_weights_at_their_positions():
    weights = torch.tensor([[[0.2, 0.3, 0.5]]])
    positions = torch.tensor([[[-1, 0, 1]]])                 # position -1 lies outside the sentence
    assert torch.allclose(spread_weights(weights, positions, 3), torch.tensor([[[0.3, 0.5, 0.0]]]))
    assert spread_weights(weights, None, 3) is weights      # global weights are already (B, T, S)


# --------------------------------------------------------------------------- LuongAttention


@pytest.mark.parametrize("score", SCORES)
def test_global_is_a_masked_softmax_of_the_score(score):
    layer = _layer("global", score)
    query, keys = _inputs()
    context, weights, positions = layer(query, keys, SRC_LEN)
    assert positions is None and weights.shape == (B, T, S)
    padding = torch.arange(S) < SRC_LEN.view(-1, 1, 1)
    want = masked_softmax(layer.score(query, keys), padding)
    assert torch.allclose(weights, want, atol=1e-6) and torch.allclose(context, want @ keys, atol=1e-5)
    assert (weights[1, :, 4:] == 0).all() and torch.allclose(weights.sum(-1), torch.ones(B, T))


@pytest.mark.parametrize("score", SCORES)
def test_window_scores_equal_the_score_module(score):
    layer = _layer("local-m", score)
    query, keys = _inputs()
    window_keys = keys[:, :3].unsqueeze(1).expand(B, T, 3, H)
    want = layer.score(query.unsqueeze(-2), window_keys).squeeze(-2)
    assert torch.allclose(layer.window_scores(query, window_keys), want, atol=1e-5)


def test_concat_score_is_v_tanh_of_w_times_the_concatenation():
    layer = _layer("global", "concat")
    query, keys = _inputs()
    W_a = torch.cat([layer.score.W_q.weight, layer.score.W_k.weight], dim=1)          # (A, 2H)
    pairs = torch.cat([query.unsqueeze(2).expand(B, T, S, H), keys.unsqueeze(1).expand(B, T, S, H)], -1)
    want = torch.tanh(pairs @ W_a.T) @ layer.score.v.weight[0]
    assert torch.allclose(layer.score(query, keys), want, atol=1e-5)


def test_local_m_equals_global_restricted_to_the_window():
    glob, local = _layer("global"), _layer("local-m", D=1)
    local.score.load_state_dict(glob.score.state_dict())
    query, keys = _inputs()
    _, weights, positions = local(query, keys, SRC_LEN, first_step=2)
    t = 2 + torch.arange(T).view(1, T, 1)
    s = torch.arange(S).view(1, 1, S)
    mask = ((s - t).abs() <= 1) & (s < SRC_LEN.view(-1, 1, 1))
    want = masked_softmax(glob.score(query, keys), mask)
    assert torch.allclose(spread_weights(weights, positions, S), want, atol=1e-6)
    assert (positions[:, :, 1] == 2 + torch.arange(T)).all()                          # centres p_t = t


def test_local_p_centres_gaussian_and_window():
    layer = _layer("local-p", D=2)
    query, keys = _inputs()
    p = layer.centres(query, SRC_LEN)
    assert p.shape == (B, T) and ((p > 0) & (p < SRC_LEN.view(-1, 1))).all()
    _, weights, positions = layer(query, keys, SRC_LEN)
    assert (positions[:, :, 2] == p.round().long()).all()
    inside = window_mask(positions, SRC_LEN)
    assert (weights[~inside] == 0).all()
    align = weights / gaussian_window(positions, p, 1.0)                               # undo the Gaussian
    assert torch.allclose(align.sum(-1), torch.ones(B, T), atol=1e-5)                 # a softmax over the window
    assert (weights.sum(-1) <= 1 + 1e-6).all()


@pytest.mark.parametrize("window", WINDOWS)
def test_scores_computed_is_counted_exactly(window):
    layer = _layer(window, D=2)
    query, keys = _inputs()
    layer(query, keys, SRC_LEN)
    layer(query[:, :2], keys, SRC_LEN)
    per_step = S if window == "global" else 5
    assert layer.scores_computed == B * (T + 2) * per_step


@pytest.mark.parametrize("kwargs, message", [
    (dict(score="cosine"), "score must be one of"),
    (dict(window="local"), "window must be one of"),
    (dict(window="local-m", D=0), "positive int"),
    (dict(window="local-m", D=1.5), "positive int"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LuongAttention(H, **kwargs)


# --------------------------------------------------------------------------- LuongSeq2Seq
# (the padded `batch` fixture comes from conftest.py)


def _model(window, score="general", seed=0):
    torch.manual_seed(seed)
    return LuongSeq2Seq(9, 11, emb_size=4, hidden_size=6, score=score, window=window, D=1).eval()


@pytest.mark.parametrize("window", WINDOWS)
def test_model_shapes_and_padding(window, batch):
    src, src_len, tgt_in = batch
    model = _model(window)
    logits, weights = model(src, src_len, tgt_in, return_attention=True)
    assert logits.shape == (3, 4, 11) and weights.shape == (3, 4, 5)
    assert (weights[1, :, 3:] == 0).all() and (weights[2, :, 1:] == 0).all()
    other = src.clone()
    other[1, 3:] = 7                                         # junk in the padding changes nothing
    assert torch.allclose(model(other, src_len, tgt_in), logits, atol=1e-6)


@pytest.mark.parametrize("window", WINDOWS)
def test_greedy_equals_teacher_forcing_on_its_own_predictions(window, batch):
    src, src_len, _ = batch
    model = _model(window, seed=3)
    with torch.no_grad():
        model.out.weight.mul_(4)                              # varied predictions, not one repeated word
    ids, weights = model.greedy_decode(src, src_len, max_len=6, return_attention=True)
    assert ids.shape == (3, 6) and weights.shape == (3, 6, 5)
    tgt_in = torch.cat([torch.ones(3, 1, dtype=torch.long), ids[:, :-1]], dim=1)
    logits, tf_weights = model(src, src_len, tgt_in, return_attention=True)
    assert torch.equal(logits.argmax(-1), ids)
    assert torch.allclose(weights, tf_weights, atol=1e-6)     # local-m's centre is the step, in both modes


@pytest.mark.parametrize("window, score", [("global", "dot"), ("global", "concat"), ("local-m", "general"),
                                           ("local-p", "general")])
def test_gradients_reach_every_parameter(window, score, batch):
    src, src_len, tgt_in = batch
    model = _model(window, score).train()
    model(src, src_len, tgt_in).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_model_rejects_bad_input(batch):
    src, src_len, tgt_in = batch
    model = _model("local-m")
    with pytest.raises(ValueError, match="src has 3 rows but tgt_in has 2"):
        model(src, src_len, tgt_in[:2])
    with pytest.raises(ValueError, match="src_len must lie"):
        model(src, torch.tensor([5, 0, 1]), tgt_in)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        model.greedy_decode(src, src_len, max_len=0)


# --------------------------------------------------------------------------- the lookup task


def test_lookup_task_is_seeded_and_consistent():
    task = LookupTask(n_pairs=6, n_keys=9, n_values=4)
    a, b = task.sample(50, seed=3), task.sample(50, seed=3)
    assert all(torch.equal(x, y) for x, y in zip((a.keys, a.values, a.query, a.target), (b.keys, b.values, b.query, b.target)))
    assert a.keys.shape == a.values.shape == (50, 6) and len(a) == 50
    assert all(len(set(row)) == 6 for row in a.keys.tolist())                        # distinct keys per table
    rows = torch.arange(50)
    assert torch.equal(a.keys[rows, a.position], a.query) and torch.equal(a.values[rows, a.position], a.target)
    assert int(a.keys.max()) < 9 and int(a.values.max()) < 4
    assert not torch.equal(task.sample(50, seed=4).keys, a.keys)


@pytest.mark.parametrize("kwargs, message", [(dict(n_pairs=0), "n_pairs"), (dict(n_pairs=5, n_keys=4), "distinct"),
                                             (dict(n_values=1), "n_values")])
def test_lookup_task_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LookupTask(**kwargs)


# --------------------------------------------------------------------------- hard attention


def test_reinforce_loss_value_and_gradient():
    log_prob = torch.log(torch.tensor([0.5, 0.2, 0.9])).requires_grad_()
    reward = torch.tensor([1.0, -1.0, 2.0], requires_grad=True)
    loss = hard.reinforce_loss(log_prob, reward, 0.5)
    assert math.isclose(loss.item(), -((reward.detach() - 0.5) * log_prob.detach()).mean().item(), rel_tol=1e-6)
    loss.backward()
    assert torch.allclose(log_prob.grad, -(reward.detach() - 0.5) / 3)
    assert reward.grad is None                                # the reward is a constant


def test_moving_average_baseline():
    b = hard.MovingAverageBaseline(momentum=0.5)
    assert b() == 0.0
    b.update(torch.tensor([2.0, 4.0]))
    assert b() == 3.0                                         # starts at the first batch's mean
    b.update(torch.tensor([1.0]))
    assert b() == 2.0
    with pytest.raises(ValueError, match="momentum"):
        hard.MovingAverageBaseline(1.0)


def test_sample_position_follows_the_weights():
    weights = torch.tensor([[0.1, 0.0, 0.9]]).expand(4000, 3)
    chosen = hard.sample_position(weights, torch.Generator().manual_seed(0))
    assert chosen.shape == (4000,) and not (chosen == 1).any()
    assert abs((chosen == 2).float().mean().item() - 0.9) < 0.03


def test_lookup_attention_reads_and_modes():
    task = LookupTask()
    batch = task.sample(10, seed=0)
    torch.manual_seed(0)
    model = hard.LookupAttention(task.n_keys, task.n_values, d=8)
    logits, weights, chosen = model(batch, "soft")
    assert logits.shape == (10, task.n_values) and chosen is None and model.values_read == 10 * task.n_pairs
    assert torch.allclose(weights.sum(-1), torch.ones(10))
    model.values_read = 0
    _, weights, chosen = model.eval()(batch, "hard")
    assert torch.equal(chosen, weights.argmax(-1)) and model.values_read == 10     # eval: the most likely, one read
    with pytest.raises(ValueError, match="mode"):
        model(batch, "medium")


def test_hard_loss_trains_only_attention_through_reinforce():
    task = LookupTask()
    batch = task.sample(32, seed=1)
    torch.manual_seed(0)
    model = hard.LookupAttention(task.n_keys, task.n_values, d=8)
    hard.hard_loss(model, batch, 0.0).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.zero_grad()
    # the REINFORCE term alone: gradients only for the attention's parameters, none for the reader
    logits, weights, chosen = model(batch, "hard")
    reward = -F.cross_entropy(logits, batch.target, reduction="none")
    hard.reinforce_loss(torch.log(weights.gather(1, chosen[:, None])[:, 0]), reward, -2.0).backward()
    assert model.out.weight.grad is None and model.query_embed.weight.grad.abs().sum() > 0


def test_gradient_samples_and_relative_variance():
    same = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    assert hard.relative_variance(same) == 0.0
    assert math.isclose(hard.relative_variance(torch.tensor([[1.0, 0.0], [3.0, 0.0]])), 1 / 4)
    with pytest.raises(ValueError, match="at least two"):
        hard.relative_variance(torch.ones(1, 3))
    task = LookupTask()
    torch.manual_seed(0)
    model = hard.LookupAttention(task.n_keys, task.n_values, d=8)
    grads = hard.gradient_samples(model, hard.soft_loss, [task.sample(8, seed=k) for k in range(3)],
                                  model.attention_parameters())
    assert grads.shape == (3, 2 * task.n_keys * 8)
    assert all(p.grad is None for p in model.parameters())   # nothing left behind


def test_soft_and_hard_attention_learn_the_lookup():
    task = LookupTask(n_pairs=4, n_keys=8, n_values=6)
    test_batch = task.sample(500, seed=99)
    for mode in ("soft", "hard"):
        seed_everything(0)
        model = hard.LookupAttention(task.n_keys, task.n_values, d=16)
        baseline = hard.MovingAverageBaseline()
        loss = hard.soft_loss if mode == "soft" else (lambda m, b: hard.hard_loss(m, b, baseline))
        train(model, lambda step: task.sample(64, seed=step), loss, steps=200, lr=1e-2, progress=False)
        assert hard.lookup_accuracy(model, test_batch, mode) > 0.9, mode


# --------------------------------------------------------------------------- the exercise checks


def _lp_solution(h, keys, src_len, W_p, v_p, W_a, D, transpose_W_p=False, naive_softmax=False, clip_end=True):
    W_p = W_p.T if transpose_W_p else W_p
    p = src_len.to(h.dtype) * torch.sigmoid(torch.tanh(h @ W_p) @ v_p)
    s = torch.arange(keys.shape[1]).unsqueeze(0)
    window = (s - p.round().unsqueeze(1)).abs() <= D
    if clip_end:
        window = window & (s < src_len.unsqueeze(1))
    scores = (keys @ (h @ W_a).unsqueeze(-1)).squeeze(-1)
    if naive_softmax:
        e = torch.exp(scores) * window
        weights = e / e.sum(-1, keepdim=True)
    else:
        weights = masked_softmax(scores, window)
    weights = weights * torch.exp(-(s - p.unsqueeze(1)) ** 2 / (2 * (D / 2) ** 2))
    return (weights.unsqueeze(1) @ keys).squeeze(1), weights, p


def test_local_p_check_accepts_any_float_form_and_catches_slips():
    from course_utils.grading.core import run_check
    full = run_check("04.local_p_attention", _lp_solution)
    assert full.points == full.max_points, full.feedback()
    as_numpy = run_check("04.local_p_attention", lambda *a: tuple(x.double().numpy() for x in _lp_solution(*a)))
    assert as_numpy.points == as_numpy.max_points, as_numpy.feedback()
    for slip, where in (({"transpose_W_p": True}, "transposed"), ({"naive_softmax": True}, "not finite"),
                        ({"clip_end": False}, "s < src_len")):
        result = run_check("04.local_p_attention", lambda *a, slip=slip: _lp_solution(*a, **slip))
        assert result.points < result.max_points and where in result.feedback(), (slip, result.feedback())


def test_mirror_reach_check():
    from course_utils.grading.core import run_check

    def reach(S, D):
        t = torch.arange(S)
        return ((S - 1 - t) - t).abs() <= D
    assert run_check("04.mirror_reach", reach, lambda: 2, lambda S: S - 1).points == 4
    assert run_check("04.mirror_reach", lambda S, D: reach(S, D).tolist(), lambda: 2.0, lambda S: S - 1).points == 4
    wrong = run_check("04.mirror_reach", lambda S, D: reach(S, D - 1), lambda: 3, lambda S: S)
    assert wrong.points == 1 and "first difference" in wrong.feedback()
    assert run_check("04.mirror_reach", reach, lambda: 2, lambda S: S - 1).status == "graded"
