import os
import time

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.io import check_writable
from molgen.molecules.sdf import (
    BONDS_PERCEIVED_TAG,
    SDFRecord,
    molecule_from_coordinates,
    read_sdf,
    write_sdf,
)


def _embedded(smiles):
    """(z [n], pos [n, 3] Å, canonical SMILES) of an ETKDG conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    return z, mol.GetConformer().GetPositions(), Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


@pytest.mark.parametrize("smiles", ["C", "O", "CCO", "C=O", "c1ccccc1"])
def test_bonds_perceived_for_real_geometries(smiles):
    z, pos, canonical = _embedded(smiles)
    mol, ok = molecule_from_coordinates(z, pos)
    assert ok and mol.GetIntProp(BONDS_PERCEIVED_TAG) == 1
    assert mol.GetNumAtoms() == len(z)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == canonical


def test_no_implicit_hydrogens_added():
    mol, _ = molecule_from_coordinates([6], [[0.0, 0.0, 0.0]])
    assert mol.GetNumAtoms() == 1 and mol.GetAtomWithIdx(0).GetTotalNumHs() == 0


def test_write_read_roundtrip(tmp_path):
    path = tmp_path / "out.sdf"
    inputs = [_embedded(s) for s in ("C", "O", "CCO")]
    records = []
    for i, (z, pos, _) in enumerate(inputs):
        mol, ok = molecule_from_coordinates(z, pos)
        records.append(SDFRecord(mol, f"sample_{i}", {"sample_index": i}))
    assert write_sdf(path, records) == 3

    mols = read_sdf(path)
    assert len(mols) == 3
    for i, (mol, (z, pos, canonical)) in enumerate(zip(mols, inputs)):
        assert mol.GetProp("_Name") == f"sample_{i}"
        assert mol.GetProp("sample_index") == str(i)
        assert mol.GetProp(BONDS_PERCEIVED_TAG) == "1"
        assert [a.GetAtomicNum() for a in mol.GetAtoms()] == z.tolist()
        np.testing.assert_allclose(mol.GetConformer().GetPositions(), pos, atol=1e-4)
        assert mol.GetNumBonds() > 0 or len(z) == 1
        assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == canonical


def test_garbage_molecule_kept_without_bonds(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.choice([1, 6, 7, 8, 9], size=29)
    pos = rng.normal(size=(29, 3))  # far too dense to be chemistry
    mol, ok = molecule_from_coordinates(z, pos)
    assert not ok and mol.GetNumBonds() == 0 and mol.GetNumAtoms() == 29

    path = tmp_path / "garbage.sdf"
    write_sdf(path, [(mol, "garbage")])
    (back,) = read_sdf(path)
    assert back.GetProp(BONDS_PERCEIVED_TAG) == "0"
    assert back.GetNumAtoms() == 29 and back.GetNumBonds() == 0
    assert sum(a.GetTotalNumHs() for a in back.GetAtoms()) == 0  # no invented hydrogens
    np.testing.assert_allclose(back.GetConformer().GetPositions(), pos, atol=1e-4)


def test_bond_order_search_is_bounded():
    # Isolated N/O pairs make the unbounded bond-order search exponential (~20 s here).
    rng = np.random.default_rng(0)
    z, pos = [], []
    for j in range(14):
        z += rng.choice([7, 7, 8], size=2).tolist()
        pos += [[5.0 * j, 0, 0], [5.0 * j + 1.25, 0, 0]]
    start = time.perf_counter()
    molecule_from_coordinates(z, pos)
    assert time.perf_counter() - start < 2.0


def test_random_garbage_never_raises():
    rng = np.random.default_rng(1)
    for scale in (0.5, 1.5, 3.0):
        for _ in range(5):
            z = rng.choice([1, 6, 7, 8, 9], size=29)
            mol, ok = molecule_from_coordinates(z, rng.normal(size=(29, 3)) * scale)
            assert mol.GetNumAtoms() == 29 and mol.GetIntProp(BONDS_PERCEIVED_TAG) == int(ok)


def test_bad_coordinates_rejected():
    with pytest.raises(ValueError, match="NaN"):
        molecule_from_coordinates([6, 1], [[0, 0, 0], [np.nan, 0, 0]])
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        molecule_from_coordinates([6, 1], [[0, 0, 0]])
    with pytest.raises(ValueError, match="1..118"):
        molecule_from_coordinates([0], [[0, 0, 0]])


def test_failed_write_leaves_existing_file_untouched(tmp_path):
    path = tmp_path / "keep.sdf"
    path.write_text("original\n")
    mol, _ = molecule_from_coordinates(*_embedded("C")[:2])

    def records():
        yield SDFRecord(mol, "first")
        raise RuntimeError("sampler crashed")

    with pytest.raises(RuntimeError, match="sampler crashed"):
        write_sdf(path, records())
    assert path.read_text() == "original\n"
    assert os.listdir(tmp_path) == ["keep.sdf"]  # temp file cleaned up

    with pytest.raises(ValueError, match="single-line"):
        write_sdf(path, [(mol, "two\nlines")])
    with pytest.raises(ValueError, match="SD tag"):
        write_sdf(path, [(mol, "ok", {"note": "a\n\nb"})])
    assert path.read_text() == "original\n"


def test_unwritable_destinations(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_writable(tmp_path / "missing" / "out.sdf")
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        write_sdf(tmp_path / "file" / "out.sdf", [])
    assert check_writable(tmp_path / "new.sdf") == tmp_path / "new.sdf"
    assert sorted(os.listdir(tmp_path)) == ["file"]  # probe file removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="cannot write"):
            check_writable(ro / "out.sdf")
    finally:
        ro.chmod(0o700)


def test_read_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_sdf(tmp_path / "nope.sdf")


def test_near_coincident_atoms_do_not_crash_bond_perception():
    # The extended-Hückel fallback segfaults on coincident atoms; it must be skipped for them.
    z = np.array([6, 6, 1, 1, 8])
    pos = np.array([[0.0, 0, 0], [1e-4, 0, 0], [0, 1.0, 0], [0, 1.0, 0], [5, 5, 5]])
    mol, ok = molecule_from_coordinates(z, pos)
    assert mol.GetNumAtoms() == 5 and not ok
