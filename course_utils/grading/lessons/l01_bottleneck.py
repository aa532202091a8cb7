"""Checks for exercises/01_bottleneck.ipynb: the context vector, accuracy by length, reversed source."""

from __future__ import annotations

import math

import torch

from ..core import register

SET = "01_bottleneck"


@register("01.final_state", title="the context vector, padding handled", exercise_set=SET, points=4)
def check_final_state(t, final_state):
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(3, 5, 4, generator=g)  # (B, S, H)
    full = torch.tensor([5, 5, 5])
    got = t.call(final_state, outputs, full)
    t.require(isinstance(got, torch.Tensor) and tuple(got.shape) == (3, 4), 1, "returns a (batch, hidden) tensor",
              f"outputs of shape (3, 5, 4) should give shape (3, 4), got "
              f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}")
    t.expect(torch.allclose(got, outputs[:, -1]), 1, "full-length sequences: the state after the last token",
             "when every length is 5, row b should be outputs[b, 4]")
    lengths = torch.tensor([5, 2, 1])
    got = t.call(final_state, outputs, lengths)
    want = torch.stack([outputs[0, 4], outputs[1, 1], outputs[2, 0]])
    if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, outputs[:, -1]):
        hint = "you returned outputs[:, -1] for every row; padded rows need the state at index length - 1"
    else:
        hint = "with lengths [5, 2, 1], rows should be outputs[0, 4], outputs[1, 1], outputs[2, 0]"
    t.expect(isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want), 2,
             "padded sequences: the state at each sequence's last real token", hint)


@register("01.accuracy_by_length", title="exact-match accuracy by input length", exercise_set=SET, points=4)
def check_accuracy_by_length(t, accuracy_by_length):
    correct = [True, False, True, True, False, False]
    lengths = [3, 3, 5, 3, 5, 8]
    got = t.call(accuracy_by_length, correct, lengths)
    t.require(isinstance(got, dict), 1, "returns a dict {length: accuracy}", f"got {type(got).__name__}")
    t.expect(sorted(got) == [3, 5, 8], 1, "one entry per length that occurs",
             f"lengths [3, 3, 5, 3, 5, 8] should give keys [3, 5, 8], got {sorted(got)}")
    want = {3: 2 / 3, 5: 0.5, 8: 0.0}
    ok = all(k in got and math.isclose(float(got[k]), v, abs_tol=1e-9) for k, v in want.items())
    t.expect(ok, 1, "each value is the share of correct examples of that length",
             f"expected {{3: 0.667, 5: 0.5, 8: 0.0}}, got {got}")
    t.expect(t.raises(accuracy_by_length, ValueError, [True, False], [3]), 1, "mismatched inputs raise ValueError",
             "2 results with 1 length should raise ValueError naming both counts, not give a silent answer")


@register("01.reverse_source", title="feed the source backwards, padding kept at the end", exercise_set=SET, points=4)
def check_reverse_source(t, reverse_source):
    src = torch.tensor([[4, 5, 6, 7], [8, 9, 0, 0], [3, 0, 0, 0]])
    lengths = torch.tensor([4, 2, 1])
    before = src.clone()
    got = t.call(reverse_source, src, lengths)
    t.require(isinstance(got, torch.Tensor) and got.shape == src.shape and got.dtype == src.dtype, 1,
              "returns a tensor of the same shape and dtype",
              f"expected a {tuple(src.shape)} {src.dtype} tensor, got "
              f"{(tuple(got.shape), got.dtype) if isinstance(got, torch.Tensor) else type(got).__name__}")
    t.expect(got[0].tolist() == [7, 6, 5, 4], 1, "a full-length row is reversed",
             f"[4, 5, 6, 7] should become [7, 6, 5, 4], got {got[0].tolist()}")
    rows_ok = got[1].tolist() == [9, 8, 0, 0] and got[2].tolist() == [3, 0, 0, 0]
    if got[1].tolist() == [0, 0, 9, 8]:
        hint = "you flipped the padding too: reverse only the first `length` tokens, padding stays at the end"
    else:
        hint = f"[8, 9, 0, 0] (length 2) should become [9, 8, 0, 0]; got {got[1].tolist()}"
    t.expect(rows_ok, 1, "padded rows: real tokens reversed, padding stays at the end", hint)
    t.expect(torch.equal(src, before), 1, "the input tensor is left unchanged",
             "reverse_source modified its input in place; work on a copy (src.clone())")
