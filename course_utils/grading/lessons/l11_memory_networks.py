"""Checks for exercises/11_memory_networks.ipynb: content addressing, circular shift and sharpening, one
memory-network hop, and a prediction made before measuring.

Every check computes its references first (in float64), then calls the learner's code on copies of its
inputs and has a part that says whether the code changed them. It calls the code on at least two sizes
that differ in every free dimension (batch, memory slots or sentences, width, shift offsets), in float32
and float64, on large and mixed-scale values where a softmax or a power is involved (key strengths up to
1000 and different for each batch element, memory rows whose norms differ a millionfold, scores in the
thousands, sharpening exponents that underflow a naive power), and on focus at the edges as well as in
the middle. Answers may be tensors of any floating dtype, NumPy arrays or lists; hints say where a wrong
answer first differs. A crash on a later input costs the part that input tests, not the parts already
earned. While a check runs, the course's finished versions in ``course_utils.models.memory`` are
switched off (their code is swapped for one that raises, so a reference kept under another name is
switched off too).
"""

from __future__ import annotations

import torch

from ..core import register
from ..tensor_checks import (UNCHANGED, expect_unchanged, why_wrong as _why, OnCopies, as_number as _as_number,
                             as_tensor as _as_tensor, close as _same, describe as _describe, disabled,
                             rounded as _rounded, where_differs as _where)

SET = "11_memory_networks"
_UNCHANGED = UNCHANGED


# --------------------------------------------------------------------------- helpers


def _finished_versions_off():
    """The finished memory functions (and MemN2N.forward) raise while the learner's code runs."""
    from ...models import memory as finished

    return disabled(finished.cosine_similarity, finished.content_addressing, finished.interpolate,
                    finished.circular_shift, finished.sharpen, finished.address, finished.MemN2N.forward,
                    why="the course's finished version in course_utils.models.memory is not available to this "
                        "exercise: write it yourself")


def _expect_unchanged(t, changed, example):
    expect_unchanged(t, changed, example, "compute new tensors instead (x / y rather than x /= y, masked_fill rather "
                                          "than masked_fill_)")


def _Calls(t, fn, fn_name, names, changed):
    """The learner's function on copies of its inputs, with the finished versions off (see OnCopies)."""
    return OnCopies(t, fn, fn_name, names, changed, switched_off=_finished_versions_off)


def _shape_then(t, shape_ok, points, what, shape_hint, ok, hint):
    """One part that first needs the right shape (else the check stops there), then the property itself."""
    if not shape_ok:
        t.require(False, points, what, shape_hint)
    t.expect(ok, points, what, hint)


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


def _content_cases(g):
    """Other sizes in every dimension; the strongest row's score is beta: up to 400 in float32, 1000 in float64,
    with batch elements of very different strength."""
    cases = []
    for (B, N, M), betas, dtype in (((3, 7, 6), [0.5, 60.0, 400.0], torch.float32),
                                    ((4, 3, 2), [1000.0, 0.1, 250.0, 5.0], torch.float64),
                                    ((1, 9, 5), [300.0], torch.float64)):
        memory, key = _memory_case(g, B, N, M, mixed=True, dtype=dtype)
        label = f"memory {(B, N, M)} in {str(dtype)[6:]}, beta {betas}"
        cases.append((label, (memory, key, torch.tensor(betas, dtype=dtype))))
    return cases


def _content_other_hint(results):
    """results: (label, got, want, crash) for the failed cases."""
    label, got, want, crash = results[0]
    if not crash and got is not None and got.shape == want.shape and not bool(torch.isfinite(got).all()):
        return (f"{label}: nan or inf in your weights: exp of a large score overflows (or, with one max for the whole "
                f"batch, a weaker element's exps all underflow); subtract each row's own maximum before exp "
                f"(torch.softmax does this for you)")
    more = f" (and {len(results) - 1} more case{'s' if len(results) > 2 else ''})" if len(results) > 1 else ""
    return _why(got, want, crash, label) + more


@register("11.content_addressing", title="content addressing: softmax over beta times cosine similarity",
          exercise_set=SET, points=4)
