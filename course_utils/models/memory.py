"""Memory-augmented networks as lesson 11 builds them: addressing a memory is attention.

    content addressing    w_c = softmax(beta * cos(k, M_i))            (attention with cosine scores)
    location addressing   w_g = g w_c + (1 - g) w_prev                 (interpolation gate)
                          w_s[i] = sum_j w_g[j] s[(i - j) mod N]       (circular shift)
                          w = w_s^gamma / sum w_s^gamma                (sharpening)
    read                  r = sum_i w[i] M_i
    write                 M_i <- M_i (1 - w[i] e) + w[i] a             (erase, then add)

``NTM`` is a Neural Turing Machine (Graves, Wayne & Danihelka 2014, "Neural Turing Machines") with an
LSTM controller, one read head and one write head; ``location=False`` keeps content addressing only
(the lesson's ablation). ``CopyLSTM`` is the plain LSTM it is compared with on the copy task.
``MemN2N`` is an end-to-end memory network (Sukhbaatar, Szlam, Weston & Fergus 2015, "End-To-End
Memory Networks") with K hops, adjacent weight tying, position and temporal encoding.

Shapes: B batch, N memory slots, M slot width (memory (B, N, M)), S shift offsets (2r + 1, offsets
-r .. r), T time steps; for MemN2N: L story sentences, W words per sentence, V vocabulary, d embedding.
Every tensor a function builds is made on the device of its inputs, so everything also runs on a GPU
(and on torch's meta device).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import masked_softmax


# --------------------------------------------------------------------------- addressing


def cosine_similarity(memory: torch.Tensor, key: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r"""Cosine similarity between a key and every memory row.

    .. math:: K(k, M_i) = \frac{k \cdot M_i}{\max(\lVert k \rVert \lVert M_i \rVert, \epsilon)}

    Args:
        memory: the memory rows.
        key: one key per batch element.
        eps: floor of the norms' product (a zero row or key gets similarity 0, not NaN).

    Shapes:
        - memory: (..., N, M)
        - key: (..., M)
        - output: (..., N), in [-1, 1]
    """
    dot = (memory @ key.unsqueeze(-1)).squeeze(-1)                                     # (..., N)
    norms = memory.norm(dim=-1) * key.norm(dim=-1, keepdim=True)                       # (..., N)
    return dot / norms.clamp_min(eps)


def content_addressing(memory: torch.Tensor, key: torch.Tensor, beta: torch.Tensor,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Content-based addressing: attention over the memory rows with cosine scores.

    .. math:: w_c[i] = \frac{\exp(\beta\, K(k, M_i))}{\sum_j \exp(\beta\, K(k, M_j))}

    This is the course's ``masked_softmax`` applied to the scores ``beta * cos(k, M_i)``: the key is
    the query, the memory rows are the keys, and the key strength ``beta`` plays the role of an
    inverse temperature (lesson 02).

    Args:
        memory: the memory rows.
        key: the key emitted by a head.
        beta: key strength, >= 0 (a plain number or one per batch element).
        mask: optional bool mask over the slots, True = may be addressed.

    Shapes:
        - memory: (..., N, M)
        - key: (..., M)
        - beta: () or (...)
        - mask: broadcastable to (..., N)
        - output: (..., N), each row sums to 1
    """
    beta = torch.as_tensor(beta, dtype=memory.dtype, device=memory.device)
    return masked_softmax(beta.unsqueeze(-1) * cosine_similarity(memory, key), mask, dim=-1)


