"""Answers to the checks of exercises/04_global_local_hard.ipynb (see __init__.py)."""

from __future__ import annotations

import numpy as np
import torch

from check_answers import right, wrong
from course_utils.models import masked_softmax

# ----------------------------------------------------------------------------- 04.luong_scores


def luong_einsum_numpy(h, keys, kind, W_a=None, v_a=None):
    h, keys = h.double(), keys.double()
    if kind == "dot":
        return torch.einsum("bh,bsh->bs", h, keys).numpy()
    if kind == "general":
        return torch.einsum("bh,hk,bsk->bs", h, W_a.double(), keys).numpy()
    pairs = torch.cat([h.unsqueeze(1).expand(-1, keys.shape[1], -1), keys], dim=-1)
    return (torch.tanh(pairs @ W_a.double()) @ v_a.double()).numpy()


def luong_loops_lists(h, keys, kind, W_a=None, v_a=None):
    """Another way: one sentence and one source word at a time, as nested lists."""
    out = []
    for b in range(keys.shape[0]):
        row = []
        for s in range(keys.shape[1]):
            k = keys[b, s]
            if kind == "dot":
                row.append(float(h[b] @ k))
            elif kind == "general":
                row.append(float(h[b] @ W_a @ k))
            else:
                row.append(float(torch.tanh(torch.cat([h[b], k]) @ W_a) @ v_a))
        out.append(row)
    return out


def _solution(h, keys, kind, W_a=None, v_a=None):
    if kind == "dot":
        return (keys @ h.unsqueeze(-1)).squeeze(-1)
    if kind == "general":
        return (keys @ (h @ W_a).unsqueeze(-1)).squeeze(-1)
    pairs = torch.cat([h.unsqueeze(1).expand(-1, keys.shape[1], -1), keys], dim=-1)
    return torch.tanh(pairs @ W_a) @ v_a


def luong_general_transposed(h, keys, kind, W_a=None, v_a=None):
    return _solution(h, keys, kind, W_a.T if kind == "general" else W_a, v_a)


def luong_concat_reversed(h, keys, kind, W_a=None, v_a=None):
    if kind != "concat":
        return _solution(h, keys, kind, W_a, v_a)
    pairs = torch.cat([keys, h.unsqueeze(1).expand(-1, keys.shape[1], -1)], dim=-1)
    return torch.tanh(pairs @ W_a) @ v_a


def luong_concat_no_tanh(h, keys, kind, W_a=None, v_a=None):
    if kind != "concat":
        return _solution(h, keys, kind, W_a, v_a)
    pairs = torch.cat([h.unsqueeze(1).expand(-1, keys.shape[1], -1), keys], dim=-1)
    return (pairs @ W_a) @ v_a


def luong_dot_squeezes_all(h, keys, kind, W_a=None, v_a=None):
    if kind == "dot":
        return (keys @ h.unsqueeze(-1)).squeeze()                          # drops S = 1 (or B = 1) too
    return _solution(h, keys, kind, W_a, v_a)


def luong_general_batch_mixed(h, keys, kind, W_a=None, v_a=None):
    if kind == "general":
        return ((h @ W_a) @ keys.transpose(1, 2))[0]                       # every h against sentence 0's keys
    return _solution(h, keys, kind, W_a, v_a)


def luong_unsqueezes_h_in_place(h, keys, kind, W_a=None, v_a=None):
    if kind == "dot":
        h.unsqueeze_(1)                                                    # changes the caller's tensor
        return (keys * h).sum(-1)
    return _solution(h, keys, kind, W_a, v_a)


def luong_dot_scaled(h, keys, kind, W_a=None, v_a=None):
    if kind == "dot":
        return _solution(h, keys, kind) / keys.shape[-1] ** 0.5            # the Transformer's scaling, not Luong's
    return _solution(h, keys, kind, W_a, v_a)


# ----------------------------------------------------------------------------- 04.local_m_mask