def check_content_addressing(t, content_addressing):
    g = torch.Generator().manual_seed(11)
    B, N = 2, 5
    memory, key = _memory_case(g, B, N, 4)
    beta = torch.tensor([3.0, 0.5])
    want = _ref_content(memory, key, beta)
    dot_product = _ref_content(memory, key, beta, cosine=False)
    no_beta = _ref_content(memory, key, beta, use_beta=False)
    first_beta = _ref_content(memory, key, beta[:1].expand(B))
    others = _content_cases(g)
    wants = [_ref_content(*inputs) for _, inputs in others]

    changed = []
    call = _Calls(t, content_addressing, "content_addressing", ("memory", "key", "beta"), changed)
    raw = call(memory, key, beta)
    got = _as_tensor(raw)
    shape_ok = got is not None and tuple(got.shape) == (B, N)
    if not shape_ok or _same(got.sum(-1), torch.ones(B, dtype=torch.float64)):
        hint = ""
    elif _same(got.sum(-2), torch.ones(N, dtype=torch.float64)):
        hint = "your weights sum to one over the batch: the softmax runs over the slots (dim=-1)"
    else:
        hint = f"each row of weights should sum to 1 over the N slots; row sums {_rounded(got.sum(-1), 4)}"
    _shape_then(t, shape_ok, 1, "returns (B, N) weights, each batch element's summing to one over the slots",
                f"memory (2, 5, 4), key (2, 4) and beta (2,) should give weights of shape (2, 5); got {_describe(raw)}",
                not hint, hint)

    if _same(got, dot_product):
        hint = ("these are softmax(beta * key . M_i): divide each dot product by |key| |M_i| (cosine similarity), "
                "so a slot cannot win just by having a large norm")
    elif _same(got, no_beta):
        hint = "beta is missing: multiply the cosine scores by the key strength beta[b] before the softmax"
    elif _same(got, first_beta):
        hint = "each batch element has its own key strength: scale row b's scores by beta[b] (beta.unsqueeze(-1))"
    else:
        hint = "weights = softmax(beta[b] * cos(key[b], M[b, i])) over the slots; " + _where(got, want)
    t.expect(_same(got, want), 1, "w = softmax(beta * cos(key, M_i)) on a small case", hint)

    fails = []
    for (label, inputs), want in zip(others, wants):
        raw, crash = call.attempt(*inputs)
        if crash or not _same(_as_tensor(raw), want):
            fails.append((label, _as_tensor(raw), want, crash))
    t.expect(not fails, 1, "other sizes, float32 and float64, rows of very different norms, beta up to 1000",
             _content_other_hint(fails) if fails else "")
    _expect_unchanged(t, changed, "memory /= memory.norm(...)")


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


def _shift_hint(got, want, backwards):
    if _same(got, backwards):
        return ("your focus moved backwards: offset +1 (the last column of shift) moves slot i's weight to slot i + 1, "
                "w~[i] = sum_k s[k] w[i - k]")
    if _same(got[0], want[0]) and not _same(got[1], want[1]):
        return ("the shift does not wrap around: the last slot's weight must move to slot 0 (indices modulo N; "
                "torch.roll wraps)")
    return ("shift [0, 0, 1] should move each focus one slot forward (slot 2 to 3, the last slot to 0); "
            + _where(got, want))


def _sharpen_small_hint(got, want, w, gamma, crash):
    if crash:
        return f"sharpen(w (2, 5), gamma (2,)) raised {crash}"
    if got is None or tuple(got.shape) != (2, 5):
        return f"sharpen(w (2, 5), gamma (2,)) should return (2, 5); got {_describe(got)}"
    if _same(got, w.double() ** gamma.double().unsqueeze(-1)):
        return "renormalise: divide w^gamma by its sum over the slots so the weights sum to one again"
    if _same(got, _ref_sharpen(w, gamma[0].expand(2))):
        return "each batch element has its own exponent: raise row b to gamma[b] (gamma.unsqueeze(-1))"
    return "w^gamma / sum_j w_j^gamma, gamma per batch element (gamma = 1 leaves w unchanged); " + _where(got, want)


