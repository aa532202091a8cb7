"""The Transformer of lesson 06: blocks, stacks, and an encoder-decoder for the course's translation task.

    FeedForward       position-wise: W_2 relu(W_1 x + b_1) + b_2, the same at every position
    EncoderBlock      self-attention and feed-forward, each in a residual branch with layer norm
    DecoderBlock      causal self-attention, cross-attention to the encoder, feed-forward
    Encoder, Decoder  stacks of blocks (pre-LN stacks end with one more layer norm)
    TransformerSeq2Seq  embeddings + sinusoidal positions + Encoder + Decoder + output layer, with the
                      call interface of AttentionSeq2Seq (forward, greedy_decode), so the course's
                      training and evaluation helpers work with it

Layer norm placement (``norm_first``): post-LN (Vaswani et al., 2017) computes x = LN(x + f(x));
pre-LN computes x = x + f(LN(x)), which keeps an identity path from the input to the output. Xiong
et al. (2020, "On Layer Normalization in the Transformer Architecture") show that at initialisation
post-LN's gradients are largest for the parameters near the output, which is why it needs a
learning-rate warm-up, and that pre-LN trained without one in their experiments.

Shapes: B batch, S source length, T target length, d d_model, h heads, V target vocabulary.
Masks are boolean, True = may attend, and broadcast against (B, h, queries, keys) scores; the blocks
pass them to ``MultiHeadAttention`` as its ``mask`` (4-D, or a 2-D (queries, keys) mask shared by
the batch).
"""

from __future__ import annotations

import time
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
        self_mask = causal_mask(tgt_in.shape[1], device=tgt_in.device)[None, None]     # (1, 1, T, T): any batch size
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


def choose_precision(device_type: str, capability: tuple[int, int] | None = None) -> str:
    """The training precision for a device: "bf16", "fp16" (with a GradScaler) or "fp32".

    bf16 only where the GPU has bf16 tensor cores (CUDA compute capability 8.0 or more: A100, L4,
    RTX 30xx/40xx, H100, ...); fp16 tensor cores (capability 7.x: V100, T4, RTX 20xx) get fp16, whose
    narrow exponent range needs a gradient scaler; older GPUs, CPUs and other devices stay in fp32.
    ``capability`` is ``torch.cuda.get_device_capability()``; taking it as an argument lets the rule be
    tested without a GPU.
    """
    if not isinstance(device_type, str):
        raise TypeError(f"device_type must be a string such as 'cuda' or 'cpu', got {type(device_type).__name__}")
    if device_type != "cuda":
        return "fp32"
    if capability is None:
        raise ValueError("for a cuda device, pass its compute capability, e.g. torch.cuda.get_device_capability()")
    major = int(capability[0])
    if major >= 8:
        return "bf16"
    return "fp16" if major >= 7 else "fp32"


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_autocast(device: torch.device | str, enabled: bool = True, dtype: torch.dtype = torch.bfloat16):
    """The autocast context for a training step (bf16 by default), or nothing when disabled.

    bf16 has float32's exponent range, so it needs no GradScaler; fp16 (``dtype=torch.float16``) does.
    Compute the loss inside the context and call backward() outside it. Use ``choose_precision`` to
    decide: bf16 autocast on a GPU without bf16 tensor cores is emulated and slow.
    """
    device = torch.device(device)
    if not enabled:
        return nullcontext()
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"autocast is set up for cuda and cpu here, not {device.type!r}; pass enabled=False")
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"autocast dtype must be torch.bfloat16 or torch.float16, got {dtype}")
    return torch.autocast(device_type=device.type, dtype=dtype)


# Dense 16-bit (bf16 or fp16, fp32 accumulation) tensor-core peaks in FLOP/s, from the vendors' data
# sheets, keyed by model name. A key matches only as a whole word of the device name ("L4" matches
# "NVIDIA L4" but not "NVIDIA L40S"; "H200" does not match "GH200"); longer keys are tried first.
PEAK_BF16_FLOPS = (
    ("GH200", 989e12), ("H200", 989e12), ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12),
    ("A100", 312e12), ("A10", 125e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12), ("RTX 4090", 165e12),
    ("V100", 125e12), ("T4", 65e12),
)


def _name_matches(key: str, device_name: str) -> bool:
    import re
    pattern = r"(?<![A-Za-z0-9])" + r"[\s_-]+".join(map(re.escape, key.split())) + r"(?![A-Za-z0-9])"
    return re.search(pattern, device_name, flags=re.IGNORECASE) is not None


