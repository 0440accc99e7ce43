"""Tests for molgen.nn.graphs (plain-torch graph construction)."""

import pytest
import torch

from molgen.nn.graphs import GraphBuilder, chain_edges, fully_connected_edges, knn_edges, union_edges


def make_batch(sizes):
    """Sorted PyG batch vector for graphs of the given sizes."""
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes, dtype=torch.long))


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def naive_fully_connected(sizes):
    """Reference (source j, target i) pairs built with Python loops."""
    edges, start = set(), 0
    for n in sizes:
        nodes = range(start, start + n)
        edges |= {(j, i) for i in nodes for j in nodes if i != j}
        start += n
    return edges


@pytest.mark.parametrize("seed", range(5))
def test_fully_connected_matches_naive(seed):
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 8, (int(torch.randint(1, 6, (1,), generator=gen)),), generator=gen).tolist()
    batch = make_batch(sizes)
    edge_index = fully_connected_edges(batch)

    assert edge_index.dtype == torch.long and edge_index.shape[0] == 2
    assert edge_index.shape[1] == sum(n * (n - 1) for n in sizes)
    assert (edge_index[0] != edge_index[1]).all(), "self loops"
    assert (batch[edge_index[0]] == batch[edge_index[1]]).all(), "cross-graph edges"
    assert edge_set(edge_index) == naive_fully_connected(sizes)
    assert edge_index.shape[1] == len(edge_set(edge_index)), "duplicate edges"
    # Grouped by target, as documented.
    assert (edge_index[1].diff() >= 0).all()


def test_fully_connected_edge_cases():
    assert fully_connected_edges(make_batch([1, 1, 1])).shape == (2, 0)
    assert fully_connected_edges(torch.zeros(0, dtype=torch.long)).shape == (2, 0)
    assert edge_set(fully_connected_edges(make_batch([2]))) == {(0, 1), (1, 0)}


def brute_force_knn_distances(pos, batch, k):
    """Sorted distances to the k nearest same-graph neighbours, per node."""
    out = []
    for i in range(pos.shape[0]):
        same = (batch == batch[i]).nonzero().flatten()
        same = same[same != i]
        d = (pos[same] - pos[i]).norm(dim=-1).sort().values
        out.append(d[:k])
    return out


@pytest.mark.parametrize("sizes,k", [([5, 9, 3], 3), ([12, 7], 4), ([2, 6], 5), ([1, 4], 2)])
def test_knn_edges_are_true_nearest(sizes, k):
    gen = torch.Generator().manual_seed(0)
    batch = make_batch(sizes)
    pos = torch.randn(batch.numel(), 3, generator=gen, dtype=torch.float64)
    edge_index = knn_edges(pos, batch, k)
    src, dst = edge_index

    assert (src != dst).all(), "self loops"
    assert (batch[src] == batch[dst]).all(), "cross-graph edges"
    assert edge_index.shape[1] == len(edge_set(edge_index)), "duplicate edges"
    in_degree = torch.bincount(dst, minlength=batch.numel())
    expected_degree = torch.tensor(sizes)[batch].sub(1).clamp(max=k)
    assert torch.equal(in_degree, expected_degree)

    # Row 0 is the neighbour j of target i: compare neighbour distances with brute force.
    reference = brute_force_knn_distances(pos, batch, k)
    for i in range(batch.numel()):
        nbrs = src[dst == i]
        got = (pos[nbrs] - pos[i]).norm(dim=-1).sort().values
        torch.testing.assert_close(got, reference[i])


def test_knn_edge_cases():
    batch = make_batch([1, 1])
    pos = torch.randn(2, 3)
    assert knn_edges(pos, batch, 3).shape == (2, 0)
    assert knn_edges(torch.randn(4, 3), make_batch([4]), 0).shape == (2, 0)
    with pytest.raises(ValueError):
        knn_edges(pos, batch, -1)


def naive_chain(sizes, atoms_per_residue, window):
    edges, start = set(), 0
    for n in sizes:
        for i in range(n):
            for j in range(n):
                if i != j and abs(i // atoms_per_residue - j // atoms_per_residue) <= window:
                    edges.add((start + j, start + i))
        start += n
    return edges


@pytest.mark.parametrize("sizes,apr,window", [([8, 12, 5], 4, 1), ([7], 2, 0), ([1, 9, 4], 3, 2), ([10], 1, 20)])
def test_chain_edges_match_naive(sizes, apr, window):
    edges = chain_edges(make_batch(sizes), apr, window)
    assert edge_set(edges) == naive_chain(sizes, apr, window)
    assert edges.shape[1] == len(edge_set(edges)), "duplicate edges"
    assert (edges[1].diff() >= 0).all(), "not grouped by target"


def test_union_edges_deduplicates_and_sorts_by_target():
    a = torch.tensor([[1, 2, 0], [0, 0, 2]])
    b = torch.tensor([[2, 1], [0, 2]])
    union = union_edges(a, b, num_nodes=3)
    assert union.t().tolist() == [[1, 0], [2, 0], [0, 2], [1, 2]]


def test_knn_chain_builder_features_encode_sequence_offset():
    sizes = [12, 8]
    batch = make_batch(sizes)
    pos = torch.randn(batch.numel(), 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    builder = GraphBuilder("knn+chain", knn_k=3, atoms_per_residue=2, chain_window=1, max_residue_offset=2)
    edges, features = builder(pos, batch)
    assert edge_set(edges) == edge_set(knn_edges(pos, batch, 3)) | naive_chain(sizes, 2, 1)
    assert features.shape == (edges.shape[1], 5) and features.dtype == torch.float64
    assert torch.equal(features.sum(dim=1), torch.ones(edges.shape[1], dtype=torch.float64))
    local = torch.cat([torch.arange(n) for n in sizes]) // 2
    offset = (local[edges[1]] - local[edges[0]]).clamp(-2, 2)
    assert torch.equal(features.argmax(dim=1) - 2, offset)
    assert (batch[edges[0]] == batch[edges[1]]).all(), "edge across graphs"


def test_builder_without_chain_has_no_edge_features():
    batch = make_batch([4, 3])
    edges, features = GraphBuilder("full")(torch.randn(7, 3), batch)
    assert features.shape == (edges.shape[1], 0)
    with pytest.raises(ValueError, match="graph must be one of"):
        GraphBuilder("radius")
    with pytest.raises(ValueError, match="knn\\+chain needs"):
        GraphBuilder("knn+chain", chain_window=-1)
