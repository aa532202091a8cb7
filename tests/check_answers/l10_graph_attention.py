"""Answers to the checks of exercises/10_graph_attention.ipynb: right ones written differently from the solution,
wrong ones making the mistakes a learner makes (see __init__.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.models.attention import masked_softmax
from course_utils.models.graph_attention import GATLayer

from . import right, wrong


# --------------------------------------------------------------------------- shared pieces


def _keep(adj):
    return adj | torch.eye(adj.shape[0], dtype=torch.bool)


def _gat_scores(h, W, a_src, a_dst, slope):
    z = h @ W                                                              # (N, F_out)
    return F.leaky_relu((z @ a_dst)[:, None] + (z @ a_src)[None, :], slope)    # (N, N)


def _v2_scores(h, W_src, W_dst, a, slope):
    return F.leaky_relu((h @ W_dst)[:, None, :] + (h @ W_src)[None, :, :], slope) @ a    # (N, N)


def _naive_softmax(scores, keep):
    e = torch.exp(scores) * keep                                           # overflows for scores above 88
    return e / e.sum(-1, keepdim=True)


def _globally_shifted_softmax(scores, keep):
    e = torch.exp(scores - scores.max()) * keep                            # one max for the whole matrix
    return e / e.sum(-1, keepdim=True)


def _np_leaky(x, slope):
    return np.where(x >= 0, x, slope * x)


def _np_masked_softmax(scores, keep):
    scores = np.where(keep, scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- exercise 1: GAT coefficients


def gat_numpy(h, W, a_src, a_dst, adj, negative_slope=0.2):
    """float64 NumPy throughout, a NumPy array returned."""
    h, W, a_src, a_dst = (x.double().numpy() for x in (h, W, a_src, a_dst))
    z = h @ W
    scores = _np_leaky((z @ a_dst)[:, None] + (z @ a_src)[None, :], negative_slope)
    return _np_masked_softmax(scores, adj.numpy() | np.eye(adj.shape[0], dtype=bool))


def gat_rows_as_lists(h, W, a_src, a_dst, adj, negative_slope=0.2):
    """One row at a time with torch.softmax over the neighbours only; nested lists returned."""
    z = (h @ W).double()
    s_dst, s_src = z @ a_dst.double(), z @ a_src.double()
    rows = []
    for i in range(h.shape[0]):
        nbrs = (_keep(adj)[i]).nonzero().flatten()
        e = F.leaky_relu(s_dst[i] + s_src[nbrs], negative_slope)
        row = torch.zeros(h.shape[0], dtype=torch.float64)
        row[nbrs] = torch.softmax(e, -1)
        rows.append(row.tolist())
    return rows


def gat_logsumexp(h, W, a_src, a_dst, adj, negative_slope=0.2):
    """exp(e - logsumexp(e)) over the kept entries, float32."""
    scores = _gat_scores(h, W, a_src, a_dst, negative_slope).masked_fill(~_keep(adj), float("-inf"))
    return torch.exp(scores - torch.logsumexp(scores, -1, keepdim=True))


def gat_naive_exp(h, W, a_src, a_dst, adj, negative_slope=0.2):
    return _naive_softmax(_gat_scores(h, W, a_src, a_dst, negative_slope), _keep(adj))


def gat_global_max(h, W, a_src, a_dst, adj, negative_slope=0.2):
    return _globally_shifted_softmax(_gat_scores(h, W, a_src, a_dst, negative_slope), _keep(adj))


def gat_no_self_loops(h, W, a_src, a_dst, adj, negative_slope=0.2):
    return masked_softmax(_gat_scores(h, W, a_src, a_dst, negative_slope), adj)


def gat_swapped_vectors(h, W, a_src, a_dst, adj, negative_slope=0.2):
    return masked_softmax(_gat_scores(h, W, a_dst, a_src, negative_slope), _keep(adj))


def gat_adj_transposed(h, W, a_src, a_dst, adj, negative_slope=0.2):
    return masked_softmax(_gat_scores(h, W, a_src, a_dst, negative_slope), _keep(adj).T)


def gat_torch_default_slope(h, W, a_src, a_dst, adj, negative_slope=0.2):
    return masked_softmax(_gat_scores(h, W, a_src, a_dst, 0.01), _keep(adj))


def gat_slope_hard_coded(h, W, a_src, a_dst, adj, negative_slope=0.2):
    return masked_softmax(_gat_scores(h, W, a_src, a_dst, 0.2), _keep(adj))


def gat_five_nodes(h, W, a_src, a_dst, adj, negative_slope=0.2):
    keep = adj | torch.eye(5, dtype=torch.bool)                           # the example's N
    return masked_softmax(_gat_scores(h, W, a_src, a_dst, negative_slope), keep)


def gat_columns(h, W, a_src, a_dst, adj, negative_slope=0.2):
    return masked_softmax(_gat_scores(h, W, a_src, a_dst, negative_slope), _keep(adj), dim=0)


def gat_self_loops_in_place(h, W, a_src, a_dst, adj, negative_slope=0.2):
    adj |= torch.eye(adj.shape[0], dtype=torch.bool)                      # changes the caller's adjacency
    return masked_softmax(_gat_scores(h, W, a_src, a_dst, negative_slope), adj)


def gat_finished_layer(h, W, a_src, a_dst, adj, negative_slope=0.2):
    """The course's finished layer with the given weights: not allowed."""
    layer = GATLayer(W.shape[0], W.shape[1], negative_slope=negative_slope, bias=False)
    with torch.no_grad():
        layer.lin.weight.copy_(W.T)
        layer.att_src.copy_(a_src[None])
        layer.att_dst.copy_(a_dst[None])
    return layer(h, adj)[1][0]


