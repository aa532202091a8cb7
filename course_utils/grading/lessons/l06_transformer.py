"""Checks for exercises/06_transformer.ipynb: splitting and merging heads, multi-head attention with
masks, one pre-LN encoder block, one pre-LN decoder block with its causal mask, and a prediction of what
more heads cost.

Every check calls the learner's code at two sizes that differ in every free dimension (batch, lengths,
model width and heads; the blocks are built at two widths), on copies of its inputs (references are
computed first; a part says so when the inputs were changed in place), on large and mixed-scale scores
where a softmax is involved, and accepts tensors of any floating dtype, NumPy arrays and lists. A mistake
costs the part it breaks: a part judged after another one failed only tests what that failure leaves
testable. While a check runs, the finished modules that would answer the exercise are switched off.
"""

from __future__ import annotations

import math

import torch

from ..core import register
from ..tensor_checks import (all_finite, as_count as _as_count, as_tensor as _as_tensor, close as _close,
                             copies as _copies, describe as _describe, disabled, first_difference,
                             unchanged as _unchanged, where_differs as _where_differs)

SET = "06_transformer"

_MUTATED = "your function changed its input {name} in place (an in-place method such as transpose_, div_ or +=, " \
           "or an assignment into it): the caller's tensor must stay as it was; use out-of-place operations " \
           "(x = x + ..., not x += ...)"


def _shape(x) -> tuple | None:
    return tuple(x.shape) if x is not None else None


def _described(raw) -> str:
    if isinstance(raw, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in raw) + ")"
    return _describe(raw)


def _close_or_same_nan(got, want, atol=1e-5) -> bool:
    """close, where nan in ``want`` (from the learner's own nan weights) must be nan in ``got`` too."""
    if got is None or got.shape != want.shape or not torch.equal(got.isnan(), want.isnan()):
        return False
    return _close(got.nan_to_num(0.0), want.nan_to_num(0.0), atol=atol)


def _first_nonfinite(x):
    bad = ~torch.isfinite(x)
    return tuple(int(i) for i in bad.nonzero()[0]) if bool(bad.any()) else None


# --------------------------------------------------------------------------- exercise 1


