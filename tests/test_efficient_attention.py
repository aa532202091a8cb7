"""Lesson 09's efficient attention: every efficient version equals exact attention where it should, at several sizes."""

from __future__ import annotations

import pytest
import torch

from course_utils.models.attention import scaled_dot_product_attention
from course_utils.models.efficient_attention import (KVCache, TensorMemoryMeter, TinyDecoder, attention_with_lse,
                                                     banded_attention, causal_linear_attention,
                                                     causal_linear_attention_recurrent, end_aligned_causal_mask,
                                                     flash_attention_forward, linear_attention, linear_attention_weights,
                                                     loglog_slope, online_logsumexp, online_softmax,
                                                     online_softmax_update, sliding_window_mask)
from course_utils.models.masks import causal_mask

SIZES = [(1, 1), (5, 2), (16, 4), (17, 5), (33, 8), (40, 40), (23, 100)]


def _qkv(n, m=None, d=8, dv=5, lead=(2, 3), seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*lead, m or n, d, generator=g, dtype=torch.float64) * scale
    return q, torch.randn(*lead, n, d, generator=g, dtype=torch.float64), torch.randn(*lead, n, dv, generator=g,
                                                                                    dtype=torch.float64)


@pytest.mark.parametrize("n, window", SIZES)
def test_sliding_window_mask(n, window):
    mask = sliding_window_mask(n, window)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    assert mask.dtype == torch.bool and torch.equal(mask, (j <= i) & (i - j < window))
    assert torch.equal(sliding_window_mask(n, window, causal=False), (i - j).abs() < window)
    assert torch.equal(sliding_window_mask(n, n), causal_mask(n))


@pytest.mark.parametrize("n, window", SIZES)
def test_banded_equals_masked_attention(n, window):
    q, k, v = _qkv(n, seed=n + window, scale=10.0)
    want, _ = scaled_dot_product_attention(q, k, v, sliding_window_mask(n, window))
    assert torch.allclose(banded_attention(q, k, v, window), want, atol=1e-12)


def test_banded_with_a_window_covering_everything_is_causal_attention():
    q, k, v = _qkv(50)
    want, _ = scaled_dot_product_attention(q, k, v, causal_mask(50))
    assert torch.allclose(banded_attention(q, k, v, 50), want, atol=1e-12)
    assert torch.allclose(banded_attention(q, k, v, 500), want, atol=1e-12)


def test_banded_work_is_linear_in_n():
    q, k, v = (x.float() for x in _qkv(4096, d=16, dv=16, lead=(1,)))
    with TensorMemoryMeter() as meter:
        banded_attention(q, k, v, 32)
    assert meter.largest_bytes <= 4096 * 2 * 32 * 4 * 1.01   # (blocks, w, 2w) scores, not 4096^2


@pytest.mark.parametrize("n, m", [(1, 1), (9, 4), (30, 30), (64, 17)])
def test_linear_attention_equals_its_implicit_weights(n, m):
    q, k, v = _qkv(n, m=m, seed=n)
    assert torch.allclose(linear_attention(q, k, v, eps=0.0), linear_attention_weights(q, k) @ v, atol=1e-12)
    assert torch.allclose(linear_attention_weights(q, k).sum(-1), torch.ones(2, 3, m, dtype=torch.float64))


@pytest.mark.parametrize("n, chunk", [(1, 64), (7, 3), (64, 64), (100, 16), (129, 32)])
def test_causal_linear_attention_forms_agree(n, chunk):
    q, k, v = _qkv(n, seed=n)
    want = linear_attention_weights(q, k, causal=True) @ v
    assert torch.allclose(causal_linear_attention(q, k, v, chunk=chunk, eps=0.0), want, atol=1e-12)
    assert torch.allclose(causal_linear_attention_recurrent(q, k, v, eps=0.0), want, atol=1e-12)


def test_online_softmax_is_exact_and_stable():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 37, generator=g, dtype=torch.float64) * 500
    for block in (1, 5, 37, 100):
        assert torch.allclose(online_softmax(x, block), torch.softmax(x, -1), atol=1e-12)
        assert torch.allclose(online_logsumexp(x, block), torch.logsumexp(x, -1), atol=1e-9)


