"""Lesson 12: show, attend and tell (Xu et al. 2015) on canvases of digits, at toy size.

A small CNN (three 3x3 convolutions with batch normalisation) encodes a (B, 1, H, W) canvas into a grid of
region features (B, C, Gh, Gw); two coordinate channels are added to the input (CoordConv) so a region's
feature can say where it is. A GRU
decoder writes the caption one word at a time; at step t it scores every region against its previous
state with the additive score (lesson 02), and reads

- ``"soft"``: the weighted average of the regions, z_t = sum_i alpha_ti a_i (trained by backpropagation);
- ``"hard"``: one region sampled from alpha_t (the most likely one in eval mode), trained with REINFORCE
  (lesson 04's ``reinforce_loss``, the reward being each word's or the caption's log-likelihood, with a
  moving-average baseline; see ``hard_caption_loss``);
- ``"mean"``: no attention, the mean of the regions at every step (uniform weights).

Soft attention is trained with Xu et al.'s doubly stochastic penalty
lambda * sum_i (1 - sum_t alpha_ti)^2, which asks every region to receive, over the whole caption, about
as much attention as any other.

Shapes: B batch, C feature channels, Gh x Gw grid, L = Gh * Gw regions, T caption steps, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import AdditiveScore, masked_softmax
from .hard_attention import MovingAverageBaseline, reinforce_loss

MODES = ("soft", "hard", "mean")


def coordinate_channels(images: torch.Tensor) -> torch.Tensor:
    """(B, c, H, W) -> (B, c + 2, H, W): the images with the row and column coordinate (-1 .. 1) appended."""
    B, _, H, W = images.shape
    ys = torch.linspace(-1.0, 1.0, H, device=images.device, dtype=images.dtype)
    xs = torch.linspace(-1.0, 1.0, W, device=images.device, dtype=images.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([grid_y, grid_x]).expand(B, 2, H, W)
    return torch.cat([images, coords], dim=1)


class CanvasEncoder(nn.Module):
    """Three 3x3 convolutions with batch normalisation, two followed by 2x2 max pooling:
    (B, 1, H, W) -> (B, C, H/4, W/4)."""

    def __init__(self, channels: int = 32, batch_norm: bool = True):
        super().__init__()
        self.channels = channels
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.conv1 = nn.Sequential(nn.Conv2d(3, channels // 2, 3, padding=1), norm(channels // 2), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(channels // 2, channels, 3, padding=1), norm(channels), nn.ReLU())
        self.conv3 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), norm(channels), nn.ReLU())
        self.cell = 4                                                           # pixels per region side

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(coordinate_channels(images)), 2)           # (B, C/2, H/2, W/2)
        x = F.max_pool2d(self.conv2(x), 2)                                     # (B, C, H/4, W/4)
        return self.conv3(x)                                                   # (B, C, Gh, Gw)


def flatten_regions(features: torch.Tensor) -> torch.Tensor:
    """(B, C, Gh, Gw) -> (B, L, C), regions in row-major order (region r = row r // Gw, column r % Gw)."""
    return features.flatten(2).transpose(1, 2)


def grid_attention(features: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention of one query per image over its grid of regions.

    features (B, C, Gh, Gw), query (B, C) -> context (B, C), weights (B, Gh, Gw) summing to 1 per image.
    """
    B, C, Gh, Gw = features.shape
    regions = flatten_regions(features)                                        # (B, L, C)
    scores = (regions @ query.unsqueeze(-1)).squeeze(-1) / C ** 0.5             # (B, L)
    weights = masked_softmax(scores)                                           # stable
    context = (weights.unsqueeze(1) @ regions).squeeze(1)                      # (B, C)
    return context, weights.reshape(B, Gh, Gw)


def doubly_stochastic_penalty(alpha: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Xu et al.'s penalty sum_i (1 - sum_t alpha_ti)^2, averaged over the batch (multiply by lambda yourself).

    alpha (B, T, L) attention weights; mask (B, T) bool, True at the caption's real steps (padded steps
    do not count). Returns a scalar.
    """
    if mask is not None:
        alpha = alpha * mask.unsqueeze(-1).to(alpha.dtype)
    total = alpha.sum(dim=1)                                                   # (B, L): attention each region got
    return ((1.0 - total) ** 2).sum(dim=-1).mean()


def region_box_overlap(boxes: torch.Tensor, grid: tuple[int, int], cell: int) -> torch.Tensor:
    """Share of each region's pixels inside each box: boxes (..., 4) as (top, left, height, width) in pixels,
    regions of ``cell`` x ``cell`` pixels on a (Gh, Gw) grid -> (..., Gh, Gw) in [0, 1]."""
    Gh, Gw = grid
    boxes = boxes.to(torch.float32)
    top, left, height, width = boxes.unbind(-1)                                # each (...)
    starts_y = torch.arange(Gh, device=boxes.device, dtype=boxes.dtype) * cell  # (Gh,)
    starts_x = torch.arange(Gw, device=boxes.device, dtype=boxes.dtype) * cell
    over_y = ((top + height)[..., None].minimum(starts_y + cell) - top[..., None].maximum(starts_y)).clamp_min(0)
    over_x = ((left + width)[..., None].minimum(starts_x + cell) - left[..., None].maximum(starts_x)).clamp_min(0)
    return over_y[..., :, None] * over_x[..., None, :] / cell ** 2             # (..., Gh, Gw)


def pointing_score(alpha: torch.Tensor, boxes: torch.Tensor, cell: int) -> torch.Tensor:
    """Share of attention inside the box of the digit being named.

    alpha (B, T, Gh, Gw): each region's weight is spread evenly over its ``cell`` x ``cell`` pixels;
    boxes (B, T, 4) as (top, left, height, width) in pixels -> (B, T) in [0, 1].
    """
    overlap = region_box_overlap(boxes, tuple(alpha.shape[-2:]), cell).to(alpha.dtype)   # (B, T, Gh, Gw)
    return (alpha * overlap).sum(dim=(-2, -1))


class AttentionCaptioner(nn.Module):
    """CNN encoder + GRU decoder that attends over the regions (``mode`` soft, hard or mean).

    ``forward(images, caption_in)`` (teacher forcing) returns logits (B, T, V), alpha (B, T, L) and the
    sampled regions (B, T) (None unless hard). In hard mode a training model samples the region and an
    evaluating model takes the most likely one.
    """

    def __init__(self, vocab_size: int, mode: str = "soft", channels: int = 32, hidden: int = 64, embed: int = 16,
                 attention_hidden: int = 32):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode, self.vocab_size = mode, vocab_size
        self.encoder = CanvasEncoder(channels)
        self.embed = nn.Embedding(vocab_size, embed)
        self.init_h = nn.Linear(channels, hidden)
        self.score = AdditiveScore(hidden, channels, attention_hidden)
        self.cell = nn.GRUCell(embed + channels, hidden)
        self.out = nn.Linear(hidden + channels + embed, vocab_size)
        self.regions_read = 0
        self.last_soft_rows = None

    def attention_parameters(self) -> list[nn.Parameter]:
        """The parameters only the attention (the scores) uses."""
        return list(self.score.parameters())

    def _step(self, regions, h, token, generator=None, soft_rows=None):
        """One decoder step: regions (B, L, C), h (B, hidden), token (B,) -> logits, h, alpha (B, L), chosen."""
        B, L, _ = regions.shape
        chosen = None
        if self.mode == "mean":
            alpha = regions.new_full((B, L), 1.0 / L)
            context = regions.mean(dim=1)
        else:
            alpha = masked_softmax(self.score(h.unsqueeze(1), regions).squeeze(1))    # (B, L)
            if self.mode == "soft":
                context = (alpha.unsqueeze(1) @ regions).squeeze(1)                     # (B, C): reads L regions
            else:
                if self.training:
                    chosen = torch.multinomial(alpha.detach(), 1, generator=generator).squeeze(-1)
                else:
                    chosen = alpha.argmax(-1)
                context = regions[torch.arange(B, device=regions.device), chosen]       # (B, C): reads one
                if self.training and soft_rows is not None:                             # Xu et al.'s trick
                    soft = (alpha.unsqueeze(1) @ regions).squeeze(1)
                    context = torch.where(soft_rows[:, None], soft, context)
        self.regions_read += B * (1 if self.mode == "hard" else L)
        emb = self.embed(token)                                                         # (B, E)
        h = self.cell(torch.cat([emb, context], dim=-1), h)
        logits = self.out(torch.cat([h, context, emb], dim=-1))
        return logits, h, alpha, chosen

    def regions(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, L, C) region features."""
        return flatten_regions(self.encoder(images))

    def forward(self, images: torch.Tensor, caption_in: torch.Tensor, generator: torch.Generator | None = None,
                soft_share: float = 0.0):
        regions = self.regions(images)                                                  # (B, L, C)
        soft_rows = None
        if self.mode == "hard" and self.training and soft_share > 0:                    # these images read softly
            soft_rows = torch.rand(images.shape[0], generator=generator).to(images.device) < soft_share
        self.last_soft_rows = soft_rows
        h = torch.tanh(self.init_h(regions.mean(dim=1)))                                # (B, hidden)
        logits, alphas, chosen = [], [], []
        for t in range(caption_in.shape[1]):
            step_logits, h, alpha, pick = self._step(regions, h, caption_in[:, t], generator, soft_rows)
            logits.append(step_logits)
            alphas.append(alpha)
            chosen.append(pick)
        picks = torch.stack(chosen, 1) if self.mode == "hard" and self.training else None
        return torch.stack(logits, 1), torch.stack(alphas, 1), picks

    @torch.no_grad()
    def caption(self, images: torch.Tensor, steps: int, bos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy captions: tokens (B, steps) and alpha (B, steps, L); hard mode reads the most likely region."""
        was_training = self.training
        self.eval()
        regions = self.regions(images)
        h = torch.tanh(self.init_h(regions.mean(dim=1)))
        token = torch.full((images.shape[0],), bos, dtype=torch.long, device=images.device)
        tokens, alphas = [], []
        for _ in range(steps):
            logits, h, alpha, _ = self._step(regions, h, token)
            token = logits.argmax(-1)
            tokens.append(token)
            alphas.append(alpha)
        self.train(was_training)
        return torch.stack(tokens, 1), torch.stack(alphas, 1)


def soft_caption_loss(model: AttentionCaptioner, batch, lam: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the caption (teacher forcing) + lam * the doubly stochastic penalty (soft and mean)."""
    logits, alpha, _ = model(batch.images, batch.caption_in)
    nll = F.cross_entropy(logits.flatten(0, 1), batch.caption_out.flatten())
    return nll + lam * doubly_stochastic_penalty(alpha) if lam else nll


def hard_caption_loss(model: AttentionCaptioner, batch, baseline: MovingAverageBaseline | float | None = None,
                      entropy: float = 0.0, reward: str = "word", soft_share: float = 0.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Hard attention: cross-entropy through the sampled regions + REINFORCE for the samples (lesson 04).

    ``reward="caption"`` (Xu et al.): every glimpse of a caption gets the caption's log-likelihood,
    R = sum_t log p(y_t | ...), and the choices' log-probability is sum_t log alpha_t[chosen_t].
    ``reward="word"``: glimpse t gets log p(y_t | ...) of the word it helped write (less noisy, but it ignores
    what a glimpse does to later words through the state). ``entropy`` > 0 adds Xu et al.'s entropy bonus.
    ``soft_share``: the share of images (drawn at random) that read the expected context (soft attention)
    instead of a sample, Xu et al.'s trick (they used 0.5); their glimpses carry no REINFORCE term.
    ``baseline`` as in lesson 04's ``hard_loss``: a MovingAverageBaseline, a number, or None (b = 0).
    """
    if model.mode != "hard":
        raise ValueError(f"hard_caption_loss needs a model in hard mode, got {model.mode!r}")
    if reward not in ("word", "caption"):
        raise ValueError(f"reward must be 'word' or 'caption', got {reward!r}")
    logits, alpha, chosen = model(batch.images, batch.caption_in, generator, soft_share)
    target = batch.caption_out
    nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view_as(target)   # (B, T)
    log_alpha = torch.log(alpha.clamp_min(1e-12))                                   # (B, T, L)
    log_prob = log_alpha.gather(2, chosen.unsqueeze(-1)).squeeze(-1)                # (B, T): log alpha_t[chosen_t]
    if model.last_soft_rows is not None:                                            # no sample, no REINFORCE term
        log_prob = log_prob * (~model.last_soft_rows).unsqueeze(-1).to(log_prob.dtype)
    if reward == "word":
        R = -nll.detach()                                                           # (B, T)
    else:
        R, log_prob = -nll.sum(1).detach(), log_prob.sum(1)                         # (B,), (B,)
    if isinstance(baseline, MovingAverageBaseline):
        b = baseline()
        baseline.update(R)
    else:
        b = 0.0 if baseline is None else float(baseline)
    loss = nll.mean() + reinforce_loss(log_prob, R, b)
    if entropy:
        loss = loss + entropy * (alpha * log_alpha).sum(-1).mean()                 # minus the entropy
    return loss


@torch.no_grad()
def caption_accuracy(model: AttentionCaptioner, batch, bos: int) -> dict[str, float]:
    """Greedy captions scored against the batch: share of digits right (by position) and of whole captions."""
    steps = batch.caption_out.shape[1]
    tokens, _ = model.caption(batch.images, steps, bos)
    digits = batch.digits.shape[1]
    right = tokens[:, :digits] == batch.digits                                      # (B, K)
    whole = right.all(1) & (tokens[:, digits] == batch.caption_out[:, digits])
    return {"digit": float(right.float().mean()), "caption": float(whole.float().mean())}


@torch.no_grad()
def attention_on_digits(model: AttentionCaptioner, batch) -> torch.Tensor:
    """Pointing score of each digit word under teacher forcing: (B, K) share of attention inside its box."""
    was_training = model.training
    model.eval()
    _, alpha, _ = model(batch.images, batch.caption_in)                             # (B, K + 1, L)
    model.train(was_training)
    cell = model.encoder.cell
    Gh, Gw = batch.images.shape[-2] // cell, batch.images.shape[-1] // cell
    K = batch.digits.shape[1]
    return pointing_score(alpha[:, :K].reshape(-1, K, Gh, Gw), batch.boxes, cell)