@register("11.shift_sharpen", title="location addressing: circular shift and sharpening", exercise_set=SET, points=5)
def check_shift_sharpen(t, circular_shift, sharpen):
    g = torch.Generator().manual_seed(12)
    B, N = 2, 6
    w = torch.zeros(B, N)
    w[0, 2], w[1, N - 1] = 1.0, 1.0                       # focus in the middle (slot 2), and on the last slot
    forward = torch.tensor([[0.0, 0.0, 1.0]] * B)         # all weight on offset +1
    want, backwards = _ref_shift(w, forward), _ref_shift(w, forward, direction=-1)
    shifts = []
    for (B2, N2, S2), dtype in (((3, 9, 5), torch.float64), ((1, 4, 3), torch.float32), ((4, 7, 7), torch.float64)):
        w2, s2 = _distribution(g, B2, N2).to(dtype), _distribution(g, B2, S2).to(dtype)
        shifts.append((f"N = {N2} slots, S = {S2} offsets (-{S2 // 2} .. {S2 // 2}), {str(dtype)[6:]}", (w2, s2),
                       _ref_shift(w2, s2)))
    w3, gamma3 = _distribution(g, 2, 5).float(), torch.tensor([1.0, 2.5])
    want3 = _ref_sharpen(w3, gamma3)
    # large exponents: a flat row's w^100 underflows to 0 in float32 unless each row is scaled by its own max
    w4 = torch.full((3, 8), 1e-4)
    w4[:2, :3] = torch.tensor([[0.3, 0.2, 0.1], [0.05, 0.5, 0.2]])
    w4[2] = torch.tensor([0.14, 0.13, 0.12, 0.12, 0.12, 0.12, 0.12, 0.13])
    w4 = w4 / w4.sum(-1, keepdim=True)
    gamma4 = torch.tensor([60.0, 40.0, 100.0])
    w5, gamma5 = _distribution(g, 1, 11), torch.tensor([3.0], dtype=torch.float64)
    want4, want5 = _ref_sharpen(w4, gamma4), _ref_sharpen(w5, gamma5)

    changed = []
    shift_call = _Calls(t, circular_shift, "circular_shift", ("w", "shift"), changed)
    sharpen_call = _Calls(t, sharpen, "sharpen", ("w", "gamma"), changed)
    raw = shift_call(w, forward)
    got = _as_tensor(raw)
    shape_ok = got is not None and tuple(got.shape) == (B, N)
    _shape_then(t, shape_ok, 1, "circular_shift: offset +1 moves the focus one slot forward, wrapping around",
                f"w (2, 6) and shift (2, 3) should give (2, 6); got {_describe(raw)}",
                _same(got, want), shape_ok and _shift_hint(got, want, backwards))

    fails = []
    for label, inputs, want2 in shifts:
        raw2, crash = shift_call.attempt(*inputs)
        if crash or not _same(_as_tensor(raw2), want2):
            fails.append(_why(_as_tensor(raw2), want2, crash, label))
    t.expect(not fails, 1, "circular_shift: any distribution over 2r + 1 offsets, other N and batch sizes, float64",
             "the shift is a circular convolution, w~[i] = sum over offsets k = -r .. r of s[k] w[(i - k) mod N], "
             "offset k in column k + r; " + (fails[0] if fails else ""))

    raw3, crash3 = sharpen_call.attempt(w3, gamma3, unwritten_ok=True)
    got3 = _as_tensor(raw3)
    t.expect(not crash3 and _same(got3, want3), 1, "sharpen: w^gamma / sum w^gamma per batch element",
             _sharpen_small_hint(got3, want3, w3, gamma3, crash3))

    raw4, crash4 = sharpen_call.attempt(w4, gamma4, unwritten_ok=True)
    raw5, crash5 = sharpen_call.attempt(w5, gamma5, unwritten_ok=True)
    got4, got5 = _as_tensor(raw4), _as_tensor(raw5)
    if not crash4 and got4 is not None and got4.shape == want4.shape and not bool(torch.isfinite(got4).all()):
        hint = ("with gamma = 100 and a flat row of weights near 0.13, every w^gamma underflows to 0 in float32 and "
                "0 / 0 = nan: divide each row by its own maximum first (the result is the same, and the row's largest "
                "entry becomes 1)")
    elif crash4 or not _same(got4, want4, atol=1e-4):
        hint = _why(got4, want4, crash4, "w (3, 8) in float32 with gamma (60, 40, 100), where each row's largest "
                                         "weight should take almost everything", 1e-4)
    elif crash5 or not _same(got5, want5):
        hint = _why(got5, want5, crash5, "w (1, 11) in float64, gamma 3")
    else:
        hint = ""
    t.expect(not hint, 1, "sharpen stays finite for large gamma (float32), and works for other sizes", hint)
    _expect_unchanged(t, changed, "w /= w.max() or shift /= shift.sum()")


