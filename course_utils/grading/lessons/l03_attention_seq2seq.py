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
                             describe as _describe, disabled, rounded as _rounded, where_differs as _where_differs)

SET = "03_attention_seq2seq"


# ---------------------------------------------------------------------------------------------- helpers

def _pair(got):
    return isinstance(got, (tuple, list)) and len(got) == 2


# ------------------------------------------------------------------------------- 03.1 additive attention

def _ref_additive(query, keys, mask, W_q, W_k, v):
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v           # (B, S)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S)
    return (weights.unsqueeze(1) @ keys).squeeze(1), weights


def _additive_case(seed, B, S, Hq, Hk, A, v=None, lengths=None):
    g = torch.Generator().manual_seed(seed)
    query, keys = torch.randn(B, Hq, generator=g), torch.randn(B, S, Hk, generator=g)
    W_q, W_k = torch.randn(Hq, A, generator=g), torch.randn(Hk, A, generator=g)
    v = torch.randn(A, generator=g) if v is None else torch.tensor(v)
    lengths = lengths or [S] * B
    mask = torch.arange(S).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return query, keys, mask, W_q, W_k, v


@register("03.additive_attention", title="additive (Bahdanau) attention with padding masked", exercise_set=SET,
          points=5)
def check_additive_attention(t, additive_attention):
    B, S, Hq, Hk, A = 2, 4, 3, 5, 6
    query, keys, keep_all, W_q, W_k, v = _additive_case(3, B, S, Hq, Hk, A)
    want_c, want_w = _ref_additive(query, keys, keep_all, W_q, W_k, v)
    got = t.call(additive_attention, *_copies(query, keys, keep_all, W_q, W_k, v))
    shapes_ok = _pair(got) and all(_as_tensor(x) is not None for x in got) \
        and tuple(_as_tensor(got[0]).shape) == (B, Hk) and tuple(_as_tensor(got[1]).shape) == (B, S)
    t.require(shapes_ok, 1, "returns (context, weights) of shapes (B, H_k) and (B, S)",
              f"query (2, 3), keys (2, 4, 5), W_q (3, 6), W_k (5, 6) should give context (2, 5) and weights (2, 4); "
              f"got {[_describe(x) for x in got] if _pair(got) else _describe(got)}")
    context, weights = (_as_tensor(x).double() for x in got)
    if _close(weights.sum(0), torch.ones(S)) and not _close(weights.sum(-1), torch.ones(B)):
        hint = "your weights sum to one over the batch: the softmax must run over the source positions (dim=-1)"
    elif not _close(weights.sum(-1), torch.ones(B)):
        hint = f"each row of weights should sum to one (a softmax over source positions); row sums: " \
               f"{_rounded(weights.sum(-1))}"
    elif _close(weights, torch.full((B, S), 1 / S)):
        hint = "every weight is 1/S although nothing is padded: is your mask inverted? True marks a real token (keep it)"
    else:
        hint = f"scores are e_i = tanh(q @ W_q + k_i @ W_k) @ v (row vectors times (in, out) matrices; note the tanh); " \
               f"{_where_differs(weights, want_w)}"
    t.expect(_close(weights, want_w), 1, "no padding: the weights are softmax(tanh(q W_q + k_i W_k) . v)", hint)
    t.expect(_close(context, want_c), 1, "the context is the weighted sum of the keys, sum_i alpha_i k_i",
             "fix the weights first; then context[b] = weights[b] @ keys[b], shape (H_k,)"
             if not _close(weights, want_w) else
             f"your weights are right but the context is not: {_where_differs(context, want_c)}")

    # padding, with junk in the padded keys
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    keys_padded = keys.clone()
    keys_padded[1, 2:] = 100.0  # padding states hold junk: it must not leak into the context
    want_c, want_w = _ref_additive(query, keys_padded, mask, W_q, W_k, v)
    inverted = _ref_additive(query[1:], keys_padded[1:], ~mask[1:], W_q, W_k, v)[1][0]  # row 1, mask flipped
    got = t.call(additive_attention, *_copies(query, keys_padded, mask, W_q, W_k, v))
    if not (_pair(got) and _as_tensor(got[1]) is not None and tuple(_as_tensor(got[1]).shape) == (B, S)):
        t.expect(False, 2, "padding masked, at two sizes and large scores",
                 f"with a mask the result should still be (context, weights), got {_describe(got)}")
        return
    context, weights = (_as_tensor(x).double() for x in got)
    if _close(weights[1], inverted):
        hint = "your mask is inverted: True marks a real source token (keep it), False marks padding (weight 0)"
    elif bool((weights[1, 2:].abs() > 1e-7).any()):
        hint = f"padded positions (mask False) must get weight exactly 0: fill their scores with -inf before the " \
               f"softmax; row 1 got {_rounded(weights[1])}"
    elif not _close(weights, want_w):
        hint = f"padding gets 0 but the real positions should share all the weight: {_where_differs(weights, want_w)}"
    else:
        hint = f"padding states (set to 100 here) leaked into the context: {_where_differs(context, want_c, 1e-4)}"
    t.expect(_close(weights, want_w) and _close(context, want_c, atol=1e-4), 1,
             "padded positions get weight 0 and do not leak into the context", hint)

    # other sizes in every dimension, mixed lengths, scores of both signs beyond +-100 (exp overflows in float32)
    B, S, Hq, Hk, A = 3, 7, 6, 2, 4
    case = _additive_case(4, B, S, Hq, Hk, A, v=[45.0, -40.0, 35.0, 30.0], lengths=[7, 1, 4])
    case[1][0, :3] *= 50.0   # mixed scales: three large encoder states in row 0
    want_c, want_w = _ref_additive(*case)
    got = t.call(additive_attention, *_copies(*case))
    if not _pair(got):
        ok, hint = False, f"expected (context, weights), got {_describe(got)}"
    else:
        ok = _close(got[1], want_w) and _close(got[0], want_c, atol=1e-3)
        w = _as_tensor(got[1])
        if w is not None and not bool(torch.isfinite(w.double()).all()):
            hint = "scores reach several hundred here and your weights contain nan or inf: exp overflows; use " \
                   "torch.softmax (or subtract each row's maximum before exp)"
        elif not _close(got[1], want_w):
            hint = f"B=3, S=7, H_q=6, H_k=2, A=4, lengths [7, 1, 4], scores in the hundreds: weights " \
                   f"{_where_differs(got[1], want_w)}"
        else:
            hint = f"B=3, S=7, H_q=6, H_k=2, A=4: weights right, context {_where_differs(got[0], want_c, 1e-3)}"
    t.expect(ok, 1, "other sizes (B=3, S=7, H_q=6, H_k=2, A=4), a one-word row, scores in the hundreds", hint)


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


