import math

import matplotlib
matplotlib.use("Agg")
import pytest
import torch

from course_utils import seed_everything
from course_utils.data import NumberWordsTask, make_batch
from course_utils.models import BottleneckSeq2Seq, final_hidden_state, seq2seq_loss
from course_utils.training import accuracy_by_length, exact_match, strip_after_eos, train, translation_accuracy_by_length
from course_utils.viz import attention_heatmap, plot_accuracy_by_length, plot_learning_curves


def test_final_hidden_state_matches_packed_gru():
    seed_everything(0)
    rnn = torch.nn.GRU(3, 4, batch_first=True)
    x, lengths = torch.randn(3, 5, 3), torch.tensor([5, 2, 1])
    out, _ = rnn(x)
    _, h = rnn(torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    assert torch.allclose(final_hidden_state(out, lengths), h[0], atol=1e-6)


@pytest.mark.parametrize("outputs, lengths, message", [
    (torch.zeros(2, 3), torch.tensor([1, 1]), "batch, seq, hidden"),
    (torch.zeros(2, 3, 4), torch.tensor([1, 1, 1]), "lengths must be"),
    (torch.zeros(2, 3, 4), torch.tensor([0, 3]), "1..3"),
    (torch.zeros(2, 3, 4), torch.tensor([4, 3]), "1..3"),
    (torch.zeros(2, 3, 4), torch.tensor([1.0, 2.0]), "integer"),
])
def test_final_hidden_state_bad_input(outputs, lengths, message):
    with pytest.raises((ValueError, TypeError), match=message):
        final_hidden_state(outputs, lengths)


def test_seq2seq_learns_short_copy_and_reports_by_length():
    """A tiny model trained briefly translates 2-word sentences well: the loop and evaluation work."""
    seed_everything(0)
    task = NumberWordsTask("de", "aligned", 2, 3)
    model = BottleneckSeq2Seq(len(task.src_vocab), len(task.tgt_vocab), 16, 32)
    nb = lambda step: make_batch(task.sample(64, seed=step), task.src_vocab, task.tgt_vocab)
    loss = lambda m, b: seq2seq_loss(m(b.src, b.src_len, b.tgt_in), b.tgt_out)
    history = train(model, nb, loss, steps=150, lr=1e-2, log_every=10, progress=False,
                    evaluate=lambda m: {"len2": translation_accuracy_by_length(m, task, [2], n_per_length=50)[2]},
                    eval_every=75)
    assert history.loss[0] > math.log(len(task.tgt_vocab)) - 1.0
    assert history.final_loss < 0.3 * history.loss[0]
    assert history.eval_steps == [75, 150] and history.metrics["len2"][-1] > 0.8
    acc = translation_accuracy_by_length(model, task, [2, 3], n_per_length=50)
    assert set(acc) == {2, 3} and all(0.0 <= a <= 1.0 for a in acc.values())


def test_train_rejects_bad_settings():
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match="steps"):
        train(model, lambda s: None, lambda m, b: m.weight.sum(), steps=0)
    with pytest.raises(ValueError, match="scalar"):
        train(model, lambda s: None, lambda m, b: m.weight, steps=1, progress=False)


def test_seq2seq_loss_ignores_padding_and_checks_shapes():
    logits = torch.zeros(1, 3, 5)
    logits[0, 0, 4] = 10.0
    assert seq2seq_loss(logits, torch.tensor([[4, 0, 0]])).item() < 1e-3  # the padded positions do not count
    with pytest.raises(ValueError, match="disagree"):
        seq2seq_loss(logits, torch.tensor([[4, 0]]))


def test_evaluation_helpers():
    assert strip_after_eos([5, 6, 2, 7]) == [5, 6] and strip_after_eos([5]) == [5]
    assert exact_match([[1, 2], [1]], [[1, 2], [1, 3]]) == [True, False]
    assert accuracy_by_length([True, False, True], [4, 4, 2]) == {2: 1.0, 4: 0.5}
    with pytest.raises(ValueError, match="2 results but 1 lengths"):
        accuracy_by_length([True, False], [3])
    with pytest.raises(ValueError, match="predictions"):
        exact_match([[1]], [])


