import importlib.util
import sys

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.molecules.metrics.posebusters_checks import evaluate_posebusters
from molgen.molecules.record import MoleculeRecord

pytestmark = pytest.mark.skipif(importlib.util.find_spec("posebusters") is None, reason="posebusters not installed")


def _embedded(smiles):
    """RDKit molecule with hydrogens and an MMFF-optimised ETKDG conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


def _record(mol, keep_bonds=False, name=""):
    """Record of ``mol``'s conformer; with ``keep_bonds`` the molecule (and its bonds) travels along."""
    z = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()])
    return MoleculeRecord(z, mol.GetConformer().GetPositions(), mol if keep_bonds else None, name)


def _moved(mol, atom, position):
    """Copy of ``mol`` with ``atom`` placed at ``position``; bonds unchanged."""
    mol = Chem.Mol(mol)
    mol.GetConformer().SetAtomPosition(atom, [float(x) for x in position])
    return mol


def _check_names(result):
    return [k for k in result.summary if not k.startswith("num_") and k != "all_passed"]


def test_embedded_molecules_pass():
    records = [_record(_embedded(s), name=s) for s in ("CCO", "c1ccccc1", "CC(=O)N")]
    records.append(_record(_embedded("C1CCCCC1"), keep_bonds=True, name="cyclohexane"))
    result = evaluate_posebusters(records, energy=False)
    assert "internal_energy" not in result.summary
    assert {"bond_lengths", "internal_steric_clash", "non_aromatic_ring_non_flatness"} <= set(result.summary)
    assert all(result.summary[name] == 1.0 for name in _check_names(result))
    assert result.summary["all_passed"] == 1.0
    assert result.summary["num_evaluated"] == 4
    assert result.summary["num_without_bonds"] == result.summary["num_errors"] == 0
    assert all(entry["all_passed"] and entry["error"] is None for entry in result.per_molecule)


def test_energy_check_passes_for_relaxed_geometry():
    result = evaluate_posebusters([_record(_embedded("CCO"))], energy=True)
    assert result.per_molecule[0]["internal_energy"] is True
    assert result.summary["all_passed"] == 1.0


def test_stretched_bond_fails_bond_lengths():
    mol = _embedded("CCO")
    conf = mol.GetConformer()
    c, o = np.array(conf.GetAtomPosition(1)), np.array(conf.GetAtomPosition(2))
    stretched = _moved(mol, 2, c + 2.5 * (o - c) / np.linalg.norm(o - c))
    entry = evaluate_posebusters([_record(stretched, keep_bonds=True)], energy=False).per_molecule[0]
    assert entry["has_bonds"] and entry["sanitization"]
    assert entry["bond_lengths"] is False and not entry["all_passed"]


def test_overlapping_atoms_fail_clash_check():
    mol = _embedded("CCCCCC")
    conf = mol.GetConformer()
    # Put the last carbon 0.5 Å from the first: non-bonded heavy atoms almost on top of each other.
    first = np.array(conf.GetAtomPosition(0))
    clashing = _moved(mol, 5, first + np.array([0.5, 0.0, 0.0]))
    entry = evaluate_posebusters([_record(clashing, keep_bonds=True)], energy=False).per_molecule[0]
    assert entry["internal_steric_clash"] is False and not entry["all_passed"]


def test_molecule_without_perceivable_bonds_fails_every_check():
    lonely = MoleculeRecord(np.array([6, 8]), np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]]), name="apart")
    result = evaluate_posebusters([lonely, _record(_embedded("CO"))], energy=False)
    entry = result.per_molecule[0]
    assert not entry["has_bonds"] and entry["error"] is None
    assert all(entry[name] is False for name in _check_names(result))
    assert result.summary["num_without_bonds"] == 1
    assert result.summary["all_passed"] == 0.5
    assert all(0.0 <= result.summary[name] <= 1.0 for name in [*_check_names(result), "all_passed"])


