"""Every model and mask helper of course_utils runs with its parameters and inputs on torch's ``meta``
device.

A meta tensor has a shape and a dtype but no values, and torch refuses to mix it with a CPU tensor
("Tensor on device meta is not on the expected device cpu"). So a helper that builds a tensor on the
CPU (``torch.arange(n)``, ``torch.full(...)`` without ``device=``) and mixes it with its inputs fails
here exactly as it would fail on a GPU, and this test catches the bug on a machine without one.

Value checks (lengths in range) cannot look at meta values; the helpers skip them for meta tensors,
and the unit tests of each model test them on the CPU.
"""

from __future__ import annotations

import pytest
import torch

import course_utils.models as models
from course_utils.data.babi import BabiTask, babi_vocab
from course_utils.data.copy_task import copy_batch
from course_utils.data.lookup import LookupTask

META = torch.device("meta")
B, S, T, V_SRC, V_TGT = 3, 7, 5, 11, 13


def _meta(*tensors):
    out = tuple(t.to(META) for t in tensors)
    return out[0] if len(out) == 1 else out


def _seq2seq_inputs():
    src = torch.randint(3, V_SRC, (B, S))
    src_len = torch.tensor([S, 4, 2])
    tgt_in = torch.randint(3, V_TGT, (B, T))
    return src, src_len, tgt_in


def _run_seq2seq(model):
    src, src_len, tgt_in = _seq2seq_inputs()
    model = model.to(META)
    for lengths in (src_len, _meta(src_len)):  # lengths kept on the CPU (as packing wants) or with the data
        logits = model(_meta(src), lengths, _meta(tgt_in))
        assert logits.device == META and logits.shape == (B, T, V_TGT)
        ids = model.greedy_decode(_meta(src), lengths, max_len=4)
        assert ids.device == META and ids.shape == (B, 4)


def case_masks():
    lengths = _meta(torch.tensor([5, 2, 3]))
    assert models.padding_mask(lengths, 5).device == META
    assert models.causal_mask(4, device=META).device == META
    for causal in (False, True):
        mask = models.attention_mask(lengths, 5, 5, causal=causal)
        assert mask.device == META and mask.shape == (3, 1, 5, 5)


def case_attention_primitives():
    q, k, v = _meta(torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3))
    mask = _meta(torch.ones(2, 4, 6, dtype=torch.bool))
    assert models.masked_softmax(q @ k.transpose(-2, -1), mask).device == META
    out, w = models.scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == (2, 4, 3) and w.device == META
    for score in (models.DotScore(), models.ScaledDotScore(), models.GeneralScore(8, 8), models.AdditiveScore(8, 8, 5)):
        assert score.to(META)(q, k).shape == (2, 4, 6)


def case_positional():
    x = _meta(torch.randn(2, 6, 8))
    assert models.sinusoidal_encoding(6, 8).shape == (6, 8)
    for module in (models.SinusoidalPositionalEncoding(8, 16), models.LearnedPositionalEncoding(8, 16)):
        assert module.to(META)(x).device == META
    positions = _meta(torch.arange(6))
    assert models.rotary_angles(positions, 8).device == META
    assert models.apply_rotary(x).device == META
    assert models.apply_rotary(x, positions).device == META


def case_self_attention():
    x = _meta(torch.randn(2, 6, 8))
    keep = models.padding_mask(_meta(torch.tensor([6, 3])), 6)
    for cls in (models.SelfAttention, models.RotarySelfAttention):
        layer = cls(8).to(META)
        out, w = layer(x, key_padding_mask=keep)
        assert out.device == META and w.shape == (2, 6, 6)
        out, w = layer(x, models.causal_mask(6, device=META))
        assert out.device == META


def case_multihead():
    x, mem = _meta(torch.randn(2, 6, 8), torch.randn(2, 5, 8))
    assert models.merge_heads(models.split_heads(x, 2)).shape == (2, 6, 8)
    mha = models.MultiHeadAttention(8, 2).to(META)
    keep = models.padding_mask(_meta(torch.tensor([5, 2])), 5)
    out, w = mha(x, mem, mem, key_padding_mask=keep)
    assert out.device == META and w.shape == (2, 2, 6, 5)
    out, w = mha(x, x, x, models.causal_mask(6, device=META))
    assert out.device == META
    assert next(models.to_torch_multihead(mha).parameters()).device == META


