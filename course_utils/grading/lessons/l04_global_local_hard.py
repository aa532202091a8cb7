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
from ..tensor_checks import (all_finite, as_count, as_number, as_tensor, as_tensor as _as_tensor, close, copies,
                             describe, rounded, unchanged, where_differs as _where)

SET = "04_global_local_hard"


def _shape_ok(got, shape) -> bool:
    g = _as_tensor(got)
    return g is not None and tuple(g.shape) == tuple(shape)


# --------------------------------------------------------------------------- references


def _ref_scores(h, keys, kind, W_a=None, v_a=None):
    """Luong's score in float64, (B, S)."""
    h, keys, W_a, v_a = (None if x is None else x.double() for x in (h, keys, W_a, v_a))
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


def _centre(h, src_len, W_p, v_p):
    """p_t = S_b sigmoid(v_p . tanh(h W_p)), float64, (B,)."""
    h, W_p, v_p = (x.double() for x in (h, W_p, v_p))
    return src_len.double() * torch.sigmoid(torch.tanh(h @ W_p) @ v_p)


def _general(h, keys, W_a):
    """(h W_a) . hbar_s in float64, (B, S)."""
    return torch.einsum("bh,hk,bsk->bs", h.double(), W_a.double(), keys.double())


def _window(p, src_len, S, D):
    """|s - round(p)| <= D and s < src_len, (B, S)."""
    s = torch.arange(S).view(1, -1)
    return ((s - p.round().unsqueeze(1)).abs() <= D) & (s < src_len.view(-1, 1))


def _ref_local_p(h, keys, src_len, W_p, v_p, W_a, D, p=None, support=None, gaussian=True, softmax_first=True,
                 sigma=None):
    """float64 (context, weights, p); ``p`` and ``support`` (the positions given weight) replace the predicted
    centre and its window when given (to judge a step on a learner's own centre and window)."""
    p = _centre(h, src_len, W_p, v_p) if p is None else p.double()                             # (B,)
    S = keys.shape[1]
    s = torch.arange(S).view(1, -1)
    window = _window(p, src_len, S, D) if support is None else support                        # (B, S)
    scores = _general(h, keys, W_a)
    sigma = D / 2 if sigma is None else sigma
    g = torch.exp(-(s - p.unsqueeze(1)) ** 2 / (2 * sigma ** 2)) if gaussian else torch.ones_like(scores)
    if softmax_first:
        weights = torch.softmax(scores.masked_fill(~window, float("-inf")), dim=-1).nan_to_num(0.0) * g
    else:  # the Gaussian folded into the scores before the softmax: a common slip
        weights = torch.softmax((scores + torch.log(g)).masked_fill(~window, float("-inf")), dim=-1).nan_to_num(0.0)
    return torch.einsum("bs,bsh->bh", weights, keys.double()), weights, p


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

    changed = {}

    def ask(h, keys, kind, **weights):                # references are computed before; the learner gets copies
        inputs = dict(h=h, keys=keys, **weights)
        given = copies(*inputs.values())
        got = t.call(luong_scores, *given[:2], kind, **dict(zip(weights, given[2:])))
        names = [n for (n, x), y in zip(inputs.items(), given) if not unchanged((x,), (y,))]
        changed.setdefault(kind, []).extend(n for n in names if n not in changed.get(kind, []))
        return got

    def mutated(kind):
        names = changed.get(kind, [])
        return "" if not names else \
            f"your {kind} score changed its input{'s' if len(names) > 1 else ''} {', '.join(names)} in place (an " \
            "in-place method such as unsqueeze_ or mul_, or an assignment into it); build new tensors instead"

    got = ask(*cases[0][:2], "dot")
    t.require(_shape_ok(got, (2, 5)), 1, "returns scores of shape (B, S)",
              f"h (2, 3) and keys (2, 5, 3) should give scores (2, 5), got {describe(got)}")
    hint = ""
    for h, keys, *_ in cases:
        want = _ref_scores(h, keys, "dot")
        got = ask(h, keys, "dot")
        if close(got, want):
            continue
        if close(got, want / math.sqrt(h.shape[1])):
            hint = "you divided by sqrt(H): Luong's dot score is the plain dot product h_t . hbar_s (the scaling " \
                   "belongs to lesson 05's Transformer)"
        else:
            hint = f"score[b, s] = sum_h h[b, h] * keys[b, s, h]; with h {tuple(h.shape)} and keys " \
                   f"{tuple(keys.shape)}: {_where(got, want)}"
            g = _as_tensor(got)
            if g is not None and g.numel() == want.numel() and g.shape != want.shape:
                hint += " (a squeeze() without a dim also drops S = 1: squeeze(-1))"
        break
    t.expect(not (hint or mutated("dot")), 1, "dot: h_t . hbar_s (inputs left unchanged)", hint or mutated("dot"))

    hint = ""
    for h, keys, W_gen, _, _ in cases:
        want = _ref_scores(h, keys, "general", W_gen)
        got = ask(h, keys, "general", W_a=W_gen)
        if close(got, want):
            continue
        if close(got, _ref_scores(h, keys, "general", W_gen.T)):
            hint = "you used W_a transposed: the general score is h^T W_a hbar_s, i.e. (h @ W_a) . hbar_s"
        else:
            hint = f"general is (h @ W_a) . hbar_s, each sentence's h with its own keys; with h {tuple(h.shape)} and " \
                   f"keys {tuple(keys.shape)}: {_where(got, want)}"
        break
    t.expect(not (hint or mutated("general")), 1, "general: h_t^T W_a hbar_s (inputs left unchanged)",
             hint or mutated("general"))

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
    t.expect(not (hint or mutated("concat")), 1, "concat: v_a . tanh([h_t; hbar_s] W_a) (inputs left unchanged)",
             hint or mutated("concat"))


