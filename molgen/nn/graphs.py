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

from molgen.graph_batch import graph_sizes, pair_index

__all__ = ["GRAPH_KINDS", "GraphBuilder", "chain_edges", "fully_connected_edges", "knn_edges", "union_edges"]


def fully_connected_edges(batch: Tensor) -> Tensor:
    """All ordered pairs ``(j -> i)``, ``i != j``, inside each graph.

    Args:
        batch: ``LongTensor[N]``, sorted graph index of every node.

    Returns:
        ``LongTensor[2, E]`` with ``E = sum_g n_g (n_g - 1)``, sorted by target
        ``i`` then source ``j``; row 0 is the source ``j``, row 1 the target ``i``.
        Both directions of every unordered pair of :func:`molgen.graph_batch.pair_index`;
        memory is ``O(sum_g n_g^2)``: no ``N x N`` mask over the whole batch is built.
    """
    pairs = pair_index(batch)
    edges = torch.cat([pairs, pairs.flip(0)], dim=1)
    order = torch.argsort(edges[1] * batch.numel() + edges[0])
    return edges[:, order]


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
    sizes = graph_sizes(batch)
    ptr = torch.cumsum(sizes, 0) - sizes
    source = nbr_local + ptr[:, None, None]
    target = torch.arange(n_max, device=pos.device)[None, :, None] + ptr[:, None, None]
    # Drop padded query rows and the masked slots of graphs smaller than k_eff + 1
    # (checked on the mask, not on the distance, so non-finite coordinates
    # cannot silently remove edges).
    valid = mask[:, :, None] & ~invalid.gather(-1, nbr_local)
    return torch.stack([source[valid], target.expand_as(source)[valid]])


def _local_index(batch: Tensor) -> Tensor:
    """Index of every node inside its own graph, ``[N]``."""
    sizes = graph_sizes(batch)
    ptr = torch.cumsum(sizes, 0) - sizes
    return torch.arange(batch.numel(), device=batch.device) - ptr[batch]


def chain_edges(batch: Tensor, atoms_per_residue: int, window: int) -> Tensor:
    """Edges between atoms of residues at most ``window`` apart in sequence.

    Nodes are assumed in residue-major chain order: node ``k`` of a graph is
    atom ``k % atoms_per_residue`` of residue ``k // atoms_per_residue`` (the
    layout of :class:`molgen.proteins.dataset.BackboneDataset`). Atoms of the
    same residue are connected too (``window >= 0``); self-loops are not.

    Returns:
        ``LongTensor[2, E]`` (row 0 source, row 1 target), grouped by target.
    """
    if atoms_per_residue < 1 or window < 0:
        raise ValueError(f"need atoms_per_residue >= 1 and window >= 0, got {atoms_per_residue}, {window}")
    if batch.numel() == 0:
        return batch.new_zeros(2, 0)
    sizes = graph_sizes(batch)
    local = _local_index(batch)
    residue = local // atoms_per_residue
    # Candidate sources of each target: one contiguous block of local indices.
    start = ((residue - window) * atoms_per_residue).clamp(min=0)
    stop = torch.minimum((residue + window + 1) * atoms_per_residue, sizes[batch])
    counts = stop - start
    target = torch.repeat_interleave(torch.arange(batch.numel(), device=batch.device), counts)
    block_start = torch.cumsum(counts, 0) - counts
    offset = torch.arange(target.numel(), device=batch.device) - block_start[target]
    source = target - local[target] + start[target] + offset
    keep = source != target
    return torch.stack([source[keep], target[keep]])


def union_edges(*edge_indices: Tensor, num_nodes: int) -> Tensor:
    """Union of edge sets without duplicates, grouped by target then source; ``[2, E]``."""
    edges = torch.cat(edge_indices, dim=1)
    key = torch.unique(edges[1] * num_nodes + edges[0])  # sorted: by target, then source
    return torch.stack([key % num_nodes, key // num_nodes])


GRAPH_KINDS = ("full", "knn", "knn+chain")


class GraphBuilder:
    """Edges and invariant edge features of a denoiser's graph, built once per forward pass.

    Kinds:
        - ``"full"``: every pair inside a graph (small molecules);
        - ``"knn"``: the ``knn_k`` nearest neighbours of each node;
        - ``"knn+chain"``: ``knn`` plus every pair of atoms of residues at
          most ``chain_window`` apart in sequence (polymers in residue-major
          node order, see :func:`chain_edges`), so that the chain stays
          connected whatever the noisy coordinates look like. Each edge also
          carries its sequence separation, one-hot over
          ``[-max_residue_offset, max_residue_offset]`` (clamped): at high
          noise the geometry says nothing about which atoms are bonded.

    Cost is ``O(N (knn_k + atoms_per_residue (2 chain_window + 1)))`` edges
    for the sparse kinds (plus the per-graph ``cdist`` of the kNN search).
    """

    def __init__(
        self,
        kind: str = "full",
        knn_k: int = 16,
        atoms_per_residue: int = 4,
        chain_window: int = 2,
        max_residue_offset: int = 16,
    ) -> None:
        if kind not in GRAPH_KINDS:
            raise ValueError(f"graph must be one of {GRAPH_KINDS}, got {kind!r}")
        if kind == "knn+chain" and (atoms_per_residue < 1 or chain_window < 0 or max_residue_offset < 1):
            raise ValueError(
                "knn+chain needs atoms_per_residue >= 1, chain_window >= 0 and max_residue_offset >= 1, got "
                f"{atoms_per_residue}, {chain_window}, {max_residue_offset}"
            )
        self.kind, self.knn_k = kind, knn_k
        self.atoms_per_residue, self.chain_window = atoms_per_residue, chain_window
        self.max_residue_offset = max_residue_offset

    @property
    def num_edge_features(self) -> int:
        """Width of the invariant edge features returned with the edges."""
        return 2 * self.max_residue_offset + 1 if self.kind == "knn+chain" else 0

    def __call__(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        """Edges of ``pos [N, 3]`` / ``batch [N]``.

        Returns:
            ``(edge_index [2, E], edge_features [E, num_edge_features])``, in
            ``pos``'s dtype; the features are empty columns for full and kNN graphs.
        """
        if self.kind == "full":
            edge_index = fully_connected_edges(batch)
        else:
            edge_index = knn_edges(pos, batch, self.knn_k)
        if self.kind != "knn+chain":
            return edge_index, pos.new_zeros(edge_index.shape[1], 0)
        edge_index = union_edges(
            edge_index, chain_edges(batch, self.atoms_per_residue, self.chain_window), num_nodes=batch.numel()
        )
        residue = _local_index(batch) // self.atoms_per_residue
        offset = (residue[edge_index[1]] - residue[edge_index[0]]).clamp(
            -self.max_residue_offset, self.max_residue_offset
        )
        features = torch.nn.functional.one_hot(offset + self.max_residue_offset, self.num_edge_features)
        return edge_index, features.to(pos.dtype)
