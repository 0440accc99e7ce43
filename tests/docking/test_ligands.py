"""Ligand preparation from SDF records as generated: repairs reported, bad records refused with a category."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.docking.ligands import LigandError, prepare_ligand, read_sdf_blocks
from tests.docking.conftest import NEEDS_EXTRA, embedded, molblock, write_sdf_text

pytest.importorskip("vina", reason=NEEDS_EXTRA)
pytest.importorskip("meeko", reason=NEEDS_EXTRA)


def test_a_complete_molecule_is_prepared_unchanged():
    mol = embedded("c1ccccc1CC(=O)N")
    ligand = prepare_ligand(molblock(mol))
    assert ligand.changes == {}
    assert ligand.mol.GetNumAtoms() == mol.GetNumAtoms()
    np.testing.assert_allclose(ligand.mol.GetConformer().GetPositions(), mol.GetConformer().GetPositions(), atol=1e-3)
    assert ligand.pdbqt.startswith("REMARK SMILES") and "TORSDOF" in ligand.pdbqt


def test_missing_hydrogens_are_added_with_coordinates():
    heavy = embedded("CCO", hydrogens=False)
    ligand = prepare_ligand(molblock(heavy))
    assert ligand.changes["hydrogens_added"] == "added 6 hydrogens with coordinates"
    assert ligand.mol.GetNumAtoms() == 9
    xyz = ligand.mol.GetConformer().GetPositions()
    assert np.isfinite(xyz).all() and np.linalg.norm(xyz[3:] - xyz[:3].mean(axis=0), axis=1).max() < 3.0


def test_largest_fragment_is_kept_or_the_molecule_refused():
    mol = embedded("c1ccccc1O.CC")
    ligand = prepare_ligand(molblock(mol))
    assert ligand.changes["largest_fragment"] == "kept the largest of 2 fragments (7 of 9 heavy atoms)"
    assert Chem.MolToSmiles(Chem.RemoveHs(ligand.mol)) == "Oc1ccccc1"
    with pytest.raises(LigandError, match="2 fragments") as err:
        prepare_ligand(molblock(mol), largest_fragment=False)
    assert err.value.category == "multiple fragments"


def test_a_salt_counter_ion_vina_cannot_type_is_dropped_with_its_fragment():
    ligand = prepare_ligand(molblock(embedded("c1ccccc1C(=O)[O-].[Na+]")))
    assert "largest_fragment" in ligand.changes


@pytest.mark.parametrize(
    ("smiles", "category"),
    [("OB(O)c1ccccc1", "element Vina cannot type"), ("c1cc[se]c1", "element Vina cannot type")],
)
def test_elements_vina_cannot_type_are_refused(smiles, category):
    with pytest.raises(LigandError) as err:
        prepare_ligand(molblock(embedded(smiles)))
    assert err.value.category == category


def test_a_bondless_record_gets_bonds_perceived():
    mol = embedded("CC(=O)O")
    bare = Chem.RWMol(mol)
    for bond in list(mol.GetBonds()):
        bare.RemoveBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
    ligand = prepare_ligand(molblock(bare.GetMol()))
    assert ligand.changes == {"bonds_perceived": "bonds perceived from the coordinates"}
    assert Chem.MolToSmiles(Chem.RemoveHs(ligand.mol)) == "CC(=O)O"


def test_bad_records_are_refused_with_a_category():
    valence = Chem.RWMol(embedded("CCO"))
    valence.AddBond(0, 2, Chem.BondType.DOUBLE)
    flat = embedded("CCCCO")
    for i in range(flat.GetNumAtoms()):
        p = flat.GetConformer().GetAtomPosition(i)
        flat.GetConformer().SetAtomPosition(i, (p.x, p.y, 0.0))
    drawing = Chem.MolFromSmiles("CCO")
    AllChem.Compute2DCoords(drawing)
    cases = [
        ("does not sanitise", Chem.MolToMolBlock(valence.GetMol(), kekulize=False)),
        ("no 3D coordinates", Chem.MolToMolBlock(flat)),
        ("no 3D coordinates", Chem.MolToMolBlock(drawing)),
        ("unreadable record", "title\n  junk\n\n  3  2  0  0\nnot an atom line\n"),
    ]
    for category, block in cases:
        with pytest.raises(LigandError) as err:
            prepare_ligand(block)
        assert err.value.category == category
        assert "\n" not in err.value.reason


def test_sdf_blocks_keep_a_corrupt_record_apart_and_a_last_record_without_terminator(tmp_path):
    good = molblock(embedded("CCO", title="first"))
    path = write_sdf_text(tmp_path / "in.sdf", [good, "corrupt\n\n$$$$\n", molblock(embedded("CCN", title="last"))])
    path.write_text(path.read_text().removesuffix("$$$$\n"))
    blocks = list(read_sdf_blocks(path))
    assert [block.split("\n")[0] for block in blocks] == ["first", "corrupt", "last"]
    with pytest.raises(FileNotFoundError):
        list(read_sdf_blocks(tmp_path / "absent.sdf"))
