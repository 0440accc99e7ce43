"""Signed CA virtual torsions per residue (molgen.nn.chirality): the dihedral of every node's
quadruple, zero where a chain ends, invariant under rotations, negated under reflections."""

import numpy as np
import torch

from molgen.nn.chirality import chain_torsion_features
from molgen.proteins.geometry import dihedral, ideal_helix, random_coil
from tests.equivariance_utils import random_rotation


def two_chains():
    helix, coil = ideal_helix(9)[:, 1], random_coil(12, seed=2)[:, 1]
    pos = torch.from_numpy(np.concatenate([helix, coil + 40.0]))
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([9, 12]))
    return helix, coil, pos, batch


def test_every_node_gets_the_torsion_of_its_quadruple_and_chain_ends_get_zeros():
    helix, coil, pos, batch = two_chains()
    features = chain_torsion_features(pos, batch).numpy()
    for chain, rows in ((helix, features[:9]), (coil, features[9:])):
        expected = dihedral(chain[:-3], chain[1:-2], chain[2:-1], chain[3:])  # degrees, node i = quadruple i-1..i+2
        inner = rows[1:-2]
        np.testing.assert_allclose(np.degrees(np.arctan2(inner[:, 0], inner[:, 1])), expected, atol=1e-6)
        np.testing.assert_array_equal(inner[:, 2], 1.0)
        np.testing.assert_array_equal(rows[[0, -2, -1]], 0.0)  # no i-1, or no i+2, in this chain
    assert 45.0 < np.degrees(np.arctan2(features[3, 0], features[3, 1])) < 55.0  # the alpha helix is right-handed


def test_rotations_and_translations_leave_the_features_and_reflections_negate_the_sine():
    _, _, pos, batch = two_chains()
    features = chain_torsion_features(pos, batch)
    rotation = random_rotation(torch.float64, generator=torch.Generator().manual_seed(1))
    moved = chain_torsion_features(pos @ rotation.T + torch.tensor([3.0, -1.0, 7.0], dtype=torch.float64), batch)
    torch.testing.assert_close(moved, features)
    mirrored = chain_torsion_features(-pos, batch)
    torch.testing.assert_close(mirrored[:, 0], -features[:, 0])
    torch.testing.assert_close(mirrored[:, 1:], features[:, 1:])


def test_degenerate_and_short_chains_give_finite_features_and_gradients():
    pos = torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)  # all nodes at one point
    features = chain_torsion_features(pos, torch.zeros(5, dtype=torch.long))
    features.sum().backward()
    assert torch.isfinite(features).all() and torch.isfinite(pos.grad).all()
    assert chain_torsion_features(torch.ones(3, 3), torch.zeros(3, dtype=torch.long)).abs().sum() == 0


def test_the_features_fade_where_the_torsion_is_undefined():
    """Weighted by the sines of the two bond angles: full size on a helix (angles ~91 degrees), near zero on
    a nearly straight stretch, where the torsion itself jumps under tiny moves."""
    batch = torch.zeros(4, dtype=torch.long)
    helix = torch.from_numpy(ideal_helix(4)[:, 1])
    weight = torch.linalg.vector_norm(chain_torsion_features(helix, batch)[1, :2])
    assert 0.95 < weight <= 1.0
    straight = torch.tensor([[0.0, 0, 0], [3.8, 0, 0], [7.6, 0.01, 0], [11.4, 0.01, 0.01]], dtype=torch.float64)
    for nudge in (0.0, -0.02):
        moved = straight.clone()
        moved[3, 2] += nudge  # flips the torsion's sign
        assert torch.linalg.vector_norm(chain_torsion_features(moved, batch)[1, :2]) < 0.01
