"""Checks for exercises/07_attention_at_work.ipynb: one beam-search step and the length-normalised pick of the
best finished hypothesis, the supporting-fact attention scores, and the pointer-generator's mixed distribution.

Every check computes its references first (in float64), then calls the learner's code on copies of its inputs
and has a part that says whether the code changed them. It calls the code on at least two sizes that differ in
every free dimension (batch, beams, vocabulary, beam width k; stories and sentences; source length, vocabulary
and extended ids), in float32 and float64, with cumulative log-probabilities in the thousands where ranking is
involved, and with the cases that separate right from nearly right (k larger and smaller than K, two supporting
facts, a word that occurs twice in the source, gates of exactly 0 and 1). Answers may be tensors of any dtype,
NumPy arrays, lists or numbers; hints say where a wrong answer first differs. While the copy check runs, the
course's finished ``copy_distribution`` is switched off.
"""

from __future__ import annotations

import torch

from ..core import register
from ..tensor_checks import (UNCHANGED, expect_unchanged as _expect_unchanged, OnCopies, as_number as _as_number,
                             as_tensor as _as_tensor, close as _same, describe as _describe, disabled,
                             where_differs as _where)

SET = "07_attention_at_work"
_UNCHANGED = UNCHANGED


def _Calls(t, fn, fn_name, names, changed, off=None):
    """The learner's function on copies of its inputs, with ``off`` (if given) switched off (see OnCopies)."""
    return OnCopies(t, fn, fn_name, names, changed, switched_off=off)


def _crash_hint(label, crash):
    guess = "" if crash.startswith("NotImplementedError") else " (does it assume the example's sizes?)"
    return f"{label}: your code raised {crash}{guess}"


# --------------------------------------------------------------------------- exercise 1: beam step, best pick


def _ref_beam_step(scores, log_probs, k):
    B, K, V = log_probs.shape
    flat = (scores.double().unsqueeze(-1) + log_probs.double()).reshape(B, K * V)
    top, index = flat.topk(k, dim=-1)
    return top, index // V, index % V


def _beam_case(g, B, K, V, offset, dtype):
    """Live beams' scores spread around ``offset`` (down to thousands below zero), next-token log-probabilities."""
    scores = offset + torch.randn(B, K, generator=g, dtype=torch.float64) * (abs(offset) / 10 + 1)
    log_probs = torch.log_softmax(3 * torch.randn(B, K, V, generator=g, dtype=torch.float64), -1)
    return scores.to(dtype), log_probs.to(dtype)


def _triple(raw):
    if isinstance(raw, (tuple, list)) and len(raw) == 3:
        return tuple(_as_tensor(x) for x in raw)
    return None, None, None


def _ref_pick(log_prob, length, alpha):
    return (log_prob.double() / length.double() ** alpha).argmax(-1)


def _pick_case(g, B, N, max_len, dtype):
    length = torch.randint(1, max_len + 1, (B, N), generator=g)
    log_prob = -(torch.rand(B, N, generator=g, dtype=torch.float64) * 2 + 0.2) * length   # longer: less probable
    return log_prob.to(dtype), length


@register("07.beam_step", title="one beam-search step, and the best finished hypothesis with length normalisation",
          exercise_set=SET, points=6)
