"""Finished models that lessons build step by step; later lessons import them from here."""

from .seq2seq import GRUEncoder, GRUDecoder, BottleneckSeq2Seq, final_hidden_state, seq2seq_loss

__all__ = ["GRUEncoder", "GRUDecoder", "BottleneckSeq2Seq", "final_hidden_state", "seq2seq_loss"]
