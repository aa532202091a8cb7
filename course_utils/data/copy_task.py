"""The copy task (Graves, Wayne & Danihelka 2014): read a sequence of random bit vectors, then write it back.

Layout of one example of length L with ``bits`` bits per vector (T = 2L + 1 steps)::

    input   x_1 .. x_L   delimiter   0 .. 0          (bits + 1 channels; the last one is the delimiter)
    target  0 .. 0       0           x_1 .. x_L      (bits channels)
    mask    0 .. 0       0           1 .. 1          (which steps the loss and the accuracy count)

A batch holds examples of one length (so no padding is needed); ``sample_copy_batch`` draws the
length per batch. Everything is seeded by a ``torch.Generator`` and built on the requested device.

Shapes: B batch, T = 2L + 1 steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CopyBatch:
    """One batch of the copy task.

    Shapes:
        - inputs: (B, T, bits + 1) float
        - targets: (B, T, bits) float, 0 or 1
        - mask: (T,) bool, True on the L output steps
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    length: int

    def to(self, device) -> "CopyBatch":
        return CopyBatch(self.inputs.to(device), self.targets.to(device), self.mask.to(device), self.length)


def copy_batch(batch_size: int, length: int, bits: int = 6, *, seed: int | None = None,
               generator: torch.Generator | None = None, device=None) -> CopyBatch:
    """A batch of ``batch_size`` copy examples of exactly ``length`` vectors of ``bits`` random bits."""
    for name, value in (("batch_size", batch_size), ("length", length), ("bits", bits)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    seq = torch.randint(0, 2, (batch_size, length, bits), generator=generator).float()   # drawn on the CPU: seeded
    T = 2 * length + 1
    inputs = torch.zeros(batch_size, T, bits + 1)
    inputs[:, :length, :bits] = seq
    inputs[:, length, bits] = 1.0                                                          # the delimiter
    targets = torch.zeros(batch_size, T, bits)
    targets[:, length + 1:] = seq
    mask = torch.zeros(T, dtype=torch.bool)
    mask[length + 1:] = True
    return CopyBatch(inputs, targets, mask, length).to(device if device is not None else "cpu")


def sample_copy_batch(batch_size: int, min_length: int, max_length: int, bits: int = 6, *,
                      generator: torch.Generator, device=None) -> CopyBatch:
    """A batch whose length is drawn uniformly from min_length .. max_length with ``generator``."""
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length} and {max_length}")
    length = int(torch.randint(min_length, max_length + 1, (1,), generator=generator))
    return copy_batch(batch_size, length, bits, generator=generator, device=device)


def copy_loss(logits: torch.Tensor, batch: CopyBatch) -> torch.Tensor:
    """Mean binary cross-entropy over the output steps (logits (B, T, bits))."""
    return F.binary_cross_entropy_with_logits(logits[:, batch.mask], batch.targets[:, batch.mask])


@torch.no_grad()
def bit_accuracy(logits: torch.Tensor, batch: CopyBatch) -> float:
    """Share of output bits right when each logit is thresholded at 0."""
    predicted = (logits[:, batch.mask] > 0).float()
    return float((predicted == batch.targets[:, batch.mask]).float().mean())


@torch.no_grad()
def sequence_accuracy(logits: torch.Tensor, batch: CopyBatch) -> float:
    """Share of sequences copied without a single wrong bit."""
    predicted = (logits[:, batch.mask] > 0).float()
    return float((predicted == batch.targets[:, batch.mask]).all(-1).all(-1).float().mean())
