"""Checks for exercises/08_pretrained_transformer.ipynb: one head's attention for one sentence, a score that finds
previous-token heads, attention rollout, and a forward pre-hook that switches heads off.

The checks run on synthetic attention tensors shaped like a BERT model's (rows are softmax distributions over
each sentence's real tokens, sentences right-padded to different lengths), so they need no pretrained model.
Every check computes its references first (in float64), calls the learner's code on copies of its inputs and
has a part that says whether the code changed them; it calls the code on at least two sizes that differ in every
free dimension (layers, batch, heads, tokens, sentence lengths, head width), on float32 and float64, at middle and
edge indices. Answers may be tensors of any floating dtype, NumPy arrays or lists; hints say where a wrong
answer first differs. While a check runs, the course's finished versions in ``course_utils.models.pretrained``
are switched off.
"""

from __future__ import annotations

import torch

from ..core import register
from ..tensor_checks import (UNCHANGED, why_wrong as _why, expect_unchanged as _expect_unchanged, OnCopies,
                             as_tensor as _as_tensor, close as _same, describe as _describe, disabled,
                             where_differs as _where)

SET = "08_pretrained_transformer"
_UNCHANGED = UNCHANGED


# --------------------------------------------------------------------------- helpers


def _finished_versions_off():
    from ...models import pretrained as finished

    return disabled(finished.head_scores, finished.attention_rollout, finished.real_token_mask,
                    (finished, "ablate_heads"),
                    why="the course's finished version in course_utils.models.pretrained is not available to this "
                        "exercise: write it yourself")


def _Calls(t, fn, fn_name, names, changed):
    """The learner's function on copies of its inputs, with the finished versions off (see OnCopies)."""
    return OnCopies(t, fn, fn_name, names, changed, switched_off=_finished_versions_off)


def _mask(lengths, n, as_bool=False):
    """(B, n) attention mask, 1 (or True) at the first lengths[b] tokens of sentence b, as a tokenizer pads."""
    mask = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    return mask if as_bool else mask.long()


def _attentions(g, L, B, h, n, lengths, dtype=torch.float32, scale=2.0, previous_head=None):
    """(L, B, h, n, n) float64 and ``dtype`` copies: every query row a softmax over its sentence's real keys (padding
    keys get 0), as BERT computes it; ``previous_head`` (layer, head) puts most of each row on the token before."""
    logits = torch.randn(L, B, h, n, n, generator=g, dtype=torch.float64) * scale
    if previous_head is not None:
        l, k = previous_head
        logits[l, :, k] += 6.0 * torch.diag(torch.ones(n - 1, dtype=torch.float64), -1)
    keys = _mask(lengths, n, as_bool=True)[None, :, None, None, :]
    probs = torch.softmax(logits.masked_fill(~keys, float("-inf")), dim=-1)
    return probs.to(dtype)


# --------------------------------------------------------------------------- exercise 1: one head, one sentence


def _ref_head(att, mask, layer, head, index):
    m = int(mask[index].sum())
    return att[layer][index, head, :m, :m].double()


def _head_case(g, L, B, h, n, lengths, where, dtype=torch.float32, as_bool=False):
    att = _attentions(g, L, B, h, n, lengths, dtype)
    # a list, not the tuple transformers returns: the record notes in-place changes to the tensors of a list only
    return [att[l] for l in range(L)], _mask(lengths, n, as_bool), *where


@register("08.head_attention", title="one head's attention for one sentence, padding cut off", exercise_set=SET,
          points=4)
