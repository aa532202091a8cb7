"""Seeded canvases of scikit-learn's 8x8 digits for lesson 12's captioning task (show, attend and tell).

A canvas is a ``size`` x ``size`` grey image with ``n_digits`` of the 8x8 digits that ship with
scikit-learn (``sklearn.datasets.load_digits``: 1797 images, no download) placed at random,
non-overlapping positions whose left edges differ by at least ``min_gap`` pixels, so that "left to
right" is never ambiguous. Its caption names the digits left to right ("three seven one"), and each
digit's box (top, left, height, width) in pixels is kept, in caption order, to score where an attention
model looked.

The digit images are split once, with a fixed seed, into 1500 for training canvases and 297 for test
canvases, so a test canvas shows digit images that no training canvas showed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

DIGIT = 8                                           # side of one digit image, pixels
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "<bos>", "<eos>")
BOS, EOS = 10, 11                                   # token ids of the caption's start and end markers
N_TRAIN_IMAGES = 1500
SPLITS = ("train", "test")


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """All of scikit-learn's digit images scaled to [0, 1] (1797, 8, 8) and their labels, in a fixed shuffled order."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    return (data.images[order] / 16.0).astype(np.float32), data.target[order].astype(np.int64)


def digit_images(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The digit images (N, 8, 8) in [0, 1] and labels (N,) of one split: 1500 for training, 297 for testing."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    images, labels = _digits()
    part = slice(0, N_TRAIN_IMAGES) if split == "train" else slice(N_TRAIN_IMAGES, None)
    return images[part], labels[part]


@dataclass
class CanvasBatch:
    """images (B, 1, H, W) float in [0, 1]; digits (B, K) long, left to right; boxes (B, K, 4) long
    (top, left, height, width) in pixels, in the same order."""

    images: torch.Tensor
    digits: torch.Tensor
    boxes: torch.Tensor

    def to(self, device) -> "CanvasBatch":
        return CanvasBatch(self.images.to(device), self.digits.to(device), self.boxes.to(device))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index) -> "CanvasBatch":
        return CanvasBatch(self.images[index], self.digits[index], self.boxes[index])

    @property
    def caption_in(self) -> torch.Tensor:
        """(B, K + 1): <bos> then the digits, what the decoder reads (teacher forcing)."""
        bos = torch.full_like(self.digits[:, :1], BOS)
        return torch.cat([bos, self.digits], dim=1)

    @property
    def caption_out(self) -> torch.Tensor:
        """(B, K + 1): the digits then <eos>, what the decoder must write."""
        eos = torch.full_like(self.digits[:, :1], EOS)
        return torch.cat([self.digits, eos], dim=1)


def caption_words(tokens) -> str:
    """'three seven one' from token ids (stops at <eos>; <bos> is skipped)."""
    words = []
    for t in (int(v) for v in tokens):
        if t == EOS:
            break
        if t != BOS:
            words.append(WORDS[t])
    return " ".join(words)


class DigitCanvas:
    """Canvases of ``n_digits`` digits on a ``size`` x ``size`` image; ``batch(n, seed)`` is deterministic."""

    def __init__(self, size: int = 24, n_digits: int = 3, split: str = "train", min_gap: int = 3):
        if n_digits < 1:
            raise ValueError(f"n_digits must be at least 1, got {n_digits}")
        if size < DIGIT:
            raise ValueError(f"size must be at least {DIGIT} (one digit), got {size}")
        if n_digits > ((size - DIGIT) // max(min_gap, 1)) + 1:
            raise ValueError(f"{n_digits} digits with left edges {min_gap} pixels apart do not fit a width of {size}")
        self.size, self.n_digits, self.split, self.min_gap = size, n_digits, split, min_gap
        self.images, self.labels = digit_images(split)

    def _positions(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, K, 2) top-left corners: boxes that do not overlap, left edges at least min_gap apart."""
        K, span = self.n_digits, self.size - DIGIT + 1
        found, total = [], 0
        while total < n:
            cand = rng.integers(0, span, size=(max(64, 4 * (n - total)), K, 2))
            dy = np.abs(cand[:, :, None, 0] - cand[:, None, :, 0])              # (M, K, K)
            dx = np.abs(cand[:, :, None, 1] - cand[:, None, :, 1])
            off = ~np.eye(K, dtype=bool)
            overlap = (dy < DIGIT) & (dx < DIGIT) & off
            too_close = (dx < self.min_gap) & off
            ok = ~(overlap | too_close).any(axis=(1, 2))
            found.append(cand[ok])
            total += int(ok.sum())
        return np.concatenate(found)[:n]

    def batch(self, n: int, seed: int, device=None) -> CanvasBatch:
        """n canvases drawn with ``seed`` (the same seed gives the same canvases)."""
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        rng = np.random.default_rng(seed)
        corners = self._positions(n, rng)                                    # (n, K, 2)
        corners = np.take_along_axis(corners, np.argsort(corners[:, :, 1], axis=1)[:, :, None], axis=1)
        which = rng.integers(0, len(self.labels), size=(n, self.n_digits))    # (n, K) digit images
        canvas = np.zeros((n, self.size, self.size), dtype=np.float32)
        offs = np.arange(DIGIT)
        rows = corners[:, :, 0, None, None] + offs[None, None, :, None]      # (n, K, 8, 1)
        cols = corners[:, :, 1, None, None] + offs[None, None, None, :]      # (n, K, 1, 8)
        b = np.arange(n)[:, None, None, None]
        canvas[b, rows, cols] = self.images[which]                           # boxes do not overlap
        boxes = np.concatenate([corners, np.full_like(corners, DIGIT)], axis=-1)   # (n, K, 4)
        out = CanvasBatch(torch.from_numpy(canvas).unsqueeze(1), torch.from_numpy(self.labels[which]),
                          torch.from_numpy(boxes.astype(np.int64)))
        return out.to(device) if device is not None else out