def test_plots_label_axes_and_reject_bad_input():
    ax = plot_accuracy_by_length({"a": {2: 1.0, 3: 0.5}})
    assert ax.get_xlabel() == "input length (words)" and ax.get_title()
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        plot_accuracy_by_length({"a": {2: 1.5}})
    ax = attention_heatmap(torch.full((2, 3), 1 / 3), ["a", "b", "c"], ["x", "y"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="expected \\(2, 3\\)"):
        attention_heatmap(torch.ones(3, 2), ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="at least one"):
        plot_learning_curves({})


# --------------------------------------------------------------------------- lesson 01's source feeds and checks

from course_utils.data.source_transforms import SOURCE_FEEDS, TransformedSourceTask, transform_source


def test_transform_source_feeds():
    words = ["three", "one", "four"]
    assert transform_source(words, "forward") == words
    assert transform_source(words, "reversed") == ["four", "one", "three"]
    assert transform_source(words, "twice") == words + words
    assert words == ["three", "one", "four"]  # the input is not modified
    with pytest.raises(ValueError, match="feed must be one of"):
        transform_source(words, "backwards")


@pytest.mark.parametrize("feed", SOURCE_FEEDS)
def test_transformed_task_keeps_targets_and_vocabularies(feed):
    task = NumberWordsTask("de", "aligned", 2, 5)
    fed = TransformedSourceTask(task, feed)
    assert fed.src_vocab is task.src_vocab and fed.tgt_vocab is task.tgt_vocab and fed.max_len == 5
    plain, transformed = task.sample(20, seed=3), fed.sample(20, seed=3)
    assert [t for _, t in transformed] == [t for _, t in plain]
    assert [s for s, _ in transformed] == [transform_source(s, feed) for s, _ in plain]
    assert all(len(s) == (8 if feed == "twice" else 4) for s, _ in fed.sample(5, seed=1, length=4))
    batch = make_batch(fed.sample(4, seed=2), fed.src_vocab, fed.tgt_vocab)
    reference = make_batch(task.sample(4, seed=2), task.src_vocab, task.tgt_vocab, reverse_source=True)
    if feed == "reversed":  # the same batch make_batch's own reverse_source gives
        assert torch.equal(batch.src, reference.src) and torch.equal(batch.tgt_out, reference.tgt_out)
    with pytest.raises(ValueError, match="feed"):
        TransformedSourceTask(task, "sideways")


def test_lesson01_checks_switch_off_the_finished_versions_and_restore_them():
    from course_utils.grading.core import run_check
    from course_utils.models import final_hidden_state as finished_state
    from course_utils.training import accuracy_by_length as finished_accuracy

    result = run_check("01.final_state", finished_state)
    assert result.points == 0 and "switched off" in result.message
    assert run_check("01.accuracy_by_length", finished_accuracy).points == 0
    reverse = lambda src, lengths: torch.stack([torch.tensor(transform_source(r[:n].tolist(), "reversed") + r[n:].tolist())
                                                for r, n in zip(src, lengths.tolist())])
    assert run_check("01.reverse_source", reverse).points < 4
    # and afterwards they work again
    assert finished_accuracy([True, False], [2, 2]) == {2: 0.5}
    assert finished_state(torch.zeros(1, 2, 3), torch.tensor([2])).shape == (1, 3)
    assert transform_source(["a", "b"], "reversed") == ["b", "a"]


def test_lesson01_checks_accept_numpy_and_float64_answers_and_locate_errors():
    import numpy as np
    from course_utils.grading.core import run_check

    def final_state(outputs, lengths):
        return outputs.double()[torch.arange(len(lengths)), lengths - 1].numpy()

    assert run_check("01.final_state", final_state).points == 4

    def path_lengths(S, order, feed):
        read = 2 * S if feed == "twice" else S
        pos = lambda t: (t if order == "aligned" else S - t + 1)
        where = {"forward": lambda i: i, "reversed": lambda i: S - i + 1, "twice": lambda i: i}[feed]  # first copy: wrong
        return np.array([read - where(pos(t)) + t for t in range(1, S + 1)], dtype=np.float64)

    result = run_check("01.path_lengths", path_lengths, lambda: np.bool_(False))
    assert result.points == 2  # forward/reversed right, the doubled source counted from the first copy, verdict right
    assert "index 0" in result.feedback() and "second copy" in result.feedback()