def check_head_attention(t, head_attention):
    g = torch.Generator().manual_seed(80)
    small = _head_case(g, 3, 4, 5, 7, [6, 4, 7, 2], (1, 2, 1))        # layer 1, head 2, sentence 1 (4 tokens)
    want = _ref_head(*small)
    att, mask, layer, head, index = small
    swapped = att[head][index, layer].double()[:4, :4]                 # layer and head exchanged
    others = [("L=2, B=3, h=2, n=9, float64, layer 0, head 1, the last sentence (3 tokens)",
               _head_case(g, 2, 3, 2, 9, [5, 9, 3], (0, 1, 2), torch.float64)),
              ("L=4, B=2, h=3, n=5, bool mask, the last layer, head 0, sentence 0 (5 tokens, no padding)",
               _head_case(g, 4, 2, 3, 5, [5, 2], (3, 0, 0), as_bool=True)),
              ("L=1, B=5, h=6, n=6, the last head, sentence 3 (1 token)",
               _head_case(g, 1, 5, 6, 6, [6, 3, 4, 1, 5], (0, 5, 3)))]
    wants = [_ref_head(*case) for _, case in others]

    changed = []
    call = _Calls(t, head_attention, "head_attention", ("attentions", "attention_mask"), changed)
    raw = call(*small)
    got = _as_tensor(raw)
    shape_ok = got is not None and tuple(got.shape) == (4, 4)
    if shape_ok:
        hint = ""
    elif got is not None and tuple(got.shape) == (7, 7):
        hint = ("you returned the padded (n, n) matrix: cut it to the sentence's real tokens, m = "
                "attention_mask[index].sum() rows and columns")
    else:
        hint = (f"sentence 1 has 4 real tokens, so its attention in one head is (4, 4); got {_describe(raw)}"
                + (f" of shape {tuple(got.shape)}" if got is not None and not hasattr(raw, "shape") else ""))
    t.require(shape_ok, 1, "returns an (m, m) matrix for a sentence of m real tokens", hint)

    if _same(got, want):
        hint = ""
    elif _same(got, want.T):
        hint = "transposed: row i must be query token i's attention over the keys (attentions[layer][b, head, i, :])"
    elif _same(got, swapped):
        hint = "layer and head are swapped: take attentions[layer], then [index, head]"
    else:
        hint = "attentions[layer] is (B, h, n, n): take [index, head, :m, :m]; " + _where(got, want)
    t.expect(not hint, 1, "the right layer, head and sentence, rows = queries", hint)

    fails = []
    for (label, inputs), want2 in zip(others, wants):
        raw2, crash = call.attempt(*inputs)
        if crash or not _same(_as_tensor(raw2), want2):
            fails.append(_why(_as_tensor(raw2), want2, crash, label))
    t.expect(not fails, 1, "other numbers of layers, sentences, heads and tokens; first and last indices",
             (fails[0] + (f" (and {len(fails) - 1} more)" if len(fails) > 1 else "")) if fails else "")
    _expect_unchanged(t, changed, "attentions[layer][index, head] *= mask")


# --------------------------------------------------------------------------- exercise 2: previous-token score


def _ref_previous(att, mask, offset=-1, queries="words", per_sentence=False):
    """(L, h): mean over the chosen queries of att[l, b, k, i, i + offset]."""
    att = att.double()
    L, B, h, n, _ = att.shape
    lengths = [int(v) for v in mask.long().sum(-1)]
    total, count, per = torch.zeros(L, h, dtype=torch.float64), 0, []
    for b, m in enumerate(lengths):
        rows = {"words": range(1, m - 1), "real": range(1, m), "all": range(1, n)}[queries]
        rows = [i for i in rows if 0 <= i + offset < n]
        s = sum((att[:, b, :, i, i + offset] for i in rows), torch.zeros(L, h, dtype=torch.float64))
        total, count = total + s, count + len(rows)
        if rows:
            per.append(s / len(rows))
    return torch.stack(per).mean(0) if per_sentence else total / count


def _previous_case(g, L, B, h, n, lengths, head, dtype=torch.float32):
    return _attentions(g, L, B, h, n, lengths, dtype, previous_head=head), _mask(lengths, n)


@register("08.previous_token_score", title="a score that finds previous-token heads", exercise_set=SET, points=5)
def check_previous_token_score(t, previous_token_score):
    g = torch.Generator().manual_seed(81)
    small = _previous_case(g, 2, 3, 3, 8, [8, 5, 3], (1, 2))
    want = _ref_previous(*small)
    wrong = {"next": _ref_previous(*small, offset=1),
             "real": _ref_previous(*small, queries="real"),
             "all": _ref_previous(*small, queries="all"),
             "per_sentence": _ref_previous(*small, per_sentence=True)}
    others = [("L=3, B=2, h=4, n=11, float64, sentences of 11 and 4 tokens",
               _previous_case(g, 3, 2, 4, 11, [11, 4], (0, 3), torch.float64)),
              ("L=1, B=4, h=2, n=6, sentences of 6, 6, 3 and 5 tokens",
               _previous_case(g, 1, 4, 2, 6, [6, 6, 3, 5], (0, 0)))]
    wants = [_ref_previous(*case) for _, case in others]
    per_sentence_others = [_ref_previous(*case, per_sentence=True) for _, case in others]

    changed = []
    call = _Calls(t, previous_token_score, "previous_token_score", ("attentions", "attention_mask"), changed)
    raw = call(*small)
    got = _as_tensor(raw)
    shape_ok = got is not None and tuple(got.shape) == (2, 3)
    t.require(shape_ok, 1, "returns one score per (layer, head): an (L, h) table",
              f"attentions (2, 3, 3, 8, 8) = (L, B, h, n, n) should give a (2, 3) table; got {_describe(raw)}"
              + (f" of shape {tuple(got.shape)}" if got is not None and not hasattr(raw, "shape") else ""))

    if _same(got, want):
        hint = ""
    elif _same(got, wrong["next"]):
        hint = "this is the weight on the next token, a[i, i + 1]: the previous token is a[i, i - 1]"
    elif _same(got, wrong["real"]):
        hint = ("[SEP] is counted as a query: average over the word tokens only, positions 1 .. m - 2 of a sentence "
                "of m real tokens (not [CLS] at 0, not [SEP] at m - 1)")
    elif _same(got, wrong["all"]):
        hint = ("padding positions (and [SEP]) are counted as queries: average over positions 1 .. m - 2 of each "
                "sentence, m = attention_mask[b].sum()")
    elif _same(got, wrong["per_sentence"]):
        hint = ("you averaged each sentence first and then the sentences: average over all word tokens of all "
                "sentences together, so a long sentence counts by its number of words")
    else:
        hint = "mean over the word tokens i of every sentence of a[l, b, k, i, i - 1]; " + _where(got, want)
    t.expect(not hint, 2, "mean weight on the previous token over the word tokens of every sentence", hint)

    fails = []
    for (label, inputs), want2, per2 in zip(others, wants, per_sentence_others):
        raw2, crash = call.attempt(*inputs)
        got2 = _as_tensor(raw2)
        if crash or not _same(got2, want2):
            note = " (each sentence averaged separately?)" if _same(got2, per2) else ""
            fails.append(_why(got2, want2, crash, label) + note)
    t.expect(not fails, 1, "other numbers of layers, sentences, heads and tokens, float64",
             fails[0] if fails else "")
    _expect_unchanged(t, changed, "attentions *= mask")


