"""Unit tests of lesson 06's modules: multi-head attention and the Transformer."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.models.masks import causal_mask, padding_mask
from course_utils.models.multihead_attention import MultiHeadAttention, merge_heads, split_heads, to_torch_multihead
from course_utils.models.transformer import (Decoder, DecoderBlock, Encoder, EncoderBlock, FeedForward,
                                             TransformerSeq2Seq, amp_autocast, choose_precision,
                                             measure_training_throughput, model_flops_utilization,
                                             peak_bf16_flops, seq2seq_train_flops)

B, M, N, D, H = 3, 4, 5, 8, 2


@pytest.fixture
def mha():
    torch.manual_seed(0)
    return MultiHeadAttention(D, H).eval()


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, M, D, generator=g), torch.randn(B, N, D, generator=g), torch.randn(B, N, D, generator=g)


# --------------------------------------------------------------------------- split / merge


def test_split_heads_gives_each_head_its_slice_of_features():
    x = torch.arange(2 * 3 * 6, dtype=torch.float32).view(2, 3, 6)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 3, 2)
    for i in range(3):
        assert torch.equal(heads[:, i], x[..., 2 * i: 2 * i + 2])
    assert torch.equal(merge_heads(heads), x)


@pytest.mark.parametrize("call, error, words", [
    (lambda: split_heads(torch.zeros(2, 3, 7), 2), ValueError, "d_model = 7 is not divisible by n_heads = 2"),
    (lambda: split_heads(torch.zeros(3, 7), 1), ValueError, "(batch, length, d_model)"),
    (lambda: split_heads(torch.zeros(2, 3, 4), 0), ValueError, "n_heads must be a positive int"),
    (lambda: merge_heads(torch.zeros(2, 3, 4)), ValueError, "(batch, heads, length, d_head)"),
    (lambda: MultiHeadAttention(10, 3), ValueError, "multiple of n_heads"),
    (lambda: MultiHeadAttention(8, 2, dropout=1.0), ValueError, "dropout must be in [0, 1)"),
])
def test_split_merge_and_constructor_errors(call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call()


# --------------------------------------------------------------------------- multi-head attention


def _by_hand(mha, q_in, k_in, v_in, mask=None):
    """Multi-head attention written out head by head with plain matrix products (the lesson's definition)."""
    outs, weights = [], []
    dh = mha.d_head
    for i in range(mha.n_heads):
        sl = slice(i * dh, (i + 1) * dh)
        q = q_in @ mha.W_q.weight[sl].T + mha.W_q.bias[sl]
        k = k_in @ mha.W_k.weight[sl].T + mha.W_k.bias[sl]
        v = v_in @ mha.W_v.weight[sl].T + mha.W_v.bias[sl]
        s = q @ k.transpose(-2, -1) / math.sqrt(dh)
        if mask is not None:
            s = s.masked_fill(~mask.expand(q_in.shape[0], mha.n_heads, -1, -1)[:, i], float("-inf"))
        w = torch.softmax(s, -1)
        outs.append(w @ v)
        weights.append(w)
    return mha.W_o(torch.cat(outs, -1)), torch.stack(weights, 1)


def test_mha_equals_the_head_by_head_definition(mha, qkv):
    out, w = mha(*qkv)
    want_out, want_w = _by_hand(mha, *qkv)
    assert out.shape == (B, M, D) and w.shape == (B, H, M, N)
    assert torch.allclose(out, want_out, atol=1e-5) and torch.allclose(w, want_w, atol=1e-6)
    assert torch.allclose(w.sum(-1), torch.ones(B, H, M), atol=1e-6)


def test_mha_equals_torch_multihead_attention(mha, qkv):
    ref = to_torch_multihead(mha)
    q, k, v = qkv
    out, w = mha(q, k, v)
    ref_out, ref_w = ref(q, k, v, average_attn_weights=False)
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(w, ref_w, atol=1e-6)
    # key padding: the course's mask says keep, torch's says ignore
    lengths = torch.tensor([5, 3, 1])
    keep = padding_mask(lengths, N)                           # (B, n)
    out, w = mha(q, k, v, keep[:, None, None, :])
    ref_out, ref_w = ref(q, k, v, key_padding_mask=~keep, average_attn_weights=False)
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(w, ref_w, atol=1e-6)
    assert (w[1, :, :, 3:] == 0).all() and torch.allclose(w[2, :, :, 0], torch.ones(H, M))
    # causal self-attention
    x = qkv[1]
    out, w = mha(x, x, x, causal_mask(N))
    ref_out, ref_w = ref(x, x, x, attn_mask=~causal_mask(N), average_attn_weights=False)
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(w, ref_w, atol=1e-6)
    assert (w.triu(1) == 0).all()


def test_mha_equals_torch_scaled_dot_product_attention(mha, qkv):
    q, k, v = qkv
    keep = padding_mask(torch.tensor([5, 2, 4]), N)[:, None, None, :]
    out, _ = mha(q, k, v, keep)
    heads = F.scaled_dot_product_attention(split_heads(mha.W_q(q), H), split_heads(mha.W_k(k), H),
                                           split_heads(mha.W_v(v), H), attn_mask=keep)   # bool: True = take part
    assert torch.allclose(out, mha.W_o(merge_heads(heads)), atol=1e-5)


def test_mha_per_head_mask_and_padding_content(mha, qkv):
    q, k, v = qkv
    mask = torch.ones(1, H, M, N, dtype=torch.bool)
    mask[0, 1, :, 0] = False                                   # head 1 may not look at key 0
    out, w = mha(q, k, v, mask)
    assert (w[:, 1, :, 0] == 0).all() and (w[:, 0, :, 0] > 0).all()
    want_out, want_w = _by_hand(mha, q, k, v, mask)
    assert torch.allclose(out, want_out, atol=1e-5) and torch.allclose(w, want_w, atol=1e-6)
    keep = padding_mask(torch.tensor([5, 3, 2]), N)[:, None, None, :]
    k2, v2 = k.clone(), v.clone()
    k2[1, 3:], v2[1, 3:] = 100.0, -100.0                       # junk in the padding
    assert torch.allclose(mha(q, k, v, keep)[0], mha(q, k2, v2, keep)[0], atol=1e-5)


@pytest.mark.parametrize("mask, error, words", [
    (torch.ones(B, M, N, dtype=torch.bool), ValueError, "add the head dimension with mask[:, None]"),
    (torch.ones(B, 1, M, N), TypeError, "mask must be a bool tensor"),
    (torch.ones(N, dtype=torch.bool), ValueError, "mask must be (m, n) or"),
    (torch.ones(B, N, dtype=torch.bool), ValueError, "A (B, n) padding mask goes in key_padding_mask="),
    (torch.ones(B, 1, M, N + 1, dtype=torch.bool), ValueError, "does not broadcast"),
])
def test_mha_mask_errors(mha, qkv, mask, error, words):
    with pytest.raises(error, match=re.escape(words)):
        mha(*qkv, mask)


def test_mha_key_padding_mask_when_batch_equals_queries():
    """Issue 8 item 2: with B = m a (B, n) padding mask has the shape of an (m, n) mask; it must not be misread."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(D, H).eval()
    Bq = Mq = 4
    g = torch.Generator().manual_seed(5)
    q, kv = torch.randn(Bq, Mq, D, generator=g), torch.randn(Bq, N, D, generator=g)
    keep = padding_mask(torch.tensor([5, 3, 1, 4]), N)                # (B, n) = (4, 5), and B = m = 4
    out, w = mha(q, kv, kv, key_padding_mask=keep)
    want_out, want_w = mha(q, kv, kv, keep[:, None, None, :])
    assert torch.equal(out, want_out) and torch.equal(w, want_w)
    assert (w[2, :, :, 1:] == 0).all() and torch.allclose(w.sum(-1), torch.ones(Bq, H, Mq))
    ref = to_torch_multihead(mha).eval()
    ref_out, ref_w = ref(q, kv, kv, key_padding_mask=~keep, average_attn_weights=False)
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(w, ref_w, atol=1e-6)
    with pytest.raises(ValueError, match="ambiguous"):
        mha(q, kv, kv, keep[:, :N])                                   # (4, 5) as `mask`: refused, not guessed
    # self-attention with B = n: causal (n, n) via mask[None, None], padding via key_padding_mask, both at once
    x = torch.randn(N, N, D, generator=g)
    keep5 = padding_mask(torch.tensor([5, 3, 1, 4, 2]), N)
    _, w2 = mha(x, x, x, causal_mask(N)[None, None], key_padding_mask=keep5)
    assert (w2.triu(1) == 0).all() and (w2[1, :, :, 3:] == 0).all()
    with pytest.raises(ValueError, match="ambiguous"):
        mha(x, x, x, causal_mask(N))
    with pytest.raises(ValueError, match=re.escape("key_padding_mask must be (B, n) = (5, 5)")):
        mha(x, x, x, key_padding_mask=keep5[:, None, None, :])


def test_transformer_runs_when_batch_equals_target_length():
    torch.manual_seed(0)
    model = TransformerSeq2Seq(SRC_V, TGT_V, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0).eval()
    src = torch.randint(3, SRC_V, (4, 6))
    src_len = torch.tensor([6, 2, 4, 3])
    tgt_in = torch.randint(3, TGT_V, (4, 4))                          # B = T = 4
    logits = model(src, src_len, tgt_in)
    for b in range(4):                                                # each sentence as if alone
        alone = model(src[b:b + 1, :src_len[b]], src_len[b:b + 1], tgt_in[b:b + 1])
        assert torch.allclose(logits[b], alone[0], atol=1e-5)


def test_mha_input_errors(mha, qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match=re.escape("query must be (batch, length, 8)")):
        mha(q[..., :4], k, v)
    with pytest.raises(ValueError, match="must share the batch size"):
        mha(q, k, v[:, :3])


def test_mha_dropout_only_in_training(qkv):
    torch.manual_seed(0)
    mha = MultiHeadAttention(D, H, dropout=0.5)
    mha.train()
    a, w = mha(*qkv)
    b, _ = mha(*qkv)
    assert not torch.allclose(a, b)
    assert torch.allclose(w.sum(-1), torch.ones(B, H, M), atol=1e-6)   # weights returned before dropout
    mha.eval()
    assert torch.equal(mha(*qkv)[0], mha(*qkv)[0])


# --------------------------------------------------------------------------- blocks equal torch's layers


def _copy_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention):
    ref = to_torch_multihead(ours)
    theirs.load_state_dict(ref.state_dict())


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_block_equals_torch_layer(norm_first):
    torch.manual_seed(2)
    block = EncoderBlock(D, H, 16, dropout=0.0, norm_first=norm_first).eval()
    ref = nn.TransformerEncoderLayer(D, H, 16, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    _copy_mha(block.self_attn, ref.self_attn)
    ref.linear1.load_state_dict(block.ff.lin1.state_dict())
    ref.linear2.load_state_dict(block.ff.lin2.state_dict())
    ref.norm1.load_state_dict(block.norm1.state_dict())
    ref.norm2.load_state_dict(block.norm2.state_dict())
    x = torch.randn(B, N, D)
    keep = padding_mask(torch.tensor([5, 3, 2]), N)
    out, w = block(x, keep[:, None, None, :])
    want = ref(x, src_key_padding_mask=~keep)
    assert torch.allclose(out[keep], want[keep], atol=1e-5)     # torch may zero the padded rows (fast path)
    assert w.shape == (B, H, N, N)


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_block_equals_torch_layer(norm_first):
    torch.manual_seed(3)
    block = DecoderBlock(D, H, 16, dropout=0.0, norm_first=norm_first).eval()
    ref = nn.TransformerDecoderLayer(D, H, 16, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    _copy_mha(block.self_attn, ref.self_attn)
    _copy_mha(block.cross_attn, ref.multihead_attn)
    for ours, theirs in ((block.ff.lin1, ref.linear1), (block.ff.lin2, ref.linear2), (block.norm1, ref.norm1),
                         (block.norm2, ref.norm2), (block.norm3, ref.norm3)):
        theirs.load_state_dict(ours.state_dict())
    y, memory = torch.randn(B, M, D), torch.randn(B, N, D)
    keep = padding_mask(torch.tensor([5, 3, 2]), N)
    out, sw, cw = block(y, memory, causal_mask(M), keep[:, None, None, :])
    want = ref(y, memory, tgt_mask=~causal_mask(M), memory_key_padding_mask=~keep)
    assert torch.allclose(out, want, atol=1e-5)
    assert sw.shape == (B, H, M, M) and cw.shape == (B, H, M, N)
    assert (sw.triu(1) == 0).all() and (cw[2, :, :, 2:] == 0).all()


def test_feedforward_is_position_wise():
    torch.manual_seed(4)
    ff = FeedForward(D, 16)
    x = torch.randn(B, N, D)
    out = ff(x)
    assert torch.allclose(out[:, 2], ff(x[:, 2:3])[:, 0], atol=1e-6)
    assert torch.allclose(out, ff.lin2(torch.relu(ff.lin1(x))), atol=1e-6)


def test_stacks_have_final_norm_only_when_pre_ln():
    assert isinstance(Encoder(2, D, H, 16, norm_first=True).norm, nn.LayerNorm)
    assert isinstance(Decoder(2, D, H, 16, norm_first=False).norm, nn.Identity)
    with pytest.raises(ValueError, match="n_layers must be positive"):
        Encoder(0, D, H, 16)


def test_pre_ln_keeps_the_input_gradient_post_ln_shrinks_it():
    """The lesson's measurement at depth 48, at initialisation (seeded)."""
    ratios = {}
    for norm_first in (False, True):
        torch.manual_seed(0)
        enc = Encoder(48, 64, 4, 256, norm_first=norm_first)
        x = torch.randn(8, 12, 64, requires_grad=True)
        out, _ = enc(x)
        r = torch.randn(out.shape, generator=torch.Generator().manual_seed(99))
        (out * r).sum().backward()
        ratios[norm_first] = (x.grad.norm() / r.norm()).item()
    assert ratios[False] < 0.6 and ratios[True] > 0.7


# --------------------------------------------------------------------------- the encoder-decoder


SRC_V, TGT_V = 9, 11


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TransformerSeq2Seq(SRC_V, TGT_V, d_model=16, n_heads=2, n_layers=2, d_ff=32, dropout=0.1).eval()


def test_seq2seq_shapes_and_attention(model, batch):
    src, src_len, tgt_in = batch
    logits = model(src, src_len, tgt_in)
    assert logits.shape == (3, 4, TGT_V)
    logits2, att = model(src, src_len, tgt_in, return_attention=True)
    assert torch.equal(logits, logits2)
    assert len(att.encoder) == len(att.decoder) == len(att.cross) == 2
    assert att.encoder[0].shape == (3, 2, 5, 5) and att.decoder[0].shape == (3, 2, 4, 4)
    assert att.cross[1].shape == (3, 2, 4, 5)
    assert (att.cross[0][1, :, :, 3:] == 0).all() and (att.encoder[1][2, :, :, 1:] == 0).all()
    assert torch.allclose(att.cross[1].sum(-1), torch.ones(3, 2, 4), atol=1e-6)


def test_decoder_is_causal(model, batch):
    src, src_len, tgt_in = batch
    changed = tgt_in.clone()
    changed[:, 2] = 10                                          # change target position 2
    a, b = model(src, src_len, tgt_in), model(src, src_len, changed)
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-6)        # earlier positions do not see it
    assert not torch.allclose(a[:, 2:], b[:, 2:], atol=1e-4)    # later ones do