def case_transformer_blocks():
    x, mem = _meta(torch.randn(2, 6, 8), torch.randn(2, 5, 8))
    assert models.FeedForward(8, 16).to(META)(x).device == META
    src_mask = models.padding_mask(_meta(torch.tensor([5, 2])), 5)[:, None, None, :]
    enc_in_mask = models.padding_mask(_meta(torch.tensor([6, 2])), 6)[:, None, None, :]
    assert models.EncoderBlock(8, 2, 16).to(META)(x, enc_in_mask)[0].device == META
    assert models.Encoder(2, 8, 2, 16).to(META)(x, enc_in_mask)[0].device == META
    causal = models.causal_mask(6, device=META)
    assert models.DecoderBlock(8, 2, 16).to(META)(x, mem, causal, src_mask)[0].device == META
    assert models.Decoder(2, 8, 2, 16).to(META)(x, mem, causal, src_mask)[0].device == META


def case_transformer_seq2seq():
    model = models.TransformerSeq2Seq(V_SRC, V_TGT, d_model=16, n_heads=2, n_layers=1, dropout=0.0)
    _run_seq2seq(model)


def case_gru_seq2seq():
    src, src_len, tgt_in = _seq2seq_inputs()
    enc = models.GRUEncoder(V_SRC, 8, 16).to(META)
    outputs, final = enc(_meta(src), src_len)
    assert final.device == META and final.shape == (B, 16)
    assert models.final_hidden_state(outputs, src_len).device == META
    assert models.final_hidden_state(outputs, _meta(src_len)).device == META
    dec = models.GRUDecoder(V_TGT, 8, 16).to(META)
    logits, _ = dec(_meta(tgt_in), final)
    assert models.seq2seq_loss(logits, _meta(tgt_in)).device == META
    _run_seq2seq(models.BottleneckSeq2Seq(V_SRC, V_TGT, 8, 16))


def case_attention_seq2seq():
    _run_seq2seq(models.AttentionSeq2Seq(V_SRC, V_TGT, 8, 16))


def case_luong():
    for window in ("global", "local-m", "local-p"):
        for score in ("dot", "general", "concat"):
            _run_seq2seq(models.LuongSeq2Seq(V_SRC, V_TGT, 8, 16, score=score, window=window))


def case_hard_attention():
    batch = LookupTask().sample(4, seed=0).to(META)
    model = models.LookupAttention(16, 10).to(META)
    for mode in ("soft", "hard"):
        model.eval()
        logits, weights, _ = model(batch, mode)
        assert logits.device == META and weights.shape == (4, 8)
    log_prob = _meta(torch.randn(4))
    assert models.reinforce_loss(log_prob, _meta(torch.rand(4)), _meta(torch.tensor(0.5))).device == META


def case_graph_attention():
    x = _meta(torch.randn(2, 5, 6))
    adj = _meta(torch.ones(5, 5, dtype=torch.bool))
    for layer in (models.GATLayer(6, 4, heads=2), models.GATv2Layer(6, 4, heads=2, concat=False)):
        out, w = layer.to(META)(x, adj)
        assert out.device == META and w.shape == (2, 2, 5, 5)
    assert models.GAT(6, 4, 3, heads=2).to(META)(x, adj)[0].shape == (2, 5, 3)
    edge_index = _meta(torch.tensor([[0, 1, 2], [1, 2, 0]]))
    a = models.edge_index_to_adjacency(edge_index, 3)
    assert a.device == META and models.add_self_loops(a).device == META
    assert models.edge_attention(_meta(torch.rand(2, 3, 3)), edge_index).shape == (3, 2)
    assert next(models.to_pyg(models.GATLayer(6, 4).to(META)).parameters()).device == META


