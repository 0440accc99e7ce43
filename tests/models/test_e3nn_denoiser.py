"""Tests for molgen.models.e3nn_denoiser.E3NNDenoiser and molgen.nn.e3nn_conv."""

import inspect
from contextlib import contextmanager

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from molgen.models import build_denoiser
from molgen.models.e3nn_denoiser import E3NNDenoiser
from tests.equivariance_utils import (
    assert_denoiser_equivariant,
    assert_finite_on_degenerate_graphs,
    assert_output_contract,
)

F = 6
SIZES = [5, 9, 3]
# normalization_factor ~ neighbours per node in the small test graphs.
TINY = {
    "hidden_scalars": 8,
    "hidden_vectors": 4,
    "hidden_l2": 2,
    "num_layers": 2,
    "num_radial": 8,
    "normalization_factor": 4.0,
}


@contextmanager
def default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def make_model(seed=0, dtype=torch.float32, **kwargs):
    """Build under ``dtype`` as default: e3nn stores its Clebsch-Gordan
    coefficients in the default dtype at construction, so a float32-built
    model cast to float64 keeps ~1e-9 equivariance errors (float32-rounded
    coefficients), above the float64 tolerance."""
    torch.manual_seed(seed)
    with default_dtype(dtype):
        return E3NNDenoiser(in_node_dim=F, **{**TINY, **kwargs})


def make_inputs(seed=0, sizes=SIZES, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = 1.5 * torch.randn(batch.numel(), 3, generator=gen, dtype=dtype)
    h = torch.randn(batch.numel(), F, generator=gen, dtype=dtype)
    t = torch.rand(len(sizes), generator=gen, dtype=dtype)
    return pos, h, t, batch


CONFIGS = [
    {},
    {"parity": False},
    {"graph": "knn", "knn_k": 4},
    {"cutoff": 3.0},
    {"lmax": 1, "hidden_l2": 0},
    {"lmax": 3, "parity": False},
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_denoiser_equivariance(config, dtype):
    model = make_model(dtype=dtype, **config)
    pos, h, t, batch = make_inputs()
    eps_pos, _ = model(pos.to(dtype), h.to(dtype), t.to(dtype), batch)
    assert eps_pos.abs().max() > 1e-2, "coordinates barely predicted: the test would be vacuous"
    reflections = config.get("parity", True)
    assert_denoiser_equivariant(model, pos, h, t, batch, dtype, reflections=reflections)


@pytest.mark.parametrize("cutoff", [None, 3.0])
def test_chain_graph_denoiser_is_e3_equivariant(cutoff):
    """kNN + sequence-neighbour graphs (backbones): E(3)-equivariant and
    equivariant to reordering whole chains; the sequence features reach the
    radial MLP (also after the cutoff filter)."""
    model = make_model(
        dtype=torch.float64, graph="knn+chain", knn_k=3, atoms_per_residue=2, chain_window=1, cutoff=cutoff
    )
    pos, h, t, batch = make_inputs()
    assert_denoiser_equivariant(model, pos, h, t, batch, torch.float64, node_permutations=False)


def test_without_parity_is_not_reflection_equivariant():
    """parity=False admits chiral (cross-product) paths, so the reflection check
    is skipped for a reason, not to hide a bug."""
    model = make_model(dtype=torch.float64, parity=False)
    with pytest.raises(AssertionError, match="reflection"):
        assert_denoiser_equivariant(model, *make_inputs(), torch.float64, reflections=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_shapes_dtype_and_zero_com(dtype):
    model = make_model(dtype=dtype)
    pos, h, t, batch = make_inputs(dtype=dtype)
    eps_pos, eps_h = assert_output_contract(model, pos, h, t, batch, dtype)


def test_output_depends_on_time():
    model = make_model()
    pos, h, t, batch = make_inputs(dtype=torch.float32)
    _, eps_h_a = model(pos, h, t, batch)
    _, eps_h_b = model(pos, h, 1.0 - t, batch)
    assert not torch.allclose(eps_h_a, eps_h_b)


@pytest.mark.parametrize("config", [{}, {"cutoff": 3.0}], ids=["full", "cutoff"])
def test_single_node_and_coincident_atoms_are_finite(config):
    model = make_model(**config)
    assert_finite_on_degenerate_graphs(model, F)


def test_gradients_flow_to_all_parameters():
    model = make_model()
    pos, h, t, batch = make_inputs(dtype=torch.float32)
    pos.requires_grad_(True)
    eps_pos, eps_h = model(pos, h, t, batch)
    loss = (eps_pos - torch.randn_like(eps_pos)).square().mean() + (eps_h - torch.randn_like(eps_h)).square().mean()
    loss.backward()
    assert torch.isfinite(pos.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
    assert model.num_parameters == sum(p.numel() for p in model.parameters())


def test_cutoff_is_smooth():
    """A pair crossing the cutoff changes the outputs continuously (envelope -> 0)."""
    model = make_model(dtype=torch.float64, cutoff=2.0)
    batch = torch.zeros(3, dtype=torch.long)
    h = torch.randn(3, F, dtype=torch.float64)
    t = torch.tensor([0.5], dtype=torch.float64)
    outs = []
    for d in (2.0 - 1e-6, 2.0 + 1e-6):
        pos = torch.tensor([[0.0, 0.0, 0.0], [d, 0.0, 0.0], [0.3, 1.2, 0.0]], dtype=torch.float64)
        outs.append(model(pos, h, t, batch))
    for before, after in zip(*outs):
        torch.testing.assert_close(before, after, atol=1e-9, rtol=0)


def test_knn_covering_each_graph_matches_full():
    pos, h, t, batch = make_inputs(dtype=torch.float64)
    full = make_model(dtype=torch.float64)
    knn = make_model(dtype=torch.float64, graph="knn", knn_k=max(SIZES) - 1)
    for a, b in zip(full(pos, h, t, batch), knn(pos, h, t, batch)):
        torch.testing.assert_close(a, b)  # same weights (same seed), same edge set


def test_config_file_builds_the_model():
    # conf/model/e3nn.yaml as training composes it (with its schema)
    with initialize_config_module(config_module="molgen.conf", version_base="1.3"):
        config = OmegaConf.to_container(compose(config_name="config", overrides=["model=e3nn"]).model)
    model = build_denoiser(config, in_node_dim=F)
    assert isinstance(model, E3NNDenoiser)
    assert set(config) - {"name"} == set(inspect.signature(E3NNDenoiser).parameters) - {"in_node_dim"}


@pytest.mark.parametrize(
    "kwargs",
    [{"time_embedding": "sinusoidal"}, {"graph": "radius"}, {"lmax": 1}, {"hidden_vectors": 0}, {"cutoff": 0.0}],
    ids=str,
)
def test_invalid_options_raise(kwargs):
    with pytest.raises(ValueError):
        E3NNDenoiser(in_node_dim=F, **kwargs)
