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


def hand_written_block(title: str, atoms: list[tuple[str, tuple[float, float, float]]], bonds: list[tuple]) -> str:
    """A V2000 record as other tools write it: single bonds, no valence field (RDKit guesses hydrogens)."""
    lines = [title, "  hand", "", f"{len(atoms):3d}{len(bonds):3d}  0  0  0  0  0  0  0  0999 V2000"]
    lines += [f"{x:10.4f}{y:10.4f}{z:10.4f} {symbol:<3s} 0" + "  0" * 11 for symbol, (x, y, z) in atoms]
    lines += [f"{i + 1:3d}{j + 1:3d}  1  0" for i, j in bonds]
    return "\n".join(lines + ["M  END", "$$$$", ""])


def xenon_uranium_sdf(path):
    """ethanol, XeF3 (RDKit guesses an implicit H on its Xe), acetonitrile and an untitled CH3-U."""
    write_sdf(path, [SDFRecord(embedded("CCO"), "ethanol")])
    normal = path.read_text()
    write_sdf(path, [SDFRecord(embedded("CC#N"), "acetonitrile")])
    xef3 = [("Xe", (0, 0, 0)), ("F", (1.95, 0, 0)), ("F", (-1.95, 0, 0)), ("F", (0, 1.95, 0))]
    methyl_u = [("U", (0, 0, 0)), ("C", (2.3, 0, 0))] + [
        ("H", (2.66, y, z)) for y, z in ((1.03, 0), (-0.51, 0.89), (-0.51, -0.89))
    ]
    path.write_text(
        normal
        + hand_written_block("XeF3", xef3, [(0, 1), (0, 2), (0, 3)])
        + path.read_text()
        + hand_written_block("", methyl_u, [(0, 1), (1, 2), (1, 3), (1, 4)])
    )
    return path


def test_elements_outside_the_tables_are_named_and_count_as_failures(tmp_path):
    records, problems = read_records(xenon_uranium_sdf(tmp_path / "xe_u.sdf"))
    assert not problems and [r.name for r in records] == ["ethanol", "XeF3", "acetonitrile", "3"]
    assert records[1].implicit_hydrogens == 1  # RDKit's guess for Xe with three bonds
    evaluation = evaluate_molecules(records)
    report, rows = evaluation.report, evaluation.per_molecule
    (note,) = [n for n in report["notes"] if "outside the tables" in n]
    assert note.startswith("2 molecules contain elements outside the tables (H, B, C, N, O, F, Si, P, S, Cl, Br, I)")
    assert note.endswith('record 1 "XeF3" (Xe), record 3 (U)')
    assert not any("implicit hydrogens" in n for n in report["notes"])  # not the misleading skip note
    assert report["input"]["num_with_unknown_elements"] == 2
    # the sections run and count the two as failures
    assert report["rdkit"]["num_valid"] == 2 and report["rdkit"]["validity"] == 0.5
    assert report["rdkit"]["valid_and_connected"] == 0.5 and report["rdkit"]["num_unique"] == 2
    assert report["edm"]["num_valid"] == 2 and report["edm"]["mol_stability"] == 0.5
    assert report["graph"]["mol_stability"] == 0.5
    for index, element in ((1, "Xe"), (3, "U")):
        row = rows[index]
        assert row["unknown_elements"] == element
        assert not (row["rdkit_valid"] or row["edm_valid"] or row["edm_mol_stable"] or row["graph_mol_stable"])
        assert "rdkit_smiles" not in row and "edm_smiles" not in row
    # the normal molecules' results are those they get on their own
    alone = evaluate_molecules([records[0], records[2]]).per_molecule
    assert [rows[0], rows[2]] == alone and all(row["rdkit_valid"] and row["edm_mol_stable"] for row in alone)


def test_bare_point_clouds_with_unknown_elements_end_nothing():
    """Perceiving bonds for Xe or U ends the process (RDKit's extended-Hückel fallback); they are not perceived."""
    pytest.importorskip("posebusters")
    axes = np.vstack([2.0 * np.eye(3), -2.0 * np.eye(3)])
    xef2 = MoleculeRecord(np.array([54, 9, 9]), np.array([[0.0, 0, 0], [1.98, 0, 0], [-1.98, 0, 0]]), name="XeF2")
    uf6 = MoleculeRecord(np.array([92] + [9] * 6), np.vstack([np.zeros(3), axes]), name="UF6")
    records = [record(embedded("CCO"), keep_bonds=False), xef2, uf6]
    evaluation = evaluate_molecules(records, posebusters_max=None)
    report, rows = evaluation.report, evaluation.per_molecule
    assert any(n.endswith('record 1 "XeF2" (Xe), record 2 "UF6" (U)') for n in report["notes"])
    assert report["rdkit"]["num_valid"] == report["edm"]["num_valid"] == 1 and report["rdkit"]["connectivity"] == 1 / 3
    assert [row["posebusters_all_passed"] for row in rows] == [True, False, False]
    assert [row["rdkit_valid"] for row in rows] == [True, False, False]


def test_unknown_elements_note_is_truncated():
    xenon = MoleculeRecord(np.array([54]), np.zeros((1, 3)))
    records = [record(embedded("CCO"), keep_bonds=False)] + [xenon] * 12
    report = evaluate_molecules(records).report
    (note,) = [n for n in report["notes"] if "outside the tables" in n]
    assert note.startswith("12 molecules") and "record 10 (Xe)" in note and "record 11" not in note
    assert note.endswith("record 10 (Xe), and 2 more")
    assert report["rdkit"]["num_valid"] == report["edm"]["num_valid"] == 1


def test_cli_evaluate_names_unknown_elements_and_annotates_them_invalid(tmp_path, capsys):
    path, annotated = xenon_uranium_sdf(tmp_path / "xe_u.sdf"), tmp_path / "a.sdf"
    args = ["evaluate", str(path), "--reference", "none", "--posebusters", "0", "--annotate", str(annotated)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert 'record 1 "XeF3" (Xe), record 3 (U)' in printed
    assert "validity                              50.00 %" in printed.split("[rdkit]")[1]
    tags = [m.GetPropsAsDict() for m in Chem.SDMolSupplier(str(annotated), removeHs=False, sanitize=False)]
    assert [t["rdkit_valid"] for t in tags] == [1, 0, 1, 0]
    assert [t.get("unknown_elements") for t in tags] == [None, "Xe", None, "U"]


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
