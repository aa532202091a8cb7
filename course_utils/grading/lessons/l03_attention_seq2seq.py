"""Checks for exercises/03_attention_seq2seq.ipynb: additive attention with padding masked, one step of
the attention decoder, greedy decoding (feeding back predictions, unlike teacher forcing), and
alignment scores."""

from __future__ import annotations

import math

import torch

from ..core import register
from ..tensor_checks import close as _close, describe as _describe, is_tensor as _is_tensor, rounded as _rounded

SET = "03_attention_seq2seq"


def _ref_additive(query, keys, mask, W_q, W_k, v):
    scores = torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v      # (B, S)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S)
    return (weights.unsqueeze(1) @ keys).squeeze(1), weights


def _pair(got):
    return isinstance(got, (tuple, list)) and len(got) == 2


@register("03.additive_attention", title="additive (Bahdanau) attention with padding masked", exercise_set=SET,
          points=5)
def check_additive_attention(t, additive_attention):
    g = torch.Generator().manual_seed(3)
    B, S, Hq, Hk, A = 2, 4, 3, 5, 6
    query, keys = torch.randn(B, Hq, generator=g), torch.randn(B, S, Hk, generator=g)
    W_q, W_k, v = torch.randn(A, Hq, generator=g), torch.randn(A, Hk, generator=g), torch.randn(A, generator=g)
    keep_all = torch.ones(B, S, dtype=torch.bool)
    got = t.call(additive_attention, query, keys, keep_all, W_q, W_k, v)
    t.require(_pair(got) and _is_tensor(got[0], (B, Hk)) and _is_tensor(got[1], (B, S)), 1,
              "returns (context, weights) of shapes (B, H_k) and (B, S)",
              f"query (2, 3) and keys (2, 4, 5) should give context (2, 5) and weights (2, 4); got "
              f"{[_describe(x) for x in got] if _pair(got) else _describe(got)}")
    context, weights = got
    want_c, want_w = _ref_additive(query, keys, keep_all, W_q, W_k, v)
    if _close(weights.sum(0), torch.ones(S)) and not _close(weights.sum(-1), torch.ones(B)):
        hint = "your weights sum to one over the batch: the softmax must run over the source positions (dim=-1)"
    elif not _close(weights.sum(-1), torch.ones(B)):
        hint = f"each row of weights should sum to one (a softmax over source positions); row sums: " \
               f"{_rounded(weights.sum(-1))}"
    elif _close(weights, torch.full((B, S), 1 / S)):
        hint = "every weight is 1/S although nothing is padded: is your mask inverted? True marks a real token (keep it)"
    else:
        hint = f"scores are e_i = v . tanh(W_q q + W_k k_i) (note the tanh, and W @ x, i.e. x @ W.T); " \
               f"row 0 of the weights should be {_rounded(want_w[0])}, got {_rounded(weights[0])}"
    t.expect(_close(weights, want_w), 1, "no padding: the weights are softmax(v . tanh(W_q q + W_k k_i))", hint)
    t.expect(_close(context, want_c), 1, "the context is the weighted sum of the keys, sum_i alpha_i k_i",
             "fix the weights first; then context[b] = weights[b] @ keys[b], shape (H_k,)"
             if not _close(weights, want_w) else
             f"your weights are right but the context is not: row 0 should be {_rounded(want_c[0])}")

    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    keys_padded = keys.clone()
    keys_padded[1, 2:] = 100.0  # padding states hold junk: it must not leak into the context
    got = t.call(additive_attention, query, keys_padded, mask, W_q, W_k, v)
    want_c, want_w = _ref_additive(query, keys_padded, mask, W_q, W_k, v)
    if not (_pair(got) and _is_tensor(got[1], (B, S))):
        t.expect(False, 2, "padding masked", f"with a mask the result should still be (context, weights), got {_describe(got)}")
        return
    context, weights = got
    inverted = _ref_additive(query[1:], keys_padded[1:], ~mask[1:], W_q, W_k, v)[1][0]  # row 1, mask flipped
    if _close(weights[1], inverted):
        hint = "your mask is inverted: True marks a real source token (keep it), False marks padding (weight 0)"
    elif bool((weights[1, 2:].abs() > 1e-7).any()):
        hint = f"padded positions (mask False) must get weight exactly 0: fill their scores with -inf before the " \
               f"softmax; row 1 got {_rounded(weights[1])}"
    else:
        hint = f"padding gets 0 but the real positions should share all the weight: row 1 should be " \
               f"{_rounded(want_w[1])}, got {_rounded(weights[1])}"
    t.expect(_close(weights, want_w), 1, "padded positions get weight 0, the real ones sum to one", hint)
    t.expect(_close(context, want_c, atol=1e-4), 1, "the context ignores padding",
             "padding states (set to 100 here) leaked into the context: their weights must be exactly 0")


