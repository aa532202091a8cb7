"""Lesson 10's finished pieces: the dense GAT and GATv2 layers against PyTorch Geometric, their conventions and
properties, the graph generators, and the grading checks on wrong answers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.data.graphs import citation_graph, dictionary_lookup, karate_club, noisy_citation_graph
from course_utils.grading.core import run_check
from course_utils.models.attention import masked_softmax
from course_utils.models.graph_attention import (GAT, GATLayer, GATv2Layer, add_self_loops, edge_attention,
                                                 edge_index_to_adjacency, to_pyg)

META = torch.device("meta")


def _randomise(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return layer


@pytest.fixture(scope="module")
def club():
    return karate_club()


# --------------------------------------------------------------------------- agreement with PyG


@pytest.mark.parametrize("cls", [GATLayer, GATv2Layer])
@pytest.mark.parametrize("heads,concat", [(1, True), (3, True), (3, False)])
def test_equals_pyg_outputs_and_edge_coefficients(club, cls, heads, concat):
    layer = _randomise(cls(34, 5, heads=heads, concat=concat), seed=heads).eval()
    ref = to_pyg(layer).eval()
    with torch.no_grad():
        out, weights = layer(club.x, club.adj)
        ref_out, (edges, alpha) = ref(club.x, club.edge_index, return_attention_weights=True)
    assert edges.shape == (2, 156 + 34) and alpha.shape == (190, heads)
    assert torch.allclose(out, ref_out, atol=1e-5)
    assert torch.allclose(edge_attention(weights, edges), alpha, atol=1e-6)


@pytest.mark.parametrize("cls", [GATLayer, GATv2Layer])
def test_equals_pyg_without_self_loops_and_nodes_without_incoming_edges(cls):
    graphs = dictionary_lookup(4, 1, seed=3)                      # key nodes receive nothing
    layer = _randomise(cls(8, 3, heads=2, add_self_loops=False), seed=7).eval()
    with torch.no_grad():
        out, weights = layer(graphs.x[0], graphs.adj)
        ref_out, (edges, alpha) = to_pyg(layer)(graphs.x[0], graphs.edge_index, return_attention_weights=True)
    assert torch.allclose(out, ref_out, atol=1e-5)
    assert torch.allclose(edge_attention(weights, edges), alpha, atol=1e-6)
    assert torch.equal(weights[:, :4], torch.zeros(2, 4, 8))      # no incoming edge: zero weights, output = bias
    assert torch.allclose(out[:4], layer.bias.expand(4, -1))


def test_float64_layers_agree_with_pyg(club):
    layer = _randomise(GATLayer(34, 4, heads=2), seed=1).double().eval()
    with torch.no_grad():
        out, _ = layer(club.x.double(), club.adj)
        assert torch.allclose(out, to_pyg(layer)(club.x.double(), club.edge_index), atol=1e-10)


# --------------------------------------------------------------------------- what the layer computes


def test_gat_score_is_the_concatenation_form(club):
    layer = _randomise(GATLayer(34, 4, heads=1), seed=2).eval()
    with torch.no_grad():
        _, weights = layer(club.x, club.adj)
        z = layer.lin(club.x)
        a = torch.cat([layer.att_dst[0], layer.att_src[0]])
    keep = add_self_loops(club.adj)
    for i in (0, 5, 33):
        nbrs = keep[i].nonzero().flatten()
        e = torch.stack([F.leaky_relu(a @ torch.cat([z[i], z[j]]), 0.2) for j in nbrs])
        assert torch.allclose(weights[0, i, nbrs], torch.softmax(e, 0), atol=1e-6)


def test_weights_are_distributions_over_neighbours_and_zero_elsewhere(club):
    for cls in (GATLayer, GATv2Layer):
        _, w = _randomise(cls(34, 3, heads=2), seed=4).eval()(club.x, club.adj)
        keep = add_self_loops(club.adj)
        assert torch.allclose(w.sum(-1), torch.ones(2, 34), atol=1e-6)
        assert (w[:, ~keep] == 0).all()


def test_gat_attention_is_static_and_gatv2_is_not(club):
    """GAT orders any two neighbours the same way for every node; GATv2 need not."""
    def reorders(w, keep):
        for i in range(34):
            for i2 in range(34):
                both = (keep[i] & keep[i2]).nonzero().flatten()
                d1 = w[i, both][:, None] - w[i, both][None, :]
                d2 = w[i2, both][:, None] - w[i2, both][None, :]
                if ((d1 * d2) < -1e-9).any():
                    return True
        return False

    keep = add_self_loops(club.adj)
    with torch.no_grad():
        for seed in range(3):
            w_gat = _randomise(GATLayer(34, 4), seed).eval()(club.x, club.adj)[1][0]
            w_v2 = _randomise(GATv2Layer(34, 4), seed).eval()(club.x, club.adj)[1][0]
            assert not reorders(w_gat, keep)
            assert reorders(w_v2, keep)


@pytest.mark.parametrize("cls", [GATLayer, GATv2Layer])
def test_batched_graphs_equal_one_at_a_time(cls):
    graphs = dictionary_lookup(5, 3, seed=0)
    layer = _randomise(cls(10, 4, heads=2, concat=False, add_self_loops=False), seed=5).eval()
    with torch.no_grad():
        out, w = layer(graphs.x, graphs.adj)
        for b in range(3):
            o, wb = layer(graphs.x[b], graphs.adj)
            assert torch.allclose(out[b], o, atol=1e-6) and torch.allclose(w[b], wb, atol=1e-6)


def test_large_features_do_not_overflow(club):
    layer = _randomise(GATLayer(34, 4, heads=2), seed=6).eval()
    with torch.no_grad():
        out, w = layer(club.x * 1e4, club.adj)
    assert torch.isfinite(out).all() and torch.allclose(w.sum(-1), torch.ones(2, 34))


def test_dropout_acts_on_the_coefficients_in_training_only(club):
    layer = GATLayer(34, 4, heads=2, dropout=0.5)
    layer.train()
    torch.manual_seed(0)
    a, b = layer(club.x, club.adj)[0], layer(club.x, club.adj)[0]
    assert not torch.allclose(a, b)
    layer.eval()
    assert torch.equal(layer(club.x, club.adj)[0], layer(club.x, club.adj)[0])


def test_gat_model_shapes(club):
    for v2 in (False, True):
        logits, (w1, w2) = GAT(34, 8, 4, heads=3, out_heads=2, v2=v2)(club.x, club.adj)
        assert logits.shape == (34, 4) and w1.shape == (3, 34, 34) and w2.shape == (2, 34, 34)


# --------------------------------------------------------------------------- conventions and bad input


def test_edge_index_conventions():
    edge_index = torch.tensor([[0, 2], [1, 1]])                   # edges 0 -> 1 and 2 -> 1
    adj = edge_index_to_adjacency(edge_index, 3)
    assert adj.tolist() == [[False] * 3, [True, False, True], [False] * 3]   # row 1 (the target) attends to 0 and 2
    assert add_self_loops(adj).diagonal().all()
    weights = torch.arange(9.0).view(1, 3, 3)
    assert edge_attention(weights, edge_index).tolist() == [[3.0], [5.0]]    # weights[0, 1, 0], weights[0, 1, 2]


def test_bad_inputs_are_refused(club):
    layer = GATLayer(34, 4)
    with pytest.raises(TypeError, match="bool"):
        layer(club.x, club.adj.float())
    with pytest.raises(ValueError, match="adj"):
        layer(club.x, club.adj[:10, :10])
    with pytest.raises(ValueError, match="x must be"):
        layer(club.x[:, :5], club.adj)
    with pytest.raises(ValueError):
        GATLayer(0, 4)
    with pytest.raises(ValueError):
        GATLayer(3, 4, dropout=1.0)
    with pytest.raises(ValueError):
        edge_index_to_adjacency(torch.zeros(3, 4, dtype=torch.long), 5)
    with pytest.raises(TypeError):
        to_pyg(torch.nn.Linear(2, 2))


def test_runs_on_meta_device():
    x = torch.randn(2, 5, 6).to(META)
    adj = torch.ones(5, 5, dtype=torch.bool).to(META)
    for layer in (GATLayer(6, 4, heads=2), GATv2Layer(6, 4, heads=2, concat=False)):
        out, w = layer.to(META)(x, adj)
        assert out.device == META and w.shape == (2, 2, 5, 5)
    logits, _ = GAT(6, 4, 3, heads=2).to(META)(x, adj)
    assert logits.device == META and logits.shape == (2, 5, 3)
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]]).to(META)
    adj = edge_index_to_adjacency(edge_index, 3)
    assert adj.device == META and add_self_loops(adj).device == META
    assert edge_attention(torch.rand(2, 3, 3).to(META), edge_index).shape == (3, 2)
    assert next(to_pyg(GATLayer(6, 4).to(META)).parameters()).device == META


# --------------------------------------------------------------------------- data


def test_karate_club(club):
    assert club.num_nodes == 34 and club.edge_index.shape == (2, 156) and club.num_classes == 4
    assert torch.equal(club.adj, club.adj.T) and int(club.adj.sum()) == 156
    assert int(club.train_mask.sum()) == 4 and not (club.train_mask & club.test_mask).any()


def test_citation_graph_is_seeded_and_has_the_asked_cross_topic_share():
    a, b = citation_graph(seed=3), citation_graph(seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    assert not torch.equal(citation_graph(seed=4).edge_index, a.edge_index)
    for share in (0.0, 0.3, 0.8):
        g = citation_graph(n_nodes=600, cross_topic=share, seed=1)
        assert abs(g.cross_topic_share() - share) < 0.05
        assert torch.equal(g.adj, g.adj.T) and not g.adj.diagonal().any()
    g = citation_graph(n_nodes=300, words_per_doc=15, seed=0)
    assert torch.equal(g.x.sum(-1), torch.full((300,), 15.0))
    masks = torch.stack([g.train_mask, g.val_mask, g.test_mask]).int()
    assert torch.equal(masks.sum(0), torch.ones(300, dtype=torch.int))
    assert torch.equal(torch.bincount(g.y[g.train_mask]), torch.full((4,), 10))


def test_citation_features_carry_the_topic():
    g = citation_graph(n_nodes=400, topic_words=0.5, seed=0)
    block = 200 // 4
    own = torch.stack([g.x[i, g.y[i] * block:(g.y[i] + 1) * block].sum() for i in range(400)])
    assert own.mean() > 0.5 * 20


def test_noisy_citation_graph_adds_marked_spam_with_the_expected_share():
    kw = dict(n_nodes=200, n_train_per_topic=20, n_val=20, cross_topic=0.1)
    g = noisy_citation_graph(seed=2, **kw)                            # defaults: 200 spam documents, 12 citations each
    base = citation_graph(seed=2, **kw)
    assert torch.equal(g.x, noisy_citation_graph(seed=2, **kw).x) and not torch.equal(
        g.edge_index, noisy_citation_graph(seed=3, **kw).edge_index)
    real, spam = ~g.noisy, g.noisy
    assert g.x.shape == (400, 210) and int(spam.sum()) == 200 and not spam[:200].any()
    # the real documents are citation_graph's, untouched: features, labels, edges among them, split
    assert torch.equal(g.x[:200, :200], base.x) and torch.equal(g.y[:200], base.y)
    assert torch.equal(g.adj[:200, :200], base.adj) and torch.equal(g.train_mask[:200], base.train_mask)
    assert not (g.train_mask | g.val_mask | g.test_mask)[spam].any()
    # spam cites real documents only, at most 12 each; the graph stays undirected without self-loops
    assert torch.equal(g.adj, g.adj.T) and not g.adj.diagonal().any() and not g.adj[spam][:, spam].any()
    degree = g.adj[spam].sum(-1)
    assert int(degree.max()) <= 12 and degree.float().mean() > 11.5
    # about 12 spam and 5.8 real neighbours per real document: about two thirds of the neighbours are spam
    assert 0.62 < g.noisy_neighbour_share() < 0.72
    # marker words: only spam uses them, about 30% of its 20 words (6 expected; sd of the mean about 0.15)
    markers = g.x[:, 200:]
    assert (markers[real] == 0).all() and (markers[spam].sum(-1) > 0).all()
    assert abs(markers[spam].sum(-1).mean() - 6.0) < 0.6
    # the rest pushes the pretended topic: 20 * (0.7 * 0.9 + 0.7 * 0.1 / 4) = 12.95 words of its block expected
    own = torch.stack([g.x[i, g.y[i] * 50:(g.y[i] + 1) * 50].sum() for i in spam.nonzero().flatten().tolist()])
    assert abs(own.mean() - 12.95) < 0.7
    g2 = noisy_citation_graph(n_noisy=50, noisy_degree=3, marker_words=0.0, seed=0, **kw)
    assert g2.x.shape == (250, 210) and (g2.x[:, 200:] == 0).all() and g2.noisy_neighbour_share() < 0.3
    assert g.to("cpu").noisy.dtype == torch.bool
    for bad in (dict(n_noisy=-1), dict(noisy_degree=0), dict(marker_words=1.5), dict(noisy_degree=500)):
        with pytest.raises(ValueError):
            noisy_citation_graph(**bad, **kw)


def test_bad_generator_arguments():
    with pytest.raises(ValueError):
        citation_graph(cross_topic=1.5)
    with pytest.raises(ValueError):
        dictionary_lookup(1, 4, seed=0)
    with pytest.raises(ValueError):
        dictionary_lookup(4, 4)
    with pytest.raises(ValueError):
        dictionary_lookup(4, 4, seed=0, generator=torch.Generator())


def test_dictionary_lookup_answers():
    graphs = dictionary_lookup(5, 20, seed=0)
    k = 5
    assert graphs.x.shape == (20, 10, 10) and graphs.y.shape == (20, 5) and int(graphs.adj.sum()) == 25
    assert graphs.adj[k:, :k].all() and not graphs.adj[:k].any() and not graphs.adj[:, k:].any()
    for b in range(20):
        keys, values = graphs.x[b, :k, :k].argmax(-1), graphs.x[b, :k, k:].argmax(-1)
        queries = graphs.x[b, k:, :k].argmax(-1)
        table = dict(zip(keys.tolist(), values.tolist()))
        assert graphs.y[b].tolist() == [table[q] for q in queries.tolist()]
        assert sorted(queries.tolist()) == list(range(k)) and (graphs.x[b, k:, k:] == 0).all()
    assert torch.equal(dictionary_lookup(5, 3, seed=1).x, dictionary_lookup(5, 3, seed=1).x)
    assert torch.equal(edge_index_to_adjacency(graphs.edge_index, 10), graphs.adj)


# --------------------------------------------------------------------------- grading: wrong answers


def _ref_coefficients(h, W, a_src, a_dst, adj, negative_slope=0.2):
    z = h @ W
    e = F.leaky_relu((z @ a_dst)[:, None] + (z @ a_src)[None, :], negative_slope)
    return masked_softmax(e, adj | torch.eye(adj.shape[0], dtype=torch.bool))


def _points(check_id, fn):
    result = run_check(check_id, fn)
    return result.points, result.feedback()


def test_check_accepts_lists_and_float64():
    as_list = lambda *args, **kw: _ref_coefficients(*args, **kw).double().tolist()
    points, text = _points("10.gat_coefficients", as_list)
    assert points == 6, text


def test_check_refuses_the_finished_layer():
    def with_finished(h, W, a_src, a_dst, adj, negative_slope=0.2):
        layer = GATLayer(W.shape[0], W.shape[1]).eval()
        with torch.no_grad():
            layer.lin.weight.copy_(W.T)
            layer.att_src.copy_(a_src[None])
            layer.att_dst.copy_(a_dst[None])
            return layer(h, adj)[1][0]

    points, text = _points("10.gat_coefficients", with_finished)
    assert points < 6 and "finished" in text, text


def test_check_hints_name_the_mistake():
    no_loops = lambda h, W, a_src, a_dst, adj, negative_slope=0.2: masked_softmax(
        F.leaky_relu(((h @ W) @ a_dst)[:, None] + ((h @ W) @ a_src)[None, :], negative_slope), adj)
    points, text = _points("10.gat_coefficients", no_loops)
    assert points < 6 and "self-loop" in text, text
    no_shift = lambda h, W, a_src, a_dst, adj, negative_slope=0.2: (
        lambda e: e / e.sum(-1, keepdim=True))(torch.exp(F.leaky_relu(((h @ W) @ a_dst)[:, None] + ((h @ W) @ a_src)[None, :],
                                                                      negative_slope)) * (adj | torch.eye(adj.shape[0], dtype=torch.bool)))
    points, text = _points("10.gat_coefficients", no_shift)
    assert points < 6 and ("non-finite" in text or "scaled by 30" in text), text
    static_v2 = lambda h, W_src, W_dst, a, adj, negative_slope=0.2: _ref_coefficients(
        h, torch.cat([W_src, W_dst], 1), torch.cat([a, torch.zeros_like(a)]), torch.cat([torch.zeros_like(a), a]), adj,
        negative_slope)
    points, text = _points("10.gatv2_coefficients", static_v2)
    assert points < 5 and "static" in text, text


def test_multi_head_check_spots_summed_heads():
    def summed(h, W, a_src, a_dst, adj, concat=True):
        heads = [_ref_coefficients(h, W[k], a_src[k], a_dst[k], adj) @ (h @ W[k]) for k in range(W.shape[0])]
        return torch.cat(heads, -1) if concat else torch.stack(heads).sum(0)

    points, text = _points("10.multi_head_gat", summed)
    assert points < 6 and "summed" in text, text


def test_prediction_check():
    assert _points("10.predictions", lambda: {"karate_coefficients": 190, "gat_distinct_top_keys": 1,
                                              "gatv2_distinct_top_keys": 6})[0] == 3
    points, text = _points("10.predictions", lambda: {"karate_coefficients": 156, "gat_distinct_top_keys": 6,
                                                      "gatv2_distinct_top_keys": 6})
    assert points == 1 and "self-loop" in text and "same key" in text, text
