"""Answers to the checks of exercises/07_attention_at_work.ipynb: right ones written differently from the solution,
wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

import numpy as np
import torch

from . import right, wrong

# --------------------------------------------------------------------------- exercise 1: beam step, best pick


def beam_step_numpy(scores, log_probs, k):
    """float64 NumPy, argsort; lists returned."""
    s, lp = np.asarray(scores, dtype=np.float64), np.asarray(log_probs, dtype=np.float64)
    B, K, V = lp.shape
    flat = (s[:, :, None] + lp).reshape(B, K * V)
    order = np.argsort(-flat, axis=-1, kind="stable")[:, :k]
    return np.take_along_axis(flat, order, -1).tolist(), (order // V).tolist(), (order % V).tolist()


def beam_step_sorted(scores, log_probs, k):
    """torch.sort on every candidate, a list instead of a tuple."""
    B, K, V = log_probs.shape
    flat = (scores.double()[..., None] + log_probs.double()).flatten(1)
    top, index = flat.sort(dim=-1, descending=True)
    index = index[:, :k]
    return [top[:, :k], torch.div(index, V, rounding_mode="floor"), torch.remainder(index, V)]


def beam_step_solution(scores, log_probs, k):
    B, K, V = log_probs.shape
    top, index = (scores.unsqueeze(-1) + log_probs).reshape(B, K * V).topk(k, dim=-1)
    return top, index // V, index % V


def beam_step_no_scores(scores, log_probs, k):
    B, K, V = log_probs.shape
    top, index = log_probs.reshape(B, K * V).topk(k, dim=-1)            # the beams' own scores are forgotten
    return top, index // V, index % V


def beam_step_swapped(scores, log_probs, k):
    top, beam, token = beam_step_solution(scores, log_probs, k)
    return top, token, beam


def beam_step_wrong_divmod(scores, log_probs, k):
    B, K, V = log_probs.shape
    top, index = (scores.unsqueeze(-1) + log_probs).reshape(B, K * V).topk(k, dim=-1)
    return top, index % K, index // K                                   # divides by K instead of V


def beam_step_k_is_K(scores, log_probs, k):
    B, K, V = log_probs.shape
    top, index = (scores.unsqueeze(-1) + log_probs).reshape(B, K * V).topk(K, dim=-1)   # k taken as the beam count
    return top, index // V, index % V


def beam_step_per_beam(scores, log_probs, k):
    """The best token of each beam, then the best beams: misses a beam's second-best token."""
    B, K, V = log_probs.shape
    best, token = (scores.unsqueeze(-1) + log_probs).max(-1)            # (B, K)
    top, beam = best.topk(min(k, K), dim=-1)
    return top, beam, token.gather(1, beam)


def beam_step_in_place(scores, log_probs, k):
    B, K, V = log_probs.shape
    log_probs += scores.unsqueeze(-1)                                   # changes the caller's tensor
    top, index = log_probs.reshape(B, K * V).topk(k, dim=-1)
    return top, index // V, index % V


def pick_numpy(log_prob, length, alpha):
    lp, n = np.asarray(log_prob, dtype=np.float64), np.asarray(length, dtype=np.float64)
    return np.argmax(lp / n ** alpha, axis=-1)


def pick_list(log_prob, length, alpha):
    scores = log_prob.double() * length.double().pow(-alpha)
    return [int(i) for i in scores.argmax(-1)]


def pick_solution(log_prob, length, alpha):
    return (log_prob / length ** alpha).argmax(-1)


def pick_no_alpha(log_prob, length, alpha):
    return (log_prob / length).argmax(-1)


def pick_no_length(log_prob, length, alpha):
    return log_prob.argmax(-1)


def pick_argmin(log_prob, length, alpha):
    return (log_prob / length ** alpha).argmin(-1)


def pick_times_length(log_prob, length, alpha):
    return (log_prob * length ** alpha).argmax(-1)


def pick_first_row(log_prob, length, alpha):
    return (log_prob / length ** alpha)[:2].argmax(-1)                  # the example's two sentences


# --------------------------------------------------------------------------- exercise 2: supporting facts


def support_numpy(attention, supporting):
    a, s = np.asarray(attention, dtype=np.float64), np.asarray(supporting, dtype=bool)
    mass = np.where(s, a, 0.0).sum(-1).mean()
    hit = s[np.arange(len(a)), a.argmax(-1)].mean()
    return np.float64(mass), np.float64(hit)


