"""The Transformer of lesson 06: blocks, stacks, and an encoder-decoder for the course's translation task.

    FeedForward       position-wise: W_2 relu(W_1 x + b_1) + b_2, the same at every position
    EncoderBlock      self-attention and feed-forward, each in a residual branch with layer norm
    DecoderBlock      causal self-attention, cross-attention to the encoder, feed-forward
    Encoder, Decoder  stacks of blocks (pre-LN stacks end with one more layer norm)
    TransformerSeq2Seq  embeddings + sinusoidal positions + Encoder + Decoder + output layer, with the
                      call interface of AttentionSeq2Seq (forward, greedy_decode), so the course's
                      training and evaluation helpers work with it

Layer norm placement (``norm_first``): post-LN (Vaswani et al., 2017) computes x = LN(x + f(x));
pre-LN computes x = x + f(LN(x)), which keeps an identity path from the input to the output and
trains deep stacks without a warm-up.

Shapes: B batch, S source length, T target length, d d_model, h heads, V target vocabulary.
Masks are boolean, True = may attend.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn

from .attention_seq2seq import check_source, check_teacher_forcing_inputs
from .masks import causal_mask, padding_mask
from .multihead_attention import MultiHeadAttention
from .positional import SinusoidalPositionalEncoding


class FeedForward(nn.Module):
    """(B, n, d) -> (B, n, d): two linear layers with a ReLU between, applied to each position alone."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.lin1 = nn.Linear(d_model, d_ff)
        self.lin2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.dropout(torch.relu(self.lin1(x))))


class EncoderBlock(nn.Module):
    """forward(x (B, n, d), mask) -> (x (B, n, d), self-attention weights (B, h, n, n))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.norm_first:                                   # x + f(LN(x))
            h = self.norm1(x)
            a, weights = self.self_attn(h, h, h, mask)
            x = x + self.dropout(a)
            x = x + self.dropout(self.ff(self.norm2(x)))
        else:                                                 # LN(x + f(x))
            a, weights = self.self_attn(x, x, x, mask)
            x = self.norm1(x + self.dropout(a))
            x = self.norm2(x + self.dropout(self.ff(x)))
        return x, weights


class DecoderBlock(nn.Module):
    """forward(y (B, T, d), memory (B, S, d), self_mask, memory_mask)
    -> (y (B, T, d), self-attention weights (B, h, T, T), cross-attention weights (B, h, T, S))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.norm_first:
            h = self.norm1(y)
            a, self_w = self.self_attn(h, h, h, self_mask)
            y = y + self.dropout(a)
            a, cross_w = self.cross_attn(self.norm2(y), memory, memory, memory_mask)   # queries from the decoder
            y = y + self.dropout(a)
            y = y + self.dropout(self.ff(self.norm3(y)))
        else:
            a, self_w = self.self_attn(y, y, y, self_mask)
            y = self.norm1(y + self.dropout(a))
            a, cross_w = self.cross_attn(y, memory, memory, memory_mask)
            y = self.norm2(y + self.dropout(a))
            y = self.norm3(y + self.dropout(self.ff(y)))
        return y, self_w, cross_w


