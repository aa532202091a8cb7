"""Checks for exercises/03_attention_seq2seq.ipynb: additive attention with padding masked, one step of
the attention decoder, greedy decoding (feeding back predictions, unlike teacher forcing), alignment
scores, and a prediction: how many parameters attention adds to lesson 01's model.

Weights follow the row-vector convention of exercise 02.2: ``x @ W`` with W of shape (in, out).
Exercises 2 and 3 are graded on copies of the course's model whose finished ``step`` /
``greedy_decode`` raise, so the learner's code must do that work.
"""

from __future__ import annotations

import copy
import math

import torch

from ..core import register
from ..tensor_checks import (as_count, as_number as _number, as_tensor as _as_tensor, close as _close, copies as _copies,
                             describe as _describe, disabled, rounded as _rounded, unchanged as _unchanged,
                             where_differs as _where_differs)

SET = "03_attention_seq2seq"


# ---------------------------------------------------------------------------------------------- helpers

def _pair(got):
    return isinstance(got, (tuple, list)) and len(got) == 2


def _ask(t, fn, inputs: dict, *extra, first=(), **kwargs):
    """Call learner code as fn(*first, *copies of inputs' values, *extra, **kwargs) (references are computed
    before the call); -> (result as data, names of the inputs the call changed in place)."""
    given = _copies(*inputs.values())
    got = t.call(fn, *first, *given, *extra, **kwargs)
    return got, [name for (name, value), mine in zip(inputs.items(), given) if not _unchanged((value,), (mine,))]


def _mutated(names) -> str:
    return f"your function changed its input{'s' if len(names) > 1 else ''} {', '.join(names)} in place (an " \
           "in-place method such as masked_fill_ or copy_, or an assignment into it); build new tensors instead"


# ------------------------------------------------------------------------------- 03.1 additive attention

def _ref_scores(query, keys, mask, W_q, W_k, v):
    """In float64: e_i = tanh(q W_q + k_i W_k) . v, (B, S), padding not masked."""
    query, keys, W_q, W_k, v = (x.double() for x in (query, keys, W_q, W_k, v))
    return torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v


def _ref_additive(query, keys, mask, W_q, W_k, v):
    """In float64: -> context (B, H_k), weights (B, S)."""
    scores = _ref_scores(query, keys, mask, W_q, W_k, v)                       # (B, S)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S)
    return (weights.unsqueeze(1) @ keys.double()).squeeze(1), weights


def _additive_case(seed, B, S, Hq, Hk, A, v=None, lengths=None):
    g = torch.Generator().manual_seed(seed)
    query, keys = torch.randn(B, Hq, generator=g), torch.randn(B, S, Hk, generator=g)
    W_q, W_k = torch.randn(Hq, A, generator=g), torch.randn(Hk, A, generator=g)
    v = torch.randn(A, generator=g) if v is None else torch.tensor(v)
    lengths = lengths or [S] * B
    mask = torch.arange(S).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return dict(query=query, keys=keys, mask=mask, W_q=W_q, W_k=W_k, v=v)


def _thousands_case():
    """B=4, S=6: rows whose scores sit near +1000 or -1000 (the first attention unit saturates, v[0] = 1000)
    and vary by a few units inside each row; rows 1 and 3 are padded."""
    case = _additive_case(9, 4, 6, 4, 3, 3, v=[1000.0, 4.0, -3.0], lengths=[6, 3, 6, 2])
    case["W_q"][:, 0] = 0.0
    case["W_q"][0, 0] = 20.0
    case["query"][:, 0] = torch.tensor([1.0, -1.0, 0.7, -0.8])    # tanh(+-20 + small) = +-1: row levels +-1000
    case["W_k"][:, 0] *= 0.05
    return case


def _split(got, B, S, Hk):
    """(context, weights) as float64 tensors of shapes (B, H_k), (B, S), or None."""
    if not _pair(got):
        return None
    context, weights = _as_tensor(got[0]), _as_tensor(got[1])
    if context is None or weights is None or tuple(context.shape) != (B, Hk) or tuple(weights.shape) != (B, S):
        return None
    return context, weights


def _own_context(weights, keys):
    """weights @ keys: the context your weights give (float64)."""
    return (weights.unsqueeze(1) @ keys.double()).squeeze(1)


