"""Numbers written out in words -> digits, at the character level: a small translation task that reorders.

num2words writes a number the way a language says it. German puts the units before the tens
("zweiundvierzig" is 42: "zwei" 2, "und", "vierzig" 40), French counts in twenties above sixty
("quatre-vingt-dix-sept" is 97: four twenties, ten, seven). The model reads the written form one
character at a time and writes the digits, so to write the tens digit of 342 in German it must look
at the *end* of the word, and for the units digit back at its middle: a non-monotonic alignment.

Example (German)::

    source: d r e i h u n d e r t z w e i u n d v i e r z i g      target: 3 4 2

Sources are character tokens (a space in French, "vingt et un", is its own token "_"); targets are
the digits 0-9. The vocabularies are built from every number in the range, so they do not depend
on the seed; ``sample`` draws numbers uniformly (the same seed, the same pairs), and
``split(n_train, n_test, seed)`` returns disjoint train and test numbers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache

from num2words import num2words

from .vocab import Vocab

LANGUAGES = ("de", "fr")
DIRECTIONS = ("to_words", "to_digits")


@lru_cache(maxsize=None)
def written_number(n: int, lang: str = "de") -> tuple[str, ...]:
    """The characters of ``n`` written out in ``lang`` (spaces become "_")."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {LANGUAGES}, got {lang!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return tuple("_" if c == " " else c for c in num2words(n, lang=lang))


def digits(n: int) -> tuple[str, ...]:
    """The digits of ``n`` as tokens: 342 -> ("3", "4", "2")."""
    return tuple(str(n))


@dataclass
class NumberTranslationTask:
    """Seeded (written-out number, digits) pairs for the numbers ``low .. high - 1`` in ``lang``."""

    lang: str = "de"
    low: int = 0
    high: int = 1000
    direction: str = "to_words"
    src_vocab: Vocab = field(init=False, repr=False)
    tgt_vocab: Vocab = field(init=False, repr=False)

    def __post_init__(self):
        if self.lang not in LANGUAGES:
            raise ValueError(f"lang must be one of {LANGUAGES}, got {self.lang!r}")
        if not 0 <= self.low < self.high:
            raise ValueError(f"need 0 <= low < high, got low={self.low}, high={self.high}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        chars = Vocab(sorted({c for n in range(self.low, self.high) for c in written_number(n, self.lang)}))
        numerals = Vocab([str(d) for d in range(10)])
        self.src_vocab, self.tgt_vocab = (numerals, chars) if self.direction == "to_words" else (chars, numerals)

    def pair(self, n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(source, target) for the number ``n``: (digits, characters) ``to_words``, the reverse ``to_digits``."""
        if not self.low <= n < self.high:
            raise ValueError(f"n must lie in {self.low}..{self.high - 1}, got {n}")
        if self.direction == "to_words":
            return digits(n), written_number(n, self.lang)
        return written_number(n, self.lang), digits(n)

    def numbers(self, k: int, seed: int = 0) -> list[int]:
        """``k`` numbers drawn uniformly with replacement from the range (seeded)."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        rng = random.Random(f"numbers-{self.lang}-{seed}")
        return [rng.randrange(self.low, self.high) for _ in range(k)]

    def sample(self, k: int, seed: int = 0) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """``k`` (source, target) pairs; the same seed gives the same pairs."""
        return [self.pair(n) for n in self.numbers(k, seed)]

    def split(self, n_test: int, seed: int = 0) -> tuple[list[int], list[int]]:
        """The range shuffled (seeded) into (train numbers, ``n_test`` held-out test numbers), disjoint."""
        size = self.high - self.low
        if not 1 <= n_test < size:
            raise ValueError(f"n_test must lie in 1..{size - 1}, got {n_test}")
        order = list(range(self.low, self.high))
        random.Random(f"split-{self.lang}-{seed}").shuffle(order)
        return sorted(order[n_test:]), sorted(order[:n_test])
