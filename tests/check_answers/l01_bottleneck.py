"""Answers to the checks of exercises/01_bottleneck.ipynb: right ones written differently from the solution,
wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from . import right, wrong


# --------------------------------------------------------------------------- exercise 1: final_state


def final_state_gather(outputs, lengths):
    """torch.gather along the sequence dimension, float64 returned."""
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])     # (B, 1, H)
    return outputs.double().gather(1, index).squeeze(1)


def final_state_lists(outputs, lengths):
    """A loop, nested lists returned."""
    return [outputs[b, int(n) - 1].tolist() for b, n in enumerate(lengths)]


def final_state_numpy(outputs, lengths):
    """NumPy fancy indexing, a NumPy array returned."""
    out = outputs.numpy()
    return out[np.arange(out.shape[0]), lengths.numpy() - 1]


def final_state_last_position(outputs, lengths):
    """Ignores the lengths: the state after the padding."""
    return outputs[:, -1]


def final_state_shared_length(outputs, lengths):
    """The longest length for every row."""
    return outputs[:, int(lengths.max()) - 1]


def final_state_batch_three(outputs, lengths):
    """The example's batch size, hard-coded."""
    return outputs[torch.arange(3), lengths[:3] - 1]


def final_state_hidden_four(outputs, lengths):
    """gather with the example's hidden size, hard-coded."""
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, 4)
    return outputs.gather(1, index).squeeze(1)


def final_state_in_place(outputs, lengths):
    """Turns the lengths into indices in place."""
    lengths -= 1
    return outputs[torch.arange(outputs.shape[0]), lengths]


def final_state_off_by_one(outputs, lengths):
    """lengths[b] - 2: the state before the last real token (clamped at 0)."""
    return outputs[torch.arange(outputs.shape[0]), (lengths - 2).clamp_min(0)]


def final_state_mean(outputs, lengths):
    """The mean over the real positions instead of the last one."""
    keep = torch.arange(outputs.shape[1])[None, :] < lengths[:, None]         # (B, S)
    return (outputs * keep[..., None]).sum(1) / lengths[:, None]


# --------------------------------------------------------------------------- exercise 2: accuracy_by_length


def _same_count(correct, lengths):
    if len(correct) != len(lengths):
        raise ValueError(f"{len(correct)} results, {len(lengths)} lengths")


def accuracy_numpy(correct, lengths):
    """np.unique and a boolean mean: NumPy keys and values."""
    _same_count(correct, lengths)
    c, n = np.asarray(correct, dtype=bool), np.asarray(lengths)
    return {k: c[n == k].mean() for k in np.unique(n)}


def accuracy_counters(correct, lengths):
    """Two Counters, keys in order of first appearance."""
    _same_count(correct, lengths)
    totals = Counter(int(n) for n in lengths)
    hits = Counter(int(n) for ok, n in zip(correct, lengths) if ok)
    return {n: hits[n] / totals[n] for n in totals}


def accuracy_tensor_values(correct, lengths):
    """Values as 0-d float32 tensors."""
    _same_count(correct, lengths)
    c = torch.as_tensor(np.asarray(correct, dtype=bool))
    n = torch.as_tensor(np.asarray(lengths))
    return {int(k): c[n == k].float().mean() for k in n.unique()}


def accuracy_overall_share(correct, lengths):
    """Divides by the number of all examples, not those of that length."""
    _same_count(correct, lengths)
    hits = Counter(int(n) for ok, n in zip(correct, lengths) if ok)
    return {int(n): hits[int(n)] / len(correct) for n in set(lengths)}


def accuracy_counts(correct, lengths):
    """The number of correct examples, not the share."""
    _same_count(correct, lengths)
    hits = Counter(int(n) for ok, n in zip(correct, lengths) if ok)
    return {int(n): float(hits[int(n)]) for n in set(lengths)}


def accuracy_example_lengths(correct, lengths):
    """Keys for the example's lengths 1..8 only."""
    _same_count(correct, lengths)
    out = {}
    for k in range(1, 9):
        picked = [bool(ok) for ok, n in zip(correct, lengths) if n == k]
        if picked:
            out[k] = sum(picked) / len(picked)
    return out


def accuracy_one_direction(correct, lengths):
    """Raises only when there are more results than lengths."""
    if len(correct) > len(lengths):
        raise ValueError(f"{len(correct)} results, {len(lengths)} lengths")
    return accuracy_counters(correct[:len(lengths)], lengths[:len(correct)])


def accuracy_vague_error(correct, lengths):
    """Raises ValueError without the counts."""
    if len(correct) != len(lengths):
        raise ValueError("correct and lengths differ in length")
    return accuracy_counters(correct, lengths)


