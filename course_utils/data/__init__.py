"""Seeded data for the lessons: vocabularies, padding and batching, task generators."""

from .vocab import Vocab, PAD, BOS, EOS, pad_batch
from .number_words import NumberWordsTask, number_words
from .batching import Seq2SeqBatch, make_batch, iterate_batches
from .lookup import LookupBatch, LookupTask
from .source_transforms import SOURCE_FEEDS, TransformedSourceTask, transform_source
from .graphs import GraphData, karate_club, citation_graph, LookupGraphs, dictionary_lookup
from .babi import BabiTask, BabiBatch, Story, babi_vocab, make_babi_batch, PEOPLE, PLACES, OBJECTS
from .copy_task import CopyBatch, copy_batch, sample_copy_batch, copy_loss, bit_accuracy, sequence_accuracy
from .translation import NumberTranslationTask, written_number
from .digit_canvas import DigitCanvas, CanvasBatch, caption_words, digit_images
from .summaries import (SummaryTask, Article, PointerBatch, encode_pointer_batch, decode_extended, token_f1, lead_k,
                        summary_vocab)

__all__ = [
    "Vocab", "PAD", "BOS", "EOS", "pad_batch",
    "NumberWordsTask", "number_words",
    "Seq2SeqBatch", "make_batch", "iterate_batches",
    "LookupBatch", "LookupTask",
    "SOURCE_FEEDS", "TransformedSourceTask", "transform_source",
    "GraphData", "karate_club", "citation_graph", "LookupGraphs", "dictionary_lookup",
    "BabiTask", "BabiBatch", "Story", "babi_vocab", "make_babi_batch", "PEOPLE", "PLACES", "OBJECTS",
    "CopyBatch", "copy_batch", "sample_copy_batch", "copy_loss", "bit_accuracy", "sequence_accuracy",
    "NumberTranslationTask", "written_number",
    "SummaryTask", "Article", "PointerBatch", "encode_pointer_batch", "decode_extended", "token_f1", "lead_k",
    "summary_vocab",
    "DigitCanvas", "CanvasBatch", "caption_words", "digit_images",
]
