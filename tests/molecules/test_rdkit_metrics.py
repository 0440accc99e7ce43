import importlib.util

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.molecules.metrics.rdkit_protocol import evaluate_rdkit, rdkit_smiles_of
from molgen.molecules.record import MoleculeRecord
from molgen.molecules.sdf import SDFRecord, read_sdf, write_sdf

# `import qm9pack` fails (it needs pkg_resources), so probe without importing it.
needs_qm9pack = pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack is not installed")


def _embedded(smiles, add_hs=True):
    """RDKit molecule with one ETKDG conformer (hydrogens explicit unless ``add_hs=False``)."""
    mol = Chem.MolFromSmiles(smiles)
    if add_hs:
        mol = Chem.AddHs(mol)
    assert AllChem.EmbedMolecule(mol, randomSeed=0) == 0
    return mol


def _arrays(mol):
    """(atomic numbers [n], positions [n, 3] Å) of a molecule's first conformer."""
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    return z, mol.GetConformer().GetPositions()


def _bare(mol):
    """A geometry-only record, as produced by a sampler."""
    return MoleculeRecord(*_arrays(mol))


def _canonical(smiles):
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=False)


@pytest.mark.parametrize("smiles", ["C", "CCO", "c1ccccc1", "CC(N)=O", "OC(F)F", "C#N"])
def test_real_geometries_are_valid_and_connected(smiles):
    result = evaluate_rdkit([_bare(_embedded(smiles))])
    (entry,) = result.per_molecule
    assert entry["valid"] and entry["connected"] and entry["has_bonds"]
    assert not entry["bonds_from_file"]
    assert entry["smiles"] == _canonical(smiles)
    assert result.summary["validity"] == result.summary["valid_and_connected"] == 1.0


def test_two_fragments_are_valid_but_not_connected():
    z1, pos1 = _arrays(_embedded("CCO"))
    z2, pos2 = _arrays(_embedded("O"))
    record = MoleculeRecord(np.concatenate([z1, z2]), np.concatenate([pos1, pos2 + 10.0]))
    result = evaluate_rdkit([record])
    (entry,) = result.per_molecule
    assert entry["num_fragments"] == 2
    assert entry["valid"] and not entry["connected"]
    assert entry["smiles"] == "CCO"  # the largest fragment
    assert result.summary["connectivity"] == result.summary["valid_and_connected"] == 0.0


def test_garbage_geometries_are_invalid():
    rng = np.random.default_rng(0)
    z = rng.choice([1, 6, 7, 8], size=20)
    garbage = MoleculeRecord(z, rng.normal(scale=0.7, size=(20, 3)))
    nan = MoleculeRecord(np.array([6, 8]), np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]))
    result = evaluate_rdkit([garbage, nan])
    assert result.summary["validity"] == 0.0
    assert result.summary["uniqueness"] == 0.0  # nothing valid to be unique
    assert all(m["smiles"] is None for m in result.per_molecule)
    assert not result.per_molecule[1]["connected"]
    assert rdkit_smiles_of(garbage.atomic_numbers, garbage.positions) is None


def test_bonds_from_the_file_are_kept():
    mol = _embedded("CCO")
    # Pull the hydroxyl 6 Å away: geometry alone now says two fragments.
    conf = mol.GetConformer()
    hydroxyl = [a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "O"]
    hydroxyl += [n.GetIdx() for n in mol.GetAtomWithIdx(hydroxyl[0]).GetNeighbors() if n.GetSymbol() == "H"]
    for i in hydroxyl:
        conf.SetAtomPosition(i, conf.GetAtomPosition(i) + Chem.rdGeometry.Point3D(6.0, 0.0, 0.0))
    z, pos = _arrays(mol)

    with_bonds, geometry_only = evaluate_rdkit([MoleculeRecord(z, pos, mol=mol), MoleculeRecord(z, pos)]).per_molecule
    assert with_bonds["bonds_from_file"] and with_bonds["valid"] and with_bonds["connected"]
    assert with_bonds["smiles"] == "CCO"
    assert not geometry_only["connected"]


def test_wrong_bonds_from_the_file_are_trusted():
    mol = _embedded("CC")
    bad = Chem.RWMol(mol)
    hydrogens = [a.GetIdx() for a in bad.GetAtoms() if a.GetSymbol() == "H"]
    bad.AddBond(0, hydrogens[-1], Chem.BondType.SINGLE)  # pentavalent carbon
    result = evaluate_rdkit([MoleculeRecord(*_arrays(mol), mol=bad.GetMol())])
    assert result.summary["bonds_from_file"] == 1
    assert result.summary["validity"] == 0.0


