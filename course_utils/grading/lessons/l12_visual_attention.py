"""Checks for exercises/12_visual_attention.ipynb: attention over a grid of image regions, the pointing score,
and the doubly stochastic attention penalty of Xu et al. (2015).

Every check computes its references first (in float64), then calls the learner's code on copies of its
inputs and has a part that says whether the code changed them. It calls the code on at least two sizes
that differ in every free dimension (batch, channels, grid height and width, caption steps, regions, cell
size), in float32 and float64, on large and mixed-scale values where a softmax is involved (scores in the
thousands, images whose features differ a thousandfold in scale), on grids that are not square (so a
transposed grid is caught), and on boxes that do and do not line up with the regions. Answers may be
tensors of any floating dtype, NumPy arrays or lists (the penalty must stay a differentiable tensor, since
it is added to a training loss). Hints say where a wrong answer first differs. While a check runs, the
course's finished versions in ``course_utils.models.visual_attention`` are switched off.
"""

from __future__ import annotations

import torch

from ..core import register
from ..tensor_checks import (UNCHANGED, why_wrong as _why, expect_unchanged as _expect_unchanged, OnCopies,
                             as_number as _as_number, as_tensor as _as_tensor, close as _same, describe as _describe,
                             disabled, rounded as _rounded, where_differs as _where)

SET = "12_visual_attention"
_UNCHANGED = UNCHANGED


# --------------------------------------------------------------------------- helpers


def _finished_versions_off():
    from ...models import visual_attention as finished

    return disabled(finished.grid_attention, finished.flatten_regions, finished.pointing_score,
                    finished.region_box_overlap, finished.doubly_stochastic_penalty,
                    why="the course's finished version in course_utils.models.visual_attention is not available to "
                        "this exercise: write it yourself")


def _Calls(t, fn, fn_name, names, changed):
    """The learner's function on copies of its inputs, with the finished versions off (see OnCopies)."""
    return OnCopies(t, fn, fn_name, names, changed, switched_off=_finished_versions_off)


def _pair(raw):
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        return _as_tensor(raw[0]), _as_tensor(raw[1])
    return None, None


# --------------------------------------------------------------------------- exercise 1: attention over a grid


def _ref_grid(features, query, scale=True, layout="rows"):
    f, q = features.double(), query.double()
    B, C, H, W = f.shape
    if layout == "columns":
        f = f.transpose(-2, -1)
    regions = f.flatten(2).transpose(1, 2)                                 # (B, L, C)
    scores = (regions @ q.unsqueeze(-1)).squeeze(-1)
    if scale:
        scores = scores / C ** 0.5
    w = torch.softmax(scores, -1)
    context = (w.unsqueeze(1) @ regions).squeeze(1)
    return context, w.reshape(B, H, W)          # columns: the column-major order poured into an (H, W) grid


def _grid_case(g, B, C, H, W, scales=None, dtype=torch.float32):
    f = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    q = torch.randn(B, C, generator=g, dtype=torch.float64)
    if scales is not None:                                                  # per image: scores up to thousands
        s = torch.tensor(scales, dtype=torch.float64)
        f = f * s[:, None, None, None]
        q = q * s[:, None]
    return f.to(dtype), q.to(dtype)


