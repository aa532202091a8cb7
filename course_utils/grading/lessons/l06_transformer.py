"""Checks for exercises/06_transformer.ipynb: splitting and merging heads, multi-head attention with
masks, one pre-LN encoder block, and one pre-LN decoder block with its causal mask."""

from __future__ import annotations

import math

import torch

from ..core import register
from ..tensor_checks import (as_count as _as_count, close as _close, describe as _describe, disabled,
                             is_tensor as _is_tensor, rounded as _rounded)

SET = "06_transformer"


# --------------------------------------------------------------------------- exercise 1


@register("06.split_merge", title="split into heads and merge back", exercise_set=SET, points=3)
def check_split_merge(t, split_heads, merge_heads):
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)     # (B=2, n=3, d=8)
    got = t.call(split_heads, x, 4)
    t.require(_is_tensor(got, (2, 4, 3, 2)), 1, "split_heads: (B, n, d) -> (B, h, n, d / h)",
              f"x of shape (2, 3, 8) with 4 heads should give (2, 4, 3, 2), got {_describe(got)}")
    want = x.view(2, 3, 4, 2).transpose(1, 2)
    if _close(got, x.view(2, 4, 3, 2)):
        hint = ("a plain view to (B, h, n, d_head) cuts the *positions* into heads; view to (B, n, h, d_head) "
                "first, then transpose(1, 2)")
    else:
        hint = (f"head i must hold features i*d_head .. (i+1)*d_head - 1 of every position: head 1 of sentence 0 "
                f"should be {want[0, 1].tolist()}, got {got[0, 1].tolist()}")
    t.expect(_close(got, want), 1, "head i holds feature slice i of every position", hint)
    heads = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))   # (B, h, n, d_head)
    merged = t.call(merge_heads, heads)
    want_m = heads.transpose(1, 2).reshape(2, 3, 20)
    if not _is_tensor(merged, (2, 3, 20)):
        hint = f"(B=2, h=4, n=3, d_head=5) should merge to (2, 3, 20), got {_describe(merged)}"
    elif _close(merged, heads.reshape(2, 3, 20)):
        hint = "a plain reshape mixes positions and heads; transpose(1, 2) back to (B, n, h, d_head) first"
    else:
        hint = "position j of the result should be the concatenation [head_0[j]; head_1[j]; ...]"
    t.expect(_close(merged, want_m), 1, "merge_heads concatenates the heads of each position (the inverse)", hint)


# --------------------------------------------------------------------------- exercise 2


def _ref_mha(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None, scale_dim=None):
    B, m, d = x_q.shape
    n = x_kv.shape[1]
    dh = d // n_heads
    q = (x_q @ W_q).view(B, m, n_heads, dh).transpose(1, 2)
    k = (x_kv @ W_k).view(B, n, n_heads, dh).transpose(1, 2)
    v = (x_kv @ W_v).view(B, n, n_heads, dh).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(scale_dim or dh)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, -1)
    return (w @ v).transpose(1, 2).reshape(B, m, d) @ W_o, w


