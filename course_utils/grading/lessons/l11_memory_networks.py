"""Checks for exercises/11_memory_networks.ipynb: content addressing, circular shift and sharpening, one
memory-network hop, and a prediction made before measuring.

Every check calls the learner's code on at least two sizes in every free dimension (batch, memory slots
or sentences, width), on copies of its inputs (the references are computed first, in float64, and the
originals compared afterwards), on large and mixed-scale values where a softmax or a power is involved
(key strengths in the hundreds, memory rows whose norms differ by a factor of a million, sharpening
exponents that underflow a naive power), accepts answers as tensors of any floating dtype, NumPy arrays
or lists, and says where a wrong answer first differs. While a check runs, the course's finished
versions in ``course_utils.models.memory`` are switched off (their code is swapped for one that raises,
so a reference kept under another name is switched off too).
"""

from __future__ import annotations


import numpy as np
import torch

from ..core import register
from ..tensor_checks import (as_tensor as _as_tensor, close as _same, copies as _copies, describe as _describe,
                             disabled, first_difference as _first_difference, unchanged as _unchanged,
                             where_differs as _where)

SET = "11_memory_networks"
ATOL = 1e-5


# --------------------------------------------------------------------------- helpers


def _finished_versions_off():
    """The finished memory functions (and MemN2N.forward) raise while the learner's code runs."""
    from ...models import memory as finished

    return disabled(finished.cosine_similarity, finished.content_addressing, finished.interpolate,
                    finished.circular_shift, finished.sharpen, finished.address, finished.MemN2N.forward,
                    why="the course's finished version in course_utils.models.memory is not available to this "
                        "exercise: write it yourself")


def _call(t, fn, *args):
    """Call learner code on copies of the arguments, with the finished versions off; return (answer, copies)."""
    copies = _copies(*args)
    with _finished_versions_off():
        return t.call(fn, *copies), copies


# --------------------------------------------------------------------------- exercise 1: content addressing


def _ref_content(memory, key, beta, cosine=True, use_beta=True):
    memory, key, beta = memory.double(), key.double(), torch.as_tensor(beta).double()
    dot = (memory @ key.unsqueeze(-1)).squeeze(-1)
    scores = dot / (memory.norm(dim=-1) * key.norm(dim=-1, keepdim=True)) if cosine else dot
    return torch.softmax((beta.unsqueeze(-1) if use_beta else 1.0) * scores, dim=-1)


def _memory_case(g, B, N, M, mixed=False, dtype=torch.float32):
    memory = torch.randn(B, N, M, generator=g, dtype=torch.float64)
    key = torch.randn(B, M, generator=g, dtype=torch.float64)
    if mixed:   # rows whose norms differ by up to 10^6, and one row that points exactly along the key
        memory = memory * 10.0 ** torch.randint(-3, 4, (B, N, 1), generator=g).double()
        memory[:, 1] = 1e-3 * key
    return memory.to(dtype), key.to(dtype)


@register("11.content_addressing", title="content addressing: softmax over beta times cosine similarity",
          exercise_set=SET, points=4)