@register("12.grid_attention", title="attention over a grid of image regions", exercise_set=SET, points=5)
def check_grid_attention(t, grid_attention):
    g = torch.Generator().manual_seed(121)
    B, C, H, W = 2, 4, 3, 5
    features, query = _grid_case(g, B, C, H, W)
    want_c, want_w = _ref_grid(features, query)
    unscaled_w = _ref_grid(features, query, scale=False)[1]
    columns_w = _ref_grid(features, query, layout="columns")[1]
    others = [("B=3, C=6, 4 x 2 grid, float32, images scaled 1, 10, 40", _grid_case(g, 3, 6, 4, 2, [1.0, 10.0, 40.0])),
              ("B=1, C=3, 2 x 7 grid, float64, scale 300", _grid_case(g, 1, 3, 2, 7, [300.0], torch.float64)),
              ("B=4, C=2, 6 x 6 grid, float64, images scaled 0.01, 1, 100, 1000",
               _grid_case(g, 4, 2, 6, 6, [0.01, 1.0, 100.0, 1000.0], torch.float64))]
    other_wants = [_ref_grid(*inputs) for _, inputs in others]

    changed = []
    call = _Calls(t, grid_attention, "grid_attention", ("features", "query"), changed)
    raw = call(features, query)
    got_c, got_w = _pair(raw)
    shape_ok = got_c is not None and got_w is not None and tuple(got_c.shape) == (B, C) and \
        tuple(got_w.shape) == (B, H, W)
    if not shape_ok:
        t.require(False, 1, "returns context (B, C) and weights (B, H, W) summing to one over the whole grid",
                  f"features (2, 4, 3, 5) and query (2, 4) should give (context (2, 4), weights (2, 3, 5)); got "
                  f"{[_describe(x) for x in raw] if isinstance(raw, (tuple, list)) else _describe(raw)}")
    sums = got_w.sum((-2, -1))
    if _same(sums, torch.ones(B, dtype=torch.float64)):
        hint = ""
    elif _same(got_w.sum(-1), torch.ones(B, H, dtype=torch.float64)):
        hint = ("each row of the grid sums to one: the softmax must run over all H * W regions of an image at once "
                "(flatten the grid first), not along one axis")
    elif _same(got_w.sum(-2), torch.ones(B, W, dtype=torch.float64)):
        hint = "each column of the grid sums to one: the softmax must run over all H * W regions at once"
    else:
        hint = f"each image's weights should sum to 1 over its H * W regions; sums {_rounded(sums, 4)}"
    t.expect(not hint, 1, "returns context (B, C) and weights (B, H, W) summing to one over the whole grid", hint)

    if _same(got_w, want_w):
        hint = ""
    elif _same(got_w, unscaled_w):
        hint = "divide each score by sqrt(C), the feature size (scaled dot-product attention)"
    elif _same(got_w, columns_w):
        hint = ("the weights are laid out column by column: weights[b, i, j] must be the weight of the region at "
                "row i, column j, i.e. of features[b, :, i, j] (flatten the grid row by row and reshape back to "
                "(H, W))")
    else:
        hint = "weights[b, i, j] = softmax over regions of (features[b, :, i, j] . query[b]) / sqrt(C); " + \
            _where(got_w, want_w)
    t.expect(not hint, 1, "weights[b, i, j] is the weight of the region features[b, :, i, j]", hint)

    own_context = torch.einsum("bhw,bchw->bc", got_w, features.double())
    hint = "" if _same(got_c, own_context, 1e-4) or _same(got_c, want_c, 1e-4) else \
        "context = sum over regions of weight * region feature, with your weights; " + _where(got_c, own_context, 1e-4)
    t.expect(not hint, 1, "context = sum_ij weights[i, j] * features[:, i, j]", hint)

    fails = []
    for (label, inputs), (wc, ww) in zip(others, other_wants):
        raw2, crash = call.attempt(*inputs)
        gc, gw = _pair(raw2)
        if crash or gw is None or not _same(gw, ww) or not _same(gc, wc, 1e-4):
            if not crash and gw is not None and gw.shape == ww.shape and not bool(torch.isfinite(gw).all()):
                fails.append(f"{label}: nan or inf in your weights: exp of a score in the thousands overflows; "
                             f"subtract each image's largest score before exp (torch.softmax does this for you)")
            elif not crash and gw is not None and _same(gw, ww):
                fails.append(_why(gc, wc, crash, label + " (context)", 1e-4))
            else:
                fails.append(_why(gw, ww, crash, label))
    t.expect(not fails, 1, "other sizes (non-square grids), float64, scores in the thousands",
             fails[0] if fails else "")
    _expect_unchanged(t, changed, "features /= C ** 0.5")


# --------------------------------------------------------------------------- exercise 2: the pointing score


def _ref_overlap(boxes, Gh, Gw, cell):
    boxes = boxes.double()
    top, left, height, width = boxes.unbind(-1)
    ys = torch.arange(Gh, dtype=torch.float64) * cell
    xs = torch.arange(Gw, dtype=torch.float64) * cell
    oy = ((top + height)[..., None].minimum(ys + cell) - top[..., None].maximum(ys)).clamp_min(0)
    ox = ((left + width)[..., None].minimum(xs + cell) - left[..., None].maximum(xs)).clamp_min(0)
    return oy[..., :, None] * ox[..., None, :] / cell ** 2


