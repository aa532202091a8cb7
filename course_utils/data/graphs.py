"""Graphs for lesson 10 (graph attention): one that ships, two that are generated, all offline and seeded.

- ``karate_club()``: Zachary's karate club as PyTorch Geometric ships it inline (34 members, 78 friendships,
  four communities as labels, one labelled member per community), no download.
- ``citation_graph(...)``: a citation-like graph. Nodes are documents with bag-of-words features and a topic
  label; ``cross_topic`` is the share of edges that join documents of different topics.
- ``noisy_citation_graph(...)``: the same graph with extra "spam" documents added: they cite documents at random,
  their words push a random topic, and they all use a few marker words that no real document uses.
- ``dictionary_lookup(...)``: Brody et al.'s (ICLR 2022) dictionary-lookup task: k key nodes hold a (key, value)
  pair, k query nodes hold a key only, every key node points to every query node, and each query node must
  output the value stored under its key.

Graphs are returned with a PyG-style ``edge_index`` (row 0 = source j, row 1 = target i, both directions of an
undirected edge listed) and, for the dense layers of ``course_utils.models.graph_attention``, a bool adjacency
``adj`` with adj[i, j] True for an edge j -> i (no self-loops: the layers add them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

__all__ = ["GraphData", "NoisyGraphData", "karate_club", "citation_graph", "noisy_citation_graph", "LookupGraphs",
           "dictionary_lookup"]


@dataclass
class GraphData:
    """One graph: x (N, F) float features, y (N,) labels, edge_index (2, E), adj (N, N) bool, and boolean node
    masks train_mask, val_mask, test_mask (N,)."""

    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    adj: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1

    def to(self, device) -> "GraphData":
        return GraphData(*(getattr(self, f.name).to(device) for f in fields(self)))

    def cross_topic_share(self) -> float:
        """The share of edges whose two ends have different labels."""
        src, dst = self.edge_index
        return float((self.y[src] != self.y[dst]).float().mean())


def _adjacency(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    from ..models.graph_attention import edge_index_to_adjacency  # the one conversion, with its checks
    return edge_index_to_adjacency(edge_index, int(n))


def karate_club() -> GraphData:
    """Zachary's karate club from ``torch_geometric.datasets.KarateClub`` (inline data, nothing is downloaded).

    x is the identity (34, 34): a member is known only by who they are. y holds PyG's four communities; the
    train mask marks one member of each, the val mask is empty and the test mask holds the other 30.
    """
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    n = data.num_nodes
    train = data.train_mask.clone()
    return GraphData(x=data.x.float(), y=data.y.clone(), edge_index=data.edge_index.clone(),
                     adj=_adjacency(data.edge_index, n), train_mask=train, val_mask=torch.zeros(n, dtype=torch.bool),
                     test_mask=~train)


def citation_graph(n_nodes: int = 400, n_topics: int = 4, vocab_size: int = 200, words_per_doc: int = 20,
                   topic_words: float = 0.3, avg_degree: float = 6.0, cross_topic: float = 0.2,
                   n_train_per_topic: int = 10, n_val: int = 100, seed: int = 0) -> GraphData:
    """A seeded citation-like graph: documents with bag-of-words features, topic labels, and citations.

    Each of ``n_topics`` topics owns a block of ``vocab_size // n_topics`` words. A document of topic t draws
    ``words_per_doc`` words, each from its topic's block with probability ``topic_words`` and otherwise from the
    whole vocabulary; x holds the word counts (N, vocab_size). Edges: ``avg_degree * n_nodes / 2`` undirected
    citations; each joins two documents of different topics with probability ``cross_topic`` and of the same
    topic otherwise (duplicates and self-citations are dropped). Both directions are listed in edge_index.
    Split: ``n_train_per_topic`` labelled documents per topic, ``n_val`` for validation, the rest for testing.
    """
    if not 0.0 <= cross_topic <= 1.0:
        raise ValueError(f"cross_topic is a share of edges, in [0, 1]; got {cross_topic}")
    if not 0.0 <= topic_words <= 1.0:
        raise ValueError(f"topic_words is a probability, in [0, 1]; got {topic_words}")
    if n_topics < 2 or vocab_size < n_topics:
        raise ValueError(f"need n_topics >= 2 and vocab_size >= n_topics, got {n_topics} and {vocab_size}")
    if n_nodes < n_topics * n_train_per_topic + n_val + n_topics:
        raise ValueError(f"n_nodes = {n_nodes} is too small for {n_topics} x {n_train_per_topic} training and "
                         f"{n_val} validation documents")
    rng = np.random.default_rng(seed)
    y = np.arange(n_nodes) % n_topics
    rng.shuffle(y)
    block = vocab_size // n_topics
    own = rng.random((n_nodes, words_per_doc)) < topic_words
    words = np.where(own, y[:, None] * block + rng.integers(0, block, (n_nodes, words_per_doc)),
                     rng.integers(0, vocab_size, (n_nodes, words_per_doc)))
    x = np.zeros((n_nodes, vocab_size), dtype=np.float32)
    np.add.at(x, (np.repeat(np.arange(n_nodes), words_per_doc), words.ravel()), 1.0)

    by_topic = [np.flatnonzero(y == t) for t in range(n_topics)]
    n_edges = int(round(avg_degree * n_nodes / 2))
    src = rng.integers(0, n_nodes, n_edges)
    cross = rng.random(n_edges) < cross_topic
    other = (y[src] + rng.integers(1, n_topics, n_edges)) % n_topics       # a different topic, uniformly
    topic = np.where(cross, other, y[src])
    dst = np.array([by_topic[t][rng.integers(0, len(by_topic[t]))] for t in topic])
    keep = src != dst
    pairs = np.unique(np.sort(np.stack([src[keep], dst[keep]], 1), axis=1), axis=0)   # undirected, no duplicates
    edge_index = torch.from_numpy(np.concatenate([pairs, pairs[:, ::-1]], 0).T.copy()).long()

    order = rng.permutation(n_nodes)
    train = np.zeros(n_nodes, dtype=bool)
    for t in range(n_topics):
        train[[i for i in order if y[i] == t][:n_train_per_topic]] = True
    rest = [i for i in order if not train[i]]
    val = np.zeros(n_nodes, dtype=bool)
    val[rest[:n_val]] = True
    test = ~(train | val)
    return GraphData(x=torch.from_numpy(x), y=torch.from_numpy(y).long(), edge_index=edge_index,
                     adj=_adjacency(edge_index, n_nodes), train_mask=torch.from_numpy(train),
                     val_mask=torch.from_numpy(val), test_mask=torch.from_numpy(test))


@dataclass
class NoisyGraphData(GraphData):
    """A ``GraphData`` with noisy nodes: ``noisy`` (N,) bool marks them. Noisy nodes are in none of the three
    node masks, and their label is the topic their words push (not a real topic)."""

    noisy: torch.Tensor = None

    def to(self, device) -> "NoisyGraphData":
        return NoisyGraphData(*(getattr(self, f.name).to(device) for f in fields(self)))

    def noisy_neighbour_share(self) -> float:
        """The share of noisy nodes among the neighbours of the real nodes, averaged over real nodes with
        neighbours."""
        real = ~self.noisy
        deg = self.adj[real].sum(-1)
        share = (self.adj[real] & self.noisy[None, :]).sum(-1) / deg.clamp_min(1)
        return float(share[deg > 0].float().mean())


def noisy_citation_graph(n_noisy: int = 200, noisy_degree: int = 12, n_marker_words: int = 10,
                         marker_words: float = 0.3, noisy_topic_words: float = 0.9, seed: int = 0,
                         **citation_kwargs) -> NoisyGraphData:
    """``citation_graph(seed=seed, **citation_kwargs)`` plus ``n_noisy`` noisy ("spam") documents, seeded.

    Each noisy document pretends to be about a random topic t: of its ``words_per_doc`` words, each is one of
    ``n_marker_words`` marker words with probability ``marker_words``, else a word of topic t's block with
    probability ``noisy_topic_words``, else any word of the vocabulary. The marker words are ``n_marker_words``
    extra columns of x (so x is (N, vocab_size + n_marker_words)); real documents never use them. Each noisy
    document cites ``noisy_degree`` real documents drawn uniformly (so regardless of their topic; repeats are
    dropped), in both directions; noisy documents do not cite each other. The real documents keep their nodes
    0..n_real-1, edges, labels and split; the noisy ones (nodes n_real..N-1) are in no mask, and y holds the
    topic they pretend to be about. With the defaults and 200 real documents (``n_nodes=200``), about two thirds
    of a real document's neighbours are noisy. Returns a ``NoisyGraphData`` whose ``noisy`` marks them.
    """
    if n_noisy < 0 or noisy_degree < 1 or n_marker_words < 1:
        raise ValueError(f"need n_noisy >= 0, noisy_degree >= 1, n_marker_words >= 1; got {n_noisy}, "
                         f"{noisy_degree}, {n_marker_words}")
    for name, p in (("marker_words", marker_words), ("noisy_topic_words", noisy_topic_words)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} is a probability, in [0, 1]; got {p}")
    base = citation_graph(seed=seed, **citation_kwargs)
    n_real, vocab_size = base.x.shape
    n_topics = base.num_classes
    words_per_doc = citation_kwargs.get("words_per_doc", 20)
    if noisy_degree > n_real:
        raise ValueError(f"noisy_degree = {noisy_degree} is more than the {n_real} real documents")
    rng = np.random.default_rng([seed, 1])                                 # a stream of its own: base is unchanged
    fake = rng.integers(0, n_topics, n_noisy)                              # the topic each noisy document pushes
    block = vocab_size // n_topics
    u = rng.random((n_noisy, words_per_doc))
    words = np.where(u < marker_words, vocab_size + rng.integers(0, n_marker_words, (n_noisy, words_per_doc)),
                     np.where(u < marker_words + (1 - marker_words) * noisy_topic_words,
                              fake[:, None] * block + rng.integers(0, block, (n_noisy, words_per_doc)),
                              rng.integers(0, vocab_size, (n_noisy, words_per_doc))))
    x_noisy = np.zeros((n_noisy, vocab_size + n_marker_words), dtype=np.float32)
    np.add.at(x_noisy, (np.repeat(np.arange(n_noisy), words_per_doc), words.ravel()), 1.0)
    x = torch.cat([torch.cat([base.x, torch.zeros(n_real, n_marker_words)], 1), torch.from_numpy(x_noisy)], 0)

    src = np.repeat(n_real + np.arange(n_noisy), noisy_degree)
    dst = rng.integers(0, n_real, n_noisy * noisy_degree)
    pairs = np.unique(np.stack([src, dst], 1), axis=0)
    new_edges = torch.from_numpy(np.concatenate([pairs, pairs[:, ::-1]], 0).T.copy()).long()
    edge_index = torch.cat([base.edge_index, new_edges], 1)
    n = n_real + n_noisy
    no = torch.zeros(n_noisy, dtype=torch.bool)
    return NoisyGraphData(x=x, y=torch.cat([base.y, torch.from_numpy(fake).long()]), edge_index=edge_index,
                          adj=_adjacency(edge_index, n), train_mask=torch.cat([base.train_mask, no]),
                          val_mask=torch.cat([base.val_mask, no]), test_mask=torch.cat([base.test_mask, no]),
                          noisy=torch.cat([torch.zeros(n_real, dtype=torch.bool), ~no]))


@dataclass
class LookupGraphs:
    """A batch of B dictionary-lookup graphs of k keys each, on 2k nodes: nodes 0..k-1 are the key nodes, k..2k-1
    the query nodes. x (B, 2k, 2k) features: a key node holds one-hot(key) in the first k columns and
    one-hot(value) in the last k; a query node holds one-hot(key) and zeros. adj (2k, 2k) bool, shared by the batch:
    adj[i, j] True for every key node j and query node i (edges key -> query only). y (B, k): the value the query
    node k + q must output. edge_index (2, k * k) is the same graph in PyG's layout."""

    x: torch.Tensor
    y: torch.Tensor
    adj: torch.Tensor
    edge_index: torch.Tensor
    k: int

    def to(self, device) -> "LookupGraphs":
        return LookupGraphs(self.x.to(device), self.y.to(device), self.adj.to(device), self.edge_index.to(device),
                            self.k)