def peak_bf16_flops(device_name: str) -> float | None:
    """The device's dense 16-bit tensor-core peak in FLOP/s, or None when no key of PEAK_BF16_FLOPS
    matches a whole word of the name. (V100 and T4 have no bf16: their entry is the fp16 peak.)"""
    if not isinstance(device_name, str):
        raise TypeError(f"device_name must be a string, got {type(device_name).__name__}")
    for key, flops in sorted(PEAK_BF16_FLOPS, key=lambda kv: -len(kv[0])):
        if _name_matches(key, device_name):
            return flops
    return None


def seq2seq_train_flops(model: TransformerSeq2Seq, src_tokens: int, tgt_tokens: int) -> float:
    """Approximate training FLOPs (forward and backward) for a batch: 6 x parameters x tokens.

    Each source token passes through the encoder's parameters, each target token through the
    decoder's and the output layer's; embeddings are lookups and cost nothing. Attention's own
    products (about 12 L n d per token) are left out: for short sentences they are small. Count the
    positions the model computes (padding included: ``src.numel()``, ``tgt_in.numel()``), and divide
    by the same positions when you report tokens per second.
    """
    if src_tokens < 0 or tgt_tokens < 0:
        raise ValueError(f"token counts must be non-negative, got {src_tokens} and {tgt_tokens}")
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_dec = sum(p.numel() for p in model.decoder.parameters()) + sum(p.numel() for p in model.out.parameters())
    return 6.0 * (n_enc * src_tokens + n_dec * tgt_tokens)


def model_flops_utilization(flops: float, seconds: float, device_name: str) -> float | None:
    """Achieved FLOP/s over the device's 16-bit peak (0..1), or None for an unknown device."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    peak = peak_bf16_flops(device_name)
    return None if peak is None else flops / seconds / peak


@dataclass
class Throughput:
    """What ``measure_training_throughput`` timed: only the steps after the warm-up."""

    steps: int            # timed steps
    seconds: float        # wall time of the timed steps, one synchronisation at each end
    positions: int        # source + target positions computed in the timed steps, padding included
    real_tokens: int      # of which real (non-padding) tokens
    flops: float          # seq2seq_train_flops over the same positions
    precision: str        # "bf16", "fp16" or "fp32"

    @property
    def positions_per_second(self) -> float:
        return self.positions / self.seconds

    def mfu(self, device_name: str) -> float | None:
        return model_flops_utilization(self.flops, self.seconds, device_name)


def measure_training_throughput(model: TransformerSeq2Seq, batches: list, *, lr: float = 1e-3, warmup: int = 3,
                                precision: str = "fp32") -> Throughput:
    """Train ``model`` on pre-made ``batches`` (already on the model's device) and time the steps after
    the first ``warmup`` ones, with one device synchronisation before and one after the timed steps.

    Each batch needs src, src_len, tgt_in, tgt_out, tgt_len. ``precision`` comes from
    ``choose_precision``: "bf16" or "fp16" autocast (fp16 with a GradScaler), or "fp32". The FLOPs and
    the positions are counted over the same padded (B, S) and (B, T) tensors. The model is trained by
    this call: pass a copy if it matters.
    """
    if precision not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be 'bf16', 'fp16' or 'fp32', got {precision!r}")
    if not isinstance(warmup, int) or warmup < 0 or len(batches) <= warmup:
        raise ValueError(f"need more batches ({len(batches)}) than warm-up steps ({warmup})")
    device = next(model.parameters()).device
    amp = precision != "fp32"
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()

    def step(b):
        with amp_autocast(device, enabled=amp, dtype=AUTOCAST_DTYPES.get(precision, torch.bfloat16)):
            logits = model(b.src, b.src_len, b.tgt_in)
        loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), b.tgt_out.flatten(), ignore_index=0)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for b in batches[:warmup]:
        step(b)
    timed = batches[warmup:]
    positions = sum(b.src.numel() + b.tgt_in.numel() for b in timed)
    real = sum(int(b.src_len.sum()) + int(b.tgt_len.sum()) for b in timed)
    flops = sum(seq2seq_train_flops(model, b.src.numel(), b.tgt_in.numel()) for b in timed)
    sync()
    start = time.perf_counter()
    for b in timed:
        step(b)
    sync()
    seconds = max(time.perf_counter() - start, 1e-9)
    return Throughput(len(timed), seconds, positions, real, flops, precision)