@register("06.multi_head_attention", title="multi-head attention with masks", exercise_set=SET, points=5)
def check_multi_head_attention(t, multi_head_attention):
    g = torch.Generator().manual_seed(6)
    B, m, n, d, h = 2, 3, 4, 8, 2
    x_q, x_kv = torch.randn(B, m, d, generator=g), torch.randn(B, n, d, generator=g)
    W_q, W_k, W_v, W_o = (torch.randn(d, d, generator=g) / math.sqrt(d) for _ in range(4))
    got = t.call(multi_head_attention, x_q, x_kv, W_q, W_k, W_v, W_o, h)
    ok_shape = (isinstance(got, (tuple, list)) and len(got) == 2 and _is_tensor(got[0], (B, m, d))
                and _is_tensor(got[1], (B, h, m, n)))
    t.require(ok_shape, 1, "returns (output (B, m, d), weights (B, h, m, n))",
              f"with B=2, m=3 queries, n=4 keys, d=8, h=2 expected (2, 3, 8) and (2, 2, 3, 4); got "
              f"{[_describe(x) for x in got] if isinstance(got, (tuple, list)) else _describe(got)}")
    out, w = got
    want_out, want_w = _ref_mha(x_q, x_kv, W_q, W_k, W_v, W_o, h)
    t.expect(_close(w.sum(-1), torch.ones(B, h, m)), 1, "each head's weights sum to one over the keys",
             f"the softmax must run over the keys (the last dimension); row sums: {_rounded(w.sum(-1))}")
    if _close(w, _ref_mha(x_q, x_kv, W_q, W_k, W_v, W_o, h, scale_dim=d)[1]):
        hint = "you scaled by sqrt(d_model); each head's scores are scaled by sqrt(d_head) = sqrt(d_model / h)"
    elif _close(w, _ref_mha(x_q, x_kv, W_q, W_k, W_v, W_o, h, scale_dim=1)[1]):
        hint = "the scores are not scaled: divide q k^T by sqrt(d_head)"
    else:
        hint = (f"head i uses columns i*d_head .. (i+1)*d_head - 1 of each projection (split x @ W into heads with "
                f"view (B, n, h, d_head) and transpose(1, 2)); head 0, query 0 should be {_rounded(want_w[0, 0, 0])}, "
                f"got {_rounded(w[0, 0, 0])}")
    t.expect(_close(w, want_w), 1, "the weights are softmax(q_i k_i^T / sqrt(d_head)) per head", hint)
    t.expect(_close(out, want_out, atol=1e-4), 1, "the output merges the heads and applies W_o",
             "fix the weights first" if not _close(w, want_w) else
             "your weights are right: merge the heads' outputs back to (B, m, d) (transpose then reshape) and "
             "multiply by W_o")

    keep = torch.tensor([[True, True, True, True], [True, True, False, False]])[:, None, None, :]   # (B, 1, 1, n)
    per_head = torch.ones(1, h, 1, n, dtype=torch.bool)
    per_head[0, 1, 0, 0] = False                                   # head 1 may not look at key 0
    mask = keep & per_head                                         # (B, h, 1, n)
    x_junk = x_kv.clone()
    x_junk[1, 2:] = 50.0                                           # padding content must not leak
    got = t.call(multi_head_attention, x_q, x_junk, W_q, W_k, W_v, W_o, h, mask)
    want_out, want_w = _ref_mha(x_q, x_junk, W_q, W_k, W_v, W_o, h, mask)
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and _is_tensor(got[1], (B, h, m, n))):
        t.expect(False, 1, "masks: padding and a per-head mask",
                 f"with a mask the result should still be (output, weights), got {_describe(got)}")
        return
    out, w = got
    inv_w = _ref_mha(x_q, x_junk, W_q, W_k, W_v, W_o, h, ~mask)[1]
    if _close(w, inv_w):
        hint = "your mask is inverted: True means 'may attend' (keep), False gets weight 0"
    elif bool((w[1, :, :, 2:].abs() > 1e-7).any()):
        hint = "padded keys (mask False) must get weight exactly 0: fill their scores with -inf before the softmax"
    elif bool((w[:, 1, :, 0].abs() > 1e-7).any()):
        hint = ("the mask has a head dimension (B, h, 1, n): head 1 may not look at key 0; apply the mask to the "
                "(B, h, m, n) scores as it is, letting it broadcast")
    else:
        hint = f"with the mask, sentence 1 head 0 query 0 should be {_rounded(want_w[1, 0, 0])}, got {_rounded(w[1, 0, 0])}"
    t.expect(_close(w, want_w) and _close(out, want_out, atol=1e-4), 1,
             "a (B, h, m, n)-broadcastable mask: padding and per-head masks give weight 0", hint)


# --------------------------------------------------------------------------- exercise 3 and 4


def _with_uneven_norms(block):
    """Give every LayerNorm of a block non-trivial scales and shifts, so that a missing or misplaced norm shows."""
    with torch.no_grad():
        for norm in (m for m in block.modules() if isinstance(m, torch.nn.LayerNorm)):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    return block


def _encoder_block(seed=0):
    from ...models.transformer import EncoderBlock

    torch.manual_seed(seed)
    return _with_uneven_norms(EncoderBlock(8, 2, 16, dropout=0.0, norm_first=True).eval())


@register("06.encoder_block", title="one pre-LN encoder block", exercise_set=SET, points=4)
def check_encoder_block(t, encoder_block):
    block = _encoder_block(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 8, generator=g) * 2 + 1
    keep = torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :]
    with torch.no_grad():
        want, _ = block(x, keep)
        got = t.call(encoder_block, x, keep, block)
    t.require(_is_tensor(got, (2, 5, 8)), 1, "returns the block's output (B, n, d)",
              f"x is (2, 5, 8) and so is the output; got {_describe(got)}"
              + (" (return only x, not the attention weights)" if isinstance(got, tuple) else ""))
    with torch.no_grad():
        a, _ = block.self_attn(x, x, x, keep)
        post = block.norm1(x + a)
        post = block.norm2(post + block.ff(post))
        hx = block.norm1(x)
        a, _ = block.self_attn(hx, hx, hx, keep)
        no_res = block.ff(block.norm2(a))
        a_nomask, _ = block.self_attn(hx, hx, hx)
        x1 = x + a_nomask
        nomask = x1 + block.ff(block.norm2(x1))
    if _close(got, post):
        hint = "this is post-LN, LN(x + f(x)); the exercise asks for pre-LN: x + f(LN(x))"
    elif _close(got, no_res):
        hint = "the residual connections are missing: add each sub-layer's output to its input, x = x + f(LN(x))"
    elif _close(got, nomask):
        hint = "pass the mask to the self-attention: block.self_attn(h, h, h, mask)"
    else:
        hint = ("x = x + self_attn(LN1(x), LN1(x), LN1(x), mask)[0], then x = x + ff(LN2(x)); "
                f"row 0 should start {_rounded(want[0, 0])}, got {_rounded(got[0, 0])}")
    t.expect(_close(got, want, atol=1e-4), 2, "x + attention(LN1(x)), then x + FFN(LN2(x))", hint)
    junk = x.clone()
    junk[1, 3:] = -40.0
    with torch.no_grad():
        got2 = t.call(encoder_block, junk, keep, block)
    t.expect(_close(got2[0], got[0], atol=1e-4) and _close(got2[1, :3], got[1, :3], atol=1e-4), 1,
             "padding (mask False) does not affect the real positions",
             "changing the padded positions of sentence 1 changed its real positions: pass the mask to the attention")


