"""Finished models and attention pieces that lessons build step by step; later lessons import them from here.

    seq2seq.py            lesson 01: the GRU bottleneck encoder-decoder
    attention.py          lesson 02: masked softmax, scaled dot-product attention, four scoring functions
    attention_seq2seq.py  lesson 03: the encoder-decoder with Bahdanau attention
    masks.py              lesson 05: padding and causal masks
    positional.py         lesson 05: sinusoidal and learned positional encodings
    self_attention.py     lesson 05: single-head self-attention, and its rotary variant
    rotary.py             lesson 05: rotary position embeddings (RoPE)
"""

from .seq2seq import GRUEncoder, GRUDecoder, BottleneckSeq2Seq, final_hidden_state, seq2seq_loss
from .attention import (masked_softmax, scaled_dot_product_attention, DotScore, ScaledDotScore, GeneralScore,
                        AdditiveScore)
from .attention_seq2seq import AttentionSeq2Seq
from .masks import padding_mask, causal_mask, attention_mask
from .positional import sinusoidal_encoding, SinusoidalPositionalEncoding, LearnedPositionalEncoding
from .rotary import apply_rotary, rotary_angles
from .self_attention import SelfAttention, RotarySelfAttention

__all__ = ["GRUEncoder", "GRUDecoder", "BottleneckSeq2Seq", "final_hidden_state", "seq2seq_loss",
           "masked_softmax", "scaled_dot_product_attention", "DotScore", "ScaledDotScore", "GeneralScore",
           "AdditiveScore", "AttentionSeq2Seq", "padding_mask", "causal_mask", "attention_mask",
           "sinusoidal_encoding", "SinusoidalPositionalEncoding", "LearnedPositionalEncoding",
           "apply_rotary", "rotary_angles", "SelfAttention", "RotarySelfAttention"]