def check_content_addressing(t, content_addressing):
    g = torch.Generator().manual_seed(11)
    B, N, M = 2, 5, 4
    memory, key = _memory_case(g, B, N, M)
    beta = torch.tensor([1.0, 3.0])
    want = _ref_content(memory, key, beta)
    raw, copies = _call(t, content_addressing, memory, key, beta)
    got = _as_tensor(raw)
    t.require(got is not None and tuple(got.shape) == (B, N), 1, "returns one weight per slot: (B, N)",
              f"memory (2, 5, 4), key (2, 4) and beta (2,) should give weights of shape (2, 5); got {_describe(raw)}")
    if _same(got.sum(-1), torch.ones(B, dtype=torch.float64)):
        hint = ""
    elif _same(got.sum(-2), torch.ones(N, dtype=torch.float64)):
        hint = "your weights sum to one over the batch: the softmax runs over the slots (dim=-1)"
    else:
        hint = f"each row of weights should sum to 1 over the N slots; row sums {got.sum(-1).tolist()}"
    t.expect(not hint, 1, "each batch element's weights sum to one over the slots", hint)

    if _same(got, _ref_content(memory, key, beta, cosine=False)):
        hint = ("these are softmax(beta * key . M_i): divide each dot product by |key| |M_i| (cosine similarity), "
                "so a slot cannot win just by having a large norm")
    elif _same(got, _ref_content(memory, key, beta, use_beta=False)):
        hint = "beta is missing: multiply the cosine scores by the key strength beta[b] before the softmax"
    else:
        hint = "weights = softmax(beta * cos(key, M_i)) over the slots; " + _where(got, want)
    t.expect(_same(got, want), 1, "w = softmax(beta * cos(key, M_i)) on a small case", hint)

    # second size in every dimension, rows of norms 1e-3 .. 1e3, key strengths up to 400, float64 inputs
    cases = []
    for (B2, N2, M2), betas in (((3, 7, 6), [0.5, 60.0, 400.0]), ((1, 2, 3), [250.0])):
        mem2, key2 = _memory_case(g, B2, N2, M2, mixed=True, dtype=torch.float64)
        beta2 = torch.tensor(betas, dtype=torch.float64)
        want2 = _ref_content(mem2, key2, beta2)
        raw2, copies2 = _call(t, content_addressing, mem2, key2, beta2)
        cases.append((_as_tensor(raw2), want2, (mem2, key2, beta2), copies2))
    ok = all(_same(got2, want2) for got2, want2, _, _ in cases)
    got2, want2, originals, copies2 = cases[0]
    if got2 is None or tuple(got2.shape) != tuple(want2.shape):
        hint = f"memory (3, 7, 6) should give weights (3, 7); got {_describe(got2)}: use the shapes you are given"
    elif not bool(torch.isfinite(got2).all()):
        hint = ("with beta = 400 your weights contain nan or inf: exp of a large score overflows; subtract each row's "
                "maximum score before exp (torch.softmax does this for you)")
    elif not ok:
        bad = next((g2, w2) for g2, w2, _, _ in cases if not _same(g2, w2))
        hint = ("with memory rows of very different norms and large beta the weights differ (is the similarity a "
                "cosine, with beta applied per batch element?) " + _where(*bad))
    else:
        hint = ""
    unchanged = all(_unchanged(o, c) for _, _, o, c in cases) and _unchanged((memory, key, beta), copies)
    if ok and not unchanged:
        hint = "the weights are right, but your function changed its inputs in place (e.g. normalised the memory)"
    t.expect(ok and unchanged, 1, "other sizes, float64, rows of very different norms, beta up to 400", hint)


# --------------------------------------------------------------------------- exercise 2: shift and sharpen


def _ref_shift(w, shift, direction=1):
    w, shift = w.double(), shift.double()
    r = shift.shape[-1] // 2
    out = torch.zeros_like(w)
    for j, k in enumerate(range(-r, r + 1)):
        out = out + shift[..., j:j + 1] * torch.roll(w, shifts=direction * k, dims=-1)
    return out


def _ref_sharpen(w, gamma):
    w = w.double()
    gamma = torch.as_tensor(gamma).double().unsqueeze(-1)
    p = (w / w.amax(-1, keepdim=True)) ** gamma
    return p / p.sum(-1, keepdim=True)


def _distribution(g, *shape):
    x = torch.rand(*shape, generator=g, dtype=torch.float64) + 0.05
    return x / x.sum(-1, keepdim=True)