# --------------------------------------------------------------------------- exercise 2: multi-head GAT


def _coefficients(h, W, a_src, a_dst, adj):
    return masked_softmax(_gat_scores(h, W, a_src, a_dst, 0.2), _keep(adj))


def multi_einsum_numpy(h, W, a_src, a_dst, adj, concat=True):
    """All heads at once in float64 with einsum, a NumPy array returned."""
    h, W, a_src, a_dst = (x.double() for x in (h, W, a_src, a_dst))
    z = torch.einsum("nf,kfo->kno", h, W)                                  # (K, N, F_out)
    s_dst, s_src = torch.einsum("kno,ko->kn", z, a_dst), torch.einsum("kno,ko->kn", z, a_src)
    scores = F.leaky_relu(s_dst[:, :, None] + s_src[:, None, :], 0.2)       # (K, N, N)
    alpha = masked_softmax(scores, _keep(adj))
    heads = alpha @ z                                                      # (K, N, F_out)
    out = heads.permute(1, 0, 2).reshape(h.shape[0], -1) if concat else heads.mean(0)
    return out.numpy()


def multi_lists(h, W, a_src, a_dst, adj, concat=True):
    """A loop over heads, the mean as a sum divided by K, nested lists returned."""
    heads = [_coefficients(h, W[k], a_src[k], a_dst[k], adj) @ (h @ W[k]) for k in range(W.shape[0])]
    out = torch.cat(heads, 1) if concat else sum(heads) / len(heads)
    return out.tolist()


def multi_interleaved(h, W, a_src, a_dst, adj, concat=True):
    heads = [_coefficients(h, W[k], a_src[k], a_dst[k], adj) @ (h @ W[k]) for k in range(W.shape[0])]
    return torch.stack(heads, -1).flatten(-2) if concat else torch.stack(heads).mean(0)


def multi_summed(h, W, a_src, a_dst, adj, concat=True):
    heads = [_coefficients(h, W[k], a_src[k], a_dst[k], adj) @ (h @ W[k]) for k in range(W.shape[0])]
    return torch.cat(heads, -1) if concat else torch.stack(heads).sum(0)


def multi_two_heads(h, W, a_src, a_dst, adj, concat=True):
    heads = [_coefficients(h, W[k], a_src[k], a_dst[k], adj) @ (h @ W[k]) for k in range(2)]   # the example's K
    return torch.cat(heads, -1) if concat else torch.stack(heads).mean(0)


def multi_alpha_transposed(h, W, a_src, a_dst, adj, concat=True):
    heads = [_coefficients(h, W[k], a_src[k], a_dst[k], adj).T @ (h @ W[k]) for k in range(W.shape[0])]
    return torch.cat(heads, -1) if concat else torch.stack(heads).mean(0)


