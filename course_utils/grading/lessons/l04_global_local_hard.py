"""Checks for exercises/04_global_local_hard.ipynb: Luong's three scores, the local-m window mask, one
step of local-p attention (predicted centre, window, Gaussian), the REINFORCE loss with a baseline, and
a prediction about what local-m's window can reach on the mirror pair.

Weights follow the course's convention (as exercise 02.2): row vectors times a weight of shape
(in, out), ``x @ W``."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core import register
from ..tensor_checks import (all_finite, as_tensor as _as_tensor, close, describe, is_tensor, rounded,
                             where_differs as _where)

SET = "04_global_local_hard"


def _shape_ok(got, shape) -> bool:
    g = _as_tensor(got)
    return g is not None and tuple(g.shape) == tuple(shape)


# --------------------------------------------------------------------------- references


def _ref_scores(h, keys, kind, W_a=None, v_a=None):
    if kind == "dot":
        return torch.einsum("bh,bsh->bs", h, keys)
    if kind == "general":
        return torch.einsum("bh,hk,bsk->bs", h, W_a, keys)
    pairs = torch.cat([h.unsqueeze(1).expand_as(keys), keys], dim=-1)      # (B, S, 2H)
    return torch.tanh(pairs @ W_a) @ v_a                                   # W_a (2H, A)


def _ref_local_m(T, src_len, S, D):
    t = torch.arange(T).view(1, T, 1)
    s = torch.arange(S).view(1, 1, S)
    return ((s - t).abs() <= D) & (s < src_len.view(-1, 1, 1))


def _ref_local_p(h, keys, src_len, W_p, v_p, W_a, D, gaussian=True, softmax_first=True):
    p = src_len.to(h.dtype) * torch.sigmoid(torch.tanh(h @ W_p) @ v_p)                      # (B,)
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
    # two sizes in every free dimension: (B, S, H, A) = (2, 5, 3, 4) and (3, 1, 6, 2); the second has
    # one source word, and its keys mix scales (one sentence scaled by 50)
    cases = []
    for seed, (B, S, H, A) in ((4, (2, 5, 3, 4)), (5, (3, 1, 6, 2))):
        g = torch.Generator().manual_seed(seed)
        h, keys = torch.randn(B, H, generator=g), torch.randn(B, S, H, generator=g)
        if seed == 5:
            keys[1] *= 50.0
        W_gen = torch.randn(H, H, generator=g)        # not symmetric: h^T W k differs from h^T W^T k
        W_cat, v_a = torch.randn(2 * H, A, generator=g), torch.randn(A, generator=g)
        cases.append((h, keys, W_gen, W_cat, v_a))

    def ask(h, keys, kind, **weights):                # references are computed before; the learner gets copies
        return t.call(luong_scores, h.clone(), keys.clone(), kind, **{k: w.clone() for k, w in weights.items()})

    got = ask(*cases[0][:2], "dot")
    t.require(_shape_ok(got, (2, 5)), 1, "returns scores of shape (B, S)",
              f"h (2, 3) and keys (2, 5, 3) should give scores (2, 5), got {describe(got)}")
    failures = []
    for h, keys, *_ in cases:
        want = _ref_scores(h, keys, "dot")
        got = ask(h, keys, "dot")
        if not close(got, want):
            failures.append(f"with h {tuple(h.shape)} and keys {tuple(keys.shape)}: {_where(got, want)}")
    t.expect(not failures, 1, "dot: h_t . hbar_s",
             f"score[b, s] = sum_h h[b, h] * keys[b, s, h]; {failures[0] if failures else ''}")

    hint = ""
    for h, keys, W_gen, _, _ in cases:
        want = _ref_scores(h, keys, "general", W_gen)
        got = ask(h, keys, "general", W_a=W_gen)
        if close(got, want):
            continue
        if close(got, _ref_scores(h, keys, "general", W_gen.T)):
            hint = "you used W_a transposed: the general score is h^T W_a hbar_s, i.e. (h @ W_a) . hbar_s"
        else:
            hint = f"general is (h @ W_a) . hbar_s; with h {tuple(h.shape)} and keys {tuple(keys.shape)}: {_where(got, want)}"
        break
    t.expect(not hint, 1, "general: h_t^T W_a hbar_s", hint)

    hint = ""
    for h, keys, _, W_cat, v_a in cases:
        want = _ref_scores(h, keys, "concat", W_cat, v_a)
        got = ask(h, keys, "concat", W_a=W_cat, v_a=v_a)
        if close(got, want):
            continue
        hq = h.unsqueeze(1).expand_as(keys)
        if close(got, torch.tanh(torch.cat([keys, hq], dim=-1) @ W_cat) @ v_a):
            hint = "you concatenated [hbar_s; h_t]; Luong's order is [h_t; hbar_s] (the decoder state first)"
        elif close(got, (torch.cat([hq, keys], -1) @ W_cat) @ v_a):
            hint = "the tanh is missing: v_a . tanh([h_t; hbar_s] @ W_a)"
        else:
            hint = f"concat is v_a . tanh([h_t; hbar_s] @ W_a) with W_a of shape (2H, A); with h {tuple(h.shape)}, " \
                   f"keys {tuple(keys.shape)} and W_a {tuple(W_cat.shape)}: {_where(got, want)}"
        break
    t.expect(not hint, 1, "concat: v_a . tanh([h_t; hbar_s] W_a)", hint)


@register("04.local_m_mask", title="the local-m window: |s - t| <= D inside the sentence", exercise_set=SET, points=3)
def check_local_m_mask(t, local_m_mask):
    T, S, D = 6, 7, 2
    src_len = torch.tensor([7, 3])
    got = t.call(local_m_mask, T, src_len, S, D)
    t.require(is_tensor(got, (2, T, S)) and got.dtype == torch.bool, 1, "returns a bool mask of shape (B, T, S)",
              f"T=6, two sentences, S=7 should give a (2, 6, 7) bool tensor, got {describe(got)}")
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


def _local_p_case(seed, B, S, H, D, src_len, scale=1.0):
    """Inputs whose windows include one clipped at the start, one clipped at the sentence's end and one
    in the middle (found by trying seeds in order: deterministic), with no centre near a rounding tie."""
    for attempt in range(1000):
        g = torch.Generator().manual_seed(seed * 1000 + attempt)
        h, keys = torch.randn(B, H, generator=g), scale * torch.randn(B, S, H, generator=g)
        W_p, v_p, W_a = torch.randn(H, H, generator=g), 3 * torch.randn(H, generator=g), torch.randn(H, H, generator=g)
        p = src_len.double() * torch.sigmoid(torch.tanh(h.double() @ W_p.double()) @ v_p.double())
        c = p.round()
        if (p - p.floor() - 0.5).abs().min() < 0.02:
            continue
        left, right = c - D < 0, c + D >= src_len
        middle = ~left & ~right
        if left.any() and right.any() and middle.any():
            return h, keys, src_len, W_p, v_p, W_a, D
    raise RuntimeError("no local-p case found")   # pragma: no cover - the seeds below are known to work


@register("04.local_p_attention", title="one step of local-p attention: predicted centre, window, Gaussian",
          exercise_set=SET, points=6)
def check_local_p_attention(t, local_p_attention):
    # two sizes in every free dimension (B, S, H, D); windows clipped at both ends and in the middle;
    # the second case mixes scales (keys up to ~100: scores in the thousands, a naive exp overflows)
    cases = [_local_p_case(7, 3, 9, 4, 2, torch.tensor([9, 6, 4])),
             _local_p_case(8, 5, 12, 6, 1, torch.tensor([12, 12, 7, 3, 10]), scale=30.0)]
    wants = [_ref_local_p(*case) for case in cases]              # references first; the learner gets copies

    def ask(case):
        h, keys, src_len, W_p, v_p, W_a, D = case
        return t.call(local_p_attention, h.clone(), keys.clone(), src_len.clone(), W_p.clone(), v_p.clone(),
                      W_a.clone(), D)

    gots = [ask(case) for case in cases]
    shapes_ok, shape_msg = True, ""
    for case, got in zip(cases, gots):
        B, S, H = case[1].shape
        ok = isinstance(got, (tuple, list)) and len(got) == 3 and _shape_ok(got[0], (B, H)) \
            and _shape_ok(got[1], (B, S)) and _shape_ok(got[2], (B,))
        if not ok and shapes_ok:
            shapes_ok = False
            shape_msg = f"with B={B}, S={S}, H={H} expected (context, weights, p) of shapes ({B}, {H}), ({B}, {S}), " \
                        f"({B},); got {[describe(x) for x in got] if isinstance(got, (tuple, list)) else describe(got)}"
    t.require(shapes_ok, 1, "returns (context, weights, p) of shapes (B, H), (B, S), (B,)", shape_msg)

    def first_failure(pick, test):
        for case, got, want in zip(cases, gots, wants):
            message = test(case, pick(got), want)
            if message:
                return message
        return ""

    def p_test(case, p, want):
        want_p, src_len, keys = want[2], case[2], case[1]
        if close(p, want_p):
            return ""
        if close(p, want_p / src_len):
            return "p_t must be scaled by the sentence's length: p_t = S_b * sigmoid(v_p . tanh(h_t W_p))"
        if close(p, keys.shape[1] * want_p / src_len):
            return "use each sentence's own length src_len[b], not the padded length S"
        h, _, _, W_p, v_p, _, _ = case
        if close(p, src_len * torch.sigmoid(torch.tanh(h @ W_p.T) @ v_p)):
            return "you used W_p transposed: W_p has shape (in, out) and h_t W_p is h @ W_p"
        return f"p_t = S_b * sigmoid(v_p . tanh(h_t W_p)) (h_t W_p is h @ W_p); {_where(p, want_p)}"
    hint = first_failure(lambda got: got[2], p_test)
    p_ok = t.expect(not hint, 1, "the predicted centre p_t = S_b sigmoid(v_p . tanh(h_t W_p))", hint)

    def window_test(case, weights, want):
        w, want_w = _as_tensor(weights), want[1]
        if w is None or not bool(torch.isfinite(w).all()):
            return "some weights are not finite (nan or inf): with large scores exp overflows; subtract the " \
                   "row's maximum (masked_softmax does) before exponentiating"
        inside = want_w > 0
        outside = w.masked_fill(inside, 0.0).abs().max().item()
        if outside >= 1e-7:
            b, s = (int(i) for i in (w.masked_fill(inside, 0.0).abs() >= 1e-7).nonzero()[0])
            return f"a position s gets weight only if |s - round(p_t)| <= D and s < src_len[b]; sentence {b} " \
                   f"(length {int(case[2][b])}, p_t = {want[2][b].item():.2f}, D = {case[6]}) has weight " \
                   f"{w[b, s].item():.3g} at s = {s}"
        if not bool((w[inside] > 0).all()):
            b, s = (int(i) for i in (inside & ~(w > 0)).nonzero()[0])
            return f"every position inside the window should get some weight (a softmax times a Gaussian is never 0); " \
                   f"sentence {b} has 0 at s = {s}"
        return ""
    hint = "the window is centred on round(p_t): fix p_t first" if not p_ok else first_failure(lambda got: got[1], window_test)
    t.expect(p_ok and not hint, 1,
             "weight on the window round(p_t) +- D inside the sentence (clipped at both ends), zero everywhere else", hint)

    def weights_test(case, weights, want):
        want_w = want[1]
        if close(weights, want_w):
            return ""
        if not all_finite(weights):
            return "some weights are not finite: with large scores exp overflows; subtract the row's maximum " \
                   "(masked_softmax does) before exponentiating"
        if close(weights, _ref_local_p(*case, gaussian=False)[1]):
            return "the weights sum to one: multiply the window's softmax by the Gaussian exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D / 2"
        if close(weights, _ref_local_p(*case, softmax_first=False)[1]):
            return "you folded the Gaussian into the scores before the softmax; local-p multiplies the softmax's weights by it"
        return f"weights = softmax over the window of (h @ W_a) . hbar_s, times exp(-(s - p_t)^2 / (2 (D/2)^2)); " \
               f"with B, S = {tuple(case[1].shape[:2])}: {_where(weights, want_w)}"
    hint = "the weights depend on p_t (its window and its Gaussian): fix p_t first" if not p_ok else \
        first_failure(lambda got: got[1], weights_test)
    w_ok = t.expect(p_ok and not hint, 2, "window softmax of the general score, times the Gaussian around p_t (also on "
                    "large, mixed-scale scores)", hint)

    def context_test(case, context, want):
        scale = float(case[1].abs().max())
        return "" if close(context, want[0], atol=1e-4 * scale) else \
            f"context[b] = weights[b] @ keys[b]; with B, S = {tuple(case[1].shape[:2])}: {_where(context, want[0], 1e-4 * scale)}"
    hint = "fix the weights first" if not w_ok else first_failure(lambda got: got[0], context_test)
    t.expect(w_ok and not hint, 1, "the context is sum_s a_t(s) hbar_s", hint)


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


def _ref_mirror_reach(S, D):
    t = torch.arange(S)
    return ((S - 1 - t) - t).abs() <= D


@register("04.mirror_reach", title="predict, then count: what local-m's window reaches on the mirror pair",
          exercise_set=SET, points=4)
def check_mirror_reach(t, mirror_reach, predicted_reach, smallest_full_reach):
    # mirror_reach first: a notebook that has not started gets "not attempted"
    cases = [(10, 2), (9, 2), (1, 1), (2, 1), (7, 1), (30, 4), (11, 20), (25, 5)]   # odd/even S; D past both ends
    first = t.call(mirror_reach, 10, 2)

    def as_bools(x):
        g = _as_tensor(x)
        return None if g is None else g.flatten() != 0
    t.require(as_bools(first) is not None and as_bools(first).numel() == 10, 1,
              "mirror_reach(S, D) returns S booleans, one per target word",
              f"mirror_reach(10, 2) should give 10 booleans (a list, array or tensor), got {describe(first)}")
    hint = ""
    for S, D in cases:
        want = _ref_mirror_reach(S, D)
        got = as_bools(t.call(mirror_reach, S, D))
        if got is None or got.numel() != S or not torch.equal(got, want):
            shown = got.int().tolist() if got is not None else describe(got)
            hint = f"mirror_reach({S}, {D}): target word t translates source word {S - 1} - t, and local-m's window " \
                   f"at step t holds the positions t - {D} .. t + {D}; expected {want.int().tolist()}, got {shown}"
            if got is not None and got.numel() == S:
                t_bad = int((got != want).nonzero()[0])
                hint += f" (first difference at t = {t_bad}: source word {S - 1 - t_bad})"
            break
    t.expect(not hint, 1, "the reach for short and long, odd and even sentences, narrow and wide windows", hint)

    try:
        guess = predicted_reach()
    except NotImplementedError:
        guess = None
    right = int(_ref_mirror_reach(10, 2).sum())
    ok = isinstance(guess, (int, float, np.integer, np.floating)) and not isinstance(guess, bool) and guess == right
    t.expect(ok, 1, "your prediction for S = 10, D = 2 (count it by hand before you run mirror_reach)",
             "predicted_reach() should return the number of the 10 target words whose source word lies in the "
             f"window, an int; it returned {guess!r}. Write the pairs (t, 9 - t) down and count where |9 - 2t| <= 2"
             if guess is None or not isinstance(guess, (int, float, np.integer, np.floating)) else
             f"predicted_reach() returned {guess!r}: run mirror_reach(10, 2) and see which target words it reaches, "
             "then ask why your count differed")

    hint = ""
    for S in (1, 2, 9, 10, 40):
        got = t.call(smallest_full_reach, S)
        want = S - 1
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)) or got != want:
            hint = f"smallest_full_reach({S}) should be the smallest D >= 0 for which every target word's source " \
                   f"word is inside its window; got {got!r}. Which target word is hardest to reach?"
            break
    t.expect(not hint, 1, "the smallest half-width that reaches every word, for sentences of several lengths", hint)
