"""Checks for exercises/10_graph_attention.ipynb: GAT attention coefficients masked by the adjacency, a multi-head
GAT layer (concatenated or averaged heads), GATv2's coefficients, and three predictions about graph attention.

Every check computes its references first (in float64), then runs the learner's function on copies of its inputs
and says so when the function changed them; it calls the function on at least two sizes that differ in every free
dimension (nodes, features, heads), with another ``negative_slope`` than the default, and on large and mixed-scale
features (scores in the thousands, rows of very different scale: the softmax must be stable per row). Graphs have a
node with no neighbour (only its self-loop), a one-way edge, and middle nodes with several neighbours. Answers may
be tensors of any float dtype, NumPy arrays or nested lists. While a check runs, the course's finished layers
(``course_utils.models.graph_attention``) and PyTorch Geometric's attention layers are switched off.
"""

from __future__ import annotations

import sys

import torch

from ..core import register
from ..tensor_checks import (OnCopies, as_number as _as_number, as_tensor as _as_array, close as _close,
                             describe as _describe, disabled, rounded as _rounded, where_differs as _first_diff)

SET = "10_graph_attention"
_UNCHANGED = "leaves its inputs unchanged"


# --------------------------------------------------------------------------- helpers


def _finished_layers_off():
    """The course's finished GAT layers (and PyG's, when loaded) raise while the learner's code runs."""
    from ...models import graph_attention as finished

    targets = [(finished.GATLayer, "forward"), (finished.GATv2Layer, "forward"), (finished.GAT, "forward"),
               (finished._GraphAttentionBase, "_finish"), finished.to_pyg]
    pyg = sys.modules.get("torch_geometric.nn")
    if pyg is not None:
        targets += [(pyg.GATConv, "forward"), (pyg.GATv2Conv, "forward")]
    return disabled(*targets, why="write the computation with tensor operations (masked_softmax from lesson 02 is "
                                  "fine), not with the course's finished layers or PyTorch Geometric")


class _Calls(OnCopies):
    """Learner code on copies of named inputs, with the finished layers off (see OnCopies)."""

    def __init__(self, t, fn, names):
        super().__init__(t, fn, "your function", names, switched_off=_finished_layers_off)

    def expect_unchanged(self, example):
        self.t.expect(not self.changed, 1, _UNCHANGED,
                      f"{' and '.join(self.changed)} in place (e.g. {example}): the caller's tensors must stay as "
                      f"they were, so build new ones instead (adj | eye rather than adj |= eye, masked_fill rather "
                      f"than masked_fill_)")


def _leaky(x, slope):
    return torch.where(x >= 0, x, slope * x)


def _with_loops(adj: torch.Tensor) -> torch.Tensor:
    return adj | torch.eye(adj.shape[-1], dtype=torch.bool)


def _softmax_rows(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    filled = scores.masked_fill(~keep, float("-inf"))
    top = filled.amax(-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))     # a row with nothing to attend to: zeros
    e = torch.exp(filled - top)
    return e / e.sum(-1, keepdim=True).clamp_min(1e-300)


def _ref_gat(h, W, a_src, a_dst, adj, negative_slope=0.2, loops=True, swap=False, leaky=True):
    """GAT coefficients in float64 (N, N); the variants reproduce common mistakes."""
    h, W, a_src, a_dst = (t.to(torch.float64) for t in (h, W, a_src, a_dst))
    z = h @ W
    s_dst, s_src = z @ a_dst, z @ a_src
    if swap:
        s_dst, s_src = s_src, s_dst
    scores = s_dst[:, None] + s_src[None, :]
    if leaky:
        scores = _leaky(scores, negative_slope)
    return _softmax_rows(scores, _with_loops(adj) if loops else adj)


def _ref_gatv2(h, W_src, W_dst, a, adj, negative_slope=0.2, loops=True, swap=False, static=False):
    h, W_src, W_dst, a = (t.to(torch.float64) for t in (h, W_src, W_dst, a))
    zs, zd = h @ W_src, h @ W_dst
    if swap:
        zs, zd = zd, zs
    if static:                                                # GAT's form: the nonlinearity after the dot product
        scores = _leaky((zd @ a)[:, None] + (zs @ a)[None, :], negative_slope)
    else:
        scores = _leaky(zd[:, None, :] + zs[None, :, :], negative_slope) @ a
    return _softmax_rows(scores, _with_loops(adj) if loops else adj)