def _context_atol(keys) -> float:
    return 1e-5 * max(1.0, float(keys.abs().max()))


def _consistent_context(context, weights, keys) -> bool:
    """Whether the context is your weights' sum of the keys (rows with nan weights: nan expected there too)."""
    own = _own_context(weights, keys)
    judged = torch.isfinite(own)
    return _close(context[judged], own[judged], atol=_context_atol(keys)) \
        and not bool(torch.isfinite(context[~judged]).any())


def _padding_leak(weights, mask):
    """(b, s) of the first padded position with weight (nan counts), or None."""
    bad = ~mask & ~(weights.abs() <= 1e-7)
    return tuple(int(i) for i in bad.nonzero()[0]) if bool(bad.any()) else None


def _sizes(case) -> str:
    B, S, Hk = case["keys"].shape
    return f"B={B}, S={S}, H_q={case['query'].shape[1]}, H_k={Hk}, A={case['v'].shape[0]}, lengths " \
           f"{case['mask'].sum(1).tolist()}"


def _large_case_hint(case, got, want, exact, stability, padding_ok, atol) -> str:
    """'' when the answer is right on a large case; else what is wrong. With ``exact`` False (your weights were
    already wrong without padding) the values are not compared, and with ``stability`` False (they were not even
    finite) neither is finiteness; padding and the context only when the padding part passed, so that one
    mistake costs one part."""
    mask, want_w = case["mask"], want[1]
    B, S, Hk = case["keys"].shape
    split = _split(got, B, S, Hk)
    if split is None:
        return f"{_sizes(case)}: expected (context, weights) of shapes ({B}, {Hk}) and ({B}, {S}); got " \
               f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}"
    context, weights = split
    lost = ~torch.isfinite(weights).all(1) | (weights.sum(1) < 0.5 if exact else False)   # rows lost to exp
    if stability and bool(lost.any()):
        b = int(lost.nonzero()[0])
        scores = _ref_scores(**case).masked_fill(~mask, float("-inf"))
        top, highest = scores[b].max().item(), scores.max().item()
        if top > 80:
            return f"{_sizes(case)}: row {b} has weights {_rounded(weights[b])}: its scores reach {top:.0f} and exp " \
                   "overflows (exp(x) is inf above 88 in float32); use torch.softmax, or subtract each row's own " \
                   "maximum before exp"
        return f"{_sizes(case)}: row {b} has weights {_rounded(weights[b])}: its scores (up to {top:.0f}) sit far " \
               f"below another row's ({highest:.0f}), so subtracting one maximum for the whole batch turns every " \
               "exp in this row into 0 (and 0/0 = nan); subtract each row's own maximum (torch.softmax does)"
    leak = _padding_leak(weights, mask) if padding_ok else None
    if leak is not None:
        return f"{_sizes(case)}: padded position {leak[1]} of row {leak[0]} gets weight " \
               f"{weights[leak].item():.3g}: with real scores near -1000, a finite fill value such as -100 or -1e3 " \
               "is not small enough; fill with -inf"
    if exact and not _close(weights, want_w, atol=atol):
        return f"{_sizes(case)}: weights {_where_differs(weights, want_w, atol=atol)}"
    if padding_ok and not _consistent_context(context, weights, case["keys"]):
        return f"{_sizes(case)}: context[b] should be weights[b] @ keys[b]: " \
               f"{_where_differs(context, _own_context(weights, case['keys']), _context_atol(case['keys']))}"
    return ""


@register("03.additive_attention", title="additive (Bahdanau) attention with padding masked", exercise_set=SET,
          points=5)
