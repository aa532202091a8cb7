import pytest
import torch

from course_utils.data import NumberWordsTask, Vocab, make_batch, pad_batch, iterate_batches


def test_vocab_roundtrip_and_specials():
    v = Vocab(["a", "b", "a"])
    assert len(v) == 5 and v.itos[:3] == ["<pad>", "<bos>", "<eos>"]
    ids = v.encode(["b", "a"], add_bos=True, add_eos=True)
    assert ids == [1, 4, 3, 2]
    assert v.decode(ids + [0, 0]) == ["b", "a"]
    assert v.decode([4, 2, 3]) == ["b"]  # stops at <eos>


def test_vocab_errors_name_the_problem():
    v = Vocab(["a"])
    with pytest.raises(KeyError, match="zebra"):
        v.encode(["a", "zebra"])
    with pytest.raises(IndexError, match="outside"):
        v.decode([9])
    with pytest.raises(TypeError):
        Vocab([1, 2])


def test_pad_batch():
    x, lengths = pad_batch([[5, 6, 7], [8]])
    assert x.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    with pytest.raises(ValueError, match="empty"):
        pad_batch([[1], []])
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([])


def test_task_words_orders_and_seeding():
    aligned = NumberWordsTask("de", "aligned", 2, 5)
    mirror = NumberWordsTask("de", "mirror", 2, 5)
    assert aligned.translate([3, 1, 4]) == (["three", "one", "four"], ["drei", "eins", "vier"])
    assert mirror.translate([3, 1, 4])[1] == ["vier", "eins", "drei"]
    assert NumberWordsTask("fr").translate([2])[1] == ["deux"]
    assert aligned.name == "English -> German (aligned)"
    a, b = aligned.sample(50, seed=3), aligned.sample(50, seed=3)
    assert a == b and a != aligned.sample(50, seed=4)
    assert {len(s) for s, _ in a} <= set(range(2, 6)) and len({len(s) for s, _ in a}) > 1
    assert all(len(s) == 7 for s, _ in aligned.sample(10, seed=0, length=7))


def test_task_rejects_bad_settings():
    with pytest.raises(ValueError, match="order"):
        NumberWordsTask(order="sideways")
    with pytest.raises(ValueError, match="min_len"):
        NumberWordsTask(min_len=5, max_len=2)
    with pytest.raises(ValueError, match="0..9"):
        NumberWordsTask().translate([12])


def test_make_batch_shapes_and_reversal():
    task = NumberWordsTask("de", "aligned", 2, 5)
    pairs = [task.translate([1, 2, 3]), task.translate([4, 5])]
    b = make_batch(pairs, task.src_vocab, task.tgt_vocab)
    r = make_batch(pairs, task.src_vocab, task.tgt_vocab, reverse_source=True)
    assert b.src.shape == (2, 3) and b.tgt_in.shape == b.tgt_out.shape == (2, 4)
    assert (b.tgt_in[:, 0] == 1).all() and b.tgt_out[1].tolist()[2:] == [2, 0]
    assert r.src[0].tolist() == b.src[0].flip(0).tolist()
    assert r.src[1].tolist() == [b.src[1, 1].item(), b.src[1, 0].item(), 0]  # padding stays at the end
    with pytest.raises(ValueError, match="pair 0"):
        make_batch([("only one",)], task.src_vocab, task.tgt_vocab)


def test_iterate_batches_covers_every_pair_once():
    task = NumberWordsTask()
    pairs = task.sample(10, seed=0)
    batches = list(iterate_batches(pairs, task.src_vocab, task.tgt_vocab, batch_size=4, seed=1))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sum(int(b.src_len.sum()) for b in batches) == sum(len(s) for s, _ in pairs)


def test_split_source_two_tokens_for_one_word():
    task = NumberWordsTask("de", "aligned", 2, 4, n_numbers=100, split_source=True)
    assert task.translate([42, 7, 20]) == (["forty", "two", "seven", "twenty"], ["zweiundvierzig", "sieben", "zwanzig"])
    assert task.source_positions([42, 7, 20]) == [[0, 1], [2], [3]]
    assert task.name == "English -> German (aligned, split source)"
    assert "forty" in task.src_vocab.itos and "forty-two" not in task.src_vocab.itos
    mirror = NumberWordsTask("de", "mirror", n_numbers=100, split_source=True)
    assert mirror.translate([42, 7])[1] == ["sieben", "zweiundvierzig"]
    assert mirror.source_positions([42, 7]) == [[2], [0, 1]]
    for numbers in ([3, 55, 90], [99, 0]):   # every source token belongs to exactly one target word
        src, tgt = task.translate(numbers)
        spans = task.source_positions(numbers)
        assert len(spans) == len(tgt) and sorted(p for s in spans for p in s) == list(range(len(src)))
    pairs = task.sample(20, seed=1)
    assert pairs == task.sample(20, seed=1) and all(2 <= len(t) <= 4 and len(t) <= len(s) <= 2 * len(t) for s, t in pairs)
    batch = make_batch(pairs, task.src_vocab, task.tgt_vocab)   # every piece is in the source vocabulary
    assert batch.src.shape[0] == 20


def test_default_task_unchanged_by_split_option():
    task = NumberWordsTask()
    assert task.split_source is False and task.source_positions([3, 1]) == [[0], [1]]
    assert task.translate([21 % 10]) == (["one"], ["eins"]) and len(task.src_vocab) == 13