def _is_bool_mask(x) -> bool:
    """Whether ``x`` is a bool tensor, a bool NumPy array or nested lists of Python bools."""
    if isinstance(x, torch.Tensor):
        return x.dtype == torch.bool
    if isinstance(x, np.ndarray):
        return x.dtype == np.bool_
    if isinstance(x, (list, tuple)):
        try:
            return np.asarray(x).dtype == np.bool_
        except ValueError:
            return False
    return False


def _as_mask(x):
    """A mask (any form ``as_tensor`` reads) as a bool tensor (nonzero = True), or None."""
    g = _as_tensor(x)
    return None if g is None else g != 0


def _mask_row(m) -> str:
    return str([int(v) for v in m.tolist()])


# two sizes that differ in B, T, S and D; the second has more steps than source positions and no sentence as long
# as S (S must come from the argument); both have steps whose window is clipped at the start, cut by the
# sentence's end, and whole
_LOCAL_M_CASES = ((6, torch.tensor([7, 3]), 7, 2), (9, torch.tensor([5, 7, 2]), 8, 3))


@register("04.local_m_mask", title="the local-m window: |s - t| <= D inside the sentence", exercise_set=SET, points=3)
def check_local_m_mask(t, local_m_mask):
    results, changed = [], False
    for T, src_len, S, D in _LOCAL_M_CASES:
        want = _ref_local_m(T, src_len, S, D)                              # before the call; the learner gets a copy
        mine, = copies(src_len)
        raw = t.call(local_m_mask, T, mine, S, D)
        changed = changed or not unchanged((src_len,), (mine,))
        results.append((raw, _as_mask(raw), want, (T, src_len, S, D)))
    raw, got, want, _ = results[0]
    what = "returns a bool mask of shape (B, T, S)"
    hint = f"T=6, two sentences, S=7 should give a (2, 6, 7) bool tensor, got {describe(raw)}"
    if got is None or tuple(got.shape) != tuple(want.shape):
        t.require(False, 1, what, hint)
    not_bool = [r[0] for r in results if not _is_bool_mask(r[0])]         # other dtypes: judged below as 0/1
    t.expect(not not_bool, 1, what,
             f"expected a bool mask, got {describe(not_bool[0]) if not_bool else ''}; masked_fill and ~ need dtype "
             "torch.bool (comparisons and & give it)")

    # the window is judged inside each sentence (s < src_len[b]), the padding past its end: one part each
    hint = ""
    for raw, got, want, (T, src_len, S, D) in results:
        case = f"T={T}, S={S}, D={D}, src_len {src_len.tolist()}"
        if got is None or got.shape != want.shape:
            hint = f"{case} should give a ({len(src_len)}, {T}, {S}) bool mask, got {describe(raw)}; S is the " \
                   "padded length passed in (not src_len.max()), and every size comes from the arguments"
            break
        inside = torch.arange(S).view(1, 1, S) < src_len.view(-1, 1, 1)
        bad = (got != want) & inside
        if bool(bad.any()):
            b, step, _ = (int(i) for i in bad.nonzero()[0])
            n = int(src_len[b])
            hint = f"{case}: sentence {b} (length {n}), step t = {step} should keep s = {max(0, step - D)} .. " \
                   f"{min(n - 1, step + D)} (|s - t| <= D, both sides), got row {_mask_row(got[b, step, :n])} " \
                   f"for s < {n}, expected {_mask_row(want[b, step, :n])}"
            if torch.equal(got & inside, _ref_local_m(T, src_len, S, D - 1)) or \
                    torch.equal(got & inside, _ref_local_m(T, src_len, S, D + 1)):
                hint += "; off by one: the window is t - D .. t + D inclusive (2D + 1 positions)"
            break
    t.expect(not hint, 1, "the window t-D .. t+D inside each sentence, at two sizes (B, T, S and D all different)",
             hint)

    hint = ""
    for raw, got, want, (T, src_len, S, D) in results:
        if got is None or got.shape != want.shape:
            continue                                                        # judged in the part above
        outside = torch.arange(S).view(1, 1, S) >= src_len.view(-1, 1, 1)
        bad = got & outside
        if bool(bad.any()):
            b, step, s = (int(i) for i in bad.nonzero()[0])
            hint = f"T={T}, S={S}, D={D}, src_len {src_len.tolist()}: sentence {b} has {int(src_len[b])} words, " \
                   f"but step {step} keeps position s = {s}; positions s >= src_len[b] are padding and must be " \
                   "False even inside the window"
            break
    if not hint and changed:
        hint = "your function changed its input src_len in place (an in-place method such as unsqueeze_ or an " \
               "assignment into it); build new tensors instead"
    t.expect(not hint, 1, "positions past the sentence's end are masked (inputs left unchanged)", hint)


