"""Graph attention as lesson 10 builds it: attention over each node's neighbours, the adjacency matrix as the mask.

A graph attention layer (GAT; Veličković et al., "Graph Attention Networks", ICLR 2018) is the attention of
lessons 02 to 06 with one change: node i may attend only to its neighbours j (and to itself). Written densely,
that is the course's ``masked_softmax`` with the adjacency matrix (plus self-loops) as the mask.

    GAT:    e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j)            (= LeakyReLU(a^T [W h_i || W h_j]))
    GATv2:  e_ij = a . LeakyReLU(W_dst h_i + W_src h_j)                (Brody et al., ICLR 2022)
            alpha_ij = softmax_j over the neighbours of i (e_ij),      h'_i = sum_j alpha_ij (W h_j)

Conventions. The adjacency ``adj`` is a bool tensor with ``adj[..., i, j]`` True when node i receives from
node j (an edge j -> i); i is the query ("target"), j the key ("source"). PyTorch Geometric stores the same edge
as a column of ``edge_index`` with ``edge_index[0] = j`` (source) and ``edge_index[1] = i`` (target):
``edge_index_to_adjacency`` and ``edge_attention`` convert between the two. Like PyG's ``GATConv``, the layers
add a self-loop to every node by default (``add_self_loops=True``); a node with no incoming edge at all (possible
only without self-loops) gets weights of zero and an output equal to the bias.

Dense attention costs N x N scores per head, which is what the course's graphs need (tens to a few hundred nodes,
or batches of small graphs); PyG's sparse layers scale to millions of edges. ``to_pyg`` copies a layer's weights
into PyG's ``GATConv`` / ``GATv2Conv`` (torch_geometric is imported only there).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import masked_softmax, require_bool_mask

__all__ = ["edge_index_to_adjacency", "add_self_loops", "edge_attention", "GATLayer", "GATv2Layer", "GAT", "to_pyg"]


def edge_index_to_adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """PyG's (2, E) ``edge_index`` (row 0 source j, row 1 target i) -> a bool (N, N) ``adj`` with adj[i, j] True.

    Built on the device of ``edge_index``. Self-loops are not added (the layers add them).
    """
    if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be a (2, E) tensor, got "
                         f"{tuple(edge_index.shape) if isinstance(edge_index, torch.Tensor) else type(edge_index).__name__}")
    if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
        raise ValueError(f"num_nodes must be a positive int, got {num_nodes!r}")
    adj = torch.zeros(num_nodes, num_nodes, dtype=torch.bool, device=edge_index.device)
    adj[edge_index[1], edge_index[0]] = True                      # target i attends to source j
    return adj


def add_self_loops(adj: torch.Tensor) -> torch.Tensor:
    """adj (..., N, N) bool -> the same with every diagonal entry True (each node also attends to itself)."""
    require_bool_mask(adj)
    n = adj.shape[-1]
    return adj | torch.eye(n, dtype=torch.bool, device=adj.device)


def edge_attention(weights: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """Dense weights (heads, N, N) -> one coefficient per edge and head, (E, heads), in ``edge_index``'s order.

    Edge e = (j -> i) = (edge_index[0, e], edge_index[1, e]) gets weights[:, i, j]: PyG's layout of the attention
    returned by ``GATConv(..., return_attention_weights=True)``.
    """
    if not isinstance(weights, torch.Tensor) or weights.dim() != 3:
        raise ValueError(f"weights must be (heads, N, N) for one graph, got "
                         f"{tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__}")
    return weights[:, edge_index[1], edge_index[0]].transpose(0, 1)


def _check_inputs(x: torch.Tensor, adj: torch.Tensor, in_features: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-1] != in_features:
        raise ValueError(f"x must be (..., N, {in_features}) node features, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    require_bool_mask(adj)
    n = x.shape[-2]
    if adj.dim() < 2 or adj.shape[-2:] != (n, n):
        raise ValueError(f"adj must be (..., N, N) = (..., {n}, {n}) with adj[..., i, j] True for an edge j -> i, "
                         f"got shape {tuple(adj.shape)}")


def _glorot_(t: torch.Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(t, -bound, bound)


class _GraphAttentionBase(nn.Module):
    def __init__(self, in_features: int, out_features: int, heads: int, concat: bool, negative_slope: float,
                 dropout: float, add_self_loops: bool, bias: bool):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features), ("heads", heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_features, self.out_features, self.heads = in_features, out_features, heads
        self.concat, self.negative_slope, self.add_self_loops = bool(concat), float(negative_slope), bool(add_self_loops)
        self.dropout = nn.Dropout(dropout)
        total = out_features * (heads if concat else 1)
        self.bias = nn.Parameter(torch.zeros(total)) if bias else None

    def _split(self, z: torch.Tensor) -> torch.Tensor:
        """(..., N, heads * C) -> (..., heads, N, C)"""
        return z.unflatten(-1, (self.heads, self.out_features)).movedim(-2, -3)

    def _finish(self, scores: torch.Tensor, values: torch.Tensor, adj: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """scores (..., heads, N, N), values (..., heads, N, C), adj (..., N, N) -> (out, weights)."""
        if self.add_self_loops:
            adj = add_self_loops(adj)
        weights = masked_softmax(scores, adj.unsqueeze(-3), dim=-1)          # (..., heads, N, N), over neighbours j
        heads = self.dropout(weights) @ values                                # (..., heads, N, C)
        if self.concat:
            out = heads.movedim(-3, -2).flatten(-2)                           # (..., N, heads * C)
        else:
            out = heads.mean(dim=-3)                                          # (..., N, C)
        if self.bias is not None:
            out = out + self.bias
        return out, weights

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, heads={self.heads}, concat={self.concat}, "
                f"add_self_loops={self.add_self_loops}")


class GATLayer(_GraphAttentionBase):
    r"""The graph attention layer of Veličković et al. (ICLR 2018), dense: attention masked by the adjacency.

    .. math::
        e_{ij} = \mathrm{LeakyReLU}\big(a_{dst}^\top W h_i + a_{src}^\top W h_j\big), \qquad
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}(e_{ij}), \qquad
        h_i' = \big\Vert_{k=1}^{K} \sum_j \alpha^k_{ij} W^k h_j \quad \text{(or the mean over the K heads)}

    The score of an edge is the paper's :math:`a^\top [W h_i \Vert W h_j]` split into a target part and a source
    part, computed once per node: no (N, N, 2F) tensor is built.

    Args:
        in_features (int): size of each input node feature vector.
        out_features (int): size of each head's output.
        heads (int): number of attention heads K (default 1).
        concat (bool): concatenate the heads (hidden layers) or average them (output layer) (default True).
        negative_slope (float): LeakyReLU's slope for negative scores (default 0.2).
        dropout (float): dropout on the attention coefficients, in training mode only (default 0).
        add_self_loops (bool): let every node attend to itself (default True, as in PyG's GATConv).
        bias (bool): add a learned bias to the output (default True).

    Parameters: ``lin.weight`` (K * out_features, in_features), the K projections W stacked; ``att_src``,
    ``att_dst`` (K, out_features); ``bias``. The names match PyG's ``GATConv`` (see ``to_pyg``).

    Shapes:
        - **input:** node features x :math:`(\ldots, N, F_{in})`; adjacency adj, bool, :math:`(N, N)` or
          broadcastable to :math:`(\ldots, N, N)`, adj[..., i, j] True for an edge j -> i.
        - **output:** node features :math:`(\ldots, N, K \cdot F_{out})` if concat else :math:`(\ldots, N, F_{out})`;
          attention weights :math:`(\ldots, K, N, N)` (before dropout; each row sums to 1 over the neighbours).
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = True, bias: bool = True):
        super().__init__(in_features, out_features, heads, concat, negative_slope, dropout, add_self_loops, bias)
        self.lin = nn.Linear(in_features, heads * out_features, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, out_features))
        self.att_dst = nn.Parameter(torch.empty(heads, out_features))
        _glorot_(self.lin.weight, in_features, heads * out_features)
        _glorot_(self.att_src, heads, out_features)
        _glorot_(self.att_dst, heads, out_features)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(x, adj, self.in_features)
        z = self._split(self.lin(x))                                          # (..., K, N, C): W h for every head
        s_dst = (z * self.att_dst[:, None, :]).sum(-1)                        # (..., K, N): a_dst . W h_i
        s_src = (z * self.att_src[:, None, :]).sum(-1)                        # (..., K, N): a_src . W h_j
        scores = F.leaky_relu(s_dst.unsqueeze(-1) + s_src.unsqueeze(-2), self.negative_slope)   # (..., K, N, N)
        return self._finish(scores, z, adj)