def _random_graph(n, p, g):
    adj = torch.rand(n, n, generator=g) < p
    adj = (adj | adj.T) & ~torch.eye(n, dtype=torch.bool)
    if n > 2:
        adj[0, :] = False                                    # node 0 receives from nobody: only its self-loop
        adj[:, 0] = False
        adj[1, 2] = True                                     # one directed edge 2 -> 1 (1 listens to 2, not back)
        adj[2, 1] = False
    return adj


def _features(n, f, g, scale=1.0, mixed=False):
    h = torch.randn(n, f, generator=g) * scale
    if mixed:                                                # node feature norms from 0.01 to 1000
        h = h * torch.logspace(-2, 3, n)[torch.randperm(n, generator=g)][:, None]
    return h


def _mismatch(got, want, label, size_hint="", crash=""):
    """Why ``got`` differs from ``want`` on the case ``label``: a crash, non-finite values, a shape, or the first
    entry."""
    if crash:
        return f"{label}: your code raised {crash}{size_hint}"
    if got is not None and got.shape == want.shape and not bool(torch.isfinite(got).all()):
        return (f"{label}: non-finite values (nan or inf) in your coefficients (exp of a large score overflows, or a row's exps all "
                f"underflow when one max is subtracted for the whole matrix): subtract each row's own max over its "
                f"neighbours before exp, or use softmax / masked_softmax")
    if got is not None and got.shape != want.shape:
        return f"{label}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}{size_hint}"
    return f"{label}: {_first_diff(got, want)}"


def _summary(fails):
    more = f" (and {len(fails) - 1} more case{'s' if len(fails) > 2 else ''})" if len(fails) > 1 else ""
    return fails[0] + more if fails else ""


_SIZES = " (does your code assume the example's sizes?)"


# --------------------------------------------------------------------------- exercise 1: GAT coefficients


def _gat_case(g, n, f_in, f_out, scale=1.0, mixed=False):
    h = _features(n, f_in, g, scale, mixed)
    W = torch.randn(f_in, f_out, generator=g) / f_in ** 0.5
    a_src, a_dst = torch.randn(f_out, generator=g), torch.randn(f_out, generator=g)
    return h, W, a_src, a_dst, _random_graph(n, 0.4, g)


def _other_gat_cases(g):
    """(label, inputs, negative_slope) for the part that tries other sizes, slopes and scales."""
    return [("9 nodes, 7 -> 2 features", _gat_case(g, 9, 7, 2), 0.2),
            ("negative_slope=0.05, 7 nodes", _gat_case(g, 7, 5, 6), 0.05),
            ("features scaled by 1000 (scores in the thousands)", _gat_case(g, 8, 4, 3, scale=1000.0), 0.2),
            ("mixed scales: node norms from 0.01 to 1000", _gat_case(g, 11, 6, 5, mixed=True), 0.2)]


def _gat_rows_hint(got, keep):
    n = got.shape[0]
    if bool((got.diagonal().abs() < 1e-12).all()):
        return ("every diagonal entry is 0: add self-loops, so that each node also attends to itself (adj | eye); "
                "node 0 has no neighbours at all, so without its self-loop its row cannot sum to 1")
    if _close(got.sum(0), torch.ones(n, dtype=torch.float64), atol=1e-4):
        return "your columns sum to 1: the softmax runs over the neighbours j of node i, along each row (dim=-1)"
    if bool((got[~keep].abs() > 1e-9).any()):
        i, j = (int(v) for v in (~keep & (got.abs() > 1e-9)).nonzero()[0])
        return (f"node {i} has no edge from node {j}, yet alpha[{i}, {j}] = {float(got[i, j]):.4f}: non-edges must "
                f"get exactly 0 (fill their scores with -inf before the softmax)")
    return f"each row should sum to 1 over the node's neighbours and itself; row sums: {_rounded(got.sum(-1))}"


def _expect_other_sizes(t, call, others, wants, ignored_slope):
    """The parts shared by GAT's and GATv2's coefficients: the other sizes (large and mixed-scale features, a
    negative_slope other than 0.2), then the inputs left unchanged."""
    fails = []
    for (label, inputs, slope), want in zip(others, wants):
        raw, crash = call.attempt(*inputs, negative_slope=slope)
        got = _as_array(raw)
        if _close(got, want):
            continue
        if slope != 0.2 and _close(got, ignored_slope):
            fails.append(f"{label}: your coefficients are those of slope 0.2; use the negative_slope argument")
        else:
            fails.append(_mismatch(got, want, label, _SIZES, crash))
    t.expect(not fails, 1, "other sizes, large and mixed-scale features, the negative_slope argument", _summary(fails))
    call.expect_unchanged("adj |= eye or adj.fill_diagonal_(True)")