def local_m_numpy(T, src_len, S, D):
    t = np.arange(T).reshape(1, T, 1)
    s = np.arange(S).reshape(1, 1, S)
    return (np.abs(s - t) <= D) & (s < src_len.numpy().reshape(-1, 1, 1))


def local_m_band_lists(T, src_len, S, D):
    """Another way: a band of ones (triu/tril), then each sentence's columns cut."""
    band = torch.ones(T, S).triu(-D).tril(D).bool()
    return [[[bool(band[t, s]) and s < int(n) for s in range(S)] for t in range(T)] for n in src_len]


def local_m_off_by_one(T, src_len, S, D):
    t, s = torch.arange(T).view(1, T, 1), torch.arange(S).view(1, 1, S)
    return ((s - t).abs() < D) & (s < src_len.view(-1, 1, 1))


def local_m_no_padding(T, src_len, S, D):
    t, s = torch.arange(T).view(1, T, 1), torch.arange(S).view(1, 1, S)
    return ((s - t).abs() <= D).expand(len(src_len), T, S)


def local_m_length_off_by_one(T, src_len, S, D):
    t, s = torch.arange(T).view(1, T, 1), torch.arange(S).view(1, 1, S)
    return ((s - t).abs() <= D) & (s <= src_len.view(-1, 1, 1))


def local_m_S_from_data(T, src_len, S, D):
    S = int(src_len.max())                                                 # the longest sentence, not the argument
    t, s = torch.arange(T).view(1, T, 1), torch.arange(S).view(1, 1, S)
    return ((s - t).abs() <= D) & (s < src_len.view(-1, 1, 1))


def local_m_one_sided(T, src_len, S, D):
    t, s = torch.arange(T).view(1, T, 1), torch.arange(S).view(1, 1, S)
    return (s - t <= D) & (s - t >= 0) & (s < src_len.view(-1, 1, 1))      # only t .. t + D


def local_m_ints(T, src_len, S, D):
    t, s = torch.arange(T).view(1, T, 1), torch.arange(S).view(1, 1, S)
    return (((s - t).abs() <= D) & (s < src_len.view(-1, 1, 1))).long()


def local_m_transposed(T, src_len, S, D):
    t, s = torch.arange(T).view(1, 1, T), torch.arange(S).view(1, S, 1)
    return ((s - t).abs() <= D) & (s < src_len.view(-1, 1, 1))             # (B, S, T)


def local_m_reshapes_lengths_in_place(T, src_len, S, D):
    src_len.unsqueeze_(-1).unsqueeze_(-1)                                   # changes the caller's tensor
    t, s = torch.arange(T).view(1, T, 1), torch.arange(S).view(1, 1, S)
    return ((s - t).abs() <= D) & (s < src_len)


# ----------------------------------------------------------------------------- 04.local_p_attention


def _centre(h, src_len, W_p, v_p):
    return src_len.to(h.dtype) * torch.sigmoid(torch.tanh(h @ W_p) @ v_p)


def _local_p(h, keys, src_len, W_p, v_p, W_a, D, p=None, centre=None, in_sentence=True, sigma=None,
             softmax=masked_softmax, gaussian=True):
    p = _centre(h, src_len, W_p, v_p) if p is None else p
    c = p.round() if centre is None else centre(p)
    s = torch.arange(keys.shape[1]).unsqueeze(0)
    window = (s - c.unsqueeze(1)).abs() <= D
    if in_sentence:
        window = window & (s < src_len.unsqueeze(1))
    scores = (keys @ (h @ W_a).unsqueeze(-1)).squeeze(-1)
    sigma = D / 2 if sigma is None else sigma
    g = torch.exp(-(s - p.unsqueeze(1)) ** 2 / (2 * sigma ** 2)) if gaussian else 1.0
    weights = softmax(scores, window) * g
    return (weights.unsqueeze(1) @ keys).squeeze(1), weights, p


def local_p_float64_numpy(h, keys, src_len, W_p, v_p, W_a, D):
    out = _local_p(*(x.double() for x in (h, keys)), src_len, *(x.double() for x in (W_p, v_p, W_a)), D)
    return tuple(x.numpy() for x in out)


