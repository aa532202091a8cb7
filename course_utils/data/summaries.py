"""A generated summarisation task whose summaries must copy names never seen in training: lesson 07.

Each article is a few short sentences; one of them says who did what, where, and the others are filler,
some naming other people. The summary is always ``<name> <verb> <object> in <city>``::

    article: the weather was grey . on friday , the mayor talomir painted the bridge in porto . kelvadi said
             it was lovely .
    summary: talomir painted bridge in porto

The key sentence comes in three word orders (active, fronted, passive) and at any position of the
article. Names are made of random syllables, in three disjoint pools: 30 ``common`` names, which the
vocabulary holds; 300 ``rare`` names, which training articles use as often as the common ones (each
rare name is seldom seen, so it is not in the vocabulary and is read as ``<unk>``); and 100 ``unseen``
names that no training article contains. Only a model that can copy from its source can write a name
that is not in its vocabulary (See, Liu & Manning 2017, "Get To The
Point: Summarization with Pointer-Generator Networks").

``encode_pointer_batch`` gives both id spaces a pointer-generator needs: ``src`` with unknown words as
``<unk>`` (what the encoder reads) and ``src_ext`` where the k-th distinct unknown word of an article
gets the id V + k (what it copies); targets likewise.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch

from .vocab import Vocab, pad_batch

UNK = "<unk>"
ROLES = ("mayor", "coach", "singer", "farmer", "doctor", "pilot")
VERBS = ("opened", "visited", "painted", "repaired", "cleaned", "launched")
OBJECTS = ("bridge", "school", "museum", "harbour", "library", "stadium")
CITIES = ("porto", "lyon", "graz", "turku", "leeds", "bern", "split", "gent")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
ADJECTIVES = ("grey", "lovely", "cold", "busy", "quiet", "sunny")
_SYLLABLES = ("ta", "lo", "mir", "kel", "va", "di", "ro", "sen", "bu", "ka", "ni", "dor", "pe", "zu", "lan", "fi",
              "gro", "mo", "te", "shu", "ra", "vel", "qui", "bo")


def _name_pools(*sizes: int) -> tuple[tuple[str, ...], ...]:
    rng = random.Random("summaries-names")
    names: list[str] = []
    while len(names) < sum(sizes):
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3))))
        if name not in names:
            names.append(name)
    pools, start = [], 0
    for n in sizes:
        pools.append(tuple(names[start:start + n]))
        start += n
    return tuple(pools)


# common names are in the vocabulary; rare ones occur in training but are not; unseen ones never occur in training
COMMON_NAMES, RARE_NAMES, UNSEEN_NAMES = _name_pools(30, 300, 100)
POOLS = {"common": COMMON_NAMES, "rare": RARE_NAMES, "unseen": UNSEEN_NAMES}


@dataclass
class Article:
    """One article: its tokens, its summary's tokens, and the name the summary must copy."""

    source: list[str]
    summary: list[str]
    name: str

    def __str__(self) -> str:
        return f"article: {' '.join(self.source)}\nsummary: {' '.join(self.summary)}"


def summary_vocab() -> Vocab:
    """The fixed vocabulary: special tokens, <unk>, every template word and the common names (no rare or unseen)."""
    words = [UNK, ".", ",", "the", "on", "in", "was", "by", "local", "said", "it", "weather", "people", "came",
             "many", "to", "watch", "crowd", "cheered"]
    return Vocab(words + list(ROLES + VERBS + OBJECTS + CITIES + DAYS + ADJECTIVES + COMMON_NAMES))


