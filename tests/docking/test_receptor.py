"""Receptor preparation: plain proteins, truncated side chains near and far from the box, bad files."""

from __future__ import annotations

import pytest

from molgen.docking import receptor as receptor_module
from molgen.docking.box import Box
from molgen.docking.receptor import NEAR_BOX, ReceptorError, prepare_receptor
from tests.docking.conftest import NEEDS_EXTRA, residue_center

pytest.importorskip("vina", reason=NEEDS_EXTRA)
pytest.importorskip("meeko", reason=NEEDS_EXTRA)

#: Side-chain atoms of LYS 7 of the test peptide removed to make a truncated residue.
TRUNCATED = (" CD ", " CE ", " NZ ")


def truncated_lysine(receptor_pdb, tmp_path):
    lines = [
        line
        for line in receptor_pdb.read_text().splitlines(keepends=True)
        if not (line.startswith("ATOM") and line[17:20] == "LYS" and line[12:16] in TRUNCATED)
    ]
    path = tmp_path / "truncated.pdb"
    path.write_text("".join(lines))
    return path


def test_a_complete_peptide_is_prepared_with_polar_hydrogens(peptide, receptor_pdb):
    prepared = prepare_receptor(receptor_pdb, Box(residue_center(peptide, 5), (20.0, 20.0, 20.0)))
    atoms = [line for line in prepared.pdbqt.splitlines() if line.startswith("ATOM")]
    assert len(atoms) > peptide.GetNumAtoms()  # polar hydrogens added by meeko
    assert any(line.rstrip().endswith(" HD") for line in atoms)
    assert prepared.notes == ()


def test_truncated_side_chain_near_the_box_is_rebuilt_or_refused(peptide, receptor_pdb, tmp_path):
    path = truncated_lysine(receptor_pdb, tmp_path)
    box = Box(residue_center(peptide, 7), (10.0, 10.0, 10.0))
    with pytest.raises(ReceptorError, match=r"A:7 LYS; drop --no-repair") as err:
        prepare_receptor(path, box, repair=False)
    assert "\n" not in str(err.value)
    repaired = prepare_receptor(path, box)
    assert repaired.notes[0].startswith("repaired with PDBFixer: missing heavy atoms rebuilt in 1 residue(s)")
    assert sum(line[17:20] == "LYS" and line[12:16] == " NZ " for line in repaired.pdbqt.splitlines()) == 1


def test_without_pdbfixer_the_refusal_says_how_to_install_it(peptide, receptor_pdb, tmp_path, monkeypatch):
    monkeypatch.setattr(receptor_module, "pdbfixer_available", lambda: False)
    box = Box(residue_center(peptide, 7), (10.0, 10.0, 10.0))
    with pytest.raises(ReceptorError, match=r"install PDBFixer: pip install 'molgen\[dock\]'"):
        prepare_receptor(truncated_lysine(receptor_pdb, tmp_path), box)


def test_truncated_side_chain_far_from_the_box_is_removed_and_reported(peptide, receptor_pdb, tmp_path):
    box = Box(residue_center(peptide, 1), (2.0, 2.0, 2.0))
    assert box.distance_outside([residue_center(peptide, 7)])[0] > NEAR_BOX + 3
    prepared = prepare_receptor(truncated_lysine(receptor_pdb, tmp_path), box, repair=False)
    assert prepared.notes == (
        f"removed 1 residue(s) farther than {NEAR_BOX:g} A from the box that match no meeko template: A:7 LYS",
    )
    assert "LYS" not in prepared.pdbqt


def test_bad_receptor_files_are_one_line_errors(tmp_path):
    box = Box((0.0, 0.0, 0.0), (20.0, 20.0, 20.0))
    waters = tmp_path / "waters.pdb"
    waters.write_text(
        "HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\n"
        "HETATM    2  O   HOH A   2       3.000   0.000   0.000  1.00  0.00           O\nEND\n"
    )
    empty = tmp_path / "empty.pdb"
    empty.write_text("REMARK nothing here\nEND\n")
    for path, message in (
        (tmp_path / "absent.pdb", "receptor file not found"),
        (waters, "has no protein atoms"),
        (empty, "has no protein atoms"),
    ):
        with pytest.raises(ReceptorError, match=message) as err:
            prepare_receptor(path, box)
        assert "\n" not in str(err.value)
