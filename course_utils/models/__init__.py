"""Finished models and attention pieces that lessons build step by step; later lessons import them from here.

    seq2seq.py            lesson 01: the GRU bottleneck encoder-decoder
    attention.py          lesson 02: masked softmax, scaled dot-product attention, four scoring functions
    attention_seq2seq.py  lesson 03: the encoder-decoder with Bahdanau attention
    luong_attention.py    lesson 04: Luong attention (dot/general/concat; global, local-m, local-p) and its seq2seq
    hard_attention.py     lesson 04: soft and hard attention on a lookup, REINFORCE with a baseline
    masks.py              lesson 05: padding and causal masks
    positional.py         lesson 05: sinusoidal and learned positional encodings
    self_attention.py     lesson 05: single-head self-attention, and its rotary variant
    rotary.py             lesson 05: rotary position embeddings (RoPE)
    multihead_attention.py  lesson 06: multi-head attention (split, attend, merge), convertible to torch's
    transformer.py        lesson 06: feed-forward, encoder/decoder blocks and stacks, TransformerSeq2Seq
    beam_search.py        lesson 07: batched beam search with length normalisation over any step function
    pointer.py            lesson 07: the pointer-generator (copy) decoder and its mixed output distribution
    pretrained.py         lesson 08: the shipped MiniLM loaded offline, one layer as MultiHeadAttention, head scores,
                          ablation hooks, rollout, importance (imported as course_utils.models.pretrained: it loads
                          transformers, which the other lessons do not need)
    efficient_attention.py  lesson 09: sliding-window and banded attention, linear attention, online softmax, a tiled
                          FlashAttention-style forward, the KV cache (imported by module path)
    graph_attention.py    lesson 10: GAT and GATv2 layers (attention masked by the adjacency), convertible to PyG's
    memory.py             lesson 11: content and location addressing, the Neural Turing Machine, memory networks
    memory_checkpoint.py  lesson 11: the script that trains the shipped NTM checkpoint (checkpoints/)
    visual_attention.py   lesson 12: a CNN's grid of regions, a GRU captioner with soft, mean-pooled or hard (REINFORCE)
                          attention, the doubly stochastic penalty, the pointing score (imported by module path)
"""

from .seq2seq import GRUEncoder, GRUDecoder, BottleneckSeq2Seq, final_hidden_state, seq2seq_loss
from .attention import (masked_softmax, scaled_dot_product_attention, DotScore, ScaledDotScore, GeneralScore,
                        AdditiveScore)
from .attention_seq2seq import AttentionSeq2Seq
from .luong_attention import LuongAttention, LuongSeq2Seq
from .hard_attention import LookupAttention, reinforce_loss
from .masks import padding_mask, causal_mask, attention_mask
from .positional import sinusoidal_encoding, SinusoidalPositionalEncoding, LearnedPositionalEncoding
from .rotary import apply_rotary, rotary_angles
from .self_attention import SelfAttention, RotarySelfAttention
from .multihead_attention import split_heads, merge_heads, MultiHeadAttention, to_torch_multihead
from .transformer import (FeedForward, EncoderBlock, DecoderBlock, Encoder, Decoder, TransformerSeq2Seq,
                          TransformerAttention, amp_autocast, peak_bf16_flops, seq2seq_train_flops,
                          model_flops_utilization)
from .graph_attention import (edge_index_to_adjacency, add_self_loops, edge_attention, GATLayer, GATv2Layer, GAT,
                              to_pyg)
from .memory import (cosine_similarity, content_addressing, interpolate, circular_shift, sharpen, address,
                     read_memory, write_memory, head_parameters, NTM, CopyLSTM, count_parameters,
                     position_encoding, MemN2N)

__all__ = ["GRUEncoder", "GRUDecoder", "BottleneckSeq2Seq", "final_hidden_state", "seq2seq_loss",
           "masked_softmax", "scaled_dot_product_attention", "DotScore", "ScaledDotScore", "GeneralScore",
           "AdditiveScore", "AttentionSeq2Seq", "LuongAttention", "LuongSeq2Seq",
           "LookupAttention", "reinforce_loss", "padding_mask", "causal_mask", "attention_mask",
           "sinusoidal_encoding", "SinusoidalPositionalEncoding", "LearnedPositionalEncoding",
           "apply_rotary", "rotary_angles", "SelfAttention", "RotarySelfAttention",
           "split_heads", "merge_heads", "MultiHeadAttention", "to_torch_multihead", "FeedForward", "EncoderBlock",
           "DecoderBlock", "Encoder", "Decoder", "TransformerSeq2Seq", "TransformerAttention", "amp_autocast",
           "peak_bf16_flops", "seq2seq_train_flops", "model_flops_utilization",
           "edge_index_to_adjacency", "add_self_loops", "edge_attention", "GATLayer", "GATv2Layer", "GAT", "to_pyg",
           "cosine_similarity", "content_addressing", "interpolate", "circular_shift", "sharpen", "address",
           "read_memory", "write_memory", "head_parameters", "NTM", "CopyLSTM", "count_parameters",
           "position_encoding", "MemN2N"]