def case_memory():
    N, M = 6, 4
    memory, key = _meta(torch.randn(2, N, M), torch.randn(2, M))
    w_prev, beta, gate, gamma = _meta(torch.rand(2, N), torch.rand(2), torch.rand(2), 1 + torch.rand(2))
    shift = _meta(torch.softmax(torch.randn(2, 3), -1))
    assert models.cosine_similarity(memory, key).shape == (2, N)
    w = models.content_addressing(memory, key, beta)
    assert w.device == META
    assert models.sharpen(models.circular_shift(models.interpolate(w, w_prev, gate), shift), gamma).device == META
    assert models.address(memory, w_prev, key, beta, gate, shift, gamma).shape == (2, N)
    assert models.read_memory(memory, w).shape == (2, M)
    assert models.write_memory(memory, w, *_meta(torch.rand(2, M), torch.randn(2, M))).shape == (2, N, M)
    params = models.head_parameters(_meta(torch.randn(2, 3 * M + 3 + 3)), M, 3, write=True)
    assert params["add"].device == META and params["shift"].shape == (2, 3)
    x = copy_batch(2, 3, 6).inputs.to(META)
    for location in (True, False):
        ntm = models.NTM(7, 6, hidden=8, slots=N, width=M, location=location).to(META)
        logits, weights = ntm(x, return_weights=True)
        assert logits.device == META and weights["write"].shape[-1] == N
    lstm = models.CopyLSTM(7, 6, hidden=8).to(META)
    assert lstm(x).device == META and models.count_parameters(lstm) > 0
    batch = BabiTask(1).batch(4, seed=0).to(META)
    memn2n = models.MemN2N(len(babi_vocab()), dim=8, hops=2, max_sentences=12).to(META)
    logits, attention = memn2n(batch.story, batch.question)
    assert logits.device == META and attention.device == META
    assert models.position_encoding(5, 8, device=META).device == META


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}

# What each case covers; every name that course_utils.models exports must appear once, so a new model
# or helper cannot be added without a meta-device run (or a reason it needs none, below).
COVERED = {
    "masks": ["padding_mask", "causal_mask", "attention_mask"],
    "attention_primitives": ["masked_softmax", "scaled_dot_product_attention", "DotScore", "ScaledDotScore",
                             "GeneralScore", "AdditiveScore"],
    "positional": ["sinusoidal_encoding", "SinusoidalPositionalEncoding", "LearnedPositionalEncoding",
                   "rotary_angles", "apply_rotary"],
    "self_attention": ["SelfAttention", "RotarySelfAttention"],
    "multihead": ["split_heads", "merge_heads", "MultiHeadAttention", "to_torch_multihead"],
    "transformer_blocks": ["FeedForward", "EncoderBlock", "Encoder", "DecoderBlock", "Decoder"],
    "transformer_seq2seq": ["TransformerSeq2Seq", "TransformerAttention"],
    "gru_seq2seq": ["GRUEncoder", "GRUDecoder", "BottleneckSeq2Seq", "final_hidden_state", "seq2seq_loss"],
    "attention_seq2seq": ["AttentionSeq2Seq"],
    "luong": ["LuongAttention", "LuongSeq2Seq"],
    "hard_attention": ["LookupAttention", "reinforce_loss"],
    "graph_attention": ["edge_index_to_adjacency", "add_self_loops", "edge_attention", "GATLayer", "GATv2Layer",
                        "GAT", "to_pyg"],
    "memory": ["cosine_similarity", "content_addressing", "interpolate", "circular_shift", "sharpen", "address",
               "read_memory", "write_memory", "head_parameters", "NTM", "CopyLSTM", "count_parameters",
               "position_encoding", "MemN2N"],
}
# Exports that build no tensors from inputs: numbers about GPUs and FLOPs, and a context manager.
NO_TENSORS = {"amp_autocast", "peak_bf16_flops", "seq2seq_train_flops", "model_flops_utilization"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_runs_on_meta_device(case):
    CASES[case]()


def test_every_export_is_covered():
    listed = [name for names in COVERED.values() for name in names]
    assert len(listed) == len(set(listed)), "a name is listed under two cases"
    assert set(COVERED) == set(CASES)
    missing = set(models.__all__) - set(listed) - NO_TENSORS
    assert not missing, f"course_utils.models exports {sorted(missing)} without a meta-device case"
    unknown = set(listed) - set(models.__all__)
    assert not unknown, f"cases list names that course_utils.models does not export: {sorted(unknown)}"


def test_a_cpu_tensor_mixed_in_is_caught():
    """The premise of this file: building a tensor on the CPU and mixing it with meta inputs raises."""
    lengths = _meta(torch.tensor([3, 1]))
    with pytest.raises(RuntimeError, match="device"):
        torch.arange(3).unsqueeze(0) < lengths.unsqueeze(1)