def check_beam_step(t, beam_step, pick_best):
    g = torch.Generator().manual_seed(71)
    B, K, V, k = 2, 3, 5, 3
    scores, log_probs = _beam_case(g, B, K, V, -2.0, torch.float32)
    want = _ref_beam_step(scores, log_probs, k)
    per_beam_only = _ref_beam_step(torch.zeros_like(scores), log_probs, k)
    others = [(f"B={b}, K={kk}, V={v}, k={kw}, {str(dt)[6:]}, scores near {off}", _beam_case(g, b, kk, v, off, dt), kw)
              for b, kk, v, kw, off, dt in ((3, 4, 7, 8, -1500.0, torch.float64), (1, 2, 9, 1, -30.0, torch.float32),
                                            (4, 5, 3, 5, -4000.0, torch.float64))]
    other_wants = [_ref_beam_step(*inputs, kw) for _, inputs, kw in others]

    lp, length = _pick_case(g, 2, 4, 6, torch.float32)
    length[0] = torch.tensor([1, 3, 6, 2])
    lp[0] = torch.tensor([-1.5, -2.4, -3.6, -2.2])       # alpha 0: index 0; alpha 1: index 2 (mean -0.6)
    pick_cases = [(lp, length, a) for a in (0.0, 1.0, 0.6)]
    pick_wants = [_ref_pick(*c) for c in pick_cases]
    pick_others = []
    for (b, n, m, dt), a in zip(((5, 7, 9, torch.float64), (1, 3, 4, torch.float32), (3, 10, 12, torch.float64)),
                                (0.8, 1.0, 0.3)):
        pick_others.append((f"B={b}, N={n} hypotheses, alpha {a}, {str(dt)[6:]}", (*_pick_case(g, b, n, m, dt), a)))
    pick_other_wants = [_ref_pick(*c) for _, c in pick_others]

    changed = []
    call = _Calls(t, beam_step, "beam_step", ("scores", "log_probs", "k"), changed)
    pick = _Calls(t, pick_best, "pick_best", ("log_prob", "length", "alpha"), changed)
    raw = call(scores, log_probs, k)
    top, beam, token = _triple(raw)
    shape_ok = top is not None and all(x is not None and tuple(x.shape) == (B, k) for x in (top, beam, token))
    if not shape_ok:
        t.require(False, 1, "returns the k best candidates' cumulative scores, best first",
                  f"scores (2, 3), log_probs (2, 3, 5) and k = 3 should give three (2, 3) tensors (scores, beam ids, "
                  f"token ids); got {[_describe(x) for x in raw] if isinstance(raw, (tuple, list)) else _describe(raw)}")
    if _same(top, per_beam_only[0]):
        hint = "a candidate's score is its beam's score plus the token's log-probability: add scores[b, j] first"
    elif _same(top, want[0]):
        hint = ""
    else:
        hint = ("rank all K * V candidates of a sentence together (flatten beams and tokens), best first; "
                + _where(top, want[0]))
    t.expect(not hint, 1, "returns the k best candidates' cumulative scores, best first", hint)

    if _same(beam, want[1]) and _same(token, want[2]):
        hint = ""
    elif _same(beam, want[2]) and _same(token, want[1]):
        hint = "beam ids and token ids are swapped: return (scores, beam ids, token ids)"
    else:
        hint = ("flat index i over (K, V) is beam i // V and token i % V; beams " + _where(beam, want[1], 0, 0)
                if not _same(beam, want[1]) else "tokens " + _where(token, want[2], 0, 0))
    t.expect(not hint, 1, "says which beam each candidate extends and with which token", hint)

    fails = []
    for (label, inputs, kw), w in zip(others, other_wants):
        raw2, crash = call.attempt(*inputs, kw)
        if crash:
            fails.append(_crash_hint(label, crash))
            continue
        got = _triple(raw2)
        if got[0] is None or any(x is None or x.shape != y.shape for x, y in zip(got, w)):
            fails.append(f"{label}: expected three tensors of shape {tuple(w[0].shape)}, got "
                         f"{[_describe(x) for x in raw2] if isinstance(raw2, (tuple, list)) else _describe(raw2)} "
                         f"(k is an argument: it may be larger or smaller than K)")
        elif not (_same(got[0], w[0], 1e-3, 1e-6) and _same(got[1], w[1]) and _same(got[2], w[2])):
            fails.append(f"{label}: scores {_where(got[0], w[0], 1e-3, 1e-6) or 'right'}; beams "
                         f"{_where(got[1], w[1]) or 'right'}; tokens {_where(got[2], w[2]) or 'right'}")
    t.expect(not fails, 1, "other batch, beam, vocabulary sizes and k, scores in the thousands", "; ".join(fails[:2]))

    got_picks, crash = [], ""
    for c in pick_cases:
        raw3, crash = pick.attempt(*c, unwritten_ok=True)
        if crash:
            break
        got_picks.append(_as_tensor(raw3))
    if crash:
        hint = _crash_hint("pick_best(log_prob (2, 4), length (2, 4), alpha)", crash)
    elif all(_same(gp, w) for gp, w in zip(got_picks, pick_wants)):
        hint = ""
    elif _same(got_picks[0], pick_wants[1]) and _same(got_picks[1], pick_wants[1]):
        hint = "alpha is ignored: with alpha = 0 the score is the plain log-probability, log p / length ** alpha"
    elif _same(got_picks[1], pick_wants[0]):
        hint = "the length is ignored: divide each log-probability by length ** alpha before comparing"
    else:
        bad = next(i for i, (gp, w) in enumerate(zip(got_picks, pick_wants)) if not _same(gp, w))
        hint = (f"with alpha = {pick_cases[bad][2]}: the best index maximises log_prob / length ** alpha per "
                f"sentence; " + _where(got_picks[bad], pick_wants[bad]))
    t.expect(not hint, 1, "pick_best: the highest log p / length ** alpha, for alpha 0, 1 and between", hint)

    fails = []
    for (label, c), w in zip(pick_others, pick_other_wants):
        raw4, crash = pick.attempt(*c, unwritten_ok=True)
        if crash:
            fails.append(_crash_hint(label, crash))
        elif not _same(_as_tensor(raw4), w):
            fails.append(f"{label}: {_where(_as_tensor(raw4), w)}")
    t.expect(not fails, 1, "pick_best on other numbers of sentences and hypotheses", "; ".join(fails[:2]))
    _expect_unchanged(t, changed, "log_probs += scores[..., None]")