class GATv2Layer(_GraphAttentionBase):
    r"""GATv2 (Brody, Alon and Yahav, "How Attentive are Graph Attention Networks?", ICLR 2022), dense.

    .. math::
        e_{ij} = a^\top \mathrm{LeakyReLU}\big(W_{dst} h_i + W_{src} h_j\big), \qquad
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}(e_{ij}), \qquad
        h_i' = \big\Vert_{k} \sum_j \alpha^k_{ij} W^k_{src} h_j \quad \text{(or the mean over the heads)}

    The nonlinearity sits between W and a, so the ranking of the neighbours j can depend on the node i
    ("dynamic" attention); GAT's cannot. The price is an (..., K, N, N, F_out) tensor of pairs.

    Args: as :class:`GATLayer`. ``lin_src`` and ``lin_dst`` are linear layers with a bias, like PyG's ``GATv2Conv``
    (``lin_l`` and ``lin_r`` there); ``att`` is (K, out_features).

    Shapes:
        - **input:** x :math:`(\ldots, N, F_{in})`; adj bool, broadcastable to :math:`(\ldots, N, N)`,
          adj[..., i, j] True for an edge j -> i.
        - **output:** :math:`(\ldots, N, K \cdot F_{out})` if concat else :math:`(\ldots, N, F_{out})`; weights
          :math:`(\ldots, K, N, N)`.
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = True, bias: bool = True):
        super().__init__(in_features, out_features, heads, concat, negative_slope, dropout, add_self_loops, bias)
        self.lin_src = nn.Linear(in_features, heads * out_features, bias=bias)
        self.lin_dst = nn.Linear(in_features, heads * out_features, bias=bias)
        self.att = nn.Parameter(torch.empty(heads, out_features))
        for lin in (self.lin_src, self.lin_dst):
            _glorot_(lin.weight, in_features, heads * out_features)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        _glorot_(self.att, heads, out_features)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(x, adj, self.in_features)
        z_src = self._split(self.lin_src(x))                                  # (..., K, N, C)
        z_dst = self._split(self.lin_dst(x))                                  # (..., K, N, C)
        pair = F.leaky_relu(z_dst.unsqueeze(-2) + z_src.unsqueeze(-3), self.negative_slope)   # (..., K, N, N, C)
        scores = (pair * self.att[:, None, None, :]).sum(-1)                  # (..., K, N, N)
        return self._finish(scores, z_src, adj)


class GAT(nn.Module):
    """Two graph attention layers for node classification, as in Veličković et al.: a hidden layer of ``heads``
    heads concatenated, ELU, and an output layer whose ``out_heads`` heads are averaged. Dropout (``dropout``) acts
    on the input features, the hidden features and the attention coefficients. ``v2=True`` uses GATv2 layers.

    forward(x (..., N, F_in), adj bool (..., N, N)) -> (logits (..., N, n_classes), [weights of each layer]).
    """

    def __init__(self, in_features: int, hidden: int, n_classes: int, heads: int = 4, out_heads: int = 1,
                 dropout: float = 0.0, v2: bool = False):
        super().__init__()
        layer = GATv2Layer if v2 else GATLayer
        self.layer1 = layer(in_features, hidden, heads=heads, concat=True, dropout=dropout)
        self.layer2 = layer(hidden * heads, n_classes, heads=out_heads, concat=False, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, w1 = self.layer1(self.dropout(x), adj)
        out, w2 = self.layer2(self.dropout(F.elu(h)), adj)
        return out, [w1, w2]


def to_pyg(layer: GATLayer | GATv2Layer):
    """PyG's ``GATConv`` (for a GATLayer) or ``GATv2Conv`` (for a GATv2Layer) holding the same weights.

    PyG stores the attention vectors as (1, K, C) and calls GATv2's projections ``lin_l`` (source) and ``lin_r``
    (target). The result is on the layer's device and dtype, in the layer's training mode.
    """
    from torch_geometric.nn import GATConv, GATv2Conv          # imported here: only this helper needs PyG

    if not isinstance(layer, (GATLayer, GATv2Layer)):
        raise TypeError(f"expected a course GATLayer or GATv2Layer, got {type(layer).__name__}")
    kwargs = dict(heads=layer.heads, concat=layer.concat, negative_slope=layer.negative_slope,
                  dropout=layer.dropout.p, add_self_loops=layer.add_self_loops, bias=layer.bias is not None)
    first = next(layer.parameters())
    if isinstance(layer, GATLayer):
        ref = GATConv(layer.in_features, layer.out_features, **kwargs).to(device=first.device, dtype=first.dtype)
        pairs = [(ref.lin.weight, layer.lin.weight), (ref.att_src, layer.att_src[None]),
                 (ref.att_dst, layer.att_dst[None])]
    else:
        ref = GATv2Conv(layer.in_features, layer.out_features, **kwargs).to(device=first.device, dtype=first.dtype)
        pairs = [(ref.lin_l.weight, layer.lin_src.weight), (ref.lin_r.weight, layer.lin_dst.weight),
                 (ref.att, layer.att[None])]
        if layer.lin_src.bias is not None:
            pairs += [(ref.lin_l.bias, layer.lin_src.bias), (ref.lin_r.bias, layer.lin_dst.bias)]
    if layer.bias is not None:
        pairs.append((ref.bias, layer.bias))
    with torch.no_grad():
        for target, source in pairs:
            target.copy_(source)
    return ref.train(layer.training)
