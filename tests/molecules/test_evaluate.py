"""`molgen evaluate` / `molgen sample --evaluate`: the report a user reads, on molecules built in code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.cli import main
from molgen.molecules.evaluate import evaluate_molecules, format_report
from molgen.molecules.metrics.reference import Reference
from molgen.molecules.record import MoleculeRecord
from molgen.molecules.sdf import SDFRecord, read_records, write_sdf
from tests.helpers import save_tiny_checkpoint

# no aromatic rings: EDM length tables cannot assign Kekulé orders to 1.39 Å ring bonds
SMILES = ["CCO", "CC(=O)O", "C1CCCCC1", "CC#N", "OCC(O)CO", "CN(C)C"]


def embedded(smiles: str, hydrogens: bool = True) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(mol)
    return mol if hydrogens else Chem.RemoveHs(mol)


def record(mol: Chem.Mol, keep_bonds: bool = True) -> MoleculeRecord:
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    return MoleculeRecord(z, mol.GetConformer().GetPositions(), mol if keep_bonds else None, Chem.MolToSmiles(mol))


@pytest.fixture(scope="module")
def good_sdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("sdf") / "good.sdf"
    write_sdf(path, [SDFRecord(embedded(s), s) for s in SMILES])
    return path


def test_report_sections_and_fractions():
    records = [record(embedded(s), keep_bonds=False) for s in SMILES]
    reference = Reference.from_records("ref", records[:3], progress=False)
    evaluation = evaluate_molecules(records, reference=reference)
    report = evaluation.report
    assert set(report) >= {"input", "edm", "rdkit", "posebusters", "distribution", "notes"}
    for key in ("atom_stability", "mol_stability", "validity", "uniqueness", "novelty"):
        assert 0.0 <= report["edm"][key] <= 1.0
    assert report["edm"]["mol_stability"] == 1.0 and report["rdkit"]["validity"] == 1.0
    # half of the molecules are in the reference
    assert report["edm"]["novelty"] == pytest.approx(0.5) and report["rdkit"]["novelty"] == pytest.approx(0.5)
    assert report["distribution"]["atom_type_tv"] >= 0.0
    assert all(row["edm_mol_stable"] and row["rdkit_valid"] for row in evaluation.per_molecule)
    assert "validity" in format_report(report)


def test_corrupted_molecules_score_lower():
    rng = np.random.default_rng(0)
    clean = [record(embedded(s), keep_bonds=False) for s in SMILES]
    jittered = [MoleculeRecord(r.atomic_numbers, r.positions + rng.normal(0, 0.3, r.positions.shape)) for r in clean]
    base = evaluate_molecules(clean).report
    worse = evaluate_molecules(jittered).report
    assert worse["edm"]["mol_stability"] < base["edm"]["mol_stability"]
    assert worse["rdkit"]["validity"] < base["rdkit"]["validity"]


def test_unsupported_elements_are_invalid_and_reported():
    records = [record(embedded(s), keep_bonds=False) for s in ("CCO", "CCCl")]
    evaluation = evaluate_molecules(records)
    assert evaluation.report["edm"]["validity"] == 0.5
    assert any("Cl" in note and "1 molecules" in note for note in evaluation.report["notes"])
    assert not evaluation.per_molecule[1]["edm_valid"]


def test_implicit_hydrogens_skip_edm_with_a_note(tmp_path):
    path = tmp_path / "implicit.sdf"
    write_sdf(path, [SDFRecord(embedded(s, hydrogens=False), s) for s in SMILES])
    records, problems = read_records(path)
    report = evaluate_molecules(records, problems=problems).report
    assert report["edm"] == {} and any("implicit hydrogens" in n for n in report["notes"])
    assert report["rdkit"]["validity"] == 1.0  # bonds from the file


def test_cli_evaluate_json_and_annotate(good_sdf, tmp_path, capsys):
    out_json, annotated = tmp_path / "r.json", tmp_path / "a.sdf"
    assert (
        main(
            [
                "evaluate",
                str(good_sdf),
                "--reference",
                str(good_sdf),
                "--json",
                str(out_json),
                "--annotate",
                str(annotated),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "[edm]" in capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert report["edm"]["novelty"] == 0.0  # every molecule is in its own reference
    assert report["distribution"]["atom_type_tv"] == pytest.approx(0.0, abs=1e-12)
    mols = list(Chem.SDMolSupplier(str(annotated), removeHs=False))
    assert len(mols) == len(SMILES) and all(m.GetProp("edm_mol_stable") == "1" for m in mols)


def test_cli_evaluate_bad_input(tmp_path, capsys):
    empty = tmp_path / "empty.sdf"
    empty.write_text("")
    broken = tmp_path / "broken.sdf"
    broken.write_text("garbage\n$$$$\n")
    assert main(["evaluate", str(tmp_path / "missing.sdf"), "--reference", "none"]) == 1
    assert main(["evaluate", str(empty), "--reference", "none"]) == 1
    assert main(["evaluate", str(broken), "--reference", "none"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("molgen evaluate: error: ") for e in errors)
    assert "not found" in errors[0] and "no molecules" in errors[1] and "1 unreadable" in errors[2]


def test_cli_evaluate_counts_unreadable_and_nan_records(good_sdf, tmp_path, capsys):
    mixed = tmp_path / "mixed.sdf"
    text = good_sdf.read_text()
    lines = text.split("$$$$\n")[0].splitlines()
    lines[4] = f"{'nan':>10}" + lines[4][10:]  # first atom's x coordinate
    nan_block = "\n".join(lines) + "\n$$$$\n"
    broken_block = "broken\n  header\n\nnot a counts line\nM  END\n$$$$\n"
    mixed.write_text(text + broken_block + nan_block)
    out_json = tmp_path / "m.json"
    assert main(["evaluate", str(mixed), "--reference", "none", "--json", str(out_json)]) == 0
    report = json.loads(out_json.read_text())
    assert report["input"]["num_records"] == len(SMILES) + 2
    assert report["input"]["num_unreadable"] == 2 and report["input"]["num_evaluated"] == len(SMILES)


def test_sample_evaluate_and_filter(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.ckpt")
    out, report_path = tmp_path / "s.sdf", tmp_path / "s.json"
    assert (
        main(
            [
                "sample",
                "--ckpt",
                str(ckpt),
                "--out",
                str(out),
                "--steps",
                "3",
                "--num-samples",
                "6",
                "--reference",
                "none",
                "--filter",
                "valid",
                "--json",
                str(report_path),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    kept = round(report["rdkit"]["validity"] * 6)
    assert f"kept {kept}, dropped {6 - kept}" in printed and "[rdkit]" in printed
    assert out.read_text().count("$$$$") == kept
    assert report["input"]["num_evaluated"] == 6