def test_padding_content_does_not_matter(model, batch):
    src, src_len, tgt_in = batch
    other = src.clone()
    other[1, 3:] = 7
    assert torch.allclose(model(src, src_len, tgt_in), model(other, src_len, tgt_in), atol=1e-5)


def test_greedy_equals_teacher_forcing_on_its_own_predictions(model, batch):
    src, src_len, _ = batch
    ids, att = model.greedy_decode(src, src_len, max_len=6, return_attention=True)
    assert ids.shape == (3, 6) and ids.dtype == torch.long
    assert torch.equal(ids, model.greedy_decode(src, src_len, max_len=6))
    tgt_in = torch.cat([torch.ones(3, 1, dtype=torch.long), ids[:, :-1]], dim=1)
    logits, tf_att = model(src, src_len, tgt_in, return_attention=True)
    assert torch.equal(logits.argmax(-1), ids)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(att.cross, tf_att.cross))


def test_post_ln_model_and_gradients(batch):
    torch.manual_seed(1)
    model = TransformerSeq2Seq(SRC_V, TGT_V, d_model=16, n_heads=4, n_layers=1, d_ff=32, norm_first=False)
    src, src_len, tgt_in = batch
    model(src, src_len, tgt_in).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_greedy_bad_max_len(model, batch):
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        model.greedy_decode(batch[0], batch[1], max_len=0)


