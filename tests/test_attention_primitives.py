"""course_utils.models.attention, masks and positional: the pieces lessons 02 and 05 build, used by later lessons."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.models.attention import (AdditiveScore, DotScore, GeneralScore, ScaledDotScore, masked_softmax,
                                           scaled_dot_product_attention)
from course_utils.models.masks import attention_mask, causal_mask, padding_mask
from course_utils.models.positional import (LearnedPositionalEncoding, SinusoidalPositionalEncoding,
                                            sinusoidal_encoding)


def test_masked_softmax_matches_torch_without_mask_and_survives_huge_scores():
    s = torch.tensor([[1.0, 2.0, 3.0], [1000.0, 1001.0, 999.0]])
    assert torch.allclose(masked_softmax(s), torch.softmax(s, -1))
    w = masked_softmax(s, torch.ones(2, 3, dtype=torch.bool))
    assert torch.isfinite(w).all()
    assert torch.allclose(w[1], torch.softmax(torch.tensor([1.0, 2.0, 0.0]), -1), atol=1e-6)


def test_masked_softmax_zeroes_masked_entries_and_all_masked_rows():
    s = torch.tensor([[2.0, 1.0, 0.1, 3.0], [0.5, 0.5, 2.0, 1.0]])
    keep = torch.tensor([[True, True, True, False], [False, False, False, False]])
    w = masked_softmax(s, keep)
    assert w[0, 3] == 0 and torch.allclose(w[0].sum(), torch.tensor(1.0))
    assert torch.allclose(w[0, :3], torch.softmax(s[0, :3], -1))
    assert torch.equal(w[1], torch.zeros(4))                       # nothing to attend to: zeros, not nan


def test_masked_softmax_along_another_dim_and_broadcast_mask():
    s = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    keep = torch.tensor([[True], [False], [True]])                  # (3, 1) broadcasts over dim 1
    w = masked_softmax(s, keep.expand(3, 5).clone(), dim=0)
    assert torch.allclose(w.sum(0), torch.ones(5))
    assert torch.equal(w[1], torch.zeros(5))


def test_masked_softmax_rejects_non_bool_or_unbroadcastable_masks():
    with pytest.raises(TypeError, match="bool"):
        masked_softmax(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3\)"):
        masked_softmax(torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool))


def test_sdpa_equals_torch_with_and_without_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8, generator=g), torch.randn(2, 4, 7, 8, generator=g), torch.randn(2, 4, 7, 3, generator=g)
    out, w = scaled_dot_product_attention(q, k, v)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5)
    assert w.shape == (2, 4, 5, 7) and torch.allclose(w.sum(-1), torch.ones(2, 4, 5))
    keep = torch.rand(2, 1, 5, 7, generator=g) > 0.4
    keep[..., 0] = True
    out, w = scaled_dot_product_attention(q, k, v, keep)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=keep), atol=1e-5)
    assert (w[~keep.expand_as(w)] == 0).all()


def test_sdpa_all_masked_query_gives_zero_output():
    q, k, v = torch.randn(1, 2, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 6)
    keep = torch.tensor([[[True, False, True], [False, False, False]]])
    out, w = scaled_dot_product_attention(q, k, v, keep)
    assert torch.equal(out[0, 1], torch.zeros(6)) and torch.equal(w[0, 1], torch.zeros(3))


def test_sdpa_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"q \(2, 5, 8\) and k \(2, 7, 4\)"):
        scaled_dot_product_attention(torch.zeros(2, 5, 8), torch.zeros(2, 7, 4), torch.zeros(2, 7, 3))
    with pytest.raises(ValueError, match="same number of positions"):
        scaled_dot_product_attention(torch.zeros(2, 5, 8), torch.zeros(2, 7, 8), torch.zeros(2, 6, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        scaled_dot_product_attention([[1.0]], torch.zeros(1, 1), torch.zeros(1, 1))


def test_scores_by_hand():
    q = torch.tensor([[1.0, 2.0]])                                   # (m=1, d=2)
    k = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, -1.0]])          # (n=3, d=2)
    assert torch.allclose(DotScore()(q, k), torch.tensor([[3.0, 3.0, -2.0]]))
    assert torch.allclose(ScaledDotScore()(q, k), torch.tensor([[3.0, 3.0, -2.0]]) / math.sqrt(2))
    gen = GeneralScore(2, 2)
    with torch.no_grad():
        gen.W.copy_(torch.eye(2))
    assert torch.allclose(gen(q, k), DotScore()(q, k))
    add = AdditiveScore(2, 2, 4)
    expected = add.v.weight @ torch.tanh(add.W_q.weight @ q[0] + (add.W_k.weight @ k.T).T).T   # (1, 3)
    assert add(q, k).shape == (1, 3) and torch.allclose(add(q, k), expected, atol=1e-6)


def test_padding_mask():
    m = padding_mask(torch.tensor([3, 1, 0]), 4)
    assert m.tolist() == [[True, True, True, False], [True, False, False, False], [False] * 4]
    assert padding_mask(torch.tensor([2, 5])).shape == (2, 5)
    with pytest.raises(TypeError, match="integer"):
        padding_mask(torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match="0..3"):
        padding_mask(torch.tensor([4, 1]), 3)


def test_causal_mask_and_combined_mask():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    with pytest.raises(ValueError, match="positive"):
        causal_mask(0)
    m = attention_mask(torch.tensor([3, 2]), 3, causal=True)
    assert m.shape == (2, 1, 3, 3)
    assert m[1, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    m = attention_mask(torch.tensor([3, 1]), 2, 4)
    assert m.shape == (2, 1, 2, 4) and m[1, 0].tolist() == [[True, False, False, False]] * 2
    with pytest.raises(ValueError, match="as many queries as keys"):
        attention_mask(torch.tensor([3]), 2, 3, causal=True)


def test_sinusoidal_encoding_values_and_relative_offset_property():
    pe = sinusoidal_encoding(50, 16)
    assert pe.shape == (50, 16)
    assert torch.allclose(pe[0, 0::2], torch.zeros(8)) and torch.allclose(pe[0, 1::2], torch.ones(8))
    assert torch.isclose(pe[7, 2], torch.tensor(math.sin(7 / 10000 ** (2 / 16))), atol=1e-6)
    # PE[p] . PE[p+k] depends on k only: sum_i cos(k w_i)
    dots = torch.stack([pe[p] @ pe[p + 5] for p in range(40)])
    assert torch.allclose(dots, dots[0].expand(40), atol=1e-4)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(10, 7)


def test_positional_modules_add_to_embeddings_and_check_shapes():
    x = torch.zeros(2, 6, 8)
    assert torch.allclose(SinusoidalPositionalEncoding(8, max_len=10)(x), sinusoidal_encoding(6, 8).expand(2, 6, 8))
    learned = LearnedPositionalEncoding(8, max_len=10)
    assert torch.allclose(learned(x)[1], learned.embedding.weight[:6])
    with pytest.raises(ValueError, match="longer than max_len=4"):
        SinusoidalPositionalEncoding(8, max_len=4)(x)
    with pytest.raises(ValueError, match=r"\(batch, length, 8\)"):
        learned(torch.zeros(2, 6, 5))
