"""Joint diffusion: pairs, loss, and the sampler loop with an oracle denoiser for every position sampler."""

import pytest
import torch

from molgen.diffusion.categorical import CategoricalDiffusion
from molgen.diffusion.joint import JointDiffusion, edge_classes_from_list, pair_lookup
from molgen.diffusion.process import GraphState
from molgen.diffusion.samplers import make_sampler
from molgen.diffusion.schedules import CosineSchedule, PolynomialSchedule
from molgen.graph_batch import graph_mean, pair_index, remove_mean

SIZES = [3, 1, 5, 4]


def batch_of(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def make_joint(weights=None):
    cos = CosineSchedule()
    return JointDiffusion(
        PolynomialSchedule(),
        {
            "a": CategoricalDiffusion([0.5, 0.3, 0.2], cos),
            "b": CategoricalDiffusion([0.9, 0.1], cos),
        },
        ("e", CategoricalDiffusion([0.7, 0.2, 0.1], cos, power=1.5)),
        weights,
    )


def test_pair_lookup_and_edge_classes():
    batch = batch_of(SIZES)
    pairs = pair_index(batch)
    query = torch.tensor([[5, 0, 8], [4, 2, 7]])  # (4,5) reversed, (0,2), (7,8) reversed
    cols = pair_lookup(pairs, query, batch.numel())
    assert pairs[:, cols].T.tolist() == [[4, 5], [0, 2], [7, 8]]
    classes = edge_classes_from_list(pairs, query, torch.tensor([1, 2, 1]), batch.numel(), num_classes=3)
    assert classes.sum().item() == 4 and classes[cols].tolist() == [1, 2, 1]
    with pytest.raises(ValueError, match="not a pair"):
        pair_lookup(pairs, torch.tensor([[0], [3]]), batch.numel())  # nodes of different graphs
    with pytest.raises(ValueError, match="not a pair"):
        pair_lookup(pairs, torch.tensor([[2], [2]]), batch.numel())
    with pytest.raises(ValueError, match="edge classes"):
        edge_classes_from_list(pairs, query, torch.tensor([1, 5, 1]), batch.numel(), num_classes=3)


def _state(seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch = batch_of(SIZES)
    pairs = pair_index(batch)
    pos = remove_mean(torch.randn(batch.numel(), 3, generator=gen, dtype=torch.float64), batch)
    nodes = torch.stack(
        [torch.randint(0, 3, (batch.numel(),), generator=gen), torch.randint(0, 2, (batch.numel(),), generator=gen)], 1
    )
    edges = torch.randint(0, 3, (pairs.shape[1],), generator=gen)
    return pos, nodes, pairs, edges, batch


def test_loss_components_and_weights():
    pos, nodes, pairs, edges, batch = _state()
    calls = {}

    def denoiser(pos_t, node_f, edge_f, pair_idx, t, batch_):
        calls.update(node_f=node_f, edge_f=edge_f)
        return (
            torch.zeros_like(pos_t),
            torch.zeros(len(pos_t), 5, dtype=pos_t.dtype),
            torch.zeros(len(edge_f), 3, dtype=pos_t.dtype),
        )

    t = torch.tensor([0.3, 0.5, 0.7, 0.9], dtype=torch.float64)
    plain = make_joint()
    empty = pos.new_zeros(len(pos), 0)
    clean = GraphState(pos, empty, batch, 4, nodes, pairs, edges)
    total, parts = plain.loss(denoiser, clean, t=t, generator=torch.Generator().manual_seed(0))
    assert set(parts) == {"positions", "a", "b", "e"}
    # uniform logits: cross-entropy log K for every item; a graph without pairs contributes 0
    torch.testing.assert_close(parts["a"], torch.full((4,), torch.log(torch.tensor(3.0)).item(), dtype=torch.float64))
    torch.testing.assert_close(parts["b"], torch.full((4,), torch.log(torch.tensor(2.0)).item(), dtype=torch.float64))
    assert parts["e"][1] == 0 and parts["e"][0] == pytest.approx(torch.log(torch.tensor(3.0)).item())
    # zero eps prediction: squared error = ||eps||^2 per dof, ~1 on average; 1-node graph has no dof
    assert parts["positions"][1] == 0
    torch.testing.assert_close(total, sum(parts.values()))
    # inputs are one-hots of the noised classes
    assert calls["node_f"].shape == (len(pos), 5) and (calls["node_f"].sum(1) == 2).all()
    assert calls["edge_f"].shape == (pairs.shape[1], 3) and (calls["edge_f"].sum(1) == 1).all()
    weighted = make_joint({"positions": 3.0, "a": 0.4, "e": 2.0})
    total_w, parts_w = weighted.loss(denoiser, clean, t=t, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(total_w, 3 * parts_w["positions"] + 0.4 * parts_w["a"] + parts_w["b"] + 2 * parts_w["e"])
    with pytest.raises(ValueError, match="unknown channels"):
        make_joint({"bonds": 1.0})
    with pytest.raises(ValueError, match="node_classes"):
        plain.loss(denoiser, clean.replace(node_classes=nodes[:, :1]))
    with pytest.raises(ValueError, match="outside"):
        plain.loss(denoiser, clean.replace(node_classes=nodes + 2))


def _oracle(diffusion, x0_pos, x0_nodes, x0_edges):
    """Knows the clean state: exact position noise and confident clean-class logits."""
    schedule = diffusion.schedule

    def denoiser(pos, node_f, edge_f, pairs, t, batch):
        a, s = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
        eps = (pos - a * x0_pos.to(pos.dtype)) / s
        node_logits = torch.cat(
            [40.0 * torch.nn.functional.one_hot(x0_nodes[:, c], k) for c, k in enumerate(diffusion.node_sizes)], 1
        ).to(pos.dtype)
        edge_logits = 40.0 * torch.nn.functional.one_hot(x0_edges, diffusion.num_edge_classes).to(pos.dtype)
        return eps, node_logits, edge_logits

    return denoiser


@pytest.mark.parametrize(
    "sampler, class_temperature", [("ddpm", 1.0), ("ddim", 1.0), ("dpm-solver", 1.0), ("dpm-solver", 0.5)]
)
def test_oracle_sampler_recovers_the_data(sampler, class_temperature):
    diffusion = make_joint()
    pos, nodes, pairs, edges, batch = _state(seed=1)
    reverse = make_sampler(sampler, diffusion, 30, class_temperature=class_temperature)
    assert reverse.class_temperature == class_temperature
    out = reverse.sample(
        _oracle(diffusion, pos, nodes, edges),
        torch.tensor(SIZES),
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
    )
    assert torch.equal(out.pair_index, pairs) and torch.equal(out.batch, batch)
    assert torch.equal(out.node_classes, nodes) and torch.equal(out.edge_classes, edges)
    torch.testing.assert_close(out.pos, pos, atol=1e-3, rtol=0)
    assert graph_mean(out.pos, batch).abs().max() < 1e-10


def test_sampler_is_reproducible_and_bonds_symmetric():
    diffusion = make_joint()
    gen_args = dict(num_nodes=torch.tensor([4, 6]), dtype=torch.float64)

    def random_denoiser(pos, node_f, edge_f, pairs, t, batch):
        g = torch.Generator().manual_seed(int(1000 * t[0]))
        return (
            remove_mean(torch.randn(pos.shape, generator=g, dtype=pos.dtype), batch),
            torch.randn(len(pos), 5, generator=g, dtype=pos.dtype),
            torch.randn(pairs.shape[1], 3, generator=g, dtype=pos.dtype),
        )

    reverse = make_sampler("ddpm", diffusion, 8)
    a = reverse.sample(random_denoiser, generator=torch.Generator().manual_seed(7), **gen_args)
    b = reverse.sample(random_denoiser, generator=torch.Generator().manual_seed(7), **gen_args)
    c = reverse.sample(random_denoiser, generator=torch.Generator().manual_seed(8), **gen_args)
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("pos", "node_classes", "edge_classes", "batch"))
    assert not torch.equal(a.edge_classes, c.edge_classes) or not torch.equal(a.pos, c.pos)
    dense = torch.zeros(10, 10, dtype=torch.long)
    dense[a.pair_index[0], a.pair_index[1]] = a.edge_classes
    dense = dense + dense.T
    assert torch.equal(dense, dense.T) and (dense.diagonal() == 0).all()
    assert (dense[:4, 4:] == 0).all()  # no pairs across graphs


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_class_temperature_must_be_positive(bad):
    with pytest.raises(ValueError, match="class_temperature must be a positive number"):
        make_sampler("ddpm", make_joint(), 5, class_temperature=bad)


def test_refinement_moves_positions_and_keeps_the_drawn_classes():
    diffusion = make_joint()
    pos, nodes, pairs, edges, batch = _state(seed=1)
    oracle = _oracle(diffusion, pos, nodes, edges)
    times = []

    def counting(*args):
        times.append(args[4][0].item())
        return oracle(*args)

    def run(**options):
        times.clear()
        reverse = make_sampler("ddpm", diffusion, 6, **options)
        return reverse.sample(
            counting, torch.tensor(SIZES), generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )

    plain = run()
    assert len(times) == 7
    refined = run(refine_steps=3, refine_time=0.05)
    assert times[7:] == [pytest.approx(0.05)] * 3
    assert torch.equal(refined.node_classes, plain.node_classes) and torch.equal(
        refined.edge_classes, plain.edge_classes
    )
    # the oracle knows the clean positions: refining keeps them (to float precision) and the CoM at zero
    torch.testing.assert_close(refined.pos, pos, atol=1e-9, rtol=0)
    assert graph_mean(refined.pos, batch).abs().max() < 1e-10
