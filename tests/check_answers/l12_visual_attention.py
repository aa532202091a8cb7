"""Answers to the checks of exercises/12_visual_attention.ipynb: right ones written differently from the solution,
wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

import numpy as np
import torch

from course_utils.models.attention import masked_softmax

from . import right, wrong


# --------------------------------------------------------------------------- exercise 1: attention over a grid


def grid_einsum(features, query):
    """float64 einsum, NumPy arrays returned."""
    f, q = features.double(), query.double()
    B, C, H, W = f.shape
    scores = torch.einsum("bchw,bc->bhw", f, q) / C ** 0.5
    w = torch.softmax(scores.reshape(B, -1), -1).reshape(B, H, W)
    return torch.einsum("bhw,bchw->bc", w, f).numpy(), w.numpy()


def grid_masked_softmax_list(features, query):
    """The course's masked_softmax over the flattened grid; a list instead of a tuple."""
    B, C, H, W = features.shape
    regions = features.reshape(B, C, H * W).permute(0, 2, 1)
    w = masked_softmax((regions @ query[:, :, None])[..., 0] / C ** 0.5)
    return [(w[:, None, :] @ regions)[:, 0], w.view(B, H, W)]


def _grid(features, query, scale=True, layout="rows", softmax=None):
    B, C, H, W = features.shape
    f = features.transpose(-2, -1) if layout == "columns" else features
    regions = f.flatten(2).transpose(1, 2)
    scores = (regions @ query.unsqueeze(-1)).squeeze(-1)
    if scale:
        scores = scores / C ** 0.5
    w = (softmax or (lambda s: torch.softmax(s, -1)))(scores)
    context = (w.unsqueeze(1) @ regions).squeeze(1)
    return context, w.reshape(B, H, W)


def grid_unscaled(features, query):
    return _grid(features, query, scale=False)


def grid_column_major(features, query):
    return _grid(features, query, layout="columns")


def grid_softmax_over_width(features, query):
    C = features.shape[1]
    scores = torch.einsum("bchw,bc->bhw", features, query) / C ** 0.5
    w = torch.softmax(scores, -1)                                          # rows of the grid, not the whole grid
    return torch.einsum("bhw,bchw->bc", w, features), w


def grid_naive_exp(features, query):
    def naive(s):
        e = torch.exp(s)
        return e / e.sum(-1, keepdim=True)
    return _grid(features, query, softmax=naive)


def grid_global_max(features, query):
    def one_max(s):
        e = torch.exp(s - s.max())
        return e / e.sum(-1, keepdim=True)
    return _grid(features, query, softmax=one_max)


def grid_example_size(features, query):
    context, w = _grid(features, query)
    return context, w.reshape(2, 3, 5)                                    # the example's B, H and W


def grid_scales_in_place(features, query):
    features /= features.shape[1] ** 0.5                                   # the caller's features change
    regions = features.flatten(2).transpose(1, 2)
    B, C, H, W = features.shape
    w = torch.softmax((regions @ query.unsqueeze(-1)).squeeze(-1), -1)
    return (w.unsqueeze(1) @ (regions * C ** 0.5)).squeeze(1), w.reshape(B, H, W)


def grid_context_unweighted(features, query):
    _, w = _grid(features, query)
    return features.mean((-2, -1)), w                                     # the mean, as if there were no attention


# --------------------------------------------------------------------------- exercise 2: the pointing score


def _overlap(boxes, Gh, Gw, cell, any_overlap=False, swap=False):
    b = boxes.double()
    top, left, h, w = b.unbind(-1)
    if swap:
        top, left, h, w = left, top, w, h
    ys, xs = torch.arange(Gh).double() * cell, torch.arange(Gw).double() * cell
    oy = ((top + h)[..., None].minimum(ys + cell) - top[..., None].maximum(ys)).clamp_min(0)
    ox = ((left + w)[..., None].minimum(xs + cell) - left[..., None].maximum(xs)).clamp_min(0)
    share = oy[..., :, None] * ox[..., None, :] / cell ** 2
    return (share > 0).double() if any_overlap else share


def pointing_pixels_numpy(alpha, boxes, cell):
    """Upsample alpha to pixels (each region's weight spread over its cell^2 pixels) and sum inside each box; NumPy."""
    a, bx = np.asarray(alpha, dtype=np.float64), np.asarray(boxes)
    pixels = np.repeat(np.repeat(a, cell, axis=-2), cell, axis=-1) / cell ** 2   # (B, T, H, W)
    out = np.zeros(a.shape[:2])
    for b in range(a.shape[0]):
        for t in range(a.shape[1]):
            top, left, h, w = (int(v) for v in bx[b, t])
            out[b, t] = pixels[b, t, top:top + h, left:left + w].sum()
    return out


def pointing_overlap_list(alpha, boxes, cell):
    """Region overlaps computed per axis, a nested list returned."""
    share = _overlap(boxes, alpha.shape[-2], alpha.shape[-1], cell)
    return (alpha.double() * share).sum((-2, -1)).tolist()


def pointing_any_overlap(alpha, boxes, cell):
    share = _overlap(boxes, alpha.shape[-2], alpha.shape[-1], cell, any_overlap=True)
    return (alpha.double() * share).sum((-2, -1))


def pointing_swapped(alpha, boxes, cell):
    share = _overlap(boxes, alpha.shape[-2], alpha.shape[-1], cell, swap=True)
    return (alpha.double() * share).sum((-2, -1))