def check_additive_attention(t, additive_attention):
    changed = []

    def ask(case):
        got, names = _ask(t, additive_attention, case)
        changed.extend(n for n in names if n not in changed)
        return got

    B, S, Hq, Hk, A = 2, 4, 3, 5, 6
    case = _additive_case(3, B, S, Hq, Hk, A)
    _, want_w = _ref_additive(**case)
    got = ask(case)
    split = _split(got, B, S, Hk)
    t.require(split is not None, 1, "returns (context, weights) of shapes (B, H_k) and (B, S)",
              f"query (2, 3), keys (2, 4, 5), W_q (3, 6), W_k (5, 6) should give context (2, 5) and weights (2, 4); "
              f"got {[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}")
    context, weights = split
    if not bool(torch.isfinite(weights).any()):
        hint = "every weight is nan: with nothing padded, every score was filled with -inf: is your mask inverted? " \
               "True marks a real token (keep it)"
    elif _close(weights.sum(0), torch.ones(S)) and not _close(weights.sum(-1), torch.ones(B)):
        hint = "your weights sum to one over the batch: the softmax must run over the source positions (dim=-1)"
    elif not _close(weights.sum(-1), torch.ones(B)):
        hint = f"each row of weights should sum to one (a softmax over source positions); row sums: " \
               f"{_rounded(weights.sum(-1))}"
    else:
        hint = f"scores are e_i = tanh(q @ W_q + k_i @ W_k) @ v (row vectors times (in, out) matrices; note the " \
               f"tanh); {_where_differs(weights, want_w)}"
    exact = t.expect(_close(weights, want_w), 1, "no padding: the weights are softmax(tanh(q W_q + k_i W_k) . v)", hint)
    finite = bool(torch.isfinite(weights).all())
    t.expect(_consistent_context(context, weights, case["keys"]), 1,
             "the context is the weighted sum of the keys, sum_i alpha_i k_i",
             f"context[b] = weights[b] @ keys[b], shape (H_k,), with your weights: "
             f"{_where_differs(context, _own_context(weights, case['keys']))}")

    # padding, with junk in the padded keys; judged on your own weights' values when those were already wrong
    case = dict(case, mask=torch.tensor([[True, True, True, True], [True, True, False, False]]))
    case["keys"] = case["keys"].clone()
    case["keys"][1, 2:] = 100.0  # padding states hold junk: it must not leak into the context
    _, want_w = _ref_additive(**case)
    inverted = _ref_additive(**dict(case, mask=~case["mask"]))[1][1]         # row 1, mask flipped
    split = _split(ask(case), B, S, Hk)
    if split is None:
        hint = "with a mask the result should still be (context, weights) of shapes (2, 5) and (2, 4)"
    else:
        context, weights = split
        if _close(weights[1], inverted):
            hint = "your mask is inverted: True marks a real source token (keep it), False marks padding (weight 0)"
        elif _padding_leak(weights, case["mask"]) is not None:
            hint = f"padded positions (mask False) must get weight exactly 0: fill their scores with -inf before " \
                   f"the softmax; row 1 got {_rounded(weights[1])}"
        elif exact and not _close(weights, want_w):
            hint = f"padding gets 0 but the real positions should share all the weight: " \
                   f"{_where_differs(weights, want_w)}"
        elif not _consistent_context(context, weights, case["keys"]):
            hint = f"padding states (set to 100 here) leaked into the context: " \
                   f"{_where_differs(context, _own_context(weights, case['keys']), _context_atol(case['keys']))}"
        else:
            hint = ""
    padding_ok = not hint

    # other sizes in every dimension, mixed lengths, scores of both signs beyond +-100 (exp overflows in float32),
    # then rows near +1000 and -1000 (one shift for the whole batch underflows, a finite fill is not enough)
    big = _additive_case(4, 3, 7, 6, 2, 4, v=[45.0, -40.0, 35.0, 30.0], lengths=[7, 1, 4])
    big["keys"][0, :3] *= 50.0   # mixed scales: three large encoder states in row 0
    large_hint = ""
    for case, atol in ((big, 1e-4), (_thousands_case(), 1e-3)):
        want = _ref_additive(**case)
        large_hint = _large_case_hint(case, ask(case), want, exact, finite, padding_ok, atol)
        if large_hint:
            break

    if padding_ok and changed:
        hint = _mutated(changed)
    t.expect(not hint, 1, "padded positions get weight 0 and do not leak into the context (inputs left unchanged)",
             hint)
    t.expect(not large_hint, 1, "other sizes (B=3, S=7, H_q=6, H_k=2, A=4), a one-word row, scores in the hundreds "
             "and rows near +-1000 (scores in the thousands)", large_hint)


# ------------------------------------------------------------------------- models without finished parts

