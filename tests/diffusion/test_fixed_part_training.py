"""Training with fixed parts (issue 25): random fixed parts of training graphs, a network that sees the known
part, and sampling that hands it the user's fixed part (molgen.diffusion.inpainting)."""

import pytest
import torch

from molgen.diffusion.inpainting import random_known_part
from molgen.diffusion.process import GraphState
from molgen.graph_batch import pair_index
from molgen.models.egnn_bonds import EGNNBondDenoiser
from tests.joint_helpers import tiny_joint_module, tiny_molecules
from tests.models.test_egnn_bonds import fixed_of, make_inputs


def chain_state(sizes=(6, 2, 9, 1)):
    """Path graphs (node i bonded to i + 1) of the given sizes."""
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pairs = pair_index(batch)
    edges = (pairs[1] == pairs[0] + 1).long()
    n = batch.numel()
    return GraphState(torch.randn(n, 3), torch.zeros(n, 0), batch, len(sizes), torch.zeros(n, 2).long(), pairs, edges)


def test_random_fixed_parts_leave_a_connected_region_of_each_chosen_graph_to_generate():
    state = chain_state()
    gen = torch.Generator().manual_seed(0)
    seen_sizes = set()
    for _ in range(200):
        known = random_known_part(state, 1.0, gen)
        start = 0
        for g, n in enumerate((6, 2, 9, 1)):
            free = (~known.mask[start : start + n]).nonzero().flatten().tolist()
            if n == 1:
                assert not known.mask[start]  # a single node is never fixed: nothing would be left
            else:
                assert 1 <= len(free) <= n - 1
                assert free == list(range(free[0], free[0] + len(free)))  # connected along the chain
                seen_sizes.add((n, len(free)))
            start += n
        pairs = state.pair_index
        assert torch.equal(known.pair_mask, known.mask[pairs[0]] & known.mask[pairs[1]])
    assert {k for n, k in seen_sizes if n == 9} == set(range(1, 9))  # every region size occurs
    assert random_known_part(state, 0.0, gen) is None
    first = random_known_part(state, 0.5, torch.Generator().manual_seed(3))
    again = random_known_part(state, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(first.mask, again.mask)


def test_half_the_random_fixed_parts_leave_every_free_class_node_to_generate():
    state = chain_state((8, 8, 8, 8))
    state = state.replace(node_classes=torch.stack([torch.arange(32) % 2, torch.zeros(32).long()], 1))  # class 0: "H"
    gen = torch.Generator().manual_seed(0)
    with_free, without_free = 0, 0
    for _ in range(100):
        known = random_known_part(state, 1.0, gen, free_classes=[0])
        for graph in range(4):
            nodes = slice(8 * graph, 8 * graph + 8)
            known_free = (known.mask[nodes] & (state.node_classes[nodes, 0] == 0)).any()
            with_free += int(known_free)
            without_free += int(known.mask[nodes].any() and not known_free)
    # Regions of 1-7 nodes of 8 nearly always leave a class-0 node known, unless it is freed.
    assert 150 < without_free < 250 and 150 < with_free < 250
    plain = random_known_part(state, 1.0, torch.Generator().manual_seed(1))
    assert (plain.mask & (state.node_classes[:, 0] == 0)).any()


def test_fixed_part_free_names_resolve_to_the_data_classes():
    from molgen.training.train import fixed_part_classes

    info = {"categorical": {"node": [{"name": "atom_type", "classes": ["H", "C", "N"]}]}}
    assert fixed_part_classes(["H"], info) == [0]
    assert fixed_part_classes([], {}) == []
    with pytest.raises(ValueError, match="not atom_type classes"):
        fixed_part_classes(["Cl"], info)
    with pytest.raises(ValueError, match="categorical node classes"):
        fixed_part_classes(["H"], {"categorical": None})


def test_unused_fixed_maps_leave_the_network_as_it_was():
    torch.manual_seed(2)
    plain = EGNNBondDenoiser(8, 4, hidden_dim=16, num_layers=2, edge_dim=8).double()
    torch.manual_seed(2)
    aware = EGNNBondDenoiser(8, 4, hidden_dim=16, num_layers=2, edge_dim=8, fixed_part_input=True).double()
    assert aware.load_state_dict(plain.state_dict(), strict=False).missing_keys == [
        "fixed_node_embedding.weight",
        "fixed_pair_embedding.weight",
    ]
    inputs = make_inputs()
    fixed = fixed_of(*inputs[:4], inputs[5])
    for got, want in zip(aware(*inputs, fixed=fixed), plain(*inputs)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    with torch.no_grad():
        aware.fixed_pair_embedding.weight.normal_()
    assert (aware(*inputs, fixed=fixed)[2] - plain(*inputs)[2]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="without fixed_part_input"):
        plain(*inputs, fixed=fixed)


def test_training_reaches_the_fixed_maps_only_when_asked():
    from torch_geometric.data import Batch, Data

    mols = tiny_molecules()
    data = []
    for g in range(3):
        nodes = mols.batch == g
        offset = int(torch.nonzero(nodes)[0])
        bonded = (mols.batch[mols.pair_index[0]] == g) & (mols.edge_classes > 0)
        data.append(
            Data(
                pos=mols.pos[nodes],
                node_classes=mols.node_classes[nodes],
                pair_class_index=mols.pair_index[:, bonded] - offset,
                pair_class=mols.edge_classes[bonded],
                num_nodes=int(nodes.sum()),
            )
        )
    batch = Batch.from_data_list(data)
    for rate, reached in ((1.0, True), (0.0, False)):
        module = tiny_joint_module(fixed_part_input=True)
        module.hparams.fixed_part_rate = rate
        module.training_step(batch, 0).backward()
        grad = module.denoiser.fixed_pair_embedding.weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == reached


class Spy(torch.nn.Module):
    """A denoiser that records the fixed part it is given, built aware of fixed parts or not."""

    def __init__(self, net, aware):
        super().__init__()
        self.net, self.fixed_part_input, self.seen = net, aware, []

    def forward(self, *inputs, **keywords):
        self.seen.append(keywords.get("fixed"))
        return self.net(*inputs, **keywords)


def test_the_sampler_hands_the_fixed_part_to_an_aware_network_only():
    from molgen.diffusion import make_sampler
    from molgen.diffusion.inpainting import KnownPart

    module = tiny_joint_module(fixed_part_input=True).eval()
    sizes = torch.tensor([4, 3])
    batch = torch.repeat_interleave(torch.arange(2), sizes)
    pairs = pair_index(batch)
    mask = torch.tensor([True, True, False, False, True, True, False])
    known = KnownPart(
        mask,
        torch.randn(7, 3, dtype=torch.float64),
        None,
        torch.ones(7, 2, dtype=torch.long),
        mask[pairs[0]] & mask[pairs[1]],
        torch.ones(pairs.shape[1], dtype=torch.long),
    )
    sampler = make_sampler("ddim", module.diffusion, 3)
    for aware in (True, False):
        spy = Spy(module.denoiser, aware)
        sampler.sample(spy, sizes, known=known, generator=torch.Generator().manual_seed(0))
        assert len(spy.seen) == sampler.network_calls
        if aware:
            fixed = spy.seen[0]
            assert torch.equal(fixed.node_mask, mask) and torch.equal(fixed.pair_mask, known.pair_mask)
            d2 = (known.pos[pairs[0]] - known.pos[pairs[1]]).square().sum(-1)
            torch.testing.assert_close(fixed.pair_d2[:, 0], (d2 * known.pair_mask).float())
        else:
            assert all(f is None for f in spy.seen)