def test_training_helpers_work_with_autocast_on_cpu(batch):
    """The lesson's GPU path (bf16 autocast in the loss function, backward outside) run on the CPU."""
    from course_utils.data import NumberWordsTask, make_batch
    from course_utils.training import train, translation_accuracy_by_length

    task = NumberWordsTask(min_len=2, max_len=4)
    torch.manual_seed(0)
    model = TransformerSeq2Seq(len(task.src_vocab), len(task.tgt_vocab), d_model=16, n_heads=2, n_layers=1, d_ff=32)
    seen = []

    def loss_fn(m, b):
        with amp_autocast("cpu", enabled=True):
            logits = m(b.src, b.src_len, b.tgt_in)
        seen.append(logits.dtype)
        return F.cross_entropy(logits.float().flatten(0, 1), b.tgt_out.flatten(), ignore_index=0)

    history = train(model, lambda step: make_batch(task.sample(16, seed=step), task.src_vocab, task.tgt_vocab),
                    loss_fn, steps=3, lr=1e-3, progress=False)
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert all(math.isfinite(x) for x in history.loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())   # weights stay float32
    acc = translation_accuracy_by_length(model, task, [2, 3], n_per_length=4)
    assert set(acc) == {2, 3}
    with amp_autocast("cpu", enabled=False):
        assert model(*batch[:2], torch.ones(3, 2, dtype=torch.long)).dtype == torch.float32
    with pytest.raises(ValueError, match="not 'mps'"):
        amp_autocast("mps")