def support_loop(attention, supporting):
    """Python loops, a list returned, tensors for numbers."""
    masses, hits = [], []
    for a, s in zip(attention.tolist(), supporting.tolist()):
        masses.append(sum(w for w, f in zip(a, s) if f))
        hits.append(float(s[max(range(len(a)), key=a.__getitem__)]))
    return [torch.tensor(sum(masses) / len(masses)), torch.tensor(sum(hits) / len(hits))]


def support_solution(attention, supporting):
    mass = (attention * supporting).sum(-1).mean()
    hit = supporting.gather(1, attention.argmax(-1, keepdim=True)).float().mean()
    return float(mass), float(hit)


def support_mean_over_entries(attention, supporting):
    mass = (attention * supporting).mean()                             # over stories AND sentences
    hit = supporting.gather(1, attention.argmax(-1, keepdim=True)).float().mean()
    return float(mass), float(hit)


def support_mean_over_facts(attention, supporting):
    mass = ((attention * supporting).sum(-1) / supporting.sum(-1)).mean()   # averaged over the facts
    hit = supporting.gather(1, attention.argmax(-1, keepdim=True)).float().mean()
    return float(mass), float(hit)


def support_first_fact(attention, supporting):
    mass = (attention * supporting).sum(-1).mean()
    first = supporting.float().argmax(-1)                               # only the first supporting fact counts
    hit = (attention.argmax(-1) == first).float().mean()
    return float(mass), float(hit)


def support_wrong_axis(attention, supporting):
    mass = (attention * supporting).sum(-1).mean()
    peaks = attention.argmax(0)                                         # over the stories
    hit = supporting.float()[peaks.clamp(max=supporting.shape[0] - 1), torch.arange(supporting.shape[1])].mean()
    return float(mass), float(hit)


def support_in_place(attention, supporting):
    attention *= supporting                                             # changes the caller's attention
    mass = attention.sum(-1).mean()
    hit = (attention.max(-1).values > 0).float().mean()
    return float(mass), float(hit)


def support_first_six(attention, supporting):
    return support_solution(attention[:6], supporting[:6])             # the example's six stories


# --------------------------------------------------------------------------- exercise 3: copy distribution


def copy_index_add(p_vocab, attention, src_ext, p_gen, n_extended):
    """float64, index_add_ row by row, NumPy returned."""
    B, V = p_vocab.shape
    out = torch.zeros(B, V + n_extended, dtype=torch.float64)
    g = p_gen.double().reshape(B, 1)
    out[:, :V] = g * p_vocab.double()
    for b in range(B):
        out[b].index_add_(0, src_ext[b], (1 - g[b]) * attention[b].double())
    return out.numpy()


def copy_one_hot(p_vocab, attention, src_ext, p_gen, n_extended):
    """A one-hot matrix over the extended vocabulary: attention @ one_hot."""
    V = p_vocab.shape[1]
    one_hot = torch.nn.functional.one_hot(src_ext, V + n_extended).to(attention.dtype)    # (B, S, V + n)
    copy = (attention.unsqueeze(1) @ one_hot).squeeze(1)
    vocab = torch.nn.functional.pad(p_vocab, (0, n_extended))
    return p_gen * vocab + (1 - p_gen) * copy


def copy_solution(p_vocab, attention, src_ext, p_gen, n_extended):
    B, V = p_vocab.shape
    mixed = torch.zeros(B, V + n_extended, dtype=p_vocab.dtype)
    mixed[:, :V] = p_gen * p_vocab
    return mixed.scatter_add(1, src_ext, (1 - p_gen) * attention)


def copy_no_gate(p_vocab, attention, src_ext, p_gen, n_extended):
    B, V = p_vocab.shape
    mixed = torch.zeros(B, V + n_extended, dtype=p_vocab.dtype)
    mixed[:, :V] = p_vocab
    return mixed.scatter_add(1, src_ext, attention) / 2


def copy_scatter(p_vocab, attention, src_ext, p_gen, n_extended):
    B, V = p_vocab.shape
    mixed = torch.zeros(B, V + n_extended, dtype=p_vocab.dtype)
    copy = torch.zeros_like(mixed).scatter(1, src_ext, (1 - p_gen) * attention)    # repeated words: one write wins
    mixed[:, :V] = p_gen * p_vocab
    return mixed + copy


