"""The ``moses`` reference and the druglike, geometry and strain sections of an evaluation.

Runs on a tiny in-code SMILES set standing in for every MOSES file (conformers
prepared into a temporary folder), so neither the molsets wheel nor the
prepared cache is needed.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.metadata

import pytest
from rdkit import Chem

from molgen.molecules import drugs, moses
from molgen.molecules.conformers import ConformerConfig
from molgen.molecules.evaluate import evaluate_molecules, format_report
from molgen.molecules.metrics.moses_reference import (
    TRAIN_SMILES_FILE,
    moses_molecules,
    moses_reference,
    moses_train_smiles,
    record_of,
)

SMILES = ("CC(=O)Nc1ccc(O)cc1", "OC(=O)C1CCCN1", "Clc1ccc(Br)cc1S", "CCOC(=O)c1ccccc1N", "C1CC", "O=C1CCCN1C")
FAST = ConformerConfig(elements=drugs.DRUG_ELEMENTS, num_conformers=1, max_iterations=500)


@pytest.fixture
def tiny_moses(monkeypatch):
    """Every MOSES file read as SMILES above; conformers prepared fast."""
    monkeypatch.setattr(drugs, "read_moses_smiles", lambda split: SMILES)
    monkeypatch.setattr(moses, "read_moses_smiles", lambda split: SMILES)
    prepare = drugs.prepare_drugs
    monkeypatch.setattr(drugs, "prepare_drugs", lambda *args, **kwargs: prepare(*args, **{**kwargs, "config": FAST}))
    drugs.split_order.cache_clear()
    yield
    drugs.split_order.cache_clear()


def test_train_smiles_are_canonicalised_once_and_cached(tiny_moses, tmp_path, monkeypatch):
    expected = {"CC(=O)Nc1ccc(O)cc1", "O=C(O)C1CCCN1", "Sc1cc(Br)ccc1Cl", "CCOC(=O)c1ccccc1N", "CN1CCCC1=O"}
    assert moses_train_smiles(tmp_path, workers=1, progress=False) == expected  # "C1CC" does not parse
    with gzip.open(tmp_path / TRAIN_SMILES_FILE, "rt") as handle:
        assert handle.readline().startswith("# molgen: canonical SMILES of the MOSES training set, RDKit ")

    def unreadable(split):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(moses, "read_moses_smiles", unreadable)
    assert moses_train_smiles(tmp_path, workers=1, progress=False) == expected
    with gzip.open(tmp_path / TRAIN_SMILES_FILE, "wt") as handle:  # written by another RDKit version
        handle.write("# molgen: canonical SMILES of the MOSES training set, RDKit 2000.01.1\nC\n")
    with pytest.raises(AssertionError, match="cache should have been used"):
        moses_train_smiles(tmp_path, workers=1, progress=False)


def test_evaluation_against_a_druglike_reference(tiny_moses, tmp_path):
    reference = moses_reference(tmp_path, workers=1, progress=False, num_molecules=len(SMILES))
    mols = moses_molecules("test", len(SMILES), tmp_path, progress=False)
    assert reference.edm_smiles is None and reference.druglike.num_molecules == len(mols) >= 3
    assert all(m.GetProp("hydrogens") == "mmff" and m.GetNumAtoms() > m.GetNumHeavyAtoms() for m in mols)
    records = [record_of(mol, str(i)) for i, mol in enumerate(mols)]
    evaluation = evaluate_molecules(records, reference=reference, posebusters_max=0)
    report = evaluation.report
    assert report["rdkit"]["novelty"] == 0.0  # the test molecules are among the training SMILES here
    assert "novelty" not in report["edm"] and any("edm: no novelty" in note for note in report["notes"])
    druglike = report["druglike"]
    assert druglike["num_molecules"] == len(mols) and druglike["snn"] == pytest.approx(1.0)
    assert druglike["frag_similarity"] == pytest.approx(1.0) and druglike["qed_w1"] == 0.0
    assert report["geometry"]["bond_length_w1"] == pytest.approx(0.0, abs=1e-6)
    # heavy atoms at an MMFF94s minimum, hydrogens relaxed around them: little strain
    assert report["strain"]["num_with_strain"] == len(mols) and report["strain"]["median_kcal_mol"] < 5.0
    row = evaluation.per_molecule[0]
    assert {"druglike_qed", "druglike_sa", "druglike_filters_passed", "strain_energy", "strain_status"} <= set(row)
    text = format_report(report)
    assert "[druglike]" in text and "[strain]" in text
    pains = next(line for line in text.splitlines() if "pains_pass" in line)
    intdiv = next(line for line in text.splitlines() if "intdiv1" in line)
    assert pains.endswith("%") and not intdiv.endswith("%")

    heavy = [Chem.RemoveHs(mol) for mol in mols]  # as read from an SDF written without hydrogens
    implicit = [sum(atom.GetTotalNumHs() for atom in mol.GetAtoms()) for mol in heavy]
    heavy = [dataclasses.replace(record_of(mol), implicit_hydrogens=n) for mol, n in zip(heavy, implicit)]
    without_h = evaluate_molecules(heavy, reference=reference, posebusters_max=0).report
    assert without_h["druglike"]["snn"] == pytest.approx(1.0) and "strain" not in without_h
    assert any(note.startswith("strain: skipped") for note in without_h["notes"])


def test_missing_molsets_is_one_line(monkeypatch):
    from molgen.molecules.evaluate import load_reference

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    drugs.split_order.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match=r"needs the molsets wheel: pip install --no-deps molsets"):
            load_reference("moses", progress=False)
    finally:
        drugs.split_order.cache_clear()
