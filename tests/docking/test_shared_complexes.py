"""Real targets from ../shared/data/complexes: the raw receptors prepare, and a crystal ligand redocks."""

from __future__ import annotations

import json

import pytest
from rdkit import Chem
from rdkit.Chem import rdMolAlign

from molgen.cli import main
from molgen.docking.box import Box
from molgen.docking.receptor import prepare_receptor
from tests.docking.conftest import NEEDS_EXTRA

pytest.importorskip("vina", reason=NEEDS_EXTRA)
pytest.importorskip("meeko", reason=NEEDS_EXTRA)

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def test_every_raw_receptor_prepares_with_repair_where_meeko_alone_fails(complexes):
    for target in ("1iep", "1a46", "1uou", "2ha2", "6moa"):
        folder = complexes / target
        box = Box.around_ligand(folder / "ligand.sdf")
        meta = json.loads((folder / "meta.json").read_text())
        assert (list(box.center), list(box.size)) == (meta["box_center"], meta["box_size"])
        prepared = prepare_receptor(folder / "receptor.pdb", box)
        repaired = any(note.startswith("repaired with PDBFixer") for note in prepared.notes)
        assert repaired == (target in ("1a46", "6moa")), (target, prepared.notes)
        assert prepared.pdbqt.count("\nATOM") > 1000


def test_redocked_crystal_ligand_top_pose_within_2_angstrom(complexes, tmp_path):
    """6moa (BRD4 BD2 inhibitor, 30 heavy atoms; its receptor needs repair). Exhaustiveness 2 keeps the
    test near 20 s; the reference redock (exhaustiveness 8) has its top pose at 1.73 A."""
    folder = complexes / "6moa"
    out = tmp_path / "redocked.sdf"
    ligand = str(folder / "ligand.sdf")
    args = ["dock", ligand, "--receptor", str(folder / "receptor.pdb"), "--ref-ligand", ligand, "--out", str(out)]
    assert main([*args, "--exhaustiveness", "2", "--no-progress"]) == 0
    (top,) = Chem.SDMolSupplier(str(out), removeHs=False)
    crystal = Chem.MolFromMolFile(ligand)
    rmsd = rdMolAlign.CalcRMS(Chem.RemoveHs(top), Chem.RemoveHs(crystal))  # symmetry-aware, no superposition
    assert rmsd < 2.0
    assert float(top.GetProp("vina_score")) < -9.0  # reference best score -10.17 kcal/mol