def copy_no_extension(p_vocab, attention, src_ext, p_gen, n_extended):
    V = p_vocab.shape[1]
    keep = src_ext < V                                                  # unknown words dropped
    return (p_gen * p_vocab).scatter_add(1, src_ext.clamp(max=V - 1), (1 - p_gen) * attention * keep)


def copy_fixed_extension(p_vocab, attention, src_ext, p_gen, n_extended):
    B, V = p_vocab.shape
    mixed = torch.zeros(B, V + 2, dtype=p_vocab.dtype)                  # the example's n_extended
    mixed[:, :V] = p_gen * p_vocab
    return mixed.scatter_add(1, src_ext, (1 - p_gen) * attention)


def copy_gates_swapped(p_vocab, attention, src_ext, p_gen, n_extended):
    return copy_solution(p_vocab, attention, src_ext, 1 - p_gen, n_extended)


def copy_in_place(p_vocab, attention, src_ext, p_gen, n_extended):
    p_vocab *= p_gen                                                    # changes the caller's p_vocab
    attention *= 1 - p_gen
    mixed = torch.nn.functional.pad(p_vocab, (0, n_extended))
    return mixed.scatter_add(1, src_ext, attention)


ANSWERS = {
    "07.beam_step": [
        right("NumPy argsort, lists", beam_step_numpy, pick_numpy),
        right("sort, a list of three", beam_step_sorted, pick_list),
        wrong("ranks by the token log-probability alone", beam_step_no_scores, pick_solution,
              breaks="cumulative scores, best first"),
        wrong("beam and token ids swapped", beam_step_swapped, pick_solution, breaks="says which beam"),
        wrong("divides the flat index by K", beam_step_wrong_divmod, pick_solution, breaks="says which beam"),
        wrong("k taken as the beam count", beam_step_k_is_K, pick_solution, breaks="other batch, beam"),
        wrong("one best token per beam", beam_step_per_beam, pick_solution, breaks="cumulative scores, best first"),
        wrong("adds into log_probs in place", beam_step_in_place, pick_solution, breaks="leaves its inputs unchanged"),
        wrong("alpha ignored (always the mean)", beam_step_solution, pick_no_alpha, breaks="pick_best: the highest"),
        wrong("length ignored", beam_step_solution, pick_no_length, breaks="pick_best: the highest"),
        wrong("argmin", beam_step_solution, pick_argmin, breaks="pick_best: the highest"),
        wrong("multiplies by length ** alpha", beam_step_solution, pick_times_length, breaks="pick_best: the highest"),
        wrong("the example's batch size", beam_step_solution, pick_first_row, breaks="pick_best on other numbers"),
    ],
    "07.supporting_facts": [
        right("NumPy, NumPy scalars", support_numpy),
        right("loops, a list of tensors", support_loop),
        wrong("mass averaged over every entry", support_mean_over_entries, breaks="mass: the mean attention"),
        wrong("mass averaged over the facts", support_mean_over_facts, breaks="two supporting facts"),
        wrong("a hit only on the first fact", support_first_fact, breaks="two supporting facts"),
        wrong("argmax over the stories", support_wrong_axis, breaks="hit: the share"),
        wrong("multiplies attention in place", support_in_place, breaks="leaves its inputs unchanged"),
        wrong("the example's six stories", support_first_six, breaks="two supporting facts"),
    ],
    "07.copy_distribution": [
        right("index_add_ in float64, NumPy", copy_index_add),
        right("one-hot matrix product", copy_one_hot),
        wrong("no gate", copy_no_gate, breaks="P(w) = p_gen P_vocab(w)"),
        wrong("scatter instead of scatter_add", copy_scatter, breaks="several source positions"),
        wrong("no extended vocabulary", copy_no_extension, breaks="(B, V + n_extended)"),
        wrong("n_extended from the example", copy_fixed_extension, breaks="other sizes"),
        wrong("p_gen and 1 - p_gen swapped", copy_gates_swapped, breaks="P(w) = p_gen P_vocab(w)"),
        wrong("scales p_vocab in place", copy_in_place, breaks="leaves its inputs unchanged"),
    ],
}