def multi_always_concat(h, W, a_src, a_dst, adj, concat=True):
    heads = [_coefficients(h, W[k], a_src[k], a_dst[k], adj) @ (h @ W[k]) for k in range(W.shape[0])]
    return torch.cat(heads, -1)


def multi_with_elu(h, W, a_src, a_dst, adj, concat=True):
    heads = [F.elu(_coefficients(h, W[k], a_src[k], a_dst[k], adj) @ (h @ W[k])) for k in range(W.shape[0])]
    return torch.cat(heads, -1) if concat else torch.stack(heads).mean(0)


def multi_adj_in_place(h, W, a_src, a_dst, adj, concat=True):
    adj |= torch.eye(adj.shape[0], dtype=torch.bool)
    heads = [masked_softmax(_gat_scores(h, W[k], a_src[k], a_dst[k], 0.2), adj) @ (h @ W[k])
             for k in range(W.shape[0])]
    return torch.cat(heads, -1) if concat else torch.stack(heads).mean(0)


# --------------------------------------------------------------------------- exercise 3: GATv2


def v2_numpy(h, W_src, W_dst, a, adj, negative_slope=0.2):
    """float64 NumPy, a NumPy array returned."""
    h, W_src, W_dst, a = (x.double().numpy() for x in (h, W_src, W_dst, a))
    pair = _np_leaky((h @ W_dst)[:, None, :] + (h @ W_src)[None, :, :], negative_slope)
    return _np_masked_softmax(pair @ a, adj.numpy() | np.eye(adj.shape[0], dtype=bool))


def v2_rows_as_lists(h, W_src, W_dst, a, adj, negative_slope=0.2):
    """A loop over target nodes, torch.softmax over each one's neighbours; nested lists returned."""
    zs, zd = h.double() @ W_src.double(), h.double() @ W_dst.double()
    n = h.shape[0]
    rows = []
    for i in range(n):
        nbrs = _keep(adj)[i].nonzero().flatten()
        e = F.leaky_relu(zd[i] + zs[nbrs], negative_slope) @ a.double()
        row = torch.zeros(n, dtype=torch.float64)
        row[nbrs] = torch.softmax(e, -1)
        rows.append(row.tolist())
    return rows


def v2_static(h, W_src, W_dst, a, adj, negative_slope=0.2):
    scores = F.leaky_relu(((h @ W_dst) @ a)[:, None] + ((h @ W_src) @ a)[None, :], negative_slope)
    return masked_softmax(scores, _keep(adj))


def v2_swapped(h, W_src, W_dst, a, adj, negative_slope=0.2):
    return masked_softmax(_v2_scores(h, W_dst, W_src, a, negative_slope), _keep(adj))


def v2_no_self_loops(h, W_src, W_dst, a, adj, negative_slope=0.2):
    return masked_softmax(_v2_scores(h, W_src, W_dst, a, negative_slope), adj)


def v2_naive_exp(h, W_src, W_dst, a, adj, negative_slope=0.2):
    return _naive_softmax(_v2_scores(h, W_src, W_dst, a, negative_slope), _keep(adj))


def v2_global_max(h, W_src, W_dst, a, adj, negative_slope=0.2):
    return _globally_shifted_softmax(_v2_scores(h, W_src, W_dst, a, negative_slope), _keep(adj))


def v2_slope_hard_coded(h, W_src, W_dst, a, adj, negative_slope=0.2):
    return masked_softmax(_v2_scores(h, W_src, W_dst, a, 0.2), _keep(adj))


def v2_six_nodes(h, W_src, W_dst, a, adj, negative_slope=0.2):
    keep = adj | torch.eye(6, dtype=torch.bool)                           # the example's N
    return masked_softmax(_v2_scores(h, W_src, W_dst, a, negative_slope), keep)


def v2_self_loops_in_place(h, W_src, W_dst, a, adj, negative_slope=0.2):
    adj.fill_diagonal_(True)
    return masked_softmax(_v2_scores(h, W_src, W_dst, a, negative_slope), adj)


# --------------------------------------------------------------------------- exercise 4: predictions


def _predictions(karate=190, gat=1, gatv2=6):
    return lambda: {"karate_coefficients": karate, "gat_distinct_top_keys": gat, "gatv2_distinct_top_keys": gatv2}