def test_implicit_hydrogen_records_from_a_file_are_valid(tmp_path):
    heavy = _embedded("CC(=O)Nc1ccccc1", add_hs=False)
    path = tmp_path / "heavy.sdf"
    write_sdf(path, [SDFRecord(heavy, "acetanilide")])
    (mol,) = read_sdf(path)
    z, pos = _arrays(mol)
    assert 1 not in z
    record = MoleculeRecord(z, pos, mol=mol, name="acetanilide", implicit_hydrogens=9)

    result = evaluate_rdkit([record])
    (entry,) = result.per_molecule
    assert entry["bonds_from_file"] and entry["valid"] and entry["connected"]
    assert entry["smiles"] == _canonical("CC(=O)Nc1ccccc1")


def test_uniqueness_and_novelty():
    ethanol, methane = _embedded("CCO"), _embedded("C")
    rng = np.random.default_rng(1)
    garbage = MoleculeRecord(rng.choice([6, 8], size=12), rng.normal(scale=0.5, size=(12, 3)))
    records = [_bare(ethanol), _bare(ethanol), _bare(methane), garbage]
    reference = {rdkit_smiles_of(*_arrays(ethanol))}
    assert reference == {"CCO"}

    summary = evaluate_rdkit(records, reference_smiles=reference).summary
    assert summary["num_molecules"] == 4
    assert summary["num_valid"] == 3 and summary["validity"] == 0.75
    assert summary["num_unique"] == 2 and summary["uniqueness"] == pytest.approx(2 / 3)
    assert summary["novelty"] == 0.5  # "C" is new, "CCO" is not
    assert evaluate_rdkit(records).summary["novelty"] is None


def _with_bonds(atoms, bonds):
    """A record with file bonds (single) for hand-placed ``atoms``: (atomic number, (x, y, z)) pairs."""
    rw = Chem.RWMol()
    for number, _ in atoms:
        rw.AddAtom(Chem.Atom(number))
    for i, j in bonds:
        rw.AddBond(i, j, Chem.BondType.SINGLE)
    conformer = Chem.Conformer(len(atoms))
    for index, (_, xyz) in enumerate(atoms):
        conformer.SetAtomPosition(index, xyz)
    rw.AddConformer(conformer)
    mol = rw.GetMol()
    mol.UpdatePropertyCache(strict=False)
    return MoleculeRecord(*_arrays(mol), mol=mol)


def test_elements_outside_the_tables_are_invalid():
    xef2 = _with_bonds([(54, (0, 0, 0)), (9, (1.98, 0, 0)), (9, (-1.98, 0, 0))], [(0, 1), (0, 2)])
    axes = [(2.0, 0, 0), (-2.0, 0, 0), (0, 2.0, 0), (0, -2.0, 0), (0, 0, 2.0), (0, 0, -2.0)]
    uf6 = _with_bonds([(92, (0, 0, 0))] + [(9, xyz) for xyz in axes], [(0, k) for k in range(1, 7)])
    assert Chem.SanitizeMol(Chem.Mol(xef2.mol), catchErrors=True) == Chem.SanitizeFlags.SANITIZE_NONE  # RDKit: fine
    ethanol = _bare(_embedded("CCO"))
    result = evaluate_rdkit([ethanol, xef2, uf6, MoleculeRecord(*_arrays(uf6.mol))])
    rows = result.per_molecule
    assert [m["unknown_elements"] for m in rows] == [[], ["Xe"], ["U"], ["U"]]
    assert [m["valid"] for m in rows] == [True, False, False, False]
    assert rows[0]["smiles"] == "CCO" and all(m["smiles"] is None for m in rows[1:])
    assert rows[1]["connected"] and rows[2]["connected"]  # invalid for the element, not the graph
    # a bare geometry is not perceived: RDKit's extended-Hückel fallback ends the process on U and Xe
    assert not rows[3]["has_bonds"] and not rows[3]["connected"]
    assert result.summary["validity"] == result.summary["valid_and_connected"] == 0.25
    assert result.summary["num_unique"] == 1 and result.summary["uniqueness"] == 1.0
    assert evaluate_rdkit([ethanol]).per_molecule == rows[:1]  # the normal molecule is judged as alone
    assert rdkit_smiles_of(*_arrays(uf6.mol)) is None


def test_empty_input_is_an_error():
    with pytest.raises(ValueError, match="no molecules to evaluate"):
        evaluate_rdkit([])


@needs_qm9pack
def test_qm9_test_molecules_are_mostly_valid():
    from molgen.molecules.qm9 import QM9Dataset

    data = QM9Dataset("test", subset=1000)
    records = [MoleculeRecord(d.z.numpy(), d.pos.numpy()) for d in (data[i] for i in range(1000))]
    summary = evaluate_rdkit(records).summary
    # On the full 13,083-molecule test split 94.7% are valid; every failure is a bond
    # perception failure (connect-the-dots adds 1-2 C-C bonds across strained rings).
    # This fixed subset scores 96.2%; a 1000-molecule sample of a 94.7% rate has a
    # standard deviation of 0.7%, so 93% leaves more than 2 sigma of room.
    assert summary["validity"] >= 0.93
    assert summary["valid_and_connected"] == summary["validity"]
    assert summary["uniqueness"] == 1.0