def test_online_softmax_update_from_the_start_and_on_masked_blocks():
    m, s = online_softmax_update(torch.full((2,), float("-inf")), torch.zeros(2),
                                 torch.tensor([[1.0, 2.0], [float("-inf"), float("-inf")]]))
    assert float(m[0]) == 2.0 and abs(float(s[0]) - (1 + torch.exp(torch.tensor(-1.0)).item())) < 1e-6
    assert float(m[1]) == float("-inf") and float(s[1]) == 0.0


@pytest.mark.parametrize("m, n, bq, bk, causal", [(1, 1, 64, 64, False), (10, 10, 3, 4, True), (7, 30, 4, 8, False),
                                                  (7, 30, 2, 5, True), (64, 64, 64, 64, True), (33, 100, 16, 7, False)])
def test_flash_forward_equals_exact_attention(m, n, bq, bk, causal):
    q, k, v = _qkv(n, m=m, seed=m * n, scale=30.0)
    out, lse = attention_with_lse(q, k, v, causal=causal)
    got_out, got_lse = flash_attention_forward(q, k, v, bq, bk, causal=causal)
    assert torch.allclose(got_out, out, atol=1e-10) and torch.allclose(got_lse, lse, atol=1e-10)
    mask = end_aligned_causal_mask(m, n) if causal else None
    assert torch.allclose(out, scaled_dot_product_attention(q, k, v, mask)[0], atol=1e-12)
    assert torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask), atol=1e-10)


def test_memory_slopes():
    ns = [512, 1024, 2048]
    naive, tiled = [], []
    for n in ns:
        q, k, v = (x.float() for x in _qkv(n, d=32, dv=32, lead=(1,)))
        with TensorMemoryMeter() as meter:
            attention_with_lse(q, k, v)
        naive.append(meter.peak_bytes)
        with TensorMemoryMeter() as meter:
            flash_attention_forward(q, k, v, 64, 64)
        tiled.append(meter.peak_bytes)
    assert 1.8 < loglog_slope(ns, naive) < 2.2
    assert loglog_slope(ns, tiled) < 1.2


def test_kv_cache_decoding_equals_full_decoding():
    torch.manual_seed(0)
    model = TinyDecoder(vocab=30, d_model=32, n_heads=4, n_layers=2, max_len=64).eval()
    prompt = torch.randint(0, 30, (2, 4))
    with torch.no_grad():
        a, b = model.generate(prompt, 20, use_cache=True), model.generate(prompt, 20, use_cache=False)
        assert torch.equal(a, b)
        caches = model.new_caches()
        steps = [model(a[:, :4], caches)] + [model(a[:, t:t + 1], caches) for t in range(4, a.shape[1])]
        assert torch.allclose(torch.cat(steps, 1), model(a), atol=1e-5)


def test_kv_cache_refuses_to_overflow():
    cache = KVCache(3)
    cache.append(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))
    with pytest.raises(ValueError, match="at most 3"):
        cache.append(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))


def test_runs_on_the_meta_device():
    meta = torch.device("meta")
    q, k, v = (torch.randn(2, 16, 8, device=meta) for _ in range(3))
    assert sliding_window_mask(16, 4, device=meta).device == meta
    assert banded_attention(q, k, v, 4).shape == (2, 16, 8)
    assert causal_linear_attention(q, k, v, chunk=4).shape == (2, 16, 8)
    assert linear_attention(q, k, v).device == meta
    out, lse = flash_attention_forward(q, k, v, 4, 4, causal=True)
    assert out.device == meta and lse.shape == (2, 16)
    model = TinyDecoder(vocab=10, d_model=16, n_heads=2, n_layers=1, max_len=8).to(meta)
    caches = model.new_caches()
    assert model(torch.zeros(1, 3, dtype=torch.long, device=meta), caches).shape == (1, 3, 10)
    assert model(torch.zeros(1, 1, dtype=torch.long, device=meta), caches).shape == (1, 1, 10)
