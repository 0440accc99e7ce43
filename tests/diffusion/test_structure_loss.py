"""The auxiliary structure loss: the graphs it applies to, the CA distance loss of backbone angles, the config."""

import numpy as np
import pytest
import torch

from molgen.diffusion import GaussianDiffusion
from molgen.diffusion.build import build_diffusion
from molgen.diffusion.process import GraphState
from molgen.diffusion.schedules import CosineSchedule
from molgen.diffusion.structure_loss import StructureLoss, structure_loss_per_graph
from molgen.models import STRUCTURE_LOSSES
from molgen.proteins.geometry import ideal_helix
from molgen.proteins.internal_coordinates import (
    THETA_MEAN,
    THETA_STD,
    angle_features,
    ca_distance_loss,
    ca_internal_coordinates,
    nonlocal_ca_distance_loss,
)


def _sum_per_graph(estimate, clean, batch, num_graphs):
    """A toy loss: each graph's summed squared difference, with its graph count checked."""
    assert int(batch.max()) < num_graphs
    return torch.zeros(num_graphs, dtype=estimate.dtype).index_add(0, batch, (estimate - clean).square().sum(1))


def test_only_graphs_at_low_noise_get_the_weighted_loss_computed_on_them_alone():
    loss = StructureLoss("toy", _sum_per_graph, weight=0.5, max_time=0.3)
    batch = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3])
    estimate, clean = torch.arange(8.0)[:, None], torch.zeros(8, 1)
    t = torch.tensor([0.1, 0.9, 0.3, 0.31])
    per_graph = structure_loss_per_graph(loss, estimate.requires_grad_(), clean, t, batch)
    torch.testing.assert_close(per_graph, torch.tensor([0.5 * (0 + 1), 0.0, 0.5 * 25, 0.0]))
    per_graph.sum().backward()
    assert estimate.grad[2:5].abs().sum() == 0 and estimate.grad[6:].abs().sum() == 0 and estimate.grad[1] != 0
    assert not structure_loss_per_graph(loss, estimate, clean, torch.full((4,), 0.5), batch).any()
    for bad in ({"weight": 0.0, "max_time": 0.2}, {"weight": 1.0, "max_time": 1.5}):
        with pytest.raises(ValueError, match="structure_loss"):
            StructureLoss("toy", _sum_per_graph, **bad)


def _helix_features(length=16):
    return torch.from_numpy(angle_features(*ca_internal_coordinates(ideal_helix(length)[:, 1]))).double()


def test_ca_distance_loss_is_zero_for_the_truth_grows_with_a_bent_torsion_and_keeps_chains_apart():
    """Float64: an estimate equal to the clean angles costs nothing; turning one torsion in the middle moves the
    contacts around it; a chain alone costs what it costs in a padded batch; gradients are finite."""
    clean = _helix_features()
    zero = ca_distance_loss(clean, clean, torch.zeros(16, dtype=torch.long), 1)
    assert zero.shape == (1,) and float(zero) == 0.0
    bent = clean.clone()
    bent[8, 1:] = torch.tensor([np.cos(np.radians(-60.0)), np.sin(np.radians(-60.0))])
    bent.requires_grad_()
    one = ca_distance_loss(bent, clean, torch.zeros(16, dtype=torch.long), 1)
    assert float(one) > 0.1
    one.sum().backward()
    assert torch.isfinite(bent.grad).all() and bent.grad[8].abs().sum() > 0
    short = _helix_features(9)
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([16, 9]))
    both = ca_distance_loss(torch.cat([bent.detach(), short]), torch.cat([clean, short]), batch, 2)
    torch.testing.assert_close(both, torch.cat([one.detach(), torch.zeros(1, dtype=torch.float64)]))
    with pytest.raises(ValueError, match="reads CA internal-coordinate features"):
        ca_distance_loss(torch.zeros(4, 5), torch.zeros(4, 5), torch.zeros(4, dtype=torch.long), 1)


