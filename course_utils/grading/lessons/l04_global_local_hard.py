"""Checks for exercises/04_global_local_hard.ipynb: Luong's three scores, the local-m window mask, one
step of local-p attention (predicted centre, window, Gaussian), and the REINFORCE loss with a baseline."""

from __future__ import annotations

import math

import torch

from ..core import register
from ..tensor_checks import close, describe, is_tensor, rounded

SET = "04_global_local_hard"


# --------------------------------------------------------------------------- references


def _ref_scores(h, keys, kind, W_a=None, v_a=None):
    if kind == "dot":
        return torch.einsum("bh,bsh->bs", h, keys)
    if kind == "general":
        return torch.einsum("bh,hk,bsk->bs", h, W_a, keys)
    pairs = torch.cat([h.unsqueeze(1).expand_as(keys), keys], dim=-1)
    return torch.tanh(pairs @ W_a.T) @ v_a


def _ref_local_m(T, src_len, S, D):
    t = torch.arange(T).view(1, T, 1)
    s = torch.arange(S).view(1, 1, S)
    return ((s - t).abs() <= D) & (s < src_len.view(-1, 1, 1))


def _ref_local_p(h, keys, src_len, W_p, v_p, W_a, D, gaussian=True, softmax_first=True):
    p = src_len.to(h.dtype) * torch.sigmoid(torch.tanh(h @ W_p.T) @ v_p)                    # (B,)
    s = torch.arange(keys.shape[1]).view(1, -1)
    window = ((s - p.round().unsqueeze(1)).abs() <= D) & (s < src_len.view(-1, 1))            # (B, S)
    scores = torch.einsum("bh,hk,bsk->bs", h, W_a, keys)
    g = torch.exp(-(s - p.unsqueeze(1)) ** 2 / (2 * (D / 2) ** 2)) if gaussian else torch.ones_like(scores)
    if softmax_first:
        weights = torch.softmax(scores.masked_fill(~window, float("-inf")), dim=-1) * g
    else:  # the Gaussian folded into the scores before the softmax: a common slip
        weights = torch.softmax((scores + torch.log(g)).masked_fill(~window, float("-inf")), dim=-1)
    return torch.einsum("bs,bsh->bh", weights, keys), weights, p


# --------------------------------------------------------------------------- checks


@register("04.luong_scores", title="Luong's three scores: dot, general, concat", exercise_set=SET, points=4)
def check_luong_scores(t, luong_scores):
    g = torch.Generator().manual_seed(4)
    B, S, H, A = 2, 5, 3, 4
    h, keys = torch.randn(B, H, generator=g), torch.randn(B, S, H, generator=g)
    W_gen = torch.randn(H, H, generator=g)            # not symmetric: h^T W k differs from h^T W^T k
    W_cat, v_a = torch.randn(A, 2 * H, generator=g), torch.randn(A, generator=g)

    got = t.call(luong_scores, h, keys, "dot")
    t.require(is_tensor(got, (B, S)), 1, "returns scores of shape (B, S)",
              f"h (2, 3) and keys (2, 5, 3) should give scores (2, 5), got {describe(got)}")
    want = _ref_scores(h, keys, "dot")
    t.expect(close(got, want), 1, "dot: h_t . hbar_s",
             f"score[b, s] = sum_h h[b, h] * keys[b, s, h]; row 0 should be {rounded(want[0])}, got {rounded(got[0])}")

    got = t.call(luong_scores, h, keys, "general", W_a=W_gen)
    want = _ref_scores(h, keys, "general", W_gen)
    if is_tensor(got, (B, S)) and close(got, _ref_scores(h, keys, "general", W_gen.T)):
        hint = "you used W_a transposed: the general score is h^T W_a hbar_s, i.e. (h @ W_a) . hbar_s"
    else:
        hint = f"general is h^T W_a hbar_s; row 0 should be {rounded(want[0])}, got " \
               f"{rounded(got[0]) if is_tensor(got, (B, S)) else describe(got)}"
    t.expect(close(got, want), 1, "general: h_t^T W_a hbar_s", hint)

    got = t.call(luong_scores, h, keys, "concat", W_a=W_cat, v_a=v_a)
    want = _ref_scores(h, keys, "concat", W_cat, v_a)
    swapped = torch.tanh(torch.cat([keys, h.unsqueeze(1).expand_as(keys)], dim=-1) @ W_cat.T) @ v_a
    if is_tensor(got, (B, S)) and close(got, swapped):
        hint = "you concatenated [hbar_s; h_t]; Luong's order is [h_t; hbar_s] (the decoder state first)"
    elif is_tensor(got, (B, S)) and close(got, (torch.cat([h.unsqueeze(1).expand_as(keys), keys], -1) @ W_cat.T) @ v_a):
        hint = "the tanh is missing: v_a . tanh(W_a [h_t; hbar_s])"
    else:
        hint = f"concat is v_a . tanh(W_a [h_t; hbar_s]) with W_a of shape (A, 2H); row 0 should be " \
               f"{rounded(want[0])}, got {rounded(got[0]) if is_tensor(got, (B, S)) else describe(got)}"
    t.expect(close(got, want), 1, "concat: v_a . tanh(W_a [h_t; hbar_s])", hint)