def _tiny_model(seed=0, scale=1.0):
    """A small untrained model and a padded batch; ``scale`` sharpens its embeddings and outputs so that
    its greedy predictions depend on the tokens fed back (an untrained model often repeats one word)."""
    from ...models.attention_seq2seq import AttentionSeq2Seq

    torch.manual_seed(seed)
    model = AttentionSeq2Seq(9, 11, emb_size=4, hidden_size=6).eval()
    with torch.no_grad():
        model.decoder.embed.weight.mul_(scale)
        model.decoder.out.weight.mul_(scale)
    g = torch.Generator().manual_seed(seed + 1)
    src = torch.randint(3, 9, (3, 5), generator=g)
    src_len = torch.tensor([5, 3, 2])
    src[1, 3:] = 0
    src[2, 2:] = 0
    return model, src, src_len


@register("03.decoder_step", title="one step of the attention decoder", exercise_set=SET, points=4)
def check_decoder_step(t, decoder_step):
    model, src, src_len = _tiny_model(0)
    with torch.no_grad():
        keys, state, mask, _ = model.encode(src, src_len)
        state = state + 0.5 * torch.randn(state.shape, generator=torch.Generator().manual_seed(5))
        token = torch.tensor([4, 1, 7])
        want_logits, want_state, want_w = model.decoder.step(token, state, keys, mask)
        got = t.call(decoder_step, model.decoder, token, state, keys, mask)
    t.require(isinstance(got, (tuple, list)) and len(got) == 3 and _is_tensor(got[0], (3, 11))
              and _is_tensor(got[1], (3, 6)) and _is_tensor(got[2], (3, 5)), 1,
              "returns (logits, new state, weights) of shapes (B, V), (B, H), (B, S)",
              f"with B=3, S=5, H=6, V=11 expected shapes (3, 11), (3, 6), (3, 5); got "
              f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}")
    logits, new_state, weights = (x.detach() for x in got)
    with torch.no_grad():
        _, w_from_new = model.decoder.attention(want_state, keys, mask)
    if _close(weights, w_from_new):
        hint = "your attention uses the NEW state s_t; Bahdanau's decoder scores with the previous state s_{t-1} " \
               "(the state passed in), before the GRU runs"
    else:
        hint = "weights should be decoder.attention(state, keys, mask)[1], computed from the state passed in"
    t.expect(_close(weights, want_w), 1, "attention is computed from the previous state s_{t-1}", hint)
    t.expect(_close(new_state, want_state), 1, "the GRU reads [embedding; context] and the previous state",
             "new state = decoder.rnn(torch.cat([decoder.embed(token), context], -1), state): embedding first, "
             "then the context")
    t.expect(_close(logits, want_logits), 1, "the output layer reads [new state; context]",
             "logits = decoder.out(torch.cat([new_state, context], -1)): the new state first, then the context")