def _logsumexp_softmax(scores, mask):
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.exp(scores - torch.logsumexp(scores, dim=-1, keepdim=True)).nan_to_num(0.0)


def local_p_loops_list(h, keys, src_len, W_p, v_p, W_a, D):
    """Another way: logsumexp for the window's softmax, returned as a list."""
    return list(_local_p(h, keys, src_len, W_p, v_p, W_a, D, softmax=_logsumexp_softmax))


def _naive_softmax(scores, mask):
    e = torch.exp(scores) * mask
    return e / e.sum(-1, keepdim=True)


def _global_softmax(scores, mask):
    e = torch.exp(scores - scores.max()) * mask
    return e / e.sum(-1, keepdim=True)


def local_p_not_scaled(h, keys, src_len, W_p, v_p, W_a, D):
    p = torch.sigmoid(torch.tanh(h @ W_p) @ v_p)                            # in (0, 1): no S_b
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, p=p)


def local_p_padded_length(h, keys, src_len, W_p, v_p, W_a, D):
    p = keys.shape[1] * torch.sigmoid(torch.tanh(h @ W_p) @ v_p)            # S, not S_b
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, p=p)


def local_p_W_p_transposed(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p.T, v_p, W_a, D)


def local_p_no_gaussian(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, gaussian=False)


def local_p_gaussian_in_scores(h, keys, src_len, W_p, v_p, W_a, D):
    p = _centre(h, src_len, W_p, v_p)
    s = torch.arange(keys.shape[1]).unsqueeze(0)
    window = ((s - p.round().unsqueeze(1)).abs() <= D) & (s < src_len.unsqueeze(1))
    scores = (keys @ (h @ W_a).unsqueeze(-1)).squeeze(-1) - (s - p.unsqueeze(1)) ** 2 / (2 * (D / 2) ** 2)
    weights = masked_softmax(scores, window)
    return (weights.unsqueeze(1) @ keys).squeeze(1), weights, p


def local_p_naive_exp(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, softmax=_naive_softmax)


def local_p_global_shift(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, softmax=_global_softmax)


def local_p_global_shift_float64(h, keys, src_len, W_p, v_p, W_a, D):
    h, keys, W_p, v_p, W_a = (x.double() for x in (h, keys, W_p, v_p, W_a))
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, softmax=_global_softmax)


def local_p_past_the_end(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, in_sentence=False)


def local_p_floor(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, centre=torch.floor)


def local_p_unrounded_window(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, centre=lambda p: p)


def local_p_D_two(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p, v_p, W_a, 2)                     # the lesson's D, not the argument


def local_p_sigma_D(h, keys, src_len, W_p, v_p, W_a, D):
    return _local_p(h, keys, src_len, W_p, v_p, W_a, D, sigma=D)


def local_p_context_unweighted(h, keys, src_len, W_p, v_p, W_a, D):
    context, weights, p = _local_p(h, keys, src_len, W_p, v_p, W_a, D)
    window = weights > 0
    context = (window.float().unsqueeze(1) @ keys).squeeze(1) / window.sum(1, keepdim=True)   # a plain average
    return context, weights, p


def local_p_zeroes_keys_in_place(h, keys, src_len, W_p, v_p, W_a, D):
    out = _local_p(h, keys, src_len, W_p, v_p, W_a, D)
    keys.masked_fill_((out[1] == 0).unsqueeze(-1), 0.0)                     # "clean" the keys outside the window
    return out


# ----------------------------------------------------------------------------- 04.reinforce_loss


def reinforce_float64(log_prob_chosen, reward, baseline):
    advantage = reward.detach().double() - float(baseline)
    return -(advantage * log_prob_chosen.double()).mean()


def reinforce_dot(log_prob_chosen, reward, baseline):
    """Another way: a dot product under no_grad for the advantage."""
    with torch.no_grad():
        advantage = reward - baseline
    return -torch.dot(advantage, log_prob_chosen) / log_prob_chosen.numel()


