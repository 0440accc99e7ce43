"""Hydrogens placed at export: heavy atoms fixed, hydrogens where MMFF94s puts them."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.molecules.hydrogens import place_hydrogens
from molgen.molecules.sdf import molecule_from_graph


def _optimised(smiles: str) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(mol, mmffVariant="MMFF94s", maxIters=2000)
    return mol


def _heavy_graph(mol: Chem.Mol) -> Chem.Mol:
    """The heavy-atom graph as a joint model generates it (Kekulé, all atoms NoImplicit)."""
    heavy = Chem.RemoveHs(mol)
    Chem.Kekulize(heavy, clearAromaticFlags=True)
    z = [a.GetAtomicNum() for a in heavy.GetAtoms()]
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), int(b.GetBondTypeAsDouble())) for b in heavy.GetBonds()]
    charges = [a.GetFormalCharge() for a in heavy.GetAtoms()]
    return molecule_from_graph(z, heavy.GetConformer().GetPositions(), bonds, charges)


def _ch_lengths(mol: Chem.Mol) -> dict[int, float]:
    """C-H bond length (Å) of each hydrogen, keyed by the index of its carbon and its rank there."""
    pos = mol.GetConformer().GetPositions()
    lengths = {}
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 6:
            hs = sorted(
                np.linalg.norm(pos[n.GetIdx()] - pos[atom.GetIdx()])
                for n in atom.GetNeighbors()
                if n.GetAtomicNum() == 1
            )
            lengths.update({(atom.GetIdx(), k): d for k, d in enumerate(hs)})
    return lengths


@pytest.mark.parametrize("smiles", ["CC(=O)Nc1ccc(O)cc1", "CC[N+](=O)[O-]", "OC(=O)C1CCCN1", "Clc1ccc(CBr)cc1S"])
def test_heavy_atoms_stay_and_hydrogens_get_mmff_lengths(smiles):
    reference = _optimised(smiles)
    heavy = _heavy_graph(reference)
    placed, how = place_hydrogens(heavy)
    assert how == "mmff"
    n = heavy.GetNumAtoms()
    assert placed.GetNumAtoms() == reference.GetNumAtoms()
    assert all(a.GetAtomicNum() == 1 for a in placed.GetAtoms() if a.GetIdx() >= n)
    moved = np.abs(placed.GetConformer().GetPositions()[:n] - heavy.GetConformer().GetPositions()).max()
    assert moved <= 1e-6
    ours, mmff = _ch_lengths(placed), _ch_lengths(reference)
    assert ours.keys() == mmff.keys() and ours
    assert max(abs(ours[k] - mmff[k]) for k in ours) < 0.02
    assert placed.GetIntProp("bonds_generated") == 1
    Chem.SanitizeMol(placed)


def test_a_sanitised_heavy_atom_graph_gets_its_hydrogens():
    heavy = _heavy_graph(_optimised("CC(=O)Nc1ccc(O)cc1"))
    Chem.SanitizeMol(heavy)  # NoImplicit atoms: the open valences become radicals
    placed, how = place_hydrogens(heavy)
    assert how == "mmff" and placed.GetNumAtoms() == 20


def test_rings_mmff_calls_non_aromatic_come_back_as_rdkit_perceives_them():
    """MMFF typing re-flags aromaticity in place by its own rules; the placed molecule must not carry that."""
    placed, how = place_hydrogens(_heavy_graph(_optimised("CC(=O)Nc1nn(C)c(=O)[nH]1")))
    assert how == "mmff"
    expected = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1nn(C)c(=O)[nH]1"))
    assert Chem.MolToSmiles(placed) == Chem.MolToSmiles(expected)


def test_impossible_valence_is_left_without_hydrogens():
    pentavalent = molecule_from_graph(
        [6] * 6, np.random.default_rng(0).normal(size=(6, 3)) * 2, [(0, k, 1) for k in range(1, 6)]
    )
    placed, how = place_hydrogens(pentavalent)
    assert how == "not_placed" and placed.GetNumAtoms() == 6


def test_needs_coordinates():
    with pytest.raises(ValueError, match="3D conformer"):
        place_hydrogens(Chem.MolFromSmiles("CCO"))
