"""Soft and hard attention on a key-value lookup (lesson 04), and REINFORCE with a baseline.

Soft attention reads the weighted average of all n values, c = sum_i alpha_i v_i, and is trained by
backpropagation. Hard attention SAMPLES one position, i ~ Categorical(alpha), and reads only v_i.
Sampling has no gradient, so the attention is trained with REINFORCE (Williams, 1992): with a reward
R (here log p(answer | v_i)) and a baseline b,

    grad E[R] = E[(R - b) grad log alpha_i],    loss = -(R - b).detach() * log alpha_i,

which is unbiased for any b that does not depend on the sampled i; a good b (here a moving average
of past rewards) makes the estimate far less noisy. The reader of the value (the output layer) is
trained by ordinary backpropagation through the value it read.

Shapes: B batch, n pairs per table, d embedding size, V value vocabulary.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import ScaledDotScore

MODES = ("soft", "hard")


def sample_position(weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One position per row drawn from (B, n) attention weights: (B,) long."""
    return torch.multinomial(weights, 1, generator=generator).squeeze(-1)


def reinforce_loss(log_prob_chosen: torch.Tensor, reward: torch.Tensor, baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """REINFORCE surrogate: -mean((R - b) * log pi(chosen)). Reward and baseline carry no gradient."""
    advantage = torch.as_tensor(reward).detach() - torch.as_tensor(baseline, dtype=log_prob_chosen.dtype).detach()
    return -(advantage.to(log_prob_chosen.device) * log_prob_chosen).mean()


class MovingAverageBaseline:
    """b <- momentum * b + (1 - momentum) * mean reward; starts at the first batch's mean reward."""

    def __init__(self, momentum: float = 0.9):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum, self.value = momentum, None

    def __call__(self) -> float:
        return 0.0 if self.value is None else self.value

    def update(self, reward: torch.Tensor) -> None:
        mean = float(reward.detach().mean())
        self.value = mean if self.value is None else self.momentum * self.value + (1 - self.momentum) * mean


class LookupAttention(nn.Module):
    """Attend from the query over a table's keys; read the values softly (average) or hardly (one).

    ``forward(batch, mode)`` returns (logits (B, V), weights (B, n), chosen (B,) or None). In hard
    mode a training model samples the position and an evaluating model (``model.eval()``) takes the
    most likely one. ``values_read`` counts the value vectors read so far.
    """

    def __init__(self, n_keys: int, n_values: int, d: int = 16):
        super().__init__()
        self.query_embed = nn.Embedding(n_keys, d)
        self.key_embed = nn.Embedding(n_keys, d)
        self.score = ScaledDotScore()
        self.value_embed = nn.Embedding(n_values, d)
        self.out = nn.Linear(d, n_values)
        self.values_read = 0

    def attention_parameters(self) -> list[nn.Parameter]:
        """The parameters that only the attention (the scores) uses."""
        return [self.query_embed.weight, self.key_embed.weight]

    def weights(self, batch) -> torch.Tensor:
        """(B, n) attention weights of each query over its table's keys."""
        q = self.query_embed(batch.query).unsqueeze(1)                        # (B, 1, d)
        return torch.softmax(self.score(q, self.key_embed(batch.keys)).squeeze(1), dim=-1)

    def forward(self, batch, mode: str = "soft", generator: torch.Generator | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        weights = self.weights(batch)                                         # (B, n)
        values = self.value_embed(batch.values)                               # (B, n, d)
        if mode == "soft":
            self.values_read += values.shape[0] * values.shape[1]
            return self.out((weights.unsqueeze(1) @ values).squeeze(1)), weights, None
        chosen = sample_position(weights.detach(), generator) if self.training else weights.argmax(-1)   # (B,)
        read = values[torch.arange(values.shape[0], device=values.device), chosen]                      # (B, d)
        self.values_read += read.shape[0]
        return self.out(read), weights, chosen


def soft_loss(model: LookupAttention, batch) -> torch.Tensor:
    """Cross-entropy of the answer read through soft attention."""
    logits, _, _ = model(batch, "soft")
    return F.cross_entropy(logits, batch.target)


def hard_loss(model: LookupAttention, batch, baseline: MovingAverageBaseline | float | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Hard attention's training loss: cross-entropy through the value read, plus REINFORCE for the choice.

    The reward is log p(answer | value read). ``baseline`` is subtracted from it: a
    MovingAverageBaseline (read, then updated with this batch's rewards), a fixed number, or None
    for no baseline (b = 0).
    """
    logits, weights, chosen = model(batch, "hard", generator)
    nll = F.cross_entropy(logits, batch.target, reduction="none")             # (B,)
    reward = -nll.detach()                                                    # R = log p(answer | v_i)
    log_prob = torch.log(weights.gather(1, chosen.unsqueeze(1)).squeeze(1).clamp_min(1e-12))   # log alpha_i
    if isinstance(baseline, MovingAverageBaseline):
        b = baseline()
        baseline.update(reward)
    else:
        b = 0.0 if baseline is None else float(baseline)
    return nll.mean() + reinforce_loss(log_prob, reward, b)


@torch.no_grad()
def lookup_accuracy(model: LookupAttention, batch, mode: str) -> float:
    """Share of queries answered right (hard mode reads the most likely position)."""
    was_training = model.training
    model.eval()
    logits, _, _ = model(batch, mode)
    model.train(was_training)
    return float((logits.argmax(-1) == batch.target).float().mean())


def gradient_samples(model: nn.Module, loss_fn: Callable[[nn.Module, object], torch.Tensor], batches: Iterable,
                     params: list[nn.Parameter]) -> torch.Tensor:
    """One flattened gradient of ``params`` per batch, stacked: (K, P). The model is not updated."""
    grads = []
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]))
    model.zero_grad(set_to_none=True)
    return torch.stack(grads)


def relative_variance(grads: torch.Tensor) -> float:
    """Noise-to-signal ratio of K gradient estimates (K, P): mean ||g_k - mean g||^2 / ||mean g||^2."""
    if grads.dim() != 2 or grads.shape[0] < 2:
        raise ValueError(f"need at least two gradient estimates as (K, P), got shape {tuple(grads.shape)}")
    mean = grads.mean(0)
    return float(((grads - mean) ** 2).sum(-1).mean() / mean.pow(2).sum().clamp_min(1e-30))