@register("03.greedy_decode", title="greedy decoding: feed back your own predictions", exercise_set=SET, points=4)
def check_greedy_decode(t, greedy_decode):
    model, src, src_len = _tiny_model(2, scale=3.0)
    with torch.no_grad():
        want_ids, want_w = model.greedy_decode(src, src_len, 6, return_attention=True)
        got = t.call(greedy_decode, model, src, src_len, 6)
    t.require(isinstance(got, (tuple, list)) and len(got) == 2 and _is_tensor(got[0], (3, 6))
              and _is_tensor(got[1], (3, 6, 5)), 1,
              "returns (ids, weights) of shapes (B, max_len) and (B, max_len, S)",
              f"with B=3, S=5, max_len=6 expected (3, 6) and (3, 6, 5); got "
              f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}")
    ids, weights = got
    t.expect(torch.equal(ids[:, 0].long(), want_ids[:, 0]), 1, "the first step starts from <bos> and s_0",
             f"the first predictions should be {want_ids[:, 0].tolist()}, got {ids[:, 0].tolist()}: start with "
             "token = <bos> (id 1) for every row and the state from model.encode")
    ok = torch.equal(ids.long(), want_ids)
    hint = "" if ok else f"expected {want_ids.tolist()}, got {ids.tolist()}; after each step the next input must be this " \
               "step's argmax (not <bos> again, not a true word: that would be teacher forcing), and the state " \
               "must carry over"
    t.expect(ok, 1, "later steps read the previous prediction and carry the state", hint)
    t.expect(_close(weights.detach(), want_w), 1, "the weights of every step are returned, stacked on dim 1",
             "weights[:, t] should be the attention weights of step t (stack the (B, S) weights along dim=1)")


@register("03.alignment_scores", title="alignment accuracy and attention mass on the true source word",
          exercise_set=SET, points=4)
def check_alignment_scores(t, alignment_scores):
    weights = torch.tensor([
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]],
        [[0.1, 0.9, 0.0], [0.6, 0.4, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
    ])  # (B=2, T=4, S=3); row 1 has 2 real target words, the rest is <eos> and padding
    true = torch.tensor([[0, 1, 2, 0], [1, 0, 0, 0]])
    tgt_len = torch.tensor([3, 2])
    got = t.call(alignment_scores, weights, true, tgt_len)
    t.require(isinstance(got, (tuple, list)) and len(got) == 2
              and all(isinstance(x, (float, int)) or _is_tensor(x, ()) for x in got), 1,
              "returns two numbers (argmax accuracy, mean mass)",
              f"expected a pair of floats, got {type(got).__name__} "
              f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else ''}")
    acc, mass = float(got[0]), float(got[1])
    # counted words: (0,0) hit .7; (0,1) hit .8; (0,2) miss .2; (1,0) hit .9; (1,1) hit .6  -> 4/5, mean 0.64
    want_acc, want_mass = 4 / 5, (0.7 + 0.8 + 0.2 + 0.9 + 0.6) / 5
    all_acc = 5 / 8  # if every position were counted
    if math.isclose(acc, all_acc, abs_tol=1e-6):
        hint = "you counted every target position; count only the first tgt_len[b] positions of each row"
    else:
        hint = f"a word counts as aligned when argmax over the source of its weights equals its true position; " \
               f"expected {want_acc:.3f}, got {acc:.3f}"
    t.expect(math.isclose(acc, want_acc, abs_tol=1e-6), 1, "argmax accuracy over the real target words", hint)
    t.expect(math.isclose(mass, want_mass, abs_tol=1e-6), 1, "mean attention mass on the true source word",
             f"average weights[b, t, true[b, t]] over the counted words; expected {want_mass:.3f}, got {mass:.3f}")
    single = t.call(alignment_scores, weights[:1, :1], true[:1, :1], torch.tensor([1]))
    t.expect(isinstance(single, (tuple, list)) and len(single) == 2
             and math.isclose(float(single[0]), 1.0, abs_tol=1e-6) and math.isclose(float(single[1]), 0.7, abs_tol=1e-6),
             1, "a single word works too", "one word whose argmax is right should give (1.0, 0.7)")