def _tiny_model(seed=0, scale=1.0, *, V_src=9, V=11, E=4, H=6, B=3, S=5, lengths=(5, 3, 2)):
    """A small untrained model and a padded batch; ``scale`` sharpens its embeddings and outputs so that
    its greedy predictions depend on the tokens fed back (an untrained model often repeats one word)."""
    from ...models.attention_seq2seq import AttentionSeq2Seq

    torch.manual_seed(seed)
    model = AttentionSeq2Seq(V_src, V, emb_size=E, hidden_size=H).eval()
    with torch.no_grad():
        model.decoder.embed.weight.mul_(scale)
        model.decoder.out.weight.mul_(scale)
    g = torch.Generator().manual_seed(seed + 1)
    src = torch.randint(3, V_src, (B, S), generator=g)
    src_len = torch.tensor(lengths)
    for b, n in enumerate(lengths):
        src[b, n:] = 0
    return model, src, src_len


def _without_step(decoder):
    """A copy of ``decoder`` and a context in which its finished ``step`` raises (its pieces work)."""
    locked = copy.deepcopy(decoder)
    return locked, disabled((locked, "step"), why="in this check the course's finished decoder.step is unavailable: "
                            "build the step from decoder.embed, decoder.attention, decoder.rnn and decoder.out")


def _without_greedy(model):
    """A copy of ``model`` and a context in which its ``greedy_decode`` and ``forward`` raise (encode and
    decoder.step work)."""
    locked = copy.deepcopy(model)
    return locked, disabled((locked, "greedy_decode"), (locked, "forward"),
                            why="in this check the course's finished greedy_decode and teacher-forced forward are "
                                "unavailable: write the loop yourself with model.encode and model.decoder.step")


# ------------------------------------------------------------------------------------ 03.2 decoder step

_STEP_CASES = (dict(seed=0), dict(seed=7, V_src=7, V=8, E=5, H=3, B=2, S=3, lengths=(3, 1)))


def _step_case(k, sizes):
    """A model, and the inputs of one decoder step: token (B,), a state off the encoder's (B, H), keys, mask."""
    model, src, src_len = _tiny_model(**sizes)
    V = model.decoder.out.out_features
    with torch.no_grad():
        keys, state, mask, _ = model.encode(src, src_len)
        state = state + 0.5 * torch.randn(state.shape, generator=torch.Generator().manual_seed(5 + k))
    token = torch.randint(1, V, (src.shape[0],), generator=torch.Generator().manual_seed(11 + k))
    return model.decoder, dict(token=token, state=state, keys=keys, mask=mask)


@torch.no_grad()
def _contexts(decoder, inputs, weights):
    """The contexts a step may use: the right one, and the one your weights give (weights @ keys)."""
    right = decoder.attention(inputs["state"], inputs["keys"], inputs["mask"])[0]
    own = (weights.float().unsqueeze(1) @ inputs["keys"]).squeeze(1)
    return right, own


