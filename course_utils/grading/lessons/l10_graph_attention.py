"""Checks for exercises/10_graph_attention.ipynb: GAT attention coefficients masked by the adjacency, a multi-head
GAT layer (concatenated or averaged heads), GATv2's coefficients, and two predictions about graph attention.

Every check runs the learner's function on copies of its inputs (references are computed first, in float64), on
two sizes of every free dimension (nodes, features, heads), and on large and mixed-scale features (the softmax must
be stable). Answers may be tensors of any float dtype, NumPy arrays or nested lists. A function that calls the
course's finished layers (``course_utils.models.graph_attention``) or PyTorch Geometric is not accepted.
"""

from __future__ import annotations

import types

import torch

from ..core import register
from ..tensor_checks import (as_tensor as _as_array, close as _close, copies as _copies, describe as _describe,
                             where_differs as _first_diff)

SET = "10_graph_attention"
_FINISHED = ("course_utils.models.graph_attention", "torch_geometric")
_FINISHED_NAMES = {"GATLayer", "GATv2Layer", "GAT", "to_pyg", "GATConv", "GATv2Conv", "graph_attention"}


# --------------------------------------------------------------------------- helpers


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _uses_finished(fn) -> bool:
    """Whether fn refers to the course's finished graph attention or to PyG (by the globals it names)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    names = _code_names(code)
    glob = getattr(fn, "__globals__", {})
    for name in names:
        obj = glob.get(name)
        if obj is None:
            continue
        module = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", "") or ""
        if module.startswith(_FINISHED):
            return True
        if isinstance(obj, types.ModuleType) and module.startswith("course_utils") and names & _FINISHED_NAMES:
            return True
    return False


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


def _ref_gat(h, W, a_src, a_dst, adj, slope=0.2, loops=True, swap=False, leaky=True):
    """GAT coefficients in float64 (N, N); the variants reproduce common mistakes."""
    h, W, a_src, a_dst = (t.to(torch.float64) for t in (h, W, a_src, a_dst))
    z = h @ W
    s_dst, s_src = z @ a_dst, z @ a_src
    if swap:
        s_dst, s_src = s_src, s_dst
    scores = s_dst[:, None] + s_src[None, :]
    if leaky:
        scores = _leaky(scores, slope)
    return _softmax_rows(scores, _with_loops(adj) if loops else adj)


def _ref_gatv2(h, W_src, W_dst, a, adj, slope=0.2, loops=True, swap=False, static=False):
    h, W_src, W_dst, a = (t.to(torch.float64) for t in (h, W_src, W_dst, a))
    zs, zd = h @ W_src, h @ W_dst
    if swap:
        zs, zd = zd, zs
    if static:                                                # GAT's form: the nonlinearity after the dot product
        scores = _leaky((zd @ a)[:, None] + (zs @ a)[None, :], slope)
    else:
        scores = _leaky(zd[:, None, :] + zs[None, :, :], slope) @ a
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


def _not_finished(t, fn, what):
    t.require(not _uses_finished(fn), 1, f"computes {what} itself",
              "your function calls the course's finished layers (course_utils.models.graph_attention) or PyTorch "
              "Geometric; write the computation with tensor operations (masked_softmax from lesson 02 is fine)")


# --------------------------------------------------------------------------- exercise 1: GAT coefficients


def _gat_cases(seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, f_in, f_out, scale, mixed in ((5, 3, 4, 1.0, False), (9, 7, 2, 1.0, False),
                                         (8, 4, 3, 30.0, False), (11, 6, 5, 1.0, True)):
        h = _features(n, f_in, g, scale, mixed)
        W = torch.randn(f_in, f_out, generator=g) / f_in ** 0.5
        a_src, a_dst = torch.randn(f_out, generator=g), torch.randn(f_out, generator=g)
        cases.append((h, W, a_src, a_dst, _random_graph(n, 0.4, g)))
    return cases


@register("10.gat_coefficients", title="GAT attention coefficients, masked by the adjacency", exercise_set=SET,
          points=6)
def check_gat_coefficients(t, gat_coefficients):
    cases = _gat_cases(10)
    h, W, a_src, a_dst, adj = cases[0]
    want = _ref_gat(h, W, a_src, a_dst, adj)
    raw = t.call(gat_coefficients, *_copies(h, W, a_src, a_dst, adj))
    got = _as_array(raw)
    n = h.shape[0]
    t.require(got is not None and tuple(got.shape) == (n, n), 1, "returns an (N, N) matrix of coefficients",
              f"h (5, 3) with adj (5, 5) should give a (5, 5) matrix (a tensor, array or nested list); got "
              f"{_describe(raw)}")
    _not_finished(t, gat_coefficients, "the coefficients")
    keep = _with_loops(adj)
    if bool((got.diagonal().abs() < 1e-12).all()):
        hint = "every diagonal entry is 0: add self-loops, so that each node also attends to itself (adj | eye); " \
               "node 0 has no neighbours at all, so without its self-loop its row cannot sum to 1"
    elif _close(got.sum(0), torch.ones(n, dtype=torch.float64), atol=1e-4):
        hint = "your columns sum to 1: the softmax runs over the neighbours j of node i, along each row (dim=-1)"
    elif bool((got[~keep].abs() > 1e-9).any()):
        i, j = (int(v) for v in (~keep & (got.abs() > 1e-9)).nonzero()[0])
        hint = f"node {i} has no edge from node {j}, yet alpha[{i}, {j}] = {float(got[i, j]):.4f}: non-edges must get " \
               f"exactly 0 (fill their scores with -inf before the softmax)"
    else:
        hint = f"each row should sum to 1 over the node's neighbours and itself; row sums: " \
               f"{[round(float(v), 3) for v in got.sum(-1)]}"
    rows_ok = _close(got.sum(-1), torch.ones(n, dtype=torch.float64), atol=1e-4) and not bool((got[~keep].abs() > 1e-9).any())
    t.expect(rows_ok, 1, "each row is a distribution over the node's neighbours and itself (0 off the graph)", hint)

    variants = {
        "you swapped a_src and a_dst: the target i (the row) uses a_dst . W h_i, the source j (the column) a_src . W h_j":
            _ref_gat(h, W, a_src, a_dst, adj, swap=True),
        "the LeakyReLU is missing: e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j), before the softmax":
            _ref_gat(h, W, a_src, a_dst, adj, leaky=False),
        "LeakyReLU's slope for negative scores is 0.2 (use the negative_slope argument), not 0.01 (torch's default)":
            _ref_gat(h, W, a_src, a_dst, adj, slope=0.01),
        "your row i attends to the nodes that i sends to: adj[i, j] is True for an edge j -> i, so row i's neighbours "
        "are the True entries of adj[i] (node 1 listens to node 2, not the other way round)":
            _ref_gat(h, W, a_src, a_dst, adj.T),
    }
    hint = next((msg for msg, v in variants.items() if _close(got, v)), None) or _first_diff(got, want)
    t.expect(_close(got, want), 2, "alpha = softmax over neighbours of LeakyReLU(a_dst . W h_i + a_src . W h_j)", hint)

    fails = []
    for case, label in zip(cases[1:], ("9 nodes, 7 -> 2 features", "features scaled by 30 (scores in the hundreds)",
                                       "mixed scales: node norms from 0.01 to 1000")):
        want = _ref_gat(*case)
        got = _as_array(t.call(gat_coefficients, *_copies(*case)))
        if not _close(got, want):
            fails.append(f"{label}: " + ("non-finite values (subtract each row's max before exp, or use softmax)"
                                         if got is not None and got.shape == want.shape and not bool(torch.isfinite(got).all())
                                         else _first_diff(got, want)))
    t.expect(not fails, 1, "other sizes, large and mixed-scale features", "; ".join(fails))


# --------------------------------------------------------------------------- exercise 2: multi-head GAT


def _ref_multi(h, W, a_src, a_dst, adj, concat=True):
    outs = [_ref_gat(h, W[k], a_src[k], a_dst[k], adj) @ (h.double() @ W[k].double()) for k in range(W.shape[0])]
    return torch.cat(outs, -1) if concat else torch.stack(outs).mean(0)


def _multi_case(g, n, f_in, f_out, heads, scale=1.0, mixed=False):
    h = _features(n, f_in, g, scale, mixed)
    W = torch.randn(heads, f_in, f_out, generator=g) / f_in ** 0.5
    return h, W, torch.randn(heads, f_out, generator=g), torch.randn(heads, f_out, generator=g), _random_graph(n, 0.4, g)


@register("10.multi_head_gat", title="a multi-head GAT layer: concatenate or average the heads", exercise_set=SET,
          points=6)
def check_multi_head_gat(t, multi_head_gat):
    g = torch.Generator().manual_seed(11)
    case = _multi_case(g, 6, 5, 3, 2)
    want = _ref_multi(*case)
    raw = t.call(multi_head_gat, *_copies(*case), concat=True)
    got = _as_array(raw)
    t.require(got is not None and tuple(got.shape) == (6, 6), 1, "concat=True returns (N, heads * F_out)",
              f"6 nodes, 2 heads of 3 features: expected (6, 6), got {_describe(raw)}")
    _not_finished(t, multi_head_gat, "the layer")
    h, W, a_src, a_dst, adj = case
    stacked = torch.stack([_ref_multi(h, W[k:k + 1], a_src[k:k + 1], a_dst[k:k + 1], adj) for k in range(2)], -1)
    if _close(got, stacked.flatten(-2)):
        hint = "your heads are interleaved feature by feature: concatenate whole heads, [head_0 | head_1], " \
               "e.g. torch.cat(list_of_heads, dim=-1)"
    elif _close(got, torch.cat([_ref_gat(h, W[k], a_src[k], a_dst[k], adj).T @ (h.double() @ W[k].double())
                                for k in range(2)], -1)):
        hint = "you aggregated with alpha transposed: h'_i = sum_j alpha[i, j] W h_j, i.e. alpha @ (h @ W)"
    else:
        hint = _first_diff(got, want)
    t.expect(_close(got, want, atol=1e-4), 1, "concat: head k's output sum_j alpha^k_ij W^k h_j in columns k*F_out..",
             hint)
    want_mean = _ref_multi(*case, concat=False)
    raw = t.call(multi_head_gat, *_copies(*case), concat=False)
    got = _as_array(raw)
    if got is not None and tuple(got.shape) == (6, 6):
        hint = "with concat=False the heads are averaged: (N, F_out) = (6, 3), not concatenated"
    elif got is not None and _close(got, 2 * want_mean, atol=1e-4):
        hint = "you summed the heads; the output layer averages them (divide by the number of heads)"
    else:
        hint = _first_diff(got, want_mean) if got is not None else f"expected (6, 3), got {_describe(raw)}"
    t.expect(_close(got, want_mean, atol=1e-4), 1, "concat=False: the mean of the heads, (N, F_out)", hint)

    fails = []
    for args, label in ((( 10, 4, 2, 1), "one head, 10 nodes"), ((7, 6, 4, 3), "three heads, 7 nodes, 6 -> 4 features"),
                        ((9, 5, 3, 4, 1.0, True), "four heads, mixed-scale features (norms 0.01 to 1000)")):
        case = _multi_case(g, *args)
        for concat in (True, False):
            want = _ref_multi(*case, concat=concat)
            got = _as_array(t.call(multi_head_gat, *_copies(*case), concat=concat))
            if not _close(got, want, atol=1e-4, rtol=1e-4):
                fails.append(f"{label}, concat={concat}: {_first_diff(got, want, atol=1e-4)}")
                break
    t.expect(not fails, 2, "other numbers of heads (1, 3, 4), nodes and features, mixed scales", "; ".join(fails))


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
    want = _ref_gatv2(*case)
    raw = t.call(gatv2_coefficients, *_copies(*case))
    got = _as_array(raw)
    t.require(got is not None and tuple(got.shape) == (6, 6), 1, "returns an (N, N) matrix of coefficients",
              f"6 nodes should give (6, 6), got {_describe(raw)}")
    _not_finished(t, gatv2_coefficients, "the coefficients")
    h, W_src, W_dst, a, adj = case
    variants = {
        "these are GAT's (static) coefficients, LeakyReLU(a . W_dst h_i + a . W_src h_j): in GATv2 the LeakyReLU acts "
        "on the F_out-vector W_dst h_i + W_src h_j, and a is applied after it": _ref_gatv2(*case, static=True),
        "you swapped W_src and W_dst: the target i (row) uses W_dst, the neighbour j (column) W_src":
            _ref_gatv2(*case, swap=True),
        "every diagonal entry is 0: add self-loops (adj | eye)": _ref_gatv2(*case, loops=False),
        "LeakyReLU's slope is 0.2 (negative_slope), not 0.01": _ref_gatv2(*case, slope=0.01),
        "row i attends to the nodes i sends to; adj[i, j] True means an edge j -> i": _ref_gatv2(h, W_src, W_dst, a, adj.T),
    }
    hint = next((msg for msg, v in variants.items() if _close(got, v)), None) or _first_diff(got, want)
    t.expect(_close(got, want), 2, "alpha = softmax over neighbours of a . LeakyReLU(W_dst h_i + W_src h_j)", hint)
    fails = []
    for args, label in (((10, 3, 2), "10 nodes, 3 -> 2 features"), ((7, 6, 8, 40.0), "features scaled by 40"),
                        ((12, 5, 4, 1.0, True), "mixed scales: node norms 0.01 to 1000")):
        case = _v2_case(g, *args)
        want = _ref_gatv2(*case)
        got = _as_array(t.call(gatv2_coefficients, *_copies(*case)))
        if not _close(got, want):
            fails.append(f"{label}: {_first_diff(got, want)}")
    t.expect(not fails, 1, "other sizes, large and mixed-scale features", "; ".join(fails))


# --------------------------------------------------------------------------- exercise 4: predictions


@register("10.predictions", title="predict before you run: counting coefficients, static attention",
          exercise_set=SET, points=3)
def check_predictions(t, predictions):
    raw = t.call(predictions)
    t.require(isinstance(raw, dict), 0, "returns a dict of numbers", f"predictions() should return a dict, got "
                                                                      f"{type(raw).__name__}")

    def number(key):
        v = raw.get(key)
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    v = number("karate_coefficients")
    if v is None:
        hint = "predictions()['karate_coefficients'] should be a number"
    elif v == 156:
        hint = "156 counts the directed edges of edge_index; the layer adds a self-loop to each of the 34 members too"
    elif v == 78 or v == 78 + 34:
        hint = "edge_index lists each of the 78 friendships in both directions (156 columns); each direction gets its " \
               "own coefficient, and every member also attends to itself"
    elif v == 34 * 34:
        hint = "only neighbours (and the node itself) get a coefficient; the other entries of the 34 x 34 matrix are " \
               "masked to 0"
    else:
        hint = "count one coefficient per directed edge (columns of edge_index) plus one per node (its self-loop)"
    t.expect(v == 156 + 34, 1, "coefficients per head on the karate club: 156 directed edges + 34 self-loops", hint)

    v = number("gat_distinct_top_keys")
    hint = ("the score of key j for query i is LeakyReLU(s_i + s_j) with s_j = a_src . W h_j the same for every query; "
            "LeakyReLU is increasing, so every query ranks the keys by s_j alone and puts its largest weight on the "
            "same key") if v is None or v != 1 else ""
    t.expect(v == 1, 1, "a one-head GAT: all 6 queries of a graph put their largest weight on the same key (1)", hint)

    v = number("gatv2_distinct_top_keys")
    hint = ("a GATv2 that solves the lookup puts each query's largest weight on the key node that holds its key, and "
            "the 6 queries hold 6 different keys") if v is None or v != 6 else ""
    t.expect(v == 6, 1, "a GATv2 that solves the lookup: 6 different keys, one per query", hint)
