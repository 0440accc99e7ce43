"""EGNNBondDenoiser: E(3) and permutation equivariance (edges permuted with nodes), symmetric bond logits,
self-conditioning on a joint estimate."""

import inspect

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from molgen.diffusion.conditioning import GraphCondition
from molgen.diffusion.inpainting import FixedInput
from molgen.diffusion.joint import pair_lookup
from molgen.diffusion.self_conditioning import JointEstimate
from molgen.graph_batch import pair_index, remove_mean
from molgen.models import build_denoiser
from molgen.models.egnn_bonds import EGNNBondDenoiser
from tests.equivariance_utils import assert_o3_equivariant, permute_within_graphs, random_rotation, tolerance
from tests.joint_helpers import tiny_joint_module, tiny_molecules

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
    """A small network; a self-conditioned one gets estimate maps that are no longer zero (as after training)."""
    torch.manual_seed(seed)
    model = EGNNBondDenoiser(F, KE, **{"hidden_dim": 16, "num_layers": 3, "edge_dim": 8, **kwargs})
    with torch.no_grad():  # EDM's tiny coordinate-head gain would make the position checks vacuous
        for layer in model.layers:
            layer.phi_x[-1].weight.mul_(300.0)
        if model.self_conditioning:
            model.estimate_node_embedding.weight.normal_(0.0, 0.5)
            model.estimate_pair_embedding.weight.normal_(0.0, 0.5)
        if model.condition_embedding is not None:
            model.condition_embedding.linear.weight.normal_(0.0, 0.5)
            if model.condition_embedding.layer_linear is not None:
                model.condition_embedding.layer_linear.weight.normal_(0.0, 0.5)
        if model.fixed_part_input:
            model.fixed_node_embedding.weight.normal_(0.0, 0.5)
            model.fixed_pair_embedding.weight.normal_(0.0, 0.5)
    return model


def estimate_of(pos, h, e, batch):
    """An estimate that is an equivariant function of the inputs: each centred position stretched by its
    length (rotation- and permutation-equivariant, translation-invariant), softmaxes of the one-hots."""
    centred = remove_mean(pos, batch)
    stretched = centred * (0.5 + 0.2 * centred.square().sum(dim=1, keepdim=True))
    return JointEstimate(stretched, (2.0 * h).softmax(dim=-1), (1.5 * e).softmax(dim=-1))


def condition_of(num_graphs, dtype=torch.float64):
    """Target properties of each graph, some of them dropped: an invariant input."""
    values = torch.linspace(-1.5, 2.0, 2 * num_graphs, dtype=dtype).reshape(num_graphs, 2)
    return GraphCondition(values, torch.tensor([[True, True], [True, False], [False, True], [False, False]]))


def fixed_of(pos, h, e, pairs, batch):
    """A fixed part that is an equivariant function of the inputs: the nodes whose first one-hot class is
    even, their classes, and the pairs among them with their classes and squared distances."""
    node_mask = h.argmax(dim=-1) % 2 == 0
    pair_mask = node_mask[pairs[0]] & node_mask[pairs[1]]
    d2 = (pos[pairs[0]] - pos[pairs[1]]).square().sum(dim=-1, keepdim=True)
    return FixedInput(node_mask, h * node_mask[:, None], pair_mask, e * pair_mask[:, None], d2 * pair_mask[:, None])


