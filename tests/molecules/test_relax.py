"""`molgen sample --relax` for molecules: MMFF94s minimisation that keeps the molecule and its fixed atoms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.domains import molecules as molecule_domain
from molgen.domains.molecules import GeneratedMolecule
from molgen.molecules.metrics.strain import strain_energy
from molgen.molecules.relax import relax_molecule, relaxation_summary
from molgen.molecules.sdf import molecule_from_graph
from tests.helpers import save_tiny_checkpoint


def _noisy(smiles: str, sigma: float = 0.08, seed: int = 0) -> Chem.Mol:
    """An MMFF94s minimum with every atom displaced by Gaussian noise of ``sigma`` Å per axis."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    AllChem.MMFFOptimizeMolecule(mol, mmffVariant="MMFF94s", maxIters=5000)
    conformer = mol.GetConformer()
    noisy = conformer.GetPositions() + np.random.default_rng(seed).normal(0, sigma, (mol.GetNumAtoms(), 3))
    for index, position in enumerate(noisy):
        conformer.SetAtomPosition(index, position.tolist())
    return mol


def test_relaxation_removes_the_strain_it_reports():
    mol = _noisy("CC(=O)Nc1ccc(O)cc1")
    before = mol.GetConformer().GetPositions()
    strain, _ = strain_energy(mol)
    result = relax_molecule(mol)
    assert result.status == "relaxed" and not result.stereo_changed
    assert result.energy_drop == pytest.approx(strain, rel=1e-6) and strain > 5.0
    assert strain_energy(result.mol)[0] < 0.01  # at its minimum now
    assert 0.02 < result.heavy_rmsd < 0.5
    assert Chem.MolToSmiles(result.mol) == Chem.MolToSmiles(mol)  # same graph, atoms in the same order
    assert np.array_equal(mol.GetConformer().GetPositions(), before)  # the input is not modified


def test_a_tethered_relaxation_polishes_the_pose_where_it_stands():
    """The tether keeps heavy atoms near the pose, removes most of the strain, and reports MMFF energies alone."""
    mol = _noisy("CC(=O)Nc1ccc(O)cc1", sigma=0.05)
    strain, _ = strain_energy(mol)
    free = relax_molecule(mol)
    tight, loose = (relax_molecule(mol, restraint_sigma=sigma) for sigma in (0.05, 0.5))
    assert tight.status == loose.status == "relaxed" and not tight.stereo_changed
    assert tight.heavy_rmsd < loose.heavy_rmsd < free.heavy_rmsd
    assert tight.energy_drop < loose.energy_drop < free.energy_drop == pytest.approx(strain, rel=1e-6)
    for result in (tight, loose):  # the energy drop is MMFF94s's: the strain before minus the strain left
        assert result.energy_drop == pytest.approx(strain - strain_energy(result.mol)[0], abs=1e-3)
    assert strain_energy(tight.mol)[0] > 0.5 and strain_energy(loose.mol)[0] < 0.5 * strain
    with pytest.raises(ValueError, match="positive number"):
        relax_molecule(mol, restraint_sigma=0.0)


@pytest.mark.parametrize("smiles", ["O=c1cccn[nH]1", "CC(=O)Nc1nn(C)c(=O)[nH]1"])
def test_rings_mmff_calls_non_aromatic_keep_their_aromaticity(smiles):
    """MMFF's own aromaticity model must neither change the molecule returned nor count as a stereo change."""
    mol = _noisy(smiles, sigma=0.03)
    Chem.SanitizeMol(mol)  # RDKit's perception again (_noisy's MMFF optimisation re-flagged it in place)
    assert any(atom.GetIsAromatic() for atom in mol.GetAtoms())
    for sigma in (None, 0.25):
        result = relax_molecule(mol, restraint_sigma=sigma)
        assert result.status == "relaxed" and result.stereo_changed is False
        assert Chem.MolToSmiles(result.mol) == Chem.MolToSmiles(mol)
        assert [a.GetIsAromatic() for a in result.mol.GetAtoms()] == [a.GetIsAromatic() for a in mol.GetAtoms()]


def test_fixed_atoms_do_not_move():
    mol = _noisy("C[C@H](N)C(=O)O", sigma=0.1)
    before = mol.GetConformer().GetPositions()
    result = relax_molecule(mol, fixed_atoms=[0, 1, 2, 3])
    after = result.mol.GetConformer().GetPositions()
    assert np.abs(after[:4] - before[:4]).max() == 0.0
    assert np.abs(after[4:] - before[4:]).max() > 0.01
    assert not result.stereo_changed


