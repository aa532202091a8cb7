"""Every seq2seq model of the course (lessons 03, 04, 06) rejects malformed batches with the same clear errors."""

from __future__ import annotations

import re

import pytest
import torch

from course_utils.models import AttentionSeq2Seq, LuongSeq2Seq, TransformerSeq2Seq

MODELS = {
    "bahdanau": lambda: AttentionSeq2Seq(9, 11, emb_size=4, hidden_size=6),
    "luong-local-p": lambda: LuongSeq2Seq(9, 11, emb_size=4, hidden_size=6, window="local-p"),
    "transformer": lambda: TransformerSeq2Seq(9, 11, d_model=8, n_heads=2, n_layers=1, d_ff=16),
}
BAD = [
    (lambda s, l, t: (s[0], l, t), ValueError, "src must be a (batch, source length)"),
    (lambda s, l, t: (s.float(), l, t), TypeError, "integer token ids"),
    (lambda s, l, t: (s, l[:2], t), ValueError, "src_len must be (3,)"),
    (lambda s, l, t: (s, l.float(), t), TypeError, "src_len must be an integer"),
    (lambda s, l, t: (s, torch.tensor([5, 0, 1]), t), ValueError, "src_len must lie in 1..5"),
    (lambda s, l, t: (s, torch.tensor([6, 3, 1]), t), ValueError, "src_len must lie in 1..5"),
    (lambda s, l, t: (s, l, t[0]), ValueError, "tgt_in must be a (batch, target length)"),
    (lambda s, l, t: (s, l, t[:2]), ValueError, "src has 3 rows but tgt_in has 2"),
]


@pytest.mark.parametrize("name", MODELS)
def test_good_batch_gives_logits_per_target_position(name, batch):
    torch.manual_seed(0)
    logits = MODELS[name]().eval()(*batch)
    assert logits.shape == (3, 4, 11) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("make_bad, error, words", BAD)
def test_bad_batch_is_refused_with_a_clear_error(name, batch, make_bad, error, words):
    with pytest.raises(error, match=re.escape(words)):
        MODELS[name]()(*make_bad(*batch))