def _split_ref(x, h):
    B, n, d = x.shape
    return x.view(B, n, h, d // h).transpose(1, 2)                                         # (B, h, n, d_head)


@register("06.split_merge", title="split into heads and merge back", exercise_set=SET, points=3)
def check_split_merge(t, split_heads, merge_heads):
    # split: every dimension differs between the two cases (B, n, d, h and d_head)
    shape_hint = slice_hint = ""
    judged, kept = 0, True
    for (B, n, d), h in (((2, 3, 8), 4), ((3, 5, 12), 3)):
        x = torch.arange(B * n * d, dtype=torch.float32).view(B, n, d)                     # distinct entries
        want = _split_ref(x, h)
        (copy,) = _copies(x)
        raw = t.call(split_heads, copy, h)
        kept = kept and _unchanged((x,), (copy,))
        got = _as_tensor(raw)
        if _shape(got) != tuple(want.shape):
            shape_hint = shape_hint or f"x of shape {(B, n, d)} with {h} heads should give {tuple(want.shape)}, " \
                                       f"got {_describe(raw)}: take B, n and d from x.shape and d_head = d // n_heads"
            continue
        judged += 1
        if not slice_hint and not _close(got, want):
            if _close(got, x.view(B, h, n, d // h)):
                slice_hint = "a plain view to (B, h, n, d_head) cuts the *positions* into heads; view to " \
                             "(B, n, h, d_head) first, then transpose(1, 2)"
            else:
                b, i, j, c = first_difference(got, want)
                slice_hint = f"head i must hold features i*d_head .. (i+1)*d_head - 1 of every position: with x " \
                             f"{(B, n, d)} and {h} heads, [{b}, {i}, {j}, {c}] (sentence {b}, head {i}, position " \
                             f"{j}) should be x[{b}, {j}, {i * (d // h) + c}] = {float(want[b, i, j, c]):g}, got " \
                             f"{float(got[b, i, j, c]):g}"
    t.expect(not shape_hint, 0.5, "split_heads: (B, n, d) -> (B, h, n, d / h), at two sizes", shape_hint)
    if not judged:
        slice_hint = "fix the shape of split_heads first; then head i must hold feature slice i of every position"
    t.expect(not slice_hint, 1, "head i holds feature slice i of every position", slice_hint)

    g = torch.Generator().manual_seed(0)
    hint = ""
    for B, h, n, dh in ((2, 4, 3, 5), (3, 2, 6, 3)):
        heads = torch.randn(B, h, n, dh, generator=g)                                      # (B, h, n, d_head)
        want = heads.transpose(1, 2).reshape(B, n, h * dh)
        (copy,) = _copies(heads)
        raw = t.call(merge_heads, copy)
        kept = kept and _unchanged((heads,), (copy,))
        merged = _as_tensor(raw)
        if hint:
            continue
        if _shape(merged) != (B, n, h * dh):
            hint = f"(B={B}, h={h}, n={n}, d_head={dh}) should merge to {(B, n, h * dh)}, got {_describe(raw)}"
        elif _close(merged, heads.reshape(B, n, h * dh)):
            hint = "a plain reshape mixes positions and heads; transpose(1, 2) back to (B, n, h, d_head) first"
        elif not _close(merged, want):
            hint = f"position j of the result should be the concatenation [head_0[j]; head_1[j]; ...]; with heads " \
                   f"{(B, h, n, dh)}: {_where_differs(merged, want)}"
    t.expect(not hint, 1, "merge_heads concatenates the heads of each position (the inverse), at two sizes", hint)
    t.expect(kept, 0.5, "split_heads and merge_heads leave their input unchanged", _MUTATED.format(name="x"))


# --------------------------------------------------------------------------- exercise 2


def _ref_mha(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None, scale_dim=None, plain_split=False):
    """(output, weights) in float64; ``scale_dim`` and ``plain_split`` give the usual mistakes."""
    x_q, x_kv, W_q, W_k, W_v, W_o = (a.to(torch.float64) for a in (x_q, x_kv, W_q, W_k, W_v, W_o))
    B, m, d = x_q.shape
    n = x_kv.shape[1]
    dh = d // n_heads

    def split(a, length):
        return a.view(B, n_heads, length, dh) if plain_split else a.view(B, length, n_heads, dh).transpose(1, 2)

    q, k, v = split(x_q @ W_q, m), split(x_kv @ W_k, n), split(x_kv @ W_v, n)              # (B, h, ., d_head)
    scores = q @ k.transpose(-2, -1) / math.sqrt(scale_dim or dh)                          # (B, h, m, n)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, -1)
    return (w @ v).transpose(1, 2).reshape(B, m, d) @ W_o, w


def _own_mha_output(w, x_kv, W_v, W_o, plain_split=False):
    """The output the learner's own weights w (B, h, m, n) give: merge(w @ v) @ W_o, in float64 (v split as the
    learner's weights were, when they were split with a plain view)."""
    B, h, m, n = w.shape
    d = W_v.shape[1]
    v = x_kv.to(torch.float64) @ W_v.to(torch.float64)
    v = v.view(B, h, n, d // h) if plain_split else v.view(B, n, h, d // h).transpose(1, 2)
    return (w @ v).transpose(1, 2).reshape(B, m, d) @ W_o.to(torch.float64)


def _mha_case(seed, B, m, n, d, query_scale=None, w_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x_q, x_kv = torch.randn(B, m, d, generator=g), torch.randn(B, n, d, generator=g)
    if query_scale is not None:
        x_q = x_q * torch.tensor(query_scale)[..., None]
    W_q, W_k = (torch.randn(d, d, generator=g) * w_scale / math.sqrt(d) for _ in range(2))
    W_v, W_o = (torch.randn(d, d, generator=g) / math.sqrt(d) for _ in range(2))
    return x_q, x_kv, W_q, W_k, W_v, W_o


def _mha_call(t, fn, args, h, mask=None):
    """(output, weights) as float64 (None where not numbers), the raw answer, whether the inputs were kept."""
    inputs = args if mask is None else (*args, mask)
    copies = _copies(*inputs)
    raw = t.call(fn, *copies[:6], h) if mask is None else t.call(fn, *copies[:6], h, copies[6])
    pair = isinstance(raw, (tuple, list)) and len(raw) == 2
    out, w = (_as_tensor(raw[0]), _as_tensor(raw[1])) if pair else (None, None)
    return out, w, raw, _unchanged(inputs, copies)


def _mha_off():
    from ...models.multihead_attention import MultiHeadAttention

    return disabled((MultiHeadAttention, "forward"), (torch.nn.MultiheadAttention, "forward"),
                    (torch.nn.functional, "multi_head_attention_forward"),
                    why="exercise 2 asks for multi-head attention written with plain tensor operations")


# (B, m, n, d, h): every dimension differs between the two, d_head too (4, then 3); m < n, then m > n
_MHA_1, _MHA_2 = (2, 3, 4, 8, 2), (3, 6, 5, 12, 4)
# batch 0: queries of very different norms with scores up to thousands; batch 1: small scores
_LARGE_QUERIES = [[0.05, 3.0, 0.2], [0.01, 0.02, 0.01]]


@register("06.multi_head_attention", title="multi-head attention with masks", exercise_set=SET, points=5)
def check_multi_head_attention(t, multi_head_attention):
    with _mha_off():
        _check_multi_head_attention(t, multi_head_attention)


def _check_multi_head_attention(t, fn):
    B, m, n, d, h = _MHA_1
    args = _mha_case(6, B, m, n, d)
    x_q, x_kv, W_q, W_k, W_v, W_o = args
    want_out, want_w = _ref_mha(*args, h)
    B2, m2, n2, d2, h2 = _MHA_2
    args_2 = _mha_case(7, B2, m2, n2, d2)
    want_2 = _ref_mha(*args_2, h2)
    args_big = _mha_case(0, B, m, n, d, query_scale=_LARGE_QUERIES, w_scale=30.0)
    want_big = _ref_mha(*args_big, h)
    # masks: padding (sentence 1 has 2 real keys, its padded keys hold junk) and a per-head mask, then at the
    # second size a padding mask (B, 1, 1, n) alone
    keep = torch.tensor([[True, True, True, True], [True, True, False, False]])[:, None, None, :]   # (B, 1, 1, n)
    per_head = torch.ones(1, h, 1, n, dtype=torch.bool)
    per_head[0, 1, 0, 0] = False                                                           # head 1 may not see key 0
    mask_1 = keep & per_head                                                               # (B, h, 1, n)
    junk_1 = (x_q, x_kv.clone(), W_q, W_k, W_v, W_o)
    junk_1[1][1, 2:] = 50.0
    mask_2 = (torch.arange(n2)[None, :] < torch.tensor([5, 2, 3])[:, None])[:, None, None, :]     # (B2, 1, 1, n2)
    junk_2 = (args_2[0], args_2[1].clone(), *args_2[2:])
    junk_2[1][1, 2:] = -30.0
    masked = [(junk_1, h, mask_1, _ref_mha(*junk_1, h, mask_1)), (junk_2, h2, mask_2, _ref_mha(*junk_2, h2, mask_2))]

    out, w, raw, kept = _mha_call(t, fn, args, h)
    t.require(_shape(out) == (B, m, d) and _shape(w) == (B, h, m, n), 0.5,
              "returns (output (B, m, d), weights (B, h, m, n))",
              f"with B=2, m=3 queries, n=4 keys, d=8, h=2 expected (2, 3, 8) and (2, 2, 3, 4); got {_described(raw)}")
    all_kept = kept

    sums = w.sum(-1)
    rows_ok = bool((w >= -1e-7).all()) and _close(sums, torch.ones(B, h, m))
    if rows_ok:
        hint = ""
    elif _close(w.sum(-2), torch.ones(B, h, n)):
        hint = "your weights sum to one over the queries: the softmax must run over the keys (the last dimension)"
    else:
        idx = first_difference(sums, torch.ones(B, h, m))
        hint = "each head's weights for one query should be non-negative and sum to 1 over the keys; " + \
               (f"sentence {idx[0]}, head {idx[1]}, query {idx[2]} sums to {float(sums[idx]):.4g}" if idx else
                "a weight is negative")
    t.expect(rows_ok, 0.5, "each head's weights sum to one over the keys", hint)

    formula_ok = _close(w, want_w)
    plain_split = _close(w, _ref_mha(*args, h, plain_split=True)[1])
    if formula_ok:
        hint = ""
    elif _close(w, _ref_mha(*args, h, scale_dim=d)[1]):
        hint = f"you scaled by sqrt(d_model) = sqrt({d}); each head's scores are scaled by sqrt(d_head) = " \
               f"sqrt(d_model / h) = sqrt({d // h})"
    elif _close(w, _ref_mha(*args, h, scale_dim=1)[1]):
        hint = "the scores are not scaled: divide q k^T by sqrt(d_head)"
    elif not rows_ok:
        hint = "the weights are not a softmax over the keys (see the part above); fix that first"
    elif plain_split:
        hint = "a plain view to (B, h, n, d_head) cuts the positions into heads; split x @ W with view " \
               "(B, n, h, d_head), then transpose(1, 2)"
    else:
        idx = first_difference(w, want_w)
        hint = "head i uses columns i*d_head .. (i+1)*d_head - 1 of each projection (split x @ W into heads with " \
               "view (B, n, h, d_head) and transpose(1, 2)); " + \
               (f"sentence {idx[0]}, head {idx[1]}, query {idx[2]}, key {idx[3]}: expected {float(want_w[idx]):.4g}, "
                f"got {float(w[idx]):.4g}" if idx else "your weights are not finite")
    t.expect(formula_ok, 1, "the weights are softmax(q_i k_i^T / sqrt(d_head)) per head", hint)

    own = _own_mha_output(w, x_kv, W_v, W_o, plain_split)     # a split mistake is counted above, not here
    out_ok = _close_or_same_nan(out, own, atol=1e-4)
    if out_ok:
        hint = ""
    elif _close(out, _own_mha_output(w, x_kv, W_v, torch.eye(d)), atol=1e-4):
        hint = "you left out the output projection: multiply the merged heads by W_o"
    else:
        hint = "merge the heads' outputs (weights @ v, per head) back to (B, m, d): transpose(1, 2), then reshape, " \
               f"then multiply by W_o; {_where_differs(out, own, atol=1e-4)}"
    t.expect(out_ok, 0.5, "the output merges the heads and applies W_o", hint)
    exact = _close(w, want_w) and _close(out, want_out, atol=1e-4)

    # masks: hidden keys get weight 0 (at both sizes); once the unmasked case is right, the values too (at the
    # first size: the second size's values belong to the size part)
    ok, hint = True, ""
    for case, (inputs, heads, mask, (want_o, want_m)) in enumerate(masked):
        out_m, w_m, raw_m, kept = _mha_call(t, fn, inputs, heads, mask)
        all_kept = all_kept and kept
        shape = tuple(want_m.shape)
        if not ok or not rows_ok or (case > 0 and (_shape(w_m) != shape or _shape(out_m) != tuple(want_o.shape))):
            continue
        if _shape(w_m) != shape or _shape(out_m) != tuple(want_o.shape):
            ok, hint = False, f"with a mask of shape {tuple(mask.shape)} the result should still be (output " \
                              f"{tuple(want_o.shape)}, weights {shape}), got {_described(raw_m)}"
            continue
        hidden = ~mask.expand(shape)
        weighty = (w_m.abs() > 1e-7) | ~torch.isfinite(w_m)
        leaked = bool(weighty[hidden].any())
        if not leaked and (not exact or case > 0 or (_close(w_m, want_m) and _close(out_m, want_o, atol=1e-4))):
            continue
        ok = False
        if _close_or_same_nan(w_m, _ref_mha(*inputs, heads, ~mask)[1]):
            hint = "your mask is inverted: True means 'may attend' (keep), False gets weight 0"
        elif leaked and mask.shape[1] > 1 and not bool(weighty[~keep.expand(shape)].any()):
            hint = "the mask has a head dimension (B, h, 1, n): head 1 may not look at key 0; apply the mask to the " \
                   "(B, h, m, n) scores as it is, letting it broadcast"
        elif leaked:
            idx = tuple(int(i) for i in (hidden & weighty).nonzero()[0])
            hint = f"keys the mask hides (False) must get weight exactly 0: fill their scores with -inf before the " \
                   f"softmax (filling them with 0 still gives them weight); with a mask of shape " \
                   f"{tuple(mask.shape)}, sentence {idx[0]}, head {idx[1]}, query {idx[2]} gives key {idx[3]} weight " \
                   f"{float(w_m[idx]):.4g}"
        else:
            hint = f"with a mask of shape {tuple(mask.shape)}: weights {_where_differs(w_m, want_m)}" \
                if not _close(w_m, want_m) else f"with a mask of shape {tuple(mask.shape)}: output " \
                                                f"{_where_differs(out_m, want_o, atol=1e-4)}"
    t.expect(ok, 1, "masks that broadcast against (B, h, m, n): padding and per-head masks give weight 0" +
             ("" if rows_ok else " (judged once each query's weights sum to one)"), hint)

    # another size in every dimension
    out_2, w_2, raw_2, kept = _mha_call(t, fn, args_2, h2)
    all_kept = all_kept and kept
    shapes = f"B={B2}, m={m2}, n={n2}, d={d2}, h={h2}"
    if _shape(out_2) != (B2, m2, d2) or _shape(w_2) != (B2, h2, m2, n2):
        ok, hint = False, f"with {shapes} expected output {(B2, m2, d2)} and weights {(B2, h2, m2, n2)}; got " \
                          f"{_described(raw_2)}: take every size from the arguments and n_heads"
    elif not exact:
        ok, hint = True, ""
    else:
        ok = _close(w_2, want_2[1]) and _close(out_2, want_2[0], atol=1e-4)
        scale = next((s for s in (d // h, d, d2, 1) if _close(w_2, _ref_mha(*args_2, h2, scale_dim=s)[1])), None)
        if ok:
            hint = ""
        elif scale is not None:
            hint = f"with {shapes} your scores are scaled by sqrt({scale}); d_head = d / h = {d2 // h2} here: " \
                   f"compute it from the arguments"
        else:
            hint = f"right at the first size, wrong with {shapes}: " + \
                   (f"weights {_where_differs(w_2, want_2[1])}" if not _close(w_2, want_2[1]) else
                    f"output {_where_differs(out_2, want_2[0], atol=1e-4)}")
    t.expect(ok, 0.5, "other sizes: B, m, n, d and h all different" +
             ("" if exact else " (shapes only, until the first size is right)"), hint)

    # scores in the thousands next to small ones
    out_b, w_b, raw_b, kept = _mha_call(t, fn, args_big, h)
    all_kept = all_kept and kept
    finite = out_b is not None and w_b is not None and all_finite(out_b) and all_finite(w_b)
    if _shape(out_b) != (B, m, d) or _shape(w_b) != (B, h, m, n):
        ok, hint = False, f"the same sizes with large scores should still give (2, 3, 8) and (2, 2, 3, 4), got " \
                          f"{_described(raw_b)}"
    elif not finite and all_finite(w):
        idx = _first_nonfinite(w_b)
        ok, hint = False, "with scores in the thousands (sentence 0) next to small scores (sentence 1) your weights " \
                          "are not finite" + (f" at index {idx}" if idx else "") + ": exp overflows, or a maximum " \
                          "subtracted over more than one row makes a row's exp underflow to 0/0. Subtract each " \
                          "row's own maximum (amax(-1, keepdim=True)), or use torch.softmax"
    elif finite and exact and not (_close(w_b, want_big[1], atol=1e-4) and _close(out_b, want_big[0], atol=1e-4)):
        ok, hint = False, "with scores in the thousands (sentence 0) next to small scores (sentence 1) the weights " \
                          f"are wrong: {_where_differs(w_b, want_big[1], atol=1e-4)}; subtract each row's own maximum"
    else:
        ok, hint = True, ""
    t.expect(ok, 0.5, "large and mixed-scale scores (thousands, rows of very different scales): finite and exact",
             hint)
    t.expect(all_kept, 0.5, "leaves its inputs (x_q, x_kv, the weight matrices, the mask) unchanged",
             _MUTATED.format(name="(x_q, x_kv, a W or the mask)"))


# --------------------------------------------------------------------------- exercise 3 and 4


def _with_uneven_norms(block):
    """Give every LayerNorm of a block non-trivial scales and shifts, so that a missing or misplaced norm shows."""
    with torch.no_grad():
        for norm in (m for m in block.modules() if isinstance(m, torch.nn.LayerNorm)):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    return block


def _block(kind: str, d: int, h: int, d_ff: int, seed: int):
    """An EncoderBlock or DecoderBlock (pre-LN, eval, no dropout), built without touching the notebook's RNG."""
    from ...models import transformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = getattr(transformer, kind)(d, h, d_ff, dropout=0.0, norm_first=True).eval()
        return _with_uneven_norms(block)


def _keep(lengths, n):
    return (torch.arange(n)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]  # (B, 1, 1, n)


def _block_off(kind: str):
    from ...models import transformer

    return disabled((getattr(transformer, kind), "forward"),
                    why=f"write the block from its parts (norms, attention, ff) instead of calling {kind}.forward")


def _block_call(t, fn, inputs, block):
    """The learner's output as float64 (None if not numbers), the raw answer, whether the inputs were kept."""
    copies = _copies(*inputs)
    with torch.no_grad():
        raw = t.call(fn, *copies, block)
    return _as_tensor(raw), raw, _unchanged(inputs, copies)


def _tuple_note(raw) -> str:
    return " (return only the new tensor, not the attention weights)" if isinstance(raw, (tuple, list)) else ""


@register("06.encoder_block", title="one pre-LN encoder block", exercise_set=SET, points=4)
def check_encoder_block(t, encoder_block):
    g = torch.Generator().manual_seed(1)
    block = _block("EncoderBlock", 8, 2, 16, seed=0)
    x = torch.randn(2, 5, 8, generator=g) * 2 + 1
    keep = _keep([5, 3], 5)                                   # sentence 0 has no padding, sentence 1 two positions
    junk = x.clone()
    junk[1, 3:] = -40.0                                      # padding content must not leak into real positions
    block_2 = _block("EncoderBlock", 12, 3, 20, seed=1)      # another width and number of heads
    x_2, keep_2 = torch.randn(3, 7, 12, generator=g), _keep([7, 4, 1], 7)
    with torch.no_grad():
        want = block(x, keep)[0]
        want_2 = block_2(x_2, keep_2)[0]
        a, _ = block.self_attn(x, x, x, keep)
        post = block.norm1(x + a)
        post = block.norm2(post + block.ff(post))
        hx = block.norm1(x)
        a, _ = block.self_attn(hx, hx, hx, keep)
        no_res = block.ff(block.norm2(a))
        x1 = x + a
        same_norm = x1 + block.ff(block.norm1(x1))
        ff_unnormed = x1 + block.ff(x1)
    with _block_off("EncoderBlock"):
        got, raw, kept = _block_call(t, encoder_block, (x, keep), block)
        got_junk, _, kept_junk = _block_call(t, encoder_block, (junk, keep), block)
        got_2, raw_2, kept_2 = _block_call(t, encoder_block, (x_2, keep_2), block_2)

    t.require(_shape(got) == (2, 5, 8), 0.5, "returns the block's output (B, n, d)",
              f"x is (2, 5, 8) and so is the output; got {_describe(raw)}{_tuple_note(raw)}")

    # the formula, on sentence 0, which has no padding (a missing mask costs only the padding part)
    if _close(got[0], post[0], atol=1e-4):
        hint = "this is post-LN, LN(x + f(x)); the exercise asks for pre-LN: x + f(LN(x))"
    elif _close(got[0], no_res[0], atol=1e-4):
        hint = "the residual connections are missing: add each sub-layer's output to its input, x = x + f(LN(x))"
    elif _close(got[0], same_norm[0], atol=1e-4):
        hint = "the feed-forward branch uses norm1; each sub-layer has its own layer norm: x + ff(norm2(x))"
    elif _close(got[0], ff_unnormed[0], atol=1e-4):
        hint = "the feed-forward branch gets x without its layer norm: x = x + ff(norm2(x))"
    else:
        hint = "x = x + self_attn(LN1(x), LN1(x), LN1(x), mask)[0], then x = x + ff(LN2(x)); sentence 0: " + \
               _where_differs(got[0], want[0], atol=1e-4)
    formula_ok = t.expect(_close(got[0], want[0], atol=1e-4), 1, "x + attention(LN1(x)), then x + FFN(LN2(x))", hint)

    ok = _shape(got_junk) == (2, 5, 8) and _close(got_junk[1, :3], got[1, :3], atol=1e-4)
    t.expect(ok, 1, "padding (mask False) does not affect the real positions",
             "changing the padded positions of sentence 1 changed its real positions: pass the mask to the "
             "attention, block.self_attn(h, h, h, mask)")
    exact = formula_ok and _close(got, want, atol=1e-4)

    sizes = "a block with d = 12 and 3 heads, x of shape (3, 7, 12)"
    if _shape(got_2) != (3, 7, 12):
        ok, hint = False, f"{sizes} should give (3, 7, 12), got {_describe(raw_2)}{_tuple_note(raw_2)}"
    elif exact and not _close(got_2, want_2, atol=1e-4):
        ok, hint = False, f"right for the first block, wrong for {sizes}: {_where_differs(got_2, want_2, atol=1e-4)}"
    else:
        ok, hint = True, ""
    t.expect(ok, 1, "other sizes: another width, number of heads, batch and length" +
             ("" if exact else " (shapes only, until the first block is right)"), hint)
    t.expect(kept and kept_junk and kept_2, 0.5, "leaves x and the mask unchanged", _MUTATED.format(name="x"))


@register("06.decoder_block", title="one pre-LN decoder block with a causal mask", exercise_set=SET, points=4)
def check_decoder_block(t, decoder_block):
    g = torch.Generator().manual_seed(2)
    block = _block("DecoderBlock", 8, 2, 16, seed=0)
    T, S = 4, 5
    y, memory = torch.randn(2, T, 8, generator=g), torch.randn(2, S, 8, generator=g)
    src_keep = _keep([5, 2], S)                              # sentence 0: no source padding; sentence 1: 3 padded
    later = y.clone()
    later[:, 2:] = torch.randn(2, 2, 8, generator=g) * 3     # change target positions 2 and 3
    junk = memory.clone()
    junk[1, 2:] = 30.0                                       # padded source content must not be read
    block_2 = _block("DecoderBlock", 12, 3, 20, seed=1)      # another width and number of heads; T > S here
    y_2, memory_2 = torch.randn(3, 6, 12, generator=g), torch.randn(3, 3, 12, generator=g)
    src_keep_2 = _keep([3, 1, 2], 3)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    with torch.no_grad():
        want = block(y, memory, causal, src_keep)[0]
        want_2 = block_2(y_2, memory_2, torch.ones(6, 6, dtype=torch.bool).tril(), src_keep_2)[0]
        hy = block.norm1(y)
        y1 = y + block.self_attn(hy, hy, hy, causal)[0]
        kv_wrong = y1 + block.cross_attn(block.norm2(y1), block.norm2(y1), block.norm2(y1), None)[0]
        kv_wrong = kv_wrong + block.ff(block.norm3(kv_wrong))
        no_diagonal = block(y, memory, causal.tril(-1), src_keep)[0]
        post = block.norm_first
        block.norm_first = False
        post_ln = block(y, memory, causal, src_keep)[0]
        block.norm_first = post
    with _block_off("DecoderBlock"):
        got, raw, kept = _block_call(t, decoder_block, (y, memory, src_keep), block)
        got_later, _, kept_later = _block_call(t, decoder_block, (later, memory, src_keep), block)
        got_junk, _, kept_junk = _block_call(t, decoder_block, (y, junk, src_keep), block)
        got_2, raw_2, kept_2 = _block_call(t, decoder_block, (y_2, memory_2, src_keep_2), block_2)

    t.require(_shape(got) == (2, T, 8), 0.5, "returns the block's output (B, T, d)",
              f"y is (2, 4, 8) and so is the output; got {_describe(raw)}{_tuple_note(raw)}")

    leak = _shape(got_later) != (2, T, 8) or not _close(got_later[:, :2], got[:, :2], atol=1e-5)
    diagonal_hidden = not leak and _close(got[0], no_diagonal[0], atol=1e-4)
    if leak and _close(got[0], kv_wrong[0], atol=1e-4):
        hint = "the future leaks through the cross-attention: its keys and values must come from the encoder, " \
               "block.cross_attn(LN2(y), memory, memory, src_mask), not from the target positions"
    elif diagonal_hidden:
        hint = "your causal mask hides the diagonal too: position t may attend to positions 0..t, itself included " \
               "(tril(), not tril(-1)); position 0 then has nothing to attend to at all"
    else:
        hint = "the mask leaks the future: changing target positions 2 and 3 changed the outputs at positions 0 " \
               "and 1; position t may attend to positions 0..t only; build the self-attention mask with " \
               "torch.ones(T, T, dtype=torch.bool).tril() (True on and below the diagonal)"
    t.expect(not leak and not diagonal_hidden, 1,
             "causal: position t sees positions 0..t (changing later target positions leaves earlier outputs "
             "unchanged)", hint)

    # the formula on sentence 0 (no source padding): every position once the mask is causal, else the last
    # position, which sees every target position either way (so a leaking mask costs only the part above)
    rows = slice(0, T) if not leak else slice(T - 1, T)
    where = "sentence 0" if not leak else f"sentence 0, position {T - 1} (the last, which sees every position)"
    ok = _close(got[0, rows], want[0, rows], atol=1e-4) or diagonal_hidden   # the mask's mistake is counted above
    if ok:
        hint = ""
    elif _close(got[0, rows], kv_wrong[0, rows], atol=1e-4):
        hint = "cross-attention takes its keys and values from the encoder: block.cross_attn(LN2(y), memory, " \
               "memory, src_mask)"
    elif _close(got[0, rows], post_ln[0, rows], atol=1e-4):
        hint = "this is post-LN, LN(y + f(y)); the exercise asks for pre-LN: y + f(LN(y)) for each sub-layer"
    else:
        hint = "y = y + self_attn(LN1(y) x3, causal)[0]; y = y + cross_attn(LN2(y), memory, memory, src_mask)[0]; " \
               f"y = y + ff(LN3(y)); {where}: {_where_differs(got[0, rows], want[0, rows], atol=1e-4)}"
    formula_ok = t.expect(ok, 1, "self-attention, cross-attention to the memory, FFN, each pre-LN with a residual",
                          hint)

    ok = _shape(got_junk) == (2, T, 8) and _close(got_junk, got, atol=1e-4)
    t.expect(ok, 0.5, "padded source positions are not read",
             "changing the padded memory positions of sentence 1 changed the output: pass src_mask to the "
             "cross-attention")
    exact = formula_ok and not leak and _close(got, want, atol=1e-4)

    sizes = "a block with d = 12 and 3 heads, y (3, 6, 12) and memory (3, 3, 12)"
    if _shape(got_2) != (3, 6, 12):
        ok, hint = False, f"{sizes} should give (3, 6, 12), got {_describe(raw_2)}{_tuple_note(raw_2)}"
    elif exact and not _close(got_2, want_2, atol=1e-4):
        ok, hint = False, f"right for the first block, wrong for {sizes}: take T from y " \
                          f"(y.shape[1]); {_where_differs(got_2, want_2, atol=1e-4)}"
    else:
        ok, hint = True, ""
    t.expect(ok, 0.5, "other sizes: another width, number of heads, batch, target and source length" +
             ("" if exact else " (shapes only, until the first block is right)"), hint)
    t.expect(kept and kept_later and kept_junk and kept_2, 0.5, "leaves y, memory and src_mask unchanged",
             _MUTATED.format(name="(y, memory or src_mask)"))


# --------------------------------------------------------------------------- exercise 5: predict the cost of heads


def _hidden():
    """While active, constructing the finished multi-head attention modules raises: the numbers must be reasoned out."""
    from ...models.multihead_attention import MultiHeadAttention

    return disabled((MultiHeadAttention, "__init__"), (torch.nn.MultiheadAttention, "__init__"),
                    why="this check hides the finished multi-head attention modules: work the number out from the "
                        "shapes of the weight matrices")


@register("06.predict_heads", title="predict what more heads cost: parameters and attention weights",
          exercise_set=SET, points=3)
def check_predict_heads(t, predicted_parameters, predicted_weight_entries):
    sizes = [(64, 1), (64, 4), (64, 16), (12, 3), (30, 5)]
    first_bad = None
    with _hidden():
        answers = {(d, h): t.call(predicted_parameters, d, h) for d, h in sizes}
    counts = {key: _as_count(raw) for key, raw in answers.items()}
    for (d, h), got in counts.items():
        if got != 4 * d * d + 4 * d:
            first_bad = (d, h, got)
            break
    if first_bad is None:
        hint = ""
    else:
        d, h, got = first_bad
        by_h = {counts[(64, k)] for k in (1, 4, 16)}
        if got is None:
            hint = f"predicted_parameters({d}, {h}) should return a whole number, got {_describe(answers[(d, h)])}"
        elif len(by_h) > 1:
            hint = ("your count changes with the number of heads: the h projections of size d/h sit side by side in "
                    "one (d, d) matrix per role, so h only decides how that matrix is cut")
        elif got == 4 * d * d:
            hint = "the four linear layers (W_q, W_k, W_v, W_o) each have a bias of d entries too"
        elif got == 3 * d * d + 3 * d:
            hint = "do not forget the output projection W_o: four (d, d) layers with biases"
        else:
            hint = f"for d_model = {d} and n_heads = {h} the module has {4 * d * d + 4 * d} parameters, got {got}"
    t.expect(first_bad is None, 2, "the parameter count 4 d^2 + 4 d, the same for every number of heads", hint)

    shapes = [(8, 1, 20, 20), (8, 4, 20, 20), (8, 16, 20, 20), (2, 3, 5, 7), (3, 2, 4, 9)]
    hint = ""
    with _hidden():
        for B, h, m, n in shapes:
            raw = t.call(predicted_weight_entries, B, h, m, n)
            got = _as_count(raw)
            if got != B * h * m * n:
                hint = (f"for B = {B}, h = {h}, m = {m}, n = {n} the weights tensor has {B * h * m * n} entries, got "
                        f"{got if got is not None else _describe(raw)}: it is (B, h, m, n), one (m, n) map per "
                        f"sentence and head")
                break
    t.expect(not hint, 1, "the attention weights have B h m n entries: they grow with the number of heads", hint)