def test_a_collapsed_pose_is_left_as_generated():
    """A diverged sample written with its atoms at the origin has no finite MMFF energy: never 'relaxed'."""
    mol = _noisy("CCO")
    for index in range(mol.GetNumAtoms()):
        mol.GetConformer().SetAtomPosition(index, (0.0, 0.0, 0.0))
    result = relax_molecule(mol)
    assert result.status == "non_finite_energy" and result.mol is mol and result.energy_drop is None
    assert strain_energy(mol) == (None, "non_finite_energy")


def test_unsanitisable_molecules_are_left_as_generated_and_counted():
    overvalent = molecule_from_graph([6, 6, 6, 6, 6, 6], np.eye(6, 3) * 1.5, [(0, i, 1) for i in range(1, 6)], [0] * 6)
    result = relax_molecule(overvalent)
    assert result.status == "not_sanitized" and result.mol is overvalent and result.energy_drop is None
    relaxed = relax_molecule(_noisy("CCO"))
    summary = relaxation_summary([result, relaxed])
    assert summary["num_molecules"] == 2 and summary["num_relaxed"] == 1 and summary["num_not_sanitized"] == 1
    assert summary["median_energy_drop_kcal_mol"] == pytest.approx(relaxed.energy_drop)
    assert summary["stereo_changed_fraction"] == 0.0


def test_sample_relax_writes_relaxed_molecules_and_reports_them(tmp_path, monkeypatch, capsys):
    """The CLI path: heavy-atom samples get hydrogens, then relaxation; SD tags and the report say so."""
    from molgen.cli import main

    heavy = Chem.RemoveHs(_noisy("CC(=O)Nc1ccc(O)cc1", sigma=0.05))
    Chem.Kekulize(heavy, clearAromaticFlags=True)
    sample = GeneratedMolecule(
        np.array([a.GetAtomicNum() for a in heavy.GetAtoms()]),
        heavy.GetConformer().GetPositions(),
        np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), int(b.GetBondTypeAsDouble())) for b in heavy.GetBonds()]),
        np.zeros(heavy.GetNumAtoms(), dtype=np.int64),
        place_hydrogens=True,
    )
    overvalent = GeneratedMolecule(
        np.full(6, 6), np.eye(6, 3) * 1.5, np.array([(0, i, 1) for i in range(1, 6)]), np.zeros(6, np.int64), True
    )
    monkeypatch.setattr(molecule_domain, "generate_on_ranks", lambda *args, **kwargs: [sample, overvalent])
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.ckpt")
    out, report = tmp_path / "relaxed.sdf", tmp_path / "report.json"
    args = ["sample", "--ckpt", str(ckpt), "--out", str(out), "--num-samples", "2", "--no-progress"]
    assert main([*args, "--relax", "--evaluate", "--reference", "none", "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "relaxed 1 of 2 with MMFF94s" in printed and "left as generated: 1 not sanitized" in printed
    written = list(Chem.SDMolSupplier(str(out), removeHs=False))
    assert [m.GetProp("relaxation") if m else None for m in written] == ["relaxed", None]  # the second is invalid
    relaxed = written[0]
    assert strain_energy(relaxed)[0] < 0.1
    moved = relaxed.GetConformer().GetPositions()[: heavy.GetNumAtoms()] - heavy.GetConformer().GetPositions()
    assert 0.01 < np.sqrt((moved**2).sum(1).mean()) < 0.5
    section = json.loads(report.read_text())["relaxation"]
    assert section["num_relaxed"] == 1 and section["median_energy_drop_kcal_mol"] > 1.0
    assert section["restraint_sigma_A"] is None

    tethered = tmp_path / "tethered.sdf"
    assert main([*args[:4], str(tethered), *args[5:], "--relax", "--relax-restraint", "0.1"]) == 0
    assert "heavy atoms tethered (width 0.1 A)" in capsys.readouterr().out
    kept = next(iter(Chem.SDMolSupplier(str(tethered), removeHs=False)))
    moved = kept.GetConformer().GetPositions()[: heavy.GetNumAtoms()] - heavy.GetConformer().GetPositions()
    assert np.sqrt((moved**2).sum(1).mean()) < 0.1 and strain_energy(kept)[0] > strain_energy(relaxed)[0]