# --------------------------------------------------------------------------- throughput helpers


def test_peak_flops_lookup_and_mfu():
    assert peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_bf16_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_bf16_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert peak_bf16_flops("cpu") is None and peak_bf16_flops("NVIDIA RTX A4000") is None
    # whole-word matching: "L4" is not "L40" or "L40S", "H200" is not "GH200", "A10" is not "A100"
    assert peak_bf16_flops("NVIDIA L4") == 121e12
    assert peak_bf16_flops("NVIDIA L40") == 181e12 and peak_bf16_flops("NVIDIA L40S") == 362e12
    assert peak_bf16_flops("NVIDIA GH200 480GB") == 989e12 and peak_bf16_flops("NVIDIA H200") == 989e12
    assert peak_bf16_flops("NVIDIA A10") == 125e12 and peak_bf16_flops("NVIDIA A100 80GB PCIe") == 312e12
    assert peak_bf16_flops("NVIDIA A10G") is None and peak_bf16_flops("NVIDIA L4X") is None
    assert peak_bf16_flops("NVIDIA H100 NVL") == 835e12 and peak_bf16_flops("nvidia h100 pcie") == 756e12
    assert peak_bf16_flops("Tesla T4") == 65e12 and peak_bf16_flops("Tesla V100-SXM2-16GB") == 125e12
    assert model_flops_utilization(989e12, 2.0, "NVIDIA H100") == pytest.approx(0.5)
    assert model_flops_utilization(1e12, 1.0, "unknown gpu") is None
    with pytest.raises(ValueError, match="seconds must be positive"):
        model_flops_utilization(1.0, 0.0, "H100")
    with pytest.raises(TypeError, match="device_name must be a string"):
        peak_bf16_flops(None)


