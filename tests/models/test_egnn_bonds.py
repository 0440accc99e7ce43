"""EGNNBondDenoiser: E(3) and permutation equivariance (edges permuted with nodes), symmetric bond logits."""

import pytest
import torch

from molgen.diffusion.joint import pair_lookup
from molgen.diffusion.process import GraphState
from molgen.graph_batch import pair_index, remove_mean
from molgen.models import build_denoiser
from molgen.models.egnn_bonds import EGNNBondDenoiser
from tests.equivariance_utils import assert_o3_equivariant, permute_within_graphs, tolerance

F, KE = 8, 4
SIZES = [5, 9, 3, 1]


def make_inputs(seed=0, sizes=SIZES, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pairs = pair_index(batch)
    pos = remove_mean(torch.randn(batch.numel(), 3, generator=gen, dtype=dtype), batch)
    h = torch.nn.functional.one_hot(torch.randint(0, F, (batch.numel(),), generator=gen), F).to(dtype)
    e = torch.nn.functional.one_hot(torch.randint(0, KE, (pairs.shape[1],), generator=gen), KE).to(dtype)
    t = torch.rand(len(sizes), generator=gen, dtype=dtype)
    return pos, h, e, pairs, t, batch


def make_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = EGNNBondDenoiser(F, KE, **{"hidden_dim": 16, "num_layers": 3, "edge_dim": 8, **kwargs})
    with torch.no_grad():  # EDM's tiny coordinate-head gain would make the position checks vacuous
        for layer in model.layers:
            layer.phi_x[-1].weight.mul_(300.0)
    return model


def dense(edge_values, pairs, n):
    """[n, n, K] from per-pair values, mirrored."""
    out = edge_values.new_zeros(n, n, edge_values.shape[1])
    out[pairs[0], pairs[1]] = edge_values
    out[pairs[1], pairs[0]] = edge_values
    return out


CONFIGS = [{}, {"update_edges": False, "attention": False, "aggregation": "mean"}, {"time_embedding": "sinusoidal"}]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_equivariance_float64(config):
    model = make_model(**config).double().eval()
    pos, h, e, pairs, t, batch = make_inputs()
    tol = tolerance(torch.float64)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        eps, node_logits, edge_logits = model(pos, h, e, pairs, t, batch)
        assert eps.abs().max() > 1e-2, "coordinates barely move: the test would be vacuous"
        assert_o3_equivariant(
            model,
            (pos, h, e, pairs, t, batch),
            ["1o", f"{F}x0e", f"{KE}x0e", None, None, None],
            ["1o", f"{F}x0e", f"{KE}x0e"],
            torch.float64,
            names=("eps_pos", "node_logits", "edge_logits"),
        )
        shift = 3.0 * torch.randn(len(SIZES), 3, generator=gen, dtype=torch.float64)
        out = model(pos + shift[batch], h, e, pairs, t, batch)
        for got, want in zip(out, (eps, node_logits, edge_logits)):
            torch.testing.assert_close(got, want, **tol)

        # permute nodes within graphs and carry the pair states along
        perm = permute_within_graphs(batch, generator=gen)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(len(perm))
        # new node k is old node perm[k]; the pair (i, j) of the new layout is old pair (perm[i], perm[j])
        old_cols = pair_lookup(pairs, perm[pairs], len(perm))
        out = model(pos[perm], h[perm], e[old_cols], pairs, t, batch[perm])
        torch.testing.assert_close(out[0], eps[perm], **tol)
        torch.testing.assert_close(out[1], node_logits[perm], **tol)
        n = len(perm)
        torch.testing.assert_close(dense(out[2], pairs, n), dense(edge_logits, pairs, n)[perm][:, perm], **tol)


def test_bond_logits_do_not_depend_on_pair_orientation():
    model = make_model().double().eval()
    pos, h, e, pairs, t, batch = make_inputs(seed=2)
    with torch.no_grad():
        _, _, logits = model(pos, h, e, pairs, t, batch)
        _, _, flipped = model(pos, h, e, pairs.flip(0), t, batch)
    torch.testing.assert_close(flipped, logits, **tolerance(torch.float64))


def test_outputs_shapes_and_degenerate_graphs():
    model = make_model()
    pos, h, e, pairs, t, batch = make_inputs(dtype=torch.float32)
    pos.requires_grad_(True)
    eps, node_logits, edge_logits = model(pos, h, e, pairs, t, batch)
    assert eps.shape == pos.shape and node_logits.shape == h.shape and edge_logits.shape == e.shape
    torch.testing.assert_close(eps[-1], torch.zeros(3))  # the one-node graph
    # two coincident atoms stay finite
    pos2 = torch.zeros(2, 3, requires_grad=True)
    b2 = torch.zeros(2, dtype=torch.long)
    out = model(pos2, h[:2], e[:1], pair_index(b2), t[:1], b2)
    sum(o.square().sum() for o in out).backward()
    assert all(torch.isfinite(o).all() for o in out) and torch.isfinite(pos2.grad).all()


def test_registry_needs_the_joint_diffusion():
    model = build_denoiser({"name": "egnn_bonds", "hidden_dim": 8, "num_layers": 1}, in_node_dim=F, num_edge_classes=KE)
    assert isinstance(model, EGNNBondDenoiser)
    with pytest.raises(ValueError, match="generates bonds"):
        build_denoiser({"name": "egnn_bonds"}, in_node_dim=F)
    with pytest.raises(ValueError, match="bond model"):
        build_denoiser({"name": "egnn", "hidden_dim": 8, "num_layers": 1}, in_node_dim=F, num_edge_classes=KE)


def test_joint_loss_decreases_on_a_tiny_overfit_run():
    """Three molecules (methane, HCN, water) with their bonds: the joint loss at fixed noise falls by training."""
    from molgen.diffusion.joint import edge_classes_from_list
    from tests.joint_helpers import tiny_joint_module

    module = tiny_joint_module(seed=0)
    diffusion, denoiser = module.diffusion, module.denoiser
    pos = torch.tensor(
        [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63],
         [0, 0, -1.07], [0, 0, 0], [0, 0, 1.16],
         [0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]],
    )  # fmt: skip
    batch = torch.tensor([0] * 5 + [1] * 3 + [2] * 3)
    pos = remove_mean(pos, batch)
    atom = torch.tensor([1, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0])  # classes of H C N O F
    nodes = torch.stack([atom, torch.ones_like(atom)], 1)  # all neutral
    bond_list = torch.tensor([[0, 0, 0, 0, 5, 6, 8, 8], [1, 2, 3, 4, 6, 7, 9, 10]])
    pairs = pair_index(batch)
    edges = edge_classes_from_list(pairs, bond_list, torch.tensor([1, 1, 1, 1, 1, 3, 1, 1]), 11)
    clean = GraphState(pos, pos.new_zeros(11, 0), batch, 3, nodes, pairs, edges)

    def loss(generator=None, t=None):
        total, _ = diffusion.loss(denoiser, clean, t=t, generator=generator)
        return total.mean()

    def fixed_loss():
        with torch.no_grad():
            return sum(
                loss(torch.Generator().manual_seed(k), torch.full((3,), tk)) for k, tk in enumerate((0.2, 0.5, 0.8))
            )

    before = fixed_loss()
    optim = torch.optim.Adam(denoiser.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(100):
        optim.zero_grad()
        loss().backward()
        optim.step()
    after = fixed_loss()
    assert after < 0.6 * before, (before, after)
