"""Per-graph reductions and pair enumeration over a batch in the PyG layout."""

import itertools

import torch

from molgen.graph_batch import graph_mean, graph_sizes, graph_sum, node_batch, pair_index, remove_mean

SIZES = [3, 1, 5, 4]


def batch_of(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def test_remove_mean_gives_zero_com():
    batch = batch_of([3, 7, 1])
    x = torch.randn(11, 3, dtype=torch.float64) + 5.0
    centred = remove_mean(x, batch)
    assert graph_mean(centred, batch).abs().max() < 1e-12
    # within each graph, differences are untouched
    torch.testing.assert_close(centred[1] - centred[0], x[1] - x[0])


def test_sums_means_and_sizes_per_graph():
    batch = batch_of(SIZES)
    x = torch.arange(13, dtype=torch.float64)[:, None].repeat(1, 2)
    assert torch.equal(node_batch(torch.tensor(SIZES)), batch)
    assert graph_sizes(batch).tolist() == SIZES and graph_sizes(batch, 6).tolist() == SIZES + [0, 0]
    assert graph_sum(x, batch)[:, 0].tolist() == [3.0, 3.0, 4 + 5 + 6 + 7 + 8, 9 + 10 + 11 + 12]
    assert graph_mean(x, batch, 5)[:, 1].tolist() == [1.0, 3.0, 6.0, 10.5, 0.0]  # an empty graph's mean is 0


def test_pair_index_lists_every_unordered_pair_once():
    batch = batch_of(SIZES)
    pairs = pair_index(batch)
    expected = []
    start = 0
    for n in SIZES:
        expected += list(itertools.combinations(range(start, start + n), 2))
        start += n
    assert pairs.T.tolist() == [list(p) for p in expected]
    assert pair_index(torch.zeros(0, dtype=torch.long)).shape == (2, 0)