class SummaryTask:
    """Seeded articles: ``sample(n, seed, names=...)`` with ``names`` "train" (common and rare names, half and
    half), "common", "rare" or "unseen"; each article has 1 .. ``max_fillers`` filler sentences."""

    def __init__(self, max_fillers: int = 3):
        if not 0 <= max_fillers <= 6:
            raise ValueError(f"max_fillers must lie in 0..6, got {max_fillers}")
        self.max_fillers = max_fillers
        self.vocab = summary_vocab()

    def __repr__(self) -> str:
        return f"SummaryTask(max_fillers={self.max_fillers})"

    @staticmethod
    def _key_sentence(rng, name, role, verb, obj, city) -> list[str]:
        day = rng.choice(DAYS)
        form = rng.randrange(3)
        if form == 0:
            text = f"{name} , the {role} , {verb} the {obj} in {city} on {day} ."
        elif form == 1:
            text = f"on {day} , the {role} {name} {verb} the {obj} in {city} ."
        else:
            text = f"in {city} , the {obj} was {verb} by {name} , the local {role} ."
        return text.split()

    @staticmethod
    def _filler(rng, names) -> list[str]:
        kind = rng.randrange(3)
        if kind == 0:
            return f"the weather was {rng.choice(ADJECTIVES)} .".split()
        if kind == 1:
            return f"{rng.choice(names)} said it was {rng.choice(ADJECTIVES)} .".split()
        return "many people came to watch and the crowd cheered .".split()

    def sample(self, n: int, seed: int = 0, names: str = "train") -> list[Article]:
        """``n`` articles (the same for the same seed) whose people come from the pool ``names``."""
        if names not in ("train",) + tuple(POOLS):
            raise ValueError(f"names must be 'train', 'common', 'rare' or 'unseen', got {names!r}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        rng = random.Random(f"summaries-{names}-{seed}")
        articles = []
        for _ in range(n):
            pool = POOLS[names] if names != "train" else rng.choice((COMMON_NAMES, RARE_NAMES))
            name = rng.choice(pool)
            role, verb, obj, city = (rng.choice(x) for x in (ROLES, VERBS, OBJECTS, CITIES))
            others = [p for p in pool if p != name]
            sentences = [self._filler(rng, others) for _ in range(rng.randint(1, max(1, self.max_fillers)))]
            sentences.insert(rng.randint(0, len(sentences)), self._key_sentence(rng, name, role, verb, obj, city))
            source = [w for s in sentences for w in s]
            articles.append(Article(source, [name, verb, obj, "in", city], name))
        return articles


@dataclass
class PointerBatch:
    """Padded ids for a pointer-generator. Shapes: src, src_ext (B, S); src_len (B,); tgt_in, tgt_out,
    tgt_out_ext (B, T); n_extended: how many extended ids (V .. V + n_extended - 1) the batch uses;
    oov: for each article, its unknown words in the order of their extended ids."""

    src: torch.Tensor
    src_ext: torch.Tensor
    src_len: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_out_ext: torch.Tensor
    n_extended: int
    oov: list[list[str]]

    def to(self, device) -> "PointerBatch":
        moved = [t.to(device) for t in (self.src, self.src_ext, self.src_len, self.tgt_in, self.tgt_out,
                                        self.tgt_out_ext)]
        return PointerBatch(*moved, self.n_extended, self.oov)

    def __len__(self) -> int:
        return self.src.shape[0]


def encode_pointer_batch(articles: Sequence[Article], vocab: Vocab) -> PointerBatch:
    """Ids of a batch in both spaces (see the module docstring). The decoder's inputs ``tgt_in`` use
    ``<unk>`` for unknown words (a model reads only known ids); ``tgt_out_ext`` is what a copying model
    must predict, ``tgt_out`` what a model without copying can at best predict (``<unk>``)."""
    if not articles:
        raise ValueError("encode_pointer_batch needs at least one article")
    unk, V = vocab.stoi[UNK], len(vocab)
    srcs, exts, tins, touts, texts, oovs = [], [], [], [], [], []
    for a in articles:
        oov: list[str] = []
        src, ext = [], []
        for w in a.source:
            if w in vocab.stoi:
                src.append(vocab.stoi[w])
                ext.append(vocab.stoi[w])
            else:
                if w not in oov:
                    oov.append(w)
                src.append(unk)
                ext.append(V + oov.index(w))
        known = [vocab.stoi.get(w, unk) for w in a.summary]
        extended = [vocab.stoi[w] if w in vocab.stoi else V + oov.index(w) if w in oov else unk for w in a.summary]
        srcs.append(src), exts.append(ext), oovs.append(oov)
        tins.append([vocab.bos_id] + known)
        touts.append(known + [vocab.eos_id])
        texts.append(extended + [vocab.eos_id])
    src, src_len = pad_batch(srcs)
    src_ext, _ = pad_batch(exts)
    tgt_in, _ = pad_batch(tins)
    tgt_out, _ = pad_batch(touts)
    tgt_out_ext, _ = pad_batch(texts)
    return PointerBatch(src, src_ext, src_len, tgt_in, tgt_out, tgt_out_ext, max(len(o) for o in oovs), oovs)


def decode_extended(ids: Sequence[int], vocab: Vocab, oov: Sequence[str]) -> list[str]:
    """Extended ids back to words (an id V + k is the article's k-th unknown word), up to the first <eos>."""
    words = []
    for i in ids:
        i = int(i)
        if i == vocab.eos_id:
            break
        if i in (vocab.pad_id, vocab.bos_id):
            continue
        words.append(vocab.itos[i] if i < len(vocab) else oov[i - len(vocab)] if i - len(vocab) < len(oov) else UNK)
    return words


def token_f1(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """Token-level F1 (ROUGE-1 F1 on the course's own tokens): overlap counted with multiplicity."""
    if not reference:
        raise ValueError("the reference summary is empty")
    common = sum((Counter(prediction) & Counter(reference)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def lead_k(source: Sequence[str], k: int = 5) -> list[str]:
    """The lead baseline: the article's first ``k`` tokens, punctuation skipped."""
    return [w for w in source if w not in (".", ",")][:k]
