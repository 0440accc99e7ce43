"""Stability of a file's own graph (bonds and formal charges), and SDF molecules from generated graphs."""

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.molecules.evaluate import evaluate_molecules
from molgen.molecules.metrics.elements import TABLE_ELEMENTS
from molgen.molecules.metrics.graph_stability import CHARGED_VALENCES, atom_stability, evaluate_graph_stability
from molgen.molecules.record import MoleculeRecord
from molgen.molecules.sdf import BONDS_GENERATED_TAG, molecule_from_graph, read_records, write_sdf


def embedded(smiles):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    return mol


def graph_of(mol):
    """(z, pos, bonds, charges) of a molecule with explicit hydrogens, Kekulé bonds."""
    mol = Chem.Mol(mol)
    Chem.Kekulize(mol, clearAromaticFlags=True)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    charges = np.array([a.GetFormalCharge() for a in mol.GetAtoms()])
    orders = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), orders[b.GetBondType()]) for b in mol.GetBonds()])
    return z, mol.GetConformer().GetPositions(), bonds, charges


def record(mol):
    return MoleculeRecord(np.array([a.GetAtomicNum() for a in mol.GetAtoms()]), mol.GetConformer().GetPositions(), mol)


def test_charged_zwitterion_and_nitro_are_stable():
    for smiles in ("[NH3+]CC(=O)[O-]", "C[N+](=O)[O-]", "c1ccccc1", "C#N"):
        assert all(atom_stability(embedded(smiles))), smiles


def test_radical_overbonded_carbon_and_wrong_charges_are_unstable():
    # methyl radical: carbon with three bonds
    pos3 = np.vstack([np.zeros(3), np.eye(3)])
    radical = molecule_from_graph(np.array([6, 1, 1, 1]), pos3, [(0, k, 1) for k in range(1, 4)])
    assert atom_stability(radical) == [False, True, True, True]
    # over-bonded carbon: C with five hydrogens
    pos5 = np.vstack([np.zeros(3), np.eye(3), -np.eye(3)[:2]])
    over = molecule_from_graph(np.array([6, 1, 1, 1, 1, 1]), pos5, [(0, k, 1) for k in range(1, 6)])
    assert atom_stability(over) == [False, True, True, True, True, True]
    # the zwitterion's graph without its charges: N with four bonds and O with one are unstable
    z, pos, bonds, charges = graph_of(embedded("[NH3+]CC(=O)[O-]"))
    neutral = molecule_from_graph(z, pos, bonds, np.zeros_like(charges))
    unstable = [a.GetSymbol() for a, ok in zip(neutral.GetAtoms(), atom_stability(neutral)) if not ok]
    assert sorted(unstable) == ["N", "O"]
    result = evaluate_graph_stability([record(neutral), record(molecule_from_graph(z, pos, bonds, charges))])
    assert result.summary["mol_stability"] == 0.5
    assert result.summary["atom_stability"] == pytest.approx((2 * len(z) - 2) / (2 * len(z)))
    assert result.summary["num_charged_atoms"] == 2 and result.summary["num_bonds_generated"] == 2


def test_elements_outside_the_tables_are_never_stable():
    """XeF2 and UF6 with the right bond counts: Xe and U have no valence here, so the molecules are unstable."""
    assert {element for element, _ in CHARGED_VALENCES} <= set(TABLE_ELEMENTS)
    xef2 = molecule_from_graph(np.array([54, 9, 9]), [[0, 0, 0], [1.98, 0, 0], [-1.98, 0, 0]], [(0, 1, 1), (0, 2, 1)])
    axes = np.vstack([2.0 * np.eye(3), -2.0 * np.eye(3)])
    uf6 = molecule_from_graph(
        np.array([92] + [9] * 6), np.vstack([np.zeros(3), axes]), [(0, k, 1) for k in range(1, 7)]
    )
    assert atom_stability(xef2) == [False, True, True]
    assert atom_stability(uf6) == [False] + [True] * 6
    water = molecule_from_graph(
        np.array([8, 1, 1]), [[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]], [(0, 1, 1), (0, 2, 1)]
    )
    result = evaluate_graph_stability([record(water), record(xef2), record(uf6)])
    assert [m["mol_stable"] for m in result.per_molecule] == [True, False, False]
    assert result.per_molecule[0] == evaluate_graph_stability([record(water)]).per_molecule[0]
    assert result.summary["mol_stability"] == pytest.approx(1 / 3)
    assert result.summary["atom_stability"] == pytest.approx(11 / 13)
    report = evaluate_molecules([record(water), record(xef2), record(uf6)]).report
    assert report["graph"]["mol_stability"] == pytest.approx(1 / 3) and report["rdkit"]["num_valid"] == 1