def pointing_centre_inside(alpha, boxes, cell):
    """A region counts fully when its centre lies in the box."""
    b = boxes.double()
    top, left, h, w = b.unbind(-1)
    cy = torch.arange(alpha.shape[-2]).double() * cell + cell / 2
    cx = torch.arange(alpha.shape[-1]).double() * cell + cell / 2
    iy = (cy >= top[..., None]) & (cy < (top + h)[..., None])
    ix = (cx >= left[..., None]) & (cx < (left + w)[..., None])
    return (alpha.double() * (iy[..., :, None] & ix[..., None, :]).double()).sum((-2, -1))


def pointing_cell_four(alpha, boxes, cell):
    share = _overlap(boxes, alpha.shape[-2], alpha.shape[-1], 4)             # the lesson's cell size, hard-coded
    return (alpha.double() * share).sum((-2, -1))


def pointing_masks_in_place(alpha, boxes, cell):
    alpha *= _overlap(boxes, alpha.shape[-2], alpha.shape[-1], cell).to(alpha.dtype)
    return alpha.sum((-2, -1))


def pointing_square_grid(alpha, boxes, cell):
    G = alpha.shape[-1]
    share = _overlap(boxes, G, G, cell)                                     # assumes Gh == Gw
    return (alpha.double() * share).sum((-2, -1))


# --------------------------------------------------------------------------- exercise 3: doubly stochastic penalty


def penalty_einsum_float64(alpha, mask):
    """float64 inside, cast back; einsum for the masked sum over time."""
    total = torch.einsum("btl,bt->bl", alpha.double(), mask.double())
    return ((1 - total) ** 2).sum(-1).mean().to(alpha.dtype)


def penalty_masked_fill(alpha, mask):
    """masked_fill of the padded steps, a 0-d tensor via sum / B."""
    total = alpha.masked_fill(~mask[..., None], 0.0).sum(1)
    return (1 - total).pow(2).sum() / alpha.shape[0]


def penalty_over_regions(alpha, mask):
    total = (alpha * mask[..., None]).sum(2)                                # over the regions
    return ((1 - total) ** 2).sum(-1).mean()


def penalty_summed_over_batch(alpha, mask):
    total = (alpha * mask[..., None]).sum(1)
    return ((1 - total) ** 2).sum()


def penalty_no_square(alpha, mask):
    total = (alpha * mask[..., None]).sum(1)
    return (1 - total).abs().sum(-1).mean()


def penalty_no_mask(alpha, mask):
    return ((1 - alpha.sum(1)) ** 2).sum(-1).mean()


def penalty_item(alpha, mask):
    total = (alpha * mask[..., None]).sum(1)
    return float(((1 - total) ** 2).sum(-1).mean())                        # .item(): no gradient


def penalty_numpy(alpha, mask):
    a, m = alpha.detach().numpy().astype(np.float64), mask.numpy()
    return np.mean(((1 - (a * m[..., None]).sum(1)) ** 2).sum(-1))


def penalty_in_place(alpha, mask):
    alpha.mul_(mask[..., None].to(alpha.dtype)) if not alpha.requires_grad else None
    total = (alpha * mask[..., None]).sum(1)
    return ((1 - total) ** 2).sum(-1).mean()


def penalty_mean_over_regions(alpha, mask):
    total = (alpha * mask[..., None]).sum(1)
    return ((1 - total) ** 2).mean()                                      # a mean over the regions too


ANSWERS = {
    "12.grid_attention": [
        right("float64 einsum, NumPy arrays", grid_einsum),
        right("masked_softmax, a list", grid_masked_softmax_list),
        wrong("no 1 / sqrt(C)", grid_unscaled, breaks="weights[b, i, j] is the weight of the region"),
        wrong("grid flattened column by column", grid_column_major,
              breaks="weights[b, i, j] is the weight of the region"),
        wrong("softmax along the width only", grid_softmax_over_width, breaks="summing to one over the whole grid"),
        wrong("naive exp", grid_naive_exp, breaks="scores in the thousands"),
        wrong("one max for the whole batch", grid_global_max, breaks="scores in the thousands"),
        wrong("sizes of the example", grid_example_size, breaks="other sizes"),
        wrong("features scaled in place", grid_scales_in_place, breaks="leaves its inputs unchanged"),
        wrong("context without the weights", grid_context_unweighted, breaks="context = sum_ij"),
    ],
    "12.pointing_score": [
        right("pixels in NumPy", pointing_pixels_numpy),
        right("per-axis overlaps, a list", pointing_overlap_list),
        wrong("a touched region counts in full", pointing_any_overlap, breaks="partly inside the box"),
        wrong("top and left swapped", pointing_swapped, breaks="partly inside the box"),
        wrong("region centre inside the box", pointing_centre_inside, breaks="partly inside the box"),
        wrong("cell size 4 hard-coded", pointing_cell_four, breaks="other cell sizes"),
        wrong("alpha multiplied in place", pointing_masks_in_place, breaks="leaves its inputs unchanged"),
        wrong("a square grid assumed", pointing_square_grid, breaks="returns (B, T) shares"),
    ],
    "12.doubly_stochastic": [
        right("float64 einsum", penalty_einsum_float64),
        right("masked_fill, sum / B", penalty_masked_fill),
        wrong("summed over the regions", penalty_over_regions, breaks="mean over the batch of sum_i"),
        wrong("summed over the batch", penalty_summed_over_batch, breaks="mean over the batch of sum_i"),
        wrong("no square", penalty_no_square, breaks="mean over the batch of sum_i"),
        wrong("mask ignored", penalty_no_mask, breaks="mask is False do not count"),
        wrong("a float via .item()", penalty_item, breaks="backpropagates to alpha"),
        wrong("NumPy inside", penalty_numpy, breaks="backpropagates to alpha"),
        wrong("alpha masked in place", penalty_in_place, breaks="leaves its inputs unchanged"),
        wrong("a mean over the regions", penalty_mean_over_regions, breaks="mean over the batch of sum_i"),
    ],
}