@register("10.gat_coefficients", title="GAT attention coefficients, masked by the adjacency", exercise_set=SET,
          points=6)
def check_gat_coefficients(t, gat_coefficients):
    g = torch.Generator().manual_seed(10)
    case = _gat_case(g, 5, 3, 4)
    h, W, a_src, a_dst, adj = case
    want = _ref_gat(*case)
    variants = {
        "you swapped a_src and a_dst: the target i (the row) uses a_dst . W h_i, the source j (the column) "
        "a_src . W h_j":
            _ref_gat(*case, swap=True),
        "the LeakyReLU is missing: e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j), before the softmax":
            _ref_gat(*case, leaky=False),
        "LeakyReLU's slope for negative scores is negative_slope (0.2 here), not 0.01 (torch's default)":
            _ref_gat(*case, negative_slope=0.01),
        "your row i attends to the nodes that i sends to: adj[i, j] is True for an edge j -> i, so row i's neighbours "
        "are the True entries of adj[i] (node 1 listens to node 2, not the other way round)":
            _ref_gat(h, W, a_src, a_dst, adj.T),
        "every diagonal entry is 0: add self-loops (adj | eye), so that each node also attends to itself":
            _ref_gat(*case, loops=False),
    }
    others = _other_gat_cases(g)
    wants = [_ref_gat(*inputs, negative_slope=slope) for _, inputs, slope in others]
    ignored_slope = _ref_gat(*others[1][1])

    call = _Calls(t, gat_coefficients, ("h", "W", "a_src", "a_dst", "adj"))
    raw = call(*case)
    got = _as_array(raw)
    t.require(got is not None and tuple(got.shape) == (5, 5), 1, "returns an (N, N) matrix of coefficients",
              f"h (5, 3) with adj (5, 5) should give a (5, 5) matrix (a tensor, array or nested list); got "
              f"{_describe(raw)}")
    keep = _with_loops(adj)
    rows_ok = (_close(got.sum(-1), torch.ones(5, dtype=torch.float64), atol=1e-4)
               and not bool((got[~keep].abs() > 1e-9).any()))
    t.expect(rows_ok, 1, "each row is a distribution over the node's neighbours and itself (0 off the graph)",
             _gat_rows_hint(got, keep))
    hint = next((msg for msg, v in variants.items() if _close(got, v)), None) or _first_diff(got, want)
    t.expect(_close(got, want), 2, "alpha = softmax over neighbours of LeakyReLU(a_dst . W h_i + a_src . W h_j)", hint)

    _expect_other_sizes(t, call, others, wants, ignored_slope)


# --------------------------------------------------------------------------- exercise 2: multi-head GAT


def _ref_multi(h, W, a_src, a_dst, adj, concat=True, transposed=False):
    outs = []
    for k in range(W.shape[0]):
        alpha = _ref_gat(h, W[k], a_src[k], a_dst[k], adj)
        outs.append((alpha.T if transposed else alpha) @ (h.double() @ W[k].double()))
    return torch.cat(outs, -1) if concat else torch.stack(outs).mean(0)


def _multi_case(g, n, f_in, f_out, heads, scale=1.0, mixed=False):
    h = _features(n, f_in, g, scale, mixed)
    W = torch.randn(heads, f_in, f_out, generator=g) / f_in ** 0.5
    a_src, a_dst = torch.randn(heads, f_out, generator=g), torch.randn(heads, f_out, generator=g)
    return h, W, a_src, a_dst, _random_graph(n, 0.4, g)


def _concat_hint(got, want, interleaved, transposed, elu):
    if got is not None and got.shape != want.shape:
        return (f"6 nodes and 2 heads of 3 features: concat=True should give (N, K * F_out) = (6, 6), got shape "
                f"{tuple(got.shape)}")
    if _close(got, interleaved, atol=1e-4):
        return ("your heads are interleaved feature by feature: concatenate whole heads, [head_0 | head_1], "
                "e.g. torch.cat(list_of_heads, dim=-1)")
    if _close(got, transposed, atol=1e-4):
        return "you aggregated with alpha transposed: h'_i = sum_j alpha[i, j] W h_j, i.e. alpha @ (h @ W)"
    if _close(got, elu, atol=1e-4):
        return "no nonlinearity here: the layer returns the heads' weighted sums as they are (the ELU comes later)"
    return _first_diff(got, want, atol=1e-4)


