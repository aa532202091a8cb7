"""Plots the lessons share. Each returns the matplotlib Axes so a lesson can add to it."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    return ax


def plot_learning_curves(histories: Mapping[str, "History"], ax=None, title: str = "Training loss",
                         ylabel: str = "cross-entropy (nats per token)"):
    """Loss against training step, one line per named History."""
    if not histories:
        raise ValueError("plot_learning_curves needs at least one {name: History}")
    ax = _axes(ax)
    for name, hist in histories.items():
        if not hist.loss:
            raise ValueError(f"history {name!r} recorded no loss")
        ax.plot(hist.steps, hist.loss, label=name)
    ax.set(title=title, xlabel="training step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_accuracy_by_length(results: Mapping[str, Mapping[int, float]], ax=None,
                            title: str = "Exact-match accuracy by input length", ylabel: str = "exact-match accuracy"):
    """Accuracy (0..1) against input length, one line per named {length: accuracy} dict."""
    if not results:
        raise ValueError("plot_accuracy_by_length needs at least one {name: {length: accuracy}}")
    ax = _axes(ax)
    for name, by_length in results.items():
        lengths = sorted(by_length)
        values = [by_length[n] for n in lengths]
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"accuracies for {name!r} must lie in [0, 1], got {values}")
        ax.plot(lengths, values, marker="o", label=name)
    ax.set(title=title, xlabel="input length (words)", ylabel=ylabel, ylim=(-0.03, 1.03))
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def attention_heatmap(weights, source_tokens: Sequence[str], target_tokens: Sequence[str], ax=None,
                      title: str = "Attention weights"):
    """Heatmap of a (target length, source length) weight matrix, tokens labelled on both axes."""
    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D (target, source), got shape {w.shape}")
    if w.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(f"weights have shape {w.shape} but there are {len(target_tokens)} target and "
                         f"{len(source_tokens)} source tokens; expected ({len(target_tokens)}, {len(source_tokens)})")
    ax = _axes(ax)
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(w.max())), aspect="auto")
    ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(target_tokens)), target_tokens)
    ax.set(title=title, xlabel="source token (attended to)", ylabel="target token (being produced)")
    ax.figure.colorbar(image, ax=ax, label="attention weight")
    return ax
