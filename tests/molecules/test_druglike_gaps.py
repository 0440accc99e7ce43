"""scripts/druglike_gaps.py: its SA terms rebuild the SA score, its strain terms sum to the strain."""

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.molecules.metrics.strain import strain_energy
from tests.helpers import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("druglike_gaps")


@pytest.mark.parametrize(
    "smiles", ["CC(=O)Nc1ccc(O)cc1", "C[C@H](N)C(=O)O", "C1CC2(C1)CCN2C(=O)c1ccncc1", "CC1CC(C)CC(C)C1"]
)
def test_the_sa_terms_rebuild_the_sa_score(script, smiles):
    terms = script.sa_terms(Chem.MolFromSmiles(smiles))
    raw = (
        terms["fragment"]
        - terms["size_penalty"]
        - terms["stereo_penalty"]
        - terms["spiro_penalty"]
        - terms["bridge_penalty"]
        - terms["macrocycle_penalty"]
        + terms["symmetry_bonus"]
    )
    assert 11.0 - (raw + 5.0) / 6.5 * 9.0 == pytest.approx(terms["sa"], abs=1e-9)  # below 8: no smoothing
    assert 0.0 <= terms["unknown_fraction"] < 1.0


def test_stereocentres_and_spiro_atoms_are_counted(script):
    assert script.sa_terms(Chem.MolFromSmiles("CC(N)C(O)CC"))["stereocentres"] == 2
    spiro = script.sa_terms(Chem.MolFromSmiles("C1CC2(C1)CCN2C(=O)c1ccncc1"))
    assert spiro["spiro_penalty"] == pytest.approx(np.log10(2))


def test_the_strain_terms_sum_to_the_strain(script):
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"))
    assert AllChem.EmbedMolecule(mol, randomSeed=3) == 0
    conformer = mol.GetConformer()
    noisy = conformer.GetPositions() + np.random.default_rng(0).normal(0, 0.05, (mol.GetNumAtoms(), 3))
    for index, position in enumerate(noisy):
        conformer.SetAtomPosition(index, position.tolist())
    terms = script.strain_terms(mol)
    assert sum(terms.values()) == pytest.approx(strain_energy(mol)[0], rel=1e-4)
    assert terms["Bond"] > 1.0 and terms["Angle"] > 1.0  # noise of 0.05 A stretches bonds and bends angles
    assert np.array_equal(mol.GetConformer().GetPositions(), noisy)  # the input is not modified


def test_rare_environments_name_what_pubchem_lacks(script):
    common = script.rare_environments([Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1")])
    odd = script.rare_environments([Chem.MolFromSmiles("C=CC(N)=CC=C1CC1")])
    assert len(odd) > len(common)
    assert all(count >= 1 and Chem.MolFromSmiles(smiles, sanitize=False) is not None for smiles, count in odd)
