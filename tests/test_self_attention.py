"""Unit tests of lesson 05's finished pieces: course_utils.models.self_attention (SelfAttention,
RotarySelfAttention) and course_utils.models.rotary, and of lesson 05's graded checks' feedback."""

from __future__ import annotations

import math
import re

import pytest
import torch

from course_utils.grading import run_check
from course_utils.models.masks import causal_mask, padding_mask
from course_utils.models.positional import sinusoidal_encoding
from course_utils.models.rotary import apply_rotary, rotary_angles
from course_utils.models.self_attention import RotarySelfAttention, SelfAttention

B, N, D = 2, 5, 8


@pytest.fixture
def x():
    return torch.randn(B, N, D, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return SelfAttention(D, d_k=4, d_v=6)


# --------------------------------------------------------------------------- SelfAttention


def test_shapes_and_defaults(x):
    out, w = SelfAttention(D)(x)
    assert out.shape == (B, N, D) and w.shape == (B, N, N)
    out, w = SelfAttention(D, d_k=4, d_v=6)(x)
    assert out.shape == (B, N, 6) and w.shape == (B, N, N)
    assert [name for name, _ in SelfAttention(D).named_parameters()] == ["W_q.weight", "W_k.weight", "W_v.weight"]
    assert len(list(SelfAttention(D, bias=True).parameters())) == 6


def test_equals_the_formula(layer, x):
    out, w = layer(x)
    q, k, v = x @ layer.W_q.weight.T, x @ layer.W_k.weight.T, x @ layer.W_v.weight.T
    want_w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), dim=-1)
    assert torch.allclose(w, want_w, atol=1e-6) and torch.allclose(out, want_w @ v, atol=1e-6)
    assert torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-6)


def test_permutation_equivariance(layer, x):
    out, w = layer(x)
    perm = torch.tensor([3, 0, 4, 1, 2])
    out_p, w_p = layer(x[:, perm])
    assert torch.allclose(out_p, out[:, perm], atol=1e-6)
    assert torch.allclose(w_p, w[:, perm][:, :, perm], atol=1e-6)


def test_causal_mask_no_future_leak(layer, x):
    mask = causal_mask(N)
    out, w = layer(x, mask)
    assert (w[:, ~mask] == 0).all() and torch.allclose(w.sum(-1), torch.ones(B, N))
    for t in range(N):
        changed = x.clone()
        changed[:, t] += 2.0
        out2, _ = layer(changed, mask)
        assert torch.allclose(out2[:, :t], out[:, :t], atol=1e-6)
        assert not torch.allclose(out2[:, t], out[:, t], atol=1e-4)
    leaky, _ = layer(x + torch.nn.functional.pad(torch.ones(B, 1, D), (0, 0, N - 1, 0)))   # change the last token only
    assert not torch.allclose(leaky[:, 0], layer(x)[0][:, 0], atol=1e-4)                   # no mask: token 0 sees it


def test_padding_mask_makes_padding_irrelevant(layer, x):
    lengths = torch.tensor([5, 3])
    mask = padding_mask(lengths, N)[:, None, :]                      # (B, 1, n)
    out, w = layer(x, mask)
    assert (w[1, :, 3:] == 0).all()
    junk = x.clone()
    junk[1, 3:] = 100.0
    assert torch.allclose(layer(junk, mask)[0][1, :3], out[1, :3], atol=1e-5)
    alone, _ = layer(x[1:, :3])                                       # the short sentence without any padding
    assert torch.allclose(alone[0], out[1, :3], atol=1e-6)


def test_all_masked_query_gives_zero_output(layer, x):
    mask = padding_mask(torch.tensor([0, 2]), N)[:, None, :]
    out, w = layer(x, mask)
    assert torch.equal(w[0], torch.zeros(N, N)) and torch.equal(out[0], torch.zeros(N, 6))
    assert torch.allclose(w[1].sum(-1), torch.ones(N))


def test_mask_shapes_that_broadcast(layer, x):
    full = causal_mask(N)[None].expand(B, N, N)
    assert torch.allclose(layer(x, full)[1], layer(x, causal_mask(N))[1])
    assert torch.allclose(layer(x, causal_mask(N)[None])[1], layer(x, causal_mask(N))[1])