# --------------------------------------------------------------------------- exercise 2: supporting facts


def _ref_support(attention, supporting):
    attention = attention.double()
    mass = (attention * supporting).sum(-1).mean()
    hit = supporting.gather(1, attention.argmax(-1, keepdim=True)).double().mean()
    return float(mass), float(hit)


def _story_case(g, B, L, facts, dtype):
    """Attention over each story's real sentences (0 on padding), one or two supporting facts per story."""
    n = torch.randint(max(2, facts), L + 1, (B,), generator=g)
    n[0] = L
    logits = 2.5 * torch.randn(B, L, generator=g, dtype=torch.float64)
    real = torch.arange(L)[None, :] < n[:, None]
    attention = torch.softmax(logits.masked_fill(~real, float("-inf")), -1)
    supporting = torch.zeros(B, L, dtype=torch.bool)
    for b in range(B):
        chosen = torch.randperm(int(n[b]), generator=g)[:facts]
        supporting[b, chosen] = True
        if b % 2 == 0:      # every other story: attention's peak on a supporting fact, the last one listed
            peak = int(chosen.max())
            attention[b] = attention[b] * 0.3
            attention[b, peak] += 0.7
    return attention.to(dtype), supporting


def _pair(raw):
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        return _as_number(raw[0]), _as_number(raw[1])
    return None, None