def _mean_hint(got, want):
    if got is not None and tuple(got.shape) == (6, 6):
        return "with concat=False the heads are averaged: (N, F_out) = (6, 3), not concatenated"
    if _close(got, 2 * want, atol=1e-4):
        return "you summed the heads; the output layer averages them (divide by the number of heads)"
    return _first_diff(got, want, atol=1e-4)


@register("10.multi_head_gat", title="a multi-head GAT layer: concatenate or average the heads", exercise_set=SET,
          points=6)
def check_multi_head_gat(t, multi_head_gat):
    g = torch.Generator().manual_seed(11)
    case = _multi_case(g, 6, 5, 3, 2)
    h, W, a_src, a_dst, adj = case
    want, want_mean = _ref_multi(*case), _ref_multi(*case, concat=False)
    heads = [_ref_multi(h, W[k:k + 1], a_src[k:k + 1], a_dst[k:k + 1], adj) for k in range(2)]
    interleaved, transposed = torch.stack(heads, -1).flatten(-2), _ref_multi(*case, transposed=True)
    elu = torch.nn.functional.elu(want)
    others = [(_multi_case(g, *args), label) for args, label in (
        ((10, 4, 2, 1), "one head, 10 nodes"), ((7, 6, 4, 3), "three heads, 7 nodes, 6 -> 4 features"),
        ((9, 5, 3, 4, 1.0, True), "four heads, mixed-scale features (norms 0.01 to 1000)"))]
    other_wants = [(_ref_multi(*c), _ref_multi(*c, concat=False)) for c, _ in others]

    call = _Calls(t, multi_head_gat, ("h", "W", "a_src", "a_dst", "adj"))
    raw = call(*case, concat=True)
    got = _as_array(raw)
    t.expect(_close(got, want, atol=1e-4), 2,
             "concat: (N, K * F_out), head k's output sum_j alpha^k_ij W^k h_j in columns k*F_out..",
             _concat_hint(got, want, interleaved, transposed, elu) if got is not None else
             f"6 nodes, 2 heads of 3 features: expected a (6, 6) matrix, got {_describe(raw)}")
    raw, crash = call.attempt(*case, concat=False)
    got = _as_array(raw)
    t.expect(_close(got, want_mean, atol=1e-4), 1, "concat=False: the mean of the heads, (N, F_out)",
             f"with concat=False your code raised {crash}" if crash else _mean_hint(got, want_mean)
             if got is not None else f"expected a (6, 3) matrix, got {_describe(raw)}")

    fails = []
    for (inputs, label), pair in zip(others, other_wants):
        for concat, want in zip((True, False), pair):
            raw, crash = call.attempt(*inputs, concat=concat)
            got = _as_array(raw)
            if not _close(got, want, atol=1e-4, rtol=1e-4):
                fails.append(_mismatch(got, want, f"{label}, concat={concat}", _SIZES, crash))
                break
    t.expect(not fails, 2, "other numbers of heads (1, 3, 4), nodes and features, mixed scales", _summary(fails))
    call.expect_unchanged("adj |= eye")


# --------------------------------------------------------------------------- exercise 3: GATv2


def _v2_case(g, n, f_in, f_out, scale=1.0, mixed=False):
    h = _features(n, f_in, g, scale, mixed)
    W_src = torch.randn(f_in, f_out, generator=g) / f_in ** 0.5
    W_dst = torch.randn(f_in, f_out, generator=g) / f_in ** 0.5
    return h, W_src, W_dst, torch.randn(f_out, generator=g), _random_graph(n, 0.4, g)


