"""Rebuilding N, C and O from a CA trace (molgen.proteins.ca_trace): exact on what the library holds,
close on ideal helices and strands with the shipped library, equivariant, and refusing bad traces."""

import numpy as np
import pytest
import torch

from molgen.proteins.ca_trace import backbone_from_ca, fit_library, residue_frames
from molgen.proteins.geometry import ideal_helix, ideal_strand, random_coil
from tests.equivariance_utils import random_rotation


def rmsd(a, b):
    return float(np.sqrt(((a - b) ** 2).sum(-1).mean()))


def test_a_library_of_the_structures_themselves_rebuilds_them_exactly():
    """Regular structures: every interior residue has the same descriptor and local atoms, so the nearest
    entries are exact copies, and so are the termini (one entry each per structure)."""
    chains = [ideal_helix(30), ideal_strand(30)]
    library = fit_library(chains)
    for chain in chains:
        rebuilt = backbone_from_ca(chain[:, 1], library, k=1)
        np.testing.assert_allclose(rebuilt, chain, atol=1e-4)


def test_the_shipped_library_rebuilds_ideal_helices_strands_and_coils_closely():
    for chain, tolerance in ((ideal_helix(40), 0.15), (ideal_strand(40), 0.25), (random_coil(60, seed=1), 0.45)):
        rebuilt = backbone_from_ca(chain[:, 1])
        assert rebuilt.shape == chain.shape
        np.testing.assert_array_equal(rebuilt[:, 1], chain[:, 1])  # the CA atoms are kept as given
        assert rmsd(rebuilt[2:-2], chain[2:-2]) < tolerance


def test_rebuilding_commutes_with_rotations_and_translations_not_reflections():
    chain = random_coil(50, seed=3)
    rebuilt = backbone_from_ca(chain[:, 1])
    rotation = random_rotation(torch.float64, generator=torch.Generator().manual_seed(0)).numpy()
    shift = np.array([5.0, -2.0, 30.0])
    moved = backbone_from_ca(chain[:, 1] @ rotation.T + shift)
    np.testing.assert_allclose(moved, rebuilt @ rotation.T + shift, atol=1e-8)
    _, descriptors = residue_frames(chain[:, 1])
    _, mirrored = residue_frames(-chain[:, 1])
    torch.testing.assert_close(mirrored[:, [1, 3]], -descriptors[:, [1, 3]])  # the torsions change sign


def test_bad_traces_are_refused():
    with pytest.raises(ValueError, match="L >= 4"):
        backbone_from_ca(np.zeros((3, 3)))
    trace = ideal_helix(10)[:, 1].copy()
    trace[4, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        backbone_from_ca(trace)