@register("11.shift_sharpen", title="location addressing: circular shift and sharpening", exercise_set=SET, points=5)
def check_shift_sharpen(t, circular_shift, sharpen):
    g = torch.Generator().manual_seed(12)
    B, N = 2, 6
    w = torch.zeros(B, N)
    w[0, 2], w[1, N - 1] = 1.0, 1.0                       # focus on slot 2, and on the last slot
    forward = torch.tensor([[0.0, 0.0, 1.0]] * B)         # all weight on offset +1
    raw, _ = _call(t, circular_shift, w, forward)
    got = _as_tensor(raw)
    t.require(got is not None and tuple(got.shape) == (B, N), 1, "circular_shift returns (B, N)",
              f"w (2, 6) and shift (2, 3) should give (2, 6); got {_describe(raw)}")
    want = _ref_shift(w, forward)
    if _same(got, _ref_shift(w, forward, direction=-1)):
        hint = ("your focus moved backwards: offset +1 (the last column of shift) moves slot i's weight to slot i + 1, "
                "w~[i] = sum_k s[k] w[i - k]")
    elif _same(got[0], want[0]) and not _same(got[1], want[1]):
        hint = ("the shift does not wrap around: the last slot's weight must move to slot 0 (indices modulo N; "
                "torch.roll wraps)")
    else:
        hint = "shift [0, 0, 1] should move each focus one slot forward; " + _where(got, want)
    t.expect(_same(got, want), 1, "offset +1 moves the focus one slot forward, wrapping around", hint)

    ok, detail = True, ""
    for (B2, N2, S2) in ((3, 9, 5), (1, 4, 3)):
        w2, s2 = _distribution(g, B2, N2), _distribution(g, B2, S2)
        want2 = _ref_shift(w2, s2)
        got2 = _as_tensor(_call(t, circular_shift, w2, s2)[0])
        if not _same(got2, want2):
            ok = False
            detail = (f"with N = {N2} slots and S = {S2} offsets (-{S2 // 2} .. {S2 // 2}): "
                      + (_where(got2, want2) if got2 is not None and got2.shape == want2.shape else
                         f"expected shape {tuple(want2.shape)}, got {_describe(got2)}"))
            break
    t.expect(ok, 1, "any distribution over 2r + 1 offsets, other N and batch sizes, float64",
             "the shift is a circular convolution, w~[i] = sum over offsets k of s[k] w[(i - k) mod N], the column "
             "of shift for offset k being k + r; " + detail)

    # sharpening
    w3 = _distribution(g, 2, 5).float()
    gamma3 = torch.tensor([1.0, 2.5])
    want3 = _ref_sharpen(w3, gamma3)
    raw3, copies3 = _call(t, sharpen, w3, gamma3)
    got3 = _as_tensor(raw3)
    if got3 is None or tuple(got3.shape) != (2, 5):
        hint = f"sharpen(w (2, 5), gamma (2,)) should return (2, 5); got {_describe(raw3)}"
    elif _same(got3, w3.double() ** gamma3.double().unsqueeze(-1)):
        hint = "renormalise: divide w^gamma by its sum over the slots so the weights sum to one again"
    else:
        hint = "w^gamma / sum_j w_j^gamma, gamma per batch element (gamma = 1 leaves w unchanged); " + _where(got3, want3)
    ok3 = _same(got3, want3) and _unchanged((w3, gamma3), copies3)
    if _same(got3, want3) and not ok3:
        hint = "the values are right but your function changed its inputs in place"
    t.expect(ok3, 1, "sharpen: w^gamma / sum w^gamma per batch element", hint)

    # large exponents: every entry ** 60 underflows to 0 in float32 unless the weights are scaled by their max
    w4 = torch.full((3, 8), 1e-4)
    w4[:, :3] = torch.tensor([[0.3, 0.2, 0.1], [0.05, 0.5, 0.2], [0.1, 0.1, 0.1]])
    w4 = w4 / w4.sum(-1, keepdim=True)
    gamma4 = torch.tensor([60.0, 40.0, 100.0])
    want4 = _ref_sharpen(w4, gamma4)
    got4 = _as_tensor(_call(t, sharpen, w4, gamma4)[0])
    w5 = _distribution(g, 1, 11)
    want5 = _ref_sharpen(w5, torch.tensor([3.0], dtype=torch.float64))
    got5 = _as_tensor(_call(t, sharpen, w5, torch.tensor([3.0], dtype=torch.float64))[0])
    if got4 is not None and got4.shape == want4.shape and not bool(torch.isfinite(got4).all()):
        hint = ("with gamma = 60 and weights below 0.3, every w^gamma underflows to 0 in float32 and 0 / 0 = nan: "
                "divide w by its maximum first (the result is the same, and the largest entry becomes 1)")
    elif not _same(got4, want4, atol=1e-4):
        hint = "large gamma: the largest weight should take almost everything; " + (
            _where(got4, want4, 1e-4) if got4 is not None and got4.shape == want4.shape else f"got {_describe(got4)}")
    elif not _same(got5, want5):
        hint = "another size (1, 11) in float64 differs; " + (_where(got5, want5) if got5 is not None and
                                                              got5.shape == want5.shape else f"got {_describe(got5)}")
    else:
        hint = ""
    t.expect(not hint, 1, "sharpen stays finite for large gamma (float32), and works for other sizes", hint)


# --------------------------------------------------------------------------- exercise 3: one memory-network hop


def _ref_hop(u, m, c, mask, use_mask=True, scale=1.0, residual=True, dim=-1):
    u, m, c = u.double(), m.double(), c.double()
    scores = (m @ u.unsqueeze(-1)).squeeze(-1) / scale
    if use_mask:
        scores = scores.masked_fill(~mask, float("-inf"))
    p = torch.softmax(scores, dim=dim)
    o = (p.unsqueeze(-2) @ c).squeeze(-2)
    return (u + o if residual else o), p


def _hop_case(g, B, L, d, lengths, big=1.0):
    u = torch.randn(B, d, generator=g, dtype=torch.float64) * big
    m = torch.randn(B, L, d, generator=g, dtype=torch.float64)
    c = torch.randn(B, L, d, generator=g, dtype=torch.float64)
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    m[~mask] = 50.0                                 # padding sentences: large junk that must not leak in
    c[~mask] = -50.0
    return u, m, c, mask