def test_gaussian_loss_adds_the_structure_loss_and_reports_it():
    diffusion = GaussianDiffusion(
        CosineSchedule(), structure_loss=StructureLoss("toy", _sum_per_graph, weight=0.5, max_time=0.5)
    )
    plain = GaussianDiffusion(CosineSchedule())
    batch = torch.tensor([0, 0, 0, 1, 1])
    clean = GraphState(torch.zeros(5, 0), torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), batch, 2)

    def denoiser(pos, h, t, batch):
        return torch.zeros_like(pos), 0.3 * h

    t = torch.tensor([0.2, 0.8])
    total, parts = diffusion.loss(denoiser, clean, t, torch.Generator().manual_seed(1))
    base, none = plain.loss(denoiser, clean, t, torch.Generator().manual_seed(1))
    assert none == {} and parts["structure"][1] == 0 and parts["structure"][0] > 0
    torch.testing.assert_close(total, base + parts["structure"])


def test_the_config_names_a_loss_the_model_builder_offers():
    config = {"schedule": {"name": "cosine"}, "diffuse_features": True, "prediction": "eps"}
    assert build_diffusion(config).structure_loss is None
    named = {**config, "structure_loss": "ca_distances", "structure_loss_weight": 0.2, "structure_loss_max_time": 0.3}
    built = build_diffusion(named, None, STRUCTURE_LOSSES).structure_loss
    assert (built.name, built.fn, built.weight, built.max_time) == ("ca_distances", ca_distance_loss, 0.2, 0.3)
    offered = "choose from \\['ca_distances', 'nonlocal_ca_distances'\\]"
    with pytest.raises(ValueError, match=f"unknown diffusion.structure_loss 'nope'; {offered}"):
        build_diffusion({**named, "structure_loss": "nope"}, None, STRUCTURE_LOSSES)
    with pytest.raises(ValueError, match="needs diffuse_features=true"):
        build_diffusion({**named, "diffuse_features": False}, None, STRUCTURE_LOSSES)


def test_ca_distance_loss_counts_contacts_the_truth_lacks():
    """An estimate that folds a straight chain back onto itself is charged for the new contacts: a strand
    against a hairpin of it costs more than zero, though the strand itself has no contact beyond its neighbours'."""
    straight = torch.zeros(12, 3, dtype=torch.float64)
    straight[:, 0] = (np.radians(150.0) - THETA_MEAN) / THETA_STD
    straight[:, 1] = -1.0  # torsion 180°: a flat zigzag, every residue 5 or more apart is beyond 10 Å
    folded = straight.clone()
    folded[5, 1:] = torch.tensor([1.0, 0.0])  # torsion 0°: the chain turns back
    folded[5, 0] = (np.radians(80.0) - THETA_MEAN) / THETA_STD
    batch = torch.zeros(12, dtype=torch.long)
    assert float(ca_distance_loss(folded, straight, batch, 1)) > 0.5


def test_nonlocal_ca_distance_loss_ignores_a_helix_and_charges_a_hairpin():
    """The nonlocal loss sees no pair inside a helix: a helical estimate of a straight chain costs nothing
    (ca_distances charges it), and a strand folded back onto itself costs (its new contacts are nonlocal)."""
    helix, batch = _helix_features(), torch.zeros(16, dtype=torch.long)
    straight = torch.zeros(16, 3, dtype=torch.float64)
    straight[:, 0] = (np.radians(150.0) - THETA_MEAN) / THETA_STD
    straight[:, 1] = -1.0
    assert float(ca_distance_loss(helix, straight, batch, 1)) > 0.5
    assert float(nonlocal_ca_distance_loss(helix, straight, batch, 1)) == 0.0
    folded = straight.clone()
    folded[7:9, 1:] = torch.tensor([1.0, 0.0])  # two torsions of 0°: a hairpin, residues 5 apart at 3.8 Å
    folded[7:9, 0] = (np.radians(90.0) - THETA_MEAN) / THETA_STD
    assert float(nonlocal_ca_distance_loss(folded, straight, batch, 1)) > 0.5
    assert float(nonlocal_ca_distance_loss(straight, folded, batch, 1)) > 0.5  # a contact the estimate misses