def accuracy_sorts_in_place(correct, lengths):
    """Sorts the lengths in place, so later code (and the caller) sees them reordered."""
    _same_count(correct, lengths)
    pairs = sorted(zip(lengths, correct))
    lengths[:] = [n for n, _ in pairs]
    totals, hits = Counter(), Counter()
    for n, ok in pairs:
        totals[int(n)] += 1
        hits[int(n)] += bool(ok)
    return {n: hits[n] / totals[n] for n in totals}


def accuracy_list_count(correct, lengths):
    """list.count: works on lists, breaks on NumPy arrays."""
    _same_count(correct, lengths)
    out = {}
    for n in sorted(set(lengths)):
        picked = [ok for ok, m in zip(correct, lengths) if m == n]
        out[n] = picked.count(True) / lengths.count(n)
    return out


# --------------------------------------------------------------------------- exercise 3: reverse_source


def reverse_gather(src, lengths):
    """One gather: position p < n reads n - 1 - p, padding reads itself."""
    pos = torch.arange(src.shape[1]).expand_as(src)                           # (B, S)
    n = lengths[:, None]
    return src.gather(1, torch.where(pos < n, n - 1 - pos, pos))


def reverse_lists(src, lengths):
    """Python lists in, nested lists out."""
    rows = src.tolist()
    return [row[:n][::-1] + row[n:] for row, n in zip(rows, lengths.tolist())]


def reverse_numpy(src, lengths):
    """A NumPy array returned."""
    out = src.numpy().copy()
    for b, n in enumerate(lengths.tolist()):
        out[b, :n] = out[b, :n][::-1].copy()
    return out


def reverse_whole_row(src, lengths):
    """Flips the padding too."""
    return src.flip(1)


def reverse_in_place(src, lengths):
    """Reverses inside the caller's tensor and returns it."""
    for b, n in enumerate(lengths.tolist()):
        src[b, :n] = src[b, :n].flip(0).clone()
    return src


def reverse_batch_three(src, lengths):
    """The example's batch size, hard-coded."""
    out = src.clone()
    for b in range(3):
        n = int(lengths[b])
        out[b, :n] = src[b, :n].flip(0)
    return out


def reverse_one_pad_too(src, lengths):
    """Off by one: reverses lengths[b] + 1 positions, pulling a pad into the sentence."""
    out = src.clone()
    for b, n in enumerate(lengths.tolist()):
        out[b, :n + 1] = src[b, :n + 1].flip(0)
    return out


def reverse_longest(src, lengths):
    """Reverses the first max(lengths) positions of every row."""
    n = int(lengths.max())
    out = src.clone()
    out[:, :n] = src[:, :n].flip(1)
    return out


def reverse_batch_axis(src, lengths):
    """Flips along the batch dimension."""
    return src.flip(0)


def reverse_width_four(src, lengths):
    """The example's sequence length, hard-coded in the index."""
    pos = torch.arange(4).expand(src.shape[0], 4)
    n = lengths[:, None]
    return src.gather(1, torch.where(pos < n, n - 1 - pos, pos))


# --------------------------------------------------------------------------- exercise 4: path lengths


def _position(S, i, feed):
    return {"forward": i, "reversed": S - i + 1, "twice": S + i}[feed]


def paths_tuple(S, order, feed):
    """A tuple, from the closed form (S - i) + t for forward and twice."""
    out = []
    for t in range(1, S + 1):
        i = t if order == "aligned" else S - t + 1
        out.append(i - 1 + t if feed == "reversed" else S - i + t)
    return tuple(out)


def paths_tensor(S, order, feed):
    """An int64 tensor, vectorised."""
    t = torch.arange(1, S + 1)
    i = t if order == "aligned" else S - t + 1
    read = 2 * S if feed == "twice" else S
    position = {"forward": i, "reversed": S - i + 1, "twice": S + i}[feed]
    return read - position + t


def paths_numpy(S, order, feed):
    """A float64 NumPy array."""
    read = 2 * S if feed == "twice" else S
    return np.array([read - _position(S, t if order == "aligned" else S - t + 1, feed) + t
                     for t in range(1, S + 1)], dtype=np.float64)


def paths_first_copy(S, order, feed):
    """The doubled source counted from the first reading."""
    read = 2 * S if feed == "twice" else S
    where = {"forward": lambda i: i, "reversed": lambda i: S - i + 1, "twice": lambda i: i}[feed]
    return [read - where(t if order == "aligned" else S - t + 1) + t for t in range(1, S + 1)]


def paths_ignore_order(S, order, feed):
    """Every pair treated as aligned."""
    read = 2 * S if feed == "twice" else S
    return [read - _position(S, t, feed) + t for t in range(1, S + 1)]


def paths_read_once(S, order, feed):
    """R = S also for the doubled source."""
    return [S - _position(S, t if order == "aligned" else S - t + 1, feed) + t for t in range(1, S + 1)]