@register("03.decoder_step", title="one step of the attention decoder", exercise_set=SET, points=4)
def check_decoder_step(t, decoder_step):
    results, changed = [], []
    for k, sizes in enumerate(_STEP_CASES):
        decoder, inputs = _step_case(k, sizes)
        B, S = inputs["mask"].shape
        H, V = decoder.rnn.hidden_size, decoder.out.out_features
        with torch.no_grad():
            want = decoder.step(**inputs)                                   # references before the call
            w_from_new = decoder.attention(want[1], inputs["keys"], inputs["mask"])[1]
            w_unmasked = decoder.attention(inputs["state"], inputs["keys"], torch.ones_like(inputs["mask"]))[1]
            locked, off = _without_step(decoder)
            with off:
                got, names = _ask(t, decoder_step, inputs, first=(locked,))
        changed.extend(n for n in names if n not in changed)
        shape_ok = isinstance(got, (tuple, list)) and len(got) == 3 and all(_as_tensor(x) is not None for x in got) \
            and [tuple(_as_tensor(x).shape) for x in got] == [(B, V), (B, H), (B, S)]
        if not shape_ok:
            t.require(False, 1, "returns (logits, new state, weights) of shapes (B, V), (B, H), (B, S), at two sizes",
                      f"with B={B}, S={S}, H={H}, V={V} expected shapes {[(B, V), (B, H), (B, S)]}; got "
                      f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}")
        results.append(dict(got=tuple(_as_tensor(x) for x in got), want=want, new=w_from_new, unmasked=w_unmasked,
                            decoder=decoder, inputs=inputs, sizes=f"(B={B}, S={S}, H={H}, V={V})"))
    t.expect(True, 1, "returns (logits, new state, weights) of shapes (B, V), (B, H), (B, S), at two sizes")

    # each part is judged on your own earlier results (your weights' context, your new state), so one slip
    # costs one part
    hint = ""
    for r in results:
        weights = r["got"][2]
        if _close(weights, r["want"][2]):
            continue
        if _close(weights, r["new"]):
            hint = "your attention uses the NEW state s_t; Bahdanau's decoder scores with the previous state " \
                   "s_{t-1} (the state passed in), before the GRU runs"
        elif _close(weights, r["unmasked"]):
            hint = "padded source positions get weight: pass the mask to decoder.attention(state, keys, mask)"
        else:
            hint = f"weights should be decoder.attention(state, keys, mask)[1], from the state passed in; " \
                   f"{r['sizes']} {_where_differs(weights, r['want'][2])}"
        break
    t.expect(not hint, 1, "attention is computed from the previous state s_{t-1}, with the padding mask (two sizes)",
             hint)

    hint = ""
    for r in results:
        decoder, inputs, (_, state, weights) = r["decoder"], r["inputs"], r["got"]
        with torch.no_grad():
            embedded = decoder.embed(inputs["token"])
            candidates = [decoder.rnn(torch.cat([embedded, c], -1), inputs["state"])
                          for c in _contexts(decoder, inputs, weights)]
        if not any(_close(state, c) for c in candidates):
            hint = "new state = decoder.rnn(torch.cat([decoder.embed(token), context], -1), state): embedding " \
                   f"first, then the context, and the state passed in; {r['sizes']} " \
                   f"{_where_differs(state, candidates[0])}"
            break
    if not hint and changed:
        hint = _mutated(changed)
    t.expect(not hint, 1, "the GRU reads [embedding; context] and the previous state (two sizes), and the step "
             "leaves its inputs unchanged", hint)

    hint = ""
    for r in results:
        decoder, inputs, (logits, state, weights) = r["decoder"], r["inputs"], r["got"]
        with torch.no_grad():
            candidates = [decoder.out(torch.cat([state.float(), c], -1)) for c in _contexts(decoder, inputs, weights)]
        if not any(_close(logits, c) for c in candidates):
            hint = "logits = decoder.out(torch.cat([new_state, context], -1)): the new state first, then the " \
                   f"context; {r['sizes']} {_where_differs(logits, candidates[0])}"
            break
    t.expect(not hint, 1, "the output layer reads [new state; context] (two sizes)", hint)


# ---------------------------------------------------------------------------------- 03.3 greedy decoding

_GREEDY_CASES = ((dict(seed=2, scale=3.0), 6, 1),
                 (dict(seed=4, scale=3.0, V_src=8, V=9, E=3, H=4, B=2, S=3, lengths=(2, 3)), 4, 2))