@register("04.local_m_mask", title="the local-m window: |s - t| <= D inside the sentence", exercise_set=SET, points=3)
def check_local_m_mask(t, local_m_mask):
    T, S, D = 6, 7, 2
    src_len = torch.tensor([7, 3])
    got = t.call(local_m_mask, T, src_len, S, D)
    t.require(is_tensor(got, (2, T, S)) and got.dtype == torch.bool, 1, "returns a bool mask of shape (B, T, S)",
              f"T=6, two sentences, S=7 should give a (2, 6, 7) bool tensor, got {describe(got)}"
              + (f" of dtype {got.dtype}" if isinstance(got, torch.Tensor) else ""))
    want = _ref_local_m(T, src_len, S, D)
    row0 = got[0].int().tolist()
    if torch.equal(got[0], _ref_local_m(T, src_len, S, D - 1)[0]) or torch.equal(got[0], _ref_local_m(T, src_len, S, D + 1)[0]):
        hint = "off by one: the window is t - D .. t + D inclusive (2D + 1 positions), i.e. |s - t| <= D"
    else:
        hint = f"for the full-length sentence, step t keeps positions s with |s - t| <= D; expected rows " \
               f"{want[0].int().tolist()[:3]}..., got {row0[:3]}..."
    t.expect(torch.equal(got[0], want[0]), 1, "the window t-D .. t+D (full-length sentence)", hint)
    # judged apart from the window itself: nothing at s >= 3, and the full sentence's window elsewhere
    padded_ok = bool(got[1].any()) and not bool(got[1][:, 3:].any()) and torch.equal(got[1][:, :3], got[0][:, :3])
    t.expect(padded_ok, 1, "positions past the sentence's end are masked",
             "sentence 1 has 3 words: positions s >= src_len[b] must be False even inside the window (and the "
             f"positions before its end keep the same window as in a full sentence); got {got[1].int().tolist()}")


@register("04.local_p_attention", title="one step of local-p attention: predicted centre, window, Gaussian",
          exercise_set=SET, points=6)
