"""Answers to the checks of exercises/06_transformer.ipynb (see check_answers/__init__.py)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from check_answers import right, wrong

# --------------------------------------------------------------------------- 06.split_merge


def split_view(x, n_heads):
    B, n, d = x.shape
    return x.view(B, n, n_heads, d // n_heads).transpose(1, 2)


def merge_reshape(x):
    B, h, n, d_head = x.shape
    return x.transpose(1, 2).reshape(B, n, h * d_head)


def split_chunks(x, n_heads):                                  # another algorithm: stack the feature slices
    return torch.stack(x.chunk(n_heads, dim=-1), dim=1)


def merge_cat(x):
    return torch.cat(x.unbind(1), dim=-1)


def split_numpy(x, n_heads):
    a = np.asarray(x, dtype=np.float64)
    B, n, d = a.shape
    return a.reshape(B, n, n_heads, d // n_heads).transpose(0, 2, 1, 3)


def merge_numpy(x):
    a = np.asarray(x, dtype=np.float64)
    B, h, n, dh = a.shape
    return a.transpose(0, 2, 1, 3).reshape(B, n, h * dh)


def split_plain_view(x, n_heads):
    B, n, d = x.shape
    return x.view(B, n_heads, n, d // n_heads)


def split_hardcoded_4_heads(x, n_heads):
    B, n, d = x.shape
    return x.view(B, n, 4, d // 4).transpose(1, 2)


def split_hardcoded_d_head_2(x, n_heads):
    B, n, d = x.shape
    return x.view(B, n, -1, 2).transpose(1, 2)


def merge_plain_reshape(x):
    B, h, n, d_head = x.shape
    return x.reshape(B, n, h * d_head)


def merge_wrong_axis(x):                                       # n read from dim 1 (the heads)
    B, n = x.shape[:2]
    return x.transpose(1, 2).reshape(B, n, -1)


def merge_transpose_in_place(x):
    B, h, n, d_head = x.shape
    return x.transpose_(1, 2).reshape(B, n, h * d_head)


# --------------------------------------------------------------------------- 06.multi_head_attention


def _mha(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None, *, scale=None, fill=float("-inf"), softmax=None,
         split=split_view, merge=merge_reshape, out_proj=True, mask_fn=None, dim=-1):
    q, k, v = split(x_q @ W_q, n_heads), split(x_kv @ W_k, n_heads), split(x_kv @ W_v, n_heads)
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale is None else scale)   # (B, h, m, n)
    if mask is not None:
        mask = mask_fn(mask) if mask_fn else mask
        scores = scores.masked_fill(~mask, fill)
    w = softmax(scores) if softmax else torch.softmax(scores, dim=dim)
    out = merge(w @ v)
    return (out @ W_o if out_proj else out), w


def mha_float64(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None):
    out, w = _mha(*(a.double() for a in (x_q, x_kv, W_q, W_k, W_v, W_o)), n_heads, mask)
    return out, w


def mha_head_loop_list(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None):
    d = x_q.shape[-1]
    dh = d // n_heads
    outs, ws = [], []
    for i in range(n_heads):                                   # one head at a time, its column slice of each W
        cols = slice(i * dh, (i + 1) * dh)
        s = torch.einsum("bmd,bnd->bmn", x_q @ W_q[:, cols], x_kv @ W_k[:, cols]) / math.sqrt(dh)
        if mask is not None:
            s = torch.where(mask[:, min(i, mask.shape[1] - 1)], s, torch.tensor(float("-inf")))
        w = torch.softmax(s, -1)
        ws.append(w)
        outs.append(w @ (x_kv @ W_v[:, cols]))
    return [torch.cat(outs, -1) @ W_o, torch.stack(ws, 1)]


def mha_numpy(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None):
    x_q, x_kv, W_q, W_k, W_v, W_o = (np.asarray(a, dtype=np.float64) for a in (x_q, x_kv, W_q, W_k, W_v, W_o))
    B, m, d = x_q.shape
    n = x_kv.shape[1]
    dh = d // n_heads
    q = (x_q @ W_q).reshape(B, m, n_heads, dh).transpose(0, 2, 1, 3)
    k = (x_kv @ W_k).reshape(B, n, n_heads, dh).transpose(0, 2, 1, 3)
    v = (x_kv @ W_v).reshape(B, n, n_heads, dh).transpose(0, 2, 1, 3)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
    if mask is not None:
        s = np.where(np.asarray(mask), s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    w = e / e.sum(-1, keepdims=True)
    return (w @ v).transpose(0, 2, 1, 3).reshape(B, m, d) @ W_o, w


def mha_fill_1e9(*args):
    return _mha(*args, fill=-1e9)


def mha_plain_view(*args):
    return _mha(*args, split=split_plain_view)


def mha_scaled_by_d_model(x_q, *args):
    return _mha(x_q, *args, scale=math.sqrt(x_q.shape[-1]))


def mha_hardcoded_d_head_4(*args):
    return _mha(*args, scale=2.0)


def mha_hardcoded_2_heads(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None):
    return _mha(x_q, x_kv, W_q, W_k, W_v, W_o, 2, mask)


def _naive(s):
    e = s.exp()
    return e / e.sum(-1, keepdim=True)


def _global_max(s):
    e = (s - s.max()).exp()
    return e / e.sum(-1, keepdim=True)


def _max_per_head(s):
    e = (s - s.amax((-2, -1), keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def mha_naive_exp(*args):
    return _mha(*args, softmax=_naive)


def mha_global_max(*args):
    return _mha(*args, softmax=_global_max)


def mha_max_per_head(*args):
    return _mha(*args, softmax=_max_per_head)


def mha_softmax_over_queries(*args):
    return _mha(*args, dim=-2)


def mha_mask_first_head_only(*args):                          # drops the mask's head dimension
    return _mha(*args, mask_fn=lambda mask: mask[:, :1])


def mha_mask_inverted(*args):
    return _mha(*args, mask_fn=lambda mask: ~mask)


def mha_mask_filled_with_0(*args):
    return _mha(*args, fill=0.0)


def mha_no_output_projection(*args):
    return _mha(*args, out_proj=False)


def mha_merge_plain_reshape(*args):
    return _mha(*args, merge=merge_plain_reshape)


def mha_W_q_divided_in_place(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None):
    W_q.div_(math.sqrt(x_q.shape[-1] // n_heads))
    return _mha(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask, scale=1.0)


def mha_course_module(x_q, x_kv, W_q, W_k, W_v, W_o, n_heads, mask=None):
    from course_utils.models.multihead_attention import MultiHeadAttention

    mha = MultiHeadAttention(x_q.shape[-1], n_heads, bias=False)
    with torch.no_grad():
        for layer, W in ((mha.W_q, W_q), (mha.W_k, W_k), (mha.W_v, W_v), (mha.W_o, W_o)):
            layer.weight.copy_(W.T)
    return mha(x_q, x_kv, x_kv, mask)


# --------------------------------------------------------------------------- 06.encoder_block


def encoder_solution(x, mask, block):
    hx = block.norm1(x)
    x = x + block.self_attn(hx, hx, hx, mask)[0]
    return x + block.ff(block.norm2(x))


def encoder_functional_norms_float64(x, mask, block):        # F.layer_norm with the block's parameters, float64
    block = __import__("copy").deepcopy(block).double()
    x = x.double()

    def ln(norm, a):
        return F.layer_norm(a, a.shape[-1:], norm.weight, norm.bias, norm.eps)

    hx = ln(block.norm1, x)
    x = x + block.self_attn(hx, hx, hx, mask)[0]
    return x + block.ff(ln(block.norm2, x))


def encoder_numpy(x, mask, block):
    return encoder_solution(x, mask, block).numpy()


def encoder_post_ln(x, mask, block):
    x = block.norm1(x + block.self_attn(x, x, x, mask)[0])
    return block.norm2(x + block.ff(x))


def encoder_no_residual(x, mask, block):
    hx = block.norm1(x)
    return block.ff(block.norm2(block.self_attn(hx, hx, hx, mask)[0]))


def encoder_no_mask(x, mask, block):
    return encoder_solution(x, None, block)


def encoder_first_sentence_mask(x, mask, block):             # the mask of sentence 0 for every sentence
    return encoder_solution(x, mask[:1], block)


def encoder_norm1_twice(x, mask, block):
    hx = block.norm1(x)
    x = x + block.self_attn(hx, hx, hx, mask)[0]
    return x + block.ff(block.norm1(x))


def encoder_in_place(x, mask, block):
    hx = block.norm1(x)
    x += block.self_attn(hx, hx, hx, mask)[0]
    x += block.ff(block.norm2(x))
    return x


def encoder_returns_tuple(x, mask, block):
    hx = block.norm1(x)
    a, w = block.self_attn(hx, hx, hx, mask)
    x = x + a
    return x + block.ff(block.norm2(x)), w


def encoder_calls_block(x, mask, block):
    return block(x, mask)[0]


# --------------------------------------------------------------------------- 06.decoder_block


def _decoder(y, memory, src_mask, block, *, causal=None, kv=None, src=True, in_place=False):
    T = y.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril() if causal is None else causal(T)
    hy = block.norm1(y)
    a = block.self_attn(hy, hy, hy, causal)[0]
    y = y.add_(a) if in_place else y + a
    q = block.norm2(y)
    k = q if kv == "self" else memory
    y = y + block.cross_attn(q, k, k, src_mask if src else None)[0]
    return y + block.ff(block.norm3(y))


def decoder_solution(y, memory, src_mask, block):
    return _decoder(y, memory, src_mask, block)


def decoder_4d_mask_float64(y, memory, src_mask, block):
    block = __import__("copy").deepcopy(block).double()
    T = y.shape[1]
    causal = (torch.arange(T)[:, None] >= torch.arange(T)[None, :])[None, None]       # (1, 1, T, T)
    return _decoder(y.double(), memory.double(), src_mask, block, causal=lambda _: causal)


def decoder_list(y, memory, src_mask, block):
    return _decoder(y, memory, src_mask, block).tolist()


def decoder_no_causal_mask(y, memory, src_mask, block):
    return _decoder(y, memory, src_mask, block, causal=lambda T: torch.ones(T, T, dtype=torch.bool))


def decoder_triu(y, memory, src_mask, block):
    return _decoder(y, memory, src_mask, block, causal=lambda T: torch.ones(T, T, dtype=torch.bool).triu())


def decoder_no_diagonal(y, memory, src_mask, block):
    return _decoder(y, memory, src_mask, block, causal=lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1))


def decoder_keys_from_target(y, memory, src_mask, block):
    return _decoder(y, memory, None, block, kv="self")


def decoder_no_src_mask(y, memory, src_mask, block):
    return _decoder(y, memory, src_mask, block, src=False)


def decoder_in_place(y, memory, src_mask, block):
    return _decoder(y, memory, src_mask, block, in_place=True)


def decoder_length_hardcoded_4(y, memory, src_mask, block):
    return _decoder(y, memory, src_mask, block, causal=lambda T: torch.ones(4, 4, dtype=torch.bool).tril())


def decoder_post_ln(y, memory, src_mask, block):
    T = y.shape[1]
    y = block.norm1(y + block.self_attn(y, y, y, torch.ones(T, T, dtype=torch.bool).tril())[0])
    y = block.norm2(y + block.cross_attn(y, memory, memory, src_mask)[0])
    return block.norm3(y + block.ff(y))


def decoder_calls_block(y, memory, src_mask, block):
    T = y.shape[1]
    return block(y, memory, torch.ones(T, T, dtype=torch.bool).tril(), src_mask)[0]


# --------------------------------------------------------------------------- 06.predict_heads


def params(d, h):
    return 4 * d * d + 4 * d


def entries(B, h, m, n):
    return B * h * m * n


def params_counted_from_shapes(d, h):                         # another way: (in + 1) * out per linear layer
    return float(sum((d + 1) * d for _ in ("W_q", "W_k", "W_v", "W_o")))


def params_with_course_module(d, h):
    from course_utils.models.multihead_attention import MultiHeadAttention
    return sum(p.numel() for p in MultiHeadAttention(d, h).parameters())


ANSWERS = {
    "06.split_merge": [
        right("view + transpose, transpose + reshape", split_view, merge_reshape),
        right("stacked chunks, concatenated heads", split_chunks, merge_cat),
        right("NumPy arrays", split_numpy, merge_numpy),
        wrong("plain view to (B, h, n, d_head)", split_plain_view, merge_reshape, breaks="feature slice i"),
        wrong("4 heads hard-coded", split_hardcoded_4_heads, merge_reshape, breaks="split_heads: (B, n, d)"),
        wrong("d_head 2 hard-coded", split_hardcoded_d_head_2, merge_reshape, breaks="split_heads: (B, n, d)"),
        wrong("merge by a plain reshape", split_view, merge_plain_reshape, breaks="merge_heads concatenates"),
        wrong("merge reads n from the heads axis", split_view, merge_wrong_axis, breaks="merge_heads concatenates"),
        wrong("merge transposes its input in place", split_view, merge_transpose_in_place,
              breaks="leave their input unchanged"),
    ],
    "06.multi_head_attention": [
        right("float64 inside and out", mha_float64),
        right("one head at a time, a list", mha_head_loop_list),
        right("NumPy", mha_numpy),
        right("masked scores filled with -1e9", mha_fill_1e9),
        wrong("plain view split", mha_plain_view, breaks="softmax(q_i k_i^T / sqrt(d_head))"),
        wrong("scaled by sqrt(d_model)", mha_scaled_by_d_model, breaks="softmax(q_i k_i^T / sqrt(d_head))"),
        wrong("d_head 4 hard-coded in the scale", mha_hardcoded_d_head_4, breaks="other sizes"),
        wrong("2 heads hard-coded", mha_hardcoded_2_heads, breaks="other sizes"),
        wrong("naive exp", mha_naive_exp, breaks="large and mixed-scale"),
        wrong("max over the whole tensor", mha_global_max, breaks="large and mixed-scale"),
        wrong("max over each head's whole map", mha_max_per_head, breaks="large and mixed-scale"),
        wrong("softmax over the queries", mha_softmax_over_queries, breaks="sum to one over the keys"),
        wrong("mask's head dimension dropped", mha_mask_first_head_only, breaks="padding and per-head masks"),
        wrong("mask inverted", mha_mask_inverted, breaks="padding and per-head masks"),
        wrong("masked scores filled with 0", mha_mask_filled_with_0, breaks="padding and per-head masks"),
        wrong("no output projection", mha_no_output_projection, breaks="applies W_o"),
        wrong("heads merged by a plain reshape", mha_merge_plain_reshape, breaks="merges the heads"),
        wrong("W_q divided in place", mha_W_q_divided_in_place, breaks="leaves its inputs"),
        wrong("the course's module", mha_course_module, breaks="switched off"),
    ],
    "06.encoder_block": [
        right("the block's parts", encoder_solution),
        right("F.layer_norm with the norms' parameters, float64", encoder_functional_norms_float64),
        right("a NumPy array", encoder_numpy),
        wrong("post-LN", encoder_post_ln, breaks="x + attention(LN1(x))"),
        wrong("no residual connections", encoder_no_residual, breaks="x + attention(LN1(x))"),
        wrong("norm1 used twice", encoder_norm1_twice, breaks="x + attention(LN1(x))"),
        wrong("mask not passed", encoder_no_mask, breaks="padding (mask False)"),
        wrong("sentence 0's mask for every sentence", encoder_first_sentence_mask, breaks="padding (mask False)"),
        wrong("x += in place", encoder_in_place, breaks="leaves x and the mask unchanged"),
        wrong("returns (x, weights)", encoder_returns_tuple, breaks="returns the block's output"),
        wrong("calls the finished block", encoder_calls_block, breaks="switched off"),
    ],
    "06.decoder_block": [
        right("the block's parts", decoder_solution),
        right("a (1, 1, T, T) mask, float64", decoder_4d_mask_float64),
        right("nested lists", decoder_list),
        wrong("no causal mask", decoder_no_causal_mask, breaks="causal: position t sees"),
        wrong("upper-triangle mask", decoder_triu, breaks="causal: position t sees"),
        wrong("diagonal masked", decoder_no_diagonal, breaks="causal: position t sees"),
        wrong("cross-attention keys from the target", decoder_keys_from_target, breaks="cross-attention to the memory"),
        wrong("post-LN", decoder_post_ln, breaks="each pre-LN with a residual"),
        wrong("src_mask not passed", decoder_no_src_mask, breaks="padded source positions"),
        wrong("y += in place", decoder_in_place, breaks="leaves y, memory and src_mask unchanged"),
        wrong("target length 4 hard-coded", decoder_length_hardcoded_4, breaks="mask shared by the batch"),
        wrong("calls the finished block", decoder_calls_block, breaks="switched off"),
    ],
    "06.predict_heads": [
        right("the formulas", params, entries),
        right("a float and a 0-d tensor", params_counted_from_shapes, lambda B, h, m, n: torch.tensor(B * h * m * n)),
        right("NumPy integers", lambda d, h: np.int64(4 * d * (d + 1)), lambda B, h, m, n: np.int64(B * h * m * n)),
        wrong("no biases", lambda d, h: 4 * d * d, entries, breaks="parameter count"),
        wrong("no output projection", lambda d, h: 3 * d * d + 3 * d, entries, breaks="parameter count"),
        wrong("grows with the heads", lambda d, h: h * (4 * d * d + 4 * d), entries, breaks="parameter count"),
        wrong("the example's d = 64 hard-coded", lambda d, h: 16640, entries, breaks="parameter count"),
        wrong("forgets the heads in the weights", params, lambda B, h, m, n: B * m * n, breaks="B h m n entries"),
        wrong("m twice", params, lambda B, h, m, n: B * h * m * m, breaks="B h m n entries"),
        wrong("builds the module to count", params_with_course_module, entries, breaks="switched off"),
    ],
}