def reinforce_no_baseline(log_prob_chosen, reward, baseline):
    return -(reward.detach() * log_prob_chosen).mean()


def reinforce_wrong_sign(log_prob_chosen, reward, baseline):
    return ((reward - baseline).detach() * log_prob_chosen).mean()


def reinforce_sum(log_prob_chosen, reward, baseline):
    return -((reward - baseline).detach() * log_prob_chosen).sum()


def reinforce_reward_not_detached(log_prob_chosen, reward, baseline):
    return -((reward - baseline) * log_prob_chosen).mean()


def reinforce_batch_of_four(log_prob_chosen, reward, baseline):
    return -((reward - baseline).detach() * log_prob_chosen).sum() / 4      # the example's batch size


def reinforce_item(log_prob_chosen, reward, baseline):
    return -((reward - baseline).detach() * log_prob_chosen).mean().item()  # a float: no gradient


def reinforce_log_prob_detached(log_prob_chosen, reward, baseline):
    return -((reward - baseline).detach() * log_prob_chosen.detach()).mean()


def reinforce_not_reduced(log_prob_chosen, reward, baseline):
    return -((reward - baseline).detach() * log_prob_chosen)                # (B,): no mean


# ----------------------------------------------------------------------------- 04.mirror_reach


def predicted_two():
    return 2


def predicted_two_float():
    return 2.0


def predicted_three():
    return 3


def mirror_reach(S, D):
    t = torch.arange(S)
    return ((S - 1 - t) - t).abs() <= D


def mirror_reach_list(S, D):
    return [abs((S - 1 - t) - t) <= D for t in range(S)]


def mirror_reach_numpy(S, D):
    t = np.arange(S)
    return np.abs(S - 1 - 2 * t) <= D


def full_reach(S):
    return S - 1


def full_reach_by_search(S):
    """Another way: the smallest D whose reach is complete, found by trying."""
    D = 0
    while not all(mirror_reach_list(S, D)):
        D += 1
    return np.int64(D)


def mirror_reach_strict(S, D):
    t = torch.arange(S)
    return ((S - 1 - t) - t).abs() < D


def mirror_reach_ten(S, D):
    t = torch.arange(10)                                                    # S = 10 from the example
    return ((S - 1 - t) - t).abs() <= D


def mirror_reach_diagonal(S, D):
    return torch.ones(S, dtype=torch.bool)                                  # target t reads source t: always inside


def mirror_reach_from_S(S, D):
    t = torch.arange(S)
    return ((S - t) - t).abs() <= D                                         # source word S - t


def full_reach_half(S):
    return S // 2


def full_reach_S(S):
    return S