def _decoder_block(seed=0):
    from ...models.transformer import DecoderBlock

    torch.manual_seed(seed)
    return _with_uneven_norms(DecoderBlock(8, 2, 16, dropout=0.0, norm_first=True).eval())


@register("06.decoder_block", title="one pre-LN decoder block with a causal mask", exercise_set=SET, points=4)
def check_decoder_block(t, decoder_block):
    from ...models.masks import causal_mask

    block = _decoder_block(0)
    g = torch.Generator().manual_seed(2)
    y, memory = torch.randn(2, 4, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    src_keep = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, None, :]
    with torch.no_grad():
        want = block(y, memory, causal_mask(4), src_keep)[0]
        got = t.call(decoder_block, y, memory, src_keep, block)
    t.require(_is_tensor(got, (2, 4, 8)), 1, "returns the block's output (B, T, d)",
              f"y is (2, 4, 8) and so is the output; got {_describe(got)}"
              + (" (return only y, not the attention weights)" if isinstance(got, tuple) else ""))
    later = y.clone()
    later[:, 2:] = torch.randn(2, 2, 8, generator=g) * 3         # change target positions 2 and 3
    with torch.no_grad():
        got_later = t.call(decoder_block, later, memory, src_keep, block)
    leak = not _close(got_later[:, :2], got[:, :2], atol=1e-5)
    t.expect(not leak, 1, "causal: changing later target positions leaves earlier outputs unchanged",
             "the mask leaks the future: position t may attend to positions 0..t only; build the self-attention "
             "mask with torch.ones(T, T, dtype=torch.bool).tril() (True on and below the diagonal)")
    with torch.no_grad():
        hy = block.norm1(y)
        y1 = y + block.self_attn(hy, hy, hy, causal_mask(4))[0]
        kv_wrong = y1 + block.cross_attn(block.norm2(y1), block.norm2(y1), block.norm2(y1), None)[0]
        kv_wrong = kv_wrong + block.ff(block.norm3(kv_wrong))
        no_src_mask = block(y, memory, causal_mask(4), None)[0]
    if leak:
        hint = "fix the causal mask first"
    elif _close(got, kv_wrong, atol=1e-4):
        hint = "cross-attention takes its keys and values from the encoder: block.cross_attn(LN2(y), memory, memory, src_mask)"
    elif _close(got, no_src_mask, atol=1e-4):
        hint = "sentence 1's padded source positions were read: pass src_mask to the cross-attention"
    else:
        b, pos = divmod(int((got.detach() - want).abs().amax(-1).flatten().argmax()), 4)
        hint = ("y = y + self_attn(LN1(y) x3, causal)[0]; y = y + cross_attn(LN2(y), memory, memory, src_mask)[0]; "
                f"y = y + ff(LN3(y)); sentence {b}, position {pos} should start {_rounded(want[b, pos])}, "
                f"got {_rounded(got[b, pos])}")
    t.expect(_close(got, want, atol=1e-4), 1, "self-attention, cross-attention to the memory, FFN, each pre-LN with a residual",
             hint)
    junk = memory.clone()
    junk[1, 2:] = 30.0
    with torch.no_grad():
        got_junk = t.call(decoder_block, y, junk, src_keep, block)
    t.expect(_close(got_junk, got, atol=1e-4), 1, "padded source positions are not read",
             "changing the padded memory positions of sentence 1 changed the output: pass src_mask to the cross-attention")


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
        answers = {(d, h): _as_count(t.call(predicted_parameters, d, h)) for d, h in sizes}
    for (d, h), got in answers.items():
        if got != 4 * d * d + 4 * d:
            first_bad = (d, h, got)
            break
    if first_bad is None:
        hint = ""
    else:
        d, h, got = first_bad
        by_h = {answers[(64, k)] for k in (1, 4, 16)}
        if len(by_h) > 1:
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
            got = _as_count(t.call(predicted_weight_entries, B, h, m, n))
            if got != B * h * m * n:
                hint = (f"for B = {B}, h = {h}, m = {m}, n = {n} the weights tensor has {B * h * m * n} entries, got "
                        f"{got}: it is (B, h, m, n), one (m, n) map per sentence and head")
                break
    t.expect(not hint, 1, "the attention weights have B h m n entries: they grow with the number of heads", hint)
