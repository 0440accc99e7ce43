"""Graph construction for batched point clouds, in plain torch (no torch-cluster).

All functions take the sparse PyG batch layout: the nodes of all graphs are
concatenated, and ``batch[n]`` is the graph index of node ``n``. ``batch``
must be sorted (as ``torch_geometric.data.Batch`` produces it).

Edge direction convention (PyG ``flow="source_to_target"``):
``edge_index[0]`` is the source node ``j`` (the neighbour sending a message)
and ``edge_index[1]`` is the target node ``i`` (the node receiving it).
Message-passing layers therefore read ``x_j = x[edge_index[0]]`` and
``x_i = x[edge_index[1]]`` and aggregate onto ``edge_index[1]``.
The returned edges are grouped by target node, in increasing order.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

__all__ = ["fully_connected_edges", "knn_edges"]


def _graph_sizes(batch: Tensor) -> Tensor:
    """Number of nodes of each graph, ``[B]`` (graphs 0..max(batch))."""
    if batch.numel() == 0:
        return batch.new_zeros(0)
    return torch.bincount(batch)


def fully_connected_edges(batch: Tensor) -> Tensor:
    """All ordered pairs ``(j -> i)``, ``i != j``, inside each graph.

    Args:
        batch: ``LongTensor[N]``, sorted graph index of every node.

    Returns:
        ``LongTensor[2, E]`` with ``E = sum_g n_g (n_g - 1)``; row 0 is the
        source ``j``, row 1 the target ``i``. Memory is ``O(sum_g n_g^2)``:
        no ``N x N`` mask over the whole batch is built.
    """
    device = batch.device
    sizes = _graph_sizes(batch)
    ptr = torch.cumsum(sizes, 0) - sizes  # first node of each graph
    # Every target node i gets one candidate slot per node of its own graph.
    slots_per_node = sizes[batch]  # [N]
    num_nodes = batch.numel()
    target = torch.repeat_interleave(torch.arange(num_nodes, device=device), slots_per_node)
    # Position of each slot inside its target's block -> local source index.
    block_start = torch.cumsum(slots_per_node, 0) - slots_per_node
    local = torch.arange(target.numel(), device=device) - block_start[target]
    source = ptr[batch[target]] + local
    keep = source != target
    return torch.stack([source[keep], target[keep]])


def knn_edges(pos: Tensor, batch: Tensor, k: int) -> Tensor:
    """Edges from the ``k`` nearest neighbours of every node, within its graph.

    Distances are Euclidean (``torch.cdist``) on a per-graph padded layout, so
    memory is ``O(B * n_max^2)`` rather than ``O(N^2)``. A graph with
    ``n_g <= k`` nodes gives each node all ``n_g - 1`` other nodes. Ties are
    broken arbitrarily by ``torch.topk``.

    Args:
        pos: ``[N, 3]`` node coordinates (any unit).
        batch: ``LongTensor[N]``, sorted graph index of every node.
        k: number of neighbours per node (``k >= 0``).

    Returns:
        ``LongTensor[2, E]``: row 0 is the neighbour (source ``j``), row 1 the
        query node (target ``i``), so every node has in-degree
        ``min(k, n_g - 1)``.
    """
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    num_nodes = batch.numel()
    if num_nodes == 0 or k == 0:
        return batch.new_zeros(2, 0)

    dense_pos, mask = to_dense_batch(pos, batch)  # [B, n_max, 3], [B, n_max]
    n_max = dense_pos.shape[1]
    k_eff = min(k, n_max - 1)
    if k_eff == 0:
        return batch.new_zeros(2, 0)

    dist = torch.cdist(dense_pos, dense_pos)  # [B, n_max, n_max]
    eye = torch.eye(n_max, dtype=torch.bool, device=pos.device)
    invalid = ~mask[:, None, :] | eye  # padding columns and self-pairs
    dist = dist.masked_fill(invalid, float("inf"))
    _, nbr_local = dist.topk(k_eff, dim=-1, largest=False)  # [B, n_max, k_eff]

    # Map padded (graph, local) indices back to global node indices.
    sizes = _graph_sizes(batch)
    ptr = torch.cumsum(sizes, 0) - sizes
    source = nbr_local + ptr[:, None, None]
    target = torch.arange(n_max, device=pos.device)[None, :, None] + ptr[:, None, None]
    # Drop padded query rows and the masked slots of graphs smaller than k_eff + 1
    # (checked on the mask, not on the distance, so non-finite coordinates
    # cannot silently remove edges).
    valid = mask[:, :, None] & ~invalid.gather(-1, nbr_local)
    return torch.stack([source[valid], target.expand_as(source)[valid]])


GRAPH_KINDS = ("full", "knn")


def build_edges(pos: Tensor, batch: Tensor, graph: str, knn_k: int) -> Tensor:
    """Edges of kind ``graph``: ``"full"`` (:func:`fully_connected_edges`) or
    ``"knn"`` (:func:`knn_edges` with ``knn_k`` neighbours); ``[2, E]``."""
    if graph == "full":
        return fully_connected_edges(batch)
    if graph == "knn":
        return knn_edges(pos, batch, knn_k)
    raise ValueError(f"graph must be one of {GRAPH_KINDS}, got {graph!r}")
