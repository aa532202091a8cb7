"""A translation-like task whose input length we control: numbers read out as words.

The source is a sequence of numbers written as English words; the target is the same numbers in
another language (num2words supplies the words, babel the language's name). Two word orders:

- ``aligned``: the target keeps the source order (like English -> German for this task);
- ``mirror``: the target says the words in the opposite order, an extreme version of a language
  pair that reorders (the first target word depends on the *last* source word).

Example (aligned, German)::

    source: three one four        target: drei eins vier

With ``split_source=True`` every source word is split at its hyphens into separate tokens, so a
number such as 42 is read as two tokens but written as one: a two-to-one alignment, like French
"la Syrie" -> English "Syria"::

    source: forty two seven       target: zweiundvierzig sieben

``source_positions`` gives, for each target word, the source positions it translates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from babel import Locale
from num2words import num2words

from .vocab import Vocab

ORDERS = ("aligned", "mirror")


@lru_cache(maxsize=None)
def number_words(lang: str, n_numbers: int) -> tuple[str, ...]:
    """The words for 0 .. n_numbers-1 in ``lang``, one token each (spaces become hyphens)."""
    if not 2 <= n_numbers <= 100:
        raise ValueError(f"n_numbers must be between 2 and 100, got {n_numbers}")
    try:
        words = tuple(num2words(i, lang=lang).replace(" ", "-") for i in range(n_numbers))
    except NotImplementedError as err:
        raise ValueError(f"num2words has no language {lang!r}") from err
    if len(set(words)) != n_numbers:
        raise ValueError(f"the words for 0..{n_numbers - 1} in {lang!r} are not all distinct")
    return words


@dataclass
class NumberWordsTask:
    """Seeded generator of (source words, target words) pairs.

    Lengths are drawn uniformly from ``min_len .. max_len`` (inclusive); numbers uniformly from
    ``0 .. n_numbers-1``. The same seed always gives the same pairs. Lengths count numbers (target
    words); with ``split_source`` a source can be longer, one token per hyphen-separated piece.
    """

    tgt_lang: str = "de"
    order: str = "aligned"
    min_len: int = 3
    max_len: int = 16
    n_numbers: int = 10
    src_lang: str = "en"
    split_source: bool = False
    src_vocab: Vocab = field(init=False, repr=False)
    tgt_vocab: Vocab = field(init=False, repr=False)

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}")
        self.src_words = number_words(self.src_lang, self.n_numbers)
        self.tgt_words = number_words(self.tgt_lang, self.n_numbers)
        pieces = [p for w in self.src_words for p in self._source_tokens(w)] if self.split_source else self.src_words
        self.src_vocab = Vocab(pieces)
        self.tgt_vocab = Vocab(self.tgt_words)

    @property
    def name(self) -> str:
        """E.g. 'English -> German (aligned)'."""
        src = Locale.parse(self.src_lang).get_display_name("en")
        tgt = Locale.parse(self.tgt_lang).get_display_name("en")
        split = ", split source" if self.split_source else ""
        return f"{src} -> {tgt} ({self.order}{split})"

    def _source_tokens(self, word: str) -> list[str]:
        """One source word as tokens: itself, or its hyphen-separated pieces with ``split_source``."""
        return word.split("-") if self.split_source else [word]

    def _check_numbers(self, numbers) -> list[int]:
        numbers = [int(n) for n in numbers]
        bad = [n for n in numbers if not 0 <= n < self.n_numbers]
        if bad:
            raise ValueError(f"numbers must be in 0..{self.n_numbers - 1}, got {bad[:5]}")
        return numbers

    def translate(self, numbers) -> tuple[list[str], list[str]]:
        """The (source words, target words) pair for a sequence of numbers."""
        numbers = self._check_numbers(numbers)
        src = [tok for n in numbers for tok in self._source_tokens(self.src_words[n])]
        tgt = [self.tgt_words[n] for n in numbers]
        if self.order == "mirror":
            tgt = tgt[::-1]
        return src, tgt

    def source_positions(self, numbers) -> list[list[int]]:
        """For each target word of ``translate(numbers)``, the 0-based source positions it translates
        (one position per word, two for a number split into two source tokens)."""
        numbers = self._check_numbers(numbers)
        spans, start = [], 0
        for n in numbers:
            k = len(self._source_tokens(self.src_words[n]))
            spans.append(list(range(start, start + k)))
            start += k
        return spans[::-1] if self.order == "mirror" else spans

    def sample(self, n_pairs: int, seed: int, *, length: int | None = None) -> list[tuple[list[str], list[str]]]:
        """``n_pairs`` seeded pairs; with ``length``, every source has exactly that many words."""
        if n_pairs < 1:
            raise ValueError(f"n_pairs must be positive, got {n_pairs}")
        rng = np.random.default_rng(seed)
        if length is None:
            lengths = rng.integers(self.min_len, self.max_len + 1, size=n_pairs)
        else:
            if length < 1:
                raise ValueError(f"length must be positive, got {length}")
            lengths = np.full(n_pairs, length)
        return [self.translate(rng.integers(0, self.n_numbers, size=int(n))) for n in lengths]
