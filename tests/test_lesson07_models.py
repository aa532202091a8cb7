"""Lesson 07's data and models: the number-translation task, the summarisation task with unseen names, and the
pointer-generator (copy distribution, extended vocabulary, plain decoder beside it)."""

import math

import pytest
import torch

from course_utils.data import make_batch
from course_utils.data.summaries import (COMMON_NAMES, RARE_NAMES, UNK, UNSEEN_NAMES, SummaryTask, decode_extended,
                                         encode_pointer_batch, lead_k, summary_vocab, token_f1)
from course_utils.data.translation import NumberTranslationTask, digits, written_number
from course_utils.models.beam_search import beam_search
from course_utils.models.pointer import PointerSeq2Seq, copy_distribution, pointer_loss

# --------------------------------------------------------------------------- translation data


def test_written_numbers_reorder_in_german_and_count_in_twenties_in_french():
    assert "".join(written_number(42, "de")) == "zweiundvierzig"
    assert "".join(written_number(97, "fr")) == "quatre-vingt-dix-sept"
    assert "".join(written_number(21, "fr")) == "vingt_et_un"              # spaces become "_"
    assert digits(342) == ("3", "4", "2")
    with pytest.raises(ValueError, match="lang"):
        written_number(3, "xx")
    with pytest.raises(ValueError, match="non-negative"):
        written_number(-1)


@pytest.mark.parametrize("direction", ["to_words", "to_digits"])
def test_translation_task_is_seeded_and_its_vocabularies_cover_every_number(direction):
    task = NumberTranslationTask("de", 0, 1000, direction=direction)
    assert task.sample(20, seed=3) == task.sample(20, seed=3)
    assert task.sample(20, seed=3) != task.sample(20, seed=4)
    pairs = [task.pair(n) for n in range(1000)]
    batch = make_batch(pairs, task.src_vocab, task.tgt_vocab)              # every token is known
    assert batch.src.shape[0] == 1000
    source, target = task.pair(342)
    if direction == "to_words":
        assert source == ("3", "4", "2") and "".join(target) == "dreihundertzweiundvierzig"
    else:
        assert target == ("3", "4", "2")


def test_translation_split_is_disjoint_seeded_and_complete():
    task = NumberTranslationTask("fr", 0, 500)
    train, test = task.split(100, seed=0)
    assert len(test) == 100 and len(train) == 400 and not set(train) & set(test)
    assert sorted(train + test) == list(range(500))
    assert task.split(100, seed=0) == (train, test) and task.split(100, seed=1) != (train, test)
    with pytest.raises(ValueError, match="n_test"):
        task.split(500)
    with pytest.raises(ValueError, match="direction"):
        NumberTranslationTask(direction="sideways")
    with pytest.raises(ValueError, match="lie in"):
        task.pair(500)


# --------------------------------------------------------------------------- summarisation data


def test_name_pools_are_disjoint_and_only_common_names_are_in_the_vocabulary():
    assert len(COMMON_NAMES) == 30 and len(RARE_NAMES) == 300 and len(UNSEEN_NAMES) == 100
    assert not (set(COMMON_NAMES) & set(RARE_NAMES) or set(COMMON_NAMES) & set(UNSEEN_NAMES)
                or set(RARE_NAMES) & set(UNSEEN_NAMES))
    vocab = summary_vocab()
    assert all(n in vocab.stoi for n in COMMON_NAMES)
    assert not any(n in vocab.stoi for n in RARE_NAMES + UNSEEN_NAMES)
    assert vocab.stoi[UNK] == 3


def test_articles_are_seeded_and_their_summary_names_the_actor_found_in_the_source():
    task = SummaryTask()
    a = task.sample(50, seed=1, names="unseen")
    assert [x.source for x in a] == [x.source for x in task.sample(50, seed=1, names="unseen")]
    for article in a:
        assert article.summary[0] == article.name and article.name in UNSEEN_NAMES
        assert article.name in article.source
        assert all(w in article.source for w in article.summary)          # every summary word can be copied
    train_names = {x.name for x in task.sample(400, seed=0)}
    assert train_names & set(COMMON_NAMES) and train_names & set(RARE_NAMES)
    assert not train_names & set(UNSEEN_NAMES)
    with pytest.raises(ValueError, match="names"):
        task.sample(2, names="famous")


def test_encode_pointer_batch_gives_unknown_words_extended_ids_per_article():
    vocab = summary_vocab()
    articles = SummaryTask().sample(6, seed=2, names="unseen")
    batch = encode_pointer_batch(articles, vocab)
    V = len(vocab)
    assert batch.src.max() < V and batch.src_ext.max() == V + batch.n_extended - 1
    for b, article in enumerate(articles):
        n = len(article.source)
        assert int(batch.src_len[b]) == n
        for i, word in enumerate(article.source):
            ext = int(batch.src_ext[b, i])
            if word in vocab.stoi:
                assert ext == vocab.stoi[word] == int(batch.src[b, i])
            else:
                assert int(batch.src[b, i]) == vocab.stoi[UNK] and batch.oov[b][ext - V] == word
        assert decode_extended(batch.tgt_out_ext[b].tolist(), vocab, batch.oov[b]) == article.summary
        assert decode_extended(batch.tgt_out[b].tolist(), vocab, batch.oov[b])[0] == UNK   # unseen: <unk> without copy