def paths_plus_one(S, order, feed):
    """Off by one: counts the step that reads the word too."""
    read = 2 * S if feed == "twice" else S
    return [read - _position(S, t if order == "aligned" else S - t + 1, feed) + t + 1 for t in range(1, S + 1)]


def paths_from_zero(S, order, feed):
    """t runs 0..S-1."""
    read = 2 * S if feed == "twice" else S
    return [read - _position(S, t + 1 if order == "aligned" else S - t, feed) + t for t in range(S)]


def paths_reversed_as_forward(S, order, feed):
    """The reversed source counted like the forward one."""
    read = 2 * S if feed == "twice" else S
    position = {"forward": lambda i: i, "reversed": lambda i: i, "twice": lambda i: S + i}[feed]
    return [read - position(t if order == "aligned" else S - t + 1) + t for t in range(1, S + 1)]


def _paths_right(S, order, feed):
    read = 2 * S if feed == "twice" else S
    return [read - _position(S, t if order == "aligned" else S - t + 1, feed) + t for t in range(1, S + 1)]


ANSWERS = {
    "01.final_state": [
        right("gather in float64", final_state_gather),
        right("nested lists", final_state_lists),
        right("NumPy indexing", final_state_numpy),
        wrong("the last position for every row", final_state_last_position, breaks="padded sequences"),
        wrong("the longest length for every row", final_state_shared_length, breaks="padded sequences"),
        wrong("batch size 3 hard-coded", final_state_batch_three, breaks="padded sequences"),
        wrong("hidden size 4 hard-coded", final_state_hidden_four, breaks="padded sequences"),
        wrong("lengths decremented in place", final_state_in_place, breaks="leaves outputs and lengths unchanged"),
        wrong("one position too early", final_state_off_by_one, breaks="full-length sequences"),
        wrong("mean over the real positions", final_state_mean, breaks="full-length sequences"),
    ],
    "01.accuracy_by_length": [
        right("NumPy unique and mean", accuracy_numpy),
        right("Counters", accuracy_counters),
        right("0-d float32 tensor values", accuracy_tensor_values),
        wrong("share of all examples", accuracy_overall_share, breaks="share of correct examples of that length"),
        wrong("counts, not shares", accuracy_counts, breaks="share of correct examples of that length"),
        wrong("only the example's lengths 1..8", accuracy_example_lengths, breaks="one entry per length that occurs"),
        wrong("raises for more results only", accuracy_one_direction, breaks="mismatched inputs raise"),
        wrong("error without the counts", accuracy_vague_error, breaks="mismatched inputs raise"),
        wrong("sorts the lengths in place", accuracy_sorts_in_place, breaks="leaves correct and lengths unchanged"),
        wrong("list.count, not for NumPy arrays", accuracy_list_count,
              breaks="share of correct examples of that length"),
    ],
    "01.reverse_source": [
        right("one gather", reverse_gather),
        right("nested lists", reverse_lists),
        right("NumPy array", reverse_numpy),
        wrong("padding flipped too", reverse_whole_row, breaks="padding stays at the end"),
        wrong("reversed in place", reverse_in_place, breaks="left unchanged"),
        wrong("batch size 3 hard-coded", reverse_batch_three, breaks="padding stays at the end"),
        wrong("one pad pulled in", reverse_one_pad_too, breaks="padding stays at the end"),
        wrong("the longest length for every row", reverse_longest, breaks="padding stays at the end"),
        wrong("flipped along the batch", reverse_batch_axis, breaks="a full-length row is reversed"),
        wrong("sequence length 4 hard-coded", reverse_width_four, breaks="padding stays at the end"),
    ],
    "01.path_lengths": [
        right("closed form in a tuple, np.bool_ verdict", paths_tuple, lambda: np.bool_(False)),
        right("int64 tensor", paths_tensor, lambda: False),
        right("float64 NumPy array", paths_numpy, lambda: 1 < 0),
        wrong("doubled source from the first copy", paths_first_copy, lambda: True, breaks="the doubled source"),
        wrong("order ignored", paths_ignore_order, lambda: False, breaks="forward and reversed sources"),
        wrong("R = S for the doubled source", paths_read_once, lambda: False, breaks="the doubled source"),
        wrong("one step too many", paths_plus_one, lambda: False, breaks="forward and reversed sources"),
        wrong("t from 0", paths_from_zero, lambda: False, breaks="forward and reversed sources"),
        wrong("reversed counted as forward", paths_reversed_as_forward, lambda: False, breaks="forward and reversed"),
        wrong("verdict True", _paths_right, lambda: True, breaks="the prediction"),
        wrong("verdict as a string", _paths_right, lambda: "False", breaks="the prediction"),
    ],
}
