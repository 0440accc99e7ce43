"""MMFF94s strain energy: zero at a minimum, positive for a distorted pose, counted when it cannot be computed."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.molecules.metrics.strain import evaluate_strain, strain_energy


def _optimised(smiles: str) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    assert AllChem.MMFFOptimizeMolecule(mol, mmffVariant="MMFF94s", maxIters=5000) == 0
    return mol


def _stretched(mol: Chem.Mol, atom: int, by: float) -> Chem.Mol:
    """A copy with one atom moved ``by`` Å along x."""
    moved = Chem.Mol(mol)
    conformer = moved.GetConformer()
    position = conformer.GetAtomPosition(atom)
    conformer.SetAtomPosition(atom, (position.x + by, position.y, position.z))
    return moved


def test_minimum_has_no_strain_and_a_distorted_pose_has_some():
    mol = _optimised("CC(=O)Nc1ccc(O)cc1")
    before = mol.GetConformer().GetPositions()
    strain, status = strain_energy(mol)
    assert status == "ok" and abs(strain) < 1e-3
    distorted, status = strain_energy(_stretched(mol, 0, 0.3))
    assert status == "ok" and distorted > 1.0
    assert np.array_equal(mol.GetConformer().GetPositions(), before)  # optimised on a copy


def test_molecules_without_strain_are_counted():
    assert strain_energy(Chem.RemoveHs(_optimised("CCO"))) == (None, "implicit_hydrogens")
    boronic = Chem.AddHs(Chem.MolFromSmiles("OB(O)c1ccccc1"))  # MMFF94s has no boron
    AllChem.EmbedMolecule(boronic, randomSeed=7)
    assert strain_energy(boronic) == (None, "no_parameters")
    mol = _optimised("CCO")
    assert strain_energy(_stretched(mol, 0, 0.5), max_iterations=1)[1] == "not_converged"

    energies = [strain_energy(m)[0] for m in (mol, _stretched(mol, 0, 0.2), _stretched(mol, 0, 0.4))]
    result = evaluate_strain([mol, _stretched(mol, 0, 0.2), _stretched(mol, 0, 0.4), boronic])
    summary = result.summary
    assert summary["num_molecules"] == 4 and summary["num_with_strain"] == 3 and summary["num_no_parameters"] == 1
    assert summary["median_kcal_mol"] == pytest.approx(energies[1])
    q1, q3 = (energies[0] + energies[1]) / 2, (energies[1] + energies[2]) / 2  # linear interpolation of 3 values
    assert summary["q1_kcal_mol"] == pytest.approx(q1) and summary["iqr_kcal_mol"] == pytest.approx(q3 - q1)
    assert result.per_molecule[3] == {"energy": None, "status": "no_parameters"}
    with pytest.raises(ValueError, match="no molecules"):
        evaluate_strain([])
