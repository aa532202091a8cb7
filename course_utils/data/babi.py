"""bAbI-style stories, generated and seeded: people move between places, pick objects up and drop them.

The tasks follow two of the twenty bAbI tasks of Weston, Bordes, Chopra, Rush, van Merriënboer, Joulin
& Mikolov (2015), "Towards AI-Complete Question Answering: A Set of Prerequisite Toy Tasks", but the
stories are the course's own, generated here, so the supporting facts of every answer are known:

- task 1, one supporting fact: "where is mary" -> the place of Mary's last move (one sentence);
- task 2, two supporting facts: "where is the milk" -> the sentence where the milk was last picked up
  (or dropped) names who had it, and that person's last move (before a drop) names the place.

Example (task 2)::

    0  mary went to the kitchen
    1  john moved to the garden
    2  mary picked up the milk
    3  mary travelled to the office
    question: where is the milk   answer: office   supporting facts: [2, 3]

Words are lower case without punctuation. ``BabiTask.sample`` returns ``Story`` objects;
``make_babi_batch`` turns them into padded id tensors (word id 0 is padding, sentences stay in
story order, left-aligned). The vocabulary is fixed by the word lists, so it is the same for every
seed and both tasks.

Shapes: B stories, L sentences (the longest story of the batch), W words per sentence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .vocab import Vocab

PEOPLE = ("mary", "john", "sandra", "daniel")
PLACES = ("kitchen", "garden", "office", "bathroom", "hallway", "bedroom")
OBJECTS = ("apple", "football", "milk")
MOVE_VERBS = ("went to", "moved to", "journeyed to", "travelled to")
PICK_VERBS = ("picked up", "got", "grabbed")
DROP_VERBS = ("dropped", "discarded", "put down")


@dataclass
class Story:
    """One story with its question.

    ``sentences`` are lists of words; ``supporting`` holds the indices (into ``sentences``, in story
    order) of the sentences the answer follows from.
    """

    sentences: list[list[str]]
    question: list[str]
    answer: str
    supporting: list[int]
    task: int

    def __str__(self) -> str:
        lines = [f"{i:2d}  {' '.join(s)}" for i, s in enumerate(self.sentences)]
        lines.append(f"question: {' '.join(self.question)}   answer: {self.answer}   supporting facts: {self.supporting}")
        return "\n".join(lines)


@dataclass
class BabiBatch:
    """Padded ids of a batch of stories.

    Shapes:
        - story: (B, L, W) long, 0 = padding
        - question: (B, W_q) long
        - answer: (B,) long, the answer word's id
        - supporting: (B, L) bool, True at the supporting facts
        - n_sentences: (B,) long
    """

    story: torch.Tensor
    question: torch.Tensor
    answer: torch.Tensor
    supporting: torch.Tensor
    n_sentences: torch.Tensor

    def to(self, device) -> "BabiBatch":
        return BabiBatch(*(t.to(device) for t in (self.story, self.question, self.answer, self.supporting,
                                                   self.n_sentences)))

    def __len__(self) -> int:
        return self.story.shape[0]


def babi_vocab() -> Vocab:
    """The fixed vocabulary of every story (ids 0-2 are the course's special tokens; 0 pads)."""
    words = ["where", "is", "the"] + list(PEOPLE) + list(PLACES) + list(OBJECTS)
    for phrase in MOVE_VERBS + PICK_VERBS + DROP_VERBS:
        words += phrase.split()
    return Vocab(words)


class BabiTask:
    """Generates stories of one task (1: one supporting fact, 2: two supporting facts).

    Args:
        task: 1 or 2.
        min_sentences, max_sentences: a story's length is drawn uniformly from this range.
    """

    def __init__(self, task: int = 1, min_sentences: int = 4, max_sentences: int = 12):
        if task not in (1, 2):
            raise ValueError(f"task must be 1 (one supporting fact) or 2 (two supporting facts), got {task!r}")
        if not 2 <= min_sentences <= max_sentences:
            raise ValueError(f"need 2 <= min_sentences <= max_sentences, got {min_sentences}, {max_sentences}")
        self.task, self.min_sentences, self.max_sentences = task, min_sentences, max_sentences
        self.vocab = babi_vocab()

    def __repr__(self) -> str:
        return f"BabiTask(task={self.task}, sentences {self.min_sentences}..{self.max_sentences})"

    # ------------------------------------------------------------------ one story

    def _story(self, rng: random.Random) -> Story | None:
        n = rng.randint(self.min_sentences, self.max_sentences)
        place: dict[str, str] = {}
        last_move: dict[str, int] = {}
        holder: dict[str, str] = {}                     # object -> person holding it
        lying: dict[str, tuple[str, int, int]] = {}     # object -> (place, drop sentence, mover sentence)
        picked: dict[str, int] = {}                     # object -> sentence of its last pick-up
        sentences: list[list[str]] = []
        while len(sentences) < n:
            action = "move" if self.task == 1 else rng.choices(["move", "pick", "drop"], [0.5, 0.3, 0.2])[0]
            located = [p for p in PEOPLE if p in place]
            if action == "pick":
                free = [o for o in OBJECTS if o not in holder]
                options = [(p, o) for o in free for p in located if o not in lying or lying[o][0] == place[p]]
                if not options:
                    action = "move"
                else:
                    p, o = rng.choice(options)
                    holder[o] = p
                    lying.pop(o, None)
                    picked[o] = len(sentences)
                    sentences.append([p] + rng.choice(PICK_VERBS).split() + ["the", o])
                    continue
            if action == "drop":
                held = sorted(holder)
                if not held:
                    action = "move"
                else:
                    o = rng.choice(held)
                    p = holder.pop(o)
                    lying[o] = (place[p], len(sentences), last_move[p])
                    sentences.append([p] + rng.choice(DROP_VERBS).split() + ["the", o])
                    continue
            p = rng.choice(PEOPLE)
            where = rng.choice([x for x in PLACES if x != place.get(p)])
            place[p], last_move[p] = where, len(sentences)
            sentences.append([p] + rng.choice(MOVE_VERBS).split() + ["the", where])
        if self.task == 1:
            p = rng.choice(sorted(place))
            return Story(sentences, ["where", "is", p], place[p], [last_move[p]], 1)
        known = sorted(set(holder) | set(lying))
        if not known:
            return None
        o = rng.choice(known)
        if o in holder:
            p = holder[o]
            return Story(sentences, ["where", "is", "the", o], place[p], sorted([picked[o], last_move[p]]), 2)
        where, dropped_at, mover = lying[o]
        return Story(sentences, ["where", "is", "the", o], where, sorted([mover, dropped_at]), 2)

    def sample(self, n: int, seed: int = 0) -> list[Story]:
        """``n`` stories, the same ones for the same seed."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        rng = random.Random(f"babi-{self.task}-{seed}")
        stories: list[Story] = []
        while len(stories) < n:
            story = self._story(rng)
            if story is not None:
                stories.append(story)
        return stories

    def batch(self, n: int, seed: int = 0, device=None) -> BabiBatch:
        """``n`` fresh stories as a padded batch."""
        return make_babi_batch(self.sample(n, seed), self.vocab, device=device)


def make_babi_batch(stories: list[Story], vocab: Vocab | None = None, *, max_sentences: int | None = None,
                    device=None) -> BabiBatch:
    """Pad stories into id tensors (see ``BabiBatch``); ``max_sentences`` fixes L (else the longest story)."""
    if not stories:
        raise ValueError("make_babi_batch needs at least one story")
    vocab = vocab or babi_vocab()
    L = max_sentences or max(len(s.sentences) for s in stories)
    if any(len(s.sentences) > L for s in stories):
        raise ValueError(f"a story has more than max_sentences = {L} sentences")
    W = max(len(w) for s in stories for w in s.sentences)
    Wq = max(len(s.question) for s in stories)
    B = len(stories)
    story = [[[0] * W for _ in range(L)] for _ in range(B)]          # nested lists first: one tensor at the end
    question = [[0] * Wq for _ in range(B)]
    supporting = [[False] * L for _ in range(B)]
    for b, s in enumerate(stories):
        for i, words in enumerate(s.sentences):
            story[b][i][:len(words)] = vocab.encode(words)
        question[b][:len(s.question)] = vocab.encode(s.question)
        for i in s.supporting:
            supporting[b][i] = True
    story, question = torch.tensor(story, dtype=torch.long), torch.tensor(question, dtype=torch.long)
    supporting = torch.tensor(supporting, dtype=torch.bool)
    answer = torch.tensor([vocab.stoi[s.answer] for s in stories])
    n_sentences = torch.tensor([len(s.sentences) for s in stories])
    return BabiBatch(story, question, answer, supporting, n_sentences).to(device if device is not None else "cpu")
