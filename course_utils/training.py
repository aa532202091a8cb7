"""The course's one training loop, and the evaluation helpers the lessons share."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass
class History:
    """What a training run recorded: loss per logged step, metrics per evaluation, wall time."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        if not self.loss:
            raise ValueError("no loss was recorded")
        return self.loss[-1]


def train(model: torch.nn.Module, next_batch: Callable[[int], Any], loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
          *, steps: int, lr: float = 3e-3, clip: float | None = 1.0, log_every: int = 25,
          evaluate: Callable[[torch.nn.Module], dict] | None = None, eval_every: int | None = None,
          desc: str = "training", progress: bool = True) -> History:
    """Train ``model`` with Adam for ``steps`` steps and return its History.

    next_batch(step) returns the batch for that step (already on the model's device);
    loss_fn(model, batch) returns a scalar loss tensor; evaluate(model), if given, returns a dict
    of metrics, recorded every ``eval_every`` steps and after the last step.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if log_every < 1:
        raise ValueError(f"log_every must be positive, got {log_every}")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = History()
    start = time.perf_counter()
    running, count = 0.0, 0
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False)
    for step in bar:
        model.train()
        loss = loss_fn(model, next_batch(step))
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; try a smaller learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        running, count = running + loss.item(), count + 1
        if step % log_every == 0 or step == steps:
            history.steps.append(step)
            history.loss.append(running / count)
            bar.set_postfix(loss=f"{running / count:.3f}")
            running, count = 0.0, 0
        if evaluate is not None and ((eval_every and step % eval_every == 0) or step == steps):
            model.eval()
            with torch.no_grad():
                for name, value in evaluate(model).items():
                    history.metrics[name].append(float(value))
            history.eval_steps.append(step)
    model.eval()
    history.seconds = time.perf_counter() - start
    bar.close()
    if progress:  # the bar disappears when done (leave=False); this line stays in the stored output
        print(f"{desc}: {steps} steps in {history.seconds:.1f} s, final loss {history.loss[-1]:.3f}")
    return history


def strip_after_eos(ids: Sequence[int], eos_id: int = 2) -> list[int]:
    """The ids before the first ``<eos>`` (all of them if there is none)."""
    ids = [int(i) for i in ids]
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


def exact_match(predictions: Sequence[Sequence], targets: Sequence[Sequence]) -> list[bool]:
    """For each pair, whether the prediction equals the target token for token (lengths too)."""
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions but {len(targets)} targets")
    return [list(p) == list(t) for p, t in zip(predictions, targets)]


def accuracy_by_length(correct: Sequence[bool], lengths: Sequence[int]) -> dict[int, float]:
    """Share of correct examples for each input length, as {length: accuracy} sorted by length."""
    if len(correct) != len(lengths):
        raise ValueError(f"got {len(correct)} results but {len(lengths)} lengths")
    if len(correct) == 0:
        raise ValueError("accuracy_by_length needs at least one example")
    groups: dict[int, list[bool]] = defaultdict(list)
    for ok, n in zip(correct, lengths):
        groups[int(n)].append(bool(ok))
    return {n: float(np.mean(groups[n])) for n in sorted(groups)}


@torch.no_grad()
def translation_accuracy_by_length(model, task, lengths: Sequence[int], *, n_per_length: int = 200, seed: int = 10_000,
                                   reverse_source: bool = False, device=None) -> dict[int, float]:
    """Greedy-decode ``n_per_length`` fresh pairs of each source length; exact-match accuracy per length.

    ``model`` needs ``greedy_decode(src, src_len, max_len)``; ``task`` is a data task
    (NumberWordsTask) with ``sample`` and the two vocabularies.
    """
    from .data import make_batch  # local import keeps training free of data at import time

    device = device if device is not None else next(model.parameters()).device
    model.eval()
    correct, all_lengths = [], []
    for n in lengths:
        pairs = task.sample(n_per_length, seed=seed + int(n), length=int(n))
        batch = make_batch(pairs, task.src_vocab, task.tgt_vocab, reverse_source=reverse_source).to(device)
        pred = model.greedy_decode(batch.src, batch.src_len, max_len=batch.tgt_out.shape[1] + 2)
        eos = task.tgt_vocab.eos_id
        predictions = [strip_after_eos(row, eos) for row in pred.tolist()]
        targets = [strip_after_eos(row, eos) for row in batch.tgt_out.tolist()]
        correct += exact_match(predictions, targets)
        all_lengths += [int(n)] * len(pairs)
    return accuracy_by_length(correct, all_lengths)
