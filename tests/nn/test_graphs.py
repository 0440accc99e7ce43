"""Tests for molgen.nn.graphs (plain-torch graph construction)."""

import pytest
import torch

from molgen.nn.graphs import fully_connected_edges, knn_edges


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
