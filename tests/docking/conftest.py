"""Fixtures for docking tests: a peptide receptor and small ligands built in code, and the optional
real complexes in ``../shared/data/complexes`` (skipped where absent). Test modules that need the
``molgen[dock]`` extra skip themselves without it (:data:`NEEDS_EXTRA`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

#: Real protein-ligand complexes with reference redocks, present only on development machines and CI.
SHARED_COMPLEXES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "complexes"

NEEDS_EXTRA = "needs the molgen[dock] extra (vina, meeko)"

PEPTIDE = "GSAWYDKLG"
"""The test receptor: a 9-residue peptide, embedded extended along one axis (~24 A)."""


@pytest.fixture(scope="session")
def peptide() -> Chem.Mol:
    """The peptide, heavy atoms only (meeko adds hydrogens), with PDB residue information."""
    mol = Chem.AddHs(Chem.MolFromSequence(PEPTIDE))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    return Chem.RemoveHs(mol)


@pytest.fixture(scope="session")
def receptor_pdb(peptide: Chem.Mol, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("receptor") / "peptide.pdb"
    path.write_text(Chem.MolToPDBBlock(peptide))
    return path


def residue_center(peptide: Chem.Mol, number: int) -> tuple[float, float, float]:
    """Centroid (A) of residue ``number``'s atoms."""
    xyz = peptide.GetConformer().GetPositions()
    rows = [a.GetIdx() for a in peptide.GetAtoms() if a.GetPDBResidueInfo().GetResidueNumber() == number]
    return tuple(float(v) for v in xyz[rows].mean(axis=0))


def embedded(smiles: str, center=(0.0, 0.0, 0.0), title: str = "", hydrogens: bool = True, seed: int = 1) -> Chem.Mol:
    """A 3D molecule from SMILES (ETKDG, with hydrogens for the embedding), centred at ``center``;
    ``hydrogens=False`` removes them afterwards (a record with implicit hydrogens)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    conf = mol.GetConformer()
    shift = np.asarray(center) - conf.GetPositions().mean(axis=0)
    for i, xyz in enumerate(conf.GetPositions() + shift):
        conf.SetAtomPosition(i, xyz.tolist())
    if not hydrogens:
        mol = Chem.RemoveHs(mol)
    mol.SetProp("_Name", title or smiles)
    return mol


def write_sdf_text(path: Path, blocks: list[str]) -> Path:
    """An SDF of the given record blocks (molfile text, each closed with ``$$$$``)."""
    path.write_text("".join(block if block.endswith("\n") else block + "\n" for block in blocks).replace("\r", ""))
    return path


def molblock(mol: Chem.Mol) -> str:
    return Chem.MolToMolBlock(mol) + "$$$$\n"


@pytest.fixture
def complexes() -> Path:
    """``../shared/data/complexes``; skips the test when it is absent."""
    if not (SHARED_COMPLEXES / "1iep" / "meta.json").is_file():
        pytest.skip(f"real complexes not found at {SHARED_COMPLEXES}")
    return SHARED_COMPLEXES
