"""Ways of feeding a source sentence to an encoder: as it is, backwards, or twice.

Lesson 01 compares them. The transforms act on token lists *before* ``make_batch``, so batching
and padding stay as they are::

    forward   three one four   ->  three one four
    reversed  three one four   ->  four one three                 (Sutskever et al., 2014)
    twice     three one four   ->  three one four three one four  (Zaremba & Sutskever, 2014)

``TransformedSourceTask`` wraps a task (e.g. ``NumberWordsTask``) so that everything that samples
from it (training batches, ``translation_accuracy_by_length``) sees transformed sources; lengths
passed to ``sample`` still count the sentence's words, not the tokens the encoder reads.
"""

from __future__ import annotations

from typing import Sequence

SOURCE_FEEDS = ("forward", "reversed", "twice")


def transform_source(tokens: Sequence[str], feed: str) -> list[str]:
    """The tokens the encoder reads for one source sentence under ``feed``."""
    if feed not in SOURCE_FEEDS:
        raise ValueError(f"feed must be one of {SOURCE_FEEDS}, got {feed!r}")
    tokens = list(tokens)
    if feed == "reversed":
        return tokens[::-1]
    if feed == "twice":
        return tokens + tokens
    return tokens


class TransformedSourceTask:
    """A task whose sampled sources are fed ``forward``, ``reversed`` or ``twice``; targets unchanged."""

    def __init__(self, task, feed: str = "forward"):
        if feed not in SOURCE_FEEDS:
            raise ValueError(f"feed must be one of {SOURCE_FEEDS}, got {feed!r}")
        self.task, self.feed = task, feed

    def __getattr__(self, name):  # vocabularies, min_len, max_len, order, translate, ... come from the task
        if name == "task":  # not set yet (e.g. while unpickling): avoid endless recursion
            raise AttributeError(name)
        return getattr(self.task, name)

    @property
    def name(self) -> str:
        return f"{self.task.name}, source {self.feed}"

    def sample(self, n_pairs: int, seed: int, *, length: int | None = None):
        """The wrapped task's pairs, with each source transformed."""
        return [(transform_source(src, self.feed), tgt) for src, tgt in self.task.sample(n_pairs, seed, length=length)]

    def __repr__(self) -> str:
        return f"TransformedSourceTask({self.task!r}, feed={self.feed!r})"
