"""Tests for molgen.models.egnn_denoiser.EGNNDenoiser and the shared equivariance helper."""

import pytest
import torch
from torch import nn
from torch_geometric.utils import scatter

from molgen.diffusion.self_conditioning import GaussianEstimate
from molgen.models.egnn_denoiser import EGNNDenoiser
from tests.equivariance_utils import (
    assert_denoiser_equivariant,
    assert_finite_on_degenerate_graphs,
    assert_output_contract,
    random_rotation,
)

F = 6
SIZES = [5, 9, 3]
SMALL = {"hidden_dim": 16, "num_layers": 3}


def make_inputs(seed=0, sizes=SIZES, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = torch.randn(batch.numel(), 3, generator=gen, dtype=dtype)
    pos = pos - scatter(pos, batch, dim=0, reduce="mean")[batch]
    h = torch.randn(batch.numel(), F, generator=gen, dtype=dtype)
    t = torch.rand(len(sizes), generator=gen, dtype=dtype)
    return pos, h, t, batch


def make_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return EGNNDenoiser(in_node_dim=F, **{**SMALL, **kwargs})


def amplify_coordinate_updates(model, factor=300.0):
    """Scale up the tiny-gain coordinate heads so that eps_pos is O(0.1-1):
    otherwise an absolute tolerance of 1e-4 would barely test eps_pos."""
    with torch.no_grad():
        for layer in model.layers:
            layer.phi_x[-1].weight.mul_(factor)
    return model


CONFIGS = [
    {},
    {"attention": False, "tanh": False, "aggregation": "mean"},
    {"time_embedding": "sinusoidal", "normalization_factor": 10.0},
    {"graph": "knn", "knn_k": 4},
    {"distance_rbf": 8, "rbf_cutoff": 3.0, "norm_constant": 0.1},
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_denoiser_equivariance(config, dtype):
    model = amplify_coordinate_updates(make_model(**config))
    pos, h, t, batch = make_inputs()
    eps_pos, _ = model.to(dtype)(pos.to(dtype), h.to(dtype), t.to(dtype), batch)
    assert eps_pos.abs().max() > 1e-2, "coordinates barely move: the test would be vacuous"
    assert_denoiser_equivariant(model, pos, h, t, batch, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_chain_graph_denoiser_is_e3_equivariant(dtype):
    """Backbone graphs (kNN + sequence neighbours): E(3)-equivariant, and
    equivariant to reordering the chains of a batch (not their atoms)."""
    model = amplify_coordinate_updates(make_model(graph="knn+chain", knn_k=3, atoms_per_residue=2, chain_window=1))
    pos, h, t, batch = make_inputs(sizes=[8, 12, 6])
    assert_denoiser_equivariant(model, pos, h, t, batch, dtype, node_permutations=False)


def test_chain_graph_uses_sequence_order():
    """Swapping two residues' atoms changes the prediction beyond the permutation:
    the model sees the chain, not just a point cloud."""
    model = amplify_coordinate_updates(make_model(graph="knn+chain", knn_k=3, atoms_per_residue=2, chain_window=1))
    model = model.double()
    pos, h, t, batch = make_inputs(sizes=[8])
    perm = torch.tensor([0, 1, 6, 7, 4, 5, 2, 3])
    eps_pos, _ = model(pos, h, t, batch)
    out_pos, _ = model(pos[perm], h[perm], t, batch)
    assert not torch.allclose(out_pos, eps_pos[perm], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_shapes_dtype_and_zero_com(dtype):
    model = make_model().to(dtype)
    pos, h, t, batch = make_inputs(dtype=dtype)
    eps_pos, eps_h = assert_output_contract(model, pos, h, t, batch, dtype)
    assert eps_pos.abs().max() > 0, "eps_pos identically zero"


def test_output_depends_on_time():
    model = make_model().double()
    pos, h, t, batch = make_inputs()
    _, eps_h_a = model(pos, h, t, batch)
    _, eps_h_b = model(pos, h, 1.0 - t, batch)
    assert not torch.allclose(eps_h_a, eps_h_b)


@pytest.mark.parametrize("config", [{}, {"distance_rbf": 8}], ids=["default", "distance_rbf"])
def test_single_node_and_coincident_atoms_are_finite(config):
    model = make_model(**config)
    assert_finite_on_degenerate_graphs(model, F)


def test_radial_basis_resolves_short_distances():
    """In a coarse unit (nm), stretching one 0.15 bond by 2 % barely moves d², so the
    network without a radial basis hardly notices; with one, the output moves an order
    of magnitude more."""
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.15, 0.0, 0.0], [0.15, 0.4, 0.0]], dtype=torch.float64)
    stretched = pos.clone()
    stretched[2, 1] = 0.4 * 1.02
    batch = torch.zeros(3, dtype=torch.long)
    h = torch.eye(3, F, dtype=torch.float64)
    t = torch.tensor([0.1], dtype=torch.float64)

    def change(model):
        return float((model(stretched, h, t, batch)[1] - model(pos, h, t, batch)[1]).norm())

    plain, radial = make_model().double(), make_model(distance_rbf=16, rbf_cutoff=2.0).double()
    assert change(radial) > 10 * change(plain)


def test_deterministic_given_seed():
    pos, h, t, batch = make_inputs(dtype=torch.float32)
    out_a = make_model(seed=3)(pos, h, t, batch)
    out_b = make_model(seed=3)(pos, h, t, batch)
    for a, b in zip(out_a, out_b):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gradients_flow_to_all_parameters():
    model = make_model()
    pos, h, t, batch = make_inputs(dtype=torch.float32)
    eps_pos, eps_h = model(pos, h, t, batch)
    loss = (eps_pos - torch.randn_like(eps_pos)).square().mean() + (eps_h - torch.randn_like(eps_h)).square().mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
    assert model.num_parameters == sum(p.numel() for p in model.parameters())


def test_invalid_options_raise():
    with pytest.raises(ValueError):
        EGNNDenoiser(in_node_dim=F, time_embedding="learned")
    with pytest.raises(ValueError):
        EGNNDenoiser(in_node_dim=F, graph="radius")
    with pytest.raises(ValueError, match="num_basis"):
        EGNNDenoiser(in_node_dim=F, distance_rbf=1)


# --- The helper must be able to fail ------------------------------------------


class ShiftedDenoiser(nn.Module):
    """Adds a fixed vector to eps_pos: translation-invariant but not rotation-equivariant."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pos, h, t, batch):
        eps_pos, eps_h = self.model(pos, h, t, batch)
        return eps_pos + torch.tensor([1.0, 0.0, 0.0], dtype=pos.dtype), eps_h


class GraphMixingDenoiser(nn.Module):
    """eps_h depends on the absolute node index: not permutation-equivariant."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pos, h, t, batch):
        eps_pos, eps_h = self.model(pos, h, t, batch)
        return eps_pos, eps_h + torch.arange(h.shape[0], dtype=h.dtype)[:, None]


class ChiralToy(nn.Module):
    """SE(3)- but not E(3)-invariant: eps_h scaled by a per-graph pseudoscalar.

    s_g = (sum_i a_i x_i  x  sum_i b_i x_i) . sum_i c_i x_i over centred x, with
    a, b, c the first three features of h: rotation-, translation- and
    permutation-invariant, but flips sign under reflections.
    """

    def forward(self, pos, h, t, batch):
        centred = pos - scatter(pos, batch, dim=0, reduce="mean")[batch]
        u, v, w = (scatter(h[:, k : k + 1] * centred, batch, dim=0, reduce="sum") for k in range(3))
        s = (torch.linalg.cross(u, v) * w).sum(-1)
        return torch.zeros_like(pos), h * s[batch, None]


@pytest.mark.parametrize("broken", [ShiftedDenoiser, GraphMixingDenoiser])
def test_helper_detects_broken_models(broken):
    pos, h, t, batch = make_inputs()
    model = make_model()
    assert_denoiser_equivariant(model, pos, h, t, batch, torch.float64)  # sanity: the wrapped model passes
    with pytest.raises(AssertionError):
        assert_denoiser_equivariant(broken(model), pos, h, t, batch, torch.float64)


def test_helper_reflection_flag():
    pos, h, t, batch = make_inputs()
    assert_denoiser_equivariant(ChiralToy(), pos, h, t, batch, torch.float64, reflections=False)
    with pytest.raises(AssertionError, match="reflection"):
        assert_denoiser_equivariant(ChiralToy(), pos, h, t, batch, torch.float64, reflections=True)


def test_random_rotation_is_orthogonal():
    for reflect, det in [(False, 1.0), (True, -1.0)]:
        r = random_rotation(torch.float64, reflect=reflect)
        torch.testing.assert_close(r @ r.T, torch.eye(3, dtype=torch.float64))
        assert torch.linalg.det(r).item() == pytest.approx(det)


CHIRAL = {"graph": "knn+chain", "knn_k": 3, "atoms_per_residue": 1, "chain_window": 1, "self_conditioning": True}


def test_chirality_starts_as_the_network_without_it():
    """The torsion map starts at zero and is made last: same seed, same outputs, same other weights."""
    pos, h, t, batch = make_inputs(sizes=[8, 12, 6])
    plain, chiral = make_model(**CHIRAL).double(), make_model(**CHIRAL, chirality=True).double()
    own = chiral.state_dict()
    assert [k for k in own if k not in plain.state_dict()] == ["chirality_embedding.weight"]
    for estimate in (None, GaussianEstimate(pos + 0.1, None)):
        outputs = [model(pos, h, t, batch, self_condition=estimate) for model in (plain, chiral)]
        for a, b in zip(*outputs):
            torch.testing.assert_close(a, b)


def test_chirality_is_se3_but_not_e3_equivariant():
    """With a trained (non-zero) torsion map: rotations, translations and reordering chains are
    respected; the mirror image of a chain is not predicted as the mirror of the prediction."""
    model = amplify_coordinate_updates(make_model(**CHIRAL, chirality=True))
    with torch.no_grad():
        model.chirality_embedding.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    pos, h, t, batch = make_inputs(sizes=[8, 12, 6])
    assert_denoiser_equivariant(model, pos, h, t, batch, torch.float64, reflections=False, node_permutations=False)
    eps_pos, eps_h = model(pos, h, t, batch)
    mirrored_pos, mirrored_h = model(-pos, h, t, batch)
    assert not torch.allclose(mirrored_pos, -eps_pos, atol=1e-4)
    assert not torch.allclose(mirrored_h, eps_h, atol=1e-4)
    rotation = random_rotation(torch.float64, generator=torch.Generator().manual_seed(3))
    estimate = pos + 0.1 * torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    rotated, _ = model(pos @ rotation.T, h, t, batch, self_condition=GaussianEstimate(estimate @ rotation.T, None))
    expected = model(pos, h, t, batch, self_condition=GaussianEstimate(estimate, None))[0] @ rotation.T
    torch.testing.assert_close(rotated, expected)


def test_chirality_needs_residue_chains():
    with pytest.raises(ValueError, match="knn\\+chain and atoms_per_residue=1"):
        make_model(chirality=True)
    with pytest.raises(ValueError, match="atoms_per_residue=1"):
        make_model(graph="knn+chain", atoms_per_residue=4, chirality=True)


LABELLED = {"graph": "knn+chain", "knn_k": 3, "atoms_per_residue": 1, "chain_window": 1}


def _labelled_inputs():
    """Residue chains whose last three channels of ``h`` are one-hot labels (a few all-zero: not given)."""
    pos, h, t, batch = make_inputs(sizes=[8, 12, 6])
    gen = torch.Generator().manual_seed(5)
    labels = torch.nn.functional.one_hot(torch.randint(3, (len(pos),), generator=gen), 3).double()
    labels[torch.rand(len(pos), generator=gen) < 0.3] = 0.0
    return pos, torch.cat([h[:, : F - 3], labels], dim=-1), t, batch


@pytest.mark.parametrize("layers", [False, True], ids=["input", "every-layer"])
def test_node_labels_start_as_and_hidden_equal_the_network_without_them(layers):
    """A label-free network's weights load into a labelled one (only the label maps are new, zero at the
    start: same outputs); with every label hidden the labelled network is the label-free one, whatever
    the label maps' weights; the labels' own noise prediction is zero."""
    pos, h, t, batch = _labelled_inputs()
    plain = make_model(**LABELLED).double()
    plain.readout = nn.Linear(16, F - 3).double()  # the label-free network's features are F - 3 channels wide
    plain.embedding = nn.Linear(F - 3 + plain.time_embedding.dim, 16).double()
    labelled = EGNNDenoiser(in_node_dim=F, num_node_labels=3, condition_layers=layers, **SMALL, **LABELLED).double()
    missing, unexpected = labelled.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["label_embedding.weight", "label_layer_embedding.weight"][: 1 + layers] and not unexpected
    expected_pos, expected_h = plain(pos, h[:, : F - 3], t, batch)
    eps_pos, eps_h = labelled(pos, h, t, batch)
    torch.testing.assert_close(eps_pos, expected_pos)
    torch.testing.assert_close(eps_h, torch.cat([expected_h, torch.zeros_like(h[:, F - 3 :])], dim=-1))
    with torch.no_grad():
        for name, weight in labelled.named_parameters():
            if name.startswith("label_"):
                weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(1))
    hidden = torch.cat([h[:, : F - 3], torch.zeros_like(h[:, F - 3 :])], dim=-1)
    torch.testing.assert_close(labelled(pos, hidden, t, batch)[0], plain(pos, h[:, : F - 3], t, batch)[0])
    assert not torch.allclose(labelled(pos, h, t, batch)[0], expected_pos, atol=1e-4), "the labels are read"


def test_node_labels_keep_the_network_equivariant():
    model = EGNNDenoiser(in_node_dim=F, num_node_labels=3, condition_layers=True, **SMALL, **LABELLED)
    model = amplify_coordinate_updates(model)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name.startswith("label_"):
                weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    pos, h, t, batch = _labelled_inputs()
    assert_denoiser_equivariant(model, pos, h, t, batch, torch.float64, node_permutations=False)


def test_node_labels_leave_a_feature_channel():
    with pytest.raises(ValueError, match="num_node_labels must leave at least one feature channel"):
        EGNNDenoiser(in_node_dim=3, num_node_labels=3, **SMALL)