def test_token_f1_and_lead_baseline():
    assert token_f1(["a", "b"], ["a", "b"]) == 1.0
    assert token_f1(["c"], ["a", "b"]) == 0.0
    assert math.isclose(token_f1(["a", "a", "b"], ["a", "b", "c", "d"]), 2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert token_f1(["ühe", "b"], ["ühe"]) == pytest.approx(2 / 3)          # non-ASCII words are whole tokens
    assert lead_k(["the", ",", "mayor", ".", "x"], 2) == ["the", "mayor"]
    with pytest.raises(ValueError):
        token_f1(["a"], [])


# --------------------------------------------------------------------------- pointer-generator


def test_copy_distribution_adds_attention_of_repeated_words_and_sums_to_one():
    p_vocab = torch.softmax(torch.randn(2, 5, generator=torch.Generator().manual_seed(0)), -1)
    attention = torch.tensor([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]])
    src_ext = torch.tensor([[6, 4, 6], [5, 3, 0]])
    p_gen = torch.tensor([[0.25], [1.0]])
    out = copy_distribution(p_vocab, attention, src_ext, p_gen, 2)
    assert out.shape == (2, 7)
    assert torch.allclose(out.sum(-1), torch.ones(2))
    assert math.isclose(float(out[0, 6]), 0.75 * 0.8, rel_tol=1e-6)         # both positions of word 6
    assert math.isclose(float(out[0, 4]), 0.25 * float(p_vocab[0, 4]) + 0.75 * 0.2, rel_tol=1e-6)
    assert torch.allclose(out[1, :5], p_vocab[1]) and float(out[1, 5:].abs().sum()) == 0.0   # p_gen = 1: no copying


@pytest.mark.parametrize("copy", [True, False])
def test_pointer_model_gives_distributions_over_the_extended_vocabulary(copy):
    vocab = summary_vocab()
    batch = encode_pointer_batch(SummaryTask().sample(4, seed=3, names="unseen"), vocab)
    torch.manual_seed(0)
    model = PointerSeq2Seq(len(vocab), 16, 24, copy=copy, unk_id=vocab.stoi[UNK])
    log_probs, attention, gate = model(batch.src, batch.src_ext, batch.src_len, batch.tgt_in, batch.n_extended,
                                       return_details=True)
    B, T = batch.tgt_in.shape
    assert log_probs.shape == (B, T, len(vocab) + batch.n_extended)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(B, T), atol=1e-4)
    assert attention.shape == (B, T, batch.src.shape[1]) and gate.shape == (B, T)
    pad = torch.arange(batch.src.shape[1])[None, :] >= batch.src_len[:, None]
    assert float(attention.detach().masked_select(pad[:, None, :].expand_as(attention)).abs().sum()) == 0.0
    extended = log_probs.detach()[..., len(vocab):].exp()
    if copy:
        assert float(extended.sum()) > 0                          # an unseen name can be written by copying
    else:
        assert float(extended.max()) <= 1e-11 and bool((gate == 1).all())
    loss = pointer_loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.encoder.embed.weight.grad is not None


def test_pointer_model_learns_to_copy_unseen_names_and_decodes_with_beam_search():
    vocab = summary_vocab()
    task = SummaryTask()
    torch.manual_seed(0)
    model = PointerSeq2Seq(len(vocab), 32, 48, copy=True, unk_id=vocab.stoi[UNK])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        loss = pointer_loss(model, encode_pointer_batch(task.sample(32, seed=step), vocab))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    articles = task.sample(40, seed=99, names="unseen")
    batch = encode_pointer_batch(articles, vocab)
    model.eval()
    with torch.no_grad():
        greedy = model.greedy_decode(batch.src, batch.src_ext, batch.src_len, batch.n_extended, max_len=8)
        step, state = model.step_function(batch.src, batch.src_ext, batch.src_len, batch.n_extended)
        beam = beam_search(step, state, beam_size=3, max_len=8, alpha=1.0)
    names = [decode_extended(row, vocab, oov)[:1] for row, oov in zip(greedy.tolist(), batch.oov)]
    assert sum(n == [a.name] for n, a in zip(names, articles)) >= 30
    beam_names = [decode_extended(row, vocab, oov)[:1] for row, oov in zip(beam.tokens.tolist(), batch.oov)]
    assert sum(n == [a.name] for n, a in zip(beam_names, articles)) >= 30


@pytest.mark.parametrize("copy", [True, False])
def test_pointer_model_makes_every_tensor_on_the_device_of_its_inputs(copy):
    """On torch's meta device (shapes only) a tensor made on the CPU by mistake would fail, as on a GPU."""
    with torch.device("meta"):
        model = PointerSeq2Seq(20, 8, 16, copy=copy)
        src, lengths = torch.zeros(3, 7, dtype=torch.long), torch.full((3,), 7)
        log_probs = model(src, src, lengths, torch.zeros(3, 4, dtype=torch.long), 2)
        ids = model.greedy_decode(src, src, lengths, 2, max_len=5)
    assert log_probs.shape == (3, 4, 22) and log_probs.device.type == "meta"
    assert ids.shape == (3, 5) and ids.device.type == "meta"