def predictions_numpy():
    return {"karate_coefficients": np.int64(190), "gat_distinct_top_keys": np.float64(1.0),
            "gatv2_distinct_top_keys": torch.tensor(6)}


ANSWERS = {
    "10.gat_coefficients": [
        right("float64 NumPy, an array returned", gat_numpy),
        right("row by row, nested lists returned", gat_rows_as_lists),
        right("exp(e - logsumexp(e))", gat_logsumexp),
        wrong("naive exp", gat_naive_exp, breaks="large and mixed-scale"),
        wrong("one max for the whole matrix", gat_global_max, breaks="large and mixed-scale"),
        wrong("no self-loops", gat_no_self_loops, breaks="each row is a distribution"),
        wrong("a_src and a_dst swapped", gat_swapped_vectors, breaks="alpha = softmax over neighbours"),
        wrong("adj read transposed", gat_adj_transposed, breaks="alpha = softmax over neighbours"),
        wrong("torch's default LeakyReLU slope", gat_torch_default_slope, breaks="alpha = softmax over neighbours"),
        wrong("negative_slope ignored", gat_slope_hard_coded, breaks="the negative_slope argument"),
        wrong("N hard-coded to 5", gat_five_nodes, breaks="other sizes"),
        wrong("softmax down the columns", gat_columns, breaks="each row is a distribution"),
        wrong("self-loops added to adj in place", gat_self_loops_in_place, breaks="leaves its inputs unchanged"),
        wrong("the course's finished GATLayer", gat_finished_layer, breaks="switched off"),
    ],
    "10.multi_head_gat": [
        right("einsum over all heads, float64 NumPy", multi_einsum_numpy),
        right("nested lists, mean as sum / K", multi_lists),
        wrong("heads interleaved", multi_interleaved, breaks="head k's output"),
        wrong("heads summed", multi_summed, breaks="concat=False"),
        wrong("two heads hard-coded", multi_two_heads, breaks="other numbers of heads"),
        wrong("alpha transposed", multi_alpha_transposed, breaks="head k's output"),
        wrong("concat ignored", multi_always_concat, breaks="concat=False"),
        wrong("an ELU on each head", multi_with_elu, breaks="head k's output"),
        wrong("self-loops added to adj in place", multi_adj_in_place, breaks="leaves its inputs unchanged"),
    ],
    "10.gatv2_coefficients": [
        right("float64 NumPy, an array returned", v2_numpy),
        right("row by row, nested lists returned", v2_rows_as_lists),
        wrong("GAT's static form", v2_static, breaks="a . LeakyReLU(W_dst h_i + W_src h_j)"),
        wrong("W_src and W_dst swapped", v2_swapped, breaks="a . LeakyReLU(W_dst h_i + W_src h_j)"),
        wrong("no self-loops", v2_no_self_loops, breaks="a . LeakyReLU(W_dst h_i + W_src h_j)"),
        wrong("naive exp", v2_naive_exp, breaks="large and mixed-scale"),
        wrong("one max for the whole matrix", v2_global_max, breaks="large and mixed-scale"),
        wrong("negative_slope ignored", v2_slope_hard_coded, breaks="the negative_slope argument"),
        wrong("N hard-coded to 6", v2_six_nodes, breaks="other sizes"),
        wrong("self-loops added to adj in place", v2_self_loops_in_place, breaks="leaves its inputs unchanged"),
    ],
    "10.predictions": [
        right("plain ints", _predictions()),
        right("NumPy scalars and a tensor", predictions_numpy),
        right("floats", _predictions(190.0, 1.0, 6.0)),
        wrong("directed edges only", _predictions(karate=156), breaks="coefficients per head on the karate club"),
        wrong("friendships plus self-loops", _predictions(karate=112),
              breaks="coefficients per head on the karate club"),
        wrong("the whole matrix", _predictions(karate=34 * 34), breaks="coefficients per head on the karate club"),
        wrong("GAT picks per query", _predictions(gat=6), breaks="a one-head GAT"),
        wrong("GATv2 like GAT", _predictions(gatv2=1), breaks="a GATv2 that solves the lookup"),
        wrong("the friendships only", _predictions(karate=78), breaks="coefficients per head on the karate club"),
        wrong("a list instead of a dict", lambda: [190, 1, 6], breaks="coefficients per head on the karate club"),
    ],
}