@register("03.greedy_decode", title="greedy decoding: feed back your own predictions", exercise_set=SET, points=4)
def check_greedy_decode(t, greedy_decode):
    results, shape_hint = [], ""
    for k, (sizes, max_len, bos) in enumerate(_GREEDY_CASES):
        model, src, src_len = _tiny_model(**sizes)
        B, S = src.shape
        with torch.no_grad():
            want_ids, want_w = model.greedy_decode(src, src_len, max_len, bos_id=bos, return_attention=True)
            locked, off = _without_greedy(model)
            with off:
                got = t.call(greedy_decode, locked, *_copies(src, src_len), max_len, bos_id=bos)
        ids, w = (_as_tensor(got[0]), _as_tensor(got[1])) if _pair(got) else (None, None)
        if not (ids is not None and w is not None and tuple(ids.shape) == (B, max_len)
                and tuple(w.shape) == (B, max_len, S)) and not shape_hint:
            shape_hint = f"with B={B}, S={S}, max_len={max_len} expected {(B, max_len)} and {(B, max_len, S)}; got " \
                         f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}"
        # a wrong number of steps is judged on the steps both have; other shapes cannot be judged
        readable = ids is not None and w is not None and ids.dim() == 2 and w.dim() == 3 and ids.shape[0] == B \
            and tuple(w.shape[::2]) == (B, S) and ids.shape[1] == w.shape[1] >= 1
        if readable and ids.shape[1] != max_len and shape_hint.startswith(f"with B={B}"):
            shape_hint += f"; decode max_len = {max_len} steps (the argument), not {ids.shape[1]}"
        if not readable:
            t.require(False, 1, "returns (ids, weights) of shapes (B, max_len) and (B, max_len, S), at two sizes",
                      shape_hint)
        n = min(max_len, ids.shape[1])
        ids = (ids.round() if ids.is_floating_point() else ids).long()[:, :n]
        results.append((ids, w[:, :n], want_ids[:, :n], want_w[:, :n], (B, S, max_len, bos)))
    t.expect(not shape_hint, 1, "returns (ids, weights) of shapes (B, max_len) and (B, max_len, S), at two sizes",
             shape_hint)

    # each step's predictions depend on the steps before: later steps are judged where the first is right, and
    # the weights up to where the ids agree (step 0's weights depend on s_0 alone), so one slip costs one part
    first = [(ids, want, case) for ids, _, want, _, case in results if not torch.equal(ids[:, 0], want[:, 0])]
    if not first:
        hint = ""
    elif bool((first[0][0][:, 0] == first[0][2][3]).all()):
        hint = f"(B, S, max_len, bos_id) = {first[0][2]}: your first ids are bos_id itself; return the predictions " \
               "(each step's argmax), not the tokens you fed in"
    else:
        hint = f"(B, S, max_len, bos_id) = {first[0][2]}: the first predictions should be " \
               f"{first[0][1][:, 0].tolist()}, got {first[0][0][:, 0].tolist()}; start every row from token = bos_id (the argument, not always 1) " \
               "and the state from model.encode"
    t.expect(not first, 1, "the first step starts from bos_id and s_0", hint)

    judged = [(ids, want, case) for ids, _, want, _, case in results if torch.equal(ids[:, 0], want[:, 0])]
    later = [(ids, want, case) for ids, want, case in judged if not torch.equal(ids, want)]
    if not judged:
        hint = "every later step depends on the first: fix the first step above, then this part is judged"
    elif later:
        ids, want, case = later[0]
        t_bad = int((ids != want).any(0).nonzero()[0])
        hint = f"(B, S, max_len, bos_id) = {case}: expected {want.tolist()}, got {ids.tolist()} (first difference at " \
               f"step {t_bad}); after each step the next input must be this step's argmax (not bos_id again, not a " \
               "true word: that would be teacher forcing), and the state must carry over"
    else:
        hint = ""
    t.expect(not hint, 1, "later steps read the previous prediction and carry the state", hint)

    hint = ""
    for ids, w, want_ids, want_w, case in results:
        n = ids.shape[1] if torch.equal(ids, want_ids) else 1
        if not _close(w[:, :n], want_w[:, :n]):
            hint = f"(B, S, max_len, bos_id) = {case}: weights[:, t] should be the attention weights of step t " \
                   f"(stack the (B, S) weights along dim=1); {_where_differs(w[:, :n], want_w[:, :n])}"
            break
    t.expect(not hint, 1, "the weights of every step are returned, stacked on dim 1", hint)


# --------------------------------------------------------------------------------- 03.4 alignment scores

def _alignment_cases():
    """(name, weights, true positions, tgt_len, padded?): the exercise's example, padded and not, a larger batch,
    padded and not, and a single word."""
    example = torch.tensor([
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]],
        [[0.1, 0.9, 0.0], [0.6, 0.4, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
    ])  # (B=2, T=4, S=3)
    true = torch.tensor([[0, 1, 2, 0], [1, 0, 0, 0]])
    g = torch.Generator().manual_seed(8)
    weights = torch.softmax(1.5 * torch.randn(3, 6, 5, generator=g), dim=-1)  # (B=3, T=6, S=5), peaks below 1/2 too
    true_big = torch.randint(0, 5, (3, 6), generator=g)
    aligned = (torch.arange(3).view(3, 1) + torch.arange(6)) % 3 != 0
    true_big = torch.where(aligned, weights.argmax(-1), true_big)          # mostly on the peak, as a trained model
    return [("B=2, T=4, S=3, tgt_len [3, 2]", example, true, torch.tensor([3, 2]), True),
            ("B=2, T=4, S=3, every word counted", example, true, torch.tensor([4, 4]), False),
            ("B=3, T=6, S=5, every word counted", weights, true_big, torch.tensor([6, 6, 6]), False),
            ("one word (B=1, T=1, S=5)", weights[:1, :1], true_big[:1, :1], torch.tensor([1]), False),
            ("B=3, T=6, S=5, tgt_len [6, 2, 4]", weights, true_big, torch.tensor([6, 2, 4]), True)]


