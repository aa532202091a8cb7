"""Seeded data for the lessons: vocabularies, padding and batching, task generators."""

from .vocab import Vocab, PAD, BOS, EOS, pad_batch
from .number_words import NumberWordsTask, number_words
from .batching import Seq2SeqBatch, make_batch, iterate_batches
from .lookup import LookupBatch, LookupTask
from .source_transforms import SOURCE_FEEDS, TransformedSourceTask, transform_source

__all__ = [
    "Vocab", "PAD", "BOS", "EOS", "pad_batch",
    "NumberWordsTask", "number_words",
    "Seq2SeqBatch", "make_batch", "iterate_batches",
    "LookupBatch", "LookupTask",
    "SOURCE_FEEDS", "TransformedSourceTask", "transform_source",
]
