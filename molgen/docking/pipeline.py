"""One record from SDF text to a :class:`~molgen.docking.results.MoleculeResult`, in a worker process.

``molgen dock --jobs N`` starts N processes; each sets up one
:class:`~molgen.docking.vina_runner.VinaRunner` (receptor and maps) in
:func:`start_worker` and then runs :func:`dock_record` on the records it is handed.
With one job the same two functions run in the main process. Every failure of a
record is caught here and becomes part of its result, so no molecule stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdkit import Chem

from molgen.docking.box import Box
from molgen.docking.ligands import LigandError, prepare_ligand
from molgen.docking.properties import molecule_properties
from molgen.docking.results import MoleculeResult
from molgen.docking.vina_runner import VinaRunner, VinaSettings

__all__ = ["WorkerSetup", "dock_record", "start_worker"]


@dataclass(frozen=True)
class WorkerSetup:
    """What each worker needs (picklable, sent to spawned processes).

    Attributes:
        receptor_pdbqt: path of the prepared receptor.
        box: the search box.
        settings: Vina's settings.
        largest_fragment: keep the largest fragment of disconnected molecules.
    """

    receptor_pdbqt: str
    box: Box
    settings: VinaSettings
    largest_fragment: bool


_worker: tuple[VinaRunner, WorkerSetup] | None = None


def start_worker(setup: WorkerSetup) -> None:
    """Build this process's Vina runner (receptor, maps); a pool's initializer."""
    global _worker
    _worker = (VinaRunner(setup.receptor_pdbqt, setup.box, setup.settings), setup)


def _title(block: str) -> str:
    return block.split("\n", 1)[0].strip()


def dock_record(item: tuple[int, str]) -> MoleculeResult:
    """Prepare, dock and describe the record ``(index, sdf_text)``; failures are returned, not raised.

    Raises:
        RuntimeError: :func:`start_worker` was not called in this process.
    """
    if _worker is None:
        raise RuntimeError("start_worker must run before dock_record")
    runner, setup = _worker
    index, block = item
    result = MoleculeResult(index, _title(block))
    try:
        ligand = prepare_ligand(block, largest_fragment=setup.largest_fragment)
        result.changes = ligand.changes
        poses = runner.run(ligand)
        result.properties = molecule_properties(ligand.mol)
    except LigandError as err:
        result.failure, result.reason = err.category, err.reason
        return result
    except Exception as err:  # a bug in a dependency on one odd molecule must not end a long run
        result.failure, result.reason = "unexpected error", f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        return result
    result.poses = [(round(pose.score, 3), Chem.MolToMolBlock(pose.mol)) for pose in poses]
    return result
