"""Per-graph reductions over a batch of graphs in the torch_geometric layout.

Graphs of different sizes share one batch without padding: node ``k`` belongs
to graph ``batch[k]``, with ``batch`` sorted. Every per-graph sum or mean in
molgen goes through these helpers (PyG's ``scatter``), and every enumeration
of the node pairs of each graph through :func:`pair_index`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

__all__ = ["graph_mean", "graph_sizes", "graph_sum", "node_batch", "pair_index", "remove_mean"]


def graph_sizes(batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """Number of nodes per graph, ``[B]`` long (``B = num_graphs``, else ``max(batch) + 1``)."""
    return torch.bincount(batch, minlength=num_graphs or 0)


def node_batch(num_nodes: Tensor) -> Tensor:
    """Sorted graph index of every node of graphs with ``num_nodes`` [B] nodes: ``[sum(num_nodes)]`` long."""
    return torch.repeat_interleave(torch.arange(num_nodes.numel(), device=num_nodes.device), num_nodes)


def graph_sum(x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """Per-graph sum of node (or pair) values: ``[N, ...] -> [B, ...]``; ``batch`` [N] need not be sorted."""
    return scatter(x, batch, dim=0, dim_size=num_graphs, reduce="sum")


def graph_mean(x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """Per-graph mean of node values: ``[N, D] -> [B, D]`` (an empty graph's mean is 0)."""
    return scatter(x, batch, dim=0, dim_size=num_graphs, reduce="mean")


def remove_mean(x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """Project node vectors onto each graph's zero-mean subspace: ``[N, D] -> [N, D]``."""
    return x - graph_mean(x, batch, num_graphs)[batch]


def pair_index(batch: Tensor) -> Tensor:
    """Every unordered pair ``(i, j)``, ``i < j``, of nodes of the same graph: ``[2, P]`` long.

    ``P = sum_g n_g (n_g - 1) / 2``; pairs are sorted by ``i`` then ``j``
    (so by graph), which makes them a pure function of the graph sizes.
    ``batch`` must be sorted. Memory is ``O(P)``: no ``N x N`` mask is built.
    """
    if batch.numel() == 0:
        return batch.new_zeros(2, 0)
    sizes = graph_sizes(batch)
    ptr = torch.cumsum(sizes, 0) - sizes
    # node i pairs with the later nodes of its graph: end_of_graph - i - 1 of them
    last = (ptr + sizes)[batch]  # one past the last node of each node's graph
    node = torch.arange(batch.numel(), device=batch.device)
    counts = last - node - 1
    first = torch.repeat_interleave(node, counts)
    start = torch.cumsum(counts, 0) - counts
    second = first + 1 + torch.arange(first.numel(), device=batch.device) - start[first]
    return torch.stack([first, second])