@register("03.decoder_step", title="one step of the attention decoder", exercise_set=SET, points=4)
def check_decoder_step(t, decoder_step):
    results = []
    for k, sizes in enumerate(_STEP_CASES):
        model, src, src_len = _tiny_model(**sizes)
        B, S, H, V = src.shape[0], src.shape[1], model.decoder.rnn.hidden_size, model.decoder.out.out_features
        with torch.no_grad():
            keys, state, mask, _ = model.encode(src, src_len)
            state = state + 0.5 * torch.randn(state.shape, generator=torch.Generator().manual_seed(5 + k))
            token = torch.randint(1, V, (B,), generator=torch.Generator().manual_seed(11 + k))
            want = model.decoder.step(token, state, keys, mask)
            w_from_new = model.decoder.attention(want[1], keys, mask)[1]
            locked, off = _without_step(model.decoder)
            with off:
                got = t.call(decoder_step, locked, *_copies(token, state, keys, mask))
        shape_ok = isinstance(got, (tuple, list)) and len(got) == 3 and all(_as_tensor(x) is not None for x in got) \
            and [tuple(_as_tensor(x).shape) for x in got] == [(B, V), (B, H), (B, S)]
        if not shape_ok:
            t.require(False, 1, "returns (logits, new state, weights) of shapes (B, V), (B, H), (B, S), at two sizes",
                      f"with B={B}, S={S}, H={H}, V={V} expected shapes {[(B, V), (B, H), (B, S)]}; got "
                      f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}")
        results.append((tuple(_as_tensor(x) for x in got), want, w_from_new, (B, S, H, V)))
    t.expect(True, 1, "returns (logits, new state, weights) of shapes (B, V), (B, H), (B, S), at two sizes")

    def all_close(i):
        return all(_close(got[i], want[i]) for got, want, _, _ in results)

    def where(i):
        for got, want, _, (B, S, H, V) in results:
            if not _close(got[i], want[i]):
                return f"(B={B}, S={S}, H={H}, V={V}) {_where_differs(got[i], want[i])}"
        return ""

    if any(_close(got[2], new) for got, _, new, _ in results):
        hint = "your attention uses the NEW state s_t; Bahdanau's decoder scores with the previous state s_{t-1} " \
               "(the state passed in), before the GRU runs"
    else:
        hint = f"weights should be decoder.attention(state, keys, mask)[1], from the state passed in; {where(2)}"
    t.expect(all_close(2), 1, "attention is computed from the previous state s_{t-1} (two sizes)", hint)
    t.expect(all_close(1), 1, "the GRU reads [embedding; context] and the previous state (two sizes)",
             "new state = decoder.rnn(torch.cat([decoder.embed(token), context], -1), state): embedding first, "
             f"then the context; {where(1)}")
    t.expect(all_close(0), 1, "the output layer reads [new state; context] (two sizes)",
             f"logits = decoder.out(torch.cat([new_state, context], -1)): the new state first, then the context; "
             f"{where(0)}")