class Encoder(nn.Module):
    """A stack of EncoderBlocks. forward(x, mask) -> (x, [weights (B, h, n, n) per layer])."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = True):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be positive, got {n_layers}")
        self.blocks = nn.ModuleList(EncoderBlock(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()   # pre-LN: normalise the sum at the end

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        weights = []
        for block in self.blocks:
            x, w = block(x, mask)
            weights.append(w)
        return self.norm(x), weights


class Decoder(nn.Module):
    """A stack of DecoderBlocks. forward(y, memory, self_mask, memory_mask) -> (y, [self weights], [cross weights])."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = True):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be positive, got {n_layers}")
        self.blocks = nn.ModuleList(DecoderBlock(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, y: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None):
        self_ws, cross_ws = [], []
        for block in self.blocks:
            y, sw, cw = block(y, memory, self_mask, memory_mask)
            self_ws.append(sw)
            cross_ws.append(cw)
        return self.norm(y), self_ws, cross_ws


@dataclass
class TransformerAttention:
    """Every attention map of one forward pass, one (B, h, queries, keys) tensor per layer."""

    encoder: list[torch.Tensor]   # (B, h, S, S)
    decoder: list[torch.Tensor]   # (B, h, T, T), causal
    cross: list[torch.Tensor]     # (B, h, T, S)


class TransformerSeq2Seq(nn.Module):
    """Encoder-decoder Transformer with the interface of AttentionSeq2Seq.

    ``forward(src, src_len, tgt_in)`` returns teacher-forced logits (B, T, V); with
    ``return_attention=True`` it returns (logits, TransformerAttention).
    ``greedy_decode(src, src_len, max_len)`` returns ids (B, max_len); with ``return_attention=True``
    also the TransformerAttention of the decoded sequence.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, d_ff: int | None = None, dropout: float = 0.1, max_len: int = 128,
                 norm_first: bool = True):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.d_model = d_model
        self.src_embed = nn.Embedding(src_vocab_size, d_model, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=0)
        self.pos = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, dropout, norm_first)
        self.decoder = Decoder(n_layers, d_model, n_heads, d_ff, dropout, norm_first)
        self.out = nn.Linear(d_model, tgt_vocab_size)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor):
        """-> memory (B, S, d), source mask (B, 1, 1, S) True at real tokens, encoder weights per layer."""
        check_source(src, src_len)
        mask = padding_mask(src_len.to(src.device), src.shape[1])[:, None, None, :]   # (B, 1, 1, S)
        memory, weights = self.encoder(self.pos(self.src_embed(src)), mask)           # (B, S, d)
        return memory, mask, weights

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor):
        """tgt_in (B, T) -> logits (B, T, V), decoder self weights, cross weights. Position t sees tgt_in[:, :t+1]."""
        self_mask = causal_mask(tgt_in.shape[1], device=tgt_in.device)                 # (T, T)
        y, self_ws, cross_ws = self.decoder(self.pos(self.tgt_embed(tgt_in)), memory, self_mask, src_mask)
        return self.out(y), self_ws, cross_ws

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor, return_attention: bool = False):
        """Teacher forcing: all target positions at once, the causal mask hides the future."""
        check_teacher_forcing_inputs(src, src_len, tgt_in)
        memory, src_mask, enc_ws = self.encode(src, src_len)
        logits, self_ws, cross_ws = self.decode(tgt_in, memory, src_mask)
        if return_attention:
            return logits, TransformerAttention(enc_ws, self_ws, cross_ws)
        return logits

    def attention_weights(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> TransformerAttention:
        """Teacher-forced attention maps of every layer and head."""
        with torch.no_grad():
            return self.forward(src, src_len, tgt_in, return_attention=True)[1]

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_len: torch.Tensor, max_len: int, bos_id: int = 1,
                      return_attention: bool = False):
        """Greedy decoding: encode once, then re-run the (causal) decoder on the growing prefix.

        -> ids (B, max_len) [, TransformerAttention of the decoded sequence]. No key/value cache: the
        decoder re-reads the prefix at every step, which is simple and, for our short sentences, cheap.
        """
        if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        memory, src_mask, enc_ws = self.encode(src, src_len)
        ys = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)   # (B, 1)
        for _ in range(max_len):
            logits, _, _ = self.decode(ys, memory, src_mask)                                 # (B, t, V)
            ys = torch.cat([ys, logits[:, -1].argmax(-1, keepdim=True)], dim=1)              # (B, t + 1)
        ids = ys[:, 1:]                                                                      # (B, max_len)
        if return_attention:
            _, self_ws, cross_ws = self.decode(ys[:, :-1], memory, src_mask)   # causal: same maps as step by step
            return ids, TransformerAttention(enc_ws, self_ws, cross_ws)
        return ids


# --------------------------------------------------------------------------- mixed precision, throughput, MFU


def amp_autocast(device: torch.device | str, enabled: bool = True):
    """The autocast context for a training step: bf16 on CUDA and CPU, or nothing when disabled.

    bf16 has float32's exponent range, so no GradScaler is needed (fp16 would need one). Compute the
    loss inside the context and call backward() outside it.
    """
    device = torch.device(device)
    if not enabled:
        return nullcontext()
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"bf16 autocast is set up for cuda and cpu here, not {device.type!r}; pass enabled=False")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)



# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, looked up by device name.
# More specific names come first ("H100 PCIe" before "H100").
PEAK_BF16_FLOPS = (
    ("GH200", 989e12), ("H200", 989e12), ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12),
    ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("RTX 4090", 165e12),
)


def peak_bf16_flops(device_name: str) -> float | None:
    """The device's dense bf16 peak in FLOP/s, or None when the name is not in PEAK_BF16_FLOPS."""
    if not isinstance(device_name, str):
        raise TypeError(f"device_name must be a string, got {type(device_name).__name__}")
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in device_name.lower():
            return flops
    return None


def seq2seq_train_flops(model: TransformerSeq2Seq, src_tokens: int, tgt_tokens: int) -> float:
    """Approximate training FLOPs (forward and backward) for a batch: 6 x parameters x tokens.

    Each source token passes through the encoder's parameters, each target token through the
    decoder's and the output layer's; embeddings are lookups and cost nothing. Attention's own
    products (about 12 L n d per token) are left out: for short sentences they are small.
    """
    if src_tokens < 0 or tgt_tokens < 0:
        raise ValueError(f"token counts must be non-negative, got {src_tokens} and {tgt_tokens}")
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_dec = sum(p.numel() for p in model.decoder.parameters()) + sum(p.numel() for p in model.out.parameters())
    return 6.0 * (n_enc * src_tokens + n_dec * tgt_tokens)


def model_flops_utilization(flops: float, seconds: float, device_name: str) -> float | None:
    """Achieved FLOP/s over the device's bf16 peak (0..1), or None for an unknown device."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    peak = peak_bf16_flops(device_name)
    return None if peak is None else flops / seconds / peak
