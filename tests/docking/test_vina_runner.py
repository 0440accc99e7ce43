"""Vina on a prepared ligand: the three modes, the box check, and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdMolAlign

from molgen.docking.box import Box
from molgen.docking.ligands import LigandError, prepare_ligand
from molgen.docking.receptor import prepare_receptor
from molgen.docking.vina_runner import VinaRunner, VinaSettings
from tests.docking.conftest import NEEDS_EXTRA, embedded, molblock, residue_center

pytest.importorskip("vina", reason=NEEDS_EXTRA)
pytest.importorskip("meeko", reason=NEEDS_EXTRA)


@pytest.fixture(scope="module")
def pocket(peptide, receptor_pdb, tmp_path_factory):
    """(receptor PDBQT path, box) around the peptide's tryptophan and tyrosine."""
    box = Box(residue_center(peptide, 4), (16.0, 16.0, 16.0))
    path = tmp_path_factory.mktemp("pocket") / "receptor.pdbqt"
    path.write_text(prepare_receptor(receptor_pdb, box).pdbqt)
    return path, box


def ligand_at(center):
    return prepare_ligand(molblock(embedded("Oc1ccccc1", center=center, title="phenol")))


def test_docking_gives_ranked_poses_with_hydrogens_in_the_box(pocket):
    path, box = pocket
    ligand = ligand_at(box.center)
    poses = VinaRunner(path, box, VinaSettings(exhaustiveness=1, num_poses=3)).run(ligand)
    assert 1 <= len(poses) <= 3
    scores = [pose.score for pose in poses]
    assert scores == sorted(scores) and scores[0] < 0
    for pose in poses:
        assert pose.mol.GetNumAtoms() == ligand.mol.GetNumAtoms()  # every hydrogen back
        assert Chem.MolToSmiles(Chem.RemoveHs(pose.mol)) == Chem.MolToSmiles(Chem.RemoveHs(ligand.mol))
        assert box.distance_outside(pose.mol.GetConformer().GetPositions()).max() < 1.0


def test_same_seed_same_poses_in_a_fresh_runner(pocket):
    path, box = pocket
    ligand = ligand_at(box.center)
    settings = VinaSettings(exhaustiveness=1, seed=3)
    first = VinaRunner(path, box, settings).run(ligand)[0]
    runner = VinaRunner(path, box, settings)
    runner.run(ligand_at(box.center))
    again = runner.run(ligand)[0]  # after another molecule in the same runner
    assert first.score == again.score
    np.testing.assert_allclose(first.mol.GetConformer().GetPositions(), again.mol.GetConformer().GetPositions())


def test_score_only_and_local_only_score_a_pose_where_it_is(pocket):
    path, box = pocket
    (docked,) = VinaRunner(path, box, VinaSettings(exhaustiveness=1)).run(ligand_at(box.center))
    ligand = prepare_ligand(Chem.MolToMolBlock(docked.mol))
    (scored,) = VinaRunner(path, box, VinaSettings(mode="score_only")).run(ligand)
    np.testing.assert_allclose(scored.mol.GetConformer().GetPositions(), ligand.mol.GetConformer().GetPositions())
    assert scored.score == pytest.approx(docked.score, abs=0.3)  # docking refines with the receptor's atoms
    (optimized,) = VinaRunner(path, box, VinaSettings(mode="local_only")).run(ligand)
    assert optimized.score <= scored.score + 0.1  # already a minimum (of the maps; scoring is on atoms)
    assert rdMolAlign.CalcRMS(Chem.RemoveHs(optimized.mol), Chem.RemoveHs(ligand.mol)) < 1.0


@pytest.mark.parametrize("mode", ["score_only", "local_only"])
def test_a_ligand_outside_the_box_is_a_per_molecule_failure_when_not_docked(pocket, mode):
    path, box = pocket
    far = np.asarray(box.center) + 40.0
    with pytest.raises(LigandError) as err:
        VinaRunner(path, box, VinaSettings(mode=mode)).run(ligand_at(far))
    assert err.value.category == "outside the box"


def test_settings_are_checked():
    for bad in ({"scoring": "ad4"}, {"mode": "flex"}, {"seed": 0}, {"exhaustiveness": 0}):
        with pytest.raises(ValueError):
            VinaSettings(**bad)