def _ref_alignment(weights, true, tgt_len):
    counted = torch.arange(weights.shape[1]).unsqueeze(0) < tgt_len.unsqueeze(1)
    hits = (weights.argmax(-1) == true)[counted].double()
    mass = weights.gather(-1, true.unsqueeze(-1)).squeeze(-1)[counted].double()
    return hits.mean().item(), mass.mean().item()


def _fmt(x) -> str:
    return f"{x:.4f}" if isinstance(x, float) else repr(x)


def _per_sentence(weights, true, tgt_len):
    """The slip of averaging each sentence first, then the sentences."""
    rows = [_ref_alignment(weights[b:b + 1], true[b:b + 1], tgt_len[b:b + 1]) for b in range(weights.shape[0])]
    return tuple(sum(r[i] for r in rows) / len(rows) for i in range(2))


@register("03.alignment_scores", title="alignment accuracy and attention mass on the true source word",
          exercise_set=SET, points=4)
def check_alignment_scores(t, alignment_scores):
    results, changed = [], []
    for name, weights, true, tgt_len, padded in _alignment_cases():
        want = _ref_alignment(weights, true, tgt_len)                      # references before the call
        got, names = _ask(t, alignment_scores, dict(weights=weights, true_positions=true, tgt_len=tgt_len))
        changed.extend(n for n in names if n not in changed)
        numbers = tuple(_number(x) for x in got) if _pair(got) else None
        if not results:
            t.require(numbers is not None and None not in numbers, 1,
                      "returns two numbers (argmax accuracy, mean mass)", f"expected a pair of floats, got {_describe(got)} "
                      f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else ''}")
        results.append((name, numbers, want, padded, _per_sentence(weights, true, tgt_len)))

    def first_wrong(i, padded):
        """(case name, got, want) of the first case (padded or not) where number i is wrong, or None."""
        for name, numbers, want, is_padded, _ in results:
            if is_padded == padded and (numbers is None or numbers[i] is None
                                        or not math.isclose(numbers[i], want[i], abs_tol=1e-6)):
                return name, _fmt(numbers[i] if numbers else None), want[i]
        return None

    # accuracy and mass are judged where every word counts; which words count, on padded rows
    bad = first_wrong(0, padded=False)
    acc_ok = t.expect(bad is None, 1, "argmax accuracy: the share of words whose most-attended source position is "
                      "the true one (two sizes and a single word)",
                      "" if bad is None else
                      f"{bad[0]}: expected {bad[2]:.4f}, got {bad[1]}; a word counts as aligned when the argmax over "
                      "the source positions of its weights equals its true position; divide by the number of words "
                      "counted")
    bad = first_wrong(1, padded=False)
    mass_ok = t.expect(bad is None, 1, "mean attention mass on the true source word (two sizes and a single word)",
                       "" if bad is None else
                       f"{bad[0]}: expected {bad[2]:.4f}, got {bad[1]}; average weights[b, t, true_positions[b, t]] "
                       "over the counted words (the weight on the true word, not the largest weight)")

    judged = [i for i, ok in ((0, acc_ok), (1, mass_ok)) if ok]
    hint = "" if judged else "fix the accuracy and the mass above first; then this part is judged"
    for name, numbers, want, padded, per_sentence in results:
        if hint or not padded:
            continue
        wrong = [i for i in judged if numbers is None or numbers[i] is None
                 or not math.isclose(numbers[i], want[i], abs_tol=1e-6)]
        if not wrong:
            continue
        i = wrong[0]
        what = ("accuracy", "mass")[i]
        if numbers is not None and numbers[i] is not None and math.isclose(numbers[i], per_sentence[i], abs_tol=1e-6):
            hint = f"{name}: you averaged each sentence first, then the sentences ({what} {numbers[i]:.4f}, expected " \
                   f"{want[i]:.4f}); every counted word weighs the same: average over all counted words at once"
        else:
            hint = f"{name}: {what} expected {want[i]:.4f}, got {_fmt(numbers[i] if numbers else None)}; count " \
                   "only the first tgt_len[b] positions of each row (the rest is <eos> or padding)"
    if not hint and changed:
        hint = _mutated(changed)
    t.expect(not hint, 1, "counts each of the first tgt_len[b] words once, padding and <eos> left out (inputs left "
             "unchanged)", hint)