def test_posebusters_exception_counts_as_failure(monkeypatch):
    import posebusters

    def explode(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(posebusters.PoseBusters, "bust", explode)
    result = evaluate_posebusters([_record(_embedded("CO"))], energy=False)
    assert result.per_molecule[0]["error"] == "RuntimeError: boom"
    assert result.summary["num_errors"] == 1 and result.summary["all_passed"] == 0.0


def test_subset_is_seeded_and_deterministic():
    records = [_record(_embedded(s), name=s) for s in ("C", "O", "N", "CC", "CO")]

    def evaluated(seed):
        result = evaluate_posebusters(records, max_molecules=2, energy=False, seed=seed)
        assert result.summary["num_evaluated"] == 2 and len(result.per_molecule) == 5
        return [i for i, entry in enumerate(result.per_molecule) if entry is not None]

    assert evaluated(3) == evaluated(3)
    assert len({tuple(evaluated(seed)) for seed in range(5)}) > 1


def test_workers_give_the_same_results():
    records = [_record(_embedded(s), name=s) for s in ("CCO", "c1ccccc1", "CC=O")]
    records.append(MoleculeRecord(np.array([6, 8]), np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])))
    serial = evaluate_posebusters(records, energy=False)
    parallel = evaluate_posebusters(records, energy=False, workers=2)
    assert parallel.per_molecule == serial.per_molecule
    assert parallel.summary == serial.summary


@pytest.mark.parametrize("kwargs", [{"max_molecules": 0}, {"workers": 0}])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        evaluate_posebusters([_record(_embedded("C"))], **kwargs)


def test_empty_input_rejected():
    with pytest.raises(ValueError, match="no molecules"):
        evaluate_posebusters([])


def test_missing_posebusters_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "posebusters", None)  # makes `import posebusters` fail
    with pytest.raises(ImportError, match="pip install posebusters"):
        evaluate_posebusters([_record(_embedded("C"))])


def test_undecided_check_passes_only_for_sanitizable_molecules(monkeypatch):
    import posebusters.posebusters

    # Stands in for the energy check on a strained cage whose reference ensemble fails to embed.
    monkeypatch.setitem(
        posebusters.posebusters.module_dict,
        "energy_ratio",
        lambda mol_pred, **kwargs: {"results": {"energy_ratio_passes": float("nan")}},
    )
    broken = Chem.RWMol(_embedded("CC"))
    hydrogens = [atom.GetIdx() for atom in broken.GetAtoms() if atom.GetAtomicNum() == 1]
    broken.AddBond(hydrogens[0], hydrogens[-1], Chem.BondType.SINGLE)  # divalent hydrogen
    records = [_record(_embedded("CCO")), _record(broken.GetMol(), keep_bonds=True)]
    result = evaluate_posebusters(records, energy=True)
    good, bad = result.per_molecule
    assert good["internal_energy"] is None and good["all_passed"]
    assert bad["sanitization"] is False and bad["bond_lengths"] is None and not bad["all_passed"]
    assert result.summary["internal_energy"] == result.summary["bond_lengths"] == 0.5
    assert result.summary["num_undecided"] == 1


def test_record_positions_are_the_geometry_judged():
    mol = _embedded("CCO")
    bonds_only = Chem.Mol(mol)
    bonds_only.RemoveAllConformers()
    good = MoleculeRecord(_record(mol).atomic_numbers, mol.GetConformer().GetPositions(), bonds_only)
    mismatched = MoleculeRecord(good.atomic_numbers[:3], good.positions[:3], bonds_only, "mismatch")
    result = evaluate_posebusters([good, mismatched], energy=False)
    assert result.per_molecule[0]["all_passed"]
    assert result.per_molecule[1]["error"] is not None and not result.per_molecule[1]["all_passed"]
    assert result.summary["num_errors"] == 1 and result.summary["num_without_bonds"] == 0
