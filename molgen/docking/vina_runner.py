"""Docking and scoring one prepared ligand with AutoDock Vina's Python bindings.

One :class:`VinaRunner` per process holds the receptor and its affinity maps, computed
once for every atom type (about a second) and reused for each molecule. Vina reseeds
its search from the seed at every call, so a molecule's result depends only on the
molecule, the receptor, the box and the settings, not on the order or the process that
docks it; it also does not depend on Vina's thread count, which is 1 here: ``--jobs``
parallelises over molecules instead, which scales better for many small searches.

Three modes: ``dock`` (global search, then the top poses), ``score_only`` (the pose as
given) and ``local_only`` (a local optimisation from the pose as given, for molecules
generated in the pocket). The last two need the ligand inside the box.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rdkit import Chem, rdBase

from molgen.docking.box import Box
from molgen.docking.ligands import LigandError, PreparedLigand

__all__ = ["MODES", "SCORING_FUNCTIONS", "SEARCH_POSES", "Pose", "VinaRunner", "VinaSettings"]

MODES = ("dock", "score_only", "local_only")
SCORING_FUNCTIONS = ("vina", "vinardo")
SEARCH_POSES = 9
"""Poses Vina's search keeps (its command line's default ``num_modes``), whatever number is written:
the final clustering depends on it, so the top pose would otherwise change with ``num_poses``."""


@dataclass(frozen=True)
class VinaSettings:
    """How Vina runs.

    Attributes:
        scoring: ``vina`` or ``vinardo``.
        exhaustiveness: Monte Carlo runs of the global search (Vina's default 8).
        num_poses: poses written per molecule, best first (dock mode; the others give one).
        mode: one of :data:`MODES`.
        seed: Vina's random seed, >= 1 (Vina takes 0 as "draw one").
    """

    scoring: str = "vina"
    exhaustiveness: int = 8
    num_poses: int = 1
    mode: str = "dock"
    seed: int = 42

    def __post_init__(self) -> None:
        if self.scoring not in SCORING_FUNCTIONS:
            raise ValueError(f"scoring function must be one of {SCORING_FUNCTIONS}, got {self.scoring!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.exhaustiveness < 1 or self.num_poses < 1 or self.seed < 1:
            raise ValueError("exhaustiveness, num_poses and seed must be >= 1")


@dataclass
class Pose:
    """One docked pose.

    Attributes:
        score: Vina's score of the pose, kcal/mol (lower is better).
        mol: the ligand in this pose, every hydrogen explicit, one conformer.
    """

    score: float
    mol: Chem.Mol


def _poses_from_pdbqt(text: str) -> list[Chem.Mol]:
    """The poses (MODEL blocks) of Vina's output as RDKit molecules with all hydrogens placed.

    meeko restores the bond orders and non-polar hydrogens from the remarks it wrote
    into the ligand's PDBQT.
    """
    from meeko import PDBQTMolecule, RDKitMolCreate

    with rdBase.BlockLogs():
        mol = RDKitMolCreate.from_pdbqt_mol(PDBQTMolecule(text, skip_typing=True))[0]
    if mol is None:
        raise LigandError("Vina error", "meeko could not turn Vina's poses back into a molecule")
    poses = []
    for conformer in mol.GetConformers():
        pose = Chem.Mol(mol)
        pose.RemoveAllConformers()
        pose.AddConformer(Chem.Conformer(conformer), assignId=True)
        poses.append(pose)
    return poses


class VinaRunner:
    """Vina with a receptor and its maps, ready to dock or score ligands.

    Args:
        receptor_pdbqt: path of the rigid receptor (``.pdbqt``: Vina reads only files).
        box: the search box.
        settings: scoring function, mode, search effort, seed.
    """

    def __init__(self, receptor_pdbqt: str | os.PathLike, box: Box, settings: VinaSettings):
        from vina import Vina

        self.settings = settings
        self.vina = Vina(sf_name=settings.scoring, cpu=1, seed=settings.seed, verbosity=0)
        self.vina.set_receptor(str(receptor_pdbqt))
        self.vina.compute_vina_maps(center=list(box.center), box_size=list(box.size))  # before any ligand: all types

    def run(self, ligand: PreparedLigand) -> list[Pose]:
        """Dock or score ``ligand``; the poses best first (one in the score and local modes).

        Raises:
            LigandError: ``"outside the box"`` (score and local modes) or ``"Vina error"``.
        """
        try:
            self.vina.set_ligand_from_string(ligand.pdbqt)
            if self.settings.mode == "score_only":
                return [Pose(float(self.vina.score()[0]), Chem.Mol(ligand.mol))]
            if self.settings.mode == "local_only":
                score = float(self.vina.optimize()[0])
                with tempfile.TemporaryDirectory() as folder:
                    path = Path(folder) / "pose.pdbqt"
                    self.vina.write_pose(str(path))
                    return [Pose(score, _poses_from_pdbqt(path.read_text())[0])]
            n = self.settings.num_poses
            self.vina.dock(exhaustiveness=self.settings.exhaustiveness, n_poses=max(SEARCH_POSES, n))
            scores = self.vina.energies(n_poses=n)[:, 0]
            mols = _poses_from_pdbqt(self.vina.poses(n_poses=n))
        except (RuntimeError, TypeError, ValueError) as err:
            reason = " ".join(str(err).replace("Vina runtime error:", "").split())
            category = "outside the box" if "outside the grid box" in reason else "Vina error"
            raise LigandError(category, reason[:300] or type(err).__name__) from None
        if not mols:
            raise LigandError("Vina error", "the search returned no pose")
        return [Pose(float(score), mol) for score, mol in zip(scores, mols)]
