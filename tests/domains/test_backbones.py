"""Tests for molgen.domains.backbones (backbone sizes, conditioning, decoding) through
molgen.sampling.generate with a tiny untrained model."""

import numpy as np
import pytest
import torch

from molgen.checkpoint import load_checkpoint
from molgen.domains.backbones import backbone_features, parse_length
from molgen.sampling import SamplingConfig, generate, merge_shards
from tests.helpers import save_tiny_ca_checkpoint, save_tiny_checkpoint


@pytest.fixture
def model(tmp_path):
    return load_checkpoint(save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbones"))


def test_parse_length():
    assert parse_length("100") == (100, 100)
    assert parse_length(" 60-120 ") == (60, 120)
    for bad in ["", "abc", "120-60", "1", "5-", "0-10", "10000"]:
        with pytest.raises(ValueError, match="length"):
            parse_length(bad)


def test_backbone_features_are_residue_major_one_hot():
    h = backbone_features(torch.tensor([2, 1]))
    assert h.shape == (12, 4)
    assert torch.equal(h.argmax(dim=1), torch.tensor([0, 1, 2, 3] * 3))


def test_generates_centred_backbones_of_requested_lengths(model):
    assert model.domain.name == "backbones"
    backbones = generate(model, 5, SamplingConfig(steps=4), length=(7, 9), batch_size=2, progress=False)
    assert len(backbones) == 5
    assert all(b.shape[1:] == (4, 3) and 7 <= len(b) <= 9 for b in backbones)
    assert len({len(b) for b in backbones}) > 1, "lengths are not drawn from the range"
    for b in backbones:
        assert b.dtype == np.float64 and np.isfinite(b).all()
        np.testing.assert_allclose(b.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-5 * np.abs(b).max())


def test_lengths_from_histogram_and_seeding(model):
    sampling = SamplingConfig(steps=3)
    a = generate(model, 4, sampling, batch_size=3, seed=1, progress=False)
    b = generate(model, 4, sampling, batch_size=3, seed=1, progress=False)
    c = generate(model, 4, sampling, batch_size=3, seed=2, progress=False)
    assert {len(x) for x in a} <= {6, 8}, "lengths outside the checkpoint's histogram"
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and np.allclose(x, y) for x, y in zip(a, c))


def test_sharded_generation_matches_single_process(model):
    kwargs = dict(length=(6, 8), batch_size=2, seed=4, progress=False)
    sampling = SamplingConfig(steps=3)
    whole = generate(model, 5, sampling, **kwargs)
    shards = [generate(model, 5, sampling, shard=(r, 2), **kwargs) for r in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(whole, merge_shards(shards, batch_size=2)))


def test_rejects_backbone_requests_of_molecule_checkpoints_and_bad_arguments(model, tmp_path):
    molecules = load_checkpoint(save_tiny_checkpoint(tmp_path / "mol.ckpt"))
    assert molecules.domain.name == "molecules"
    # the model's domain decides what is generated: a molecule model has no chain length to ask for
    with pytest.raises(ValueError, match="generates molecules, sized by num_atoms; not by length"):
        generate(molecules, 2, SamplingConfig(steps=2), length=(5, 5), progress=False)
    with pytest.raises(ValueError, match="generates backbones, sized by length; not by num_atoms"):
        model.sample(1, num_atoms=5)
    with pytest.raises(ValueError, match="num_samples"):
        generate(model, 0, SamplingConfig(steps=2), progress=False)


def test_a_residue_level_model_generates_ca_traces_and_decodes_full_backbones(tmp_path):
    """atom_types ["CA"]: one node per residue, N, C and O rebuilt from the trace, which stays as generated."""
    from molgen.dataset_info import BackboneInfo
    from molgen.proteins.ca_trace import backbone_from_ca

    model = load_checkpoint(save_tiny_ca_checkpoint(tmp_path / "ca.ckpt"))
    assert model.domain.nodes_per_unit(model.info) == 1
    sizes = model.domain.sample_sizes(model.info, 3, seed=0, length=(7, 9))
    assert ((7 <= sizes) & (sizes <= 9)).all()
    backbones = generate(model, 3, SamplingConfig(steps=3), length=(7, 9), progress=False)
    assert [b.shape for b in backbones] == [(int(n), 4, 3) for n in sizes]
    for b in backbones:
        np.testing.assert_allclose(b, backbone_from_ca(b[:, 1]))
    with pytest.raises(ValueError, match="none of"):
        model.domain.sample_sizes(BackboneInfo("tiny", 2, [0, 0, 0, 0, 1], ["N", "CA"], 1.0), 2, seed=0)


def test_a_model_with_vector_features_generates_its_atoms(tmp_path):
    """node_vectors: one node per residue whose N, C and O come from the generated offsets (not rebuilt)."""
    from molgen.dataset_info import BackboneInfo
    from molgen.training.module import DiffusionModule
    from tests.helpers import DIFFUSION

    torch.manual_seed(0)
    info = BackboneInfo("tiny", 9, [0] * 6 + [3, 0, 2], ["CA"], 1.0, node_vectors=["N", "C", "O"], vector_scale=2.0)
    model_config = {"name": "egnn_vectors", "hidden_dim": 16, "num_layers": 2, "graph": "knn+chain", "knn_k": 4}
    module = DiffusionModule(model_config, DIFFUSION, {"lr": 1e-3}, info.to_dict())
    path = tmp_path / "vectors.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    model = load_checkpoint(path)
    backbones = generate(model, 3, SamplingConfig(steps=3), length=(7, 9), progress=False)
    assert all(b.shape[1:] == (4, 3) and 7 <= len(b) <= 9 and np.isfinite(b).all() for b in backbones)