# ---------------------------------------------------------------------------------- 03.3 greedy decoding

_GREEDY_CASES = ((dict(seed=2, scale=3.0), 6, 1),
                 (dict(seed=4, scale=3.0, V_src=8, V=9, E=3, H=4, B=2, S=3, lengths=(2, 3)), 4, 2))


@register("03.greedy_decode", title="greedy decoding: feed back your own predictions", exercise_set=SET, points=4)
def check_greedy_decode(t, greedy_decode):
    results = []
    for k, (sizes, max_len, bos) in enumerate(_GREEDY_CASES):
        model, src, src_len = _tiny_model(**sizes)
        B, S = src.shape
        with torch.no_grad():
            want_ids, want_w = model.greedy_decode(src, src_len, max_len, bos_id=bos, return_attention=True)
            locked, off = _without_greedy(model)
            with off:
                got = t.call(greedy_decode, locked, *_copies(src, src_len), max_len, bos_id=bos)
        ok = _pair(got) and all(_as_tensor(x) is not None for x in got) \
            and tuple(_as_tensor(got[0]).shape) == (B, max_len) and tuple(_as_tensor(got[1]).shape) == (B, max_len, S)
        if not ok:
            t.require(False, 1, "returns (ids, weights) of shapes (B, max_len) and (B, max_len, S), at two sizes",
                      f"with B={B}, S={S}, max_len={max_len} expected {(B, max_len)} and {(B, max_len, S)}; got "
                      f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}")
        ids = _as_tensor(got[0])
        results.append((ids.round().long() if ids.is_floating_point() else ids.long(), _as_tensor(got[1]),
                        want_ids, want_w, (B, S, max_len, bos)))
    t.expect(True, 1, "returns (ids, weights) of shapes (B, max_len) and (B, max_len, S), at two sizes")

    first = [(ids[:, 0], want[:, 0], case) for ids, _, want, _, case in results if not torch.equal(ids[:, 0], want[:, 0])]
    t.expect(not first, 1, "the first step starts from bos_id and s_0",
             "" if not first else
             f"(B, S, max_len, bos_id) = {first[0][2]}: the first predictions should be {first[0][1].tolist()}, got "
             f"{first[0][0].tolist()}; start every row from token = bos_id (the argument, not always 1) and the state "
             "from model.encode")
    later = [(ids, want, case) for ids, _, want, _, case in results if not torch.equal(ids, want)]
    t.expect(not later, 1, "later steps read the previous prediction and carry the state",
             "" if not later else
             f"(B, S, max_len, bos_id) = {later[0][2]}: expected {later[0][1].tolist()}, got {later[0][0].tolist()}; "
             "after each step the next input must be this step's argmax (not bos_id again, not a true word: that "
             "would be teacher forcing), and the state must carry over")
    bad_w = [(w, want_w, case) for _, w, _, want_w, case in results if not _close(w, want_w)]
    t.expect(not bad_w, 1, "the weights of every step are returned, stacked on dim 1",
             "" if not bad_w else
             f"(B, S, max_len, bos_id) = {bad_w[0][2]}: weights[:, t] should be the attention weights of step t "
             f"(stack the (B, S) weights along dim=1); {_where_differs(bad_w[0][0], bad_w[0][1])}")


