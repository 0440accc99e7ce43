import dataclasses
import importlib.util

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.molecules.metrics.distribution import (
    BOND_LENGTH_BIN_WIDTH,
    MoleculeStatistics,
    bond_type,
    compare_statistics,
    histogram_w1,
    molecule_statistics,
)
from molgen.molecules.record import MoleculeRecord

needs_qm9pack = pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack is not installed")

SMILES = ["CCO", "c1ccccc1", "CC(N)=O", "CC(F)C#N", "OCC(O)CO"]


def _embedded(smiles):
    """Explicit-hydrogen RDKit molecule with one ETKDG conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=0) == 0
    return mol


def _record(mol, scale=1.0):
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    return MoleculeRecord(z, mol.GetConformer().GetPositions() * scale)


@pytest.fixture(scope="module")
def molecules():
    return [_embedded(s) for s in SMILES]


def test_bond_type_names_are_sorted():
    assert bond_type("H", "C") == bond_type("C", "H") == "C-H"
    assert bond_type("O", "H") == "H-O"


def test_histogram_w1_closed_forms():
    a, b = np.zeros(200), np.zeros(200)
    a[10], b[37] = 5, 2  # point masses 27 bins apart; the counts' scale must not matter
    assert histogram_w1(a, b, 0.01) == pytest.approx(0.27)
    assert histogram_w1(b, a, 0.01) == pytest.approx(0.27)
    # Half the mass at 0 and 3 vs at 1 and 2: each half moves by one bin.
    assert histogram_w1([1, 0, 0, 1], [0, 1, 1, 0], 0.5) == pytest.approx(0.5)
    assert histogram_w1(a, a, 0.01) == 0.0


def test_statistics_of_a_known_molecule(molecules):
    stats = molecule_statistics([_record(molecules[0])])  # ethanol, C2H6O
    assert stats.num_molecules == 1
    assert stats.atom_counts == {"C": 2, "O": 1, "H": 6}
    assert stats.num_atoms_counts.tolist() == [0] * 9 + [1]
    bond_counts = {k: int(v.sum()) for k, v in stats.bond_length_counts.items()}
    assert bond_counts == {"C-C": 1, "C-O": 1, "C-H": 5, "H-O": 1}


def test_out_of_range_bond_lengths_land_in_the_edge_bins():
    collapsed = MoleculeRecord(np.array([1, 1]), np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]]))
    counts = molecule_statistics([collapsed]).bond_length_counts["H-H"]
    assert counts[0] == counts.sum() == 1


def test_identical_sets_have_zero_distance(molecules):
    records = [_record(m) for m in molecules]
    distances = compare_statistics(molecule_statistics(records), molecule_statistics(records))
    assert "bond_length_w1_C-H" in distances
    assert all(value == 0.0 for value in distances.values())


def _bond_lengths(mol):
    """Å [num_bonds], lengths of the molecule's own (RDKit) bonds."""
    pos = mol.GetConformer().GetPositions()
    i, j = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]).T
    return np.linalg.norm(pos[i] - pos[j], axis=-1)


def test_stretched_bonds_shift_w1_by_the_stretch(molecules):
    # All coordinates x1.1 stretches every bond by 10%; quantile coupling then gives
    # W1 = 0.1 * mean length per type, and the reference-count-weighted average of the
    # per-type means is the mean over all bonds. EDM's 0.1 Å margin would lose the
    # stretched C-H and C-C bonds; a 0.3 Å margin keeps them while staying below the
    # distances of non-bonded pairs (e.g. H-H 1.04 Å vs 1.75 Å in CH2 groups); the bond
    # counts are checked against RDKit's bonds below.
    reference = molecule_statistics([_record(m) for m in molecules], margin=0.3)
    sample = molecule_statistics([_record(m, scale=1.1) for m in molecules], margin=0.3)
    true_lengths = np.concatenate([_bond_lengths(m) for m in molecules])
    num_bonds = {k: int(v.sum()) for k, v in reference.bond_length_counts.items()}
    assert num_bonds == {k: int(v.sum()) for k, v in sample.bond_length_counts.items()}
    assert sum(num_bonds.values()) == len(true_lengths)

    distances = compare_statistics(sample, reference)
    # Binning moves each length by less than one bin.
    assert distances["bond_length_w1"] == pytest.approx(0.1 * true_lengths.mean(), abs=BOND_LENGTH_BIN_WIDTH)
    assert distances["atom_type_tv"] == distances["num_atoms_tv"] == 0.0
    assert distances["bond_type_tv"] == 0.0


def test_element_swap_gives_the_exact_total_variation():
    # Geometry is irrelevant to atom types: all atoms at the origin.
    methane = MoleculeRecord(np.array([6, 1, 1, 1, 1]), np.zeros((5, 3)))
    water = MoleculeRecord(np.array([8, 1, 1]), np.zeros((3, 3)))
    ammonia_like = MoleculeRecord(np.array([7, 1, 1]), np.zeros((3, 3)))
    # C 1/8, H 6/8, O 1/8 vs C 1/8, H 6/8, N 1/8: TV = (1/8 + 1/8) / 2.
    distances = compare_statistics(molecule_statistics([methane, ammonia_like]), molecule_statistics([methane, water]))
    assert distances["atom_type_tv"] == pytest.approx(1 / 8)
    assert distances["num_atoms_tv"] == 0.0


def test_missing_bond_type_costs_the_full_range():
    reference = molecule_statistics([_record(_embedded("CF"))])  # 3 C-H, 1 C-F
    sample = molecule_statistics([_record(_embedded("C"))])  # 4 C-H
    distances = compare_statistics(sample, reference)
    assert distances["bond_length_w1_C-F"] == 2.0  # the 0.5-2.5 Å histogram range
    expected = (3 * distances["bond_length_w1_C-H"] + 1 * 2.0) / 4
    assert distances["bond_length_w1"] == pytest.approx(expected)
    assert distances["bond_type_tv"] == pytest.approx(0.25)


def test_round_trip_through_torch_save(molecules, tmp_path):
    stats = molecule_statistics([_record(m) for m in molecules])
    path = tmp_path / "stats.pt"
    torch.save(stats.to_dict(), path)
    restored = MoleculeStatistics.from_dict(torch.load(path, weights_only=True))
    assert restored.to_dict() == stats.to_dict()
    assert all(v == 0.0 for v in compare_statistics(restored, stats).values())


def test_errors(molecules):
    with pytest.raises(ValueError, match="no molecules"):
        molecule_statistics([])
    stats = molecule_statistics([_record(molecules[0])])
    coarse = dataclasses.replace(stats, bin_width=0.02)
    with pytest.raises(ValueError, match="different bond-length bins"):
        compare_statistics(coarse, stats)


@needs_qm9pack
def test_qm9_halves_have_close_distributions():
    from molgen.molecules.qm9 import QM9Dataset

    data = QM9Dataset("test", subset=1000)
    records = [MoleculeRecord(d.z.numpy(), d.pos.numpy()) for d in (data[i] for i in range(1000))]
    distances = compare_statistics(molecule_statistics(records[:500]), molecule_statistics(records[500:]))
    # Measured: atom_type_tv 0.007, num_atoms_tv 0.11 (~25 sizes, 500 molecules each),
    # bond_length_w1 0.002 Å. The bounds leave room for sampling noise, yet a sample with
    # a wrong element mix, molecule size or 0.05 Å bond error would fail.
    assert distances["atom_type_tv"] < 0.02
    assert distances["num_atoms_tv"] < 0.2
    assert distances["bond_type_tv"] < 0.03
    assert distances["bond_length_w1"] < 0.01