def test_molecule_from_graph_round_trips_through_sdf(tmp_path):
    z, pos, bonds, charges = graph_of(embedded("[NH3+]CC(=O)[O-]"))
    mol = molecule_from_graph(z, pos, bonds, charges)
    assert mol.GetIntProp(BONDS_GENERATED_TAG) == 1
    write_sdf(tmp_path / "g.sdf", [(mol, "g", {"index": 0})])
    (read,), problems = read_records(tmp_path / "g.sdf")
    assert not problems and read.has_bonds and read.properties[BONDS_GENERATED_TAG] == "1"
    assert [a.GetFormalCharge() for a in read.mol.GetAtoms()] == charges.tolist()
    got = sorted(
        (
            min(b.GetBeginAtomIdx(), b.GetEndAtomIdx()),
            max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()),
            int(b.GetBondTypeAsDouble()),
        )
        for b in read.mol.GetBonds()
    )
    assert got == sorted(tuple(sorted(b[:2])) + (b[2],) for b in bonds.tolist())
    # an invalid graph is kept as generated
    bad = molecule_from_graph(np.array([6, 1]), np.array([[0.0, 0, 0], [1.1, 0, 0]]), [(0, 1, 3)])
    assert bad.GetNumBonds() == 1
    for args in (
        ([6, 1], [[0, 0, 0], [1, 0, 0]], [(0, 0, 1)]),
        ([6, 1], [[0, 0, 0], [1, 0, 0]], [(0, 2, 1)]),
        ([6, 1], [[0, 0, 0], [1, 0, 0]], [(0, 1, 4)]),
        ([6, 1], [[0, 0, 0], [1, 0, 0]], [(0, 1, 1), (1, 0, 2)]),
    ):
        with pytest.raises(ValueError):
            molecule_from_graph(*args)


def test_report_has_a_graph_section_only_with_bonds():
    zwitterion = record(
        molecule_from_graph(*graph_of(embedded("[NH3+]CC(=O)[O-]"))[:3], graph_of(embedded("[NH3+]CC(=O)[O-]"))[3])
    )
    report = evaluate_molecules([zwitterion]).report
    assert report["graph"]["mol_stability"] == 1.0 and report["graph"]["num_bonds_generated"] == 1
    assert report["edm"]["mol_stability"] < 1.0  # EDM ignores charges: N with 4 bonds, O with 1
    bare = MoleculeRecord(zwitterion.atomic_numbers, zwitterion.positions)
    assert "graph" not in evaluate_molecules([bare]).report


def test_generated_graph_without_bonds_is_not_perceived():
    """A model that generated no bonds for a water geometry: unstable, and RDKit-invalid (not perceived as water)."""
    pos = np.array([[0.0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    water = molecule_from_graph(np.array([8, 1, 1]), pos, np.zeros((0, 3), dtype=int))
    report = evaluate_molecules([MoleculeRecord(np.array([8, 1, 1]), pos, water)]).report
    assert report["graph"]["mol_stability"] == 0.0 and report["graph"]["num_bonds_generated"] == 1
    assert report["rdkit"]["validity"] == 0.0 and report["rdkit"]["connectivity"] == 0.0
    perceived = evaluate_molecules([MoleculeRecord(np.array([8, 1, 1]), pos)]).report
    assert perceived["rdkit"]["validity"] == 1.0  # the same geometry, bonds perceived
