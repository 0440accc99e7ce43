"""Rebuilding N, C and O from a CA trace (molgen.proteins.ca_trace): exact on what the library holds,
close on ideal helices and strands with the shipped library, equivariant, and refusing bad traces."""

import numpy as np
import pytest
import torch

from molgen.proteins.ca_trace import backbone_from_ca, fit_library, load_library, peptide_frames, save_library
from molgen.proteins.geometry import ideal_helix, ideal_strand, random_coil
from tests.equivariance_utils import random_rotation


def rmsd(a, b):
    return float(np.sqrt(((a - b) ** 2).sum(-1).mean()))


def test_a_library_of_the_structures_themselves_rebuilds_them_exactly(tmp_path):
    """Regular structures: the peptides of one structure share a descriptor and local atoms, so the nearest
    entries are exact copies, and so are the termini (one entry each per structure); saved and loaded alike."""
    chains = [ideal_helix(30), ideal_strand(30)]
    save_library(fit_library(chains), tmp_path / "library.npz")
    library = load_library(tmp_path / "library.npz")
    for chain in chains:
        for k in (1, 4):
            np.testing.assert_allclose(backbone_from_ca(chain[:, 1], library, k=k), chain, atol=1e-4)


def test_the_shipped_library_rebuilds_ideal_helices_strands_and_coils_closely():
    for chain, tolerance in ((ideal_helix(40), 0.05), (ideal_strand(40), 0.15), (random_coil(60, seed=1), 0.4)):
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
    _, descriptors = peptide_frames(chain[:, 1])
    _, mirrored = peptide_frames(-chain[:, 1])
    torch.testing.assert_close(mirrored[:, 3], -descriptors[:, 3])  # the torsions change sign


def test_peptides_are_chosen_for_the_angle_they_share():
    """Among the candidates, the chain's choice keeps N-CA-C near 111 degrees: on a coil the joint choice
    beats taking each peptide's nearest entry."""
    from molgen.proteins.geometry import bond_angles

    chain = random_coil(80, seed=5)
    nearest, joint = (bond_angles(backbone_from_ca(chain[:, 1], k=k))["N-CA-C"] for k in (1, 8))
    assert np.abs(joint - 111.0).mean() < np.abs(nearest - 111.0).mean()


def test_peptides_next_to_a_clash_are_chosen_again():
    """Random coils clash with themselves; re-choosing the peptides next to each clash removes the clashes the
    rebuilt atoms add (never more than the first choice leaves)."""
    from molgen.proteins.metrics import Tolerances, find_clashes

    for seed in (0, 3, 7):
        trace = random_coil(100, seed=seed)[:, 1]
        first, final = (find_clashes(backbone_from_ca(trace, clash_rounds=r), Tolerances())[2] for r in (0, 3))
        assert final < first


def test_the_clash_rounds_choose_among_more_candidates_than_the_chain():
    """The rounds look beyond the k entries of the chain's choice: on coils, 32 candidates leave no more
    clashes than the same 8, and fewer on some."""
    from molgen.proteins.metrics import Tolerances, find_clashes

    counts = []
    for seed in (0, 3):
        trace = random_coil(100, seed=seed)[:, 1]
        counts.append([find_clashes(backbone_from_ca(trace, clash_candidates=c), Tolerances())[2] for c in (8, 32)])
    assert all(wide <= narrow for narrow, wide in counts)
    assert any(wide < narrow for narrow, wide in counts)


def test_bad_traces_are_refused():
    with pytest.raises(ValueError, match="L >= 4"):
        backbone_from_ca(np.zeros((3, 3)))
    trace = ideal_helix(10)[:, 1].copy()
    trace[4, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        backbone_from_ca(trace)


def test_a_peptides_own_clash_count_ranks_its_candidates_as_the_whole_chain_count_does():
    """The clash repair counts only the pairs involving the re-chosen peptide's atoms; across its candidates
    that count differs from :func:`find_clashes`'s whole-chain count by the same constant."""
    from molgen.proteins.ca_trace import _peptide_clashes
    from molgen.proteins.metrics import Tolerances, find_clashes

    chain = random_coil(60, seed=0)
    chain[30:, :, 0] -= 3.0  # fold the second half onto the first so there is plenty to clash
    compared = 0
    for p in (10, 29, 30, 45):
        options = torch.from_numpy(chain[p, 2:4][None].repeat(6, 0)).clone()
        options = torch.cat([options, torch.from_numpy(chain[p + 1, :1][None].repeat(6, 0))], dim=1)
        options += torch.linspace(-1.5, 1.5, 6, dtype=torch.float64)[:, None, None]  # six shifted candidates
        local = _peptide_clashes(chain, p, options, Tolerances())
        totals = []
        for option in options.numpy():
            trial = chain.copy()
            trial[p, 2:4], trial[p + 1, 0] = option[:2], option[2]
            totals.append(find_clashes(trial, Tolerances())[2])
        np.testing.assert_array_equal(np.asarray(totals) - local.numpy(), totals[0] - int(local[0]))
        compared += len(set(totals)) > 1
    assert compared  # some candidates did differ