def _local_p_case(seed, B, S, H, D, src_len, scale=1.0, levels=None):
    """Inputs whose windows include one clipped at the start, one clipped at the sentence's end and one
    in the middle (found by trying seeds in order: deterministic), with no centre near a rounding tie.
    ``levels`` (B,) shifts every score of sentence b by levels[b] (each key moves along h_b W_a): rows of very
    different scale, which one shift for the whole batch cannot serve."""
    for attempt in range(1000):
        g = torch.Generator().manual_seed(seed * 1000 + attempt)
        h, keys = torch.randn(B, H, generator=g), scale * torch.randn(B, S, H, generator=g)
        W_p, v_p, W_a = torch.randn(H, H, generator=g), 3 * torch.randn(H, generator=g), torch.randn(H, H, generator=g)
        p = _centre(h, src_len, W_p, v_p)
        c = p.round()
        if (p - p.floor() - 0.5).abs().min() < 0.02:
            continue
        left, right = c - D < 0, c + D >= src_len
        middle = ~left & ~right
        if left.any() and right.any() and middle.any():
            if levels is not None:
                q = h @ W_a                                                          # (B, H)
                keys = keys + (torch.tensor(levels) / (q * q).sum(1)).view(B, 1, 1) * q.unsqueeze(1)
            return h, keys, src_len, W_p, v_p, W_a, D
    raise RuntimeError("no local-p case found")   # pragma: no cover - the seeds below are known to work


def _local_p_cases():
    # two sizes in every free dimension (B, S, H, D); windows clipped at both ends and in the middle; the second
    # mixes scales: keys ~30 (score differences in the hundreds inside a window, a naive exp overflows) and rows
    # shifted to +-2000 (one maximum for the whole batch underflows every exp of the low rows, even in float64)
    return [_local_p_case(7, 3, 9, 4, 2, torch.tensor([9, 6, 4])),
            _local_p_case(8, 5, 12, 6, 1, torch.tensor([12, 12, 7, 3, 10]), scale=30.0,
                          levels=[2000.0, -2000.0, 0.0, -1500.0, 1000.0])]


@register("04.local_p_attention", title="one step of local-p attention: predicted centre, window, Gaussian",
          exercise_set=SET, points=6)