# --------------------------------------------------------------------------------- 03.4 alignment scores

def _ref_alignment(weights, true, tgt_len):
    counted = torch.arange(weights.shape[1]).unsqueeze(0) < tgt_len.unsqueeze(1)
    hits = (weights.argmax(-1) == true)[counted].double()
    mass = weights.gather(-1, true.unsqueeze(-1)).squeeze(-1)[counted].double()
    return hits.mean().item(), mass.mean().item()


@register("03.alignment_scores", title="alignment accuracy and attention mass on the true source word",
          exercise_set=SET, points=4)
def check_alignment_scores(t, alignment_scores):
    weights = torch.tensor([
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]],
        [[0.1, 0.9, 0.0], [0.6, 0.4, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
    ])  # (B=2, T=4, S=3); row 1 has 2 real target words, the rest is <eos> and padding
    true = torch.tensor([[0, 1, 2, 0], [1, 0, 0, 0]])
    tgt_len = torch.tensor([3, 2])
    got = t.call(alignment_scores, *_copies(weights, true, tgt_len))
    t.require(_pair(got) and all(_number(x) is not None for x in got), 1,
              "returns two numbers (argmax accuracy, mean mass)",
              f"expected a pair of floats, got {type(got).__name__} "
              f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else ''}")
    acc, mass = _number(got[0]), _number(got[1])
    # counted words: (0,0) hit .7; (0,1) hit .8; (0,2) miss .2; (1,0) hit .9; (1,1) hit .6  -> 4/5, mean 0.64
    want_acc, want_mass = 4 / 5, (0.7 + 0.8 + 0.2 + 0.9 + 0.6) / 5
    if math.isclose(acc, 5 / 8, abs_tol=1e-6):
        hint = "you counted every target position; count only the first tgt_len[b] positions of each row"
    else:
        hint = f"a word counts as aligned when argmax over the source of its weights equals its true position; " \
               f"expected {want_acc:.3f}, got {acc:.3f}"
    t.expect(math.isclose(acc, want_acc, abs_tol=1e-6), 1, "argmax accuracy over the real target words", hint)
    t.expect(math.isclose(mass, want_mass, abs_tol=1e-6), 1, "mean attention mass on the true source word",
             f"average weights[b, t, true[b, t]] over the counted words; expected {want_mass:.3f}, got {mass:.3f}")

    # other sizes: B=3, T=6, S=5 with random weights, and a single word
    g = torch.Generator().manual_seed(8)
    weights = torch.softmax(3 * torch.randn(3, 6, 5, generator=g), dim=-1)
    true = torch.randint(0, 5, (3, 6), generator=g)
    tgt_len = torch.tensor([6, 2, 4])
    want = _ref_alignment(weights, true, tgt_len)
    got = t.call(alignment_scores, *_copies(weights, true, tgt_len))
    single = t.call(alignment_scores, weights[:1, :1].clone(), true[:1, :1].clone(), torch.tensor([1]))
    want_single = _ref_alignment(weights[:1, :1], true[:1, :1], torch.tensor([1]))
    ok_big = _pair(got) and all(_number(x) is not None and math.isclose(_number(x), w, abs_tol=1e-6)
                                for x, w in zip(got, want))
    ok_single = _pair(single) and all(_number(x) is not None and math.isclose(_number(x), w, abs_tol=1e-6)
                                      for x, w in zip(single, want_single))
    t.expect(ok_big and ok_single, 1, "other sizes (B=3, T=6, S=5) and a single word",
             f"B=3, T=6, S=5, tgt_len [6, 2, 4]: expected ({want[0]:.4f}, {want[1]:.4f}), got "
             f"{tuple(round(_number(x), 4) if _number(x) is not None else x for x in got) if _pair(got) else got}"
             if not ok_big else
             f"one word (B=1, T=1): expected ({want_single[0]:.4f}, {want_single[1]:.4f}), got {single}")


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
    t.expect(got == want, 2, "right at lesson 03's sizes (E=32, H=64, V=13)", hint)
    wrong = [(s, int(n), wants[s]) for s, n in numbers.items() if s != _PARAM_SIZES[0] and int(n) != wants[s]]
    t.expect(not wrong, 1, "right at three other sizes: a formula in E, H and V",
             "" if not wrong else f"at (E, H, V) = {wrong[0][0]} expected {wrong[0][2]}, got {wrong[0][1]}")