class WithExtras(torch.nn.Module):
    """The model called with :func:`estimate_of` its inputs (self-conditioned), :func:`condition_of` its
    graphs (conditional) and :func:`fixed_of` its inputs (trained with fixed parts)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pos, h, e, pairs, t, batch):
        extras = {}
        if self.model.self_conditioning:
            extras["self_condition"] = estimate_of(pos, h, e, batch)
        if self.model.condition_embedding is not None:
            extras["condition"] = condition_of(t.shape[0], pos.dtype)
        if self.model.fixed_part_input:
            extras["fixed"] = fixed_of(pos, h, e, pairs, batch)
        return self.model(pos, h, e, pairs, t, batch, **extras)


def dense(edge_values, pairs, n):
    """[n, n, K] from per-pair values, mirrored."""
    out = edge_values.new_zeros(n, n, edge_values.shape[1])
    out[pairs[0], pairs[1]] = edge_values
    out[pairs[1], pairs[0]] = edge_values
    return out


CONFIGS = [
    {},
    {"update_edges": False, "attention": False, "aggregation": "mean"},
    {"time_embedding": "sinusoidal"},
    {"self_conditioning": True},
    {"self_conditioning": True, "update_edges": False},
    {"num_conditions": 2},
    {"num_conditions": 2, "self_conditioning": True},
    {"num_conditions": 2, "condition_layers": True},
    {"fixed_part_input": True},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_equivariance_float64(config):
    """Rotations, reflections, translations and permutations (a self-conditioned network's estimate moving
    with its inputs; a conditional network's targets staying with their graphs)."""
    model = WithExtras(make_model(**config).double().eval())
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


def test_self_conditioning_off_is_the_plain_network_and_on_starts_as_it():
    """Without the option the network has exactly its former weights; with it, the same seed gives the same
    shared weights plus two zero maps, so any estimate leaves the outputs as the plain network's."""
    plain = make_model(seed=4)
    assert not plain.self_conditioning
    torch.manual_seed(4)
    fresh = EGNNBondDenoiser(F, KE, hidden_dim=16, num_layers=3, edge_dim=8, self_conditioning=True)
    new = fresh.state_dict().keys() - plain.state_dict().keys()
    assert new == {"estimate_node_embedding.weight", "estimate_pair_embedding.weight"}
    assert not any(fresh.state_dict()[k].any() for k in new)
    fresh.load_state_dict(plain.state_dict(), strict=False)
    pos, h, e, pairs, t, batch = make_inputs(dtype=torch.float32)
    expected = plain(pos, h, e, pairs, t, batch)
    for estimate in (None, estimate_of(pos, h, e, batch)):
        for got, want in zip(fresh(pos, h, e, pairs, t, batch, self_condition=estimate), expected):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(ValueError, match="without self_conditioning"):
        plain(pos, h, e, pairs, t, batch, self_condition=estimate_of(pos, h, e, batch))


def test_the_estimate_changes_every_output_through_its_geometry_and_classes():
    model = make_model(self_conditioning=True).double().eval()
    pos, h, e, pairs, t, batch = make_inputs(seed=3)
    estimate = estimate_of(pos, h, e, batch)
    with torch.no_grad():
        base = model(pos, h, e, pairs, t, batch, self_condition=estimate)
        without = model(pos, h, e, pairs, t, batch)
        assert all((a - b).abs().max() > 1e-3 for a, b in zip(base, without))
        # each part of the estimate matters on its own
        gen = torch.Generator().manual_seed(1)
        for changed in (
            estimate._replace(pos=estimate.pos * torch.tensor([1.0, 1.0, 1.5], dtype=torch.float64)),
            estimate._replace(node_probs=estimate.node_probs.flip(0)),
            estimate._replace(edge_probs=estimate.edge_probs.roll(1, dims=-1)),
        ):
            out = model(pos, h, e, pairs, t, batch, self_condition=changed)
            assert all((a - b).abs().max() > 1e-4 for a, b in zip(out, base))
        # its internal geometry is read, not its frame: moving it rigidly changes nothing
        moved = estimate._replace(pos=estimate.pos @ random_rotation(generator=gen).T + 1.0)
        for a, b in zip(model(pos, h, e, pairs, t, batch, self_condition=moved), base):
            torch.testing.assert_close(a, b, **tolerance(torch.float64))


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


@pytest.mark.parametrize("override", [[], ["model.self_conditioning=true"]], ids=["default", "self-conditioned"])
def test_config_file_builds_the_model(override):
    # conf/model/egnn_bonds.yaml as training composes it (with its schema); self-conditioning is off by default
    with initialize_config_module(config_module="molgen.conf", version_base="1.3"):
        config = OmegaConf.to_container(compose(config_name="config", overrides=["model=egnn_bonds", *override]).model)
    model = build_denoiser(config, in_node_dim=F, num_edge_classes=KE)
    assert set(config) - {"name"} <= set(inspect.signature(EGNNBondDenoiser).parameters)
    assert model.self_conditioning == bool(override)


def test_registry_needs_the_joint_diffusion():
    model = build_denoiser({"name": "egnn_bonds", "hidden_dim": 8, "num_layers": 1}, in_node_dim=F, num_edge_classes=KE)
    assert isinstance(model, EGNNBondDenoiser)
    with pytest.raises(ValueError, match="generates bonds"):
        build_denoiser({"name": "egnn_bonds"}, in_node_dim=F)
    with pytest.raises(ValueError, match="bond model"):
        build_denoiser({"name": "egnn", "hidden_dim": 8, "num_layers": 1}, in_node_dim=F, num_edge_classes=KE)


@pytest.mark.parametrize("self_conditioning", [False, True], ids=["plain", "self-conditioned"])
def test_joint_loss_decreases_on_a_tiny_overfit_run(self_conditioning):
    """Three molecules (methane, HCN, water) with their bonds: the joint loss at fixed noise falls by training
    (a self-conditioned model's loss includes its own estimate on about half of the batches)."""
    module = tiny_joint_module(seed=0, self_conditioning=self_conditioning)
    diffusion, denoiser = module.diffusion, module.denoiser
    clean = tiny_molecules()

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
    if self_conditioning:  # the estimate maps start at zero and were trained
        assert denoiser.estimate_node_embedding.weight.any() and denoiser.estimate_pair_embedding.weight.any()