def test_train_flops_counts_encoder_and_decoder_tokens():
    model = TransformerSeq2Seq(SRC_V, TGT_V, d_model=16, n_heads=2, n_layers=1, d_ff=32)
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_dec = sum(p.numel() for p in model.decoder.parameters()) + 16 * TGT_V + TGT_V
    assert seq2seq_train_flops(model, 10, 0) == 6 * n_enc * 10
    assert seq2seq_train_flops(model, 10, 7) == 6 * (n_enc * 10 + n_dec * 7)
    with pytest.raises(ValueError, match="non-negative"):
        seq2seq_train_flops(model, -1, 0)


@pytest.mark.parametrize("device_type, capability, want", [
    ("cuda", (9, 0), "bf16"), ("cuda", (8, 9), "bf16"), ("cuda", (8, 0), "bf16"),     # H100, L4, A100
    ("cuda", (7, 5), "fp16"), ("cuda", (7, 0), "fp16"),                                # T4, V100: no bf16 cores
    ("cuda", (6, 1), "fp32"), ("cpu", None, "fp32"), ("mps", None, "fp32"),
])
def test_choose_precision(device_type, capability, want):
    assert choose_precision(device_type, capability) == want


def test_choose_precision_needs_the_capability_on_cuda():
    with pytest.raises(ValueError, match="compute capability"):
        choose_precision("cuda")
    with pytest.raises(TypeError, match="device_type must be a string"):
        choose_precision(None)


