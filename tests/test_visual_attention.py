"""Lesson 12's pieces: the digit canvases, grid attention, the pointing score, the doubly stochastic penalty,
the captioner in its three modes (soft, hard, mean), hard attention's REINFORCE loss, and the graded checks
(the finished versions are refused)."""

from __future__ import annotations

import pytest
import torch

from course_utils.data.digit_canvas import BOS, DIGIT, EOS, WORDS, DigitCanvas, caption_words, digit_images
from course_utils.grading.core import run_check
from course_utils.models import visual_attention as va
from course_utils.models.attention import scaled_dot_product_attention
from course_utils.models.hard_attention import MovingAverageBaseline

META = torch.device("meta")


# --------------------------------------------------------------------------- data


def test_canvases_are_seeded_non_overlapping_and_ordered_left_to_right():
    task = DigitCanvas(size=24, n_digits=3, split="test", min_gap=3)
    a, b = task.batch(300, seed=5), task.batch(300, seed=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.images, task.batch(300, seed=6).images)
    top, left = a.boxes[..., 0], a.boxes[..., 1]
    for i in range(3):
        for j in range(i + 1, 3):
            apart = ((top[:, i] - top[:, j]).abs() >= DIGIT) | ((left[:, i] - left[:, j]).abs() >= DIGIT)
            assert bool(apart.all())
    assert bool((left[:, 1:] - left[:, :-1] >= 3).all())
    assert bool((a.boxes[..., 2:] == DIGIT).all())
    assert a.images.shape == (300, 1, 24, 24) and float(a.images.min()) >= 0 and float(a.images.max()) <= 1


def test_each_box_holds_the_digit_it_names():
    images, labels = digit_images("test")
    task = DigitCanvas(split="test")
    batch = task.batch(50, seed=2)
    for k in range(50):
        for t in range(3):
            y, x = batch.boxes[k, t, :2].tolist()
            patch = batch.images[k, 0, y:y + DIGIT, x:x + DIGIT].numpy()
            matches = [i for i in range(len(labels)) if (images[i] == patch).all()]
            assert matches and int(batch.digits[k, t]) in {int(labels[i]) for i in matches}


def test_splits_and_captions():
    assert len(digit_images("train")[0]) == 1500 and len(digit_images("test")[0]) == 297
    batch = DigitCanvas().batch(4, seed=0)
    assert torch.equal(batch.caption_in[:, 0], torch.full((4,), BOS))
    assert torch.equal(batch.caption_out[:, -1], torch.full((4,), EOS))
    assert torch.equal(batch.caption_in[:, 1:], batch.caption_out[:, :-1])
    assert caption_words([BOS, 3, 7, 1, EOS, 5]) == "three seven one"
    assert len(batch[1:3]) == 2
    with pytest.raises(ValueError):
        digit_images("valid")
    with pytest.raises(ValueError):
        DigitCanvas(size=24, n_digits=9)


# --------------------------------------------------------------------------- attention pieces


def test_grid_attention_is_scaled_dot_product_attention_over_the_flattened_grid():
    g = torch.Generator().manual_seed(0)
    features, query = torch.randn(3, 5, 4, 6, generator=g) * 30, torch.randn(3, 5, generator=g)
    context, weights = va.grid_attention(features, query)
    regions = va.flatten_regions(features)
    assert torch.equal(regions[:, 1 * 6 + 4], features[:, :, 1, 4])
    out, w = scaled_dot_product_attention(query[:, None], regions, regions)
    assert torch.allclose(context, out[:, 0], atol=1e-4)
    assert torch.allclose(weights, w[:, 0].reshape(3, 4, 6), atol=1e-6)
    assert torch.isfinite(weights).all()


def test_pointing_score_and_region_overlap():
    boxes = torch.tensor([[[4, 8, 8, 8], [1, 2, 5, 7]]])
    overlap = va.region_box_overlap(boxes, (6, 6), 4)
    assert torch.allclose(overlap.sum((-2, -1)) * 16, torch.tensor([[64.0, 35.0]]))
    uniform = torch.full((1, 2, 6, 6), 1 / 36)
    assert torch.allclose(va.pointing_score(uniform, boxes, 4), torch.tensor([[64 / 576, 35 / 576]]))
    inside = torch.zeros(1, 2, 6, 6)
    inside[0, :, 1, 2] = 1.0                                   # region rows 4-7, columns 8-11: inside box 0
    assert torch.allclose(va.pointing_score(inside, boxes, 4), torch.tensor([[1.0, 2 / 16]]))   # rows 4-5, column 8


