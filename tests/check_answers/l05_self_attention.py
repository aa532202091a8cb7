"""Answers to the checks of exercises/05_self_attention.ipynb (see check_answers/__init__.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

from check_answers import right, wrong

# --------------------------------------------------------------------------- 05.sinusoidal


def _table(n, d, *, exponent=lambda i, d: 2 * i / d, halves=False, swap=False, dtype=torch.float32):
    p = torch.arange(n, dtype=dtype)[:, None]                               # (n, 1)
    i = torch.arange(d // 2, dtype=dtype)
    angle = p * 10000.0 ** (-exponent(i, d))                                # (n, d/2)
    first, second = (angle.cos(), angle.sin()) if swap else (angle.sin(), angle.cos())
    if halves:
        return torch.cat([first, second], dim=-1)
    return torch.stack([first, second], dim=-1).flatten(1)                 # (n, d) interleaved


def sinusoidal_float64_numpy(n_positions, d_model):
    p = np.arange(n_positions, dtype=np.float64)[:, None]
    angle = p / 10000.0 ** (np.arange(0, d_model, 2) / d_model)
    pe = np.zeros((n_positions, d_model))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
    return pe


def sinusoidal_loops_list(n_positions, d_model):
    rows = []
    for p in range(n_positions):
        row = []
        for i in range(d_model // 2):
            angle = p / 10000 ** (2 * i / d_model)
            row += [math.sin(angle), math.cos(angle)]
        rows.append(row)
    return rows


def sinusoidal_exp_log(n_positions, d_model):
    omega = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angle = torch.arange(n_positions, dtype=torch.float64)[:, None] * omega
    return torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(n_positions, d_model)


def sinusoidal_hardcoded_d16(n_positions, d_model):          # the exponent's d taken from the example
    angle = torch.arange(n_positions)[:, None] / 10000 ** (torch.arange(0, d_model, 2) / 16)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)


def sinusoidal_hardcoded_50(n_positions, d_model):            # a table of 50 positions, whatever is asked
    return _table(50, d_model)[:n_positions] if n_positions <= 50 else _table(50, d_model)


def sinusoidal_halves(n_positions, d_model):
    return _table(n_positions, d_model, halves=True)


def sinusoidal_exponent_i(n_positions, d_model):
    return _table(n_positions, d_model, exponent=lambda i, d: i / d)


def sinusoidal_cos_first(n_positions, d_model):
    return _table(n_positions, d_model, swap=True)


def sinusoidal_integer_division(n_positions, d_model):       # 2i // d is 0: every frequency is 1
    angle = torch.arange(n_positions)[:, None] / 10000 ** (torch.arange(0, d_model, 2) // d_model)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)


def sinusoidal_transposed(n_positions, d_model):
    return _table(n_positions, d_model).T


def sinusoidal_course(n_positions, d_model):                 # the finished version, which the exercise forbids
    from course_utils.models.positional import sinusoidal_encoding
    return sinusoidal_encoding(n_positions, d_model)


# --------------------------------------------------------------------------- 05.padding_mask


def padding_numpy(lengths, n):
    return np.arange(n)[None, :] < np.asarray(lengths)[:, None]


def padding_loop(lengths, n):
    mask = torch.zeros(len(lengths), n, dtype=torch.bool)
    for b, L in enumerate(lengths.tolist()):
        mask[b, :L] = True
    return mask


def padding_greater(lengths, n):
    return lengths.unsqueeze(1) > torch.arange(n).unsqueeze(0)


def padding_width_max(lengths, n):                           # width from the data, not the argument
    return torch.arange(int(lengths.max()))[None, :] < lengths[:, None]


def padding_width_5(lengths, n):
    return torch.arange(5)[None, :] < lengths[:, None]


def padding_off_by_one(lengths, n):
    return torch.arange(n)[None, :] <= lengths[:, None]


def padding_inverted(lengths, n):
    return torch.arange(n)[None, :] >= lengths[:, None]


def padding_int(lengths, n):
    return (torch.arange(n)[None, :] < lengths[:, None]).int()


def padding_unsqueeze_in_place(lengths, n):                  # unsqueeze_ reshapes the caller's tensor
    return torch.arange(n) < lengths.unsqueeze_(1)


def padding_course(lengths, n):
    from course_utils.models.masks import padding_mask
    return padding_mask(lengths, n)


# --------------------------------------------------------------------------- 05.causal_mask


def causal_numpy(n):
    return np.tril(np.ones((n, n), dtype=bool))


def causal_compare(n):
    i = torch.arange(n)
    return i[:, None] >= i[None, :]


def causal_triu(n):
    return torch.ones(n, n, dtype=torch.bool).triu()


def causal_no_diagonal(n):
    return torch.ones(n, n, dtype=torch.bool).tril(-1)


def causal_inverted(n):
    return torch.ones(n, n, dtype=torch.bool).triu(1)


def causal_float(n):
    return torch.tril(torch.ones(n, n))


def causal_hardcoded_5(n):
    return torch.ones(5, 5, dtype=torch.bool).tril()


def causal_course(n):
    from course_utils.models.masks import causal_mask
    return causal_mask(n)


# --------------------------------------------------------------------------- 05.causal_self_attention


def _keep(n):
    return torch.ones(n, n, dtype=torch.bool).tril()


def _csa(x, W_q, W_k, W_v, *, scale=None, softmax=None, fill=float("-inf"), keep=None, dim=-1):
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    n = x.shape[1]
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale is None else scale)
    keep = _keep(n) if keep is None else keep
    if softmax is not None:
        w = softmax(scores, keep)
    else:
        w = scores.masked_fill(~keep, fill).softmax(dim=dim)
    return w @ v, w


def csa_float64(x, W_q, W_k, W_v):
    out, w = _csa(x.double(), W_q.double(), W_k.double(), W_v.double())
    return out, w


def csa_numpy_list(x, W_q, W_k, W_v):
    x, W_q, W_k, W_v = (np.asarray(a, dtype=np.float64) for a in (x, W_q, W_k, W_v))
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    n = x.shape[1]
    s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    s = np.where(np.tril(np.ones((n, n), dtype=bool)), s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    w = e / e.sum(-1, keepdims=True)
    return [w @ v, w]


def csa_row_loop(x, W_q, W_k, W_v):                          # query by query, over the keys 0..i only
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    B, n, _ = x.shape
    w = torch.zeros(B, n, n)
    for i in range(n):
        w[:, i, :i + 1] = torch.softmax(q[:, i:i + 1] @ k[:, :i + 1].transpose(1, 2) / math.sqrt(q.shape[-1]), -1)[:, 0]
    return w @ v, w


def csa_fill_1e9(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, fill=-1e9)


def csa_unscaled(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, scale=1.0)


def csa_scaled_by_d_model(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, scale=math.sqrt(x.shape[-1]))


def csa_scaled_by_d_v(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, scale=math.sqrt(W_v.shape[1]))


def csa_hardcoded_d_k_4(x, W_q, W_k, W_v):                   # sqrt(4) from the example
    return _csa(x, W_q, W_k, W_v, scale=2.0)


def csa_hardcoded_batch_2(x, W_q, W_k, W_v):
    outs = [_csa(x[b:b + 1], W_q, W_k, W_v) for b in range(2)]
    return torch.cat([o for o, _ in outs]), torch.cat([w for _, w in outs])


def _naive(scores, keep):
    e = scores.exp() * keep
    return e / e.sum(-1, keepdim=True)


def _global_max(scores, keep):
    s = scores.masked_fill(~keep, float("-inf"))
    e = (s - s.max()).exp()
    return e / e.sum(-1, keepdim=True)


def _max_before_mask(scores, keep):
    s = (scores - scores.amax(-1, keepdim=True)).masked_fill(~keep, float("-inf"))
    e = s.exp()
    return e / e.sum(-1, keepdim=True)


def csa_naive_exp(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, softmax=_naive)


def csa_global_max(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, softmax=_global_max)


def csa_max_before_mask(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, softmax=_max_before_mask)


def csa_no_mask(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, keep=torch.ones(x.shape[1], x.shape[1], dtype=torch.bool))


def csa_triu(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, keep=_keep(x.shape[1]).T)


def csa_no_diagonal(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, keep=_keep(x.shape[1]).tril(-1))


def csa_fill_zero(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, fill=0.0)


def csa_softmax_over_queries(x, W_q, W_k, W_v):
    return _csa(x, W_q, W_k, W_v, dim=-2)


def csa_scale_folded_into_W_q(x, W_q, W_k, W_v):             # divides the caller's W_q in place
    W_q.div_(math.sqrt(W_q.shape[1]))
    return _csa(x, W_q, W_k, W_v, scale=1.0)


def csa_output_transposed_weights(x, W_q, W_k, W_v):
    out, w = _csa(x, W_q, W_k, W_v)
    return w.transpose(1, 2) @ (x @ W_v), w


def csa_course(x, W_q, W_k, W_v):
    from course_utils.models.attention import scaled_dot_product_attention
    return scaled_dot_product_attention(x @ W_q, x @ W_k, x @ W_v, _keep(x.shape[1]))


# --------------------------------------------------------------------------- 05.allowed_pairs


def _mask_pairs(lengths, n):
    pad = torch.arange(n)[None, :] < lengths[:, None]                       # (B, n)
    return pad[:, None, :] & torch.ones(n, n, dtype=torch.bool).tril()     # (B, n, n)


def allowed_count(lengths, n):
    return int(_mask_pairs(lengths, n).sum())


def allowed_tensor(lengths, n):
    return _mask_pairs(lengths, n).sum()


def allowed_closed_form_numpy(lengths, n):
    return np.int64(sum(min(i + 1, L) for L in lengths.tolist() for i in range(n)))


def allowed_real_queries_only(lengths, n):
    return sum(L * (L + 1) // 2 for L in lengths.tolist())


def allowed_width_from_lengths(lengths, n):
    return allowed_count(lengths, int(lengths.max()))


def allowed_causal_only(lengths, n):
    return len(lengths) * n * (n + 1) // 2


def allowed_hardcoded(lengths, n):
    return 174


ANSWERS = {
    "05.sinusoidal": [
        right("NumPy float64 array", sinusoidal_float64_numpy),
        right("nested lists from loops", sinusoidal_loops_list),
        right("exp(-log(10000) 2i/d) in float64, reshaped", sinusoidal_exp_log),
        wrong("exponent's d hard-coded to the example's 16", sinusoidal_hardcoded_d16, breaks="other sizes"),
        wrong("a table of 50 positions whatever n_positions is", sinusoidal_hardcoded_50, breaks="other sizes"),
        wrong("sines then cosines (halves)", sinusoidal_halves, breaks="every entry is sin or cos"),
        wrong("exponent i/d instead of 2i/d", sinusoidal_exponent_i, breaks="every entry is sin or cos"),
        wrong("cos in the even columns, sin in the odd", sinusoidal_cos_first, breaks="position 0"),
        wrong("integer division 2i // d", sinusoidal_integer_division, breaks="every entry is sin or cos"),
        wrong("transposed (d_model, n_positions)", sinusoidal_transposed, breaks="(n_positions, d_model) table"),
        wrong("calls the course's finished table", sinusoidal_course, breaks="switched off"),
    ],
    "05.padding_mask": [
        right("NumPy bool array", padding_numpy),
        right("a loop filling a bool tensor", padding_loop),
        right("lengths > positions", padding_greater),
        wrong("width max(lengths) instead of n", padding_width_max, breaks="n longer than every sequence"),
        wrong("width hard-coded to 5", padding_width_5, breaks="other batch sizes"),
        wrong("<= instead of <", padding_off_by_one, breaks="True at the first lengths[b] positions"),
        wrong("inverted", padding_inverted, breaks="True at the first lengths[b] positions"),
        wrong("an int 0/1 mask", padding_int, breaks="bool tensor"),
        wrong("lengths.unsqueeze_(1) changes the input", padding_unsqueeze_in_place,
              breaks="leaves `lengths` unchanged"),
        wrong("calls the course's padding_mask", padding_course, breaks="switched off"),
    ],
    "05.causal_mask": [
        right("NumPy bool lower triangle", causal_numpy),
        right("i >= j by broadcasting", causal_compare),
        wrong("upper triangle (sees the future)", causal_triu, breaks="True where j <= i"),
        wrong("diagonal left out", causal_no_diagonal, breaks="True where j <= i"),
        wrong("inverted", causal_inverted, breaks="True where j <= i"),
        wrong("float 0/1 mask", causal_float, breaks="bool tensor"),
        wrong("always 5 x 5", causal_hardcoded_5, breaks="other sizes"),
        wrong("calls the course's causal_mask", causal_course, breaks="switched off"),
    ],
    "05.causal_self_attention": [
        right("float64 inside and out", csa_float64),
        right("NumPy, a list [output, weights]", csa_numpy_list),
        right("query by query over the visible keys", csa_row_loop),
        right("mask filled with -1e9", csa_fill_1e9),
        wrong("scores not scaled", csa_unscaled, breaks="softmax(q k^T / sqrt(d_k))"),
        wrong("scaled by sqrt(d_model)", csa_scaled_by_d_model, breaks="softmax(q k^T / sqrt(d_k))"),
        wrong("scaled by sqrt(d_v)", csa_scaled_by_d_v, breaks="softmax(q k^T / sqrt(d_k))"),
        wrong("scale sqrt(4) from the example", csa_hardcoded_d_k_4, breaks="other sizes"),
        wrong("batch of 2 hard-coded", csa_hardcoded_batch_2, breaks="other sizes"),
        wrong("naive exp", csa_naive_exp, breaks="large and mixed-scale scores"),
        wrong("max over the whole tensor", csa_global_max, breaks="large and mixed-scale scores"),
        wrong("row max taken before masking", csa_max_before_mask, breaks="large and mixed-scale scores"),
        wrong("no causal mask", csa_no_mask, breaks="no position sees the future"),
        wrong("upper-triangle mask", csa_triu, breaks="no position sees the future"),
        wrong("diagonal masked too", csa_no_diagonal, breaks="no position sees the future"),
        wrong("masked scores filled with 0", csa_fill_zero, breaks="no position sees the future"),
        wrong("softmax over the queries", csa_softmax_over_queries, breaks="distribution over the keys"),
        wrong("W_q divided in place", csa_scale_folded_into_W_q, breaks="leaves x, W_q, W_k and W_v unchanged"),
        wrong("output from the transposed weights", csa_output_transposed_weights, breaks="weighted sum of the values"),
        wrong("calls the course's scaled_dot_product_attention", csa_course, breaks="switched off"),
    ],
    "05.allowed_pairs": [
        right("174 and an int count", lambda: 174, allowed_count),
        right("174.0 and a 0-d tensor", lambda: 174.0, allowed_tensor),
        right("NumPy integers and the closed form", lambda: np.int64(174), allowed_closed_form_numpy),
        wrong("predicts every pair", lambda: 432, allowed_count, breaks="predicted number"),
        wrong("predicts the causal mask alone", lambda: 234, allowed_count, breaks="predicted number"),
        wrong("counts the real queries only", lambda: 174, allowed_real_queries_only, breaks="counts the True entries"),
        wrong("width from the lengths", lambda: 174, allowed_width_from_lengths, breaks="counts the True entries"),
        wrong("causal mask alone", lambda: 174, allowed_causal_only, breaks="counts the True entries"),
        wrong("the example's count hard-coded", lambda: 174, allowed_hardcoded, breaks="counts the True entries"),
    ],
}