# --------------------------------------------------------------------------- exercise 3: attention rollout


def _ref_rollout(att, residual, reverse=False, heads="mean", swap=False):
    att = att.double()
    L, B, h, n, _ = att.shape
    eye = torch.eye(n, dtype=torch.float64)
    out = eye.expand(B, n, n)
    for l in range(L):
        a = {"mean": att[l].mean(1), "first": att[l][:, 0], "max": att[l].amax(1)}[heads]
        r = 1 - residual if swap else residual
        a = r * eye + (1 - r) * a
        a = a / a.sum(-1, keepdim=True)
        out = out @ a if reverse else a @ out
    return out


@register("08.rollout", title="attention rollout across layers", exercise_set=SET, points=4)
def check_rollout(t, attention_rollout):
    g = torch.Generator().manual_seed(82)
    small = (_attentions(g, 2, 2, 3, 4, [4, 3], scale=3.0), 0.5)
    want = _ref_rollout(*small)
    wrong = {"reverse": _ref_rollout(*small, reverse=True), "no_residual": _ref_rollout(small[0], 0.0),
             "first": _ref_rollout(*small, heads="first"), "max": _ref_rollout(*small, heads="max")}
    others = [("L=3, B=3, h=2, n=5, float64, residual 0.3",
               (_attentions(g, 3, 3, 2, 5, [5, 2, 4], torch.float64, scale=3.0), 0.3)),
              ("L=4, B=1, h=4, n=6, residual 0.8", (_attentions(g, 4, 1, 4, 6, [6], scale=3.0), 0.8)),
              ("L=1, B=2, h=5, n=3, residual 0.5", (_attentions(g, 1, 2, 5, 3, [3, 2], scale=3.0), 0.5))]
    wants = [_ref_rollout(*case) for _, case in others]
    swaps = [_ref_rollout(*case, swap=True) for _, case in others]

    changed = []
    call = _Calls(t, attention_rollout, "attention_rollout", ("attentions", "residual"), changed)
    raw = call(*small)
    got = _as_tensor(raw)
    shape_ok = got is not None and tuple(got.shape) == (2, 4, 4)
    t.require(shape_ok, 1, "returns (B, n, n): one rollout matrix per sentence",
              f"attentions (2, 2, 3, 4, 4) = (L, B, h, n, n) should give (2, 4, 4); got {_describe(raw)}"
              + (f" of shape {tuple(got.shape)}" if got is not None and not hasattr(raw, "shape") else ""))

    if _same(got, want):
        hint = ""
    elif _same(got, wrong["reverse"]):
        hint = ("the product is in the wrong order: layer 1 acts first, so the rollout is A_L ... A_2 A_1 (multiply "
                "each new layer on the left: rollout = A_l @ rollout)")
    elif _same(got, wrong["no_residual"]):
        hint = "the residual connection is missing: use residual * I + (1 - residual) * (heads' mean) in every layer"
    elif _same(got, wrong["first"]) or _same(got, wrong["max"]):
        hint = "average the heads of each layer (mean over the head dimension, dim 1 of attentions[l])"
    else:
        hint = "two layers, residual 0.5; " + _where(got, want)
    t.expect(not hint, 1, "rollout = A_L ... A_1 with A_l = residual * I + (1 - residual) * mean over heads", hint)

    fails = []
    for (label, inputs), want2, swap2 in zip(others, wants, swaps):
        raw2, crash = call.attempt(*inputs)
        got2 = _as_tensor(raw2)
        if crash or not _same(got2, want2):
            note = (" (residual and attention weights swapped: the identity gets `residual`, the attention "
                    "1 - residual)") if _same(got2, swap2) else ""
            fails.append(_why(got2, want2, crash, label) + note)
    t.expect(not fails, 1, "other numbers of layers, sentences, heads and tokens; residual 0.3 and 0.8; float64",
             fails[0] if fails else "")
    _expect_unchanged(t, changed, "attentions[l] *= 1 - residual")