def test_doubly_stochastic_penalty_identity_and_mask():
    g = torch.Generator().manual_seed(1)
    alpha = torch.softmax(torch.randn(5, 4, 9, generator=g), -1)
    c = alpha.sum(1)
    assert torch.allclose(va.doubly_stochastic_penalty(alpha), (9 - 2 * 4 + (c ** 2).sum(-1)).mean(), atol=1e-5)
    mask = torch.tensor([[True, True, False, False]] * 5)
    assert torch.allclose(va.doubly_stochastic_penalty(alpha, mask), va.doubly_stochastic_penalty(alpha[:, :2]))
    uniform = torch.full((1, 4, 9), 1 / 9)
    assert float(va.doubly_stochastic_penalty(uniform)) <= float(va.doubly_stochastic_penalty(alpha)[()])


# --------------------------------------------------------------------------- the captioner


@pytest.mark.parametrize("mode", va.MODES)
def test_captioner_shapes_and_modes(mode):
    torch.manual_seed(0)
    model = va.AttentionCaptioner(len(WORDS), mode=mode)
    batch = DigitCanvas().batch(5, seed=0)
    logits, alpha, chosen = model(batch.images, batch.caption_in)
    assert logits.shape == (5, 4, len(WORDS)) and alpha.shape == (5, 4, 36)
    assert torch.allclose(alpha.sum(-1), torch.ones(5, 4), atol=1e-5)
    assert (chosen is None) == (mode != "hard") and (chosen is None or chosen.shape == (5, 4))
    if mode == "mean":
        assert torch.allclose(alpha, torch.full_like(alpha, 1 / 36))
    tokens, alpha2 = model.caption(batch.images, steps=4, bos=BOS)
    assert tokens.shape == (5, 4) and alpha2.shape == (5, 4, 36) and model.training
    acc = va.caption_accuracy(model, batch, BOS)
    assert 0 <= acc["caption"] <= acc["digit"] <= 1
    assert va.attention_on_digits(model, batch).shape == (5, 3)


def test_regions_read_counts_one_per_step_for_hard_attention():
    batch = DigitCanvas().batch(6, seed=0)
    reads = {}
    for mode in ("soft", "hard"):
        model = va.AttentionCaptioner(len(WORDS), mode=mode)
        model.caption(batch.images, steps=4, bos=BOS)
        reads[mode] = model.regions_read
    assert reads == {"soft": 6 * 4 * 36, "hard": 6 * 4}


def test_hard_loss_trains_attention_only_through_reinforce():
    torch.manual_seed(0)
    model = va.AttentionCaptioner(len(WORDS), mode="hard").train()
    batch = DigitCanvas().batch(16, seed=0)
    baseline = MovingAverageBaseline(0.9)
    for reward in ("word", "caption"):
        model.zero_grad()
        va.hard_caption_loss(model, batch, baseline, reward=reward).backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.attention_parameters())
    # every image reads the expected context: no sample is used, so REINFORCE adds nothing
    model.zero_grad()
    va.hard_caption_loss(model, batch, 0.0, soft_share=1.0).backward()
    soft_grads = [p.grad.clone() for p in model.attention_parameters()]
    assert all(g.abs().sum() > 0 for g in soft_grads)
    with pytest.raises(ValueError):
        va.hard_caption_loss(va.AttentionCaptioner(len(WORDS), mode="soft"), batch)
    with pytest.raises(ValueError):
        va.AttentionCaptioner(len(WORDS), mode="glimpse")


def test_soft_training_learns_to_point():
    """A few hundred steps are enough for soft attention to point well above uniform (0.111)."""
    torch.manual_seed(0)
    pool = DigitCanvas().batch(2000, seed=100)
    test = DigitCanvas(split="test").batch(200, seed=1)
    model = va.AttentionCaptioner(len(WORDS), mode="soft")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = va.soft_caption_loss(model, pool[torch.randint(0, 2000, (64,), generator=gen)], 0.005)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert float(va.attention_on_digits(model, test).mean()) > 0.4
    assert va.caption_accuracy(model, test, BOS)["digit"] > 0.5


def test_runs_on_the_meta_device():
    images = torch.zeros(2, 1, 24, 24, device=META)
    caption_in = torch.zeros(2, 4, dtype=torch.long, device=META)
    for mode in ("soft", "mean"):
        model = va.AttentionCaptioner(len(WORDS), mode=mode).to(META)
        logits, alpha, _ = model(images, caption_in)
        assert logits.device == META and alpha.shape == (2, 4, 36)
    boxes = torch.zeros(2, 4, 4, dtype=torch.long, device=META)
    assert va.pointing_score(torch.zeros(2, 4, 6, 6, device=META), boxes, 4).device == META
    assert va.doubly_stochastic_penalty(torch.zeros(2, 4, 36, device=META)).device == META


# --------------------------------------------------------------------------- graded checks


def test_finished_versions_are_refused_by_the_checks():
    for check_id, fn in (("12.grid_attention", va.grid_attention), ("12.pointing_score", va.pointing_score),
                         ("12.doubly_stochastic", va.doubly_stochastic_penalty)):
        result = run_check(check_id, fn)
        assert result.points == 0, result.feedback()
        assert "switched off" in result.feedback()