@pytest.mark.parametrize("make_bad, error, words", [
    (lambda x: (x[0], None), ValueError, "x must be (batch, length, d_model=8), got (5, 8)"),
    (lambda x: (x[..., :6], None), ValueError, "x must be (batch, length, d_model=8), got (2, 5, 6)"),
    (lambda x: (x, causal_mask(N).int()), TypeError, "mask must be a bool tensor"),
    (lambda x: (x, torch.ones(B, N, dtype=torch.bool)), ValueError, "A padding mask (B, n) on the keys goes in key_padding_mask="),
    (lambda x: (x, torch.ones(3, N, N, dtype=torch.bool)), ValueError, "got (3, 5, 5)"),
    (lambda x: (x, torch.ones(N, N + 1, dtype=torch.bool)), ValueError, "mask must be (5, 5)"),
])
def test_bad_inputs_raise_clear_errors(layer, x, make_bad, error, words):
    with pytest.raises(error, match=re.escape(words)):
        layer(*make_bad(x))


def test_key_padding_mask_argument_when_batch_equals_length():
    """Issue 8 item 2: with B = n a (B, n) padding mask has the shape of an (n, n) mask; it must not be misread."""
    torch.manual_seed(0)
    layer = SelfAttention(D)
    x = torch.randn(N, N, D)                                          # B = n = 5
    lengths = torch.tensor([5, 3, 1, 4, 2])
    keep = padding_mask(lengths, N)                                    # (B, n) = (5, 5)
    out, w = layer(x, key_padding_mask=keep)
    want_out, want_w = layer(x, keep[:, None, :])                      # the explicit (B, 1, n) form
    assert torch.equal(w, want_w) and torch.equal(out, want_out)
    for b, L in enumerate(lengths.tolist()):
        assert (w[b, :, L:] == 0).all() and torch.allclose(w[b].sum(-1), torch.ones(N))
        alone, _ = layer(x[b:b + 1, :L])                               # the sentence alone, unpadded
        assert torch.allclose(out[b, :L], alone[0], atol=1e-5)
    with pytest.raises(ValueError, match="ambiguous"):                 # the old, silent misreading is refused
        layer(x, keep)
    # a shared (n, n) mask with B = n: written with its batch dimension it is accepted; with padding it combines
    causal = causal_mask(N)
    out_c, w_c = layer(x, causal[None], key_padding_mask=keep)
    assert torch.equal(w_c, layer(x, causal[None] & keep[:, None, :])[1])
    assert (w_c.triu(1) == 0).all() and (w_c[1, :, 3:] == 0).all()
    with pytest.raises(ValueError, match=re.escape("key_padding_mask must be (B, n) = (5, 5)")):
        layer(x, key_padding_mask=keep[:, :4])
    with pytest.raises(TypeError, match="bool"):
        layer(x, key_padding_mask=keep.int())
    # B = 1 and B != n are not ambiguous: a 2-D (n, n) mask is still accepted there
    assert layer(x[:1], causal)[1].shape == (1, N, N) and layer(x[:2], causal)[1].shape == (2, N, N)


@pytest.mark.parametrize("kwargs", [dict(d_model=0), dict(d_model=8, d_k=0), dict(d_model=8, d_v=2.5),
                                    dict(d_model=True)])
def test_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be a positive int"):
        SelfAttention(**kwargs)


def test_gradients_reach_every_parameter(layer, x):
    layer(x, causal_mask(N))[0].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


# --------------------------------------------------------------------------- rotary


def test_rotary_angles_use_the_sinusoidal_frequencies():
    angles = rotary_angles(torch.arange(50), 16)
    pe = sinusoidal_encoding(50, 16)
    assert angles.shape == (50, 8)
    assert torch.allclose(torch.sin(angles), pe[:, 0::2], atol=1e-5) and torch.allclose(torch.cos(angles), pe[:, 1::2], atol=1e-5)


def test_apply_rotary_position_zero_is_identity_and_norms_are_kept(x):
    r = apply_rotary(x)
    assert r.shape == x.shape
    assert torch.allclose(r[:, 0], x[:, 0])
    assert torch.allclose(r.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert not torch.allclose(r[:, 1:], x[:, 1:], atol=1e-3)
    assert torch.allclose(apply_rotary(x, torch.arange(N)), r)
    assert torch.allclose(apply_rotary(x, torch.zeros(N, dtype=torch.long)), x)


def test_apply_rotary_first_pair_by_hand():
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]]).expand(3, 4)          # 3 positions, d = 4
    r = apply_rotary(x)
    for p in range(3):
        assert torch.allclose(r[p, :2], torch.tensor([math.cos(p), math.sin(p)]), atol=1e-6)   # theta_0 = 1
        a = p / 100.0                                                                            # theta_1 = 10000^(-2/4)
        assert torch.allclose(r[p, 2:], torch.tensor([-math.sin(a), math.cos(a)]), atol=1e-6)


def test_rotary_scores_depend_only_on_the_offset():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def score(m, n):
        return (apply_rotary(q[None], torch.tensor([m]))[0] @ apply_rotary(k[None], torch.tensor([n]))[0]).item()

    for m, n in [(0, 0), (2, 7), (9, 1), (4, 4)]:
        for shift in (1, 13, 60):
            assert abs(score(m + shift, n + shift) - score(m, n)) < 1e-4
    assert abs(score(0, 3) - score(0, 5)) > 1e-3                     # but the offset does matter