@register("07.supporting_facts", title="attention scored against the supporting facts", exercise_set=SET, points=4)
def check_supporting_facts(t, supporting_fact_scores):
    g = torch.Generator().manual_seed(72)
    attention, supporting = _story_case(g, 6, 5, 1, torch.float32)
    want = _ref_support(attention, supporting)
    others = [(f"{b} stories of up to {L} sentences, {f} supporting fact{'s' if f > 1 else ''}, {str(dt)[6:]}",
               _story_case(g, b, L, f, dt)) for b, L, f, dt in ((9, 8, 2, torch.float64), (3, 12, 2, torch.float32),
                                                                 (1, 4, 1, torch.float64))]
    other_wants = [_ref_support(*inputs) for _, inputs in others]

    changed = []
    call = _Calls(t, supporting_fact_scores, "supporting_fact_scores", ("attention", "supporting"), changed)
    raw = call(attention, supporting)
    mass, hit = _pair(raw)
    if mass is None or hit is None:
        t.require(False, 1, "mass: the mean attention on the supporting facts",
                  f"expected a pair of numbers (mass, hit); got "
                  f"{[_describe(x) for x in raw] if isinstance(raw, (tuple, list)) else _describe(raw)}")
    per_entry = float((attention.double() * supporting).mean())
    if abs(mass - want[0]) < 1e-5:
        hint = ""
    elif abs(mass - per_entry) < 1e-5:
        hint = ("you averaged over every (story, sentence) entry: sum each story's attention over its supporting "
                "facts, then average over the stories")
    else:
        hint = f"mass = mean over stories of the attention on their supporting facts: expected {want[0]:.6g}, got {mass:.6g}"
    t.expect(not hint, 1, "mass: the mean attention on the supporting facts", hint)
    t.expect(abs(hit - want[1]) < 1e-6, 1, "hit: the share of stories whose most attended sentence is a supporting fact",
             f"expected {want[1]:.6g}, got {hit:.6g}: for each story take the sentence with the largest weight (argmax "
             f"over the sentences) and ask whether it is a supporting fact")

    fails = []
    for (label, inputs), w in zip(others, other_wants):
        raw2, crash = call.attempt(*inputs)
        if crash:
            fails.append(_crash_hint(label, crash))
            continue
        m2, h2 = _pair(raw2)
        if m2 is None or h2 is None:
            fails.append(f"{label}: expected a pair of numbers, got {_describe(raw2)}")
        elif abs(m2 - w[0]) > 1e-5 or abs(h2 - w[1]) > 1e-6:
            extra = (" (with two supporting facts, the mass is the attention on both, summed, and a hit is a peak on "
                     "either)" if "2 supporting" in label else "")
            fails.append(f"{label}: expected mass {w[0]:.6g} and hit {w[1]:.6g}, got {m2:.6g} and {h2:.6g}{extra}")
    t.expect(not fails, 1, "two supporting facts per story, other numbers of stories and sentences",
             "; ".join(fails[:2]))
    _expect_unchanged(t, changed, "attention *= supporting")


# --------------------------------------------------------------------------- exercise 3: copy distribution


def _finished_copy_off():
    from ...models import pointer as finished

    return disabled(finished.copy_distribution,
                    why="the course's finished version in course_utils.models.pointer is not available to this "
                        "exercise: write it yourself")


def _ref_copy(p_vocab, attention, src_ext, p_gen, n_extended, gate=True, add=True):
    p_vocab, attention, p_gen = p_vocab.double(), attention.double(), p_gen.double().reshape(-1, 1)
    B, V = p_vocab.shape
    out = torch.zeros(B, V + n_extended, dtype=torch.float64)
    out[:, :V] = (p_gen if gate else 1.0) * p_vocab
    copy = (1 - p_gen if gate else 1.0) * attention
    if add:
        return out.scatter_add(1, src_ext, copy)
    for b in range(B):
        out[b, src_ext[b]] = out[b, src_ext[b]] + copy[b]      # duplicate positions: the last one wins
    return out


def _copy_case(g, B, S, V, n_extended, dtype, repeat=True, gates=None):
    p_vocab = torch.softmax(2 * torch.randn(B, V, generator=g, dtype=torch.float64), -1)
    lengths = torch.randint(max(2, S - 2), S + 1, (B,), generator=g)
    lengths[0] = S
    real = torch.arange(S)[None, :] < lengths[:, None]
    attention = torch.softmax(torch.randn(B, S, generator=g, dtype=torch.float64).masked_fill(~real, float("-inf")), -1)
    if repeat:
        src_ext = torch.randint(3, V + n_extended, (B, S), generator=g)
        if n_extended:
            src_ext[:, 1] = V + n_extended - 1                # every row uses the last extended id
        src_ext[:, 2] = src_ext[:, 0]                         # a word that occurs twice
    else:                                                     # distinct words, the last extended id among them
        src_ext = torch.stack([torch.randperm(V + n_extended - 3, generator=g)[:S] + 3 for _ in range(B)])
        src_ext[:, 1] = torch.where(src_ext[:, 1] == V + n_extended - 1, src_ext[:, 1], src_ext[:, 1])
    src_ext = src_ext.masked_fill(~real, 0)
    p_gen = torch.rand(B, 1, generator=g, dtype=torch.float64) if gates is None else torch.tensor(gates).reshape(-1, 1)
    return p_vocab.to(dtype), attention.to(dtype), src_ext, p_gen.to(dtype), n_extended