# --------------------------------------------------------------------------- exercise 4: an ablation hook


def _apply_hook(make_ablation_hook, heads, d_head, layer, x):
    """Runs in t.call: the learner's hook registered as a forward pre-hook on ``layer``, applied to ``x``."""
    handle = layer.register_forward_pre_hook(make_ablation_hook(heads, d_head))
    try:
        with torch.no_grad():
            return layer(x)
    finally:
        handle.remove()


def _ref_ablation(layer, x, heads, d_head):
    x = x.clone()
    for k in heads:
        x[..., k * d_head:(k + 1) * d_head] = 0
    with torch.no_grad():
        return layer(x).double()


def _linear(d, seed, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Linear(d, d).to(dtype)


@register("08.ablation_hook", title="a forward pre-hook that switches heads off", exercise_set=SET, points=3)
def check_ablation_hook(t, make_ablation_hook):
    g = torch.Generator().manual_seed(83)
    layer = _linear(12, 0)                                             # 3 heads of 4 features
    x = torch.randn(2, 5, 12, generator=g) + 1.0
    want = _ref_ablation(layer, x, [1], 4)
    untouched = _ref_ablation(layer, x, [], 4)
    off_by_one = _ref_ablation(layer, torch.cat([x[..., :5], torch.zeros(2, 5, 4), x[..., 9:]], -1), [], 4)
    rows = x.clone()
    rows[:, 1] = 0
    rows_off = _ref_ablation(layer, rows, [], 4)
    layer2, layer3 = _linear(40, 1, torch.float64), _linear(15, 2)
    x2 = torch.randn(3, 2, 40, generator=g, dtype=torch.float64) * 5
    x3 = torch.randn(1, 7, 15, generator=g)
    others = [("5 heads of 8 (d = 40), x (3, 2, 40) in float64, heads [0, 4]", ([0, 4], 8, layer2, x2)),
              ("5 heads of 3 (d = 15), x (1, 7, 15), heads (3, 1, 2)", ((3, 1, 2), 3, layer3, x3)),
              ("5 heads of 8, no heads to switch off", ([], 8, layer2, x2))]
    wants = [_ref_ablation(lay, xx, hs, dh) for _, (hs, dh, lay, xx) in others]

    changed = []
    x_copy = x.clone()
    try:
        with _finished_versions_off():
            raw = t.call(_apply_hook, make_ablation_hook, [1], 4, layer, x_copy)
    finally:
        if not torch.equal(x, x_copy):
            changed.append("the hook changed the layer's input")
    got = _as_tensor(raw)
    if _same(got, want):
        hint = ""
    elif _same(got, untouched):
        hint = ("the layer's output did not change: the hook must return the new inputs, a tuple (new_x,), for "
                "PyTorch to use them")
    elif _same(got, off_by_one):
        hint = "off by one: head k owns features k * d_head ... (k + 1) * d_head - 1 (a slice k * d_head:(k + 1) * d_head)"
    elif _same(got, rows_off):
        hint = "you zeroed a token (dim 1); a head's output is a slice of the last dimension, the features"
    else:
        hint = "head 1 of 3 heads of 4 features: zero features 4..7 of the input; " + _where(got, want, 1e-4)
    t.expect(not hint, 1, "the layer sees the input with head k's d_head features set to 0", hint)

    fails = []
    for (label, (hs, dh, lay, xx)), want2 in zip(others, wants):
        xx_copy = xx.clone()
        try:
            with _finished_versions_off():
                raw2, crash = t.attempt(_apply_hook, make_ablation_hook, hs, dh, lay, xx_copy)
        except NotImplementedError:
            raise
        if not torch.equal(xx, xx_copy) and "the hook changed the layer's input" not in changed:
            changed.append("the hook changed the layer's input")
        got2 = _as_tensor(raw2)
        if crash or not _same(got2, want2, 1e-4):
            fails.append(_why(got2, want2, crash, label, 1e-4))
    t.expect(not fails, 1, "several heads, the first and last head, no heads, other head sizes, float64",
             fails[0] if fails else "")
    t.expect(not changed, 1, _UNCHANGED,
             "the hook changed the layer's input in place (x[..., a:b] = 0 on the tensor it received): other code "
             "may still use that tensor; clone it first and return the clone")