def test_amp_autocast_fp16_and_bad_dtype():
    lin = nn.Linear(4, 4)
    with amp_autocast("cpu", dtype=torch.float16):
        assert lin(torch.randn(2, 4)).dtype == torch.float16
    with pytest.raises(ValueError, match="bfloat16 or torch.float16"):
        amp_autocast("cpu", dtype=torch.float64)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_measure_training_throughput_counts_timed_steps_only(precision):
    """The GPU path's measurement, run on the CPU: warm-up steps are not timed or counted, and the
    FLOPs and the positions are counted over the same padded tensors."""
    from course_utils.data import NumberWordsTask, make_batch

    task = NumberWordsTask(min_len=2, max_len=5)
    torch.manual_seed(0)
    model = TransformerSeq2Seq(len(task.src_vocab), len(task.tgt_vocab), d_model=16, n_heads=2, n_layers=1, d_ff=32)
    batches = [make_batch(task.sample(8, seed=s), task.src_vocab, task.tgt_vocab) for s in range(5)]
    before = [p.detach().clone() for p in model.parameters()]
    result = measure_training_throughput(model, batches, warmup=2, precision=precision)
    timed = batches[2:]
    assert result.steps == 3 and result.seconds > 0 and result.precision == precision
    assert result.positions == sum(b.src.numel() + b.tgt_in.numel() for b in timed)
    assert result.real_tokens == sum(int(b.src_len.sum() + b.tgt_len.sum()) for b in timed) < result.positions
    assert result.flops == pytest.approx(sum(seq2seq_train_flops(model, b.src.numel(), b.tgt_in.numel()) for b in timed))
    assert result.positions_per_second == pytest.approx(result.positions / result.seconds)
    assert result.mfu("cpu") is None
    assert result.mfu("NVIDIA H100") == pytest.approx(result.flops / result.seconds / 989e12)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))   # it trained
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_measure_training_throughput_errors():
    model = TransformerSeq2Seq(SRC_V, TGT_V, d_model=16, n_heads=2, n_layers=1, d_ff=32)
    with pytest.raises(ValueError, match="more batches"):
        measure_training_throughput(model, [None, None], warmup=2)
    with pytest.raises(ValueError, match="precision must be"):
        measure_training_throughput(model, [None], warmup=0, precision="fp8")


# --------------------------------------------------------------------------- graded check 06.predict_heads


@pytest.mark.parametrize("params, entries, points, words", [
    (lambda d, h: 4 * d * d + 4 * d, lambda B, h, m, n: B * h * m * n, 3, ""),
    (lambda d, h: float(4 * d * d + 4 * d), lambda B, h, m, n: torch.tensor(B * h * m * n), 3, ""),
    (lambda d, h: 4 * d * d + 4 * d, lambda B, h, m, n: B * m * n, 2, "one (m, n) map per sentence and head"),
    (lambda d, h: 4 * d * d, lambda B, h, m, n: B * h * m * n, 1, "have a bias of d entries"),
    (lambda d, h: 3 * d * d + 3 * d, lambda B, h, m, n: B * h * m * n, 1, "output projection W_o"),
    (lambda d, h: h * (4 * d * d + 4 * d), lambda B, h, m, n: B * h * m * n, 1, "changes with the number of heads"),
    # calling the finished module is refused while the check runs
    (lambda d, h: sum(p.numel() for p in MultiHeadAttention(d, h).parameters()), lambda B, h, m, n: B * h * m * n,
     0, "hides the finished multi-head attention"),
    (lambda d, h: sum(p.numel() for p in nn.MultiheadAttention(d, h).parameters()), lambda B, h, m, n: B * h * m * n,
     0, "hides the finished multi-head attention"),
])
def test_predict_heads_feedback(params, entries, points, words):
    from course_utils.grading import run_check

    result = run_check("06.predict_heads", params, entries)
    assert result.points == points and words in result.feedback(), result.feedback()
    assert sum(p.numel() for p in MultiHeadAttention(8, 2).parameters()) == 4 * 64 + 4 * 8   # restored afterwards