def test_an_internal_coordinate_model_generates_angles_and_decodes_full_backbones(tmp_path):
    """internal_coordinates: no node coordinates (pos [N, 0]); each chain's features become its CA trace (3.80 Å
    steps, the generated angles), then N, C and O rebuilt from it; a motif, which lives in space, is refused."""
    from molgen.proteins.ca_trace import backbone_from_ca
    from molgen.proteins.internal_coordinates import angles_from_features, ca_internal_coordinates
    from molgen.proteins.motif import Motif
    from tests.helpers import save_tiny_internal_checkpoint

    model = load_checkpoint(save_tiny_internal_checkpoint(tmp_path / "ic.ckpt"))
    assert model.info.position_dims == 0 and model.domain.nodes_per_unit(model.info) == 1
    sampling = SamplingConfig(steps=3)
    backbones = generate(model, 3, sampling, length=(7, 9), seed=1, progress=False)
    sizes = model.domain.sample_sizes(model.info, 3, seed=1, length=(7, 9))
    assert [b.shape for b in backbones] == [(int(n), 4, 3) for n in sizes]
    for b in backbones:
        np.testing.assert_allclose(np.linalg.norm(np.diff(b[:, 1], axis=0), axis=1), 3.80)
        np.testing.assert_allclose(b, backbone_from_ca(b[:, 1]))
    # the decoded angles are the generated ones: decode a state by hand
    state = sampling.make(model.diffusion).sample(
        model.denoiser, torch.tensor([8]), 3, generator=torch.Generator().manual_seed(0), position_dims=0
    )
    assert state.pos.shape == (8, 0)
    (backbone,) = model.domain.decode(model.info, state)
    theta, tau = angles_from_features(state.h.double().numpy())
    measured_theta, measured_tau = ca_internal_coordinates(backbone[:, 1])
    np.testing.assert_allclose(measured_theta[1:-1], theta[1:-1], atol=1e-9)
    np.testing.assert_allclose(np.cos(measured_tau[1:-2] - tau[1:-2]), 1.0, atol=1e-9)
    motif = Motif(segments=(np.zeros((3, 4, 3)),), labels=("A1-3",))
    with pytest.raises(ValueError, match="internal coordinates"):
        generate(model, 1, sampling, fixed=motif, length=(8, 8), progress=False)


def test_clash_repair_regenerates_the_angles_around_a_clash_and_keeps_the_rest(tmp_path):
    """A chain that closes on itself (a planar hexagon: residues i and i + 6 coincide) is regenerated where it clashes;
    residues more than REPAIR_FLANK from a clashing residue keep their angles exactly, a clash-free chain is untouched,
    and models with coordinates are refused."""
    from molgen.domains.backbones import REPAIR_FLANK, repair_clashes
    from molgen.proteins.ca_trace import backbone_from_ca
    from molgen.proteins.internal_coordinates import ca_internal_coordinates, ca_trace_from_internal
    from molgen.proteins.metrics import Tolerances, find_clashes
    from tests.helpers import save_tiny_internal_checkpoint

    model = load_checkpoint(save_tiny_internal_checkpoint(tmp_path / "ic.ckpt"))
    length = 30
    theta, tau = np.radians(np.full(length, 91.0)), np.radians(np.full(length, 50.0))  # an alpha-helical trace
    theta[20:], tau[19:] = np.radians(120.0), 0.0  # its last residues a closed hexagon
    ring = backbone_from_ca(ca_trace_from_internal(theta, tau))
    clashing = find_clashes(ring, Tolerances())[0]
    assert clashing.any() and not clashing[:10].any()
    helix = backbone_from_ca(ca_trace_from_internal(np.radians(np.full(20, 91.0)), np.radians(np.full(20, 50.0))))
    assert not find_clashes(helix, Tolerances())[0].any()

    repaired, redone = repair_clashes(model, [helix, ring], SamplingConfig(steps=3), rounds=1, seed=0)
    assert redone == [1] and repaired[0] is helix
    kept = np.convolve(clashing, np.ones(2 * REPAIR_FLANK + 1), mode="same") == 0
    before, after = ca_internal_coordinates(ring[:, 1]), ca_internal_coordinates(repaired[1][:, 1])
    for old, new in zip(before, after):
        inner = kept & np.isfinite(old) & np.isfinite(new)
        np.testing.assert_allclose(np.cos(new[inner] - old[inner]), 1.0, atol=1e-6)
        changed = ~kept & np.isfinite(old) & np.isfinite(new)
        assert np.abs(np.cos(new[changed] - old[changed]) - 1.0).max() > 1e-3
    ca_model = load_checkpoint(save_tiny_ca_checkpoint(tmp_path / "ca.ckpt"))
    with pytest.raises(ValueError, match="internal-coordinate"):
        repair_clashes(ca_model, [ring], SamplingConfig(steps=3))
