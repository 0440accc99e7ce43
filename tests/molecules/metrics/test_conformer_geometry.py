"""Bond lengths, angles and torsions per bonded type, and their distances, on geometries built by hand."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Geometry import Point3D

from molgen.molecules.metrics.conformer_geometry import (
    GeometryStatistics,
    compare_geometry,
    conformer_geometry,
    path_key,
)


def _with_coordinates(smiles: str, positions) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles)
    conformer = Chem.Conformer(mol.GetNumAtoms())
    for index, xyz in enumerate(positions):
        conformer.SetAtomPosition(index, Point3D(*map(float, xyz)))
    mol.AddConformer(conformer)
    return mol


def _propanal(torsion_degrees: float, bond: float = 1.5) -> Chem.Mol:
    """Propanal's heavy atoms O=C-C-C: bonds of ``bond`` Å, right angles, the torsion given in degrees."""
    phi = np.radians(torsion_degrees)
    positions = [(0, bond, 0), (0, 0, 0), (bond, 0, 0), (bond, bond * np.cos(phi), bond * np.sin(phi))]
    return _with_coordinates("O=CCC", positions)


def test_path_keys_read_in_the_smaller_direction():
    assert path_key(["O", "C", "C"], ["=", "-"]) == "C-C=O"
    assert path_key(["C", "C", "O"], ["-", "="]) == "C-C=O"
    assert path_key(["Cl", "C"], ["-"]) == "C-Cl"
    assert path_key(["C", "C", "C", "C"], [":", ":", ":"]) == "C:C:C:C"


def test_values_of_a_hand_built_chain():
    geometry = conformer_geometry([_propanal(60.0)])
    values = geometry.values
    assert set(values["bond_length"]) == {"C=O", "C-C"}
    assert np.allclose(values["bond_length"]["C-C"], [1.5, 1.5]) and np.allclose(values["bond_length"]["C=O"], 1.5)
    assert set(values["bond_angle"]) == {"C-C=O", "C-C-C"} and np.allclose(values["bond_angle"]["C-C=O"], 90.0)
    assert list(values["torsion"]) == ["C-C-C=O"] and np.allclose(values["torsion"]["C-C-C=O"], 60.0)
    mirrored = conformer_geometry([_propanal(-60.0)]).values["torsion"]["C-C-C=O"]
    assert np.allclose(mirrored, 60.0)  # |phi|: a mirror image has the same torsions


def test_hydrogens_are_left_out_and_aromatic_bonds_keyed_apart():
    from rdkit.Chem import AllChem

    toluene = Chem.AddHs(Chem.MolFromSmiles("Cc1ccccc1"))
    AllChem.EmbedMolecule(toluene, randomSeed=1)
    values = conformer_geometry([toluene]).values
    assert {name: len(v) for name, v in values["bond_length"].items()} == {"C:C": 6, "C-C": 1}
    assert {name: len(v) for name, v in values["bond_angle"].items()} == {"C:C:C": 6, "C-C:C": 2}


def test_distances_of_identical_shifted_and_mismatched_sets():
    reference = conformer_geometry([_propanal(60.0), _propanal(120.0)])
    same = compare_geometry(reference, reference)
    assert same["bond_length_w1"] == 0.0 and same["torsion_w1"] == 0.0 and same["bond_angle_type_tv"] == 0.0
    longer = compare_geometry(conformer_geometry([_propanal(60.0, 1.6), _propanal(120.0, 1.6)]), reference)
    assert longer["bond_length_w1"] == pytest.approx(0.1) and longer["bond_length_w1_C-C"] == pytest.approx(0.1)
    assert longer["bond_angle_w1"] == pytest.approx(0.0, abs=1e-9)
    rotated = compare_geometry(conformer_geometry([_propanal(60.0), _propanal(60.0)]), reference)
    assert rotated["torsion_w1"] == pytest.approx(30.0)  # half the torsions move by 60 degrees

    values = {
        "bond_length": {"C-C": np.array([1.5, 1.6])},
        "bond_angle": {},
        "torsion": {},
    }
    only_cc = GeometryStatistics(values, 1)
    result = compare_geometry(only_cc, reference)
    assert result["bond_length_w1"] == pytest.approx(0.05)  # the C=O type the sample lacks is not averaged
    assert result["bond_length_type_tv"] == pytest.approx(1 / 3)  # reference: 2/3 C-C, 1/3 C=O
    assert result["bond_angle_type_tv"] == 1.0 and np.isnan(result["bond_angle_w1"])