# ------------------------------------------------------------------------ 03.5 predict the parameter cost

_PARAM_SIZES = ((32, 64, 13), (8, 5, 11), (3, 16, 40), (20, 7, 7))   # (E, H, V); the first is the lesson's


def _extra_parameters(E, H, V):
    """Measured: parameters of AttentionSeq2Seq minus those of BottleneckSeq2Seq at the same sizes."""
    from ...models import AttentionSeq2Seq, BottleneckSeq2Seq

    count = lambda m: sum(p.numel() for p in m.parameters())
    return count(AttentionSeq2Seq(V, V, E, H)) - count(BottleneckSeq2Seq(V, V, E, H))


def _models_hidden():
    """While the learner's prediction runs, building the course's two models raises."""
    from ...models import attention_seq2seq, seq2seq

    return disabled((attention_seq2seq.AttentionSeq2Seq, "__init__"), (seq2seq.BottleneckSeq2Seq, "__init__"),
                    why="this exercise asks for a prediction from the equations: the check does not let it build the "
                        "course's models and count their parameters")


@register("03.extra_parameters", title="predict: how many parameters attention adds", exercise_set=SET, points=4)
def check_extra_parameters(t, extra_parameters):
    wants = {sizes: _extra_parameters(*sizes) for sizes in _PARAM_SIZES}   # measured before the learner runs
    with _models_hidden():
        gots = {sizes: t.call(extra_parameters, *sizes) for sizes in _PARAM_SIZES}
        other_E = t.call(extra_parameters, 50, 64, 13)
    numbers = {s: as_count(g) for s, g in gots.items()}
    t.require(all(n is not None for n in numbers.values()), 1,
              "returns a whole number of parameters",
              f"extra_parameters(32, 64, 13) returned {gots[_PARAM_SIZES[0]]!r}; return an int")
    E, H, V = _PARAM_SIZES[0]
    got, want = int(numbers[(E, H, V)]), wants[(E, H, V)]
    missing = want - got
    diagnosis = {H * V: "the output layer reads [s_t; c_t], H more inputs for each of the V outputs",
                 3 * H * H: "the decoder GRU also reads c_t: H more inputs to each of its 3 gates, H outputs each",
                 2 * H * H: "the decoder GRU has 3 gates (reset, update, candidate), each reading H more inputs",
                 H * H: "W_s maps s_{t-1} (H) to the attention size (A = H here)",
                 H * H + H: "W_h maps h_i (H) to A = H, with a bias",
                 H: "count v (A numbers) and the bias of W_h (A numbers)",
                 2 * H: "count v (A numbers) and the bias of W_h (A numbers)"}
    if _number(other_E) is not None and _number(other_E) != got:
        hint = "your answer changes with E, the embedding size; nothing that attention adds touches the embeddings " \
               "(the GRU's input grows by H, not by E)"
    elif missing in diagnosis:
        hint = f"{missing} parameters short at E=32, H=64, V=13: {diagnosis[missing]}"
    else:
        hint = f"at E=32, H=64, V=13 (lesson 03's sizes) you predicted {got}; count what attention adds: W_s, W_h " \
               f"(with bias), v, the decoder GRU's wider input and the output layer's wider input"
    lesson_ok = t.expect(got == want, 2, "right at lesson 03's sizes (E=32, H=64, V=13)", hint)
    # a wrong count is wrong at every size: until lesson 03's sizes are right, this part asks only for a formula
    wrong = [(s, int(n), wants[s]) for s, n in numbers.items() if s != _PARAM_SIZES[0] and int(n) != wants[s]]
    if len(set(numbers.values())) == 1:
        hint = f"you return {got} at every size; write the count as a formula in E, H and V"
    elif wrong and lesson_ok:
        hint = f"at (E, H, V) = {wrong[0][0]} expected {wrong[0][2]}, got {wrong[0][1]}: right at lesson 03's sizes " \
               "only; which term did you fill in with the lesson's numbers?"
    else:
        hint = ""
    t.expect(not hint, 1, "right at three other sizes: a formula in E, H and V, not one number", hint)