def test_rotary_self_attention_equals_rotated_formula_and_sees_order(x):
    torch.manual_seed(3)
    layer = RotarySelfAttention(D)
    out, w = layer(x)
    q, k, v = layer.W_q(x), layer.W_k(x), layer.W_v(x)
    want = torch.softmax(apply_rotary(q) @ apply_rotary(k).transpose(-2, -1) / math.sqrt(D), -1)
    assert torch.allclose(w, want, atol=1e-6) and torch.allclose(out, want @ v, atol=1e-6)
    perm = torch.tensor([4, 2, 0, 3, 1])
    assert not torch.allclose(layer(x[:, perm])[0], out[:, perm], atol=1e-3)   # not permutation equivariant
    masked, wm = layer(x, causal_mask(N))
    assert (wm[:, ~causal_mask(N)] == 0).all()


def test_rotary_scores_of_a_sentence_do_not_depend_on_where_it_starts():
    torch.manual_seed(4)
    layer = RotarySelfAttention(4, d_k=6)
    tokens = torch.randn(1, 3, 4)
    later = torch.cat([torch.randn(1, 4, 4), tokens], dim=1)           # the same 3 tokens at positions 4, 5, 6
    with torch.no_grad():
        scores = lambda x: apply_rotary(layer.W_q(x)) @ apply_rotary(layer.W_k(x)).transpose(-2, -1)
        assert torch.allclose(scores(tokens), scores(later)[:, 4:, 4:], atol=1e-5)
        # so, with the first 4 tokens masked out as keys, the 3 tokens attend exactly as they do alone
        keys = torch.tensor([False] * 4 + [True] * 3)[None, None, :]     # (1, 1, 7)
        assert torch.allclose(layer(later, keys)[0][:, 4:], layer(tokens)[0], atol=1e-5)


@pytest.mark.parametrize("call, error, words", [
    (lambda: apply_rotary(torch.randn(4, 5)), ValueError, "dim must be a positive even number"),
    (lambda: apply_rotary(torch.randn(7)), ValueError, "at least 2 dimensions"),
    (lambda: apply_rotary(torch.ones(3, 4, dtype=torch.long)), TypeError, "floating-point"),
    (lambda: apply_rotary(torch.randn(3, 4), torch.arange(4)), ValueError, "positions must be a 1-D tensor of length n=3"),
    (lambda: rotary_angles(torch.arange(6).view(2, 3), 4), ValueError, "positions must be a 1-D tensor"),
    (lambda: rotary_angles(torch.arange(3), 4, base=1.0), ValueError, "base must be greater than 1"),
    (lambda: RotarySelfAttention(8, d_k=5), ValueError, "d_k must be even"),
])
def test_rotary_errors(call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call()


# --------------------------------------------------------------------------- graded checks: feedback
# (The checks switch off the course's finished lesson-05 functions while they run, as the exercise asks for
# plain tensor operations, so the answers below are written here, not imported from course_utils.models.)


def _parts(result):
    return {p.what: p.earned == p.points for p in result.parts}


def _table(n, d):
    angle = torch.arange(n)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)


def _pad(lengths, n=None):
    n = int(lengths.max()) if n is None else n
    return torch.arange(n)[None, :] < lengths[:, None]


def _tri(n):
    return torch.ones(n, n, dtype=torch.bool).tril()


def _causal_attention(x, W_q, W_k, W_v, *, scale=None, mask=True, dim=-1):
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    s = q @ k.transpose(-2, -1) / math.sqrt(scale or k.shape[-1])
    if mask:
        s = s.masked_fill(~_tri(x.shape[1]), float("-inf"))
    w = s.softmax(dim)
    return w @ v, w


def test_reference_answers_earn_full_marks():
    assert run_check("05.sinusoidal", _table).points == 4
    assert run_check("05.padding_mask", _pad).points == 3
    assert run_check("05.causal_mask", _tri).points == 3
    assert run_check("05.causal_self_attention", _causal_attention).points == 5


def test_the_finished_versions_are_switched_off_while_checking():
    result = run_check("05.causal_mask", causal_mask)
    assert result.status == "crashed" and "switched off" in result.message
    assert causal_mask(3).equal(_tri(3)) and padding_mask(torch.tensor([1]), 2).tolist() == [[True, False]]


def _halves(n, d):
    angle = torch.arange(n)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