def check_local_p_attention(t, local_p_attention):
    g = torch.Generator().manual_seed(7)
    B, S, H, D = 3, 9, 4, 2
    h, keys = torch.randn(B, H, generator=g), torch.randn(B, S, H, generator=g)
    W_p, v_p, W_a = torch.randn(H, H, generator=g), 2 * torch.randn(H, generator=g), torch.randn(H, H, generator=g)
    src_len = torch.tensor([9, 6, 4])
    got = t.call(local_p_attention, h, keys, src_len, W_p, v_p, W_a, D)
    t.require(isinstance(got, (tuple, list)) and len(got) == 3 and is_tensor(got[0], (B, H))
              and is_tensor(got[1], (B, S)) and is_tensor(got[2], (B,)), 1,
              "returns (context, weights, p) of shapes (B, H), (B, S), (B,)",
              f"with B=3, S=9, H=4 expected (3, 4), (3, 9), (3,); got "
              f"{[describe(x) for x in got] if isinstance(got, (tuple, list)) else describe(got)}")
    context, weights, p = (x.detach().float() for x in got)
    want_c, want_w, want_p = _ref_local_p(h, keys, src_len, W_p, v_p, W_a, D)
    if close(p, want_p / src_len):
        hint = "p_t must be scaled by the sentence's length: p_t = S_b * sigmoid(v_p . tanh(W_p h_t))"
    elif close(p, keys.shape[1] * want_p / src_len):
        hint = "use each sentence's own length src_len[b], not the padded length S"
    else:
        hint = f"p_t = S_b * sigmoid(v_p . tanh(W_p h_t)) (W_p h is h @ W_p.T); expected {rounded(want_p)}, got {rounded(p)}"
    t.expect(close(p, want_p), 1, "the predicted centre p_t = S_b sigmoid(v_p . tanh(W_p h_t))", hint)

    p_ok = close(p, want_p)
    window = want_w > 0
    outside = weights.masked_fill(window, 0.0).abs().max().item()
    inside_ok = bool((weights[window] > 0).all())
    if not p_ok:
        hint = "the window is centred on round(p_t): fix p_t first"
    elif outside >= 1e-7:
        hint = f"a position s gets weight only if |s - round(p_t)| <= D and s < src_len[b]; the largest weight " \
               f"outside was {outside:.3g}"
    else:
        hint = "every position inside the window should get some weight (a softmax times a Gaussian is never 0)"
    t.expect(outside < 1e-7 and inside_ok, 1,
             "weight on the window round(p_t) +- D inside the sentence, zero everywhere else", hint)
    no_gauss = _ref_local_p(h, keys, src_len, W_p, v_p, W_a, D, gaussian=False)[1]
    gauss_first = _ref_local_p(h, keys, src_len, W_p, v_p, W_a, D, softmax_first=False)[1]
    if not p_ok:
        hint = "the weights depend on p_t (its window and its Gaussian): fix p_t first"
    elif close(weights, no_gauss):
        hint = "the weights sum to one: multiply the window's softmax by the Gaussian exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D / 2"
    elif close(weights, gauss_first):
        hint = "you folded the Gaussian into the scores before the softmax; local-p multiplies the softmax's weights by it"
    else:
        hint = f"weights = softmax over the window of h^T W_a hbar_s, times exp(-(s - p_t)^2 / (2 (D/2)^2)); row 0 " \
               f"should be {rounded(want_w[0])}, got {rounded(weights[0])}"
    t.expect(close(weights, want_w), 2, "window softmax of the general score, times the Gaussian around p_t", hint)
    t.expect(close(context, want_c, atol=1e-4), 1, "the context is sum_s a_t(s) hbar_s",
             "fix the weights first" if not close(weights, want_w) else
             f"context[b] = weights[b] @ keys[b]; row 0 should be {rounded(want_c[0])}, got {rounded(context[0])}")


@register("04.reinforce_loss", title="the REINFORCE loss with a baseline", exercise_set=SET, points=4)
def check_reinforce_loss(t, reinforce_loss):
    log_prob = torch.log(torch.tensor([0.5, 0.25, 0.8, 0.1])).requires_grad_()
    reward = torch.tensor([1.0, -2.0, 0.5, 3.0], requires_grad=True)   # a reward that could carry a gradient
    baseline = 0.5
    got = t.call(reinforce_loss, log_prob, reward, baseline)
    t.require(is_tensor(got, ()), 1, "returns a scalar tensor", f"expected a 0-dimensional tensor, got {describe(got)}")
    want = -((reward.detach() - baseline) * log_prob.detach()).mean()
    no_base = -(reward.detach() * log_prob.detach()).mean()
    summed = -((reward.detach() - baseline) * log_prob.detach()).sum()
    if math.isclose(got.item(), no_base.item(), abs_tol=1e-5):
        hint = "the baseline is not subtracted: the weight of log pi(i) is (R - b)"
    elif math.isclose(got.item(), -want.item(), abs_tol=1e-5):
        hint = "wrong sign: we minimise the loss, so it is -(R - b) log pi(i) (a good sample should become more likely)"
    elif math.isclose(got.item(), summed.item(), abs_tol=1e-5):
        hint = "take the mean over the batch, not the sum"
    else:
        hint = f"loss = -mean((R - b) * log pi(i)); expected {want.item():.4f}, got {got.item():.4f}"
    t.expect(math.isclose(got.item(), want.item(), abs_tol=1e-5), 1, "the value -mean((R - b) log pi(i))", hint)
    if not got.requires_grad:
        t.expect(False, 2, "gradients", "the loss carries no gradient: compute it from log_prob_chosen (do not detach it)")
        return
    got.backward()
    want_grad = -(reward.detach() - baseline) / 4
    t.expect(log_prob.grad is not None and close(log_prob.grad, want_grad), 1,
             "the gradient with respect to log pi(i) is -(R - b) / B",
             f"expected d loss / d log_prob = {rounded(want_grad)}, got "
             f"{rounded(log_prob.grad) if log_prob.grad is not None else None}")
    leaked = reward.grad is not None and bool((reward.grad.abs() > 0).any())
    t.expect(not leaked, 1, "the reward is treated as a constant (no gradient flows into it)",
             "detach the reward (and the baseline): REINFORCE changes the probabilities of the choices, not the reward")