def interpolate(w_content: torch.Tensor, w_prev: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    r"""The interpolation gate: :math:`w_g = g\, w_c + (1 - g)\, w_{t-1}`.

    ``gate`` = 1 uses the content weighting, 0 keeps the previous weighting (and so lets location
    addressing move on from where the head was).

    Shapes:
        - w_content, w_prev: (..., N)
        - gate: () or (...), in [0, 1]
        - output: (..., N)
    """
    gate = torch.as_tensor(gate, dtype=w_content.dtype, device=w_content.device).unsqueeze(-1)
    return gate * w_content + (1 - gate) * w_prev


def circular_shift(w: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    r"""Rotate a weighting by a distribution over offsets (a circular convolution).

    .. math:: \tilde w[i] = \sum_{k=-r}^{r} s[k]\, w[(i - k) \bmod N]

    ``shift[..., j]`` is the weight of offset ``j - r``: with ``S = 3`` the columns are offsets
    -1, 0, +1, and ``shift = [0, 0, 1]`` moves the focus one slot forward (slot i's weight goes to
    slot i + 1, the last slot's to slot 0).

    Shapes:
        - w: (..., N)
        - shift: (..., S) with S = 2r + 1 odd, each row a distribution
        - output: (..., N)
    """
    S = shift.shape[-1]
    if S % 2 != 1:
        raise ValueError(f"shift needs an odd number of offsets (2r + 1, for -r .. r), got {S}")
    r = S // 2
    rolled = torch.stack([torch.roll(w, shifts=k, dims=-1) for k in range(-r, r + 1)], dim=-1)   # (..., N, S)
    return (rolled * shift.unsqueeze(-2)).sum(-1)


def sharpen(w: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    r"""Sharpening: :math:`w[i]^\gamma / \sum_j w[j]^\gamma`, with :math:`\gamma \ge 1`.

    The weights are divided by their maximum before the power (the result is the same), so a large
    gamma cannot underflow every entry to 0 (0.1 ** 50 is 0 in float32).

    Shapes:
        - w: (..., N), non-negative, not all zero
        - gamma: () or (...)
        - output: (..., N), each row sums to 1
    """
    gamma = torch.as_tensor(gamma, dtype=w.dtype, device=w.device).unsqueeze(-1)
    top = w.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    powered = (w / top) ** gamma
    return powered / powered.sum(dim=-1, keepdim=True)


def address(memory: torch.Tensor, w_prev: torch.Tensor, key: torch.Tensor, beta: torch.Tensor,
            gate: torch.Tensor, shift: torch.Tensor, gamma: torch.Tensor, location: bool = True) -> torch.Tensor:
    """The NTM's addressing pipeline: content, then (if ``location``) gate, shift and sharpen.

    Shapes:
        - memory: (B, N, M) (or (B, 1, N, M) for several heads at once)
        - w_prev: (B, N); key: (B, M); beta, gate, gamma: (B,); shift: (B, S) (each with a head
          dimension after B for several heads)
        - output: (B, N) (or (B, heads, N))
    """
    w = content_addressing(memory, key, beta)
    if location:
        w = sharpen(circular_shift(interpolate(w, w_prev, gate), shift), gamma)
    return w


def read_memory(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r"""The read vector :math:`r = \sum_i w[i]\, M_i`.

    Shapes:
        - memory: (..., N, M); w: (..., N)
        - output: (..., M)
    """
    return (w.unsqueeze(-2) @ memory).squeeze(-2)


def write_memory(memory: torch.Tensor, w: torch.Tensor, erase: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    r"""Erase then add: :math:`M_i \leftarrow M_i \odot (1 - w[i]\, e) + w[i]\, a`.

    Shapes:
        - memory: (..., N, M); w: (..., N); erase (in [0, 1]) and add: (..., M)
        - output: (..., N, M), a new tensor (the input is not modified)
    """
    w = w.unsqueeze(-1)                                                                 # (..., N, 1)
    return memory * (1 - w * erase.unsqueeze(-2)) + w * add.unsqueeze(-2)


# --------------------------------------------------------------------------- the Neural Turing Machine


def head_parameters(raw: torch.Tensor, width: int, n_shift: int, write: bool) -> dict:
    """Split one head's raw controller output into its addressing parameters, each squashed into its range.

    key = tanh, beta = softplus (>= 0), gate = sigmoid (in [0, 1]), shift = softmax over the offsets,
    gamma = 1 + softplus (>= 1); a write head also has erase = sigmoid and add = tanh.

    Shapes:
        - raw: (..., width + 3 + n_shift [+ 2 width for a write head])
        - output: a dict of key (..., M), beta (...), gate (...), shift (..., S), gamma (...),
          and for a write head erase (..., M), add (..., M)
    """
    sizes = [width, 1, 1, n_shift, 1] + ([width, width] if write else [])
    parts = torch.split(raw, sizes, dim=-1)
    out = dict(key=torch.tanh(parts[0]), beta=F.softplus(parts[1]).squeeze(-1),
               gate=torch.sigmoid(parts[2]).squeeze(-1), shift=torch.softmax(parts[3], dim=-1),
               gamma=1 + F.softplus(parts[4]).squeeze(-1))
    if write:
        out["erase"], out["add"] = torch.sigmoid(parts[5]), torch.tanh(parts[6])
    return out


class NTM(nn.Module):
    """A Neural Turing Machine: an LSTM controller, one read head, one write head.

    At each step the controller reads the input and the previous read vector; one linear layer turns
    its state into both heads' parameters (``head_parameters``); both heads address the memory (the
    read head reads the memory as it was before this step's write); the write head erases and adds;
    the output is a linear map of the controller state and the read vector. The memory starts as a
    constant 1e-6 in every slot and both heads start focused on slot 0. The two heads are addressed
    together, as a stack of two, which is the same computation in half as many tensor operations.

    Args:
        input_size: features per input step.
        output_size: outputs (logits) per step.
        hidden: LSTM controller size.
        slots: memory slots N.
        width: slot width M.
        shift_range: r, the largest shift per step.
        location: False keeps content addressing only (no gate, shift or sharpening).

    Shapes:
        - x: (B, T, input_size)
        - output: logits (B, T, output_size); with ``return_weights=True`` also a dict of
          read (B, T, N) and write (B, T, N) weightings
    """

    def __init__(self, input_size: int, output_size: int, hidden: int = 32, slots: int = 16, width: int = 8,
                 shift_range: int = 1, location: bool = True):
        super().__init__()
        self.slots, self.width, self.location, self.n_shift = slots, width, location, 2 * shift_range + 1
        self.read_size = width + 3 + self.n_shift
        self.controller = nn.LSTMCell(input_size + width, hidden)
        self.heads = nn.Linear(hidden, 2 * self.read_size + 2 * width)   # read head, then write head
        self.out = nn.Linear(hidden + width, output_size)
        self.register_buffer("memory_init", torch.full((slots, width), 1e-6))
        w0 = torch.zeros(slots)
        w0[0] = 1.0
        self.register_buffer("w_init", w0)

    def parameters_of_heads(self, h: torch.Tensor) -> tuple[dict, dict]:
        """The read head's and the write head's parameters from the controller state h (B, hidden)."""
        raw = self.heads(h)
        return (head_parameters(raw[:, :self.read_size], self.width, self.n_shift, write=False),
                head_parameters(raw[:, self.read_size:], self.width, self.n_shift, write=True))

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        B, T, _ = x.shape
        memory = self.memory_init.expand(B, -1, -1)                                    # (B, N, M)
        w = self.w_init.expand(B, 2, -1)                                               # (B, 2, N): read, write
        r = read_memory(memory, w[:, 0])
        h = x.new_zeros(B, self.controller.hidden_size)
        c = x.new_zeros(B, self.controller.hidden_size)
        outputs, weights = [], []
        for t in range(T):
            h, c = self.controller(torch.cat([x[:, t], r], dim=-1), (h, c))
            p_r, p_w = self.parameters_of_heads(h)
            both = {k: torch.stack([p_r[k], p_w[k]], dim=1) for k in ("key", "beta", "gate", "shift", "gamma")}
            w = address(memory.unsqueeze(1), w, both["key"], both["beta"], both["gate"], both["shift"],
                        both["gamma"], self.location)                                  # (B, 2, N)
            r = read_memory(memory, w[:, 0])
            memory = write_memory(memory, w[:, 1], p_w["erase"], p_w["add"])
            outputs.append(self.out(torch.cat([h, r], dim=-1)))
            weights.append(w)
        logits = torch.stack(outputs, dim=1)
        if return_weights:
            weights = torch.stack(weights, dim=1)                                      # (B, T, 2, N)
            return logits, dict(read=weights[:, :, 0], write=weights[:, :, 1])
        return logits


class CopyLSTM(nn.Module):
    """The baseline: an LSTM (one or more layers) and a linear output, step by step like the NTM.

    Shapes:
        - x: (B, T, input_size)
        - output: logits (B, T, output_size)
    """

    def __init__(self, input_size: int, output_size: int, hidden: int = 64, layers: int = 1):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(x)[0])


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- end-to-end memory networks


def position_encoding(words: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    r"""Sukhbaatar et al.'s position encoding, :math:`l_{kj} = (1 - j/J) - (k/d)(1 - 2j/J)`.

    A sentence's memory vector is :math:`\sum_j l_j \odot A x_j`, so word order matters a little
    ("Mary dropped" vs "dropped Mary"), unlike a plain bag of words. j = 1..J counts words, k = 1..d
    embedding features.

    Shapes:
        - output: (W, d)
    """
    j = torch.arange(1, words + 1, device=device, dtype=dtype)[:, None]                # (W, 1)
    k = torch.arange(1, dim + 1, device=device, dtype=dtype)[None, :]                  # (1, d)
    return (1 - j / words) - (k / dim) * (1 - 2 * j / words)


class MemN2N(nn.Module):
    """An end-to-end memory network with K hops (Sukhbaatar et al. 2015), adjacent weight tying.

    Embedding matrices E_0 .. E_K (V x d): hop k embeds the story with A_k = E_k (memory keys) and
    C_k = E_{k+1} (memory values); the question is embedded with E_0 and the answer read out with
    E_K^T. Each hop is one attention step over the sentences,

        p = softmax(u . m_i) over the real sentences,   o = sum_i p_i c_i,   u <- u + o,

    with position encoding inside sentences and a learned temporal encoding per sentence (counted
    from the end of the story, so the most recent sentence always has the same code). Word id 0 is
    padding (embedded as zeros); a sentence made only of padding is masked.

    Setting ``linear_start = True`` removes the softmax of the hops (the weights are then the raw
    scores u . m_i on the real sentences): the paper's "linear start", used for the first part of
    training so that the model does not get stuck with attention that never found the facts.

    Args:
        vocab_size: V, with id 0 the padding.
        dim: d.
        hops: K.
        max_sentences: the most sentences a story may have (size of the temporal encoding).

    Shapes:
        - story: (B, L, W) word ids
        - question: (B, W_q) word ids
        - output: logits (B, V) and attention (B, K, L) (each hop's weights over the sentences)
    """

    def __init__(self, vocab_size: int, dim: int = 32, hops: int = 3, max_sentences: int = 20):
        super().__init__()
        self.hops, self.max_sentences = hops, max_sentences
        self.linear_start = False
        self.E = nn.ModuleList([nn.Embedding(vocab_size, dim, padding_idx=0) for _ in range(hops + 1)])
        self.T = nn.ParameterList([nn.Parameter(torch.zeros(max_sentences, dim)) for _ in range(hops + 1)])
        for emb, temporal in zip(self.E, self.T):
            nn.init.normal_(emb.weight, std=0.1)
            nn.init.normal_(temporal, std=0.1)
            with torch.no_grad():
                emb.weight[0].zero_()

    def _embed_sentences(self, ids: torch.Tensor, k: int) -> torch.Tensor:
        """ids (B, L, W) -> (B, L, d) with position encoding and (for the story) temporal encoding."""
        W = ids.shape[-1]
        pe = position_encoding(W, self.E[k].embedding_dim, device=ids.device, dtype=self.E[k].weight.dtype)
        return (self.E[k](ids) * pe).sum(-2)

    def forward(self, story: torch.Tensor, question: torch.Tensor):
        B, L, W = story.shape
        if L > self.max_sentences:
            raise ValueError(f"stories have {L} sentences but the model was built for at most {self.max_sentences}")
        real = (story != 0).any(-1)                                                     # (B, L)
        n_real = real.sum(-1, keepdim=True)                                             # (B, 1)
        # temporal index counted from the end: the last real sentence gets 0 (stories are left-aligned)
        t_index = (n_real - 1 - torch.arange(L, device=story.device)[None, :]).clamp(0, self.max_sentences - 1)
        u = self._embed_sentences(question[:, None, :], 0).squeeze(1)                    # (B, d)
        attention = []
        for k in range(self.hops):
            m = self._embed_sentences(story, k) + self.T[k][t_index]                     # (B, L, d)
            c = self._embed_sentences(story, k + 1) + self.T[k + 1][t_index]             # (B, L, d)
            scores = (m @ u.unsqueeze(-1)).squeeze(-1)                                   # (B, L)
            p = scores * real if self.linear_start else masked_softmax(scores, real)     # (B, L)
            u = u + (p.unsqueeze(-2) @ c).squeeze(-2)                                    # (B, d)
            attention.append(p)
        logits = u @ self.E[self.hops].weight.T                                          # (B, V)
        return logits, torch.stack(attention, dim=1)