def dictionary_lookup(k: int, n_graphs: int, seed: int | None = None,
                      generator: torch.Generator | None = None) -> LookupGraphs:
    """``n_graphs`` seeded dictionary-lookup graphs with ``k`` keys (Brody et al., ICLR 2022, section 4.1).

    In each graph the keys of the key nodes, the values they store and the keys of the query nodes are three
    independent random permutations of 0..k-1, so every query has exactly one matching key node. Pass ``seed``
    for a fixed set, or a ``generator`` to draw fresh graphs at every call (training batches).
    """
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2, got {k!r}")
    if n_graphs < 1:
        raise ValueError(f"n_graphs must be positive, got {n_graphs}")
    if (seed is None) == (generator is None):
        raise ValueError("pass exactly one of seed= and generator=")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    perm = lambda: torch.rand(n_graphs, k, generator=g).argsort(dim=-1)          # (B, k) random permutations
    keys, values, queries = perm(), perm(), perm()
    eye = torch.eye(k)
    x = torch.zeros(n_graphs, 2 * k, 2 * k)
    x[:, :k, :k], x[:, :k, k:] = eye[keys], eye[values]                         # key nodes: (key, value)
    x[:, k:, :k] = eye[queries]                                                  # query nodes: key only
    where = keys.argsort(dim=-1)                                                 # where[b, key] = key node holding it
    y = values.gather(1, where.gather(1, queries))                               # (B, k)
    adj = torch.zeros(2 * k, 2 * k, dtype=torch.bool)
    adj[k:, :k] = True                                                           # query i receives from key j
    src, dst = torch.meshgrid(torch.arange(k), torch.arange(k, 2 * k), indexing="ij")
    edge_index = torch.stack([src.flatten(), dst.flatten()])
    return LookupGraphs(x, y, adj, edge_index, k)