@register("07.copy_distribution", title="the pointer-generator: copy distribution mixed with the vocabulary",
          exercise_set=SET, points=5)
def check_copy_distribution(t, copy_distribution):
    g = torch.Generator().manual_seed(73)
    plain = _copy_case(g, 2, 5, 7, 2, torch.float32, repeat=False)
    want_plain = _ref_copy(*plain)
    repeated = _copy_case(g, 3, 6, 7, 2, torch.float32)
    want_repeated = _ref_copy(*repeated)
    overwritten = _ref_copy(*repeated, add=False)
    others = [("B=4, S=9, V=12, 3 extended ids, float64, gates 0, 1, 0.5, 0.25",
               _copy_case(g, 4, 9, 12, 3, torch.float64, gates=[0.0, 1.0, 0.5, 0.25])),
              ("B=1, S=3, V=5, no extended ids, float32", _copy_case(g, 1, 3, 5, 0, torch.float32)),
              ("B=5, S=4, V=20, 1 extended id, float64", _copy_case(g, 5, 4, 20, 1, torch.float64))]
    other_wants = [_ref_copy(*inputs) for _, inputs in others]

    changed = []
    call = _Calls(t, copy_distribution, "copy_distribution",
                  ("p_vocab", "attention", "src_ext", "p_gen", "n_extended"), changed, off=_finished_copy_off)
    raw = call(*plain)
    got = _as_tensor(raw)
    B, V, n = plain[0].shape[0], plain[0].shape[1], plain[4]
    shape_ok = got is not None and tuple(got.shape) == (B, V + n)
    if not shape_ok:
        t.require(False, 1, "returns (B, V + n_extended) distributions that sum to one",
                  f"p_vocab (2, 7) with n_extended = 2 should give (2, 9): the known words, then the article's unknown "
                  f"words; got {_describe(raw)}")
    sums_ok = _same(got.sum(-1), torch.ones(B, dtype=torch.float64))
    t.expect(sums_ok, 1, "returns (B, V + n_extended) distributions that sum to one",
             f"each row should sum to 1 (p_gen of the vocabulary's mass plus 1 - p_gen of the attention's); sums "
             f"{[round(float(s), 4) for s in got.sum(-1)]}")
    no_gate = _ref_copy(*plain, gate=False)
    if _same(got, want_plain):
        hint = ""
    elif _same(got, no_gate):
        hint = "weight the two distributions: p_gen * P_vocab plus (1 - p_gen) * attention"
    else:
        hint = ("P(w) = p_gen P_vocab(w) + (1 - p_gen) * (attention on the positions holding w); "
                + _where(got, want_plain))
    t.expect(not hint, 1, "P(w) = p_gen P_vocab(w) + (1 - p_gen) sum of the attention on w's positions", hint)

    raw2, crash = call.attempt(*repeated)
    got2 = _as_tensor(raw2)
    if crash:
        hint = _crash_hint("the case with a repeated word (B=3, S=6)", crash)
    elif _same(got2, want_repeated):
        hint = ""
    elif _same(got2, overwritten):
        hint = ("a word that occurs twice in the source gets the attention of both positions: with index assignment "
                "or scatter the second write replaces the first; use scatter_add (or index_add)")
    else:
        hint = "the case with a repeated word (B=3, S=6): " + _where(got2, want_repeated)
    t.expect(not hint, 1, "a word at several source positions gets the sum of their attention", hint)

    fails = []
    for (label, inputs), w in zip(others, other_wants):
        raw3, crash = call.attempt(*inputs)
        if crash:
            fails.append(_crash_hint(label, crash))
        elif not _same(_as_tensor(raw3), w):
            fails.append(f"{label}: {_where(_as_tensor(raw3), w)}")
    t.expect(not fails, 1, "other sizes, float64, gates of 0 and 1, no or several extended ids", "; ".join(fails[:2]))
    _expect_unchanged(t, changed, "p_vocab *= p_gen")