# --------------------------------------------------------------------------- exercise 3: one memory-network hop


def _ref_hop(u, m, c, mask, use_mask=True, scale=1.0, residual=True):
    u, m, c = u.double(), m.double(), c.double()
    scores = (m @ u.unsqueeze(-1)).squeeze(-1) / scale
    if use_mask:
        scores = scores.masked_fill(~mask, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    o = (p.unsqueeze(-2) @ c).squeeze(-2)
    return (u + o if residual else o), p


def _hop_case(g, B, L, d, lengths, scales=None, dtype=torch.float64):
    """u scaled per story (scales), padding sentences of large junk that must not leak in."""
    u = torch.randn(B, d, generator=g, dtype=torch.float64)
    if scales is not None:
        u = u * torch.tensor(scales, dtype=torch.float64)[:, None]
    m = torch.randn(B, L, d, generator=g, dtype=torch.float64)
    c = torch.randn(B, L, d, generator=g, dtype=torch.float64)
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    m[~mask] = 50.0
    c[~mask] = -50.0
    return u.to(dtype), m.to(dtype), c.to(dtype), mask


def _pair(raw):
    """(u_next, p) as float64 tensors from a returned pair (tuple or list), else (None, None)."""
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        return _as_tensor(raw[0]), _as_tensor(raw[1])
    return None, None


def _p_hint(label, shape, gp, want_p, crash):
    """Why the weights p on the case ``label`` (m of ``shape`` (B, L, d)) are wrong."""
    B, L, d = shape
    if crash:
        return _why(None, want_p, crash, label)
    if gp is None or tuple(gp.shape) != (B, L):
        return (f"{label}: p should be (B, L) = {(B, L)}; got {_describe(gp)} (does your code assume the example's "
                f"sizes?)")
    if not bool(torch.isfinite(gp).all()):
        return (f"{label}: your weights hold nan or inf: exp of a score in the hundreds overflows, or every exp "
                f"underflows when the max you subtract is not the row's largest real score (one max for the whole "
                f"batch, or a max that includes the padding); subtract each story's largest real score, or use "
                f"masked_softmax")
    return f"{label}: " + _where(gp, want_p)


def _u_hint(label, case, gu, gp, crash):
    """Why u_next on ``case`` is not u + sum_i p_i c_i with the learner's own p; '' when it is, or when the code
    raised or its p is not usable (the part about p reports those)."""
    u, m, c, _ = case
    B, L, d = m.shape
    if crash:
        return ""
    if gu is None or tuple(gu.shape) != (B, d):
        return f"{label}: u_next should be (B, d) = {(B, d)}; got {_describe(gu)}"
    if gp is None or tuple(gp.shape) != (B, L) or not bool(torch.isfinite(gp).all()):
        return ""
    o = (gp.unsqueeze(-2) @ c.double()).squeeze(-2)
    if _same(gu, u.double() + o, 1e-4):
        return ""
    if _same(gu, o, 1e-4):
        return "you returned o alone: the next controller state is u + o (the question's vector plus what was read)"
    return f"{label}: u_next = u + sum_i p_i c_i, with your p; " + _where(gu, u.double() + o, 1e-4)


@register("11.memory_hop", title="one hop of an end-to-end memory network", exercise_set=SET, points=4)
def check_memory_hop(t, memory_hop):
    g = torch.Generator().manual_seed(13)
    B, L, d = 2, 5, 4
    case = _hop_case(g, B, L, d, [5, 3], dtype=torch.float32)
    want_p = _ref_hop(*case)[1]
    scaled_p = _ref_hop(*case, scale=d ** 0.5)[1]
    others = [("B=3, L=8, d=6, float32, stories scaled 1, 40, 300", _hop_case(g, 3, 8, 6, [8, 2, 5], [1.0, 40.0, 300.0],
                                                                              torch.float32)),
              ("B=4, L=6, d=2, float64, stories scaled 1000, 1, 0.01, 50",
               _hop_case(g, 4, 6, 2, [6, 1, 3, 4], [1000.0, 1.0, 0.01, 50.0])),
              ("B=1, L=3, d=3, float64", _hop_case(g, 1, 3, 3, [2]))]
    other_ps = [_ref_hop(*inputs)[1] for _, inputs in others]

    changed = []
    call = _Calls(t, memory_hop, "memory_hop", ("u", "m", "c", "mask"), changed)
    raw = call(*case)
    got_u, got_p = _pair(raw)
    results = [("the first case (B=2, L=5, d=4)", case, got_u, got_p, "")]
    for label, inputs in others:
        raw2, crash = call.attempt(*inputs)
        results.append((label, inputs, *_pair(raw2), crash))

    shape_ok = (got_u is not None and got_p is not None and tuple(got_u.shape) == (B, d)
                and tuple(got_p.shape) == (B, L))
    if not shape_ok:
        hint = ""
    elif bool((got_p[1, 3:].abs() > 1e-7).any()):
        hint = ("sentences where mask is False (padding) must get weight exactly 0: fill their scores with -inf "
                f"before the softmax; story 1 has 3 real sentences, and your weights are {_rounded(got_p[1])}")
    elif not _same(got_p.sum(-1), torch.ones(B, dtype=torch.float64)):
        hint = (f"each story's attention should sum to 1 over its real sentences (mask before the softmax, not "
                f"after); sums {_rounded(got_p.sum(-1), 4)}")
    else:
        hint = ""
    _shape_then(t, shape_ok, 1, "p is a distribution over each story's real sentences (padding gets 0)",
                f"u (2, 4), m and c (2, 5, 4), mask (2, 5) should give (u_next (2, 4), p (2, 5)); got "
                f"{[_describe(x) for x in raw] if isinstance(raw, (tuple, list)) else _describe(raw)}", not hint, hint)

    if _same(got_p, scaled_p):
        hint = "a memory network's score is the plain dot product u . m_i (no division by sqrt(d))"
    elif not _same(got_p, want_p):
        hint = "p_i = softmax over the real sentences of u . m_i; " + _where(got_p, want_p)
    else:
        hint = next((_p_hint(label, inputs[1].shape, gp, want, crash)
                     for (label, inputs, _, gp, crash), want in zip(results[1:], other_ps)
                     if crash or not _same(gp, want)), "")
    t.expect(not hint, 1, "p = softmax(u . m_i) over the real sentences; other sizes, float64, scores in the thousands",
             hint)
    hints = (_u_hint(label, inputs, gu, gp, crash) for label, inputs, gu, gp, crash in results)
    hint = next((h for h in hints if h), "")
    t.expect(not hint, 1, "u_next = u + sum_i p_i c_i (with your p), at every size", hint)
    _expect_unchanged(t, changed, "m.masked_fill_(...) or u += o")


# --------------------------------------------------------------------------- exercise 4: predict


PREDICTED = (0.5, 0.25 / 0.38)   # slot 3 after the shift; after sharpening with gamma = 2


def _two_numbers(raw):
    """[a, b] from a pair of numbers (any numeric types) or a two-element array or tensor; None otherwise."""
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        values = [_as_number(v) for v in raw]
    else:
        flat = _as_tensor(raw)
        values = flat.flatten().tolist() if flat is not None and flat.numel() == 2 else [None]
    return values if len(values) == 2 and None not in values else None


@register("11.predict", title="predict before you measure: one step of location addressing", exercise_set=SET,
          points=2)
def check_predict(t, predicted_weights):
    raw = t.call(predicted_weights)
    values = _two_numbers(raw)
    if values is None:
        t.require(False, 1, "predicted_weights() returns two numbers",
                  f"return a pair (weight after the shift, weight after sharpening); got {_describe(raw)}")
    after_shift, after_sharpen = values
    t.expect(abs(after_shift - PREDICTED[0]) < 0.005, 1, "the weight on slot 3 after the shift",
             f"you said {after_shift:.3f}. The focus is entirely on slot 2; offset +1 carries its weight s[+1] to "
             "slot 3, offset 0 keeps s[0] on slot 2, offset -1 moves s[-1] to slot 1")
    t.expect(abs(after_sharpen - PREDICTED[1]) < 0.005, 1, "the weight on slot 3 after sharpening with gamma = 2",
             f"you said {after_sharpen:.3f}. Square the three nonzero weights, then divide by the sum of the squares")