def check_local_p_attention(t, local_p_attention):
    cases = _local_p_cases()
    wants = [_ref_local_p(*case) for case in cases]              # references first; the learner gets copies
    changed = []

    def ask(case):
        given = copies(*case)
        got = t.call(local_p_attention, *given)
        names = ("h", "keys", "src_len", "W_p", "v_p", "W_a")
        changed.extend(n for n, x, y in zip(names, case, given) if not unchanged((x,), (y,)) and n not in changed)
        return got

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
    gots = [tuple(_as_tensor(x) for x in got) for got in gots]            # float64: (context, weights, p)

    def first_failure(test):
        for k, (case, got, want) in enumerate(zip(cases, gots, wants)):
            message = test(k, case, got, want)
            if message:
                return f"with B, S, D = {tuple(case[1].shape[:2]) + (case[6],)}: {message}"
        return ""

    def p_test(k, case, got, want):
        p, want_p, src_len, keys = got[2], want[2], case[2], case[1]
        if close(p, want_p):
            return ""
        if close(p, want_p / src_len):
            return "p_t must be scaled by the sentence's length: p_t = S_b * sigmoid(v_p . tanh(h_t W_p))"
        if close(p, keys.shape[1] * want_p / src_len):
            return "use each sentence's own length src_len[b], not the padded length S"
        h, _, _, W_p, v_p, _, _ = case
        if close(p, _centre(h, src_len, W_p.T, v_p)):
            return "you used W_p transposed: W_p has shape (in, out) and h_t W_p is h @ W_p"
        return f"p_t = S_b * sigmoid(v_p . tanh(h_t W_p)) (h_t W_p is h @ W_p); {_where(p, want_p)}"
    t.expect(not first_failure(p_test), 1, "the predicted centre p_t = S_b sigmoid(v_p . tanh(h_t W_p))",
             first_failure(p_test))

    # the window, the weights and the context are judged on your own p (and the weights on your own window),
    # so that one mistake costs the points of one part
    def own_p(k):
        p, want_p = gots[k][2], wants[k][2]
        return want_p if close(p, want_p) else p if bool(torch.isfinite(p).all()) else None

    def window_test(k, case, got, want):
        p, (weights, src_len, D) = own_p(k), (got[1], case[2], case[6])
        if p is None:
            return "your p_t has nan or inf; the window is centred on round(p_t)"
        window = _window(p, src_len, case[1].shape[1], D)
        reachable = _ref_local_p(*case, p=p)[1] > 1e-6     # in the window, and far from underflowing
        given = weights != 0                                # nan counts as weight here (judged below)
        bad = given & torch.isfinite(weights) & ~window     # nan outside (0 * inf): judged below as not finite
        if bool(bad.any()):
            b, s = (int(i) for i in bad.nonzero()[0])
            return f"a position s gets weight only if |s - round(p_t)| <= D and s < src_len[b]; sentence {b} " \
                   f"(length {int(src_len[b])}, your p_t = {p[b].item():.2f}) has weight {weights[b, s].item():.3g} " \
                   f"at s = {s}"
        bad = reachable & ~given
        if bool(bad.any()):
            b, s = (int(i) for i in bad.nonzero()[0])
            return f"every position of the window round(p_t) - D .. round(p_t) + D inside the sentence should get " \
                   f"some weight; sentence {b} (length {int(src_len[b])}, your p_t = {p[b].item():.2f}) has 0 at " \
                   f"s = {s}"
        return ""
    hint = first_failure(window_test)
    t.expect(not hint, 1, "weight on the window round(p_t) +- D inside the sentence (clipped at both ends), zero "
             "everywhere else", hint)

    def weights_test(k, case, got, want):
        p, weights = own_p(k), got[1]
        if p is None:
            return "the weights depend on p_t (its window and its Gaussian): fix p_t first"
        support = weights != 0                              # your window: nan counts as inside
        window = _window(p, case[2], case[1].shape[1], case[6])
        if bool((window.any(1) & ~(support & window).any(1)).any()):
            return "some sentence has no weight inside its window round(p_t) +- D"
        atol = 2e-3 if k else 1e-5                          # float32 scores in the thousands: about 1e-4 apart
        ref = _ref_local_p(*case, p=p, support=support)[1]
        if close(weights, ref, atol=atol):
            return ""
        if not all_finite(weights):
            b = int((~torch.isfinite(weights)).any(1).nonzero()[0])
            scores = _general(case[0], case[1], case[5]).masked_fill(~support, float("-inf"))
            top, highest = scores[b].max().item(), scores.max().item()
            if top > 80:
                return f"sentence {b}'s weights are not finite: its scores reach {top:.0f} and exp overflows; " \
                       "subtract the row's maximum (masked_softmax does) before exponentiating"
            return f"sentence {b}'s weights are not finite: its window's scores (up to {top:.0f}) sit far below " \
                   f"another sentence's ({highest:.0f}), so one maximum for the whole batch turns every exp of this " \
                   "row into 0 (0/0 = nan); subtract each row's own maximum (masked_softmax does)"
        for kwargs, message in ((dict(gaussian=False), "the weights sum to one: multiply the window's softmax by the "
                                 "Gaussian exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D / 2"),
                                (dict(softmax_first=False), "you folded the Gaussian into the scores before the "
                                 "softmax; local-p multiplies the softmax's weights by it"),
                                (dict(sigma=case[6]), "sigma is D / 2, not D")):
            if close(weights, _ref_local_p(*case, p=p, support=support, **kwargs)[1], atol=atol):
                return message
        return f"weights = softmax over the window of (h @ W_a) . hbar_s, times exp(-(s - p_t)^2 / (2 (D/2)^2)): " \
               f"{_where(weights, ref, atol=atol)}"
    hint = first_failure(weights_test)
    t.expect(not hint, 2, "window softmax of the general score, times the Gaussian around p_t (also on large, "
             "mixed-scale scores)", hint)

    def context_test(k, case, got, want):
        context, weights = got[0], got[1]
        own = torch.einsum("bs,bsh->bh", weights, case[1].double())
        rows = torch.isfinite(own).all(1)                   # rows with nan weights: judged above
        atol = 1e-4 * float(case[1].abs().max())
        if close(context[rows], own[rows], atol=atol):
            return ""
        return f"context[b] = weights[b] @ keys[b], with your weights: {_where(context[rows], own[rows], atol=atol)}"
    hint = first_failure(context_test)
    if not hint and changed:
        hint = f"your function changed its input{'s' if len(changed) > 1 else ''} {', '.join(changed)} in place (an " \
               "in-place method such as masked_fill_, or an assignment into it); build new tensors instead"
    t.expect(not hint, 1, "the context is sum_s a_t(s) hbar_s (inputs left unchanged)", hint)