def _exponent_i(n, d):
    angle = torch.arange(n)[:, None] / 10000 ** (torch.arange(d // 2) / d)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)


@pytest.mark.parametrize("answer, points, words", [
    (_halves, 2, "all the sines, then all the cosines"),
    (_exponent_i, 3, "10000^(-i/d)"),
    (lambda n, d: _table(n, d).T, 0, "one row per position"),
    (lambda n, d: _table(50, 16), 3, "do not assume 50 and 16"),
])
def test_sinusoidal_feedback(answer, points, words):
    result = run_check("05.sinusoidal", answer)
    assert result.points == points and words in result.feedback(), result.feedback()


@pytest.mark.parametrize("answer, points, words", [
    (lambda lengths, n: ~_pad(lengths, n), 2, "inverted"),
    (lambda lengths, n: torch.arange(n)[None] <= lengths[:, None], 2, "use <, not <="),
    (lambda lengths, n: _pad(lengths, n).int(), 2.5, "dtype is torch.int32"),
    (lambda lengths, n: _pad(lengths), 2, "the width is n, not max(lengths)"),
])
def test_padding_mask_feedback(answer, points, words):
    result = run_check("05.padding_mask", answer)
    assert result.points == points and words in result.feedback(), result.feedback()


@pytest.mark.parametrize("answer, points, words", [
    (lambda n: _tri(n).T, 2, "lets every position see the future"),
    (lambda n: ~_tri(n), 2, "inverted"),
    (lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), 2, "you left out the diagonal"),
    (lambda n: _tri(5), 2, "do not assume 5"),
])
def test_causal_mask_feedback(answer, points, words):
    result = run_check("05.causal_mask", answer)
    assert result.points == points and words in result.feedback(), result.feedback()


@pytest.mark.parametrize("kwargs, points, words", [
    (dict(scale=1.0), 4, "not scaled"),
    (dict(scale=6), 4, "sqrt(d_model)"),
    (dict(mask=False), 4, "without a mask"),
    (dict(dim=-2), 2.5, "softmax must run over the keys"),
])
def test_causal_self_attention_feedback(kwargs, points, words):
    result = run_check("05.causal_self_attention", lambda *a: _causal_attention(*a, **kwargs))
    assert result.points == points and words in result.feedback(), result.feedback()
    assert _parts(result)["returns (output, weights) of shapes (B, n, d_v) and (B, n, n)"]


def test_causal_self_attention_wrong_values_and_shapes():
    result = run_check("05.causal_self_attention", lambda x, W_q, W_k, W_v: (
        _causal_attention(x, W_q, W_k, W_v)[1] @ (x @ W_v) * 2, _causal_attention(x, W_q, W_k, W_v)[1]))
    assert result.points == 4.5 and "your weights are right but the output is not" in result.feedback()
    result = run_check("05.causal_self_attention", lambda x, W_q, W_k, W_v: _causal_attention(x, W_q, W_k, W_q))
    assert result.points == 0 and "should give output (2, 5, 3)" in result.feedback()


def test_unattempted_and_crashing_answers():
    def stub(*args):
        raise NotImplementedError()

    for cid in ("05.sinusoidal", "05.padding_mask", "05.causal_mask", "05.causal_self_attention"):
        result = run_check(cid, stub)
        assert result.status == "not_attempted" and result.points == 0
    crashed = run_check("05.causal_self_attention", lambda x, W_q, W_k, W_v: x @ W_q.T)
    assert crashed.status == "crashed" and crashed.points == 0
    bad = run_check("05.padding_mask", lambda lengths, n: None)
    assert bad.status == "graded" and bad.points == 0 and "got NoneType" in bad.feedback()


def _allowed(lengths, n):
    return int((_pad(lengths, n)[:, None, :] & _tri(n)).sum())


@pytest.mark.parametrize("prediction, counter, points, words", [
    (lambda: 174, _allowed, 3, ""),
    (lambda: 174.0, lambda lengths, n: torch.tensor(float(_allowed(lengths, n))), 3, ""),   # floats, tensors accepted
    (lambda: 234, _allowed, 2, "the causal mask alone"),
    (lambda: 432, _allowed, 2, "every (query, key) pair"),
    (lambda: 112, _allowed, 2, "only the real queries"),
    (lambda: 150, _allowed, 2, "min(i + 1, L)"),
    (lambda: 174, lambda lengths, n: _allowed(lengths, n) if n == 12 else 0, 1, "for lengths [5] padded to n = 5"),
    (lambda: 174, lambda lengths, n: 174, 1, "for lengths [5] padded to n = 5 the masks allow 15"),   # hard-coded
])
def test_allowed_pairs_feedback(prediction, counter, points, words):
    result = run_check("05.allowed_pairs", prediction, counter)
    assert result.points == points and words in result.feedback(), result.feedback()