def _ref_pointing(alpha, boxes, cell, swap=False, any_overlap=False):
    b = boxes[..., [1, 0, 3, 2]] if swap else boxes
    overlap = _ref_overlap(b, alpha.shape[-2], alpha.shape[-1], cell)
    if any_overlap:
        overlap = (overlap > 0).double()
    return (alpha.double() * overlap).sum((-2, -1))


def _alpha(g, B, T, Gh, Gw, dtype=torch.float32):
    a = torch.rand(B, T, Gh, Gw, generator=g, dtype=torch.float64) ** 3
    return (a / a.sum((-2, -1), keepdim=True)).to(dtype)


def _boxes(g, B, T, Gh, Gw, cell):
    H, W = Gh * cell, Gw * cell
    h = torch.randint(2, max(3, H // 2), (B, T, 1), generator=g)
    w = torch.randint(2, max(3, W // 2), (B, T, 1), generator=g)
    top = (torch.rand(B, T, 1, generator=g) * (H - h + 1)).long()
    left = (torch.rand(B, T, 1, generator=g) * (W - w + 1)).long()
    return torch.cat([top, left, h, w], -1)


@register("12.pointing_score", title="the pointing score: attention inside the named digit's box", exercise_set=SET,
          points=4)
def check_pointing_score(t, pointing_score):
    g = torch.Generator().manual_seed(122)
    # aligned case: 2 images, 2 words, a 3 x 4 grid of 4-pixel cells
    B, T, Gh, Gw, cell = 2, 2, 3, 4, 4
    alpha = torch.zeros(B, T, Gh, Gw)
    alpha[0, 0, 1, 2] = 1.0                                    # all on one region inside the box
    alpha[0, 1] = 1.0 / (Gh * Gw)                              # uniform
    alpha[1, 0, 0, 0] = 0.5
    alpha[1, 0, 2, 3] = 0.5                                    # half inside
    alpha[1, 1, 2, 0] = 1.0                                    # outside
    boxes = torch.tensor([[[4, 8, 4, 4], [0, 4, 8, 8]], [[0, 0, 8, 8], [0, 8, 12, 8]]])
    want = _ref_pointing(alpha, boxes, cell)
    # boxes not on the grid: partial regions
    alpha2, boxes2 = _alpha(g, 3, 2, 4, 3), torch.tensor([[[1, 2, 8, 5], [5, 3, 6, 6]], [[0, 0, 3, 3], [7, 9, 9, 3]],
                                                          [[2, 6, 10, 5], [14, 1, 2, 10]]])
    want2 = _ref_pointing(alpha2, boxes2, 4)
    swapped2, any2 = _ref_pointing(alpha2, boxes2, 4, swap=True), _ref_pointing(alpha2, boxes2, 4, any_overlap=True)
    others = []
    for B3, T3, Gh3, Gw3, cell3, dtype in ((4, 3, 2, 5, 3, torch.float64), (1, 5, 6, 2, 8, torch.float32),
                                           (2, 1, 7, 7, 2, torch.float64)):
        a3, b3 = _alpha(g, B3, T3, Gh3, Gw3, dtype), _boxes(g, B3, T3, Gh3, Gw3, cell3)
        others.append((f"alpha {(B3, T3, Gh3, Gw3)} in {str(dtype)[6:]}, cells of {cell3} pixels", (a3, b3, cell3),
                       _ref_pointing(a3, b3, cell3)))

    changed = []
    call = _Calls(t, pointing_score, "pointing_score", ("alpha", "boxes", "cell"), changed)
    raw, crash = call.attempt(alpha, boxes, cell)
    got = _as_tensor(raw)
    if crash:
        t.require(False, 1, "returns (B, T) shares; regions wholly inside or outside the box",
                  f"alpha (2, 2, 3, 4) on a 3 x 4 grid (not square) and boxes (2, 2, 4): your code raised {crash}")
    if got is None or tuple(got.shape) != (B, T):
        t.require(False, 1, "returns (B, T) shares; regions wholly inside or outside the box",
                  f"alpha (2, 2, 3, 4) and boxes (2, 2, 4) should give (2, 2); got {_describe(raw)}")
    hint = "" if _same(got, want) else (
        "with boxes that line up with the 4-pixel regions: all attention on a region inside the box scores 1, uniform "
        "attention scores the box's share of the grid, and attention outside scores 0; " + _where(got, want))
    t.expect(not hint, 1, "returns (B, T) shares; regions wholly inside or outside the box", hint)

    raw2, crash2 = call.attempt(alpha2, boxes2, 4)
    got2 = _as_tensor(raw2)
    if not crash2 and _same(got2, want2):
        hint = ""
    elif not crash2 and _same(got2, swapped2):
        hint = "a box is (top, left, height, width): top and height go with the rows (the grid's first axis)"
    elif not crash2 and _same(got2, any2):
        hint = ("a region that the box covers only partly counts with the share of its pixels inside the box (its "
                "weight is spread evenly over its cell x cell pixels), not in full")
    else:
        hint = _why(got2, want2, crash2, "boxes that cut through regions (alpha (3, 2, 4, 3), 4-pixel cells)")
    t.expect(not hint, 1, "a region partly inside the box counts with the share of its pixels inside", hint)

    fails = []
    for label, inputs, want3 in others:
        raw3, crash = call.attempt(*inputs)
        if crash or not _same(_as_tensor(raw3), want3):
            fails.append(_why(_as_tensor(raw3), want3, crash, label))
    t.expect(not fails, 1, "other sizes: batch, steps, non-square grids, other cell sizes, float64",
             fails[0] if fails else "")
    _expect_unchanged(t, changed, "alpha *= overlap")


# --------------------------------------------------------------------------- exercise 3: doubly stochastic penalty


def _ref_penalty(alpha, mask, over="time", reduce="mean", square=True, use_mask=True):
    a = alpha.double()
    if use_mask and mask is not None:
        a = a * mask.double().unsqueeze(-1)
    total = a.sum(1) if over == "time" else a.sum(2)                        # (B, L) or (B, T)
    dev = (1 - total) ** 2 if square else (1 - total).abs()
    per = dev.sum(-1)
    return per.mean() if reduce == "mean" else per.sum()


def _penalty_case(g, B, T, L, lengths, dtype=torch.float32):
    a = torch.softmax(3 * torch.randn(B, T, L, generator=g, dtype=torch.float64), -1).to(dtype)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return a, mask


def _value_and_grad(fn):
    """A closure for t.call: the learner's penalty, whether it is a tensor with a graph, and d penalty / d alpha."""
    def run(alpha, mask):
        leaf = alpha.detach().clone().requires_grad_(True)
        out = fn(leaf, mask)
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.sum().backward()
            grad = leaf.grad
        else:
            grad = None
        return out.detach() if isinstance(out, torch.Tensor) else out, grad
    return run


@register("12.doubly_stochastic", title="the doubly stochastic attention penalty", exercise_set=SET, points=5)
def check_doubly_stochastic(t, doubly_stochastic_penalty):
    g = torch.Generator().manual_seed(123)
    B, T, L = 3, 4, 6
    alpha, full = _penalty_case(g, B, T, L, [T] * B)
    want = _ref_penalty(alpha, full)
    wrong_axis, summed, unsquared = (_ref_penalty(alpha, full, over="regions"), _ref_penalty(alpha, full, reduce="sum"),
                                     _ref_penalty(alpha, full, square=False))
    alpha2, mask2 = _penalty_case(g, 4, 5, 7, [5, 2, 3, 1])
    want2, unmasked2 = _ref_penalty(alpha2, mask2), _ref_penalty(alpha2, mask2, use_mask=False)
    zeroed2 = alpha2 * mask2.unsqueeze(-1).to(alpha2.dtype)
    others = []
    for B3, T3, L3, lengths, dtype in ((2, 3, 9, [3, 1], torch.float64), (5, 6, 4, [6, 6, 2, 4, 5], torch.float32),
                                       (1, 2, 16, [2], torch.float64)):
        a3, m3 = _penalty_case(g, B3, T3, L3, lengths, dtype)
        others.append((f"alpha {(B3, T3, L3)} in {str(dtype)[6:]}, caption lengths {lengths}", (a3, m3),
                       _ref_penalty(a3, m3)))
    # gradient reference: d/d alpha_bti of mean_b sum_i (1 - c_bi)^2 = -2 (1 - c_bi) mask_bt / B
    c2 = (alpha2.double() * mask2.double().unsqueeze(-1)).sum(1)
    want_grad = (-2 * (1 - c2)[:, None, :] * mask2.double()[:, :, None] / alpha2.shape[0])

    changed = []
    call = _Calls(t, doubly_stochastic_penalty, "doubly_stochastic_penalty", ("alpha", "mask"), changed)
    raw = call(alpha, full)
    value = _as_number(raw)
    if value is None:
        t.require(False, 1, "returns one number: mean over the batch of sum_i (1 - sum_t alpha_ti)^2",
                  f"the penalty of a batch is a single number (a 0-d tensor); got {_describe(raw)}")
    if abs(value - float(want)) < 1e-4 * max(1.0, abs(float(want))):
        hint = ""
    elif abs(value - float(wrong_axis)) < 1e-4 * max(1.0, abs(float(wrong_axis))):
        hint = ("you summed over the regions: the penalty asks each REGION to receive attention 1 in total over the "
                "caption, so sum alpha over the time steps (dim 1), then (1 - that)^2 summed over the regions")
    elif abs(value - float(summed)) < 1e-4 * max(1.0, abs(float(summed))):
        hint = "average over the batch (mean over images), do not sum: the penalty should not grow with the batch size"
    elif abs(value - float(unsquared)) < 1e-4 * max(1.0, abs(float(unsquared))):
        hint = "square the gap (1 - sum_t alpha_ti)^2"
    else:
        hint = f"with every step real: expected {float(want):.6g}, got {value:.6g}"
    value_ok = t.expect(not hint, 1, "returns one number: mean over the batch of sum_i (1 - sum_t alpha_ti)^2", hint)

    raw2, crash2 = call.attempt(alpha2, mask2)
    got2 = _as_number(raw2) if not crash2 else None
    raw2b, crash2b = call.attempt(zeroed2, torch.ones_like(mask2))      # the padded steps' weights zeroed instead
    got2b = _as_number(raw2b) if not crash2b else None
    if got2 is not None and abs(got2 - float(want2)) < 1e-4 * max(1.0, float(want2)):
        hint = ""
    elif got2 is not None and abs(got2 - float(unmasked2)) < 1e-4 * max(1.0, float(unmasked2)):
        hint = "padded steps (mask False) must not count: multiply alpha by the mask before summing over time"
    elif got2 is not None and got2b is not None and abs(got2 - got2b) < 1e-4 * max(1.0, abs(got2b)):
        hint = ""                                   # the mask works; the formula's mistake costs the first part
    elif crash2:
        hint = f"alpha (4, 5, 7) with a mask (4, 5): your code raised {crash2}"
    else:
        said = _describe(raw2) if got2 is None else f"{got2:.6g}"
        hint = f"alpha (4, 5, 7), caption lengths 5, 2, 3, 1: expected {float(want2):.6g}, got {said}"
    t.expect(not hint, 1, "steps where mask is False do not count", hint)

    fails = []
    for label, inputs, want3 in others:
        raw3, crash = call.attempt(*inputs)
        got3 = _as_number(raw3) if not crash else None
        if crash:
            fails.append(f"{label}: your code raised {crash} (does it assume the example's sizes?)")
        elif got3 is None or abs(got3 - float(want3)) > 1e-4 * max(1.0, float(want3)):
            said = _describe(raw3) if got3 is None else f"{got3:.6g}"
            fails.append(f"{label}: expected {float(want3):.6g}, got {said}")
    t.expect(not fails, 1, "other batch sizes, caption lengths and region counts, float64", fails[0] if fails else "")

    got_grad = None
    result, crash4 = call.attempt(alpha2, mask2, wrap=_value_and_grad)
    if not crash4 and isinstance(result, (tuple, list)) and len(result) == 2:
        got_grad = _as_tensor(result[1])
    if crash4:
        hint = f"computing the gradient of your penalty raised {crash4}"
    elif got_grad is None:
        hint = ("the penalty is added to the training loss, so it must be a torch tensor that backpropagates to alpha "
                "(no .item(), NumPy or float() inside)")
    elif got_grad.shape != want_grad.shape or not bool(torch.isfinite(got_grad).all()) or \
            not bool((got_grad != 0).any()):
        hint = f"the gradient of your penalty with respect to alpha is {_describe(got_grad)} with no finite nonzero entry"
    elif value_ok and not _same(got_grad, want_grad, 1e-4):   # (a wrong formula already lost the first part)
        hint = "d penalty / d alpha[b, t, i] should be -2 (1 - sum_t alpha_bti) mask[b, t] / B; " + \
            _where(got_grad, want_grad, 1e-4)
    else:
        hint = ""
    t.expect(not hint, 1, "a tensor that backpropagates to alpha (it is added to the training loss)", hint)
    _expect_unchanged(t, changed, "alpha *= mask[..., None]")