# two batches that differ in size, rewards and baseline; the rewards could carry a gradient (requires_grad)
_REINFORCE_CASES = (([0.5, 0.25, 0.8, 0.1], [1.0, -2.0, 0.5, 3.0], 0.5),
                    ([0.9, 0.05, 0.3, 0.6, 0.15, 0.7, 0.4], [2.0, 0.0, -1.5, 4.0, 1.0, -3.0, 0.5], 1.25))


def _loss_and_grads(reinforce_loss, log_prob, reward, baseline):
    """Runs inside t.call: the learner's loss, then backward through it (summed, if it was not reduced).
    -> (the loss's value, whether it carries a graph, d loss / d log_prob, d loss / d reward)."""
    loss = reinforce_loss(log_prob, reward, baseline)
    graph = isinstance(loss, torch.Tensor) and loss.requires_grad
    if graph:
        loss.sum().backward()
    value = loss.detach() if isinstance(loss, torch.Tensor) else loss
    return value, graph, log_prob.grad, reward.grad


@register("04.reinforce_loss", title="the REINFORCE loss with a baseline", exercise_set=SET, points=4)
def check_reinforce_loss(t, reinforce_loss):
    results = []
    for probs, rewards, baseline in _REINFORCE_CASES:
        log_prob = torch.log(torch.tensor(probs)).requires_grad_()
        reward = torch.tensor(rewards, requires_grad=True)
        advantage, lp = torch.tensor(rewards) - baseline, log_prob.detach()
        want = dict(value=-(advantage * lp).mean().item(), no_base=-(torch.tensor(rewards) * lp).mean().item(),
                    summed=-(advantage * lp).sum().item(), grad=-advantage / len(probs), B=len(probs))
        value, graph, lp_grad, r_grad = t.call(_loss_and_grads, reinforce_loss, log_prob, reward, baseline)
        results.append((value, graph, lp_grad, r_grad, want, lp, baseline))

    shapes = [describe(r[0]) for r in results if not (isinstance(r[0], torch.Tensor) and r[0].dim() == 0)]
    t.expect(not shapes, 1, "returns a scalar tensor",
             f"expected a 0-dimensional tensor (the mean over the batch, still a tensor: no .item()), got {shapes[0]}"
             if shapes else "")

    hint = ""
    for value, _, _, _, want, _, baseline in results:
        got = as_number(value)
        if got is not None and math.isclose(got, want["value"], abs_tol=1e-5):
            continue
        case = f"B = {want['B']}, baseline {baseline}: expected {want['value']:.4f}, got " \
               f"{f'{got:.4f}' if got is not None else describe(value)}"
        if got is None:
            hint = f"{case}; return one number: the mean over the batch"
        elif math.isclose(got, want["no_base"], abs_tol=1e-5):
            hint = f"{case}; the baseline is not subtracted: the weight of log pi(i) is (R - b)"
        elif math.isclose(got, -want["value"], abs_tol=1e-5):
            hint = f"{case}; wrong sign: we minimise the loss, so it is -(R - b) log pi(i) (a good sample should " \
                   "become more likely)"
        elif math.isclose(got, want["summed"], abs_tol=1e-5):
            hint = f"{case}; take the mean over the batch, not the sum"
        else:
            hint = f"{case}; loss = -mean((R - b) * log pi(i)), the mean over the batch (its size comes from the input)"
        break
    value_ok = t.expect(not hint, 1, "the value -mean((R - b) log pi(i)), at two batch sizes", hint)

    # the gradient is judged on your own loss: the right one, or (if your value is wrong) one that is linear in
    # log pi with d loss / d log pi = its coefficients, so that a wrong value costs one part
    hint = ""
    for value, graph, lp_grad, _, want, lp, _ in results:
        if not graph or lp_grad is None:
            hint = "the loss carries no gradient to log_prob_chosen: compute it with torch operations from " \
                   "log_prob_chosen (no .detach(), .item() or torch.tensor(...) on it)"
            break
        if close(lp_grad, want["grad"]):
            continue
        total = as_number(as_tensor(value).sum()) if as_tensor(value) is not None else None
        linear = total is not None and math.isclose(float((lp_grad.double() * lp.double()).sum()), total, abs_tol=1e-5)
        if value_ok or not linear or not bool(lp_grad.abs().sum() > 0):
            hint = f"d loss / d log_prob should be -(R - b) / B = {rounded(want['grad'])}, got {rounded(lp_grad)}"
            break
    t.expect(not hint, 1, "the gradient reaches log pi(i): d loss / d log pi(i) = -(R - b) / B", hint)

    leaked = [r_grad for _, _, _, r_grad, _, _, _ in results if r_grad is not None and bool((r_grad != 0).any())]
    t.expect(not leaked, 1, "the reward is treated as a constant (no gradient flows into it)",
             "detach the reward (and the baseline): REINFORCE changes the probabilities of the choices, not the "
             f"reward; the reward received the gradient {rounded(leaked[0])}" if leaked else "")


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
            elif got is not None:
                hint += f" ({got.numel()} values for S = {S}: one per target word, from the argument S)"
            break
    t.expect(not hint, 1, "the reach for short and long, odd and even sentences, narrow and wide windows", hint)

    try:
        raw = t.call(predicted_reach)
    except NotImplementedError:                 # a missing prediction costs its part only
        raw = None
    guess, right = as_count(raw), int(_ref_mirror_reach(10, 2).sum())
    t.expect(guess == right, 1, "your prediction for S = 10, D = 2 (count it by hand before you run mirror_reach)",
             "predicted_reach() should return the number of the 10 target words whose source word lies in the "
             f"window, an int; it returned {describe(raw) if guess is None else guess}. Write the pairs (t, 9 - t) "
             "down and count where |9 - 2t| <= 2"
             if guess is None else
             f"predicted_reach() returned {guess}: run mirror_reach(10, 2) and see which target words it reaches, "
             "then ask why your count differed")

    hint = ""
    for S in (1, 2, 9, 10, 40):
        raw = t.call(smallest_full_reach, S)
        got, want = as_count(raw), S - 1
        if got != want:
            hint = f"smallest_full_reach({S}) should be the smallest D >= 0 for which every target word's source " \
                   f"word is inside its window; got {describe(raw) if got is None else got}. Which target word is " \
                   "hardest to reach?"
            break
    t.expect(not hint, 1, "the smallest half-width that reaches every word, for sentences of several lengths", hint)
