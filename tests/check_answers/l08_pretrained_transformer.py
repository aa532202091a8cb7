"""Answers to the checks of exercises/08_pretrained_transformer.ipynb: right ones written differently from the
solution, wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

import numpy as np
import torch

from . import right, wrong


# --------------------------------------------------------------------------- exercise 1: one head, one sentence


def head_numpy(attentions, attention_mask, layer, head, index):
    """A NumPy array in float64, the length read from the mask as NumPy."""
    m = int(np.asarray(attention_mask[index]).astype(np.int64).sum())
    return np.asarray(attentions[layer][index, head], dtype=np.float64)[:m, :m]


def head_list(attentions, attention_mask, layer, head, index):
    """Nested lists; the real positions found with nonzero."""
    real = attention_mask[index].bool().nonzero().flatten()
    w = attentions[layer][index, head]
    return w[real][:, real].tolist()


def head_no_trim(attentions, attention_mask, layer, head, index):
    return attentions[layer][index, head]


def head_transposed(attentions, attention_mask, layer, head, index):
    m = int(attention_mask[index].sum())
    return attentions[layer][index, head, :m, :m].T


def head_swapped(attentions, attention_mask, layer, head, index):
    m = int(attention_mask[index].sum())
    return attentions[head][index, layer, :m, :m]                         # layer and head exchanged


def head_first_length(attentions, attention_mask, layer, head, index):
    m = int(attention_mask[0].sum())                                       # the first sentence's length
    return attentions[layer][index, head, :m, :m]


def head_no_sep(attentions, attention_mask, layer, head, index):
    m = int(attention_mask[index].sum()) - 1                               # off by one: [SEP] cut off
    return attentions[layer][index, head, :m, :m]


def head_in_place(attentions, attention_mask, layer, head, index):
    m = int(attention_mask[index].sum())
    w = attentions[layer][index, head]
    w[m:] = 0                                                              # the caller's tensor changes
    return w[:m, :m]


# --------------------------------------------------------------------------- exercise 2: previous-token score


def previous_loops(attentions, attention_mask):
    """Plain loops in float64, a NumPy array returned."""
    a = np.asarray(attentions, dtype=np.float64)
    L, B, h, n, _ = a.shape
    total, count = np.zeros((L, h)), 0
    for b in range(B):
        m = int(np.asarray(attention_mask[b]).sum())
        for i in range(1, m - 1):
            total += a[:, b, :, i, i - 1]
            count += 1
    return total / count


def previous_gather(attentions, attention_mask):
    """Gathers a[i, i - 1] with index tensors; returns float64 nested lists."""
    L, B, h, n, _ = attentions.shape
    rows = torch.arange(1, n)
    prev = attentions[..., rows, rows - 1].double()                       # (L, B, h, n - 1)
    lengths = attention_mask.long().sum(-1)
    words = (rows[None, :] <= (lengths - 2)[:, None]).double()             # (B, n - 1)
    return ((prev * words[None, :, None]).sum((1, 3)) / words.sum()).tolist()


def previous_next_token(attentions, attention_mask):
    nxt = torch.diagonal(attentions, offset=1, dim1=-2, dim2=-1)           # a[i, i + 1]
    lengths = attention_mask.long().sum(-1)
    pos = torch.arange(attentions.shape[-1] - 1)
    words = ((pos >= 1) & (pos[None, :] <= (lengths - 2)[:, None])).to(attentions.dtype)
    return (nxt * words[None, :, None]).sum((1, 3)) / words.sum()


def _previous_with(attentions, attention_mask, last_offset):
    """Queries 1 .. m - 1 - last_offset of each sentence."""
    prev = torch.diagonal(attentions, offset=-1, dim1=-2, dim2=-1)        # query i + 1 at index i
    lengths = attention_mask.long().sum(-1)
    q = torch.arange(1, attentions.shape[-1])
    words = (q[None, :] <= (lengths - 1 - last_offset)[:, None]).to(attentions.dtype)
    return (prev * words[None, :, None]).sum((1, 3)) / words.sum()


def previous_with_sep(attentions, attention_mask):
    return _previous_with(attentions, attention_mask, 0)                   # [SEP] counted as a query


def previous_with_padding(attentions, attention_mask):
    prev = torch.diagonal(attentions, offset=-1, dim1=-2, dim2=-1)
    return prev.mean((1, 3))                                               # every position, padding included


def previous_per_sentence(attentions, attention_mask):
    prev = torch.diagonal(attentions, offset=-1, dim1=-2, dim2=-1)
    lengths = attention_mask.long().sum(-1)
    q = torch.arange(1, attentions.shape[-1])
    words = (q[None, :] <= (lengths - 2)[:, None]).to(attentions.dtype)    # (B, n - 1)
    per = (prev * words[None, :, None]).sum(-1) / words.sum(-1)[None, :, None]   # (L, B, h)
    return per.mean(1)                                                     # each sentence weighs the same


def previous_example_size(attentions, attention_mask):
    total = torch.zeros(2, 3, dtype=attentions.dtype)                      # L and h of the example
    count = 0
    for b in range(attentions.shape[1]):
        m = int(attention_mask[b].sum())
        for i in range(1, m - 1):
            total += attentions[:2, b, :3, i, i - 1]
            count += 1
    return total / count


def previous_in_place(attentions, attention_mask):
    attentions *= attention_mask[None, :, None, :, None]                   # zero the padding queries in place
    return _previous_with(attentions, attention_mask, 1)


# --------------------------------------------------------------------------- exercise 3: rollout


def rollout_numpy(attentions, residual):
    """float64 NumPy; the product built with np.linalg.multi_dot on each sentence."""
    a = np.asarray(attentions, dtype=np.float64)
    L, B, h, n, _ = a.shape
    out = []
    for b in range(B):
        mats = [residual * np.eye(n) + (1 - residual) * a[l, b].mean(0) for l in range(L)]
        mats = [m / m.sum(-1, keepdims=True) for m in mats]
        out.append(mats[0] if L == 1 else np.linalg.multi_dot(mats[::-1]))
    return np.stack(out)


def rollout_einsum(attentions, residual):
    """einsum with a float64 accumulator, a list returned; no renormalisation (rows already sum to one)."""
    L, B, h, n, _ = attentions.shape
    eye = torch.eye(n, dtype=torch.float64)
    out = eye.expand(B, n, n)
    for l in range(L):
        a = residual * eye + (1 - residual) * attentions[l].double().mean(1)
        out = torch.einsum("bij,bjk->bik", a, out)
    return out.tolist()


def _rollout(attentions, residual, order="left", heads="mean", swap=False):
    L, B, h, n, _ = attentions.shape
    eye = torch.eye(n, dtype=attentions.dtype)
    out = eye.expand(B, n, n)
    r = 1 - residual if swap else residual
    for l in range(L):
        mixed = {"mean": attentions[l].mean(1), "first": attentions[l][:, 0]}[heads]
        a = r * eye + (1 - r) * mixed
        out = a @ out if order == "left" else out @ a
    return out


def rollout_reversed(attentions, residual):
    return _rollout(attentions, residual, order="right")


def rollout_no_residual(attentions, residual):
    return _rollout(attentions, 0.0)


def rollout_first_head(attentions, residual):
    return _rollout(attentions, residual, heads="first")


def rollout_swapped_residual(attentions, residual):
    return _rollout(attentions, residual, swap=True)


def rollout_last_layer_only(attentions, residual):
    n = attentions.shape[-1]
    return residual * torch.eye(n) + (1 - residual) * attentions[-1].mean(1)


def rollout_in_place(attentions, residual):
    for l in range(attentions.shape[0]):
        attentions[l] *= 1 - residual                                      # the caller's tensor changes
    n = attentions.shape[-1]
    eye = torch.eye(n, dtype=attentions.dtype)
    out = eye.expand(attentions.shape[1], n, n)
    for l in range(attentions.shape[0]):
        out = (residual * eye + attentions[l].mean(1)) @ out
    return out


# --------------------------------------------------------------------------- exercise 4: ablation hook


def hook_mask(heads, d_head):
    """Multiplies by a 0/1 feature mask; returns a bare tensor (PyTorch wraps it in a tuple)."""
    def hook(module, args):
        x = args[0]
        keep = torch.ones(x.shape[-1], dtype=x.dtype)
        for k in heads:
            keep[k * d_head:(k + 1) * d_head] = 0
        return x * keep
    return hook


def hook_view(heads, d_head):
    """Splits the features into heads with view, zeroes whole heads, returns a list-built tuple."""
    heads = list(heads)

    def hook(module, args):
        x = args[0]
        split = x.reshape(*x.shape[:-1], -1, d_head).clone()                # (..., h, d_head)
        if heads:
            split[..., heads, :] = 0
        return tuple([split.reshape(x.shape)] + list(args[1:]))
    return hook


def hook_returns_none(heads, d_head):
    def hook(module, args):
        x = args[0].clone()
        for k in heads:
            x[..., k * d_head:(k + 1) * d_head] = 0                        # computed, then not returned
    return hook


def hook_in_place(heads, d_head):
    def hook(module, args):
        for k in heads:
            args[0][..., k * d_head:(k + 1) * d_head] = 0                  # the caller's tensor changes
    return hook


def hook_off_by_one(heads, d_head):
    def hook(module, args):
        x = args[0].clone()
        for k in heads:
            x[..., k * d_head + 1:(k + 1) * d_head + 1] = 0
        return (x,)
    return hook


def hook_tokens(heads, d_head):
    def hook(module, args):
        x = args[0].clone()
        for k in heads:
            x[:, k] = 0                                                    # a token, not a head's features
        return (x,)
    return hook


def hook_first_head_only(heads, d_head):
    def hook(module, args):
        x = args[0].clone()
        heads_ = list(heads)
        if heads_:
            k = heads_[0]
            x[..., k * d_head:(k + 1) * d_head] = 0
        return (x,)
    return hook


def hook_fixed_width(heads, d_head):
    def hook(module, args):
        x = args[0].clone()
        for k in heads:
            x[..., k * 4:(k + 1) * 4] = 0                                  # the example's d_head
        return (x,)
    return hook


ANSWERS = {
    "08.head_attention": [
        right("NumPy in float64", head_numpy),
        right("nested lists, real positions from nonzero", head_list),
        wrong("padding not cut off", head_no_trim, breaks="(m, m) matrix"),
        wrong("transposed", head_transposed, breaks="rows = queries"),
        wrong("layer and head swapped", head_swapped, breaks="the right layer, head and sentence"),
        wrong("length of sentence 0", head_first_length, breaks="(m, m) matrix"),
        wrong("[SEP] cut off", head_no_sep, breaks="(m, m) matrix"),
        wrong("changes the attentions in place", head_in_place, breaks="leaves its inputs unchanged"),
    ],
    "08.previous_token_score": [
        right("loops in NumPy", previous_loops),
        right("gather, lists", previous_gather),
        wrong("next token", previous_next_token, breaks="mean weight on the previous token"),
        wrong("[SEP] counted", previous_with_sep, breaks="mean weight on the previous token"),
        wrong("padding counted", previous_with_padding, breaks="mean weight on the previous token"),
        wrong("mean of sentence means", previous_per_sentence, breaks="mean weight on the previous token"),
        wrong("example's L and h", previous_example_size, breaks="other numbers of layers"),
        wrong("masks in place", previous_in_place, breaks="leaves its inputs unchanged"),
    ],
    "08.rollout": [
        right("NumPy multi_dot", rollout_numpy),
        right("einsum, no renormalisation, lists", rollout_einsum),
        wrong("product reversed", rollout_reversed, breaks="rollout = A_L ... A_1"),
        wrong("no residual", rollout_no_residual, breaks="rollout = A_L ... A_1"),
        wrong("first head only", rollout_first_head, breaks="rollout = A_L ... A_1"),
        wrong("residual swapped", rollout_swapped_residual, breaks="residual 0.3 and 0.8"),
        wrong("last layer only", rollout_last_layer_only, breaks="rollout = A_L ... A_1"),
        wrong("scales the attentions in place", rollout_in_place, breaks="leaves its inputs unchanged"),
    ],
    "08.ablation_hook": [
        right("feature mask, bare tensor returned", hook_mask),
        right("reshape into heads, tuple from a list", hook_view),
        wrong("returns None", hook_returns_none, breaks="set to 0"),
        wrong("zeroes in place", hook_in_place, breaks="leaves its inputs unchanged"),
        wrong("off by one", hook_off_by_one, breaks="set to 0"),
        wrong("zeroes tokens", hook_tokens, breaks="set to 0"),
        wrong("first head only", hook_first_head_only, breaks="several heads"),
        wrong("d_head of the example", hook_fixed_width, breaks="several heads"),
    ],
}