@register("10.gatv2_coefficients", title="GATv2's dynamic attention coefficients", exercise_set=SET, points=5)
def check_gatv2_coefficients(t, gatv2_coefficients):
    g = torch.Generator().manual_seed(12)
    case = _v2_case(g, 6, 4, 5)
    h, W_src, W_dst, a, adj = case
    want = _ref_gatv2(*case)
    variants = {
        "these are GAT's (static) coefficients, LeakyReLU(a . W_dst h_i + a . W_src h_j): in GATv2 the LeakyReLU acts "
        "on the F_out-vector W_dst h_i + W_src h_j, and a is applied after it": _ref_gatv2(*case, static=True),
        "you swapped W_src and W_dst: the target i (row) uses W_dst, the neighbour j (column) W_src":
            _ref_gatv2(*case, swap=True),
        "every diagonal entry is 0: add self-loops (adj | eye), so that each node also attends to itself":
            _ref_gatv2(*case, loops=False),
        "LeakyReLU's slope is negative_slope (0.2 here), not 0.01 (torch's default)":
            _ref_gatv2(*case, negative_slope=0.01),
        "row i attends to the nodes i sends to; adj[i, j] True means an edge j -> i":
            _ref_gatv2(h, W_src, W_dst, a, adj.T),
    }
    others = [("10 nodes, 3 -> 2 features", _v2_case(g, 10, 3, 2), 0.2),
              ("negative_slope=0.05, 5 nodes", _v2_case(g, 5, 6, 3), 0.05),
              ("features scaled by 300 (scores in the thousands)", _v2_case(g, 7, 6, 8, scale=300.0), 0.2),
              ("mixed scales: node norms 0.01 to 1000", _v2_case(g, 12, 5, 4, mixed=True), 0.2)]
    wants = [_ref_gatv2(*inputs, negative_slope=slope) for _, inputs, slope in others]
    ignored_slope = _ref_gatv2(*others[1][1])

    call = _Calls(t, gatv2_coefficients, ("h", "W_src", "W_dst", "a", "adj"))
    raw = call(*case)
    got = _as_array(raw)
    t.require(got is not None and tuple(got.shape) == (6, 6), 1, "returns an (N, N) matrix of coefficients",
              f"6 nodes should give (6, 6), got {_describe(raw)}")
    hint = next((msg for msg, v in variants.items() if _close(got, v)), None) or _first_diff(got, want)
    t.expect(_close(got, want), 2, "alpha = softmax over neighbours of a . LeakyReLU(W_dst h_i + W_src h_j)", hint)
    _expect_other_sizes(t, call, others, wants, ignored_slope)


# --------------------------------------------------------------------------- exercise 4: predictions


_KEYS = ("karate_coefficients", "gat_distinct_top_keys", "gatv2_distinct_top_keys")


def _karate_hint(v):
    if v == 156:
        return "156 counts the directed edges of edge_index; the layer adds a self-loop to each of the 34 members too"
    if v in (78, 78 + 34):
        return ("edge_index lists each of the 78 friendships in both directions (156 columns); each direction gets its "
                "own coefficient, and every member also attends to itself")
    if v == 34 * 34:
        return ("only neighbours (and the node itself) get a coefficient; the other entries of the 34 x 34 matrix are "
                "masked to 0")
    return (f"you said {v:g}: count one coefficient per directed edge (columns of edge_index) plus one per node "
            f"(its self-loop)")


@register("10.predictions", title="predict before you run: counting coefficients, static attention",
          exercise_set=SET, points=3)
def check_predictions(t, predictions):
    raw = t.call(predictions)

    def number(key):
        """(value, hint when it cannot be read)"""
        if not isinstance(raw, dict):
            return None, f"predictions() should return a dict with the keys {list(_KEYS)}; got {_describe(raw)}"
        if key not in raw:
            return None, f"predictions() has no key {key!r} (keys: {sorted(map(str, raw))})"
        v = _as_number(raw[key])
        return v, "" if v is not None else f"predictions()[{key!r}] should be a number; got {_describe(raw[key])}"

    v, bad = number("karate_coefficients")
    t.expect(v == 156 + 34, 1, "coefficients per head on the karate club: 156 directed edges + 34 self-loops",
             bad or _karate_hint(v))

    v, bad = number("gat_distinct_top_keys")
    t.expect(v == 1, 1, "a one-head GAT: all 6 queries of a graph put their largest weight on the same key (1)",
             bad or f"you said {v:g}. The score of key j for query i is LeakyReLU(s_i + s_j) with s_j = a_src . W h_j "
                    "the same for every query; LeakyReLU is increasing, so every query ranks the keys by s_j alone "
                    "and puts its largest weight on the same key")

    v, bad = number("gatv2_distinct_top_keys")
    t.expect(v == 6, 1, "a GATv2 that solves the lookup: 6 different keys, one per query",
             bad or f"you said {v:g}. A GATv2 that solves the lookup puts each query's largest weight on the key node "
                    "that holds its key, and the 6 queries hold 6 different keys")