@register("11.memory_hop", title="one hop of an end-to-end memory network", exercise_set=SET, points=4)
def check_memory_hop(t, memory_hop):
    g = torch.Generator().manual_seed(13)
    B, L, d = 2, 5, 4
    u, m, c, mask = (x.float() if x.is_floating_point() else x for x in _hop_case(g, B, L, d, [5, 3]))
    want_u, want_p = _ref_hop(u, m, c, mask)
    raw, _ = _call(t, memory_hop, u, m, c, mask)
    pair = isinstance(raw, (tuple, list)) and len(raw) == 2
    got_u, got_p = (_as_tensor(raw[0]), _as_tensor(raw[1])) if pair else (None, None)
    t.require(pair and got_u is not None and got_p is not None and tuple(got_u.shape) == (B, d)
              and tuple(got_p.shape) == (B, L), 1, "returns (u_next (B, d), p (B, L))",
              f"u (2, 4), m and c (2, 5, 4), mask (2, 5) should give ((2, 4), (2, 5)); got "
              f"{[_describe(x) for x in raw] if pair else _describe(raw)}")
    if bool((got_p[1, 3:].abs() > 1e-7).any()):
        hint = ("sentences where mask is False (padding) must get weight exactly 0: fill their scores with -inf "
                f"before the softmax; story 1's weights are {[round(float(v), 3) for v in got_p[1]]}")
    elif not _same(got_p.sum(-1), torch.ones(B, dtype=torch.float64)):
        hint = f"each story's attention should sum to 1 over its sentences (softmax over dim=-1); sums {got_p.sum(-1).tolist()}"
    else:
        hint = ""
    t.expect(not hint, 1, "p is a distribution over each story's real sentences (padding gets 0)", hint)
    if _same(got_p, _ref_hop(u, m, c, mask, scale=d ** 0.5)[1]):
        hint = "a memory network's score is the plain dot product u . m_i (no division by sqrt(d))"
    else:
        hint = "p_i = softmax over the real sentences of u . m_i; " + _where(got_p, want_p)
    t.expect(_same(got_p, want_p), 1, "p = softmax(u . m_i) over the real sentences", hint)

    # the output, on this case and on others: large scores (|u . m| in the hundreds), float64, other sizes
    ok, hint = True, ""
    for case in ((u, m, c, mask),
                 _hop_case(g, 3, 8, 6, [8, 2, 5], big=40.0),
                 _hop_case(g, 1, 2, 3, [1], big=100.0)):
        want_u2, want_p2 = _ref_hop(*case)
        raw2, copies2 = _call(t, memory_hop, *case)
        good = isinstance(raw2, (tuple, list)) and len(raw2) == 2
        gu, gp = (_as_tensor(raw2[0]), _as_tensor(raw2[1])) if good else (None, None)
        if not (_same(gu, want_u2, 1e-4) and _same(gp, want_p2)):
            ok = False
            B2, L2, d2 = case[1].shape
            if gu is None or tuple(gu.shape) != (B2, d2):
                hint = f"with B={B2}, L={L2}, d={d2} the result should be ((B, d), (B, L)); got {_describe(gu)}"
            elif gu is not None and _same(gu, _ref_hop(*case, residual=False)[0], 1e-4):
                hint = "you returned o alone: the next controller state is u + o (the question's vector plus what was read)"
            elif gp is not None and not bool(torch.isfinite(gp).all()):
                hint = ("with scores in the hundreds your weights hold nan or inf: subtract the largest real score "
                        "first, or use torch.softmax / masked_softmax")
            elif gp is not None and not _same(gp, want_p2):
                hint = f"with B={B2}, L={L2}, d={d2} and large scores the weights differ; " + _where(gp, want_p2)
            else:
                hint = f"u_next = u + sum_i p_i c_i; with B={B2}, L={L2}, d={d2}: " + _where(gu, want_u2, 1e-4)
            break
        if not _unchanged(case, copies2):
            ok, hint = False, "the values are right but your function changed its inputs in place"
            break
    t.expect(ok, 1, "u_next = u + sum_i p_i c_i; other sizes, float64, scores in the hundreds", hint)


# --------------------------------------------------------------------------- exercise 4: predict


PREDICTED = (0.5, 0.25 / 0.38)   # slot 3 after the shift; after sharpening with gamma = 2


@register("11.predict", title="predict before you measure: one step of location addressing", exercise_set=SET,
          points=2)
def check_predict(t, predicted_weights):
    raw = t.call(predicted_weights)
    try:
        after_shift, after_sharpen = (float(np.asarray(v, dtype=np.float64)) for v in raw)
    except (TypeError, ValueError):
        t.require(False, 1, "predicted_weights() returns two numbers",
                  f"return a pair (weight after the shift, weight after sharpening); got {_describe(raw)}")
        return
    t.expect(abs(after_shift - PREDICTED[0]) < 0.005, 1, "the weight on slot 3 after the shift",
             f"you said {after_shift:.3f}. The focus is entirely on slot 2; offset +1 carries its weight s[+1] to slot 3, "
             "offset 0 keeps s[0] on slot 2, offset -1 moves s[-1] to slot 1")
    t.expect(abs(after_sharpen - PREDICTED[1]) < 0.005, 1, "the weight on slot 3 after sharpening with gamma = 2",
             f"you said {after_sharpen:.3f}. Square the three nonzero weights, then divide by the sum of the squares")