ANSWERS = {
    "04.luong_scores": [
        right("einsum in float64, NumPy out", luong_einsum_numpy),
        right("loops, nested lists", luong_loops_lists),
        wrong("general with W_a transposed", luong_general_transposed, breaks="general"),
        wrong("concat as [hbar_s; h_t]", luong_concat_reversed, breaks="concat"),
        wrong("concat without tanh", luong_concat_no_tanh, breaks="concat"),
        wrong("dot squeezes every size-1 dimension", luong_dot_squeezes_all, breaks="dot"),
        wrong("general mixes sentences", luong_general_batch_mixed, breaks="general"),
        wrong("unsqueezes h in place", luong_unsqueezes_h_in_place, breaks="inputs left unchanged"),
        wrong("dot scaled by sqrt(H)", luong_dot_scaled, breaks="dot"),
    ],
    "04.local_m_mask": [
        right("NumPy", local_m_numpy),
        right("a band from triu/tril, nested lists", local_m_band_lists),
        wrong("|s - t| < D", local_m_off_by_one, breaks="the window"),
        wrong("padding not masked", local_m_no_padding, breaks="past the sentence's end"),
        wrong("s <= src_len", local_m_length_off_by_one, breaks="past the sentence's end"),
        wrong("S taken from the lengths", local_m_S_from_data, breaks="two sizes"),
        wrong("only t .. t + D", local_m_one_sided, breaks="the window"),
        wrong("an int mask", local_m_ints, breaks="bool mask"),
        wrong("(B, S, T)", local_m_transposed, breaks="bool mask of shape"),
        wrong("reshapes src_len in place", local_m_reshapes_lengths_in_place, breaks="inputs left unchanged"),
    ],
    "04.local_p_attention": [
        right("float64 inside, NumPy out", local_p_float64_numpy),
        right("logsumexp softmax, a list", local_p_loops_list),
        wrong("p not scaled by the length", local_p_not_scaled, breaks="predicted centre"),
        wrong("p scaled by the padded length", local_p_padded_length, breaks="predicted centre"),
        wrong("W_p transposed", local_p_W_p_transposed, breaks="predicted centre"),
        wrong("no Gaussian", local_p_no_gaussian, breaks="times the Gaussian"),
        wrong("Gaussian added to the scores", local_p_gaussian_in_scores, breaks="times the Gaussian"),
        wrong("naive exp", local_p_naive_exp, breaks="large, mixed-scale scores"),
        wrong("one maximum for the whole batch", local_p_global_shift, breaks="large, mixed-scale scores"),
        wrong("one maximum for the whole batch, in float64", local_p_global_shift_float64,
              breaks="large, mixed-scale scores"),
        wrong("window runs past the sentence's end", local_p_past_the_end, breaks="clipped at both ends"),
        wrong("window centred on floor(p_t)", local_p_floor, breaks="weight on the window round(p_t)"),
        wrong("window centred on p_t, not rounded", local_p_unrounded_window, breaks="weight on the window round(p_t)"),
        wrong("D = 2 hard-coded", local_p_D_two, breaks="weight on the window round(p_t)"),
        wrong("sigma = D", local_p_sigma_D, breaks="times the Gaussian"),
        wrong("context is a plain average of the window", local_p_context_unweighted, breaks="the context"),
        wrong("zeroes keys outside the window in place", local_p_zeroes_keys_in_place, breaks="inputs left unchanged"),
    ],
    "04.reinforce_loss": [
        right("float64", reinforce_float64),
        right("dot product, advantage under no_grad", reinforce_dot),
        wrong("no baseline", reinforce_no_baseline, breaks="the value"),
        wrong("wrong sign", reinforce_wrong_sign, breaks="the value"),
        wrong("sum over the batch", reinforce_sum, breaks="the value"),
        wrong("reward not detached", reinforce_reward_not_detached, breaks="no gradient flows into it"),
        wrong("divides by the example's batch of 4", reinforce_batch_of_four, breaks="the value"),
        wrong("returns .item()", reinforce_item, breaks="scalar tensor"),
        wrong("log_prob detached", reinforce_log_prob_detached, breaks="gradient reaches log pi(i)"),
        wrong("not reduced", reinforce_not_reduced, breaks="scalar tensor"),
    ],
    "04.mirror_reach": [
        right("tensor, int prediction", mirror_reach, predicted_two, full_reach),
        right("lists and NumPy, a float prediction, a search", mirror_reach_list, predicted_two_float,
              full_reach_by_search),
        right("NumPy reach", mirror_reach_numpy, predicted_two, full_reach),
        wrong("|9 - 2t| < D", mirror_reach_strict, predicted_two, full_reach, breaks="the reach"),
        wrong("S = 10 hard-coded", mirror_reach_ten, predicted_two, full_reach, breaks="the reach"),
        wrong("the diagonal alignment", mirror_reach_diagonal, predicted_two, full_reach, breaks="the reach"),
        wrong("source word S - t", mirror_reach_from_S, predicted_two, full_reach, breaks="the reach"),
        wrong("predicts 3", mirror_reach, predicted_three, full_reach, breaks="your prediction"),
        wrong("smallest full reach S // 2", mirror_reach, predicted_two, full_reach_half,
              breaks="smallest half-width"),
        wrong("smallest full reach S", mirror_reach, predicted_two, full_reach_S, breaks="smallest half-width"),
    ],
}
